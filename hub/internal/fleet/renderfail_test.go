package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/render"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
)

// row returns the status row of app on cluster, or nil.
func row(f *Fleet, cluster, app string) *Row {
	for _, r := range f.Rows() {
		if r.Cluster == cluster && r.App == app {
			return &r
		}
	}
	return nil
}

// TestRenderFailedRows: a render failure shows as a RenderFailed row whether or not anything
// was ever desired or reported there, with the health of the last good state while its agent
// reports it and Unknown otherwise, survives the agent's reports, is recorded (and persisted
// through OnReport) once however often it recurs, and goes with the next good render or when
// the app no longer targets the cluster.
func TestRenderFailedRows(t *testing.T) {
	f := New(time.Minute)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f.now = func() time.Time { return now }
	var reports []Report
	f.OnReport(func(_ string, r *Report) { reports = append(reports, *r) })
	broken := errors.New(`evil/passwd.yaml: symlink with an absolute target`)
	f.Seen("c1", "v1", true)

	// Nothing ever desired or reported: a row all the same.
	f.SetRenderError("c1", "evil", "0123456789abcdef", broken)
	f.SetRenderError("c1", "evil", "0123456789abcdef", broken)
	r := row(f, "c1", "evil")
	if r == nil || r.Sync != SyncRenderFailed || r.Health != HealthUnknown ||
		r.Message != "RenderFailed at 0123456789ab: "+broken.Error()+" (nothing applied)" {
		t.Fatalf("row %+v", r)
	}
	if len(reports) != 1 || reports[0].RenderError != broken.Error() || reports[0].RenderRevision != "0123456789abcdef" {
		t.Fatalf("reports %+v, want one with the failure", reports)
	}

	// A last good state, applied and Healthy: the health stays, the failure is the message.
	b := testBundle(t, "api")
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: b})
	f.Ack("c1", "api", 1, "r1", b.Digest)
	f.Status("c1", Report{App: "api", Sync: SyncSynced, Health: healthHealthy, Generation: 1, AppliedRevision: "r1", AppliedDigest: b.Digest, HealthyRevision: "r1"})
	f.SetRenderError("c1", "api", "r2", broken)
	f.Status("c1", Report{App: "api", Sync: SyncSynced, Health: healthHealthy, Generation: 1, AppliedRevision: "r1", AppliedDigest: b.Digest, HealthyRevision: "r1"})
	r = row(f, "c1", "api")
	if r == nil || r.Sync != SyncRenderFailed || r.Health != healthHealthy || r.DesiredRevision != "r1" || r.AppliedRevision != "r1" ||
		!strings.HasPrefix(r.Message, "RenderFailed at r2: "+broken.Error()+" (the last good state, r1, stays desired)") {
		t.Fatalf("row with a last good state %+v", r)
	}

	// A Stale cluster: health Unknown, the failure first, then the silence.
	now = now.Add(2 * time.Minute)
	r = row(f, "c1", "api")
	if r.Sync != SyncRenderFailed || r.Health != HealthUnknown || !strings.Contains(r.Message, "stays desired); cluster Stale: silent for 2m0s") {
		t.Fatalf("row on a Stale cluster %+v", r)
	}
	f.Seen("c1", "v1", true)

	// The next good render clears it, once.
	n := len(reports)
	f.SetRenderError("c1", "api", "r3", nil)
	f.SetRenderError("c1", "api", "r3", nil)
	if r = row(f, "c1", "api"); r.Sync != SyncSynced || r.Message != "" {
		t.Fatalf("row after a good render %+v", r)
	}
	if len(reports) != n+1 || reports[n].RenderError != "" {
		t.Fatalf("reports after a good render %+v, want one more without the failure", reports[n:])
	}

	// The app no longer targets the cluster: the row the failure made goes away.
	f.SetRenderError("c1", "api", "r4", broken)
	f.SetTargets(map[string]map[string]bool{"c1": {"api": true}})
	if r = row(f, "c1", "evil"); r != nil {
		t.Errorf("row of an app that no longer targets the cluster: %+v", r)
	}
	if r = row(f, "c1", "api"); r == nil || r.Sync != SyncRenderFailed {
		t.Errorf("row of a targeted app %+v, want RenderFailed", r)
	}
	f.RemoveDesired("c1", "api")
	f.SetTargets(map[string]map[string]bool{"c1": {}})
	if r = row(f, "c1", "api"); r == nil || r.Sync == SyncRenderFailed {
		t.Errorf("row of an app the agent still holds after it stopped targeting the cluster %+v, want its report without the failure", r)
	}
}

