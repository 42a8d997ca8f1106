package syncer

// Automatic rollback (health.rollback: auto).
//
// A revision is watched from the moment it is applied until it is Healthy: the health loop
// assesses it every HealthInterval. If it turns Degraded, or is still Progressing once its
// progress deadline has passed since it was applied, it is unhealthy; with AutoRollback and a
// last healthy revision in the app's state, the health loop marks a rollback due and a worker
// carries it out:
//
//   - it re-applies the last healthy revision's bundle, kept in the app's state, writing its
//     objects and deleting nothing: objects only the bad revision had stay in the inventory
//     (reported as not pruned) until a later revision prunes them as its policy says;
//   - it records the bad revision (revision, digest, reason) in the app's state, so that it is
//     not applied again, not after a restart nor when the hub sends it again, until the hub
//     sends another revision or digest, or an operator asks for it (Desired.SyncRequested);
//   - it records a Kubernetes Event (Warning, reason RolledBack) and calls Config.OnEvent.
//
// If re-applying fails the agent stops there: it keeps what the cluster holds, deletes
// nothing, does not retry, and reports RollbackFailed (Event and OnEvent too); the bad revision
// is marked all the same. None of this needs the hub: it works while the hub is unreachable.
//
// A new revision from the hub ends the watch of the previous one at once: SetDesired cancels
// the assessment in progress, a worker applies the new revision, and a rollback marked due for
// the old one is dropped.
//
// Reporting, while the mark stands: Health is Degraded (the revision Git asks for is not what
// runs: a person must look) and the message starts "RolledBack: revision <rev> <reason>", or
// "RollbackFailed: revision <rev> <reason>; ..." when re-applying failed; RolledBackRevision is
// set after a rollback that succeeded; Sync is OutOfSync (the cluster does not hold the desired
// revision); Resources show the health of what runs; HealthyRevision is the revision rolled
// back to. A Desired for the marked revision is acknowledged (with the revision and digest the
// cluster holds) without writing anything.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// rollbackState is an app's automatic-rollback bookkeeping; guarded by Controller.mu.
type rollbackState struct {
	due *rollbackDue // an unhealthy revision to roll back from, found by assess
	// cancelAssess ends the health assessment in progress (a new revision arrived).
	cancelAssess context.CancelFunc
}

// rollbackDue names the applied revision found unhealthy, and why.
type rollbackDue struct {
	digest string
	reason string
}

// canRollBack reports whether st is a revision still waiting to become healthy, with an
// earlier healthy revision to return to and no rollback from it yet.
func canRollBack(st *state.AppState) bool {
	return st.RolledBack == nil && st.HealthyDigest != "" && st.HealthyDigest != st.Digest
}

// unhealthyReason turns an app's health into the reason a rollback gives, or "" when the
// applied revision is not unhealthy. Caller passes the health with the deadline applied.
func unhealthyReason(worst health.Status, msg string, pastDeadline bool) string {
	switch {
	case worst != health.Degraded:
		return ""
	case pastDeadline:
		return msg // "not healthy within ... of the sync: ..."
	default:
		return "Degraded: " + msg
	}
}

// rollBackIfDue carries out a rollback the health loop found due, when it still is: the same
// revision is applied, still unhealthy-marked, and no newer revision is about to be applied
// instead. Caller holds a.op.
func (c *Controller) rollBackIfDue(ctx context.Context, a *app, d *Desired) bool {
	c.mu.Lock()
	due, st := a.rb.due, a.applied
	a.rb.due = nil
	forced := a.sync.forced(d)
	gaveUp := a.sync.gaveUp == d.Generation
	c.mu.Unlock()
	if due == nil || st == nil || st.Digest != due.digest || !canRollBack(st) || forced {
		return false
	}
	if d.Digest != st.Digest && (d.Policy.Automated || d.SyncRequested) && !gaveUp {
		return false // a newer revision is about to be applied instead
	}
	if _, hp := fromStatePolicy(st.Policy); !hp.AutoRollback {
		return false
	}
	c.rollBack(ctx, a, d, st, due.reason)
	return true
}

