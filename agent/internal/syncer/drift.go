package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Drift types.
const (
	DriftMissing  = apply.DriftMissing
	DriftModified = apply.DriftModified
)

// driftDelay coalesces bursts of events into one check.
const driftDelay = 100 * time.Millisecond

// noteChange is the watcher's callback: an object of app changed; compare it shortly.
func (c *Controller) noteChange(app string, ref apply.ObjectRef) {
	c.mu.Lock()
	a := c.apps[app]
	if a == nil || a.applied == nil {
		c.mu.Unlock()
		return
	}
	a.drift.note(ref)
	c.mu.Unlock()
	c.queue.AddAfter(app, driftDelay)
}

// checkDrift compares the objects that changed (or, after a start, all of them) with what the
// app holds and, with automated self-heal on and nothing newer to apply, re-applies just those
// that drifted. Caller holds a.op.
func (c *Controller) checkDrift(ctx context.Context, a *app, d *Desired, applied *state.AppState) {
	c.mu.Lock()
	refs, all := a.drift.take()
	c.mu.Unlock()
	if (len(refs) == 0 && !all) || applied == nil {
		return
	}
	requeue := func(delay time.Duration, again []apply.ObjectRef) {
		c.mu.Lock()
		for _, r := range again {
			a.drift.note(r)
		}
		if all {
			a.drift.all = true
		}
		c.mu.Unlock()
		c.queue.AddAfter(a.name, delay)
	}
	log := c.log.With(logging.KeyApp, a.name, logging.KeyRevision, applied.Revision)
	held := d
	if d == nil || d.Digest != applied.Digest {
		var err error
		if held, err = desiredFromState(applied); err != nil {
			log.Warn("drift check skipped: state bundle unreadable", logging.Err(err))
			return
		}
	}
	var only map[string]bool
	if !all {
		only = make(map[string]bool, len(refs))
		for k := range refs {
			only[k] = true
		}
	}
	diffs, err := c.drifted(ctx, held, only)
	if err != nil {
		var ne *apply.NamespaceError
		if !errors.As(err, &ne) {
			log.Warn("drift check failed", logging.Err(errors.New(newScrubber(held).scrub(err.Error()))))
			again := make([]apply.ObjectRef, 0, len(refs))
			for _, n := range refs {
				again = append(again, n.ref)
			}
			requeue(backoff(Retry{}, 1), again)
		}
		return
	}
	found := make([]DriftItem, len(diffs))
	for i, d := range diffs {
		found[i] = DriftItem{Object: d.Object, Type: d.Type, Diff: d.Diff, state: d.Fingerprint}
	}
	c.metrics.driftDetected(found)

	if len(found) > 0 && held == d && heals(d.Policy) {
		now := time.Now()
		var fix, later []apply.ObjectRef
		var states []string
		var contested []bool
		wait := time.Duration(0)
		for i := range found {
			key := found[i].Object.Key()
			changed := now
			if n, ok := refs[key]; ok {
				changed = n.at
			}
			delay, fought := a.drift.healDelay(key, found[i].state, changed, now)
			if delay > 0 {
				found[i].Contested = true
				later = append(later, found[i].Object)
				if wait == 0 || delay < wait {
					wait = delay
				}
				continue
			}
			fix = append(fix, found[i].Object)
			states = append(states, found[i].state)
			contested = append(contested, fought)
		}
		if len(fix) > 0 {
			start := time.Now()
			_, err := c.heal(ctx, d, fix, fromStateRefs(applied.Inventory))
			if err != nil {
				log.Warn("self-heal failed", logging.Err(errors.New(newScrubber(d).scrub(err.Error()))))
				requeue(backoff(d.Policy.Retry, 1), fix)
			} else {
				written := time.Now()
				healedKeys := map[string]bool{}
				for i, r := range fix {
					a.drift.healed(r.Key(), states[i], written, contested[i])
					healedKeys[r.Key()] = true
				}
				found = slices.DeleteFunc(found, func(it DriftItem) bool { return healedKeys[it.Object.Key()] })
				c.metrics.driftCorrected(len(fix), time.Since(start))
				log.Info("drift corrected", logging.KeyCount, len(fix))
				c.recordEvent(ctx, Event{App: a.name, Revision: applied.Revision, Reason: EventDriftCorrected, Time: now,
					Message: fmt.Sprintf("revision %s: %s", applied.Revision, describeRefs("re-applied", fix))}, eventTarget(fix))
			}
		}
		if len(later) > 0 {
			log.Warn("objects contested: another actor keeps changing them back; self-heal backs off",
				logging.KeyCount, len(later), keyRetry, wait.Round(time.Millisecond))
			requeue(wait, later)
		}
	}
	if n := len(found); n > 0 {
		log.Info("drift detected", logging.KeyCount, n)
	}
	c.mu.Lock()
	a.drift.found(found, only)
	c.mu.Unlock()
}

// describeRefs names up to three objects for an Event message.
func describeRefs(verb string, refs []apply.ObjectRef) string {
	const most = 3
	var names []string
	for i, r := range refs {
		if i == most {
			names = append(names, fmt.Sprintf("and %d more", len(refs)-most))
			break
		}
		names = append(names, r.String())
	}
	return verb + " " + strings.Join(names, ", ")
}
