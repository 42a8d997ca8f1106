// Package fleet holds the hub's view of the fleet: per cluster×app the latest desired state
// (level-triggered: only the latest is kept) and what each agent reports back, plus presence.
// It is the meeting point of the reconciler (which sets desired state) and the server (which
// streams it to agents and records their answers). Everything here is in memory; durable
// pieces are written through to the store by the caller.
package fleet

import (
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// Desired is the desired state of one app on one cluster.
type Desired struct {
	Cluster    string
	App        string
	Generation uint64
	Revision   string
	Bundle     *bundle.Bundle
	Namespace  string
	Policy     apps.SyncPolicy
	Health     apps.HealthPolicy
	Access     apps.AccessPolicy // spec.policy
	// IgnoreDifferences are the hub's default rules, then the app's spec.ignoreDifferences.
	IgnoreDifferences []ignore.Rule
	CommitTime        time.Time
	Author            string
	Message           string
	SyncRequested     bool
	// PruneConfirmed carries an operator's confirmation of held deletions, for one sync.
	PruneConfirmed bool
	// Pinned: Revision is an operator's pin (flotilla rollback --to), not Git's target.
	Pinned bool
	// DependsOn is the app's spec.dependsOn, judged by the agent on its cluster.
	DependsOn []string
	// Chart is set for an app rendered from a chart: its name, resolved version and values
	// digest, for `flotilla apps` and history.
	Chart *ChartInfo
	// Spec is the digest of the app's definition this was rendered with (apps.Application.Spec),
	// for a rollout to tell an edit's render from the one before.
	Spec string
}

// Digest is the bundle's digest.
func (d *Desired) Digest() string { return d.Bundle.Digest }

// same reports whether d and o would make the agent do the same thing. The revision is not
// compared: a commit that leaves an app's rendered objects unchanged sends nothing to its
// agents (a thousand clusters are not re-sent an identical bundle for a commit elsewhere).
func (d *Desired) same(o *Desired) bool {
	return d.Bundle.Digest == o.Bundle.Digest && d.Namespace == o.Namespace && d.Pinned == o.Pinned &&
		d.Policy == o.Policy && reflect.DeepEqual(d.Health, o.Health) && reflect.DeepEqual(d.Access, o.Access) &&
		slices.Equal(d.DependsOn, o.DependsOn) &&
		reflect.DeepEqual(d.IgnoreDifferences, o.IgnoreDifferences)
}

// Held is what an agent says it holds for an app.
type Held struct {
	App        string
	Generation uint64
	Revision   string
	Digest     string
}

// Fleet is safe for concurrent use.
type Fleet struct {
	mu       sync.Mutex
	now      func() time.Time
	staleAge time.Duration
	// known is true once a reconcile round loaded the full list of apps: only then may an
	// agent be told to remove an app (never because the hub just started).
	known    bool
	targets  map[string]map[string]bool   // cluster → apps targeting it (last complete load)
	pins     map[string]map[string]string // app → cluster → pinned revision
	holds    map[string]map[string]string // app → cluster → why a rollout holds it back (rollout.go)
	apps     map[string]*AppInfo
	desired  map[string]map[string]*Desired // cluster → app
	status   map[string]map[string]*Report  // cluster → app
	watchers map[string]*watcher            // cluster → its agent stream's callback (Watch)
	// pmu guards presence, apart from mu: Seen runs for every message an agent sends, and a
	// whole fleet's rows are read under mu in one hold (Rows). In a storm of 10,000 reconnects,
	// goroutine dumps of the hub had 238–477 agents' streams queued for mu in Seen alone
	// behind such a read, and operators' status calls behind them (BENCHMARKS.md). Lock order:
	// mu, then pmu.
	pmu      sync.Mutex
	presence map[string]*Presence
	onReport func(cluster string, r *Report)
	onForget func(cluster, app string)

	// held is what an agent said it holds, cluster → app, for apps with no desired state
	// yet when it said hello (see Align); the first SetDesired of such an app starts from it.
	held map[string]map[string]Held
	// rm is the removal bookkeeping (removal.go).
	rm removals
	// caps are the clusters' reported capabilities (capabilities.go).
	caps capabilities
}

// New returns an empty fleet. A cluster that has sent nothing for staleAge is Stale.
func New(staleAge time.Duration) *Fleet {
	return &Fleet{
		now:      time.Now,
		staleAge: staleAge,
		apps:     map[string]*AppInfo{},
		desired:  map[string]map[string]*Desired{},
		held:     map[string]map[string]Held{},
		status:   map[string]map[string]*Report{},
		presence: map[string]*Presence{},
		watchers: map[string]*watcher{},
		rm:       removals{grace: DefaultRemovalGrace},
	}
}

// OnReport registers a callback run (outside the lock) whenever an agent's report for an app
// changes, so the caller can persist it.
func (f *Fleet) OnReport(fn func(cluster string, r *Report)) { f.onReport = fn }

// OnForget registers a callback run (outside the lock) when an
// app's reports on a cluster are dropped after its removal, so the caller can drop them too.
func (f *Fleet) OnForget(fn func(cluster, app string)) { f.onForget = fn }

// SetDesired records the desired state of an app on a cluster. The generation moves on only when
// something the agent acts on changed; an unchanged desired state wakes nobody.
func (f *Fleet) SetDesired(d Desired) {
	f.mu.Lock()
	defer f.mu.Unlock()
	byApp := f.desired[d.Cluster]
	if byApp == nil {
		byApp = map[string]*Desired{}
		f.desired[d.Cluster] = byApp
	}
	old := byApp[d.App]
	if old != nil && old.same(&d) {
		// Nothing for the agent to do; record the new revision (a copy: readers hold the old
		// pointer without the lock).
		nd := *old
		nd.Revision, nd.CommitTime, nd.Author, nd.Message, nd.Spec = d.Revision, d.CommitTime, d.Author, d.Message, d.Spec
		byApp[d.App] = &nd
		return
	}
	if old != nil {
		d.Generation = old.Generation + 1
	} else if d.Generation == 0 {
		d.Generation = f.firstGeneration(&d)
	}
	if old != nil && old.Revision == d.Revision {
		d.SyncRequested = old.SyncRequested
	}
	byApp[d.App] = &d
	f.wake(d.Cluster)
}

// RequestSync marks the app's desired state on the cluster as explicitly requested by an
// operator (for apps without automated sync), confirming held deletions when confirmPrune is
// set. It returns false when nothing is desired there.
func (f *Fleet) RequestSync(cluster, app string, confirmPrune bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.desired[cluster][app]
	if d == nil {
		return false
	}
	nd := *d
	nd.Generation++
	nd.SyncRequested = true
	nd.PruneConfirmed = confirmPrune
	f.desired[cluster][app] = &nd
	f.wake(cluster)
	return true
}

// RemoveDesired drops an app from a cluster's desired state.
func (f *Fleet) RemoveDesired(cluster, app string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.desired[cluster][app]; ok {
		delete(f.desired[cluster], app)
		f.wake(cluster)
	}
}

// DesiredApps lists the apps desired on a cluster.
func (f *Fleet) DesiredApps(cluster string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for app := range f.desired[cluster] {
		out = append(out, app)
	}
	sort.Strings(out)
	return out
}

// ClusterNames returns the names of clusters with any desired state, sorted.
func (f *Fleet) ClusterNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.desired))
	for c := range f.desired {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Snapshot returns the cluster's desired state by app.
func (f *Fleet) Snapshot(cluster string) map[string]*Desired {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]*Desired, len(f.desired[cluster]))
	for app, d := range f.desired[cluster] {
		out[app] = d
	}
	return out
}

