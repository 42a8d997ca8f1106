package fleet

import "github.com/flotilla-dev/flotilla/hub/internal/apps"

// RolloutGate says what a cluster gets while an app's progressive rollout runs
// (rollout.Coordinator): a cluster not yet in an active step keeps the revision it runs,
// rendered with the definition of the app it had (held at it; def nil: the app as it is
// now), and one whose revision is not known yet here is held at "" (it keeps its last
// desired state).
type RolloutGate interface {
	Revision(app *apps.Application, c ClusterVars, commit string) (rev string, def *apps.Application, held bool)
}

// rolloutRevision is the revision a rollout holds cluster c at instead of commit ("": commit)
// and the definition of app it renders with; wait when it holds c back without a revision
// yet (another replica coordinates the app and its record has not come): c keeps its last
// desired state this round.
func (r *Reconciler) rolloutRevision(app *apps.Application, c ClusterVars, commit string) (rev string, def *apps.Application, wait bool) {
	if r.cfg.Rollouts == nil {
		return "", app, false
	}
	rev, def, held := r.cfg.Rollouts.Revision(app, c, commit)
	if def == nil || !held {
		def = app
	}
	switch {
	case !held || rev == commit:
		return "", def, false
	case rev == "":
		return "", app, true
	}
	return rev, def, false
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
