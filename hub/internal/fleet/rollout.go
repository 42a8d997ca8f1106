package fleet

import "github.com/flotilla-dev/flotilla/hub/internal/apps"

// RolloutGate says which revision a cluster gets while an app's progressive rollout runs
// (rollout.Coordinator): a cluster not yet in an active step keeps the revision it runs.
type RolloutGate interface {
	Revision(app *apps.Application, c ClusterVars, commit string) (rev string, held bool)
}

// rolloutRevision is the revision a rollout holds cluster c at instead of commit, or "".
func (r *Reconciler) rolloutRevision(app *apps.Application, c ClusterVars, commit string) string {
	if r.cfg.Rollouts == nil {
		return ""
	}
	rev, held := r.cfg.Rollouts.Revision(app, c, commit)
	if !held || rev == commit {
		return ""
	}
	return rev
}

// SetRolloutHolds replaces what `flotilla status` says of the clusters an app's rollout holds
// back: cluster → message ("Waiting for rollout step 3 of r-abc123"); nil when none.
func (f *Fleet) SetRolloutHolds(app string, holds map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holds == nil {
		f.holds = map[string]map[string]string{}
	}
	if len(holds) == 0 {
		delete(f.holds, app)
		return
	}
	f.holds[app] = holds
}

// SetRolloutHold says why a rollout holds app back on one cluster ("": it does not).
func (f *Fleet) SetRolloutHold(app, cluster, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if msg == "" {
		delete(f.holds[app], cluster)
		return
	}
	if f.holds == nil {
		f.holds = map[string]map[string]string{}
	}
	if f.holds[app] == nil {
		f.holds[app] = map[string]string{}
	}
	f.holds[app][cluster] = msg
}
