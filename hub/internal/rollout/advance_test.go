package rollout

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/notify"
)

// sim is a pretend fleet for the pure state machine: what each agent reports.
type sim struct {
	now  time.Time
	obs  map[string]Observation
	tgts []apps.ClusterVars
}

func newSim(clusters ...apps.ClusterVars) *sim {
	return &sim{now: time.Unix(1_700_000_000, 0), obs: map[string]Observation{}, tgts: clusters}
}

func (s *sim) observe(name string) Observation { return s.obs[name] }

// healthy makes cluster name report Synced and Healthy on the revision since now.
func (s *sim) healthy(name string) {
	s.obs[name] = Observation{OnRevision: true, Healthy: true, HealthySince: s.now, Sync: "Synced", Health: "Healthy"}
}

func (s *sim) advance(t *testing.T, r *Record, spec *apps.RolloutSpec) Result {
	t.Helper()
	return r.Advance(spec, s.tgts, s.observe, s.now)
}

func cl(name, ring string) apps.ClusterVars {
	return apps.ClusterVars{Name: name, Labels: map[string]string{"ring": ring}}
}

func ringSel(ring string) labels.Selector { return labels.SelectorFromSet(labels.Set{"ring": ring}) }

// threeSteps is the shape: canary with a soak, the rest one at a time, an approval
// gate, everything else.
func threeSteps(policy string) *apps.RolloutSpec {
	return &apps.RolloutSpec{FailurePolicy: policy, Steps: []apps.RolloutStep{
		{Selector: ringSel("canary"), Soak: 5 * time.Second},
		{Selector: ringSel("main"), MaxUnavailable: 1, Soak: time.Second},
		{Approval: true},
		{},
	}}
}

// phases renders the record's clusters as "name=Phase" for comparisons.
func phases(r *Record) string {
	var b strings.Builder
	for _, n := range r.Names() {
		b.WriteString(n + "=" + r.Clusters[n].Phase + " ")
	}
	return strings.TrimSpace(b.String())
}

func kinds(res Result) []notify.Event {
	var out []notify.Event
	for _, tr := range res.Transitions {
		out = append(out, tr.Kind)
	}
	return out
}

func wantPhases(t *testing.T, r *Record, want string) {
	t.Helper()
	if got := phases(r); got != want {
		t.Fatalf("phases = %q, want %q", got, want)
	}
}

func wantRevision(t *testing.T, r *Record, cluster, rev string, held bool) {
	t.Helper()
	if got, h := r.RevisionFor(cluster); got != rev || h != held {
		t.Fatalf("RevisionFor(%s) = %s %v, want %s %v", cluster, got, h, rev, held)
	}
}

