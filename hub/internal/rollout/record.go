// Package rollout runs progressive rollouts (spec.rollout): a new revision of an app reaches
// the clusters it targets step by step, each step done when its clusters are Synced and
// Healthy on the revision for the step's soak, as their agents report it. Clusters not yet in
// an active step keep receiving the revision they run. A failing cluster halts the rollout (or
// returns the updated clusters to the previous revision).
//
// The state machine (Record, Advance and the operator's actions) is pure: it is given the
// clusters, what their agents report and the time. The Coordinator keeps one Record per app,
// durable in the store, answers the reconciler which revision each cluster gets, and advances
// the rollouts as reports come in.
package rollout

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
)

// States of a rollout.
const (
	StateRunning         = "Running"
	StateWaitingApproval = "WaitingApproval"
	StateHalted          = "Halted"
	StateRolledBack      = "RolledBack"
	StateAborted         = "Aborted"
	StateCompleted       = "Completed"
)

// AllStates lists the states, for metrics.
var AllStates = []string{StateRunning, StateWaitingApproval, StateHalted, StateRolledBack, StateAborted, StateCompleted}

// Phases of one cluster in a rollout.
const (
	// PhasePending: its step is not active yet; it keeps the revision it had.
	PhasePending = "Pending"
	// PhaseUpdating: given the revision, not yet Synced and Healthy on it.
	PhaseUpdating = "Updating"
	// PhaseSoaking: Synced and Healthy on it for less than the step's soak.
	PhaseSoaking = "Soaking"
	PhaseDone    = "Done"
	PhaseFailed  = "Failed"
	// PhaseSkipped: an operator moved on without it; it gets the revision with its step but
	// is not waited for.
	PhaseSkipped = "Skipped"
	// PhasePinned: an operator pinned it (flotilla rollback --to), which wins over the
	// rollout; it is not waited for while pinned.
	PhasePinned = "Pinned"
)

// Errors of the operator's actions.
var (
	ErrNotActive      = errors.New("the rollout is not running")
	ErrNotWaiting     = errors.New("the rollout is not waiting for approval")
	ErrUnknownCluster = errors.New("the rollout has no such cluster")
	ErrNoRollout      = errors.New("no rollout")
)

// Cluster is one cluster's part in a rollout.
type Cluster struct {
	// Step is the index of the step that takes it.
	Step  int    `json:"step"`
	Phase string `json:"phase"`
	// From is the revision it had when the rollout started, when not the record's From;
	// FromSpec likewise the definition it had (definition.go), when not Defs.From.
	From     string `json:"from,omitempty"`
	FromSpec string `json:"fromSpec,omitempty"`
	// Since is when it entered its phase; Reason says why it failed.
	Since  time.Time `json:"since,omitzero"`
	Reason string    `json:"reason,omitempty"`
	// AppliedAt is when its agent had applied what it held when it was admitted (its report).
	AppliedAt time.Time `json:"appliedAt,omitzero"`
}

func (c *Cluster) admitted() bool {
	switch c.Phase {
	case PhaseUpdating, PhaseSoaking, PhaseDone, PhaseFailed, PhasePinned:
		return true
	}
	return false
}

// Record is the state of the latest rollout of one app: durable, replicated whole.
type Record struct {
	App string `json:"app"`
	// ID names the rollout ("r-" and the revision's first six characters).
	ID       string `json:"id"`
	Revision string `json:"revision"`
	// From is the revision the clusters had before (each Cluster.From overrides it).
	From string `json:"from,omitempty"`
	// Defs are the app's definitions the rollout carries and the clusters had (definition.go).
	Defs  Defs   `json:"defs,omitzero"`
	State string `json:"state"`
	// Paused: no cluster is admitted until resumed.
	Paused bool `json:"paused,omitempty"`
	// Step is the index of the active step (len(steps) once all are done).
	Step        int       `json:"step"`
	StepStarted time.Time `json:"stepStarted,omitzero"`
	// Approved lists the steps whose approval was given.
	Approved []int               `json:"approved,omitempty"`
	Clusters map[string]*Cluster `json:"clusters,omitempty"`
	Started  time.Time           `json:"started"`
	Updated  time.Time           `json:"updated"`
	// Reason says why the rollout halted, was rolled back or aborted.
	Reason string `json:"reason,omitempty"`
	// Seq counts the record's changes: replicas keep the higher (store.MergeRollout).
	Seq uint64 `json:"seq"`
	// Notified are the transitions notified of this rollout, "kind/step" (notices.go).
	Notified []string `json:"notified,omitempty"`
}

// Active reports whether the rollout may still admit clusters.
func (r *Record) Active() bool { return r.State == StateRunning || r.State == StateWaitingApproval }

// Baseline is the record of an app first seen at to: nothing to roll out from, every
// cluster gets it.
func Baseline(app string, to Target, now time.Time) *Record {
	return &Record{App: app, ID: ID(to.Revision), Revision: to.Revision, Defs: Defs{Spec: to.Spec}, State: StateCompleted, Started: now, Updated: now, Seq: 1,
		Reason: "the first revision seen of the app (or since it had no spec.rollout): every cluster got it at once"}
}

