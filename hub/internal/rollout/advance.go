package rollout

import (
	"fmt"
	"slices"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/notify"
)

// Observation is what the agents' reports say of one cluster, against the rollout's revision.
type Observation struct {
	// Stale: the agent is not connected or went silent; it is never counted Healthy.
	Stale bool
	// OnRevision: the agent holds what the rollout's revision renders to for it.
	OnRevision bool
	// Healthy: Synced and Healthy on what it holds, since HealthySince (the hub's record of
	// the agent's report, kept across hub restarts).
	Healthy      bool
	HealthySince time.Time
	Sync, Health string
	// Failure is why the cluster failed the revision: the agent rolled it back or NACKed it.
	// Empty when it did not.
	Failure string
	// Degraded says why the agent reports it Degraded on the revision; it fails the revision
	// only once AppliedAt moved past the cluster's admission (the health an agent reported of
	// what it held before is not the revision's).
	Degraded string
	// AppliedAt is when the agent applied what it holds, as it reports (its clock).
	AppliedAt time.Time
	// Pinned: an operator pinned the app on the cluster; the pin wins over the rollout.
	Pinned bool
}

// Transition is one change of a rollout worth telling people about.
type Transition struct {
	// Kind is one of notify's Rollout events.
	Kind notify.Event
	// Step is the step it concerns (0-based); Duration how long the step took.
	Step     int
	Duration time.Duration
	Summary  string
}

// Result is what one Advance did.
type Result struct {
	Transitions []Transition
	// Moved: the revision some cluster gets changed (clusters admitted, the rollout rolled
	// back or completed), so the reconciler has something to render.
	Moved bool
	// Changed: the record changed at all (to be stored and replicated).
	Changed bool
}

// Advance moves the rollout on from what the agents report: it places the clusters the app
// targets (targets; a cluster that joined mid-run goes to the step its labels select, one that
// left is dropped), judges the admitted ones, fails the rollout by spec's failure policy when
// one failed, and otherwise admits clusters of the active step (at most the step's batch
// updating at once) and completes steps. It is pure: observe and now are its only inputs.
func (r *Record) Advance(spec *apps.RolloutSpec, targets []apps.ClusterVars, observe func(cluster string) Observation, now time.Time) Result {
	var res Result
	if !r.Active() || spec == nil || len(spec.Steps) == 0 {
		return res
	}
	before := r.Clone()
	r.place(spec, targets, now)
	if failed, reason := r.judge(spec, observe, now); failed != "" {
		r.State = StateHalted
		if spec.FailurePolicy == apps.FailureRollback {
			r.State = StateRolledBack
			res.Moved = true
		}
		r.Reason = fmt.Sprintf("%s: %s", failed, reason)
		res.Transitions = append(res.Transitions, Transition{Kind: notify.RolloutHalted, Step: r.Step,
			Summary: fmt.Sprintf("rollout %s halted at step %d of %d (%s): %s", r.ID, r.Step+1, len(spec.Steps), policyName(spec), r.Reason)})
	}
	for r.State != StateHalted && r.State != StateRolledBack && !r.Paused && r.Step < len(spec.Steps) {
		step := &spec.Steps[r.Step]
		if step.Approval && !slices.Contains(r.Approved, r.Step) {
			if r.State != StateWaitingApproval {
				r.State = StateWaitingApproval
				res.Transitions = append(res.Transitions, Transition{Kind: notify.RolloutWaitingApproval, Step: r.Step,
					Summary: fmt.Sprintf("rollout %s waits for approval of step %d of %d (flotilla rollout approve %s)", r.ID, r.Step+1, len(spec.Steps), r.App)})
			}
			break
		}
		r.State = StateRunning
		if r.admit(step, observe, now) {
			res.Moved = true
		}
		if !r.stepDone() {
			break
		}
		res.Transitions = append(res.Transitions, Transition{Kind: notify.RolloutStepCompleted, Step: r.Step, Duration: now.Sub(r.StepStarted),
			Summary: fmt.Sprintf("rollout %s: step %d of %d done in %s", r.ID, r.Step+1, len(spec.Steps), now.Sub(r.StepStarted).Round(time.Second))})
		r.Step++
		r.StepStarted = now
	}
	if r.Step >= len(spec.Steps) && r.Active() {
		r.State = StateCompleted
		res.Moved = true
		res.Transitions = append(res.Transitions, Transition{Kind: notify.RolloutCompleted, Step: r.Step - 1, Duration: now.Sub(r.Started),
			Summary: fmt.Sprintf("rollout %s of %s completed in %s", r.ID, short(r.Revision), now.Sub(r.Started).Round(time.Second))})
	}
	res.Changed = !sameRecord(before, r)
	if res.Changed {
		r.Seq++
		r.Updated = now
	}
	return res
}

func policyName(spec *apps.RolloutSpec) string { return "failurePolicy " + spec.FailurePolicy }

// place adds the targeted clusters the record does not have yet (in the step their labels
// select), re-places the pending ones (their labels may have changed) and drops the clusters
// the app no longer targets.
func (r *Record) place(spec *apps.RolloutSpec, targets []apps.ClusterVars, now time.Time) {
	if r.Clusters == nil {
		r.Clusters = map[string]*Cluster{}
	}
	seen := make(map[string]bool, len(targets))
	for _, t := range targets {
		seen[t.Name] = true
		c := r.Clusters[t.Name]
		switch {
		case c == nil:
			r.Clusters[t.Name] = &Cluster{Step: place(spec, t), Phase: PhasePending, Since: now}
		case c.Phase == PhasePending:
			c.Step = place(spec, t)
		}
	}
	for name := range r.Clusters {
		if !seen[name] {
			delete(r.Clusters, name)
		}
	}
}

