package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

type rootOptions struct {
	configPath string
	timeout    time.Duration
}

// AddCommands adds the operator commands and their persistent flags to root.
func AddCommands(root *cobra.Command) {
	o := &rootOptions{}
	root.PersistentFlags().StringVar(&o.configPath, "config", "", "operator config file (default $FLOTILLA_CONFIG, else ~/.config/flotilla/config; the hub writes one to DATA_DIR/admin.yaml)")
	root.PersistentFlags().DurationVar(&o.timeout, "request-timeout", 30*time.Second, "time limit for one request to the hub")
	root.AddCommand(newStatusCmd(o), newClustersCmd(o), newAppsCmd(o), newClusterCmd(o), newTokenCmd(o), newSyncCmd(o))
}

// run calls fn with a connected client and a bounded context, and makes gRPC errors readable.
func (o *rootOptions) run(cmd *cobra.Command, fn func(ctx context.Context, c *client) error) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	defer c.conn.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	if err := fn(ctx, c); err != nil {
		if s, ok := status.FromError(err); ok {
			return fmt.Errorf("%s", s.Message())
		}
		return err
	}
	return nil
}

func addOutputFlag(cmd *cobra.Command, out *string) {
	cmd.Flags().StringVarP(out, "output", "o", "table", "output format: table, wide or json")
}

func checkOutput(out string) error {
	switch out {
	case "table", "wide", "json":
		return nil
	}
	return fmt.Errorf("--output %q: want table, wide or json", out)
}

// statusItem is the JSON form of one status row.
type statusItem struct {
	Cluster           string      `json:"cluster"`
	App               string      `json:"app"`
	Sync              string      `json:"sync"`
	Health            string      `json:"health"`
	DesiredRevision   string      `json:"desiredRevision"`
	AppliedRevision   string      `json:"appliedRevision"`
	HealthyRevision   string      `json:"healthyRevision"`
	LastSeen          *time.Time  `json:"lastSeen"`
	Drift             []driftItem `json:"drift"`
	Message           string      `json:"message"`
	CommitToAppliedMs int64       `json:"commitToAppliedMs,omitempty"`
}

type driftItem struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	Diff      string `json:"diff,omitempty"`
}

