package syncer

// Dependencies between apps (spec.dependsOn), judged on this cluster only.
//
// A new revision of an app (its first, or another digest than the cluster holds) is applied only
// once every app it depends on is Synced and Healthy on this cluster, as this agent last
// reported them. Until then nothing of it is applied and nothing pruned: the app keeps running
// the revision it holds, which is still self-healed and assessed (and rolled back when it turns
// unhealthy), and its status is OutOfSync with "waiting for DEP: STATE" in its message, STATE
// being the dependency's sync and health that are not yet Synced and Healthy, "not on this
// cluster" when the hub did not deliver it here, or "being removed from this cluster".
//
// Whenever an app's reported status changes, or it is removed, the apps waiting for it are
// queued again (wakeDependents, from publish): a dependent proceeds as soon as the last of its
// dependencies is ready, without polling. An operator's re-sync of the revision the cluster
// already holds, and an automatic rollback, do not wait.

import (
	"context"
	"slices"
	"strings"

	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// dependencyState is what one dependency of an app looks like on this cluster.
type dependencyState struct {
	present  bool // delivered to this cluster
	removing bool // being removed from it
	// sync and health are as last reported; "" before the first report.
	sync, health string
}

// gated reports whether applying d must wait for its dependencies: it has some, and it is a new
// revision (nothing applied yet, or another digest than the cluster holds).
func gated(d *Desired, applied *state.AppState) bool {
	return len(d.DependsOn) > 0 && (applied == nil || applied.Digest != d.Digest)
}

// waitingFor says what an app depending on deps waits for, given their states on this cluster:
// "waiting for DEP: STATE" for each that is not Synced and Healthy, joined by "; ". It returns
// "" when every one is.
func waitingFor(deps []string, states map[string]dependencyState) string {
	var parts []string
	for _, dep := range deps {
		s := states[dep]
		var not []string
		switch {
		case s.removing:
			not = []string{"being removed from this cluster"}
		case !s.present:
			not = []string{"not on this cluster"}
		case s.sync == "" && s.health == "":
			not = []string{"not reported yet"}
		default:
			if s.sync != SyncSynced {
				not = append(not, orElse(s.sync, SyncUnknown))
			}
			if s.health != string(health.Healthy) {
				not = append(not, orElse(s.health, string(health.Unknown)))
			}
		}
		if len(not) > 0 {
			parts = append(parts, "waiting for "+dep+": "+strings.Join(not, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// orElse returns s, or otherwise when s is empty.
func orElse(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

// depsState is an app's wait for its dependencies; guarded by Controller.mu.
type depsState struct {
	waiting    string // what generation waits for; "" when it does not
	generation uint64
	// held is the revision the cluster holds, as a Desired, for self-heal while waiting.
	held *Desired
}

// waitingFor returns what d waits for, "" when it does not (or was not judged yet).
func (s *depsState) waitingFor(d *Desired) string {
	if d == nil || s.generation != d.Generation {
		return ""
	}
	return s.waiting
}

// awaitDependencies reports whether d, which reconcile is about to apply, waits for its
// dependencies, and records what it waits for. While it waits, the revision the cluster holds
// is checked for drift and self-healed as its app's policy says. Caller holds a.op.
func (c *Controller) awaitDependencies(ctx context.Context, a *app, d *Desired, applied *state.AppState) bool {
	c.mu.Lock()
	waiting := ""
	if gated(d, applied) {
		waiting = waitingFor(d.DependsOn, c.dependencyStates(d.DependsOn))
	}
	a.deps.waiting, a.deps.generation = waiting, d.Generation
	if waiting == "" {
		a.deps.held = nil // needed only while waiting
	}
	c.mu.Unlock()
	if waiting == "" {
		return false
	}
	c.checkDrift(ctx, a, c.heldRevision(a, d, applied), applied)
	return true
}

// dependencyStates returns the state of each of deps on this cluster. Caller holds c.mu.
func (c *Controller) dependencyStates(deps []string) map[string]dependencyState {
	out := make(map[string]dependencyState, len(deps))
	for _, name := range deps {
		dep := c.apps[name]
		switch {
		case dep == nil || dep.desired == nil:
		case dep.remove != 0:
			out[name] = dependencyState{removing: true}
		default:
			s := dependencyState{present: true}
			if r := dep.reported; r != nil {
				s.sync, s.health = r.Sync, r.Health
			}
			out[name] = s
		}
	}
	return out
}

// heldRevision returns the revision applied holds, as a Desired under d's sync policy (whether
// to self-heal, how to retry), decoded once per digest; d itself when applied holds nothing to
// decode. Caller holds a.op.
func (c *Controller) heldRevision(a *app, d *Desired, applied *state.AppState) *Desired {
	if applied == nil || applied.Digest == "" {
		return d
	}
	c.mu.Lock()
	held := a.deps.held
	c.mu.Unlock()
	if held == nil || held.Digest != applied.Digest {
		st, err := desiredFromState(applied)
		if err != nil {
			c.log.Warn("app state holds an unreadable bundle", logging.KeyApp, a.name, logging.Err(err))
			return d
		}
		held = decrypted(st, c.cfg.AgeIdentity)
		c.mu.Lock()
		a.deps.held = held
		c.mu.Unlock()
	}
	out := *held
	out.Policy = d.Policy
	return &out
}

// wakeDependents queues the apps waiting for name: its status changed, or it was removed.
func (c *Controller) wakeDependents(name string) {
	c.mu.Lock()
	var waiting []string
	for _, o := range c.apps {
		if o.deps.waitingFor(o.desired) != "" && slices.Contains(o.desired.DependsOn, name) {
			waiting = append(waiting, o.name)
		}
	}
	c.mu.Unlock()
	for _, n := range waiting {
		c.queue.Add(n)
	}
}
