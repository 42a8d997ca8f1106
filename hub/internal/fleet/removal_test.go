package fleet

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// deliveredFleet is a fleet whose cluster c1 was sent and acknowledged apps at generation 5.
func deliveredFleet(t *testing.T, now *time.Time, apps ...string) *Fleet {
	t.Helper()
	f := New(time.Hour)
	f.now = func() time.Time { return *now }
	f.SetRemovalGrace(10 * time.Minute)
	b := testBundle(t, "a")
	targets := map[string]bool{}
	for _, a := range apps {
		f.SetDesired(Desired{Cluster: "c1", App: a, Revision: "r1", Bundle: b, Generation: 5})
		f.Status("c1", Report{App: a, Sync: SyncSynced, Generation: 5, AppliedRevision: "r1", AppliedDigest: b.Digest})
		targets[a] = true
	}
	f.Seen("c1", "v1", true)
	f.GuardRemoval(apps)
	f.SetTargets(map[string]map[string]bool{"c1": targets})
	return f
}

func rowOf(f *Fleet, cluster, app string) (Row, bool) {
	for _, r := range f.Rows() {
		if r.Cluster == cluster && r.App == app {
			return r, true
		}
	}
	return Row{}, false
}

// TestRemovalWaitsForGrace: an app gone from the apps source is Removing on its cluster, with
// the moment of deletion, and is removed only once its grace is over.
func TestRemovalWaitsForGrace(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f := deliveredFleet(t, &now, "api", "web", "db")
	if held := f.GuardRemoval([]string{"api", "web"}); held != nil {
		t.Fatalf("one app of three gone was held: %v", held)
	}
	f.SetTargets(map[string]map[string]bool{"c1": {"api": true, "web": true}})
	if _, ok := f.Snapshot("c1")["db"]; ok {
		t.Fatal("a removed app is still desired")
	}
	if f.ShouldRemove("c1", "db") {
		t.Fatal("removed at once, without a grace")
	}
	r, ok := rowOf(f, "c1", "db")
	if !ok || r.Sync != SyncRemoving || !strings.Contains(r.Message, "2026-01-01T12:10:00Z") {
		t.Fatalf("row during the grace = %+v, want Removing, deleted at 12:10", r)
	}
	now = now.Add(9 * time.Minute)
	if f.ShouldRemove("c1", "db") {
		t.Fatal("removed before the grace was over")
	}
	now = now.Add(time.Minute)
	if !f.ShouldRemove("c1", "db") {
		t.Fatal("not removed once the grace was over")
	}
	if f.ShouldRemove("c1", "api") {
		t.Fatal("an app still targeted would be removed")
	}
	f.Forget("c1", "db")
	if _, ok := rowOf(f, "c1", "db"); ok {
		t.Fatal("a removed app still has a row")
	}
}

// TestReturnWithinGraceSendsNothing: an Application that comes back within the grace cancels
// the removal, and its agent, which holds the same bundle, is sent nothing (same generation).
func TestReturnWithinGraceSendsNothing(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f := deliveredFleet(t, &now, "api", "web", "db")
	f.GuardRemoval([]string{"api", "web"})
	f.SetTargets(map[string]map[string]bool{"c1": {"api": true, "web": true}})
	now = now.Add(5 * time.Minute)
	f.GuardRemoval([]string{"api", "web", "db"})
	f.SetDesired(Desired{Cluster: "c1", App: "db", Revision: "r1", Bundle: testBundle(t, "a")})
	f.SetTargets(map[string]map[string]bool{"c1": {"api": true, "web": true, "db": true}})
	if got := f.Snapshot("c1")["db"].Generation; got != 5 {
		t.Fatalf("generation of the returned app = %d, want the agent's 5 (nothing to send)", got)
	}
	now = now.Add(time.Hour)
	if f.ShouldRemove("c1", "db") {
		t.Fatal("a returned app is still removed")
	}
	if r, _ := rowOf(f, "c1", "db"); r.Sync == SyncRemoving {
		t.Fatalf("a returned app still shows Removing: %+v", r)
	}
	// Gone again later: a new grace, from then.
	f.GuardRemoval([]string{"api", "web"})
	f.SetTargets(map[string]map[string]bool{"c1": {"api": true, "web": true}})
	if f.ShouldRemove("c1", "db") {
		t.Fatal("the second removal reused the first one's grace")
	}
}

