package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/hub/internal/rolloutfmt"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

func newRolloutCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow and steer an app's progressive rollout (spec.rollout)",
		Long: `Follow and steer an app's progressive rollout.

An app with spec.rollout receives each new revision step by step: a step's clusters get it
(at most maxUnavailable of them updating at once), and the next step starts once each of
them has been Synced and Healthy on it for the step's soak, as their agents report. Clusters
not yet in an active step keep what they run. A cluster that turns Degraded, NACKs or rolls
itself back halts the rollout (failurePolicy: rollback also returns the updated clusters to
the revision they had). Every action is audited. With hub replicas any replica answers: the
one that coordinates the app's rollouts does.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newRolloutStatusCmd(o),
		newRolloutActionCmd(o, "approve", "Give the approval the active step waits for", ""),
		newRolloutActionCmd(o, "pause", "Admit no further cluster until resumed (those updating carry on)", ""),
		newRolloutActionCmd(o, "resume", "Resume a paused rollout", ""),
		newRolloutActionCmd(o, "abort", "End the rollout: no further cluster gets the revision", "rollback"),
		newRolloutActionCmd(o, "skip", "Move on without a cluster: its step no longer waits for it (it still gets the revision with its step)", "cluster"))
	return cmd
}

func newRolloutStatusCmd(o *rootOptions) *cobra.Command {
	var out string
	var watch bool
	cmd := &cobra.Command{
		Use:   "status APP",
		Short: "Show an app's rollout: its steps, their clusters, and what it waits for",
		Example: `  flotilla rollout status api
  flotilla rollout status api -o json
  flotilla rollout status api --watch`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			get := func(ctx context.Context, c *client, w io.Writer) error {
				resp, err := c.op.RolloutStatus(ctx, &flotillav1.RolloutStatusRequest{App: args[0]})
				if err != nil {
					return err
				}
				return printRollout(w, resp.Rollout, out)
			}
			return o.show(cmd, watch, get)
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "redraw whenever the rollout changes (Ctrl-C to stop)")
	addOutputFlag(cmd, &out)
	return cmd
}

// newRolloutActionCmd makes `flotilla rollout ACTION APP`; flag is "rollback" (abort),
// "cluster" (skip) or "".
func newRolloutActionCmd(o *rootOptions, action, short, flag string) *cobra.Command {
	req := &flotillav1.RolloutActionRequest{Action: action}
	use := action + " APP"
	switch flag {
	case "rollback":
		use += " [--rollback]"
	case "cluster":
		use += " --cluster C"
	}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short + "; audited",
		Example: "  flotilla rollout " + strings.ReplaceAll(use, "APP", "api"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.App = args[0]
			if flag == "cluster" && req.Cluster == "" {
				return fmt.Errorf("--cluster is required: name the cluster to move on without")
			}
			return o.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.op.RolloutAction(ctx, req)
				if err != nil {
					return err
				}
				r := resp.Rollout
				fmt.Fprintf(cmd.OutOrStdout(), "%s: rollout %s %s; %s\n", clean(r.App), clean(r.Id), rolloutfmt.PastTense(action), rolloutfmt.State(r))
				if r.Waiting != "" {
					fmt.Fprintln(cmd.OutOrStdout(), clean(r.Waiting))
				}
				return nil
			})
		},
	}
	switch flag {
	case "rollback":
		cmd.Flags().BoolVar(&req.Rollback, "rollback", false, "also return the updated clusters to the revision they had")
	case "cluster":
		cmd.Flags().StringVar(&req.Cluster, "cluster", "", "the cluster to move on without")
	}
	return cmd
}

// rolloutItem is the JSON form of a rollout.
type rolloutItem struct {
	App          string `json:"app"`
	ID           string `json:"id"`
	Revision     string `json:"revision"`
	FromRevision string `json:"fromRevision,omitempty"`
	// Edit: the rollout carries an edit of the Application (Change says which).
	Edit          bool              `json:"edit,omitempty"`
	Change        string            `json:"change,omitempty"`
	State         string            `json:"state"`
	Paused        bool              `json:"paused,omitempty"`
	Step          int32             `json:"step"`
	FailurePolicy string            `json:"failurePolicy,omitempty"`
	Waiting       string            `json:"waiting,omitempty"`
	Reason        string            `json:"reason,omitempty"`
	Started       time.Time         `json:"started"`
	StepStarted   *time.Time        `json:"stepStarted,omitempty"`
	Steps         []rolloutStepItem `json:"steps"`
	// Coordinator is the hub replica that coordinates the app's rollouts (with replicas).
	Coordinator string `json:"coordinator,omitempty"`
}

type rolloutStepItem struct {
	Number      int32                `json:"number"`
	Description string               `json:"description"`
	Approval    bool                 `json:"approval,omitempty"`
	Approved    bool                 `json:"approved,omitempty"`
	State       string               `json:"state"`
	Clusters    []rolloutClusterItem `json:"clusters"`
}

type rolloutClusterItem struct {
	Name     string     `json:"name"`
	Phase    string     `json:"phase"`
	Since    *time.Time `json:"since,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	Revision string     `json:"revision"`
	Sync     string     `json:"sync,omitempty"`
	Health   string     `json:"health,omitempty"`
}

