package fleet

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
)

// holdGate is a RolloutGate that holds the clusters it names at a revision (the decisions are
// rollout.Coordinator's, tested there; this checks what the reconciler does with them).
type holdGate struct {
	mu    sync.Mutex
	at    string
	def   *apps.Application // the definition held clusters render with (nil: the app's)
	held  map[string]bool
	asked map[string]string // cluster → the commit it was asked about
}

func (g *holdGate) Revision(_ *apps.Application, c ClusterVars, commit string) (string, *apps.Application, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked[c.Name] = commit
	if g.held[c.Name] {
		return g.at, g.def, true
	}
	return "", nil, false
}

// TestRolloutGateHoldsAClusterAtItsRevision: a cluster a rollout holds back is rendered at the
// revision it runs, fetched like a pin, with nothing new to send (its generation does not
// move); the other cluster gets Git's new commit; an operator's pin is asked before the gate.
func TestRolloutGateHoldsAClusterAtItsRevision(t *testing.T) {
	repo := newTestRepo(t)
	cm := func(v string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {v: \"" + v + "\"}\n"
	}
	repo.commit("v1", map[string]string{"app/kustomization.yaml": "resources:\n- cm.yaml\n", "app/cm.yaml": cm("1")})
	rev1 := head(t, repo)
	appsDir := t.TempDir()
	app := `apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: web}
spec:
  source: {repoURL: "` + repo.dir + `", targetRevision: main, path: app}
  destination: {clusters: [canary, main-1], namespace: web}
  rollout: {steps: [{clusters: [canary]}, {}]}
`
	if err := os.WriteFile(filepath.Join(appsDir, "web.yaml"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	f, r := newTestReconciler(t, appsDir, []ClusterVars{{Name: "canary"}, {Name: "main-1"}})
	gate := &holdGate{held: map[string]bool{}, asked: map[string]string{}}
	r.cfg.Rollouts = gate
	ctx := context.Background()
	r.Round(ctx)
	gen := f.Snapshot("main-1")["web"].Generation

	repo.commit("v2", map[string]string{"app/cm.yaml": cm("2")})
	rev2 := head(t, repo)
	gate.mu.Lock()
	gate.at, gate.held["main-1"] = rev1, true
	gate.mu.Unlock()
	r.Round(ctx)
	if d := f.Snapshot("canary")["web"]; d.Revision != rev2 {
		t.Errorf("canary desired %s, want the new commit %s", d.Revision, rev2)
	}
	d := f.Snapshot("main-1")["web"]
	if d.Revision != rev1 || d.Generation != gen || d.Pinned {
		t.Errorf("main-1 desired %s generation %d pinned %v; want %s, generation %d (nothing to send), not pinned", d.Revision, d.Generation, d.Pinned, rev1, gen)
	}
	if gate.asked["main-1"] != rev2 {
		t.Errorf("the gate was asked about %q for main-1, want %s", gate.asked["main-1"], rev2)
	}

	// An operator's pin wins: the gate is not asked.
	delete(gate.asked, "canary")
	f.SetPins(map[string]map[string]string{"web": {"canary": rev1}})
	r.Round(ctx)
	if _, asked := gate.asked["canary"]; asked || f.Snapshot("canary")["web"].Revision != rev1 {
		t.Errorf("pinned canary: gate asked %v, desired %s", asked, f.Snapshot("canary")["web"].Revision)
	}
}

func head(t *testing.T, repo *benchRepo) string {
	t.Helper()
	out, err := exec.Command("git", "-C", repo.dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
