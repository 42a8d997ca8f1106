package rollout

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/charts"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/render"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// editParts are a real hub's parts for an Application edit: a Git repository holding a chart,
// an apps directory, the fleet, the store, the reconciler and the coordinator.
type editParts struct {
	*hubParts
	repo, appsDir string
	rec           *fleet.Reconciler
	coord         *Coordinator
	// charts fetches charts from Helm and OCI repositories (nil: none).
	charts charts.Source
}

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.com"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// editApp is the web Application: the chart at app/ with its level value, rolled out to the
// canary first. extra is more of the spec.
func editApp(repo, level, extra string) string {
	return `apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: api}
spec:
  source:
    repoURL: "` + repo + `"
    targetRevision: main
    path: app
    helm: {valuesObject: {level: ` + level + `}}
  destination: {clusters: [canary, m1, m2], namespace: web}
  syncPolicy: {automated: {prune: true}}
  rollout:
    steps:
    - clusters: {matchLabels: {ring: canary}}
    - {maxUnavailable: 1` + extra + `}
`
}

func newEditParts(t *testing.T) *editParts {
	t.Helper()
	e := &editParts{hubParts: newHubParts(t, apps.FailureHalt), repo: filepath.Join(t.TempDir(), "deploy"), appsDir: t.TempDir()}
	if err := os.MkdirAll(e.repo, 0o755); err != nil {
		t.Fatal(err)
	}
	gitIn(t, e.repo, "init", "-q", "-b", "main")
	writeFiles(t, e.repo, map[string]string{
		"app/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"app/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata:\n" +
			"  LEVEL: {{ .Values.level | quote }}\n  IMAGE: {{ .Values.image | default \"web:1\" | quote }}\n",
	})
	gitIn(t, e.repo, "add", "-A")
	gitIn(t, e.repo, "commit", "-q", "-m", "web")
	e.edit(t, "info", "")
	e.start(t)
	return e
}

