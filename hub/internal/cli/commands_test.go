package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// formats are the values of -o every listing command takes.
var formats = []string{"table", "wide", "json", "yaml"}

// TestListingGolden: the listing commands in every output format, and their filters, print
// what testdata/ holds, against a hub with a populated fleet.
func TestListingGolden(t *testing.T) {
	t.Parallel()
	h, f, n := populatedHub(t)

	var cases [][]string
	for _, cmd := range [][]string{{"status"}, {"clusters"}, {"apps"}, {"history", "api"}} {
		for _, o := range formats {
			cases = append(cases, append(append([]string{}, cmd...), "-o", o))
		}
	}
	cases = append(cases,
		[]string{"status", "--app", "api", "--selector", "env=staging", "-o", "wide"},
		[]string{"status", "--cluster", "staging-2", "--drifted", "-o", "json"},
		[]string{"status", "--stale"},
		[]string{"status", "--revision", f.rev2[:7]},
		[]string{"history", "worker", "--cluster", "staging-2"},
		[]string{"history", "api", "--limit", "2", "-o", "wide"},
		[]string{"history", "nope"},
		[]string{"diff", "api"},
		[]string{"diff", "api", "--cluster", "prod-1"},
		[]string{"diff", "api", "--suggest-ignore"},
		[]string{"diff", "api", "--cluster", "prod-1", "--suggest-ignore"},
	)
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := h.flotilla(t, args...)
			if r.err != nil {
				t.Errorf("flotilla %s: %v", strings.Join(args, " "), r.err)
			}
			golden(t, goldenName(args), n, r)
		})
	}
	t.Run("status --watch", func(t *testing.T) {
		args := []string{"status", "--watch", "--app", "api", "-o", "wide"}
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		var stdout, stderr syncBuffer
		done := make(chan error, 1)
		go func() { done <- h.execute(ctx, &stdout, &stderr, args) }()
		// The first screen, then Ctrl-C (before the next second's redraw).
		testwait.Until(t, 30*time.Second, "the first screen of status --watch", func() bool { return strings.Contains(stdout.String(), "staging-2") })
		stop()
		r := result{args: args, err: <-done}
		r.stdout, r.stderr = stdout.String(), stderr.String()
		if r.err != nil {
			t.Errorf("status --watch ended with %v, want nil once interrupted", r.err)
		}
		golden(t, goldenName(args), n, r)
	})
}

// TestBadInputGolden: a bad -o value, an unknown cluster or app, and a bad flag are refused
// with a message naming what is at fault.
func TestBadInputGolden(t *testing.T) {
	t.Parallel()
	h, _, n := populatedHub(t)
	for _, c := range []struct {
		args  []string
		names string // what the error must name
	}{
		{[]string{"status", "-o", "xml"}, `"xml"`},
		{[]string{"clusters", "-o", "xml"}, `"xml"`},
		{[]string{"apps", "-o", "csv"}, `"csv"`},
		{[]string{"history", "api", "-o", "xml"}, `"xml"`},
		{[]string{"promote", "api", "--from", "staging", "--to", "production", "-o", "wide"}, `"wide"`},
		{[]string{"diff", "api", "--cluster", "nope"}, "cluster nope"},
		{[]string{"token", "create", "--cluster", "nope"}, `"nope"`},
		{[]string{"cluster", "revoke", "nope"}, `"nope"`},
		{[]string{"cluster", "add", "prod-1"}, `"prod-1"`},
		{[]string{"cluster", "add", "edge-9", "--labels", "env"}, `"env"`},
		{[]string{"sync", "api", "--cluster", "nope"}, "cluster nope"},
		{[]string{"sync", "nope"}, `"nope"`},
		{[]string{"rollback", "api", "--cluster", "nope", "--to", "v1"}, `"api": no matching cluster`},
		{[]string{"rollback", "nope", "--cluster", "prod-1", "--to", "v1"}, `"nope"`},
		{[]string{"promote", "nope", "--from", "staging", "--to", "production"}, `"nope"`},
		{[]string{"promote", "api", "--from", "staging", "--to", "production", "--soak", "1h"}, "soak"},
		{[]string{"status", "--selector", "env in (", "-o", "wide"}, `"env in ("`},
		{[]string{"apps", "confirm-removal"}, "no removal is held"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := h.flotilla(t, c.args...)
			if r.err == nil || !strings.Contains(r.err.Error(), c.names) {
				t.Errorf("flotilla %s: error %v, want one naming %s", strings.Join(c.args, " "), r.err, c.names)
			}
			golden(t, "error_"+goldenName(c.args), n, r)
		})
	}
}

