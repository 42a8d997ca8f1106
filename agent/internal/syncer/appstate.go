package syncer

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
)

// app is the controller's record of one app: what is desired and what the cluster holds, and
// the state of its sync, health, drift, rollback and state saves, each a part with its own
// transitions. Everything but the locks, the health rules and the drift contests (guarded by
// op) is guarded by Controller.mu; applied is replaced, never modified, so a copy of the
// pointer can be read without the lock.
type app struct {
	name string
	op   sync.Mutex // held while syncing, removing or assessing: serialises state writes
	pub  sync.Mutex // serialises status reports

	desired *Desired
	applied *state.AppState // what the cluster holds; nil until something was applied
	remove  uint64          // generation of a pending Remove, 0 if none

	sync     syncState
	health   healthState
	drift    driftState
	rb       rollbackState // rollback.go
	unsaved  unsavedState  // save.go
	deps     depsState     // depends.go
	reported *AppStatus    // the last status published
}

// latest is the newest generation the app has seen. Caller holds Controller.mu.
func (a *app) latest() uint64 {
	g := a.remove
	if a.desired != nil {
		g = max(g, a.desired.Generation)
	}
	if a.applied != nil {
		g = max(g, a.applied.Generation)
	}
	return g
}

// syncState is how the app's desired state is being applied.
type syncState struct {
	acked    uint64 // generation last acked
	synced   uint64 // generation last applied (a sync request is done)
	attempts int    // failed sync attempts at the desired generation
	gaveUp   uint64 // generation whose retries are exhausted
	err      string // the last failure, scrubbed, for the status message
	notes    string // held / stale / orphaned objects of the last sync
	pending  bool   // objects await pruning or confirmation: not Synced
	stale    int    // objects no longer rendered, kept (for PruneLast: until healthy)
	// pruneFailed counts the deletions of the last prune that failed; they are retried, the
	// pruneTries-th time with backoff.
	pruneFailed, pruneTries int
	// progress says which step of a sync in waves is under way (waves.go); cancelSteps ends
	// it when a newer revision arrives.
	progress    string
	cancelSteps context.CancelFunc
}

// restart starts counting attempts again: a new desired state arrived.
func (s *syncState) restart() { s.attempts, s.err = 0, "" }

// done records generation as applied and acknowledged.
func (s *syncState) done(generation uint64) { s.acked, s.synced = generation, generation }

// forced reports whether d is an operator's sync request not yet carried out.
func (s *syncState) forced(d *Desired) bool { return d.SyncRequested && s.synced < d.Generation }

// succeeded records a sync of generation that did what res says. It returns when to retry
// failed deletions, 0 if there are none.
func (s *syncState) succeeded(generation uint64, res *apply.ChangeSet) time.Duration {
	s.done(generation)
	s.restart()
	return s.changed(res)
}

// changed records what an apply or prune left behind (held, stale, orphaned objects and failed
// deletions). It returns when to retry failed deletions, 0 if there are none.
func (s *syncState) changed(res *apply.ChangeSet) time.Duration {
	s.notes, s.pending = summarize(res)
	s.stale = res.Count(apply.Stale)
	s.pruneFailed = res.Count(apply.PruneFailed)
	if s.pruneFailed == 0 {
		s.pruneTries = 0
		return 0
	}
	s.pruneTries++
	return backoff(Retry{}, s.pruneTries)
}

// failure is what failed records of a failed sync.
type failure struct {
	attempt int
	retry   bool
	delay   time.Duration // before the retry
	message string        // for the status and the Event
}

// failed records a failed attempt at d: a rejected revision is retried only within
// Retry.Limit (negative: without end); a transient failure is retried until it succeeds, with
// the same backoff. reason is the scrubbed error.
func (s *syncState) failed(d *Desired, rejected bool, reason string) failure {
	r := d.Policy.Retry
	s.attempts++
	f := failure{attempt: s.attempts, retry: !rejected || r.Limit < 0 || s.attempts <= r.Limit, delay: backoff(r, s.attempts)}
	of := ""
	if r.Limit >= 0 && rejected {
		of = fmt.Sprintf("/%d", r.Limit+1)
	}
	if f.retry {
		s.err = fmt.Sprintf("sync of revision %s failed (attempt %d%s, retrying in %s): %s", d.Revision, f.attempt, of, f.delay.Round(time.Second), reason)
	} else {
		s.gaveUp = d.Generation
		s.err = fmt.Sprintf("sync of revision %s failed (attempt %d%s, giving up): %s", d.Revision, f.attempt, of, reason)
	}
	f.message = s.err
	return f
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
	return strings.Join(parts, "; "), res.Count(apply.Held)+res.Count(apply.Stale)+res.Count(apply.PruneFailed) > 0
}