func TestRolloutGoodRevision(t *testing.T) {
	s := newSim(cl("canary", "canary"), cl("m1", "main"), cl("m2", "main"), cl("m3", "main"), cl("other", "edge"))
	spec := threeSteps(apps.FailureHalt)
	r := Start(Baseline("api", Target{Revision: "old0000"}, s.now), Target{Revision: "new1111"}, s.now)
	if r.ID != "r-new111" || r.From != "old0000" {
		t.Fatalf("Start = %+v", r)
	}

	res := s.advance(t, r, spec)
	wantPhases(t, r, "canary=Updating m1=Pending m2=Pending m3=Pending other=Pending")
	if !res.Moved || !res.Changed {
		t.Fatalf("admitting the canary: %+v", res)
	}
	wantRevision(t, r, "canary", "new1111", false)
	wantRevision(t, r, "m1", "old0000", true)
	if got := r.Hold("m1"); got != "Waiting for rollout step 2 of r-new111" {
		t.Errorf("Hold(m1) = %q", got)
	}
	if got := r.Hold("other"); got != "Waiting for rollout step 4 of r-new111" {
		t.Errorf("Hold(other) = %q", got)
	}

	// Healthy, but not for the soak yet: nothing more.
	s.healthy("canary")
	s.now = s.now.Add(4 * time.Second)
	res = s.advance(t, r, spec)
	wantPhases(t, r, "canary=Soaking m1=Pending m2=Pending m3=Pending other=Pending")
	if res.Moved {
		t.Fatal("moved during the canary's soak")
	}
	// A second Advance with nothing new changes nothing.
	if res := s.advance(t, r, spec); res.Changed {
		t.Fatalf("idempotent Advance changed the record: %+v", res)
	}

	s.now = s.now.Add(time.Second)
	res = s.advance(t, r, spec)
	wantPhases(t, r, "canary=Done m1=Updating m2=Pending m3=Pending other=Pending")
	if got := kinds(res); len(got) != 1 || got[0] != notify.RolloutStepCompleted {
		t.Fatalf("transitions = %v", got)
	}

	// One at a time through the main ring.
	for _, next := range []string{"m1", "m2", "m3"} {
		s.healthy(next)
		s.now = s.now.Add(time.Second)
		s.advance(t, r, spec)
	}
	wantPhases(t, r, "canary=Done m1=Done m2=Done m3=Done other=Pending")
	if r.State != StateWaitingApproval || r.Step != 2 {
		t.Fatalf("state %s step %d, want WaitingApproval at step 2", r.State, r.Step)
	}
	if res := s.advance(t, r, spec); len(res.Transitions) != 0 {
		t.Fatalf("waiting for approval notified twice: %v", kinds(res))
	}
	wantRevision(t, r, "other", "old0000", true)

	if err := r.Approve(s.now); err != nil {
		t.Fatal(err)
	}
	if err := r.Approve(s.now); !errors.Is(err, ErrNotWaiting) {
		t.Fatalf("second Approve = %v", err)
	}
	res = s.advance(t, r, spec)
	wantPhases(t, r, "canary=Done m1=Done m2=Done m3=Done other=Updating")
	if got := kinds(res); len(got) != 1 || got[0] != notify.RolloutStepCompleted {
		t.Fatalf("the gate step completes at once: %v", got)
	}
	s.healthy("other")
	res = s.advance(t, r, spec)
	if r.State != StateCompleted || kinds(res)[len(res.Transitions)-1] != notify.RolloutCompleted {
		t.Fatalf("state %s transitions %v", r.State, kinds(res))
	}
	wantRevision(t, r, "other", "new1111", false)
}

func TestRolloutBatchesByPercent(t *testing.T) {
	var cs []apps.ClusterVars
	for i := range 20 {
		cs = append(cs, apps.ClusterVars{Name: string(rune('a'+i)) + "-c"})
	}
	s := newSim(cs...)
	spec := &apps.RolloutSpec{FailurePolicy: apps.FailureHalt, Steps: []apps.RolloutStep{{MaxUnavailablePercent: 10}}}
	r := Start(Baseline("api", Target{Revision: "old"}, s.now), Target{Revision: "new"}, s.now)
	for batch := 0; r.State == StateRunning; batch++ {
		s.advance(t, r, spec)
		updating := 0
		for _, n := range r.Names() {
			if r.Clusters[n].Phase == PhaseUpdating {
				updating++
				s.healthy(n)
			}
		}
		if r.State == StateRunning && updating != 2 {
			t.Fatalf("batch %d: %d updating, want 2 (10%% of 20)", batch, updating)
		}
		if batch > 20 {
			t.Fatal("no progress")
		}
	}
	if r.State != StateCompleted {
		t.Fatalf("state %s", r.State)
	}
}

