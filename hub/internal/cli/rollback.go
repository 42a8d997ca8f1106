package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

func newRollbackCmd(o *rootOptions) *cobra.Command {
	req := &flotillav1.RollbackRequest{}
	cmd := &cobra.Command{
		Use:   "rollback APP (--cluster C | --selector S) --to REVISION | --clear",
		Short: "Pin an app to an earlier revision on some clusters, until cleared; audited and shown as Pinned",
		Example: `  flotilla rollback api --selector env=production --to 3f2a9c1
  flotilla rollback api --cluster prod-eu-1 --to v1.4.0
  flotilla rollback cert-manager --cluster prod-eu-1 --to 1.16.1   # a chart version
  flotilla rollback api --clear          # follow Git again everywhere`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.App = args[0]
			return o.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.op.Rollback(ctx, req)
				if err != nil {
					return err
				}
				if req.Clear {
					fmt.Fprintf(cmd.OutOrStdout(), "%s follows Git again on %s\n", req.App, strings.Join(resp.Clusters, ", "))
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s pinned to %s on %s\n", req.App, req.ToRevision, strings.Join(resp.Clusters, ", "))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&req.Cluster, "cluster", "", "the cluster to pin")
	cmd.Flags().StringVarP(&req.Selector, "selector", "l", "", "the clusters to pin, by label, e.g. env=production")
	cmd.Flags().StringVar(&req.ToRevision, "to", "", "the revision to pin to: a commit, tag or branch, or the chart version of an app whose chart comes from a Helm repository or OCI registry")
	cmd.Flags().BoolVar(&req.Clear, "clear", false, "remove the pins (of --cluster/--selector, or all of the app's)")
	return cmd
}