// DesiredOf returns the desired state of app on cluster, or nil: Snapshot's entry without
// copying the cluster's map (a status row per app asks for one).
func (f *Fleet) DesiredOf(cluster, app string) *Desired {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.desired[cluster][app]
}

// SetPins replaces the operator pins: app → cluster → revision.
func (f *Fleet) SetPins(pins map[string]map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pins = pins
}

// Pin returns the revision an operator pinned app to on cluster, or "".
func (f *Fleet) Pin(app, cluster string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pins[app][cluster]
}

// Align is called when an agent says hello: for each app it holds whose digest equals what is
// desired, the hub adopts the agent's generation (nothing needs sending); for the others, the
// hub's generation moves past the agent's so the agent does not take the new state for an old
// one (generations restart when the hub does).
//
// An app with no desired state yet (the hub is still rendering it: it just started, or just
// took the cluster over from another replica) is remembered, and its first desired state is
// aligned the same way when it comes: an agent that already holds it is sent nothing.
func (f *Fleet) Align(cluster string, held []Held) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held[cluster] = map[string]Held{}
	for _, h := range held {
		d := f.desired[cluster][h.App]
		if d == nil {
			f.held[cluster][h.App] = h
			continue
		}
		nd := *d
		switch {
		case d.Bundle.Digest == h.Digest && d.Generation <= h.Generation:
			nd.Generation = h.Generation
		case d.Generation <= h.Generation:
			nd.Generation = h.Generation + 1
		default:
			continue
		}
		f.desired[cluster][h.App] = &nd
	}
}

// watcher is the callback of a cluster's agent stream.
type watcher struct{ changed func() }

// Watch calls changed whenever the cluster's desired state may have changed, until the stop
// it returns is called. changed runs under the fleet's lock: it must not block nor call the
// fleet. A cluster has one watcher (one agent stream at a time): a newer Watch replaces an
// older one, whose stop then does nothing. Nothing is held for a cluster nobody watches.
func (f *Fleet) Watch(cluster string, changed func()) (stop func()) {
	w := &watcher{changed: changed}
	f.mu.Lock()
	f.watchers[cluster] = w
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.watchers[cluster] == w {
			delete(f.watchers, cluster)
		}
	}
}

// wake tells the cluster's watcher that its desired state changed. Called with f.mu held.
func (f *Fleet) wake(cluster string) {
	if w := f.watchers[cluster]; w != nil {
		w.changed()
	}
}