// ID names the rollout of revision.
func ID(revision string) string {
	if len(revision) > 6 {
		revision = revision[:6]
	}
	return "r-" + revision
}

// Start begins the rollout of to (a new commit, a new definition of the app, or both) after
// prev (the app's last record): each cluster keeps what prev gave it until its step, so
// clusters already past a superseded rollout are not rolled back first.
func Start(prev *Record, to Target, now time.Time) *Record {
	from := prev.Target()
	if prev.State != StateCompleted {
		from = prev.fromOf("")
	}
	r := &Record{
		App: prev.App, Revision: to.Revision, From: from.Revision, Defs: Defs{Spec: to.Spec, From: from.Spec}, State: StateRunning,
		Clusters: map[string]*Cluster{}, Started: now, Updated: now, StepStarted: now, Seq: prev.Seq + 1,
	}
	r.ID = r.idFor()
	for name := range prev.Clusters {
		c := &Cluster{Phase: PhasePending, Since: now}
		had, _ := prev.TargetFor(name)
		if had.Revision != from.Revision {
			c.From = had.Revision
		}
		if had.Spec != from.Spec {
			c.FromSpec = had.Spec
		}
		r.Clusters[name] = c
	}
	r.Defs.Docs = prev.Defs.keep(r)
	return r
}

// Target is the rollout's own target: its revision rendered with its definition.
func (r *Record) Target() Target { return Target{Revision: r.Revision, Spec: r.Defs.Spec} }

// fromOf is what cluster name had before this rollout ("": what the clusters had that have no
// From of their own).
func (r *Record) fromOf(name string) Target {
	t := Target{Revision: r.From, Spec: r.Defs.From}
	if c := r.Clusters[name]; c != nil {
		if c.From != "" {
			t.Revision = c.From
		}
		if c.FromSpec != "" {
			t.Spec = c.FromSpec
		}
	}
	if t.Revision == "" {
		t.Revision = r.Revision
	}
	if t.Spec == "" {
		t.Spec = r.Defs.Spec
	}
	return t
}

// TargetFor is what cluster name gets (a revision, rendered with a definition of the app),
// and whether the rollout holds it back from the rollout's own target.
func (r *Record) TargetFor(name string) (t Target, held bool) {
	if r.State == StateCompleted {
		return r.Target(), false
	}
	from := r.fromOf(name)
	c := r.Clusters[name]
	gets := c != nil && (c.admitted() || c.Phase == PhaseSkipped && c.Step <= r.Step)
	if !gets || r.State == StateRolledBack {
		return from, from != r.Target()
	}
	return r.Target(), false
}

// RevisionFor is the revision cluster name gets, and whether the rollout holds it back from
// the rollout's target (its revision or its definition).
func (r *Record) RevisionFor(name string) (rev string, held bool) {
	t, held := r.TargetFor(name)
	return t.Revision, held
}

// Hold is what `flotilla status` says of a cluster the rollout holds back, or "".
func (r *Record) Hold(name string) string {
	rev, held := r.RevisionFor(name)
	if !held {
		return ""
	}
	c := r.Clusters[name]
	switch {
	case r.State == StateRolledBack:
		return fmt.Sprintf("Rollout %s%s rolled back: kept at %s (%s)", r.ID, r.what(), short(rev), r.Reason)
	case r.State == StateHalted:
		return fmt.Sprintf("Rollout %s%s halted: kept at %s (%s)", r.ID, r.what(), short(rev), r.Reason)
	case r.State == StateAborted:
		return fmt.Sprintf("Rollout %s%s aborted: kept at %s", r.ID, r.what(), short(rev))
	case c == nil:
		return fmt.Sprintf("Waiting for rollout %s to place it%s", r.ID, r.what())
	}
	return fmt.Sprintf("Waiting for rollout step %d of %s%s", c.Step+1, r.ID, r.what())
}

// what is " (an Application edit)" for a rollout that carries one, else "".
func (r *Record) what() string {
	if r.Edit() {
		return " (" + EditWords + ")"
	}
	return ""
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// Names returns the record's clusters, sorted.
func (r *Record) Names() []string {
	out := make([]string, 0, len(r.Clusters))
	for n := range r.Clusters {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Clone returns a deep copy.
func (r *Record) Clone() *Record {
	out := *r
	out.Approved = slices.Clone(r.Approved)
	out.Notified = slices.Clone(r.Notified)
	out.Defs.Docs = maps.Clone(r.Defs.Docs)
	out.Clusters = make(map[string]*Cluster, len(r.Clusters))
	for n, c := range r.Clusters {
		cc := *c
		out.Clusters[n] = &cc
	}
	return &out
}

// place is the step that takes cluster c: the first (not a gate) that selects it, else the
// last that takes clusters.
func place(spec *apps.RolloutSpec, c apps.ClusterVars) int {
	last := len(spec.Steps) - 1
	for i := range spec.Steps {
		s := &spec.Steps[i]
		if s.Selects(c) {
			return i
		}
		if !s.Gate() {
			last = i
		}
	}
	return last
}
