package syncer

// Sync waves.
//
// A revision's objects are planned (agent/internal/plan): by their sync wave
// (argocd.argoproj.io/sync-wave or flotilla.dev/wave), Namespaces and CRDs of every wave first.
// A revision of one wave is applied in one go, as it always was. A revision of several waves is
// applied one wave at a time (apply.Applier.ApplyStep), and each wave but the last must be
// Healthy, by the app's health rules, before the next one is applied: the worker waits, at most
// the app's progress deadline (the sync timeout when it has none) per wave, reporting which
// wave it waits for in the app's status message. Then what the revision no longer holds is
// pruned, the highest wave first (as last applied: AppState.Waves), or after everything is
// Healthy with PruneLast.
//
// A wave not Healthy in time fails the sync (a *WaveError, retried as the sync policy retries
// a rejected revision) and, with rollback: auto, the agent returns to the last healthy
// revision as when a revision turns unhealthy (rollback.go). A newer revision from the hub
// ends the wait at once: the objects written stay in the inventory and the newer revision is
// applied instead. A self-heal re-applies only the objects that drifted and a sync of what the
// cluster already holds writes nothing, so neither waits for waves again.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/plan"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
)

// wavePoll is how often a wave's health is read (from the watch caches) while a sync waits.
const wavePoll = 100 * time.Millisecond

// errSuperseded ends a sync in waves when a newer revision arrives.
var errSuperseded = errors.New("superseded by a newer revision")

// WaveError is a wave whose objects were not Healthy within the deadline.
type WaveError struct {
	Wave     int
	Deadline time.Duration
	// NotHealthy names each object not Healthy, its health and why.
	NotHealthy []string
}

func (e *WaveError) Error() string {
	const most = 5
	objs := strings.Join(e.NotHealthy[:min(len(e.NotHealthy), most)], "; ")
	if n := len(e.NotHealthy) - most; n > 0 {
		objs += fmt.Sprintf("; and %d more", n)
	}
	return fmt.Sprintf("wave %d not Healthy within %s: %s", e.Wave, e.Deadline, objs)
}

// rejected reports whether a sync failed in a way that fails again the same way: retried only
// as the sync policy says (syncState.failed).
func rejected(err error) bool {
	var ae *plan.AnnotationError
	var we *WaveError
	var he *HookError
	return apply.IsRejected(err) || errors.As(err, &ae) || errors.As(err, &we) || errors.As(err, &he)
}

// splitHooks moves r's hooks and skipped objects out of its Objects: the engine applies,
// inventories and drift-checks only the rest. A revision that cannot be planned stays whole
// (sync refuses it before anything is applied).
func splitHooks(r *apply.Revision) {
	p, err := plan.New(r.Objects)
	if err != nil || (len(p.Hooks) == 0 && len(p.Skipped) == 0) {
		return
	}
	r.Objects, r.Skipped = p.Objects, p.Skipped
	seen := map[*unstructured.Unstructured]bool{}
	for _, h := range p.Hooks {
		if !seen[h.Object] {
			seen[h.Object] = true
			r.Hooks = append(r.Hooks, h.Object)
		}
	}
}

// applyPlanned applies d as its plan says, from what applied holds. It returns what was done,
// and the waves of the resulting inventory's objects (for AppState.Waves). A revision whose
// ordering annotations cannot be read is refused (*plan.AnnotationError) before anything.
func (c *Controller) applyPlanned(ctx context.Context, a *app, d *Desired, applied *state.AppState) (*apply.ChangeSet, map[string]int, error) {
	var prev []apply.ObjectRef
	var prevWaves map[string]int
	if applied != nil {
		prev, prevWaves = fromStateRefs(applied.Inventory), applied.Waves
	}
	p, err := plan.New(d.Objects)
	if err != nil {
		return nil, nil, err
	}
	if p.Simple() || d.decryptErr != nil {
		res, err := c.apply(ctx, d, prev, prevWaves)
		if res == nil {
			return nil, nil, err
		}
		now := map[string]int{}
		if len(p.Steps) > 0 {
			appliedIn(res, p.Steps[0].Wave, now)
		}
		return res, keptWaves(prevWaves, res.Inventory, now), err
	}
	return c.applySteps(ctx, a, d, p, prev, prevWaves)
}

