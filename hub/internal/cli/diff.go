package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/hub/internal/drift"

	"github.com/flotilla-dev/flotilla/hub/internal/opclient"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

func newDiffCmd(o *rootOptions) *cobra.Command {
	var cluster string
	var suggest bool
	cmd := &cobra.Command{
		Use:   "diff APP --cluster C",
		Short: "Show how the live objects of an app differ from Git (drift), field by field, Secret values masked",
		Long: `Show how the live objects of an app differ from Git (drift), field by field, Secret values masked.

With --suggest-ignore, print instead an ignoreDifferences snippet (JSON pointers per object) for
the fields of the drift that is contested: fields another actor keeps changing back, from which
self-heal backs off. It reads the drift the agents last reported; it measures nothing new.`,
		Example: `  flotilla diff api --cluster prod-eu-1
  flotilla diff api            # every cluster
  flotilla diff api --suggest-ignore`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := opclient.Status(ctx, c.op, &flotillav1.StatusRequest{App: args[0], Cluster: cluster})
				if err != nil {
					return err
				}
				if len(resp.Items) == 0 {
					return fmt.Errorf("app %q has no status on %s", args[0], orAll(cluster))
				}
				w := cmd.OutOrStdout()
				if suggest {
					return suggestIgnore(w, args[0], resp.Items)
				}
				entries := drift.Entries(resp.Items)
				for _, e := range entries {
					fmt.Fprintf(w, "=== %s: %s %s (%s)\n", e.Cluster, clean(e.Kind), clean(e.Name), clean(e.Type))
					if e.Diff != "" {
						fmt.Fprintln(w, strings.TrimRight(cleanLines(e.Diff), "\n"))
					}
				}
				if len(entries) == 0 {
					fmt.Fprintf(w, "no drift: the live objects of %s match Git on %s\n", args[0], orAll(cluster))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "only this cluster")
	cmd.Flags().BoolVar(&suggest, "suggest-ignore", false, "print an ignoreDifferences snippet for the fields of contested drift (fields another actor keeps changing back)")
	return cmd
}

func orAll(cluster string) string {
	if cluster == "" {
		return "any cluster"
	}
	return "cluster " + cluster
}
