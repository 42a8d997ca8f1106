package fleet

import (
	"testing"
	"time"
)

// TestHealthySince: set when the applied revision becomes Healthy, kept while it stays so,
// cleared when it is not Healthy or another revision is applied.
func TestHealthySince(t *testing.T) {
	f := New(time.Minute)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f.now = func() time.Time { return now }
	since := func() time.Time {
		t.Helper()
		r, ok := f.LatestReport("c1", "api")
		if !ok {
			t.Fatal("no report")
		}
		return r.HealthySince
	}
	healthy := func(rev string) Report {
		return Report{App: "api", Health: "Healthy", AppliedRevision: rev, AppliedDigest: "d-" + rev, HealthyRevision: rev}
	}

	f.Status("c1", Report{App: "api", Health: "Progressing", AppliedRevision: "r1", AppliedDigest: "d-r1"})
	if !since().IsZero() {
		t.Fatal("HealthySince set while Progressing")
	}
	t0 := now
	f.Status("c1", healthy("r1"))
	if got := since(); !got.Equal(t0) {
		t.Fatalf("HealthySince = %v, want %v", got, t0)
	}
	now = now.Add(time.Minute)
	f.Status("c1", healthy("r1")) // a re-report
	if got := since(); !got.Equal(t0) {
		t.Fatalf("HealthySince after a re-report = %v, want %v", got, t0)
	}
	// A new revision applied: not healthy yet, even if the agent still says Healthy of the
	// last one.
	f.Ack("c1", "api", 2, "r2", "d-r2")
	if !since().IsZero() {
		t.Fatal("HealthySince kept after a new revision was applied")
	}
	t1 := now
	f.Status("c1", healthy("r2"))
	if got := since(); !got.Equal(t1) {
		t.Fatalf("HealthySince of r2 = %v, want %v", got, t1)
	}
	now = now.Add(time.Minute)
	f.Status("c1", Report{App: "api", Health: "Degraded", AppliedRevision: "r2", AppliedDigest: "d-r2", HealthyRevision: "r2"})
	if !since().IsZero() {
		t.Fatal("HealthySince kept while Degraded")
	}
	f.Status("c1", healthy("r2"))
	if got := since(); !got.Equal(now) {
		t.Fatalf("HealthySince after recovering = %v, want %v", got, now)
	}
}
