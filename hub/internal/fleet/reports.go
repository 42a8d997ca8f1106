package fleet

import "time"

// healthHealthy is the health an agent reports for an app whose objects are all healthy.
const healthHealthy = "Healthy"

// healthySince is the HealthySince of the report s that replaces old: kept while the same
// applied revision stays Healthy, now when it just became Healthy, zero when it is not.
func healthySince(old, s *Report, now time.Time) time.Time {
	if s.Health != healthHealthy || s.AppliedRevision == "" || s.HealthyRevision != s.AppliedRevision {
		return time.Time{}
	}
	if old.Health == healthHealthy && old.AppliedRevision == s.AppliedRevision && old.AppliedDigest == s.AppliedDigest &&
		!old.HealthySince.IsZero() {
		return old.HealthySince
	}
	return now
}

// LatestReport returns the latest report of app on cluster, if there is one.
func (f *Fleet) LatestReport(cluster, app string) (Report, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.status[cluster][app]
	if r == nil {
		return Report{}, false
	}
	return *r, true
}
