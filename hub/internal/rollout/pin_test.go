package rollout

import (
	"testing"
)

// TestCoordinatorPinsDuringARollout: an operator's pin (flotilla rollback --cluster C --to REV)
// applies to its cluster at once, whatever the cluster's step; the rollout does not wait for a
// pinned cluster. Its clear returns the cluster to what the rollout gives it: the revision the
// app had before the rollout while the cluster's step is pending (it does not jump to the new
// revision), the rollout's revision once its step was admitted.
func TestCoordinatorPinsDuringARollout(t *testing.T) {
	e := newEditParts(t)
	e.cycle()
	for _, c := range e.clusters {
		e.applied(c.Name, healthHealthy)
	}
	c1 := gitIn(t, e.repo, "rev-parse", "HEAD")
	writeFiles(t, e.repo, map[string]string{"app/values.yaml": "image: web:2\n"})
	gitIn(t, e.repo, "add", "-A")
	gitIn(t, e.repo, "commit", "-q", "-m", "web 2")
	c2 := gitIn(t, e.repo, "rev-parse", "HEAD")
	e.cycle()
	desired := func(cluster string) (string, bool) {
		d := e.fleet.Snapshot(cluster)["api"]
		return d.Revision, d.Pinned
	}
	want := func(when, cluster, rev string, pinned bool) {
		t.Helper()
		if got, p := desired(cluster); got != rev || p != pinned {
			t.Fatalf("%s: %s desired %s (pinned %v), want %s (pinned %v)", when, cluster, short(got), p, short(rev), pinned)
		}
	}
	want("rollout started", "canary", c2, false)
	want("rollout started", "m1", c1, false)

	// m1's step is pending: a pin applies at once; its clear returns m1 to c1, not c2.
	e.fleet.SetPins(map[string]map[string]string{"api": {"m1": c1}})
	e.cycle()
	want("m1 pinned", "m1", c1, true)
	e.fleet.SetPins(nil)
	e.cycle()
	want("m1's pin cleared while its step is pending", "m1", c1, false)
	if v, _ := e.coord.Get("api"); v.Record.Clusters["m1"].Phase != PhasePending {
		t.Fatalf("m1 %s after its pin was cleared, want Pending", v.Record.Clusters["m1"].Phase)
	}

	// The canary, updating, pinned back to c1: at once, and the rollout does not wait for it.
	e.fleet.SetPins(map[string]map[string]string{"api": {"canary": c1}})
	e.cycle()
	want("canary pinned", "canary", c1, true)
	e.coord.AdvanceAll()
	e.cycle()
	v, _ := e.coord.Get("api")
	if v.Record.Clusters["canary"].Phase != PhasePinned || v.Record.Step != 1 {
		t.Fatalf("canary %s, step %d: want Pinned and the next step active", v.Record.Clusters["canary"].Phase, v.Record.Step+1)
	}
	want("the canary's step passed", "m1", c2, false)
	want("the canary's step passed (maxUnavailable 1)", "m2", c1, false)
	// Its clear: the rollout's revision, its step having been admitted.
	e.fleet.SetPins(nil)
	e.cycle()
	want("canary's pin cleared", "canary", c2, false)
}
