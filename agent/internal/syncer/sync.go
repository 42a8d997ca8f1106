package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// sync applies d, saves the new state and acks; or nacks and schedules a retry.
func (c *Controller) sync(ctx context.Context, a *app, d *Desired, applied *state.AppState) {
	log := c.log.With(logging.KeyApp, d.App, logging.KeyRevision, d.Revision, logging.KeyGeneration, d.Generation)
	start := time.Now()
	res, waves, err := c.applyPlanned(ctx, a, d, applied)
	var st *state.AppState
	if err == nil {
		st = &state.AppState{
			App: d.App, Generation: d.Generation, Revision: d.Revision, Digest: d.Digest,
			Bundle: d.Bundle, Namespace: d.Namespace, Policy: toStatePolicy(d.Policy, d.Health, d.Access, d.Ignore),
			Inventory: toStateRefs(res.Inventory), Waves: waves, AppliedAt: time.Now().UTC().Truncate(time.Millisecond),
		}
		if applied != nil {
			st.HealthyRevision, st.HealthyDigest, st.HealthyBundle = applied.HealthyRevision, applied.HealthyDigest, applied.HealthyBundle
		}
		if done := c.hooksDone(a, d); len(done) > 0 {
			st.Hooks = &state.Hooks{Digest: d.Digest, Done: done} // hooks.go
		}
		_ = c.save(ctx, a, st) // the cluster holds st either way; a failure is retried (save.go)
	}
	if ctx.Err() != nil {
		return // shutting down: not the revision's fault
	}
	if errors.Is(err, errSuperseded) {
		if res != nil {
			c.keepWritten(ctx, a, d, applied, res, waves)
		}
		return // a newer revision is queued: not this one's failure
	}
	c.metrics.synced(err, time.Since(start), res)
	if err != nil {
		if res != nil && st == nil {
			c.keepWritten(ctx, a, d, applied, res, waves)
		}
		c.failed(ctx, a, d, err, log)
		c.rollBackWave(ctx, a, d, err)
		return
	}
	c.mu.Lock()
	a.applied = st
	retryPrune := a.sync.succeeded(d.Generation, res)
	notes := a.sync.notes
	a.drift.reset()
	c.mu.Unlock()
	c.retryPrune(a, retryPrune)
	c.applier.Watch(ctx, res.Inventory)
	c.mu.Lock()
	a.health.due = true
	c.mu.Unlock()
	if dl := d.Health.ProgressDeadline; dl > 0 && d.Health.AutoRollback {
		// Judge the revision as soon as its deadline passes, not at the next tick.
		time.AfterFunc(time.Until(st.AppliedAt.Add(dl))+deadlineSlack, c.assessSoon)
	}
	c.cfg.Reporter.Ack(d.App, d.Generation, d.Revision, d.Digest)
	log.Info("app synced", keyApplied, res.Count(apply.Applied), keyUnchanged, res.Count(apply.Unchanged),
		keyPruned, res.Count(apply.Pruned), keyHeld, res.Count(apply.Held), logging.KeyDuration, time.Since(start))
	for _, w := range res.Warnings {
		log.Warn("sync warning", keyWarning, newScrubber(d).scrub(w))
	}
	msg := fmt.Sprintf("revision %s synced: %d applied, %d unchanged, %d pruned", d.Revision, res.Count(apply.Applied), res.Count(apply.Unchanged), res.Count(apply.Pruned))
	if notes != "" {
		msg += "; " + notes
	}
	c.recordEvent(ctx, Event{App: d.App, Revision: d.Revision, Reason: EventSynced, Message: msg, Time: time.Now()}, eventTarget(res.Inventory))
}

// deadlineSlack is how long after a revision's progress deadline it is assessed.
const deadlineSlack = 50 * time.Millisecond

// keepWritten records the objects a failed sync wrote before failing in the app's inventory,
// so that they are pruned when no longer rendered; the rest of the state stays as it was.
func (c *Controller) keepWritten(ctx context.Context, a *app, d *Desired, applied *state.AppState, res *apply.ChangeSet, waves map[string]int) {
	c.mu.Lock()
	if a.applied != nil {
		applied = a.applied // with the hook phases done meanwhile (hooks.go)
	}
	c.mu.Unlock()
	var st state.AppState
	if applied != nil {
		st = *applied
	} else {
		st = state.AppState{App: d.App, Namespace: d.Namespace, Policy: toStatePolicy(d.Policy, d.Health, d.Access, d.Ignore)}
	}
	st.Inventory = toStateRefs(res.Inventory)
	st.Waves = waves
	_ = c.save(ctx, a, &st) // a failure is retried (save.go)
	c.mu.Lock()
	a.applied = &st
	c.mu.Unlock()
}

