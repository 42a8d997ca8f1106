package rollout

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
)

// Operator actions (Coordinator.Act).
const (
	ActApprove = "approve"
	ActPause   = "pause"
	ActResume  = "resume"
	ActAbort   = "abort"
	ActSkip    = "skip"
)

// ErrBadAction: an action that is none of the above, or skip without a cluster.
var ErrBadAction = errors.New("unknown rollout action")

// Action is an operator's action on a rollout.
type Action struct {
	Kind     string
	Cluster  string // skip
	Rollback bool   // abort
	Actor    string
}

// apply applies a to r.
func (a Action) apply(r *Record, now time.Time) error {
	switch a.Kind {
	case ActApprove:
		return r.Approve(now)
	case ActPause, ActResume:
		return r.SetPaused(a.Kind == ActPause, now)
	case ActAbort:
		return r.Abort(a.Rollback, a.Actor, now)
	case ActSkip:
		if a.Cluster == "" {
			return fmt.Errorf("skip needs --cluster: %w", ErrBadAction)
		}
		return r.Skip(a.Cluster, now)
	}
	return fmt.Errorf("%q (want approve, pause, resume, abort or skip): %w", a.Kind, ErrBadAction)
}

// View is a rollout as operators read it.
type View struct {
	Record        *Record
	FailurePolicy string
	// Waiting says what the rollout waits for, and since when.
	Waiting string
	Steps   []StepView
}

// StepView is one step and its clusters.
type StepView struct {
	Number      int // 1-based
	Description string
	Approval    bool
	Approved    bool
	State       string // Done, Active, Pending
	Clusters    []ClusterView
}

// ClusterView is one cluster of a step.
type ClusterView struct {
	Name     string
	Phase    string
	Since    time.Time
	Reason   string
	Revision string // what it gets now
	Sync     string
	Health   string
}

// Step states in a View.
const (
	StepDone    = "Done"
	StepActive  = "Active"
	StepPending = "Pending"
)

// NewView describes r under spec (nil when the app no longer has spec.rollout) with what the
// agents report.
func NewView(r *Record, spec *apps.RolloutSpec, observe func(string) Observation, now time.Time) *View {
	v := &View{Record: r}
	if spec == nil {
		return v
	}
	v.FailurePolicy = spec.FailurePolicy
	obs := make(map[string]Observation, len(r.Clusters))
	for _, name := range r.Names() {
		obs[name] = observe(name)
	}
	for i := range spec.Steps {
		s := &spec.Steps[i]
		sv := StepView{Number: i + 1, Description: describe(s), Approval: s.Approval, Approved: slices.Contains(r.Approved, i), State: StepPending}
		switch {
		case i < r.Step || r.State == StateCompleted:
			sv.State = StepDone
		case i == r.Step:
			sv.State = StepActive
		}
		for _, name := range r.Names() {
			c := r.Clusters[name]
			if c.Step != i {
				continue
			}
			rev, _ := r.RevisionFor(name)
			o := obs[name]
			sv.Clusters = append(sv.Clusters, ClusterView{Name: name, Phase: c.Phase, Since: c.Since, Reason: c.Reason, Revision: rev, Sync: o.Sync, Health: o.Health})
		}
		v.Steps = append(v.Steps, sv)
	}
	v.Waiting = waiting(r, spec, obs, now)
	return v
}

// describe says what a step takes.
func describe(s *apps.RolloutStep) string {
	if s.Gate() {
		return "approval"
	}
	var parts []string
	switch {
	case s.Names != nil:
		parts = append(parts, strings.Join(s.Names, ","))
	case s.Selector != nil:
		parts = append(parts, s.Selector.String())
	default:
		parts = append(parts, "the rest")
	}
	switch {
	case s.MaxUnavailablePercent > 0:
		parts = append(parts, fmt.Sprintf("maxUnavailable %d%%", s.MaxUnavailablePercent))
	case s.MaxUnavailable > 0:
		parts = append(parts, fmt.Sprintf("maxUnavailable %d", s.MaxUnavailable))
	}
	if s.Soak > 0 {
		parts = append(parts, "soak "+s.Soak.String())
	}
	if s.Approval {
		parts = append(parts, "after approval")
	}
	return strings.Join(parts, ", ")
}

// waiting says what the rollout waits for: approval, an operator, or the first clusters of
// the active step that are not done, with their health and for how long.
func waiting(r *Record, spec *apps.RolloutSpec, obs map[string]Observation, now time.Time) string {
	since := func(t time.Time) string { return now.Sub(t).Round(time.Second).String() }
	switch {
	case r.State == StateCompleted:
		return ""
	case r.State == StateHalted, r.State == StateAborted:
		return strings.ToLower(r.State) + ": " + r.Reason
	case r.State == StateRolledBack:
		return "rolled back: " + r.Reason
	case r.Paused:
		return fmt.Sprintf("paused by an operator since %s ago (flotilla rollout resume %s)", since(r.Updated), r.App)
	case r.State == StateWaitingApproval:
		return fmt.Sprintf("waiting for approval of step %d since %s ago (flotilla rollout approve %s)", r.Step+1, since(r.StepStarted), r.App)
	}
	var parts []string
	for _, name := range r.Names() {
		c := r.Clusters[name]
		if c.Step != r.Step {
			continue
		}
		o := obs[name]
		switch c.Phase {
		case PhaseUpdating:
			state := o.Health
			if o.Stale {
				state = "Stale"
			} else if state == "" {
				state = "no report"
			}
			parts = append(parts, fmt.Sprintf("%s Healthy (%s %s)", name, state, since(c.Since)))
		case PhaseSoaking:
			parts = append(parts, fmt.Sprintf("%s to soak (%s of %s)", name, now.Sub(o.HealthySince).Round(time.Second), soakOf(spec, c.Step)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	if len(parts) > 3 {
		parts = append(parts[:3], fmt.Sprintf("%d more", len(parts)-3))
	}
	return "waiting for " + strings.Join(parts, ", ")
}

// Get returns the view of app's latest rollout.
func (c *Coordinator) Get(app string) (*View, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.viewLocked(app)
}

func (c *Coordinator) viewLocked(app string) (*View, error) {
	rec := c.records[app]
	if rec == nil {
		return nil, fmt.Errorf("app %q: %w (it has no spec.rollout, or no revision was seen yet)", app, ErrNoRollout)
	}
	var spec *apps.RolloutSpec
	if a := c.apps[app]; a != nil {
		spec = a.Rollout
	}
	return NewView(rec.Clone(), spec, c.observer(app, rec.Target()), c.cfg.Now()), nil
}

// Act applies an operator's action to app's rollout, stores it and advances the rollout.
func (c *Coordinator) Act(app string, a Action) (*View, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.records[app]
	if rec == nil {
		return nil, fmt.Errorf("app %q: %w", app, ErrNoRollout)
	}
	next := rec.Clone()
	if err := a.apply(next, c.cfg.Now()); err != nil {
		return nil, fmt.Errorf("app %q: %w", app, err)
	}
	c.saveLocked(next)
	c.advanceLocked(app, false)
	c.cfg.Trigger()
	return c.viewLocked(app)
}
