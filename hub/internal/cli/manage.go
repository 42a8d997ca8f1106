package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

func newClusterCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Register clusters",
	}
	var labels string
	var ttl time.Duration
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Register a cluster and print a single-use join token for its agent",
		Example: `  flotilla cluster add prod-eu-1 --labels env=production,region=eu
  # then, on that cluster: helm install flotilla-agent charts/agent --set joinToken=<token> ...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := parseLabels(labels)
			if err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.op.AddCluster(ctx, &flotillav1.AddClusterRequest{
					Name: args[0], Labels: l, TokenTtlSeconds: int64(ttl / time.Second),
				})
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), resp.JoinToken)
				fmt.Fprintf(cmd.ErrOrStderr(), "cluster %s registered; the join token above is single-use and expires at %s\n",
					args[0], time.UnixMilli(resp.ExpiresUnixMs).UTC().Format(time.RFC3339))
				return nil
			})
		},
	}
	add.Flags().StringVar(&labels, "labels", "", "cluster labels, key=value,key=value (apps select clusters by them)")
	add.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the join token stays valid")
	cmd.AddCommand(add)
	return cmd
}

func newTokenCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage join tokens",
	}
	var cluster string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --cluster NAME",
		Short: "Print a new single-use join token for a registered cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cluster == "" {
				return fmt.Errorf("--cluster is required")
			}
			return o.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.op.CreateToken(ctx, &flotillav1.CreateTokenRequest{Cluster: cluster, TtlSeconds: int64(ttl / time.Second)})
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), resp.JoinToken)
				return nil
			})
		},
	}
	create.Flags().StringVar(&cluster, "cluster", "", "the cluster the token enrols")
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token stays valid")
	cmd.AddCommand(create)
	return cmd
}

func newSyncCmd(o *rootOptions) *cobra.Command {
	var cluster string
	cmd := &cobra.Command{
		Use:   "sync APP",
		Short: "Apply an app's desired revision now (needed for apps without automated sync)",
		Example: `  flotilla sync api --cluster prod-eu-1
  flotilla sync api   # every cluster the app targets`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.op.Sync(ctx, &flotillav1.SyncRequest{App: args[0], Cluster: cluster})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "sync of %s requested on %s\n", args[0], strings.Join(resp.Clusters, ", "))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "only this cluster")
	return cmd
}

// parseLabels parses "k=v,k2=v2".
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels: %q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
