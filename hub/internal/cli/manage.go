package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/flotilla-dev/flotilla/hub/internal/opclient"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/jointoken"
)

func newClusterCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Register and revoke clusters",
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
			if err := jointoken.CheckTTL("--ttl", ttl); err != nil {
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
	add.Flags().DurationVar(&ttl, "ttl", time.Hour, ttlUsage)
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a cluster: its agent's stream closes at once and it is refused from then on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, c *client) error {
				if _, err := c.op.RevokeCluster(ctx, &flotillav1.RevokeClusterRequest{Name: args[0]}); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "cluster %s revoked\n", args[0])
				return nil
			})
		},
	}
	cmd.AddCommand(add, revoke)
	return cmd
}

// ttlUsage is the help of --ttl.
var ttlUsage = fmt.Sprintf("how long the join token stays valid (%s to %s)", jointoken.MinTTL, jointoken.MaxTTL)

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
			if err := jointoken.CheckTTL("--ttl", ttl); err != nil {
				return err
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
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, ttlUsage)
	cmd.AddCommand(create)
	return cmd
}

func newSyncCmd(o *rootOptions) *cobra.Command {
	var cluster, selector, revision string
	var wait, confirmPrune bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "sync APP",
		Short: "Apply an app's desired revision now (needed for apps without automated sync)",
		Example: `  flotilla sync api --cluster prod-eu-1
  flotilla sync api --selector env=production --wait
  flotilla sync api --cluster prod-eu-1 --confirm-prune   # allow the deletions a prune held
  flotilla sync api   # every cluster the app targets`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			defer c.conn.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			resp, err := c.op.Sync(ctx, &flotillav1.SyncRequest{App: args[0], Cluster: cluster, Selector: selector, ConfirmPrune: confirmPrune, Revision: revision})
			cancel()
			if err != nil {
				return grpcMessage(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sync of %s requested on %s\n", args[0], strings.Join(resp.Clusters, ", "))
			warnUnreachable(cmd.ErrOrStderr(), resp.UnreachablePeers)
			if !wait {
				return nil
			}
			return waitSynced(cmd, c, args[0], resp.Clusters, timeout)
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "only this cluster")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "only clusters whose labels match, e.g. env=production")
	cmd.Flags().StringVar(&revision, "revision", "", "re-apply exactly this revision (it must be the desired one), e.g. one an agent rolled back")
	cmd.Flags().BoolVar(&confirmPrune, "confirm-prune", false, "confirm deletions held for confirmation (more than half of the app's objects, or any Namespace, PVC or CRD)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every cluster is Synced and Healthy at the desired revision; exit non-zero if any fails")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}

// waitSynced polls the app's status on clusters, drawing a progress bar on stderr, until every
// cluster is Synced and Healthy at its desired revision. A cluster whose sync was refused (NACK)
// or whose app turned Degraded fails; any failure or the timeout is an error.
func waitSynced(cmd *cobra.Command, c *client, app string, clusters []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	want := map[string]bool{}
	for _, cl := range clusters {
		want[cl] = true
	}
	errw := cmd.ErrOrStderr()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		resp, err := opclient.Status(ctx, c.op, &flotillav1.StatusRequest{App: app})
		if err == nil {
			done, failed := map[string]bool{}, map[string]string{}
			for _, s := range resp.Items {
				if !want[s.Cluster] {
					continue
				}
				switch {
				case s.LastError != "":
					failed[s.Cluster] = s.LastError
				case s.Health == "Degraded":
					failed[s.Cluster] = "Degraded: " + s.Message
				case s.Sync == "Synced" && s.Health == "Healthy" && s.AppliedRevision == s.DesiredRevision && s.DesiredRevision != "":
					done[s.Cluster] = true
				}
			}
			fmt.Fprintf(errw, "\r%s %d/%d synced, %d failed", bar(len(done)+len(failed), len(want), 30), len(done), len(want), len(failed))
			if len(done)+len(failed) == len(want) {
				fmt.Fprintln(errw)
				if len(failed) == 0 {
					return nil
				}
				var lines []string
				for cl, why := range failed {
					lines = append(lines, fmt.Sprintf("  %s: %s", cl, clean(why)))
				}
				sort.Strings(lines)
				return fmt.Errorf("sync of %s failed on %d of %d clusters:\n%s", app, len(failed), len(want), strings.Join(lines, "\n"))
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(errw)
			return fmt.Errorf("sync of %s: not done on every cluster within %s", app, timeout)
		case <-t.C:
		}
	}
}

