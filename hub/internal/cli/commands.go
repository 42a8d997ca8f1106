package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/hub/internal/opclient"
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
	root.AddCommand(newStatusCmd(o), newClustersCmd(o), newAppsCmd(o), newClusterCmd(o), newTokenCmd(o), newSyncCmd(o), newHistoryCmd(o), newDiffCmd(o), newRollbackCmd(o), newPromoteCmd(o), newRolloutCmd(o), newDashboardCmd(o))
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
	return grpcMessage(fn(ctx, c))
}

// grpcMessage turns a gRPC status error into its message, for people.
func grpcMessage(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return errors.New(cleanLines(s.Message()))
	}
	return err
}

func addOutputFlag(cmd *cobra.Command, out *string) {
	cmd.Flags().StringVarP(out, "output", "o", "table", "output format: table, wide, json or yaml")
}

func checkOutput(out string) error {
	switch out {
	case "table", "wide", "json", "yaml":
		return nil
	}
	return fmt.Errorf("--output %q: want table, wide, json or yaml", out)
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
	PinnedRevision    string      `json:"pinnedRevision,omitempty"`
	Rollout           string      `json:"rollout,omitempty"`
}

type driftItem struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	Diff      string `json:"diff,omitempty"`
	Contested bool   `json:"contested,omitempty"`
}

func newStatusCmd(o *rootOptions) *cobra.Command {
	var out string
	var watch bool
	req := &flotillav1.StatusRequest{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every app on every cluster: sync, health, desired and applied revision, drift",
		Long: `Show every app on every cluster it targets: sync, health, desired and applied revision, drift.

Sync is Synced, OutOfSync, Unknown (the cluster is Stale or has not reported), or RenderFailed:
the hub's latest render of the app for that cluster failed or broke its spec.policy or
spec.secrets; the message (-o wide, json, yaml) names the revision, the file, object or rule,
and the last good state stays applied, its health still shown.`,
		Example: `  flotilla status
  flotilla status --app api --selector env=production -o wide
  flotilla status --stale
  flotilla status --drifted -o json
  flotilla status --revision 3f2a9c1 --watch`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			get := func(ctx context.Context, c *client, w io.Writer) error {
				resp, err := opclient.Status(ctx, c.op, req)
				if err != nil {
					return err
				}
				warnUnreachable(cmd.ErrOrStderr(), resp.UnreachablePeers)
				return printStatus(w, resp.Items, out)
			}
			return o.show(cmd, watch, get)
		},
	}
	cmd.Flags().StringVar(&req.App, "app", "", "only this app")
	cmd.Flags().StringVar(&req.Cluster, "cluster", "", "only this cluster")
	cmd.Flags().StringVarP(&req.Selector, "selector", "l", "", "only clusters whose labels match, e.g. env=production")
	cmd.Flags().BoolVar(&req.Stale, "stale", false, "only clusters that are Stale or never connected")
	cmd.Flags().BoolVar(&req.Drifted, "drifted", false, "only apps with drift")
	cmd.Flags().StringVar(&req.Revision, "revision", "", "only rows whose desired or applied revision starts with this")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "redraw whenever the fleet changes (Ctrl-C to stop)")
	addOutputFlag(cmd, &out)
	return cmd
}

// show prints what get writes once, or with watch redraws it until interrupted. Once, get
// writes straight to the output: a whole fleet's status runs to megabytes.
func (o *rootOptions) show(cmd *cobra.Command, watch bool, get func(context.Context, *client, io.Writer) error) error {
	if watch {
		return o.watch(cmd, get)
	}
	return o.run(cmd, func(ctx context.Context, c *client) error {
		return get(ctx, c, cmd.OutOrStdout())
	})
}

// watch redraws what get writes every second when it changed, until interrupted.
func (o *rootOptions) watch(cmd *cobra.Command, get func(context.Context, *client, io.Writer) error) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	defer c.conn.Close()
	var last []byte
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
		var out bytes.Buffer
		err := get(ctx, c, &out)
		cancel()
		b := out.Bytes()
		if err != nil {
			if s, ok := status.FromError(err); ok {
				b = []byte("error: " + s.Message() + "\n")
			} else {
				b = []byte("error: " + err.Error() + "\n")
			}
		}
		if !bytes.Equal(b, last) {
			fmt.Fprint(cmd.OutOrStdout(), "\033[H\033[2J", time.Now().Format("15:04:05"), "\n", string(b))
			last = b
		}
		select {
		case <-cmd.Context().Done():
			return nil
		case <-t.C:
		}
	}
}