func TestRolloutFailure(t *testing.T) {
	for _, tt := range []struct {
		policy, state string
		canaryGets    string
	}{
		{apps.FailureHalt, StateHalted, "bad"},
		{apps.FailureRollback, StateRolledBack, "good"},
	} {
		t.Run(tt.policy, func(t *testing.T) {
			s := newSim(cl("canary", "canary"), cl("m1", "main"), cl("m2", "main"))
			spec := threeSteps(tt.policy)
			r := Start(Baseline("api", Target{Revision: "good"}, s.now), Target{Revision: "bad"}, s.now)
			s.advance(t, r, spec)
			s.obs["canary"] = Observation{Failure: "the agent rolled bad back: Deployment web not Available"}
			res := s.advance(t, r, spec)
			if r.State != tt.state || len(res.Transitions) != 1 || res.Transitions[0].Kind != notify.RolloutHalted {
				t.Fatalf("state %s transitions %v", r.State, kinds(res))
			}
			if !strings.Contains(r.Reason, "canary: the agent rolled bad back") {
				t.Errorf("reason = %q", r.Reason)
			}
			wantPhases(t, r, "canary=Failed m1=Pending m2=Pending")
			wantRevision(t, r, "canary", tt.canaryGets, tt.canaryGets != "bad")
			wantRevision(t, r, "m1", "good", true)
			// Halted stays halted: nothing admitted any more.
			s.obs["canary"] = Observation{}
			if res := s.advance(t, r, spec); res.Changed || res.Moved {
				t.Fatalf("a halted rollout moved: %+v", res)
			}
		})
	}
}

// started starts the rollout of v2 over v1 on the clusters (threeSteps, halt) and advances it
// once.
func started(t *testing.T, clusters ...apps.ClusterVars) (*sim, *Record, *apps.RolloutSpec) {
	t.Helper()
	s := newSim(clusters...)
	spec := threeSteps(apps.FailureHalt)
	r := Start(Baseline("api", Target{Revision: "v1"}, s.now), Target{Revision: "v2"}, s.now)
	s.advance(t, r, spec)
	return s, r, spec
}

// pastCanary starts the rollout of v2 over v1 on the clusters and takes it past its canary
// step.
func pastCanary(t *testing.T, clusters ...apps.ClusterVars) (*sim, *Record, *apps.RolloutSpec) {
	t.Helper()
	s, r, spec := started(t, clusters...)
	s.healthy("canary")
	s.now = s.now.Add(5 * time.Second)
	s.advance(t, r, spec)
	return s, r, spec
}

func TestRolloutSupersede(t *testing.T) {
	s, r, spec := pastCanary(t, cl("canary", "canary"), cl("m1", "main"), cl("m2", "main"))
	wantPhases(t, r, "canary=Done m1=Updating m2=Pending")

	r3 := Start(r, Target{Revision: "v3"}, s.now)
	if r3.From != "v1" || r3.Clusters["canary"].From != "v2" || r3.Clusters["m1"].From != "v2" || r3.Clusters["m2"].From != "" {
		t.Fatalf("Start after a superseded rollout = %+v", r3)
	}
	s.obs = map[string]Observation{}
	s.advance(t, r3, spec)
	wantPhases(t, r3, "canary=Updating m1=Pending m2=Pending")
	wantRevision(t, r3, "m1", "v2", true) // not rolled back first
	wantRevision(t, r3, "m2", "v1", true)
	wantRevision(t, r3, "canary", "v3", false)
}

func TestRolloutJoinsMidRun(t *testing.T) {
	s, r, spec := pastCanary(t, cl("canary", "canary"), cl("m1", "main"))
	wantPhases(t, r, "canary=Done m1=Updating")

	// A second canary joins during step 2: its step passed, it is admitted at once; a new
	// main cluster waits its turn; an unlabelled one goes to the last step.
	wantRevision(t, r, "late-canary", "v1", true)
	s.tgts = append(s.tgts, cl("late-canary", "canary"), cl("m2", "main"), apps.ClusterVars{Name: "plain"})
	s.advance(t, r, spec)
	wantPhases(t, r, "canary=Done late-canary=Updating m1=Updating m2=Pending plain=Pending")
	if r.Clusters["plain"].Step != 3 {
		t.Errorf("plain placed in step %d, want 3", r.Clusters["plain"].Step)
	}
	// m1 leaves the fleet: dropped, so m2 goes next.
	s.tgts = []apps.ClusterVars{cl("canary", "canary"), cl("late-canary", "canary"), cl("m2", "main"), {Name: "plain"}}
	s.advance(t, r, spec)
	wantPhases(t, r, "canary=Done late-canary=Updating m2=Updating plain=Pending")
	if r.State != StateRunning {
		t.Fatalf("a join failed the run: %s %s", r.State, r.Reason)
	}
}

