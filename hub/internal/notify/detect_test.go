package notify

import (
	"slices"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
)

// step is one report in a sequence, with the revision the hub desires at the time.
type step struct {
	r       fleet.Report
	desired string
}

func applied(rev string) fleet.Report {
	return fleet.Report{App: "api", Sync: "Synced", Health: "Healthy", AppliedRevision: rev, AppliedDigest: "d-" + rev, HealthyRevision: rev}
}

func with(r fleet.Report, f func(*fleet.Report)) fleet.Report {
	f(&r)
	return r
}

var drifted = []fleet.DriftItem{{Group: "apps", Kind: "Deployment", Namespace: "api", Name: "api", Type: "modified", Diff: "spec.replicas: 3 → 1"}}

// TestDetect: each sequence of reports gives exactly these events, once each: re-reports,
// retries and unrelated changes add none.
func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  []Event
	}{
		{"first apply", []step{{applied("r1"), "r1"}}, []Event{SyncSucceeded}},
		{"re-reports are quiet", []step{{applied("r1"), "r1"}, {applied("r1"), "r1"}, {with(applied("r1"), func(r *fleet.Report) { r.Message = "x" }), "r1"}},
			[]Event{SyncSucceeded}},
		{"new revision", []step{{applied("r1"), "r1"}, {applied("r2"), "r2"}, {applied("r2"), "r2"}}, []Event{SyncSucceeded, SyncSucceeded}},
		{"drift detected then corrected, once each", []step{
			{applied("r1"), "r1"},
			{with(applied("r1"), func(r *fleet.Report) { r.Drift, r.Sync = drifted, "OutOfSync" }), "r1"},
			{with(applied("r1"), func(r *fleet.Report) { r.Drift, r.Sync = drifted, "OutOfSync" }), "r1"},
			{with(applied("r1"), func(r *fleet.Report) { r.Drift = append(slices.Clone(drifted), drifted[0]) }), "r1"},
			{applied("r1"), "r1"},
			{applied("r1"), "r1"},
		}, []Event{SyncSucceeded, DriftDetected, DriftCorrected}},
		{"sync failed once across retries, then succeeded", []step{
			{applied("r1"), "r1"},
			{with(applied("r1"), func(r *fleet.Report) { r.LastError = "generation 2: boom" }), "r2"},
			{with(applied("r1"), func(r *fleet.Report) { r.LastError = "generation 2: boom again" }), "r2"},
			{with(applied("r1"), func(r *fleet.Report) { r.LastError = "generation 3: boom" }), "r2"},
			{applied("r2"), "r2"},
		}, []Event{SyncSucceeded, SyncFailed, SyncSucceeded}},
		{"another revision failing is another event", []step{
			{with(applied("r1"), func(r *fleet.Report) { r.LastError = "generation 2: boom" }), "r2"},
			{with(applied("r1"), func(r *fleet.Report) { r.LastError = "generation 3: boom" }), "r3"},
		}, []Event{SyncSucceeded, SyncFailed, SyncFailed}},
		{"degraded then recovered, through Progressing", []step{
			{applied("r1"), "r1"},
			{with(applied("r1"), func(r *fleet.Report) { r.Health = "Degraded" }), "r1"},
			{with(applied("r1"), func(r *fleet.Report) { r.Health = "Degraded" }), "r1"},
			{with(applied("r1"), func(r *fleet.Report) { r.Health = "Progressing" }), "r1"},
			{with(applied("r1"), func(r *fleet.Report) { r.Health = "Degraded" }), "r1"},
			{applied("r1"), "r1"},
		}, []Event{SyncSucceeded, HealthDegraded, HealthRecovered}},
		{"rolled back: no sync succeeded for the return to the healthy revision", []step{
			{applied("r1"), "r1"},
			{with(applied("r2"), func(r *fleet.Report) { r.Health, r.HealthyRevision = "Progressing", "r1" }), "r2"},
			{with(applied("r2"), func(r *fleet.Report) { r.Health, r.HealthyRevision = "Degraded", "r1" }), "r2"},
			{with(applied("r1"), func(r *fleet.Report) { r.RolledBackRevision = "r2" }), "r2"},
			{with(applied("r1"), func(r *fleet.Report) { r.RolledBackRevision = "r2" }), "r2"},
		}, []Event{SyncSucceeded, SyncSucceeded, HealthDegraded, RolledBack, HealthRecovered}},
		{"rollback failed", []step{
			{with(applied("r2"), func(r *fleet.Report) { r.Health, r.Message = "Degraded", "automatic rollback failed: x" }), "r2"},
			{with(applied("r2"), func(r *fleet.Report) { r.Health, r.Message = "Degraded", "Rollback failed: x" }), "r2"},
		}, []Event{RollbackFailed, SyncSucceeded, HealthDegraded}},
		{"prune held once", []step{
			{with(applied("r1"), func(r *fleet.Report) { r.Message = "3 deletions awaiting confirmation" }), "r1"},
			{with(applied("r1"), func(r *fleet.Report) { r.Message = "3 deletions awaiting confirmation; other" }), "r1"},
			{applied("r1"), "r1"},
		}, []Event{SyncSucceeded, PruneHeld}},
		{"nothing applied yet", []step{{fleet.Report{App: "api", Sync: "Unknown", Health: "Unknown"}, "r1"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var st appState
			var got []Event
			for _, s := range tc.steps {
				var changes []change
				st, changes = detect(st, &s.r, "staging", s.desired)
				for _, c := range changes {
					got = append(got, c.event)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDetectSummaries: what each event says, with names and revisions but never a diff.
func TestDetectSummaries(t *testing.T) {
	st, _ := detect(appState{}, ptr(applied("r1")), "staging", "r1")
	r := with(applied("r1"), func(r *fleet.Report) { r.Drift = drifted })
	_, changes := detect(st, &r, "staging", "r1")
	if len(changes) != 1 {
		t.Fatalf("changes %+v, want one", changes)
	}
	c := changes[0]
	want := "api on staging: drift detected: 1 object differs from Git: Deployment api/api (modified)"
	if c.event != DriftDetected || c.revision != "r1" || c.summary != want {
		t.Errorf("got %+v, want drift-detected at r1 saying %q", c, want)
	}
	rb := with(applied("0123456789abcdef"), func(r *fleet.Report) { r.RolledBackRevision = "fedcba9876543210" })
	_, changes = detect(appState{}, &rb, "production", "fedcba9876543210")
	if len(changes) != 1 || changes[0].revision != "fedcba9876543210" ||
		changes[0].summary != "api on production: revision fedcba98 did not become healthy: rolled back to 01234567" {
		t.Errorf("rollback changes %+v", changes)
	}
}

// TestDetectRolledBackDegraded: an app an agent rolled back is reported Degraded, at the
// healthy revision it returned to, with the failed one as RolledBackRevision. health-degraded
// names the failed revision whether the hub saw it Degraded before the rollback or learns of
// both at once (it was down when the agent rolled back).
func TestDetectRolledBackDegraded(t *testing.T) {
	progressing := with(applied("r2"), func(r *fleet.Report) { r.Health, r.HealthyRevision = "Progressing", "r1" })
	degraded := with(applied("r2"), func(r *fleet.Report) { r.Health, r.HealthyRevision = "Degraded", "r1" })
	rolledBack := with(applied("r1"), func(r *fleet.Report) {
		r.Health, r.Sync, r.RolledBackRevision = "Degraded", "OutOfSync", "r2"
		r.Message = "RolledBack: revision r2 not healthy within 5s of the sync"
	})
	type event struct {
		event    Event
		revision string
	}
	tests := []struct {
		name  string
		steps []fleet.Report
		want  []event
	}{
		{"hub up", []fleet.Report{applied("r1"), progressing, degraded, rolledBack, rolledBack, applied("r3")},
			[]event{{SyncSucceeded, "r1"}, {SyncSucceeded, "r2"}, {HealthDegraded, "r2"}, {RolledBack, "r2"},
				{SyncSucceeded, "r3"}, {HealthRecovered, "r3"}}},
		{"hub away during the rollback", []fleet.Report{applied("r1"), progressing, rolledBack, rolledBack, applied("r3")},
			[]event{{SyncSucceeded, "r1"}, {SyncSucceeded, "r2"}, {RolledBack, "r2"}, {HealthDegraded, "r2"},
				{SyncSucceeded, "r3"}, {HealthRecovered, "r3"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var st appState
			var got []event
			for _, r := range tc.steps {
				var changes []change
				st, changes = detect(st, &r, "staging", "r2")
				for _, c := range changes {
					got = append(got, event{c.event, c.revision})
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
