package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// promoteRepo makes a bare repository whose main has api overlays for staging (image
// 2.0.0) and production (none: the base's 1.0.0), and returns its path and main's SHA.
func promoteRepo(t *testing.T) (string, string) {
	t.Helper()
	base := t.TempDir()
	work, bare := filepath.Join(base, "work"), filepath.Join(base, "fleet.git")
	files := map[string]string{
		"base/api/kustomization.yaml":           "resources: [deployment.yaml]\nimages:\n- name: registry.example/api\n  newTag: \"1.0.0\"\n",
		"base/api/deployment.yaml":              "kind: Deployment\n",
		"env/staging/api/kustomization.yaml":    "resources: [../../../base/api]\nimages:\n- name: registry.example/api\n  newTag: \"2.0.0\"\n",
		"env/production/api/kustomization.yaml": "# production\nresources: [../../../base/api]\n",
	}
	for p, c := range files {
		full := filepath.Join(work, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitIn(t, work, "init", "--quiet", "--initial-branch=main")
	gitIn(t, work, "add", "--all")
	gitIn(t, work, "commit", "--quiet", "-m", "api: 2.0.0 on staging")
	gitIn(t, base, "clone", "--quiet", "--bare", work, bare)
	return bare, gitIn(t, bare, "rev-parse", "main")
}

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPromote: refused while staging is unhealthy or not soaked, then a commit on a new
// branch whose production overlay carries staging's image, recorded in audit and history; a
// second promotion of the same revision to that branch is rejected; --push moves main.
func TestPromote(t *testing.T) {
	repo, rev := promoteRepo(t)
	st, err := store.Open(filepath.Join(t.TempDir(), "flotilla.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for name, env := range map[string]string{"staging-1": "staging", "staging-2": "staging", "prod-1": "production"} {
		if err := st.PutCluster(store.Cluster{Name: name, Labels: map[string]string{"env": env}}); err != nil {
			t.Fatal(err)
		}
	}
	fetcher, err := source.New(source.Options{CacheDir: t.TempDir(), AllowLocal: true})
	if err != nil {
		t.Fatal(err)
	}
	fl := fleet.New(time.Minute)
	fl.SetApps([]*fleet.AppInfo{{Name: "api", RepoURL: repo, TargetRevision: "main", Path: "env/{{ .labels.env }}/api",
		Clusters: []string{"prod-1", "staging-1", "staging-2"}}})
	s := New(Config{Fleet: fl, Store: st, Pins: st, Replication: st, Git: fetcher, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	report := func(cluster, health string) {
		fl.Seen(cluster, "test", true)
		fl.Status(cluster, fleet.Report{App: "api", Sync: "Synced", Health: health, AppliedRevision: rev, AppliedDigest: "d", HealthyRevision: rev})
	}
	ctx := context.Background()
	req := &flotillav1.PromoteRequest{App: "api", FromEnv: "staging", ToEnv: "production"}
	refused := func(want string) {
		t.Helper()
		_, err := s.Promote(ctx, req)
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), want) {
			t.Fatalf("Promote = %v, want FailedPrecondition with %q", err, want)
		}
	}

	report("staging-1", "Healthy")
	refused("staging-2 is Stale or disconnected")
	fl.Seen("staging-2", "test", true)
	refused("staging-2 has applied nothing")
	report("staging-2", "Degraded")
	refused("env=staging is not healthy on all its clusters: staging-2 is Degraded at " + rev[:7])
	report("staging-2", "Healthy")
	req.SoakMs = time.Hour.Milliseconds()
	refused("is not soaked: staging-1 Healthy for 0s, staging-2 Healthy for 0s; the soak time is 1h0m0s")

	req.SoakMs = 0
	resp, err := s.Promote(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	branch := "flotilla/promote-api-" + rev[:7]
	if resp.Branch != branch || resp.SourceRevision != rev || strings.Join(resp.VouchedBy, ",") != "staging-1,staging-2" ||
		resp.TargetPath != "env/production/api/kustomization.yaml" || len(resp.Images) != 1 || resp.Images[0].To != "registry.example/api:2.0.0" {
		t.Errorf("response %+v", resp)
	}
	if got := gitIn(t, repo, "rev-parse", branch); got != resp.Commit {
		t.Errorf("branch at %s, want %s", got, resp.Commit)
	}
	if got := gitIn(t, repo, "rev-parse", "main"); got != rev {
		t.Errorf("main moved to %s", got)
	}
	want := "# production\nresources: [../../../base/api]\nimages:\n- name: registry.example/api\n  newTag: \"2.0.0\""
	if got := gitIn(t, repo, "show", branch+":env/production/api/kustomization.yaml"); got != want {
		t.Errorf("production overlay:\n%s\nwant:\n%s", got, want)
	}
	msg := gitIn(t, repo, "log", "-1", "--format=%B", branch)
	for _, w := range []string{"Promote api from staging to production at " + rev[:7], "Source-Revision: " + rev, "Vouched-By: staging-1, staging-2"} {
		if !strings.Contains(msg, w) {
			t.Errorf("commit message lacks %q:\n%s", w, msg)
		}
	}
	audit, err := st.ListAudit(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) == 0 || audit[0].Action != "promote" || !strings.Contains(audit[0].Detail, "revision="+rev) {
		t.Errorf("audit %+v", audit)
	}
	if n := countAction(audit, "promote.refused"); n != 4 {
		t.Errorf("%d refusals audited, want 4", n)
	}
	hist, err := st.ListHistory("api", "prod-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].Revision != resp.Commit || !strings.Contains(hist[0].Result, "pushed to branch "+branch) {
		t.Errorf("history %+v", hist)
	}

	// Again to the same branch: the same commit (within the second) changes nothing; another
	// one on main is no fast-forward of the branch.
	if again, err := s.Promote(ctx, req); (err == nil && again.Commit != resp.Commit) || (err != nil && status.Code(err) != codes.Aborted) {
		t.Errorf("second promotion: %v, %v; want the same commit or Aborted", again, err)
	}
	if got := gitIn(t, repo, "rev-parse", branch); got != resp.Commit {
		t.Errorf("branch moved to %s", got)
	}
	req.Push = true
	resp, err = s.Promote(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := gitIn(t, repo, "rev-parse", "main"); got != resp.Commit || resp.Branch != "main" || !resp.PushedToTarget {
		t.Errorf("main at %s after --push, response %+v", got, resp)
	}
	// Production now carries staging's image: nothing more to promote.
	if _, err := s.Promote(ctx, req); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "nothing to promote") {
		t.Errorf("promotion of what production has: %v", err)
	}
}

func countAction(recs []store.AuditRecord, action string) int {
	n := 0
	for _, r := range recs {
		if r.Action == action {
			n++
		}
	}
	return n
}

// TestPromoteOnAReplicaJudgesTheFleet: a replica that owns no cluster of the source
// environment judges it from what the owners report (not from its own stale view): it
// refuses while one is Degraded or not soaked, promotes once all are Healthy for the soak
// time, and refuses, naming it, while the owner of one does not answer.
func TestPromoteOnAReplicaJudgesTheFleet(t *testing.T) {
	repo, rev := promoteRepo(t)
	g, ca, rs := startReplicas(t, 3, func(cfg *Config) {
		fetcher, err := source.New(source.Options{CacheDir: t.TempDir(), AllowLocal: true})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Git = fetcher
	})
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(dialTCP(t, ca, rs[0].addr, adminOf(t, ca)))
	owned := map[string][]string{}
	for _, c := range []struct{ name, env, owner string }{
		{"prod-1", "production", "hub-a"}, {"staging-1", "staging", "hub-b"}, {"staging-2", "staging", "hub-c"},
	} {
		if _, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: c.name, Labels: map[string]string{"env": c.env}}); err != nil {
			t.Fatal(err)
		}
		g.setOwner(c.name, c.owner)
		owned[c.owner] = append(owned[c.owner], c.name)
	}
	for _, r := range rs {
		r.fleet.SetApps([]*fleet.AppInfo{{
			Name: "api", RepoURL: repo, TargetRevision: "main", Path: "env/{{ .labels.env }}/api", Clusters: owned[r.name],
			Destination: apps.Destination{Clusters: []string{"prod-1", "staging-1", "staging-2"}},
		}})
	}
	report := func(r *replicaUnderTest, cluster, health string, healthySince time.Time) {
		r.fleet.Seen(cluster, "test", true)
		r.fleet.RestoreReport(cluster, &fleet.Report{App: "api", Sync: "Synced", Health: health, AppliedRevision: rev, AppliedDigest: "d",
			HealthyRevision: rev, HealthySince: healthySince})
	}
	soaked := time.Now().Add(-time.Hour)
	report(rs[1], "staging-1", "Healthy", soaked)
	report(rs[2], "staging-2", "Degraded", time.Time{})
	// hub-a's own, stale view of staging-1, which the owner's report overrides.
	report(rs[0], "staging-1", "Degraded", time.Time{})

	req := &flotillav1.PromoteRequest{App: "api", FromEnv: "staging", ToEnv: "production", SoakMs: (10 * time.Minute).Milliseconds()}
	_, err := op.Promote(ctx, req)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "staging-2 is Degraded at "+rev[:7]) || strings.Contains(err.Error(), "staging-1") {
		t.Fatalf("promote on hub-a with staging-2 Degraded at hub-c: %v, want FailedPrecondition naming staging-2 only", err)
	}
	report(rs[2], "staging-2", "Healthy", time.Now().Add(-time.Minute))
	_, err = op.Promote(ctx, req)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not soaked: staging-2 Healthy for 1m0s;") {
		t.Fatalf("promote on hub-a with staging-2 Healthy for a minute: %v, want FailedPrecondition: staging-2 not soaked", err)
	}
	report(rs[2], "staging-2", "Healthy", soaked)
	resp, err := op.Promote(ctx, req)
	if err != nil {
		t.Fatalf("promote on hub-a, which owns no staging cluster, with staging Healthy and soaked: %v", err)
	}
	if resp.SourceRevision != rev || !slices.Equal(resp.VouchedBy, []string{"staging-1", "staging-2"}) ||
		resp.TargetPath != "env/production/api/kustomization.yaml" {
		t.Errorf("promotion %+v, want %s vouched by staging-1 and staging-2", resp, rev[:7])
	}
	if got := gitIn(t, repo, "rev-parse", resp.Branch); got != resp.Commit {
		t.Errorf("branch %s at %s, want %s", resp.Branch, got, resp.Commit)
	}

	// hub-c, owner of staging-2, stops answering: hub-a cannot see staging-2 and refuses, even
	// though its own last view of staging-2 would vouch.
	report(rs[0], "staging-2", "Healthy", soaked)
	rs[2].stop()
	req.Branch = "flotilla/again"
	_, err = op.Promote(ctx, req)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "hub replicas hub-c did not answer") {
		t.Fatalf("promote on hub-a with hub-c down: %v, want Unavailable naming hub-c", err)
	}
	if out := gitIn(t, repo, "branch", "--list", "flotilla/again"); out != "" {
		t.Errorf("a refused promotion pushed %q", out)
	}
	audit, err := rs[0].store.ListAudit(0)
	if err != nil {
		t.Fatal(err)
	}
	if n := countAction(audit, "promote.refused"); n != 3 || !strings.Contains(audit[0].Detail, "hub-c") {
		t.Errorf("audit of hub-a: %d refusals, latest %+v; want 3, the latest naming hub-c", n, audit[0])
	}
}
