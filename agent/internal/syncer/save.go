package syncer

import (
	"context"
	"fmt"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Saving state.
//
// What the cluster holds is recorded in memory (app.applied) whatever happens; the app's
// state Secrets are its durable copy. A save or delete of them that fails does not undo the
// in-memory record (the inventory stays complete, so what was applied is still pruned when
// it leaves Git): the app is marked unsaved, reported Degraded with "state not saved" first
// in its message, and reconcile writes the state again with jittered exponential backoff
// (saveRetry) until a write succeeds.

// saveRetry is the backoff of state writes that failed: 1 s doubling to 1 minute.
var saveRetry = Retry{Duration: time.Second, Factor: 2, MaxDuration: time.Minute}

// unsavedState is an app's failed state writes; guarded by Controller.mu.
type unsavedState struct {
	failures int       // consecutive failed writes; 0 when the state is saved
	err      string    // the last failure, scrubbed
	retryAt  time.Time // when the next write is due
}

// save writes st, the state the app now holds (the caller records it as a.applied, whether
// the write succeeds or not), and records the outcome. Caller holds a.op.
func (c *Controller) save(ctx context.Context, a *app, st *state.AppState) error {
	err := c.store.Save(ctx, st)
	c.stateWritten(ctx, a, err)
	return err
}

// deleteState deletes the app's state, recording the outcome as save does. Caller holds a.op.
func (c *Controller) deleteState(ctx context.Context, a *app) error {
	err := c.store.Delete(ctx, a.name)
	c.stateWritten(ctx, a, err)
	return err
}

// stateWritten records the outcome of a state write; a failure schedules another attempt.
func (c *Controller) stateWritten(ctx context.Context, a *app, err error) {
	c.mu.Lock()
	if err == nil {
		was := a.unsaved.failures
		a.unsaved = unsavedState{}
		c.mu.Unlock()
		if was > 0 {
			c.log.Info("app state saved", logging.KeyApp, a.name, keyAttempt, was+1)
		}
		return
	}
	if ctx.Err() != nil {
		c.mu.Unlock()
		return // shutting down: the next start works from what was saved
	}
	a.unsaved.failures++
	n := a.unsaved.failures
	delay := backoff(saveRetry, n)
	text := err.Error()
	if a.desired != nil {
		text = newScrubber(a.desired).scrub(text)
	}
	a.unsaved.err, a.unsaved.retryAt = text, time.Now().Add(delay)
	c.mu.Unlock()
	c.log.Warn("saving app state failed; retrying", logging.KeyApp, a.name, keyAttempt, n,
		logging.KeyRetryIn, delay.Round(time.Millisecond), logging.Err(err))
	c.queue.AddAfter(a.name, delay)
}

// saveUnsaved writes the state of an app whose last state write failed, once its retry is
// due. Caller holds a.op.
func (c *Controller) saveUnsaved(ctx context.Context, a *app) {
	c.mu.Lock()
	st, u := a.applied, a.unsaved
	c.mu.Unlock()
	if u.failures == 0 || st == nil {
		return
	}
	if wait := time.Until(u.retryAt); wait > 0 {
		c.queue.AddAfter(a.name, wait) // woken early (a new revision, a drift): not due yet
		return
	}
	_ = c.save(ctx, a, st)
}

// unsavedStatus marks a status whose app's state is not saved. Caller holds Controller.mu.
func (a *app) unsavedStatus(s *AppStatus) {
	u := a.unsaved
	if u.failures == 0 {
		return
	}
	s.Health = string(health.Degraded)
	msg := fmt.Sprintf("state not saved (attempt %d failed, retrying): %s", u.failures, u.err)
	if s.Message == "" {
		s.Message = msg
	} else {
		s.Message = msg + "; " + s.Message
	}
}
