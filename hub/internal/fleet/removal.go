package fleet

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// This file makes removing an app from a cluster safe. An app that stops targeting a cluster
// (its Application was deleted, or its destination no longer names the cluster) is Removing
// there for a grace period before its agent is told to delete it; an Application that comes
// back within the grace cancels the removal, and its agent, which still holds the same
// objects, is sent nothing. An apps load that drops more than half of the Applications (or
// all of them) is held: nothing of it is removed until an operator confirms or the apps
// come back.
//
// The moments apps started Removing are kept in memory: a hub that restarts starts their
// grace again, which only delays deletion.

// DefaultRemovalGrace is how long an app is Removing on a cluster before its objects go.
const DefaultRemovalGrace = 10 * time.Minute

// SyncRemoving is the sync state shown for an app during its removal grace.
const SyncRemoving = "Removing"

// RemovalHold is a held mass removal: Applications gone from the apps source all at once.
type RemovalHold struct {
	Apps  []string  // the Applications gone, sorted
	Total int       // how many there were before
	Since time.Time // when the hold started
}

// removals is the Fleet's removal bookkeeping; guarded by Fleet.mu.
type removals struct {
	grace time.Duration
	// since is when each app stopped targeting each cluster: cluster → app → time.
	since map[string]map[string]time.Time
	// baseline is the set of apps of the last accepted complete load (after a restart: the
	// apps the restored reports name), against which a new load's removals are counted.
	baseline map[string]bool
	hold     *RemovalHold
	// confirmed are apps an operator confirmed removing while they were held.
	confirmed map[string]bool
	// onHold is called (outside the lock) when a new hold starts.
	onHold func(RemovalHold)
}

// SetRemovalGrace sets the grace period before a removed app's objects are deleted.
func (f *Fleet) SetRemovalGrace(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rm.grace = d
}

// OnRemovalHold registers a callback run when a mass removal is held (for notifications).
func (f *Fleet) OnRemovalHold(fn func(RemovalHold)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rm.onHold = fn
}

// GuardRemoval is told the names of every Application of a complete load, before SetTargets.
// When the load drops more than half of the Applications there were (or all of them), and an
// operator has not confirmed exactly those, the removal is held: SetTargets keeps those apps
// where they were. It returns the held apps, nil when nothing is held.
func (f *Fleet) GuardRemoval(loaded []string) []string {
	f.mu.Lock()
	now := f.now()
	current := make(map[string]bool, len(loaded))
	for _, a := range loaded {
		current[a] = true
	}
	var gone []string
	for a := range f.rm.baseline {
		if !current[a] {
			gone = append(gone, a)
		}
	}
	sort.Strings(gone)
	confirmed := true
	for _, a := range gone {
		confirmed = confirmed && f.rm.confirmed[a]
	}
	if len(gone) == 0 || 2*len(gone) <= len(f.rm.baseline) || confirmed {
		f.rm.baseline, f.rm.hold, f.rm.confirmed = current, nil, nil
		f.mu.Unlock()
		return nil
	}
	fresh := f.rm.hold == nil || !slices.Equal(f.rm.hold.Apps, gone)
	if fresh {
		f.rm.hold = &RemovalHold{Apps: gone, Total: len(f.rm.baseline), Since: now}
	}
	hold, notify := *f.rm.hold, f.rm.onHold
	f.mu.Unlock()
	if fresh && notify != nil {
		notify(hold)
	}
	return gone
}

// RemovalHeld returns the held mass removal, if any.
func (f *Fleet) RemovalHeld() (RemovalHold, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rm.hold == nil {
		return RemovalHold{}, false
	}
	return *f.rm.hold, true
}

// ConfirmRemoval records an operator's confirmation that apps may be removed; the next
// complete load that drops exactly those (or fewer of them) goes ahead.
func (f *Fleet) ConfirmRemoval(apps []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rm.confirmed == nil {
		f.rm.confirmed = map[string]bool{}
	}
	for _, a := range apps {
		f.rm.confirmed[a] = true
	}
}

// noteBaseline adds an app restored from a report to the baseline. Caller holds f.mu.
func (f *Fleet) noteBaseline(app string) {
	if f.rm.baseline == nil {
		f.rm.baseline = map[string]bool{}
	}
	f.rm.baseline[app] = true
}