// TestMassRemovalHeld: a load that drops more than half of the apps, or all of them, removes
// nothing and notifies once, until an operator confirms or the apps come back.
func TestMassRemovalHeld(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f := deliveredFleet(t, &now, "a1", "a2", "a3", "a4")
	var notified []RemovalHold
	f.OnRemovalHold(func(h RemovalHold) { notified = append(notified, h) })

	for range 2 { // the same hold, seen twice, notifies once
		if held := f.GuardRemoval([]string{"a1"}); !slices.Equal(held, []string{"a2", "a3", "a4"}) {
			t.Fatalf("held = %v, want a2 a3 a4", held)
		}
		f.SetTargets(map[string]map[string]bool{"c1": {"a1": true}})
	}
	if len(notified) != 1 || notified[0].Total != 4 {
		t.Fatalf("notifications = %+v, want one hold of 3 of 4", notified)
	}
	if h, ok := f.RemovalHeld(); !ok || len(h.Apps) != 3 {
		t.Fatalf("RemovalHeld = %+v %v", h, ok)
	}
	now = now.Add(time.Hour)
	for _, a := range []string{"a2", "a3", "a4"} {
		if f.ShouldRemove("c1", a) || f.Snapshot("c1")[a] == nil {
			t.Fatalf("%s: a held removal went ahead", a)
		}
	}

	// The apps come back: the hold ends without a word from anyone.
	if held := f.GuardRemoval([]string{"a1", "a2", "a3", "a4"}); held != nil {
		t.Fatalf("held after the apps came back: %v", held)
	}
	f.SetTargets(map[string]map[string]bool{"c1": {"a1": true, "a2": true, "a3": true, "a4": true}})
	if _, ok := f.RemovalHeld(); ok {
		t.Fatal("the hold outlived the apps' return")
	}

	// Gone again, then confirmed: the removal goes ahead, through the grace.
	f.GuardRemoval([]string{"a1"})
	f.SetTargets(map[string]map[string]bool{"c1": {"a1": true}})
	h, _ := f.RemovalHeld()
	f.ConfirmRemoval(h.Apps)
	if held := f.GuardRemoval([]string{"a1"}); held != nil {
		t.Fatalf("held after confirmation: %v", held)
	}
	f.SetTargets(map[string]map[string]bool{"c1": {"a1": true}})
	if f.ShouldRemove("c1", "a2") {
		t.Fatal("a confirmed removal skipped the grace")
	}
	now = now.Add(10 * time.Minute)
	if !f.ShouldRemove("c1", "a2") {
		t.Fatal("a confirmed removal did not go ahead after the grace")
	}
}

// TestMassRemovalThreshold: more than half, or all, is held; half or fewer is not.
func TestMassRemovalThreshold(t *testing.T) {
	tests := []struct {
		name         string
		before, load []string
		held         bool
	}{
		{"the only app gone", []string{"a"}, nil, true},
		{"every app gone", []string{"a", "b", "c"}, []string{}, true},
		{"half gone", []string{"a", "b"}, []string{"a"}, false},
		{"three of five gone", []string{"a", "b", "c", "d", "e"}, []string{"a", "b"}, true},
		{"two of five gone, one new", []string{"a", "b", "c", "d", "e"}, []string{"a", "b", "c", "f"}, false},
		{"first load", nil, []string{"a"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(time.Minute)
			f.GuardRemoval(tt.before)
			if held := f.GuardRemoval(tt.load); (held != nil) != tt.held {
				t.Fatalf("held = %v, want held %v", held, tt.held)
			}
		})
	}
}

// TestMassRemovalHeldAfterRestart: a hub that restarts with an empty apps source (a wrong
// --apps-path) counts against the apps its restored reports name, and holds.
func TestMassRemovalHeldAfterRestart(t *testing.T) {
	f := New(time.Minute)
	f.SetRemovalGrace(0)
	for _, a := range []string{"api", "web"} {
		f.RestoreReport("c1", &Report{App: a, Sync: SyncSynced, Generation: 3})
	}
	if held := f.GuardRemoval(nil); len(held) != 2 {
		t.Fatalf("held = %v, want api and web", held)
	}
	f.SetTargets(map[string]map[string]bool{"c1": {}})
	for _, a := range []string{"api", "web"} {
		if f.ShouldRemove("c1", a) {
			t.Fatalf("%s removed after a restart with an empty apps source", a)
		}
	}
}