// applySteps applies d's Sync phase one wave at a time, waiting for each wave but the last to be
// Healthy, then prunes. Caller holds a.op.
func (c *Controller) applySteps(ctx context.Context, a *app, d *Desired, p *plan.Plan, prev []apply.ObjectRef, prevWaves map[string]int) (*apply.ChangeSet, map[string]int, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	a.sync.cancelSteps = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		a.sync.cancelSteps, a.sync.progress = nil, ""
		c.mu.Unlock()
	}()
	cause := func(err error) error {
		if ctx.Err() == nil && sctx.Err() != nil {
			return errSuperseded
		}
		return err
	}

	full := d.revision()
	full.Waves = prevWaves
	if err := c.bounded(sctx, func(ctx context.Context) error { return c.applier.Check(ctx, full) }); err != nil {
		return nil, nil, cause(err) // objects and hooks are checked before anything is written
	}
	total := &apply.ChangeSet{}
	inventory := prev
	now := map[string]int{}
	partial := func(err error) (*apply.ChangeSet, map[string]int, error) {
		if total.Count(apply.Applied) == 0 {
			return nil, nil, cause(err)
		}
		total.Inventory = inventory
		return total, keptWaves(prevWaves, inventory, now), cause(err)
	}
	done := c.hooksDone(a, d)
	failed := func(err error) (*apply.ChangeSet, map[string]int, error) {
		c.runSyncFail(ctx, a, d, p, cause(err))
		return partial(err)
	}
	// runPhase runs the hooks of step s unless its phase already ran for d.
	runPhase := func(s plan.Step) error {
		if len(s.Hooks) == 0 || slices.Contains(done, string(s.Phase)) {
			return nil
		}
		return c.runHooks(sctx, a, d, s)
	}
	last := map[plan.Phase]int{} // the index of each phase's last step
	for i, s := range p.Steps {
		last[s.Phase] = i
	}
	steps := syncSteps(p)
	_, postSync := last[plan.PostSync]
	for i, s := range p.Steps {
		if s.Phase == plan.PostSync {
			break // after the prune
		}
		if s.Phase == plan.Sync {
			c.setProgress(a, fmt.Sprintf("revision %s: applying wave %d (%d of %d)", d.Revision, s.Wave, slices.IndexFunc(steps, func(x plan.Step) bool { return x.Wave == s.Wave })+1, len(steps)))
			step := d.revision()
			step.Objects, step.Hooks, step.Skipped = s.Objects, nil, nil
			var res *apply.ChangeSet
			err := c.bounded(sctx, func(ctx context.Context) (err error) {
				res, err = c.applier.ApplyStep(ctx, step, inventory)
				return err
			})
			if res != nil {
				total.Entries = append(total.Entries, res.Entries...)
				total.Warnings = append(total.Warnings, res.Warnings...)
				inventory = res.Inventory
				appliedIn(res, s.Wave, now)
			}
			if err != nil {
				return failed(err)
			}
			if err := runPhase(s); err != nil {
				return failed(err)
			}
			if i < last[plan.Sync] || postSync {
				n := slices.IndexFunc(steps, func(x plan.Step) bool { return x.Wave == s.Wave }) + 1
				if err := c.waitWave(sctx, a, d, s.Wave, fmt.Sprintf("%d of %d", n, len(steps)), res); err != nil {
					return failed(err)
				}
			}
		} else if err := runPhase(s); err != nil {
			return failed(err)
		}
		if i == last[s.Phase] && phaseHasHooks(p, s.Phase) {
			c.phaseDone(ctx, a, d, s.Phase)
		}
	}
	var res *apply.ChangeSet
	err := c.bounded(sctx, func(ctx context.Context) (err error) {
		res, err = c.applier.PruneSteps(ctx, full, prev, inventory)
		return err
	})
	if err != nil {
		return failed(err)
	}
	total.Entries = append(total.Entries, res.Entries...)
	total.Warnings = append(total.Warnings, res.Warnings...)
	total.PruneTook, total.Inventory = res.PruneTook, res.Inventory
	inventory = res.Inventory // what a failed PostSync hook leaves
	for i, s := range p.Steps {
		if s.Phase != plan.PostSync {
			continue
		}
		if err := runPhase(s); err != nil {
			return failed(err)
		}
		if i == last[plan.PostSync] {
			c.phaseDone(ctx, a, d, plan.PostSync)
		}
	}
	return total, keptWaves(prevWaves, total.Inventory, now), nil
}

// phaseHasHooks reports whether any step of phase in p has hooks.
func phaseHasHooks(p *plan.Plan, phase plan.Phase) bool {
	return slices.ContainsFunc(p.Hooks, func(h plan.Hook) bool { return h.Phase == phase })
}