// SetTargets records, per cluster, every app that targets it according to a complete load of
// the apps. An app the agent holds that is neither targeted nor desired is then Removing, and
// removed once its grace is over (removal.go); a cluster missing from targets was not covered
// by the load (not listed: a hub replica that does not own it) and has nothing removed.
func (f *Fleet) SetTargets(targets map[string]map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applyTargets(targets)
	f.targets = targets
	f.known = true
	f.pruneRenderErrorsLocked(targets)
	for _, w := range f.watchers {
		w.changed()
	}
}

// ShouldRemove reports whether an app an agent holds is to be removed from its cluster: only
// when the hub knows the complete list of apps, none of them targets the cluster with it, the
// removal is not held, and the app's removal grace there is over.
func (f *Fleet) ShouldRemove(cluster, app string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.known {
		return false
	}
	if f.desired[cluster][app] != nil {
		return false
	}
	apps, covered := f.targets[cluster]
	if !covered || apps[app] || f.heldLocked(app) {
		return false
	}
	return f.removalDue(cluster, app)
}

// heldLocked reports whether app's removal is held. Caller holds f.mu.
func (f *Fleet) heldLocked(app string) bool {
	return f.rm.hold != nil && slices.Contains(f.rm.hold.Apps, app)
}

// applyTargets is SetTargets' removal step, with f.mu held: apps held by a mass removal stay
// where they are (counted as targeting); on each covered cluster an app that came back stops Removing,
// and one that stopped targeting it (desired or reported by the agent before) starts Removing
// and is no longer desired there.
func (f *Fleet) applyTargets(targets map[string]map[string]bool) {
	now := f.now()
	for c, apps := range targets {
		for a := range f.rm.since[c] {
			if apps[a] {
				delete(f.rm.since[c], a)
			}
		}
		candidates := map[string]bool{}
		for a := range f.targets[c] {
			candidates[a] = true
		}
		for a := range f.desired[c] {
			candidates[a] = true
		}
		for a := range f.status[c] {
			candidates[a] = true
		}
		for a := range candidates {
			if f.heldLocked(a) {
				apps[a] = true // held: stays as it is
			}
			if apps[a] {
				continue
			}
			d := f.desired[c][a]
			if r := f.status[c][a]; d == nil && (r == nil || r.Reported.IsZero()) {
				continue // never sent, never reported (its render failed): nothing there to remove
			}
			delete(f.desired[c], a)
			f.startRemovingLocked(c, a, now)
		}
	}
}

// startRemovingLocked starts the grace of app on cluster unless it has started; when it ends,
// the cluster's stream is woken to send the Remove. Caller holds f.mu.
func (f *Fleet) startRemovingLocked(cluster, app string, now time.Time) time.Time {
	if since, ok := f.rm.since[cluster][app]; ok {
		return since
	}
	if f.rm.since == nil {
		f.rm.since = map[string]map[string]time.Time{}
	}
	if f.rm.since[cluster] == nil {
		f.rm.since[cluster] = map[string]time.Time{}
	}
	f.rm.since[cluster][app] = now
	time.AfterFunc(f.rm.grace, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.wake(cluster)
	})
	return now
}

// removalDue reports whether app's grace on cluster is over, starting it when it had not
// started (an agent holds an app this hub never had: after a restart). Caller holds f.mu.
func (f *Fleet) removalDue(cluster, app string) bool {
	now := f.now()
	since := f.startRemovingLocked(cluster, app, now)
	return !now.Before(since.Add(f.rm.grace))
}

// removingRow fills in the row of an app Removing on a cluster. Caller holds f.mu.
func (f *Fleet) removingRow(row *Row) {
	since, ok := f.rm.since[row.Cluster][row.App]
	if !ok || f.desired[row.Cluster][row.App] != nil {
		return
	}
	at := since.Add(f.rm.grace)
	row.Sync = SyncRemoving
	row.Message = fmt.Sprintf("Removing: no Application targets this cluster any more; its objects are deleted at %s (in %s) unless the Application comes back",
		at.UTC().Format(time.RFC3339), max(at.Sub(f.now()), 0).Round(time.Second))
}