func timeOf(ms int64) *time.Time {
	if ms <= 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

func printRollout(w io.Writer, r *flotillav1.Rollout, out string) error {
	if out == "json" || out == "yaml" {
		it := rolloutItem{
			App: r.App, ID: r.Id, Revision: r.Revision, FromRevision: r.FromRevision, Edit: r.Edit, Change: rolloutfmt.Change(r), State: r.State, Paused: r.Paused,
			Step: r.Step, FailurePolicy: r.FailurePolicy, Waiting: r.Waiting, Reason: r.Reason,
			Started: time.UnixMilli(r.StartedUnixMs).UTC(), StepStarted: timeOf(r.StepStartedUnixMs), Steps: []rolloutStepItem{},
			Coordinator: r.Coordinator,
		}
		for _, s := range r.Steps {
			si := rolloutStepItem{Number: s.Number, Description: s.Description, Approval: s.Approval, Approved: s.Approved, State: s.State, Clusters: []rolloutClusterItem{}}
			for _, c := range s.Clusters {
				si.Clusters = append(si.Clusters, rolloutClusterItem{Name: c.Name, Phase: c.Phase, Since: timeOf(c.SinceUnixMs), Reason: c.Reason,
					Revision: c.Revision, Sync: c.Sync, Health: c.Health})
			}
			it.Steps = append(it.Steps, si)
		}
		return printItems(w, []rolloutItem{it}, out)
	}
	fmt.Fprintf(w, "Rollout %s of %s: %s -> %s", clean(r.Id), clean(r.App), short(clean(r.FromRevision)), short(clean(r.Revision)))
	if c := rolloutfmt.Change(r); c != "" {
		fmt.Fprintf(w, " (%s)", c)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "State:   %s", rolloutfmt.State(r))
	if r.FailurePolicy != "" {
		fmt.Fprintf(w, ", failurePolicy %s", clean(r.FailurePolicy))
	}
	if r.Coordinator != "" {
		fmt.Fprintf(w, ", coordinated by %s", clean(r.Coordinator))
	}
	fmt.Fprintln(w)
	if r.Waiting != "" {
		fmt.Fprintf(w, "Now:     %s\n", clean(r.Waiting))
	}
	if rolloutfmt.ShowReason(r) {
		fmt.Fprintf(w, "Reason:  %s\n", clean(r.Reason))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "STEP\tCLUSTERS\tSTATE\tCLUSTER\tPHASE\tSINCE\tHEALTH"
	if out == "wide" {
		header += "\tREVISION\tREASON"
	}
	fmt.Fprintln(tw, header)
	for _, s := range r.Steps {
		lead := fmt.Sprintf("%d\t%s\t%s", s.Number, clean(s.Description), rolloutfmt.StepState(s))
		if len(s.Clusters) == 0 {
			fmt.Fprintln(tw, lead+"\t-\t-\t-\t-"+wideDashes(out))
		}
		for _, c := range s.Clusters {
			line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", lead, clean(c.Name), clean(c.Phase), ago(c.SinceUnixMs), orDash(clean(c.Health)))
			if out == "wide" {
				line += fmt.Sprintf("\t%s\t%s", short(clean(c.Revision)), orDash(clean(c.Reason)))
			}
			fmt.Fprintln(tw, line)
			lead = "\t\t"
		}
	}
	return tw.Flush()
}

func wideDashes(out string) string {
	if out == "wide" {
		return "\t-\t-"
	}
	return ""
}