// syncSteps are the steps of p's Sync phase.
func syncSteps(p *plan.Plan) []plan.Step {
	var out []plan.Step
	for _, s := range p.Steps {
		if s.Phase == plan.Sync {
			out = append(out, s)
		}
	}
	return out
}

// waitWave waits until every object of refs, wave's objects, is Healthy, at most the app's
// progress deadline (the sync timeout when it has none). Caller holds a.op.
func (c *Controller) waitWave(ctx context.Context, a *app, d *Desired, wave int, of string, res *apply.ChangeSet) error {
	var refs []apply.ObjectRef // the wave's objects of the inventory (not a namespace CreateNamespace made)
	for _, r := range append(res.Objects(apply.Applied), res.Objects(apply.Unchanged)...) {
		if slices.ContainsFunc(res.Inventory, func(i apply.ObjectRef) bool { return i.Key() == r.Key() }) {
			refs = append(refs, r)
		}
	}
	limit := d.Health.ProgressDeadline
	if limit <= 0 {
		limit = c.cfg.SyncTimeout
	}
	assessor := c.assessor(a, d.Health.Rules)
	var notHealthy []string
	err := wait.PollUntilContextTimeout(ctx, wavePoll, limit, true, func(ctx context.Context) (bool, error) {
		var now []string
		for _, r := range refs {
			s, msg := health.Unknown, ""
			live, err := c.applier.Get(ctx, r)
			switch {
			case err != nil:
				msg = fmt.Sprintf("cannot read: %v", err)
			case live != nil && live.GetGeneration() < res.Generations[r.Key()]:
				s, msg = health.Progressing, "the write is not seen yet" // the watch cache lags behind
			default:
				s, msg = assessor.Assess(live)
			}
			if s != health.Healthy {
				now = append(now, fmt.Sprintf("%s: %s: %s", r, s, msg))
			}
		}
		if ctx.Err() != nil {
			return false, nil // cut short: what the last whole pass saw stands
		}
		notHealthy = now
		if len(notHealthy) > 0 {
			c.setProgress(a, fmt.Sprintf("revision %s: waiting for wave %d (%s) to be Healthy: %s", d.Revision, wave, of, notHealthy[0]))
		}
		return len(notHealthy) == 0, nil
	})
	if err != nil && ctx.Err() == nil {
		return &WaveError{Wave: wave, Deadline: limit, NotHealthy: notHealthy}
	}
	return err
}

// setProgress records and reports what a sync in waves is doing.
func (c *Controller) setProgress(a *app, msg string) {
	c.mu.Lock()
	changed := a.sync.progress != msg
	a.sync.progress = msg
	c.mu.Unlock()
	if changed {
		c.publish(a, false)
	}
}

// rollBackWave returns the app to its last healthy revision when a wave of d was not Healthy in
// time and d's health policy rolls back automatically, as rollBack does for a revision that
// turned unhealthy; d is then marked rolled back. Caller holds a.op.
func (c *Controller) rollBackWave(ctx context.Context, a *app, d *Desired, err error) {
	var we *WaveError
	if !errors.As(err, &we) || !d.Health.AutoRollback || ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	st := a.applied
	c.mu.Unlock()
	if st == nil {
		return
	}
	bad := *st // what the cluster holds: the healthy revision, and the waves d wrote
	bad.Revision, bad.Digest, bad.Bundle = d.Revision, d.Digest, d.Bundle
	bad.Policy = toStatePolicy(d.Policy, d.Health, d.Access, d.Ignore)
	if !canRollBack(&bad) {
		return
	}
	c.rollBack(ctx, a, d, &bad, err.Error())
}

// appliedIn records in waves the wave of every object res applied or found unchanged.
func appliedIn(res *apply.ChangeSet, wave int, waves map[string]int) {
	for _, e := range res.Entries {
		if e.Action == apply.Applied || e.Action == apply.Unchanged {
			waves[e.Object.Key()] = wave
		}
	}
}

// keptWaves returns the waves of inventory's objects: those applied now in now's, the others
// as before (prev); wave 0 left out, nil when every object is in wave 0.
func keptWaves(prev map[string]int, inventory []apply.ObjectRef, now map[string]int) map[string]int {
	var out map[string]int
	for _, r := range inventory {
		k := r.Key()
		w, ok := now[k]
		if !ok {
			w = prev[k]
		}
		if w != 0 {
			if out == nil {
				out = map[string]int{}
			}
			out[k] = w
		}
	}
	return out
}
