package syncer

// Hooks.
//
// Argo CD's hooks (argocd.argoproj.io/hook: PreSync, Sync, PostSync, SyncFail, Skip) and Helm's
// mapped onto them are planned with the waves (agent/internal/plan). A sync runs, in order: the
// PreSync hooks, wave by wave; the Sync phase, each wave's objects applied and its Sync hooks
// run together; the prune; then, once everything is Healthy, the PostSync hooks. A hook is
// created (its object of an earlier run deleted first with BeforeHookCreation, the default)
// and waited for until it completes: Healthy by the health rules (a Job Complete, a Pod
// Succeeded) is success, Degraded (a Job Failed, a Pod Failed) failure; at most the app's
// progress deadline (the sync timeout when it has none). HookSucceeded and HookFailed delete it
// after. Each outcome is reported (Reporter.Hook: the hub's history).
//
// A hook that fails fails the sync (a *HookError, retried as a rejected revision): what comes
// after it is not applied or pruned, so a failed PreSync hook leaves the previous revision
// running untouched; the SyncFail hooks run; the sync is NACKed (sync-failed). A phase whose
// hooks all succeeded is recorded in the app's state (AppState.Hooks) for the revision: it does
// not run again for it, not on a re-sync, a retry or an agent restart. Self-heal never runs
// hooks. Hooks are policy-checked with the revision's objects and never inventoried, pruned or
// drift-checked.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/plan"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// hookPoll is how often a running hook is read.
const hookPoll = 200 * time.Millisecond

// HookError is a hook that failed, or did not complete in time.
type HookError struct {
	Phase   plan.Phase
	Object  apply.ObjectRef
	Message string
}

func (e *HookError) Error() string {
	return fmt.Sprintf("%s hook %s failed: %s", e.Phase, e.Object, e.Message)
}

// hooksDone returns the phases whose hooks already ran to success for d. Caller holds a.op.
func (c *Controller) hooksDone(a *app, d *Desired) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := a.applied; st != nil && st.Hooks != nil && st.Hooks.Digest == d.Digest {
		return st.Hooks.Done
	}
	return nil
}

// phaseDone records in the app's state that phase's hooks ran to success for d. Caller holds
// a.op.
func (c *Controller) phaseDone(ctx context.Context, a *app, d *Desired, phase plan.Phase) {
	done := c.hooksDone(a, d)
	if slices.Contains(done, string(phase)) {
		return
	}
	c.mu.Lock()
	var next state.AppState
	if a.applied != nil {
		next = *a.applied
	} else {
		next = state.AppState{App: d.App, Namespace: d.Namespace, Policy: toStatePolicy(d.Policy, d.Health, d.Access, d.Ignore)}
	}
	c.mu.Unlock()
	next.Hooks = &state.Hooks{Digest: d.Digest, Done: append(slices.Clone(done), string(phase))}
	_ = c.save(ctx, a, &next) // a failure is retried (save.go)
	c.mu.Lock()
	a.applied = &next
	c.mu.Unlock()
}

