package notify

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// fakeFleet is a fleetView whose answers the test sets.
type fakeFleet struct {
	mu       sync.Mutex
	desired  map[string]map[string]*fleet.Desired
	presence map[string]string
	apps     []fleet.AppInfo
}

func (f *fakeFleet) Snapshot(cluster string) map[string]*fleet.Desired {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.desired[cluster]
}

func (f *fakeFleet) Presence(cluster string) (fleet.Presence, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	state := f.presence[cluster]
	if state == "" {
		state = fleet.StateNeverSeen
	}
	return fleet.Presence{Connected: state == fleet.StateConnected, LastSeen: time.Now().Add(-30 * time.Second)}, state
}

func (f *fakeFleet) Apps() []fleet.AppInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.apps)
}

func (f *fakeFleet) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// collector keeps what a watcher emits.
type collector struct {
	mu  sync.Mutex
	got []Notification
}

func (c *collector) emit(n Notification) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, n)
}

func (c *collector) events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Event
	for _, n := range c.got {
		out = append(out, n.Event)
	}
	return out
}

func newTestWatcher(f *fakeFleet, clusters ...string) (*Watcher, *collector) {
	c := &collector{}
	w := NewWatcher(f, func() ([]string, error) { return clusters, nil }, c.emit, nil)
	return w, c
}

// TestWatcherPresenceAndRepositories: a cluster going Connected → Stale and a repository going
// Current → Stale are each notified once, however many polls see them so; NeverConnected →
// Stale and a first sight of Stale are not transitions from a known good state.
func TestWatcherPresenceAndRepositories(t *testing.T) {
	f := &fakeFleet{presence: map[string]string{"staging": fleet.StateConnected, "production": fleet.StateNeverSeen},
		apps: []fleet.AppInfo{{Name: "api", RepoURL: "https://user:s3cret@git.example/fleet.git", RepoState: fleet.RepoCurrent},
			{Name: "worker", RepoState: fleet.RepoStale}, {Error: "broken manifest"}}}
	w, c := newTestWatcher(f, "staging", "production")
	w.Poll()
	w.Poll()
	if got := c.events(); len(got) != 0 {
		t.Fatalf("steady state notified %v", got)
	}
	f.set(func() {
		f.presence["staging"] = fleet.StateStale
		f.presence["production"] = fleet.StateStale
		f.apps[0].RepoState = fleet.RepoStale
		f.apps[0].Revision = "r1"
	})
	for range 5 {
		w.Poll()
	}
	if got, want := c.events(), []Event{ClusterStale, RepoStale}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if n := c.got[0]; n.Cluster != "staging" || n.App != "" {
		t.Errorf("cluster-stale for %q/%q, want staging", n.Cluster, n.App)
	}
	if n := c.got[1]; n.App != "api" || n.Summary != "api: repository https://git.example/fleet.git cannot be fetched; the last good state is still served" {
		t.Errorf("repository-stale %+v", n)
	}
	// Back to good, then bad again: a new event each time it goes bad.
	f.set(func() { f.presence["staging"] = fleet.StateConnected; f.apps[0].RepoState = fleet.RepoCurrent })
	w.Poll()
	f.set(func() { f.presence["staging"] = fleet.StateStale; f.apps[0].RepoState = fleet.RepoStale })
	w.Poll()
	w.Poll()
	if got := c.events(); len(got) != 4 {
		t.Fatalf("events %v, want 4", got)
	}
}