func printStatus(w io.Writer, items []*flotillav1.AppClusterStatus, out string) error {
	if out == "json" || out == "yaml" {
		list := make([]statusItem, 0, len(items))
		for _, s := range items {
			it := statusItem{
				Cluster: s.Cluster, App: s.App, Sync: s.Sync, Health: s.Health,
				DesiredRevision: s.DesiredRevision, AppliedRevision: s.AppliedRevision, HealthyRevision: s.HealthyRevision,
				Message: s.Message, Drift: []driftItem{}, CommitToAppliedMs: s.CommitToAppliedMs,
				PinnedRevision: s.PinnedRevision, Rollout: s.Rollout,
			}
			if s.LastSeenUnixMs > 0 {
				t := time.UnixMilli(s.LastSeenUnixMs).UTC()
				it.LastSeen = &t
			}
			for _, d := range s.Drift {
				it.Drift = append(it.Drift, driftItem{
					Group: d.Object.GetGroup(), Kind: d.Object.GetKind(), Namespace: d.Object.GetNamespace(),
					Name: d.Object.GetName(), Type: d.Type, Diff: d.Diff, Contested: d.Contested,
				})
			}
			list = append(list, it)
		}
		return printItems(w, list, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "CLUSTER\tAPP\tSYNC\tHEALTH\tDESIRED\tAPPLIED\tDRIFT\tLAST SEEN"
	if out == "wide" {
		header += "\tHEALTHY\tCOMMIT→APPLIED\tMESSAGE"
	}
	fmt.Fprintln(tw, header)
	for _, s := range items {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s", clean(s.Cluster), clean(s.App), clean(s.Sync), clean(s.Health),
			short(s.DesiredRevision), short(clean(s.AppliedRevision)), len(s.Drift), ago(s.LastSeenUnixMs))
		if out == "wide" {
			c2a := "-"
			if s.CommitToAppliedMs > 0 {
				c2a = (time.Duration(s.CommitToAppliedMs) * time.Millisecond).String()
			}
			line += fmt.Sprintf("\t%s\t%s\t%s", short(clean(s.HealthyRevision)), c2a, clean(s.Message))
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, "\ndashboard: flotilla dashboard\n")
	return err
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
				warnUnreachable(cmd.ErrOrStderr(), resp.UnreachablePeers)
				apps, _ := statusTallies(ctx, c, byCluster) // the unreachable replicas are warned of above
				if out == "json" || out == "yaml" {
					type item struct {
						Name         string            `json:"name"`
						Labels       map[string]string `json:"labels"`
						State        string            `json:"state"`
						Connected    bool              `json:"connected"`
						AgentVersion string            `json:"agentVersion"`
						LastSeen     *time.Time        `json:"lastSeen"`
						AgeRecipient string            `json:"ageRecipient,omitempty"`
						Replica      string            `json:"replica,omitempty"`
						Apps         tally             `json:"apps"`
					}
					list := []item{}
					for _, c := range resp.Items {
						it := item{Name: c.Name, Labels: c.Labels, State: c.State, Connected: c.Connected, AgentVersion: c.AgentVersion,
							AgeRecipient: c.AgeRecipient, Replica: c.Replica, Apps: apps[c.Name]}
						if c.LastSeenUnixMs > 0 {
							t := time.UnixMilli(c.LastSeenUnixMs).UTC()
							it.LastSeen = &t
						}
						list = append(list, it)
					}
					return printItems(cmd.OutOrStdout(), list, out)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATE\tLABELS\tAGENT\tLAST SEEN\tAPPS")
				for _, c := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.State, clean(labelString(c.Labels)), orDash(clean(c.AgentVersion)),
						ago(c.LastSeenUnixMs), apps[c.Name])
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
		Long: `List Applications: source, revision, target clusters, errors and unsupported fields.

For an app rendered from a Helm chart, PATH names the chart and the version it resolved to
("chart cert-manager 1.16.2" for a chart in a Helm or OCI repository, "platform/monitoring
(chart 1.2.0)" for a chart directory in Git), and PROBLEMS says why a render failed, naming the
chart and template.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			return o.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.op.ListApps(ctx, &flotillav1.ListAppsRequest{})
				if err != nil {
					return err
				}
				fleet, unreachable := statusTallies(ctx, c, byApp)
				warnUnreachable(cmd.ErrOrStderr(), unreachable)
				if h := resp.RemovalHold; h != nil {
					w := cmd.OutOrStdout()
					if out == "json" || out == "yaml" {
						w = cmd.ErrOrStderr() // the document stays as it is
					}
					fmt.Fprintf(w, "REMOVAL HELD (%s): %d of %d Applications are gone from the apps source (%s); nothing of them is removed until they come back or an operator runs `flotilla apps confirm-removal`\n\n",
						ago(h.SinceUnixMs), len(h.Apps), h.Total, strings.Join(h.Apps, ", "))
				}
				if out == "json" || out == "yaml" {
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
						Fleet          tally      `json:"fleet"`
						// Set for an app rendered from a Helm chart.
						Chart        string `json:"chart,omitempty"`
						ChartVersion string `json:"chartVersion,omitempty"`
					}
					list := []item{}
					for _, a := range resp.Items {
						it := item{Name: a.Name, SourceFile: a.SourceFile, RepoURL: a.RepoUrl, TargetRevision: a.TargetRevision,
							Path: a.Path, Revision: a.Revision, Clusters: nonNil(a.Clusters), RepoState: a.RepoState,
							Error: a.Error, Warnings: nonNil(a.Warnings), Fleet: fleet[a.Name], Chart: a.Chart, ChartVersion: a.ChartVersion}
						if a.LastFetchedUnixMs > 0 {
							t := time.UnixMilli(a.LastFetchedUnixMs).UTC()
							it.LastFetched = &t
						}
						list = append(list, it)
					}
					return printItems(cmd.OutOrStdout(), list, out)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tREPO\tTARGET\tPATH\tREVISION\tFETCHED\tCLUSTERS\tFLEET\tPROBLEMS")
				for _, a := range resp.Items {
					problems := append([]string{}, a.Warnings...)
					if a.Error != "" {
						problems = append([]string{"error: " + a.Error}, problems...)
					}
					fetched := ago(a.LastFetchedUnixMs)
					if a.RepoState == "Stale" {
						fetched = "Stale, last good " + fetched
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orDash(clean(a.Name)), orDash(clean(a.RepoUrl)), orDash(clean(a.TargetRevision)),
						appPath(a), short(a.Revision), fetched, orDash(strings.Join(a.Clusters, ",")), fleet[a.Name],
						orDash(clean(strings.Join(problems, "; "))))
				}
				return tw.Flush()
			})
		},
	}
	addOutputFlag(cmd, &out)
	cmd.AddCommand(newConfirmRemovalCmd(o))
	return cmd
}

func newConfirmRemovalCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "confirm-removal",
		Short: "Let a held removal of most Applications go ahead (each removed app then waits out --removal-grace)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.op.ConfirmRemoval(ctx, &flotillav1.ConfirmRemovalRequest{})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removal confirmed: %s\n", strings.Join(resp.Apps, ", "))
				return nil
			})
		},
	}
}

// appPath is the PATH cell of `flotilla apps`: the path, and for an app rendered from a Helm
// chart the chart and its resolved version ("platform/monitoring (chart 1.2.0)", "chart
// cert-manager 1.16.2").
func appPath(a *flotillav1.App) string {
	if a.Chart == "" {
		return orDash(clean(a.Path))
	}
	version := orDash(clean(a.ChartVersion))
	if a.Path != "" {
		return fmt.Sprintf("%s (chart %s)", clean(a.Path), version)
	}
	return fmt.Sprintf("chart %s %s", clean(a.Chart), version)
}

// printItems prints {"items": items} as JSON or YAML.
func printItems(w io.Writer, items any, out string) error {
	if out == "yaml" {
		b, err := yaml.Marshal(map[string]any{"items": items})
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return writeJSONItems(w, items)
}

// writeJSONItems writes {"items": items} as json.Encoder with a two-space indent would, an
// item at a time: a fleet's status is 20,000 rows, and encoding the whole document at once
// and then indenting it grew and cleared megabytes of buffers (a third of the CLI's time).
func writeJSONItems(w io.Writer, items any) error {
	v := reflect.ValueOf(items)
	if v.Kind() != reflect.Slice || v.IsNil() {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"items": items})
	}
	if v.Len() == 0 {
		_, err := io.WriteString(w, "{\n  \"items\": []\n}\n")
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("{\n  \"items\": [\n")
	var ind bytes.Buffer
	var buf []byte
	for i := range v.Len() {
		if a, ok := v.Index(i).Addr().Interface().(jsonAppender); ok {
			var err error
			if buf, err = a.appendJSON(buf[:0], "    "); err != nil {
				return err
			}
			bw.WriteString("    ")
			bw.Write(buf)
		} else {
			b, err := json.Marshal(v.Index(i).Interface())
			if err != nil {
				return err
			}
			ind.Reset()
			if err := json.Indent(&ind, b, "    ", "  "); err != nil {
				return err
			}
			bw.WriteString("    ")
			bw.Write(ind.Bytes())
		}
		if i < v.Len()-1 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
	}
	bw.WriteString("  ]\n}\n")
	return bw.Flush()
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