func bar(n, total, width int) string {
	if total == 0 {
		return "[" + strings.Repeat("#", width) + "]"
	}
	full := n * width / total
	return "[" + strings.Repeat("#", full) + strings.Repeat(".", width-full) + "]"
}

// retentionHeader is the History response header telling what history the hub keeps
// (server.RetentionHeader).
const retentionHeader = "flotilla-history-retention"

func newHistoryCmd(o *rootOptions) *cobra.Command {
	var cluster, out string
	var limit int
	cmd := &cobra.Command{
		Use:   "history APP",
		Short: "List the revisions applied for an app: time, cluster, revision, commit author and message, result",
		Long: `List the revisions applied for an app: time, cluster, revision, commit author and message, result.
For an app rendered from a Helm chart, the revision is followed by the chart's version and the
digest of the values it was rendered with.

The hub keeps a bounded history (flotilla hub --history-keep, --history-max-age); what it keeps
is printed on standard error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, c *client) error {
				var header metadata.MD
				resp, err := c.op.History(ctx, &flotillav1.HistoryRequest{App: args[0], Cluster: cluster, Limit: int32(limit)}, grpc.Header(&header))
				if err != nil {
					return err
				}
				warnUnreachable(cmd.ErrOrStderr(), resp.UnreachablePeers)
				if kept := header.Get(retentionHeader); len(kept) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "history kept by the hub: %s\n", clean(kept[0]))
				}
				if out == "json" || out == "yaml" {
					type item struct {
						Time     time.Time `json:"time"`
						Cluster  string    `json:"cluster"`
						App      string    `json:"app"`
						Revision string    `json:"revision"`
						Author   string    `json:"author"`
						Message  string    `json:"message"`
						Result   string    `json:"result"`
						Health   string    `json:"health"`
						// Set for an app rendered from a Helm chart.
						ChartVersion string `json:"chartVersion,omitempty"`
						ValuesDigest string `json:"valuesDigest,omitempty"`
					}
					list := []item{}
					for _, h := range resp.Items {
						list = append(list, item{time.UnixMilli(h.TimeUnixMs).UTC(), h.Cluster, h.App, h.Revision, h.Author, h.Message, h.Result, h.Health,
							h.ChartVersion, h.ValuesDigest})
					}
					return printItems(cmd.OutOrStdout(), list, out)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TIME\tCLUSTER\tREVISION\tAUTHOR\tMESSAGE\tRESULT")
				for _, h := range resp.Items {
					msg, _, _ := strings.Cut(h.Message, "\n")
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", time.UnixMilli(h.TimeUnixMs).Local().Format("2006-01-02 15:04:05"),
						h.Cluster, historyRevision(h), orDash(clean(h.Author)), orDash(clean(msg)), clean(h.Result))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "only this cluster")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many entries")
	addOutputFlag(cmd, &out)
	return cmd
}

// historyRevision is the REVISION cell of a history entry: the revision, and for an app
// rendered from a chart the chart's version and the values digest ("3f2a9c1d chart 1.2.0
// values 9b1c04aa").
func historyRevision(h *flotillav1.HistoryEntry) string {
	rev := short(clean(h.Revision))
	if h.ChartVersion == "" {
		return rev
	}
	if rev == clean(h.ChartVersion) {
		rev = "-" // a chart from a repository: the revision is the version
	}
	return fmt.Sprintf("%s chart %s values %s", rev, clean(h.ChartVersion), short(strings.TrimPrefix(clean(h.ValuesDigest), "sha256:")))
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
