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
	var prev []apply.ObjectRef
	if applied != nil {
		prev = fromStateRefs(applied.Inventory)
	}
	res, err := c.apply(ctx, d, prev)
	var st *state.AppState
	if err == nil {
		st = &state.AppState{
			App: d.App, Generation: d.Generation, Revision: d.Revision, Digest: d.Digest,
			Bundle: d.Bundle, Namespace: d.Namespace, Policy: toStatePolicy(d.Policy, d.Health, d.Access),
			Inventory: toStateRefs(res.Inventory), AppliedAt: time.Now().UTC().Truncate(time.Millisecond),
		}
		if applied != nil {
			st.HealthyRevision, st.HealthyDigest, st.HealthyBundle = applied.HealthyRevision, applied.HealthyDigest, applied.HealthyBundle
		}
		_ = c.save(ctx, a, st) // the cluster holds st either way; a failure is retried (save.go)
	}
	if ctx.Err() != nil {
		return // shutting down: not the revision's fault
	}
	c.metrics.synced(err, time.Since(start), res)
	if err != nil {
		if res != nil && st == nil {
			c.keepWritten(ctx, a, d, applied, res)
		}
		c.failed(ctx, a, d, err, log)
		return
	}
	notes, pending := summarize(res)
	c.mu.Lock()
	a.applied, a.acked, a.synced = st, d.Generation, d.Generation
	a.attempts, a.syncErr, a.notes, a.pending = 0, "", notes, pending
	a.stale, a.drift, a.driftRefs, a.driftAll = res.Count(apply.Stale), nil, nil, false
	c.notePruneFailures(a, res)
	c.mu.Unlock()
	c.applier.Watch(ctx, res.Inventory)
	c.mu.Lock()
	a.assessDue = true
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
func (c *Controller) keepWritten(ctx context.Context, a *app, d *Desired, applied *state.AppState, res *apply.ChangeSet) {
	var st state.AppState
	if applied != nil {
		st = *applied
	} else {
		st = state.AppState{App: d.App, Namespace: d.Namespace, Policy: toStatePolicy(d.Policy, d.Health, d.Access)}
	}
	st.Inventory = toStateRefs(res.Inventory)
	_ = c.save(ctx, a, &st) // a failure is retried (save.go)
	c.mu.Lock()
	a.applied = &st
	c.mu.Unlock()
}

// failed records a failed sync, nacks it and schedules a retry as the policy allows. A
// rejected revision is retried only within Retry.Limit (negative: without end); a transient
// failure is retried until it succeeds, with the same backoff.
// An Event is recorded for the first attempt and when giving up, not for every retry.
func (c *Controller) failed(ctx context.Context, a *app, d *Desired, err error, log *slog.Logger) {
	reason := newScrubber(d).scrub(err.Error())
	r := d.Policy.Retry
	c.mu.Lock()
	a.attempts++
	n := a.attempts
	retry := !apply.IsRejected(err) || r.Limit < 0 || n <= r.Limit
	delay := backoff(r, n)
	of := ""
	if r.Limit >= 0 && apply.IsRejected(err) {
		of = fmt.Sprintf("/%d", r.Limit+1)
	}
	if retry {
		a.syncErr = fmt.Sprintf("sync of revision %s failed (attempt %d%s, retrying in %s): %s", d.Revision, n, of, delay.Round(time.Second), reason)
	} else {
		a.gaveUp = d.Generation
		a.syncErr = fmt.Sprintf("sync of revision %s failed (attempt %d%s, giving up): %s", d.Revision, n, of, reason)
	}
	msg := a.syncErr
	var target apply.ObjectRef // what the Event is about: the object at fault, else one of the app's
	if oe := (*apply.ObjectError)(nil); errors.As(err, &oe) && oe.Object.Namespace != "" {
		target = oe.Object
	} else if a.applied != nil {
		target = eventTarget(fromStateRefs(a.applied.Inventory))
	}
	c.mu.Unlock()
	log.Warn("sync failed", logging.Err(errors.New(reason)), keyAttempt, n, keyRetry, retry)
	c.cfg.Reporter.Nack(d.App, d.Generation, reason)
	if n == 1 || !retry {
		c.recordEvent(ctx, Event{App: d.App, Revision: d.Revision, Reason: EventSyncFailed, Message: msg, Time: time.Now()}, target)
	}
	if retry {
		c.queue.AddAfter(d.App, delay)
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

// summarize turns what a sync left behind into a status note; pending is true when objects
// await pruning or confirmation.
func summarize(res *apply.ChangeSet) (notes string, pending bool) {
	var parts []string
	if n := res.Count(apply.Held); n > 0 {
		parts = append(parts, fmt.Sprintf("%d deletions awaiting confirmation", n))
	}
	if n := res.Count(apply.Stale); n > 0 {
		parts = append(parts, fmt.Sprintf("%d objects no longer rendered and not pruned", n))
	}
	if n := res.Count(apply.Orphaned); n > 0 {
		parts = append(parts, fmt.Sprintf("%d objects left in the cluster (kept from pruning)", n))
	}
	if n := res.Count(apply.PruneFailed); n > 0 {
		parts = append(parts, fmt.Sprintf("%d deletions failed and are retried (%s among them)", n, res.Objects(apply.PruneFailed)[0]))
	}
	for i, p := range parts {
		if i == 0 {
			notes = p
		} else {
			notes += "; " + p
		}
	}
	return notes, res.Count(apply.Held)+res.Count(apply.Stale)+res.Count(apply.PruneFailed) > 0
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
		res = c.applier.Release(ctx, a.name, fromStateRefs(applied.Inventory))
		log.Info("app objects released, not deleted (preserveResourcesOnDeletion)", keyReleased, res.Count(apply.Released), keyKept, res.Count(apply.Orphaned))
	case prune:
		res = c.applier.DeleteInventory(ctx, a.name, fromStateRefs(applied.Inventory))
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

// notePruneFailures records the deletions res failed (they stay in the inventory) and, when
// there are any, schedules another attempt with backoff; a prune without failures resets it.
// Caller holds Controller.mu.
func (c *Controller) notePruneFailures(a *app, res *apply.ChangeSet) {
	a.pruneFailed = res.Count(apply.PruneFailed)
	if a.pruneFailed == 0 {
		a.pruneTries = 0
		return
	}
	a.pruneTries++
	c.queue.AddAfter(a.name, backoff(Retry{}, a.pruneTries))
}

// apply applies d with the engine, after failing a revision whose EncryptedSecrets could not
// be decrypted (encrypted.go).
func (c *Controller) apply(ctx context.Context, d *Desired, prev []apply.ObjectRef) (*apply.ChangeSet, error) {
	if d.decryptErr != nil {
		return nil, d.decryptErr
	}
	return c.applier.Apply(ctx, d.revision(), prev)
}

// heal re-applies the objects of d that refs name, as apply does.
func (c *Controller) heal(ctx context.Context, d *Desired, refs, inventory []apply.ObjectRef) (*apply.ChangeSet, error) {
	if d.decryptErr != nil {
		return nil, d.decryptErr
	}
	return c.applier.Heal(ctx, d.revision(), refs, inventory)
}