func TestRolloutStaleBlocksUntilSkipped(t *testing.T) {
	s, r, spec := started(t, cl("canary", "canary"), cl("m1", "main"))
	s.obs["canary"] = Observation{Stale: true, OnRevision: true, Healthy: true, HealthySince: s.now.Add(-time.Hour)}
	s.now = s.now.Add(time.Hour)
	s.advance(t, r, spec)
	wantPhases(t, r, "canary=Updating m1=Pending")

	if err := r.Skip("nope", s.now); !errors.Is(err, ErrUnknownCluster) {
		t.Fatalf("Skip(unknown) = %v", err)
	}
	if err := r.Skip("canary", s.now); err != nil {
		t.Fatal(err)
	}
	s.advance(t, r, spec)
	wantPhases(t, r, "canary=Skipped m1=Updating")
	wantRevision(t, r, "canary", "v2", false) // it catches up when it comes back
}

func TestRolloutSoakFromReportedHealthySince(t *testing.T) {
	// A hub restart: the record says Updating, the agent has been Healthy on the revision for
	// longer than the soak. The soak is not started again.
	s, r, spec := started(t, cl("canary", "canary"), cl("m1", "main"))
	s.healthy("canary")
	s.now = s.now.Add(3 * time.Second)
	s.advance(t, r, spec)
	restored := r.Clone()
	s.now = s.now.Add(2 * time.Second)
	s.advance(t, restored, spec)
	wantPhases(t, restored, "canary=Done m1=Updating")
}

func TestRolloutPauseResumeAbort(t *testing.T) {
	s, r, spec := started(t, cl("canary", "canary"), cl("m1", "main"), cl("m2", "main"))
	if err := r.SetPaused(true, s.now); err != nil {
		t.Fatal(err)
	}
	s.healthy("canary")
	s.now = s.now.Add(10 * time.Second)
	s.advance(t, r, spec)
	wantPhases(t, r, "canary=Done m1=Pending m2=Pending")
	if err := r.SetPaused(false, s.now); err != nil {
		t.Fatal(err)
	}
	s.advance(t, r, spec)
	wantPhases(t, r, "canary=Done m1=Updating m2=Pending")

	if err := r.Abort(true, "alice", s.now); err != nil {
		t.Fatal(err)
	}
	if r.State != StateRolledBack {
		t.Fatalf("state %s", r.State)
	}
	wantRevision(t, r, "canary", "v1", true)
	wantRevision(t, r, "m1", "v1", true)
	if err := r.SetPaused(true, s.now); !errors.Is(err, ErrNotActive) {
		t.Fatalf("Pause after abort = %v", err)
	}
	if got := r.Hold("m1"); !strings.Contains(got, "rolled back") {
		t.Errorf("Hold = %q", got)
	}

	r2 := Start(r, Target{Revision: "v3"}, s.now)
	wantRevision(t, r2, "canary", "v1", true)
	if err := r2.Abort(false, "bob", s.now); err != nil || r2.State != StateAborted {
		t.Fatalf("Abort = %v, state %s", err, r2.State)
	}
}

// TestRolloutPinnedNotWaitedFor: an operator's pin wins over the rollout on its cluster, and
// the step does not wait for that cluster while it is pinned.
func TestRolloutPinnedNotWaitedFor(t *testing.T) {
	s, r, spec := started(t, cl("canary", "canary"), cl("m1", "main"))
	s.obs["canary"] = Observation{Pinned: true}
	s.advance(t, r, spec)
	wantPhases(t, r, "canary=Pinned m1=Updating")
}
