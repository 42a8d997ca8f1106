package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

func newPromoteCmd(o *rootOptions) *cobra.Command {
	var from, to, branch, out string
	var soak time.Duration
	var push bool
	cmd := &cobra.Command{
		Use:   "promote APP --from ENV --to ENV",
		Short: "Promote the revision Healthy on every cluster of one environment to the next environment's overlay",
		Long: `Promote an app from one environment to another (clusters are in environment E when
labelled env=E).

The hub takes the revision every cluster of --from has been Healthy on for at least --soak,
copies what the app declares as promotable from the --from overlay to the --to overlay (the
kustomize images: entries of the two kustomization files the app's path renders to), and
commits with a message naming the source revision and the clusters that vouched for it. The
commit goes to a new branch flotilla/promote-<app>-<short revision> (or --branch) to review and
merge, or straight to the app's target branch with --push. It refuses, saying why, while the
source environment is not Healthy everywhere or not soaked.`,
		Example: `  flotilla promote api --from staging --to production
  flotilla promote api --from staging --to production --soak 1h --branch release/api
  flotilla promote api --from staging --to production --soak 0 --push`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case from == "" || to == "":
				return errors.New("--from and --to are required")
			case soak < 0:
				return fmt.Errorf("--soak %s: negative", soak)
			case push && branch != "":
				return errors.New("--branch and --push exclude each other")
			}
			if out != "text" && out != "json" && out != "yaml" {
				return fmt.Errorf("--output %q: want text, json or yaml", out)
			}
			req := &flotillav1.PromoteRequest{App: args[0], FromEnv: from, ToEnv: to, SoakMs: soak.Milliseconds(), Branch: branch, Push: push}
			return o.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.op.Promote(ctx, req)
				if err != nil {
					return err
				}
				if out != "text" {
					return printItems(cmd.OutOrStdout(), []promoteItem{promoteItemOf(args[0], resp)}, out)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "promoted %s from %s to %s at %s (Healthy on %s)\n", args[0], from, to, short(resp.SourceRevision), strings.Join(resp.VouchedBy, ", "))
				for _, im := range resp.Images {
					fmt.Fprintf(w, "  image %s: %s -> %s\n", im.Name, orDefault(im.From, "(no override)"), im.To)
				}
				where := "branch " + resp.Branch + ": merge it to roll out to " + to
				if resp.PushedToTarget {
					where = resp.Branch + ": " + to + " follows it now"
				}
				fmt.Fprintf(w, "commit %s (%s) pushed to %s\n", short(resp.Commit), resp.TargetPath, where)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "source environment (clusters labelled env=FROM)")
	cmd.Flags().StringVar(&to, "to", "", "target environment (its overlay receives the promotion)")
	cmd.Flags().DurationVar(&soak, "soak", 10*time.Minute, "how long every source cluster must have been Healthy on the revision")
	cmd.Flags().StringVar(&branch, "branch", "", "branch to push the promotion to (default flotilla/promote-APP-REV)")
	cmd.Flags().BoolVar(&push, "push", false, "push straight to the app's target branch instead of a new branch")
	cmd.Flags().StringVarP(&out, "output", "o", "text", "output format: text, json or yaml")
	return cmd
}

// promoteItem is the JSON form of a promotion.
type promoteItem struct {
	App            string             `json:"app"`
	SourceRevision string             `json:"sourceRevision"`
	VouchedBy      []string           `json:"vouchedBy"`
	Commit         string             `json:"commit"`
	Branch         string             `json:"branch"`
	PushedToTarget bool               `json:"pushedToTarget"`
	SourcePath     string             `json:"sourcePath"`
	TargetPath     string             `json:"targetPath"`
	Images         []promoteImageItem `json:"images"`
}

type promoteImageItem struct {
	Name string `json:"name"`
	From string `json:"from,omitempty"`
	To   string `json:"to"`
}

func promoteItemOf(app string, r *flotillav1.PromoteResponse) promoteItem {
	it := promoteItem{
		App: app, SourceRevision: r.SourceRevision, VouchedBy: nonNil(r.VouchedBy), Commit: r.Commit, Branch: r.Branch,
		PushedToTarget: r.PushedToTarget, SourcePath: r.SourcePath, TargetPath: r.TargetPath, Images: []promoteImageItem{},
	}
	for _, im := range r.Images {
		it.Images = append(it.Images, promoteImageItem{Name: im.Name, From: im.From, To: im.To})
	}
	return it
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