// judge updates the admitted clusters' phases from what their agents report. It returns the
// first cluster (by name) that failed the revision, and why.
func (r *Record) judge(spec *apps.RolloutSpec, observe func(string) Observation, now time.Time) (failed, reason string) {
	for _, name := range r.Names() {
		c := r.Clusters[name]
		if !c.admitted() || c.Phase == PhaseFailed {
			continue
		}
		o := observe(name)
		failure := o.Failure
		if failure == "" && o.Degraded != "" && !o.AppliedAt.Equal(c.AppliedAt) {
			failure = o.Degraded
		}
		if failure != "" {
			c.Phase, c.Since, c.Reason = PhaseFailed, now, failure
			if failed == "" {
				failed, reason = name, failure
			}
			continue
		}
		if c.Phase == PhaseDone {
			continue // done stays done: its step's gate was passed
		}
		phase := PhaseUpdating
		switch {
		case o.Pinned:
			phase = PhasePinned
		case !o.Stale && o.OnRevision && o.Healthy && !o.HealthySince.IsZero():
			phase = PhaseSoaking
			if now.Sub(o.HealthySince) >= soakOf(spec, c.Step) {
				phase = PhaseDone
			}
		}
		if phase != c.Phase {
			c.Phase, c.Since = phase, now
		}
	}
	return failed, reason
}

func soakOf(spec *apps.RolloutSpec, step int) time.Duration {
	if step < 0 || step >= len(spec.Steps) {
		return 0
	}
	return spec.Steps[step].Soak
}

// admit admits pending clusters of the active step while fewer than its batch are updating,
// and at once those placed in a step already passed (they joined late), noting when their
// agent applied what they hold. It reports whether it admitted any.
func (r *Record) admit(step *apps.RolloutStep, observe func(string) Observation, now time.Time) bool {
	members, inflight := 0, 0
	for _, c := range r.Clusters {
		if c.Step != r.Step || c.Phase == PhaseSkipped {
			continue
		}
		members++
		if c.Phase == PhaseUpdating || c.Phase == PhaseSoaking {
			inflight++
		}
	}
	batch := step.Batch(members)
	admitted := false
	for _, name := range r.Names() {
		c := r.Clusters[name]
		if c.Phase != PhasePending {
			continue
		}
		switch {
		case c.Step < r.Step:
		case c.Step == r.Step && inflight < batch:
			inflight++
		default:
			continue
		}
		c.Phase, c.Since, c.AppliedAt = PhaseUpdating, now, observe(name).AppliedAt
		admitted = true
	}
	return admitted
}

// stepDone reports whether every cluster of the active step is done (or skipped, or pinned).
func (r *Record) stepDone() bool {
	for _, c := range r.Clusters {
		if c.Step == r.Step && c.Phase != PhaseDone && c.Phase != PhaseSkipped && c.Phase != PhasePinned {
			return false
		}
	}
	return true
}

func sameRecord(a, b *Record) bool {
	if a.State != b.State || a.Paused != b.Paused || a.Step != b.Step || a.Reason != b.Reason ||
		!slices.Equal(a.Approved, b.Approved) || len(a.Clusters) != len(b.Clusters) {
		return false
	}
	for n, c := range a.Clusters {
		if d := b.Clusters[n]; d == nil || *c != *d {
			return false
		}
	}
	return true
}

// The operator's actions. Each changes the record (the caller stores it and advances it).

// Approve gives the approval the active step waits for.
func (r *Record) Approve(now time.Time) error {
	if r.State != StateWaitingApproval {
		return fmt.Errorf("rollout %s of %s is %s: %w", r.ID, r.App, r.State, ErrNotWaiting)
	}
	r.Approved = append(r.Approved, r.Step)
	r.State = StateRunning
	r.touch(now)
	return nil
}

// SetPaused pauses the rollout (no cluster is admitted; those updating carry on) or resumes it.
func (r *Record) SetPaused(paused bool, now time.Time) error {
	if !r.Active() {
		return fmt.Errorf("rollout %s of %s is %s: %w", r.ID, r.App, r.State, ErrNotActive)
	}
	r.Paused = paused
	r.touch(now)
	return nil
}

// Abort ends the rollout: no further cluster gets the revision; with rollback the updated
// ones return to the revision they had.
func (r *Record) Abort(rollback bool, actor string, now time.Time) error {
	if !r.Active() && !(rollback && r.State == StateHalted) {
		return fmt.Errorf("rollout %s of %s is %s: %w", r.ID, r.App, r.State, ErrNotActive)
	}
	r.State, r.Reason = StateAborted, "aborted by "+actor
	if rollback {
		r.State = StateRolledBack
		r.Reason += " with --rollback"
	}
	r.touch(now)
	return nil
}

// Skip moves on without cluster: its step no longer waits for it.
func (r *Record) Skip(cluster string, now time.Time) error {
	if !r.Active() {
		return fmt.Errorf("rollout %s of %s is %s: %w", r.ID, r.App, r.State, ErrNotActive)
	}
	c := r.Clusters[cluster]
	if c == nil {
		return fmt.Errorf("rollout %s of %s: cluster %q: %w", r.ID, r.App, cluster, ErrUnknownCluster)
	}
	c.Phase, c.Since, c.Reason = PhaseSkipped, now, ""
	r.touch(now)
	return nil
}

func (r *Record) touch(now time.Time) {
	r.Seq++
	r.Updated = now
}