// rollBack re-applies st's last healthy revision and marks st's revision rolled back; on
// failure it keeps what was written and marks the rollback failed. Caller holds a.op.
func (c *Controller) rollBack(ctx context.Context, a *app, d *Desired, st *state.AppState, reason string) {
	log := c.log.With(logging.KeyApp, a.name, logging.KeyRevision, st.Revision, keyTarget, st.HealthyRevision)
	start := time.Now()
	// Mask the Secret values of every revision involved (invariant 7): the reason quotes
	// health messages, which custom rules write.
	scrubbers := []scrubber{newScrubber(d)}
	if bad, err := desiredFromState(st); err == nil {
		scrubbers = append(scrubbers, newScrubber(bad))
	}
	scrub := func(text string) string {
		for _, s := range scrubbers {
			text = s.scrub(text)
		}
		return text
	}
	reason = scrub(reason)
	policy, hp := fromStatePolicy(st.Policy)
	policy.Prune = false // a rollback writes; it never deletes
	target := &Desired{
		App: st.App, Generation: st.Generation, Revision: st.HealthyRevision, Digest: st.HealthyDigest,
		Namespace: st.Namespace, Bundle: st.HealthyBundle, Policy: policy, Health: hp, Access: fromStateAccess(st.Policy),
	}
	var res *apply.ChangeSet
	objs, err := bundle.Decode(st.HealthyBundle)
	if err == nil && bundle.Digest(st.HealthyBundle) != st.HealthyDigest {
		err = errors.New("the healthy bundle in state does not match its digest")
	}
	if err == nil {
		target.Objects = objs
		target = decrypted(target, c.cfg.AgeIdentity)
		scrubbers = append(scrubbers, newScrubber(target))
		res, err = c.apply(ctx, target, fromStateRefs(st.Inventory), st.Waves)
	}
	if ctx.Err() != nil {
		return // shutting down: the next health pass finds the revision unhealthy again
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	mark := &state.RolledBack{Revision: st.Revision, Digest: st.Digest, Reason: reason, At: now}
	var next state.AppState
	if err == nil {
		next = state.AppState{
			App: st.App, Generation: st.Generation, Revision: target.Revision, Digest: target.Digest,
			Bundle: target.Bundle, Namespace: st.Namespace, Policy: st.Policy, Inventory: toStateRefs(res.Inventory),
			Waves:           keptWaves(st.Waves, res.Inventory, nil),
			HealthyRevision: st.HealthyRevision, HealthyDigest: st.HealthyDigest, HealthyBundle: st.HealthyBundle,
			AppliedAt: now, RolledBack: mark,
		}
	} else {
		next = *st
		if res != nil {
			next.Inventory = toStateRefs(res.Inventory) // what was written before the failure
		}
		mark.Failed, mark.Error = true, scrub(err.Error())
		next.RolledBack = mark
	}
	_ = c.save(ctx, a, &next) // a failure is retried (save.go)
	c.mu.Lock()
	a.applied, a.health.of = &next, nil
	a.drift.reset()
	a.sync.err = ""
	var retryPrune time.Duration
	if res != nil && err == nil {
		retryPrune = a.sync.changed(res)
	}
	involved := involvedObject(a.health.resources)
	c.mu.Unlock()
	c.retryPrune(a, retryPrune)

	ev := Event{App: a.name, Revision: st.Revision, Target: st.HealthyRevision, Time: now}
	if err == nil {
		c.applier.Watch(ctx, res.Inventory)
		c.mu.Lock()
		a.health.due = true
		c.mu.Unlock()
		ev.Reason = EventRolledBack
		ev.Message = fmt.Sprintf("revision %s rolled back to %s: %s", st.Revision, st.HealthyRevision, reason)
		log.Warn("revision rolled back", logging.KeyDuration, time.Since(start), keyReason, reason)
	} else {
		ev.Reason = EventRollbackFailed
		ev.Message = fmt.Sprintf("revision %s: %s; rolling back to %s failed, nothing more is done: %s", st.Revision, reason, st.HealthyRevision, mark.Error)
		log.Error("rollback failed; keeping what the cluster holds", keyReason, reason, logging.Err(errors.New(mark.Error)))
	}
	c.metrics.rolledBack(err)
	c.recordEvent(ctx, ev, involved)
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(ev)
	}
}

// holdRolledBack keeps an app whose revision was rolled back where it is, as long as nothing
// newer than the mark is desired: d is the marked revision (sent again, or restored from
// state) and no operator asked for it. It acknowledges a new generation without writing, saves
// a state a rollback could not save, and checks drift, healing it towards what the cluster
// holds (never after a failed rollback). Caller holds a.op.
func (c *Controller) holdRolledBack(ctx context.Context, a *app, d *Desired) bool {
	c.mu.Lock()
	st := a.applied
	if st == nil || st.RolledBack == nil {
		c.mu.Unlock()
		return false
	}
	rb := st.RolledBack
	forced := a.sync.forced(d)
	marked := d.Revision == rb.Revision && d.Digest == rb.Digest
	if forced || (!marked && d.Generation > st.Generation) {
		c.mu.Unlock()
		return false
	}
	ack := a.sync.acked < d.Generation
	if ack {
		next := *st
		next.Generation = d.Generation
		a.applied = &next
		a.sync.done(d.Generation)
		st = &next
	}
	c.mu.Unlock()

	if ack {
		c.cfg.Reporter.Ack(d.App, d.Generation, st.Revision, st.Digest)
	}
	held, err := desiredFromState(st)
	if err != nil {
		c.log.Warn("drift check skipped: state bundle unreadable", logging.KeyApp, a.name, logging.Err(err))
		return true
	}
	held.Policy = d.Policy
	held.Policy.Prune = false
	held.Policy.SelfHeal = d.Policy.SelfHeal && !rb.Failed
	c.checkDrift(ctx, a, held, st)
	return true
}

// involvedObject picks the object a rollback Event is about: the first namespaced object of
// the worst health, or none (then the Event is about the app's state Secret).
func involvedObject(resources []ResourceStatus) apply.ObjectRef {
	var worst []health.Status
	for _, r := range resources {
		worst = append(worst, health.Status(r.Health))
	}
	w := health.Worst(worst...)
	for _, r := range resources {
		if r.Health == string(w) && r.Object.Namespace != "" {
			return r.Object
		}
	}
	return apply.ObjectRef{}
}