// goldenName is the file name of a run's golden file: its arguments, made safe.
func goldenName(args []string) string {
	s := strings.Join(args, "_")
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '=':
			return r
		}
		return '_'
	}, s)
}

// TestChangeGolden: the commands that change the hub, one after another on a populated hub,
// print what testdata/ holds, and the listings show what they changed.
func TestChangeGolden(t *testing.T) {
	t.Parallel()
	h, f, n := populatedHub(t)
	step := func(name string, args ...string) result {
		t.Helper()
		r := h.flotilla(t, args...)
		golden(t, "change_"+name, n, r)
		return r
	}
	succeeds := func(r result) {
		t.Helper()
		if r.err != nil {
			t.Fatalf("flotilla %s: %v", strings.Join(r.args, " "), r.err)
		}
	}

	// Registration: a cluster, a second token for it, its revocation.
	added := step("01_cluster_add", "cluster", "add", "edge-2", "--labels", "env=edge,region=ap", "--ttl", "2h")
	succeeds(added)
	succeeds(step("02_token_create", "token", "create", "--cluster", "edge-2", "--ttl", "30m"))
	succeeds(step("03_cluster_revoke", "cluster", "revoke", "edge-2"))
	succeeds(step("04_clusters", "clusters"))
	if r := step("05_token_create_revoked", "token", "create", "--cluster", "edge-2"); r.err == nil || !strings.Contains(r.err.Error(), `"edge-2" is revoked`) {
		t.Errorf("token for a revoked cluster: %v", r.err)
	}

	// Sync: requested, waited for, and failing on a Degraded cluster.
	succeeds(step("06_sync", "sync", "api", "--cluster", "staging-1"))
	succeeds(step("07_sync_wait", "sync", "api", "--selector", "env=staging", "--wait", "--timeout", "30s"))
	if r := step("08_sync_wait_degraded", "sync", "worker", "--cluster", "staging-1", "--wait", "--timeout", "30s"); r.err == nil ||
		!strings.Contains(r.err.Error(), "staging-1: Degraded") {
		t.Errorf("sync --wait of a Degraded app: %v", r.err)
	}

	// Rollback: a pin shows in the status until it is cleared.
	succeeds(step("09_rollback", "rollback", "api", "--selector", "env=staging", "--to", f.rev1[:7]))
	succeeds(step("10_status_pinned", "status", "--app", "api", "-o", "wide"))
	succeeds(step("11_status_pinned_json", "status", "--app", "api", "--cluster", "staging-1", "-o", "json"))
	succeeds(step("12_rollback_clear", "rollback", "api", "--clear"))

	// Promotion, once per output format (each to another branch: a second promotion of the
	// same revision to one branch is refused). The commits the hub made are normalised, all to
	// one placeholder: two made within the same second from the same parent are one commit.
	for i, p := range []struct{ name, branch string }{
		{"13_promote", "flotilla/promote-api-" + f.rev2[:7]},
		{"14_promote_json", "release/api"},
		{"15_promote_yaml", "main"},
	} {
		args := []string{"promote", "api", "--from", "staging", "--to", "production", "--soak", "0"}
		switch i {
		case 1:
			args = append(args, "--branch", p.branch, "-o", "json")
		case 2:
			args = append(args, "--push", "-o", "yaml")
		}
		r := h.flotilla(t, args...)
		succeeds(r)
		n.add(git(t, f.repo, "rev-parse", p.branch), "<promotion>")
		n.add(git(t, f.repo, "rev-parse", "--short=8", p.branch), "<promotion>")
		golden(t, "change_"+p.name, n, r)
	}
	succeeds(step("16_history_promoted", "history", "api", "--cluster", "prod-1"))

	// A mass removal held, shown by apps, then confirmed.
	h.Fleet.GuardRemoval([]string{"api", "broken", "edge-proxy", "legacy", "worker"})
	if held := h.Fleet.GuardRemoval([]string{"api"}); len(held) != 4 {
		t.Fatalf("removal held for %v, want 4 apps", held)
	}
	succeeds(step("17_apps_removal_held", "apps"))
	succeeds(step("18_apps_removal_held_json", "apps", "-o", "json"))
	succeeds(step("19_apps_confirm_removal", "apps", "confirm-removal"))
}