// TestRenderFailedFromTheFirstRound: an app whose render fails for one of its clusters from the
// first round on has a RenderFailed row there naming the file at fault, next to the Unknown row
// of the cluster it renders for; a targeted app whose repository cannot be fetched has a row
// too. Fixing the overlay turns the row into a desired state.
func TestRenderFailedFromTheFirstRound(t *testing.T) {
	repo := newTestRepo(t)
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
	repo.commit("overlays", map[string]string{
		"env/staging/kustomization.yaml":    "resources:\n- cm.yaml\n",
		"env/staging/cm.yaml":               cm,
		"env/production/kustomization.yaml": "resources:\n- cm.yaml\n- missing.yaml\n",
		"env/production/cm.yaml":            cm,
	})
	appsDir := t.TempDir()
	writeApp := func(name, repoURL, path string) {
		t.Helper()
		app := fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: %s}
spec:
  source: {repoURL: %q, targetRevision: main, path: %q}
  destination: {clusterSelector: {matchExpressions: [{key: env, operator: Exists}]}, namespace: web}
`, name, repoURL, path)
		if err := os.WriteFile(filepath.Join(appsDir, name+".yaml"), []byte(app), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeApp("web", repo.dir, "env/{{ .labels.env }}")
	writeApp("gone", filepath.Join(t.TempDir(), "no-such-repo"), "x")
	f, r := newTestReconciler(t, appsDir, []ClusterVars{{Name: "staging", Labels: map[string]string{"env": "staging"}},
		{Name: "production", Labels: map[string]string{"env": "production"}}})
	ctx := context.Background()
	r.Round(ctx)

	prod := row(f, "production", "web")
	if prod != nil {
		t.Logf("production: %s", prod.Message)
	}
	if prod == nil || prod.Sync != SyncRenderFailed || !strings.Contains(prod.Message, "missing.yaml") ||
		!strings.HasPrefix(prod.Message, "RenderFailed at ") || !strings.Contains(prod.Message, "agent has never connected") {
		t.Fatalf("production row %+v, want RenderFailed naming missing.yaml", prod)
	}
	if st := row(f, "staging", "web"); st == nil || st.Sync != SyncUnknown || st.DesiredRevision == "" {
		t.Fatalf("staging row %+v, want its desired revision", st)
	}
	for _, c := range []string{"staging", "production"} {
		if g := row(f, c, "gone"); g == nil || g.Sync != SyncUnknown || g.Message != "agent has never connected" {
			t.Errorf("%s: row of the app whose repository cannot be fetched %+v", c, g)
		}
	}
	f.Seen("production", "v1", true)
	if g := row(f, "production", "gone"); g == nil || g.Message != "not rendered yet (see flotilla apps)" {
		t.Errorf("row of the app whose repository cannot be fetched %+v", g)
	}

	repo.commit("production: fixed", map[string]string{"env/production/kustomization.yaml": "resources:\n- cm.yaml\n"})
	r.Round(ctx)
	if prod = row(f, "production", "web"); prod == nil || prod.Sync == SyncRenderFailed || prod.DesiredRevision == "" {
		t.Fatalf("production row after the fix %+v", prod)
	}
}

// newTestRepo is an empty Git repository on branch main.
func newTestRepo(t *testing.T) *benchRepo {
	t.Helper()
	repo := &benchRepo{tb: t, dir: filepath.Join(t.TempDir(), "deploy")}
	if err := os.MkdirAll(repo.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	repo.git("init", "-q", "-b", "main")
	return repo
}

// newTestReconciler is a reconciler of the Applications in appsDir for clusters, with a real
// fetcher (local repositories allowed) and renderer, feeding a new fleet.
func newTestReconciler(t *testing.T, appsDir string, clusters []ClusterVars) (*Fleet, *Reconciler) {
	t.Helper()
	fetcher, err := source.New(source.Options{CacheDir: t.TempDir(), AllowLocal: true})
	if err != nil {
		t.Fatal(err)
	}
	f := New(time.Minute)
	return f, NewReconciler(ReconcilerConfig{
		AppsDir: appsDir, Fetcher: fetcher, Renderer: render.New(render.Options{}), Cache: render.NewCache(0),
		Clusters: func() ([]ClusterVars, error) { return clusters, nil },
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, f)
}