// runHooks runs the hooks of one step and waits until each completed; the first failure ends
// it with a *HookError. Caller holds a.op.
func (c *Controller) runHooks(ctx context.Context, a *app, d *Desired, s plan.Step) error {
	type running struct {
		hook    plan.Hook
		ref     apply.ObjectRef
		uid     types.UID
		started time.Time
	}
	rev := d.revision()
	var runs []running
	for _, h := range s.Hooks {
		started := time.Now()
		var ref apply.ObjectRef
		var uid types.UID
		err := c.bounded(ctx, func(ctx context.Context) (err error) {
			ref, uid, err = c.applier.RunHook(ctx, rev, h.Object, h.Deletes(plan.BeforeHookCreation))
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			return c.hookDone(ctx, a, d, h, ref, "", started, err.Error())
		}
		c.applier.Watch(ctx, []apply.ObjectRef{ref}) // read it from a watch cache
		runs = append(runs, running{hook: h, ref: ref, uid: uid, started: started})
	}
	limit := d.Health.ProgressDeadline
	if limit <= 0 {
		limit = c.cfg.SyncTimeout
	}
	assessor := c.assessor(a, d.Health.Rules)
	last := map[types.UID]string{}
	var failure error
	err := wait.PollUntilContextTimeout(ctx, hookPoll, limit, true, func(ctx context.Context) (bool, error) {
		left := runs[:0]
		for _, r := range runs {
			live, err := c.applier.Get(ctx, r.ref)
			if err != nil || live == nil || live.GetUID() != r.uid {
				left = append(left, r) // not seen yet (the cache may still hold an earlier run)
				continue
			}
			switch s, msg := assessor.Assess(live); s {
			case health.Healthy:
				_ = c.hookDone(ctx, a, d, r.hook, r.ref, r.uid, r.started, "") // nil: it succeeded
			case health.Degraded:
				failure = c.hookDone(ctx, a, d, r.hook, r.ref, r.uid, r.started, msg)
				return true, nil
			default:
				last[r.uid] = fmt.Sprintf("%s: %s", s, msg)
				left = append(left, r)
			}
		}
		runs = left
		if len(runs) > 0 {
			c.setProgress(a, fmt.Sprintf("revision %s: waiting for %s hook %s (wave %d): %s", d.Revision, s.Phase, runs[0].ref, s.Wave, last[runs[0].uid]))
		}
		return len(runs) == 0, nil
	})
	switch {
	case failure != nil:
		return failure
	case err != nil && ctx.Err() == nil && len(runs) > 0:
		r := runs[0]
		return c.hookDone(ctx, a, d, r.hook, r.ref, r.uid, r.started, fmt.Sprintf("not complete within %s: %s", limit, last[r.uid]))
	}
	return err
}

// hookDone reports the outcome of hook h (failed when failure is set), deletes it as its
// delete policy says, and returns a *HookError for a failure.
func (c *Controller) hookDone(ctx context.Context, a *app, d *Desired, h plan.Hook, ref apply.ObjectRef, uid types.UID, started time.Time, failure string) error {
	run := HookRun{
		App: d.App, Generation: d.Generation, Revision: d.Revision, Phase: string(h.Phase), Object: ref,
		Result: HookSucceeded, Started: started, Finished: time.Now(),
	}
	del := h.Deletes(plan.HookSucceeded)
	if failure != "" {
		run.Result, run.Message, del = HookFailed, newScrubber(d).scrub(failure), h.Deletes(plan.HookFailed)
	}
	c.log.Info("hook done", logging.KeyApp, d.App, logging.KeyRevision, d.Revision, logging.KeyObject, ref.String(), keyPhase, run.Phase, keyResult, run.Result, logging.KeyDuration, run.Finished.Sub(started))
	c.cfg.Reporter.Hook(run)
	if del && uid != "" {
		if err := c.bounded(ctx, func(ctx context.Context) error { return c.applier.DeleteHook(ctx, ref, uid) }); err != nil {
			c.log.Warn("deleting a hook failed", logging.KeyApp, d.App, logging.KeyObject, ref.String(), logging.Err(err))
		}
	}
	if failure != "" {
		return &HookError{Phase: h.Phase, Object: ref, Message: run.Message}
	}
	return nil
}

// runSyncFail runs p's SyncFail hooks after a failed sync of d; their failures are reported,
// not returned. Caller holds a.op.
func (c *Controller) runSyncFail(ctx context.Context, a *app, d *Desired, p *plan.Plan, cause error) {
	if len(p.SyncFail) == 0 || ctx.Err() != nil || errors.Is(cause, errSuperseded) {
		return
	}
	for _, s := range p.SyncFail {
		if err := c.runHooks(ctx, a, d, s); err != nil {
			c.log.Warn("SyncFail hook failed", logging.KeyApp, d.App, logging.KeyRevision, d.Revision, logging.Err(err))
		}
	}
}