// TestWriteJSONItemsMatchesTheEncoder: the CLI's JSON documents, written an item at a time,
// are byte for byte what encoding/json writes for {"items": items} with a two-space indent.
func TestWriteJSONItemsMatchesTheEncoder(t *testing.T) {
	type nested struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
		Drift  []driftItem       `json:"drift"`
		When   *time.Time        `json:"when"`
	}
	when := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	whenNanos := time.Date(2026, 12, 7, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	for name, items := range map[string]any{
		"structs": []nested{
			{Name: "a <b> & \"c\"\n", Labels: map[string]string{"z": "1", "a": "2"}, Drift: []driftItem{{Kind: "ConfigMap", Name: "x", Type: "Modified"}}, When: &when},
			{Name: "", Labels: nil, Drift: []driftItem{}},
		},
		"one": []statusItem{{Cluster: "c1", App: "api", Drift: []driftItem{}}},
		// Status items write themselves (jsonAppender): every field, set and not, and strings
		// that need escaping.
		"status": []statusItem{
			{Cluster: "c1", App: "api", Sync: "Synced", Health: "Healthy", DesiredRevision: "3f2a9c1e", AppliedRevision: "3f2a9c1e",
				HealthyRevision: "0ab1", LastSeen: &whenNanos, Drift: []driftItem{}, Message: "ok", CommitToAppliedMs: 1234,
				PinnedRevision: "0ab1", Rollout: "step 2/3"},
			{Cluster: "c2", App: "web", Drift: nil, Message: "a <b> & \"c\" \\ \n\t\x01 é \u2028 \xff end", CommitToAppliedMs: -1},
			{Cluster: "c3", App: "db", LastSeen: &when, Drift: []driftItem{
				{Kind: "ConfigMap", Name: "x", Type: "Modified"},
				{Group: "apps", Kind: "Deployment", Namespace: "prod", Name: "api", Type: "Missing", Diff: "- a\n+ b <&>", Contested: true},
			}},
		},
		"empty":  []statusItem{},
		"nil":    []statusItem(nil),
		"tallys": []tally{{}},
	} {
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"items": items}); err != nil {
			t.Fatal(err)
		}
		if err := writeJSONItems(&got, items); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.String() != want.String() {
			t.Errorf("%s: got\n%s\nwant\n%s", name, got.String(), want.String())
		}
	}
}

// BenchmarkStatusJSON20k: `flotilla status -o json` of 20,000 rows (10,000 clusters × 2 apps),
// written by the status items themselves and, for comparison, by encoding/json.
func BenchmarkStatusJSON20k(b *testing.B) {
	seen := time.Now()
	items := make([]statusItem, 20000)
	for i := range items {
		items[i] = statusItem{Cluster: fmt.Sprintf("sim-%05d", i/2), App: []string{"api", "web"}[i%2], Sync: "Synced", Health: "Healthy",
			DesiredRevision: "3f2a9c1e5d7b9a0c2e4f6a8b0c1d3e5f7a9b1c3d", AppliedRevision: "3f2a9c1e5d7b9a0c2e4f6a8b0c1d3e5f7a9b1c3d",
			HealthyRevision: "3f2a9c1e5d7b9a0c2e4f6a8b0c1d3e5f7a9b1c3d", LastSeen: &seen, Drift: []driftItem{}, CommitToAppliedMs: 1200}
	}
	asAny := make([]any, len(items))
	for i := range items {
		asAny[i] = items[i]
	}
	for _, bb := range []struct {
		name  string
		items any
	}{{"appender", items}, {"encoding-json", asAny}} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if err := writeJSONItems(io.Discard, bb.items); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/20k-rows")
		})
	}
}

// BenchmarkStatusCommand10kx2: `flotilla status -o json` of 10,000 clusters × 2 apps run in
// the test's process against a real hub (hubtest) over TLS gRPC: the CLI's own work and the
// hub's answer, without starting a process.
func BenchmarkStatusCommand10kx2(b *testing.B) {
	h := startHub(b)
	for i := range 10000 {
		for _, app := range []string{"api", "web"} {
			h.Fleet.RestoreReport(fmt.Sprintf("sim-%05d", i), &fleet.Report{App: app, Sync: fleet.SyncSynced, Health: "Healthy",
				AppliedRevision: "3f2a9c1e5d7b9a0c2e4f6a8b0c1d3e5f7a9b1c3d", Reported: time.Now()})
		}
	}
	ctx := context.Background()
	for b.Loop() {
		if err := h.execute(ctx, io.Discard, io.Discard, []string{"status", "-o", "json"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/status")
}