// start builds a reconciler and a coordinator (again: a hub restart) over the same fleet and store.
func (e *editParts) start(t *testing.T) {
	t.Helper()
	fetcher, err := source.New(source.Options{CacheDir: t.TempDir(), AllowLocal: true})
	if err != nil {
		t.Fatal(err)
	}
	e.coord = e.coordinator()
	e.rec = fleet.NewReconciler(fleet.ReconcilerConfig{
		AppsDir: e.appsDir, Fetcher: fetcher, Renderer: render.New(render.Options{}), Cache: render.NewCache(0),
		Clusters: func() ([]fleet.ClusterVars, error) { return e.clusters, nil }, Rollouts: e.coord, Charts: e.charts,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, e.fleet)
}

func (e *editParts) edit(t *testing.T, level, extra string) {
	t.Helper()
	writeFiles(t, e.appsDir, map[string]string{"api.yaml": editApp(e.repo, level, extra)})
}

// cycle is a round, the coordinator's advance, and the round it asks for.
func (e *editParts) cycle() {
	e.rec.Round(context.Background())
	e.coord.AdvanceAll()
	e.rec.Round(context.Background())
}

// level is the LEVEL of the ConfigMap desired on cluster, and its desired state.
func (e *editParts) level(t *testing.T, cluster string) (string, *fleet.Desired) {
	t.Helper()
	return e.data(t, cluster, "LEVEL")
}

// data is the value of key in the ConfigMap desired on cluster, and its desired state.
func (e *editParts) data(t *testing.T, cluster, key string) (string, *fleet.Desired) {
	t.Helper()
	d := e.fleet.Snapshot(cluster)["api"]
	if d == nil {
		t.Fatalf("%s: no desired state", cluster)
	}
	objs, err := bundle.Decode(d.Bundle.Data)
	if err != nil || len(objs) != 1 {
		t.Fatalf("%s: %d objects, %v", cluster, len(objs), err)
	}
	return objs[0].Object["data"].(map[string]any)[key].(string), d
}

// TestCoordinatorRollsOutAnApplicationEdit: an edit of a helm value in the Application (no new
// commit) starts a rollout of its own; the canary gets the new definition's render, the main
// clusters keep exactly what they had (the previous definition rendered at the same commit:
// their desired state does not change, not even its generation), also after a hub restart
// (the definition is read back from the record in the store); once the canary is healthy the
// next clusters get the edit. An edit of spec.rollout alone starts nothing.
func TestCoordinatorRollsOutAnApplicationEdit(t *testing.T) {
	e := newEditParts(t)
	e.cycle()
	for _, c := range e.clusters {
		if lvl, _ := e.level(t, c.Name); lvl != "info" {
			t.Fatalf("%s: baseline level %s", c.Name, lvl)
		}
		e.applied(c.Name, healthHealthy)
	}
	base, _ := e.coord.Get("api")
	_, m1Before := e.level(t, "m1")

	e.edit(t, "debug", "")
	e.cycle()
	v, _ := e.coord.Get("api")
	if v.Record.State != StateRunning || !v.Record.Edit() || v.Record.Revision != base.Record.Revision || v.Record.ID == base.Record.ID {
		t.Fatalf("after the edit: %+v (baseline %s)", v.Record, base.Record.ID)
	}
	if lvl, _ := e.level(t, "canary"); lvl != "debug" {
		t.Errorf("canary level %s, want the edit's debug", lvl)
	}
	held := func(when string) {
		t.Helper()
		for _, m := range []string{"m1", "m2"} {
			lvl, d := e.level(t, m)
			if m == "m1" && (d.Generation != m1Before.Generation || d.Digest() != m1Before.Digest() || d.Spec != m1Before.Spec) {
				t.Errorf("%s: m1's desired state changed: generation %d→%d, digest %s→%s", when, m1Before.Generation, d.Generation, m1Before.Digest(), d.Digest())
			}
			if lvl != "info" {
				t.Errorf("%s: %s level %s, want info (held at its definition)", when, m, lvl)
			}
		}
	}
	held("after the edit")
	if got := e.fleet.Rows()[1].Message; got != "Waiting for rollout step 2 of "+v.Record.ID+" (an Application edit)" {
		t.Errorf("m1's status message %q", got)
	}

	// A hub restart: a new reconciler and coordinator read the record (and the definition it
	// keeps) back from the store.
	e.start(t)
	e.cycle()
	held("after a restart")
	if v2, _ := e.coord.Get("api"); v2.Record.ID != v.Record.ID || v2.Record.State != StateRunning {
		t.Fatalf("after a restart: %s %s", v2.Record.ID, v2.Record.State)
	}
	// The canary reported Healthy on the old definition before: it is not on the edit until
	// its agent holds the edit's render.
	e.coord.AdvanceAll()
	if v2, _ := e.coord.Get("api"); v2.Record.Clusters["canary"].Phase != PhaseUpdating {
		t.Fatalf("canary %s before it applied the edit", v2.Record.Clusters["canary"].Phase)
	}
	e.applied("canary", healthHealthy)
	e.cycle()
	if lvl, _ := e.level(t, "m1"); lvl != "debug" {
		t.Errorf("m1 level %s after the canary's step, want debug", lvl)
	}
	if lvl, _ := e.level(t, "m2"); lvl != "info" {
		t.Errorf("m2 level %s: maxUnavailable 1 admits m1 alone", lvl)
	}
	e.applied("m1", healthHealthy)
	e.cycle()
	e.applied("m2", healthHealthy)
	e.cycle()
	done, _ := e.coord.Get("api")
	if done.Record.State != StateCompleted {
		t.Fatalf("state %s", done.Record.State)
	}
	started := strings.Join(e.notified, " ")
	if !strings.HasPrefix(started, "rollout-started ") || !strings.HasSuffix(started, "rollout-completed") {
		t.Errorf("notified %s", started)
	}

	// spec.rollout edited alone: nothing to roll out.
	e.edit(t, "debug", ", soak: 1s")
	e.cycle()
	if after, _ := e.coord.Get("api"); after.Record.ID != done.Record.ID || after.Record.State != StateCompleted {
		t.Errorf("an edit of spec.rollout started %s (%s)", after.Record.ID, after.Record.State)
	}

	// Without spec.rollout an edit goes everywhere at once; spec.rollout added back makes the
	// definition it finds the baseline: no rollout starts.
	without, _, _ := strings.Cut(editApp(e.repo, "trace", ""), "  rollout:")
	writeFiles(t, e.appsDir, map[string]string{"api.yaml": without})
	e.cycle()
	for _, c := range e.clusters {
		if lvl, _ := e.level(t, c.Name); lvl != "trace" {
			t.Errorf("without spec.rollout: %s level %s, want trace at once", c.Name, lvl)
		}
	}
	e.edit(t, "trace", "")
	e.cycle()
	if v, _ := e.coord.Get("api"); v.Record.State != StateCompleted || v.Record.Edit() {
		t.Errorf("spec.rollout added back: %s %s, want the definition as the baseline", v.Record.ID, v.Record.State)
	}
}