// healthState is the app's last health assessment.
type healthState struct {
	status    health.Status
	msg       string
	resources []ResourceStatus
	of        *state.AppState // the applied state it was assessed for
	// due: a new revision was applied; assess it once reconcile is done.
	due   bool
	rules ruleSet // the compiled custom rules; guarded by app.op
}

// assessed records an assessment of st.
func (h *healthState) assessed(st *state.AppState, status health.Status, msg string, resources []ResourceStatus) {
	h.status, h.msg, h.resources, h.of = status, msg, resources, st
}

// healthyNow reports whether st was assessed Healthy.
func (h *healthState) healthyNow(st *state.AppState) bool {
	return h.of == st && h.status == health.Healthy
}

// takeDue reports whether an assessment was asked for, and clears the request.
func (h *healthState) takeDue() bool {
	due := h.due
	h.due = false
	return due
}

// driftState is what the app's objects look like against what it holds.
type driftState struct {
	items []DriftItem // found by the last checks
	// refs are the objects that changed since the last drift check; all asks to compare every
	// object (after a start: changes made while the agent was away).
	refs map[string]driftNote
	all  bool
	// contests are the self-heals of objects others change back; guarded by app.op.
	contests map[string]*contest
}

// driftNote is an object that changed since the last drift check, and when that was seen.
type driftNote struct {
	ref apply.ObjectRef
	at  time.Time
}

// note marks ref to be compared at the next drift check, noting when its change was first
// seen.
func (d *driftState) note(ref apply.ObjectRef) {
	if d.refs == nil {
		d.refs = map[string]driftNote{}
	}
	if _, ok := d.refs[ref.Key()]; !ok {
		d.refs[ref.Key()] = driftNote{ref: ref, at: time.Now()}
	}
}

// take returns the objects to compare, and whether all are, and clears them.
func (d *driftState) take() (map[string]driftNote, bool) {
	refs, all := d.refs, d.all
	d.refs, d.all = nil, false
	return refs, all
}

// reset forgets what was found and what to compare: a new revision was applied.
func (d *driftState) reset() { d.items, d.refs, d.all = nil, nil, false }

// found replaces what a check of the objects only names (all when nil) found.
func (d *driftState) found(found []DriftItem, only map[string]bool) {
	var out []DriftItem
	if only != nil {
		for _, it := range d.items {
			if !only[it.Object.Key()] {
				out = append(out, it)
			}
		}
	}
	out = append(out, found...)
	slices.SortFunc(out, func(x, y DriftItem) int { return strings.Compare(x.Object.Key(), y.Object.Key()) })
	d.items = out
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
// the change undid the agent's last correction at once. Caller holds app.op.
func (d *driftState) healDelay(key, state string, changed, now time.Time) (time.Duration, bool) {
	r := d.contests[key]
	if r == nil || r.state != state {
		return 0, false
	}
	if r.due.IsZero() {
		if changed.Sub(r.last) >= contestQuick {
			return 0, false // edited again later: plain drift
		}
		delay := float64(contestFirst) * math.Pow(contestFactor, float64(r.heals-1))
		r.due = r.last.Add(time.Duration(min(delay, float64(contestMax))))
	}
	return max(r.due.Sub(now), 0), true
}

// healed records the correction of the object key, drifted to state, written at now;
// contested continues a row of corrections undone at once. Caller holds app.op.
func (d *driftState) healed(key, state string, now time.Time, contested bool) {
	if d.contests == nil {
		d.contests = map[string]*contest{}
	}
	r := d.contests[key]
	if r == nil || !contested || r.state != state {
		r = &contest{state: state}
		d.contests[key] = r
	}
	r.heals++
	r.last, r.due = now, time.Time{}
	// Forget objects left alone for long: the map stays as small as the current fights.
	for k, o := range d.contests {
		if now.Sub(o.last) >= contestMax+contestQuick && (o.due.IsZero() || now.After(o.due)) {
			delete(d.contests, k)
		}
	}
}