// failed records a failed sync (syncState.failed), nacks it and schedules a retry as the
// policy allows. An Event is recorded for the first attempt and when giving up, not for every retry.
func (c *Controller) failed(ctx context.Context, a *app, d *Desired, err error, log *slog.Logger) {
	reason := newScrubber(d).scrub(err.Error())
	c.mu.Lock()
	f := a.sync.failed(d, rejected(err), reason)
	var target apply.ObjectRef // what the Event is about: the object at fault, else one of the app's
	if oe := (*apply.ObjectError)(nil); errors.As(err, &oe) && oe.Object.Namespace != "" {
		target = oe.Object
	} else if a.applied != nil {
		target = eventTarget(fromStateRefs(a.applied.Inventory))
	}
	c.mu.Unlock()
	log.Warn("sync failed", logging.Err(errors.New(reason)), keyAttempt, f.attempt, keyRetry, f.retry)
	c.cfg.Reporter.Nack(d.App, d.Generation, reason)
	if f.attempt == 1 || !f.retry {
		c.recordEvent(ctx, Event{App: d.App, Revision: d.Revision, Reason: EventSyncFailed, Message: f.message, Time: time.Now()}, target)
	}
	if f.retry {
		c.queue.AddAfter(d.App, f.delay)
	}
}

// retryPrune schedules another attempt at the deletions that failed, after delay (0: none).
func (c *Controller) retryPrune(a *app, delay time.Duration) {
	if delay > 0 {
		c.queue.AddAfter(a.name, delay)
	}
}

// backoff is the delay before retry attempt n (1-based): duration × factor^(n-1), capped, with
// ±10% jitter.
func backoff(r Retry, n int) time.Duration {
	base, factor, ceiling := r.Duration, r.Factor, r.MaxDuration
	if base <= 0 {
		base = defaultRetryDuration
	}
	if factor < 1 {
		factor = defaultRetryFactor
	}
	if ceiling <= 0 {
		ceiling = defaultRetryMaxDuration
	}
	d := float64(base) * math.Pow(factor, float64(n-1))
	d = min(d, float64(ceiling))
	return time.Duration(d * (0.9 + 0.2*rand.Float64()))
}

// removeApp deletes an app's objects (when its policy prunes), or releases them from its
// management (with preserveResourcesOnDeletion), and deletes its state.
func (c *Controller) removeApp(ctx context.Context, a *app, applied *state.AppState) {
	log := c.log.With(logging.KeyApp, a.name)
	c.mu.Lock()
	var prune, preserve bool
	if applied != nil {
		prune, preserve = applied.Policy.Prune, applied.Policy.PreserveResourcesOnDeletion
		if a.desired != nil {
			prune, preserve = a.desired.Policy.Prune, a.desired.Policy.PreserveResourcesOnDeletion
		}
	}
	c.mu.Unlock()
	var res *apply.ChangeSet
	switch {
	case preserve:
		res = c.release(ctx, a.name, fromStateRefs(applied.Inventory))
		log.Info("app objects released, not deleted (preserveResourcesOnDeletion)", keyReleased, res.Count(apply.Released), keyKept, res.Count(apply.Orphaned))
	case prune:
		res = c.deleteInventory(ctx, a.name, fromStateRefs(applied.Inventory))
		log.Info("app objects deleted", keyDeleted, res.Count(apply.Pruned), keyKept, res.Count(apply.Orphaned))
	}
	if res != nil {
		if len(res.Inventory) > 0 {
			// Some deletions or releases failed: keep what is left in state and try again.
			st := *applied
			st.Inventory = toStateRefs(res.Inventory)
			_ = c.save(ctx, a, &st) // a failure is retried (save.go)
			c.mu.Lock()
			a.applied = &st
			c.mu.Unlock()
			c.queue.AddAfter(a.name, backoff(Retry{}, 1))
			return
		}
	}
	if err := c.deleteState(ctx, a); err != nil {
		return // retried (save.go)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.remove == 0 { // a newer desired state arrived meanwhile: start over with it
		a.applied = nil
		c.queue.Add(a.name)
		return
	}
	delete(c.apps, a.name)
	c.removed[a.name] = a.remove
	log.Info("app removed")
}