func newStatusCmd(o *rootOptions) *cobra.Command {
	var app, cluster, out string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every app on every cluster: sync, health, desired and applied revision",
		Example: `  flotilla status
  flotilla status --app api -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.op.Status(ctx, &flotillav1.StatusRequest{App: app, Cluster: cluster})
				if err != nil {
					return err
				}
				return printStatus(cmd.OutOrStdout(), resp.Items, out)
			})
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "only this app")
	cmd.Flags().StringVar(&cluster, "cluster", "", "only this cluster")
	addOutputFlag(cmd, &out)
	return cmd
}

func printStatus(w io.Writer, items []*flotillav1.AppClusterStatus, out string) error {
	if out == "json" {
		list := make([]statusItem, 0, len(items))
		for _, s := range items {
			it := statusItem{
				Cluster: s.Cluster, App: s.App, Sync: s.Sync, Health: s.Health,
				DesiredRevision: s.DesiredRevision, AppliedRevision: s.AppliedRevision, HealthyRevision: s.HealthyRevision,
				Message: s.Message, Drift: []driftItem{}, CommitToAppliedMs: s.CommitToAppliedMs,
			}
			if s.LastSeenUnixMs > 0 {
				t := time.UnixMilli(s.LastSeenUnixMs).UTC()
				it.LastSeen = &t
			}
			for _, d := range s.Drift {
				it.Drift = append(it.Drift, driftItem{
					Group: d.Object.GetGroup(), Kind: d.Object.GetKind(), Namespace: d.Object.GetNamespace(),
					Name: d.Object.GetName(), Type: d.Type, Diff: d.Diff,
				})
			}
			list = append(list, it)
		}
		return printJSON(w, list)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "CLUSTER\tAPP\tSYNC\tHEALTH\tDESIRED\tAPPLIED\tDRIFT\tLAST SEEN"
	if out == "wide" {
		header += "\tHEALTHY\tCOMMIT→APPLIED\tMESSAGE"
	}
	fmt.Fprintln(tw, header)
	for _, s := range items {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s", s.Cluster, s.App, s.Sync, s.Health,
			short(s.DesiredRevision), short(s.AppliedRevision), len(s.Drift), ago(s.LastSeenUnixMs))
		if out == "wide" {
			c2a := "-"
			if s.CommitToAppliedMs > 0 {
				c2a = (time.Duration(s.CommitToAppliedMs) * time.Millisecond).String()
			}
			line += fmt.Sprintf("\t%s\t%s\t%s", short(s.HealthyRevision), c2a, s.Message)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func newClustersCmd(o *rootOptions) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "clusters",
		Short: "List registered clusters: labels, agent version, connection state, last seen",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.op.ListClusters(ctx, &flotillav1.ListClustersRequest{})
				if err != nil {
					return err
				}
				if out == "json" {
					type item struct {
						Name         string            `json:"name"`
						Labels       map[string]string `json:"labels"`
						State        string            `json:"state"`
						Connected    bool              `json:"connected"`
						AgentVersion string            `json:"agentVersion"`
						LastSeen     *time.Time        `json:"lastSeen"`
					}
					list := []item{}
					for _, c := range resp.Items {
						it := item{Name: c.Name, Labels: c.Labels, State: c.State, Connected: c.Connected, AgentVersion: c.AgentVersion}
						if c.LastSeenUnixMs > 0 {
							t := time.UnixMilli(c.LastSeenUnixMs).UTC()
							it.LastSeen = &t
						}
						list = append(list, it)
					}
					return printJSON(cmd.OutOrStdout(), list)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATE\tLABELS\tAGENT\tLAST SEEN")
				for _, c := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, c.State, labelString(c.Labels), orDash(c.AgentVersion), ago(c.LastSeenUnixMs))
				}
				return tw.Flush()
			})
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func newAppsCmd(o *rootOptions) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "apps",
		Short: "List Applications: source, revision, target clusters, errors and unsupported fields",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.op.ListApps(ctx, &flotillav1.ListAppsRequest{})
				if err != nil {
					return err
				}
				if out == "json" {
					type item struct {
						Name           string     `json:"name"`
						SourceFile     string     `json:"sourceFile"`
						RepoURL        string     `json:"repoURL"`
						TargetRevision string     `json:"targetRevision"`
						Path           string     `json:"path"`
						Revision       string     `json:"revision"`
						Clusters       []string   `json:"clusters"`
						RepoState      string     `json:"repoState"`
						LastFetched    *time.Time `json:"lastFetched"`
						Error          string     `json:"error"`
						Warnings       []string   `json:"warnings"`
					}
					list := []item{}
					for _, a := range resp.Items {
						it := item{Name: a.Name, SourceFile: a.SourceFile, RepoURL: a.RepoUrl, TargetRevision: a.TargetRevision,
							Path: a.Path, Revision: a.Revision, Clusters: nonNil(a.Clusters), RepoState: a.RepoState,
							Error: a.Error, Warnings: nonNil(a.Warnings)}
						if a.LastFetchedUnixMs > 0 {
							t := time.UnixMilli(a.LastFetchedUnixMs).UTC()
							it.LastFetched = &t
						}
						list = append(list, it)
					}
					return printJSON(cmd.OutOrStdout(), list)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tREPO\tTARGET\tPATH\tREVISION\tFETCHED\tCLUSTERS\tPROBLEMS")
				for _, a := range resp.Items {
					problems := append([]string{}, a.Warnings...)
					if a.Error != "" {
						problems = append([]string{"error: " + a.Error}, problems...)
					}
					fetched := ago(a.LastFetchedUnixMs)
					if a.RepoState == "Stale" {
						fetched = "Stale, last good " + fetched
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orDash(a.Name), orDash(a.RepoUrl), orDash(a.TargetRevision),
						orDash(a.Path), short(a.Revision), fetched, orDash(strings.Join(a.Clusters, ",")), orDash(strings.Join(problems, "; ")))
				}
				return tw.Flush()
			})
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func printJSON(w io.Writer, items any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"items": items})
}

func short(rev string) string {
	if rev == "" {
		return "-"
	}
	if len(rev) > 8 {
		return rev[:8]
	}
	return rev
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func ago(ms int64) string {
	if ms <= 0 {
		return "never"
	}
	d := time.Since(time.UnixMilli(ms))
	if d < time.Second {
		return "just now"
	}
	return d.Round(time.Second).String() + " ago"
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}
