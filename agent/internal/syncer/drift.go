package syncer

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	a.noteDrift(ref)
	c.mu.Unlock()
	c.queue.AddAfter(app, driftDelay)
}

// noteDrift marks ref to be compared at the next drift check, noting when its change was
// first seen. Caller holds Controller.mu.
func (a *app) noteDrift(ref apply.ObjectRef) {
	if a.driftRefs == nil {
		a.driftRefs = map[string]driftNote{}
	}
	if _, ok := a.driftRefs[ref.Key()]; !ok {
		a.driftRefs[ref.Key()] = driftNote{ref: ref, at: time.Now()}
	}
}

// driftNote is an object that changed since the last drift check, and when that was seen.
type driftNote struct {
	ref apply.ObjectRef
	at  time.Time
}

// Self-heal tells a controller that reverts the agent's corrections from a person editing now
// and then. A change back to the same drifted state seen within contestQuick of the agent's
// correcting write is another actor undoing it: the object is contested, and the n-th
// correction in such a row waits contestFirst × contestFactor^(n-2) after the one before, at
// most contestMax, the object being reported contested meanwhile. Any other change (a new
// value, or the same one later than contestQuick after the correction, such as a person
// running kubectl scale again) is plain drift, corrected at once.
const (
	contestQuick  = 2 * time.Second
	contestFirst  = 2 * time.Second
	contestFactor = 3
	contestMax    = 5 * time.Minute
)

// contest is the self-heal record of one object.
type contest struct {
	heals int       // corrections in a row, each undone at once
	last  time.Time // when the last correction was written
	state string    // the drifted state it corrected (DriftItem.state)
	due   time.Time // set while a contested correction waits: when it may be made
}

// healDelay returns how long the correction of the object key, drifted to state by a change
// seen at changed, must still wait (0: correct it now), and whether the object is contested:
// the change undid the agent's last correction at once. Caller holds a.op.
func (a *app) healDelay(key, state string, changed, now time.Time) (time.Duration, bool) {
	r := a.contests[key]
	if r == nil || r.state != state {
		return 0, false
	}
	if r.due.IsZero() {
		if changed.Sub(r.last) >= contestQuick {
			return 0, false // edited again later: plain drift
		}
		d := float64(contestFirst) * math.Pow(contestFactor, float64(r.heals-1))
		r.due = r.last.Add(time.Duration(min(d, float64(contestMax))))
	}
	return max(r.due.Sub(now), 0), true
}

// healed records the correction of the object key, drifted to state, written at now;
// contested continues a row of corrections undone at once. Caller holds a.op.
func (a *app) healed(key, state string, now time.Time, contested bool) {
	if a.contests == nil {
		a.contests = map[string]*contest{}
	}
	r := a.contests[key]
	if r == nil || !contested || r.state != state {
		r = &contest{state: state}
		a.contests[key] = r
	}
	r.heals++
	r.last, r.due = now, time.Time{}
	// Forget objects left alone for long: the map stays as small as the current fights.
	for k, o := range a.contests {
		if now.Sub(o.last) >= contestMax+contestQuick && (o.due.IsZero() || now.After(o.due)) {
			delete(a.contests, k)
		}
	}
}

// checkDrift compares the objects that changed (or, after a start, all of them) with what the
// app holds and, with automated self-heal on and nothing newer to apply, re-applies just those
// that drifted. Caller holds a.op.
func (c *Controller) checkDrift(ctx context.Context, a *app, d *Desired, applied *state.AppState) {
	c.mu.Lock()
	refs, all := a.driftRefs, a.driftAll
	a.driftRefs, a.driftAll = nil, false
	c.mu.Unlock()
	if (len(refs) == 0 && !all) || applied == nil {
		return
	}
	requeue := func(delay time.Duration, again []apply.ObjectRef) {
		c.mu.Lock()
		for _, r := range again {
			a.noteDrift(r)
		}
		if all {
			a.driftAll = true
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
	diffs, err := c.applier.Drift(ctx, held.revision(), only)
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

	if len(found) > 0 && held == d && d.Policy.Automated && d.Policy.SelfHeal {
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
			delay, fought := a.healDelay(key, found[i].state, changed, now)
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
					a.healed(r.Key(), states[i], written, contested[i])
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
	a.drift = mergeDrift(a.drift, found, only)
	c.mu.Unlock()
}

// mergeDrift replaces, in prev, what a drift check of the objects only names (all when nil)
// found.
func mergeDrift(prev, found []DriftItem, only map[string]bool) []DriftItem {
	var out []DriftItem
	if only != nil {
		for _, it := range prev {
			if !only[it.Object.Key()] {
				out = append(out, it)
			}
		}
	}
	out = append(out, found...)
	slices.SortFunc(out, func(x, y DriftItem) int { return strings.Compare(x.Object.Key(), y.Object.Key()) })
	return out
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