// TestWatcherReport: the commit comes from the fleet's desired state; Seed keeps a restarted
// hub from announcing what it already knew.
func TestWatcherReport(t *testing.T) {
	f := &fakeFleet{desired: map[string]map[string]*fleet.Desired{
		"staging":    {"api": {Revision: "r2", Author: "Ada <ada@example.com>", Message: "api: 2.0.0\n\nlonger text"}},
		"production": {"api": {Revision: "r2"}},
	}}
	w, c := newTestWatcher(f, "staging")
	w.Seed("staging", ptr(applied("r1")))
	w.Report("staging", ptr(applied("r1")))
	if got := c.events(); len(got) != 0 {
		t.Fatalf("a seeded report notified %v", got)
	}
	// A failure known before the restart is not announced again.
	w.Seed("production", ptr(with(applied("r1"), func(r *fleet.Report) { r.LastError = "generation 2: boom" })))
	w.Report("production", ptr(with(applied("r1"), func(r *fleet.Report) { r.LastError = "generation 3: boom" })))
	if got := c.events(); len(got) != 0 {
		t.Fatalf("a seeded failure notified %v", got)
	}
	w.Report("staging", ptr(applied("r2")))
	w.Report("staging", ptr(applied("r2")))
	if len(c.got) != 1 {
		t.Fatalf("notifications %+v, want one", c.got)
	}
	n := c.got[0]
	if n.Event != SyncSucceeded || n.Cluster != "staging" || n.App != "api" || n.Revision != "r2" ||
		n.Author != "Ada <ada@example.com>" || n.Message != "api: 2.0.0" || n.Time.IsZero() {
		t.Errorf("notification %+v", n)
	}
	// Drift at a revision other than the desired one: no commit of another revision.
	w.Report("staging", ptr(with(applied("r1"), func(r *fleet.Report) { r.Drift = drifted })))
	if n := c.got[len(c.got)-1]; n.Event != DriftDetected || n.Author != "" || n.Message != "" {
		t.Errorf("notification %+v, want drift-detected without the commit of r2", n)
	}
}

// TestWatcherRenderFailure: a render failure the fleet records for a cluster×app is one
// sync-failed when it starts, however many rounds fail again (at later revisions too) and
// however many polls and reports follow, and one sync-succeeded when it renders again; a
// restarted hub seeded with the failing report announces nothing while it still fails.
func TestWatcherRenderFailure(t *testing.T) {
	fl := fleet.New(time.Minute)
	c := &collector{}
	w := NewWatcher(fl, func() ([]string, error) { return []string{"staging"}, nil }, c.emit, nil)
	var persisted *fleet.Report
	fl.OnReport(func(cluster string, r *fleet.Report) { persisted = r; w.Report(cluster, r) })
	broken := errors.New(`kustomization environments/staging/api: "deployment.yaml" does not exist`)

	fl.Status("staging", applied("r1"))
	for _, rev := range []string{"r2", "r2", "r3", "r3"} {
		fl.SetRenderError("staging", "api", rev, broken)
		w.Poll()
	}
	fl.Status("staging", applied("r1")) // the agent keeps reporting the last good state
	if got, want := c.events(), []Event{SyncSucceeded, SyncFailed}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if n := c.got[1]; n.Cluster != "staging" || n.App != "api" || n.Revision != "r2" ||
		n.Summary != "api on staging: render of revision r2 failed; the last good state stays (see flotilla status)" {
		t.Errorf("sync-failed %+v", n)
	}

	// A restart: the persisted report seeds a new watcher, which stays quiet while it fails.
	c2 := &collector{}
	w2 := NewWatcher(fl, func() ([]string, error) { return []string{"staging"}, nil }, c2.emit, nil)
	w2.Seed("staging", persisted)
	fl.OnReport(func(cluster string, r *fleet.Report) { w2.Report(cluster, r) })
	fl.SetRenderError("staging", "api", "r4", broken)
	w2.Poll()
	if got := c2.events(); len(got) != 0 {
		t.Fatalf("a restarted hub announced %v of a failure it knew", got)
	}

	fl.SetDesired(fleet.Desired{Cluster: "staging", App: "api", Revision: "r5", Bundle: &bundle.Bundle{Digest: "d-r5"}})
	fl.SetRenderError("staging", "api", "r5", nil)
	fl.SetRenderError("staging", "api", "r5", nil)
	w2.Poll()
	if got, want := c2.events(), []Event{SyncSucceeded}; !slices.Equal(got, want) {
		t.Fatalf("events after the render recovered %v, want %v", got, want)
	}
	if n := c2.got[0]; n.Revision != "r5" || n.Summary != "api on staging: revision r5 renders again" {
		t.Errorf("recovery %+v", n)
	}
}
