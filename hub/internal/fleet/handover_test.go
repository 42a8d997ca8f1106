package fleet

import (
	"testing"
	"time"
)

// TestAlignBeforeDesired: an agent that says hello before the hub rendered its cluster (the
// hub just started, or just took the cluster over from another replica) is aligned when the
// desired state comes: it is sent nothing when it holds that bundle already.
func TestAlignBeforeDesired(t *testing.T) {
	b1, b2 := testBundle(t, "a"), testBundle(t, "b")
	f := New(time.Minute)
	f.Align("c1", []Held{
		{App: "api", Generation: 7, Revision: "r1", Digest: b1.Digest},
		{App: "worker", Generation: 4, Revision: "r0", Digest: b2.Digest},
	})
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: b1})
	f.SetDesired(Desired{Cluster: "c1", App: "worker", Revision: "r1", Bundle: b1})
	snap := f.Snapshot("c1")
	if got := snap["api"].Generation; got != 7 {
		t.Errorf("api: generation %d, want the agent's 7 (same bundle, nothing to send)", got)
	}
	if got := snap["worker"].Generation; got != 5 {
		t.Errorf("worker: generation %d, want 5 (past the agent's 4: a new bundle)", got)
	}
	// The holdings are used once: a later change moves on from the desired state.
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r2", Bundle: b2})
	if got := f.Snapshot("c1")["api"].Generation; got != 8 {
		t.Errorf("api after a change: generation %d, want 8", got)
	}
	// Another cluster is not affected.
	f.SetDesired(Desired{Cluster: "c2", App: "api", Revision: "r1", Bundle: b1})
	if got := f.Snapshot("c2")["api"].Generation; got != 1 {
		t.Errorf("c2: generation %d, want 1", got)
	}
}

// TestRetainDropsWithoutRemoving: the state of a cluster that moved to another replica is
// dropped, and its agent is never told to remove anything on that account.
func TestRetainDropsWithoutRemoving(t *testing.T) {
	b1 := testBundle(t, "a")
	f := New(time.Minute)
	f.SetRemovalGrace(0)
	for _, c := range []string{"mine", "moved"} {
		f.SetDesired(Desired{Cluster: c, App: "api", Revision: "r1", Bundle: b1})
	}
	f.SetTargets(map[string]map[string]bool{"mine": {"api": true}, "moved": {"api": true}})
	f.Align("moved", []Held{{App: "worker", Generation: 3, Digest: "sha256:x"}})
	f.Retain(func(c string) bool { return c == "mine" })

	if len(f.Snapshot("moved")) != 0 {
		t.Error("desired state of a cluster owned elsewhere kept")
	}
	if len(f.Snapshot("mine")) != 1 {
		t.Error("desired state of an owned cluster dropped")
	}
	for _, app := range []string{"api", "worker"} {
		if f.ShouldRemove("moved", app) {
			t.Errorf("ShouldRemove(moved, %s) after Retain: an agent would prune because its cluster moved", app)
		}
	}
	if !f.ShouldRemove("mine", "old") {
		t.Error("ShouldRemove(mine, old) = false: an app no longer targeted must still be removed")
	}
	// Taking the cluster back later starts from a clean slate.
	f.SetDesired(Desired{Cluster: "moved", App: "worker", Revision: "r1", Bundle: b1})
	if got := f.Snapshot("moved")["worker"].Generation; got != 1 {
		t.Errorf("worker on moved: generation %d, want 1 (holdings dropped with the cluster)", got)
	}
}

// TestFirstGenerationFollowsReports: a cluster whose desired state was dropped here while its
// agent stayed connected (it moved away and back between two renders) gets a generation past
// the one its agent reported, not 1, which the agent would take for an old state.
func TestFirstGenerationFollowsReports(t *testing.T) {
	b1, b2 := testBundle(t, "a"), testBundle(t, "b")
	f := New(time.Minute)
	f.Status("c1", Report{App: "api", Sync: SyncSynced, Generation: 9, AppliedDigest: b1.Digest})
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: b1})
	if got := f.Snapshot("c1")["api"].Generation; got != 9 {
		t.Errorf("same bundle as reported: generation %d, want 9", got)
	}
	f.Retain(func(string) bool { return false })
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r2", Bundle: b2})
	if got := f.Snapshot("c1")["api"].Generation; got != 10 {
		t.Errorf("new bundle: generation %d, want 10", got)
	}
}
