package fleet

import (
	"fmt"
	"strings"
	"time"
)

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

// Knows reports whether app is desired on cluster or already has a report there: besides the
// apps its agent said it holds when it connected, the only apps it may report on. So an
// agent cannot make the hub keep rows for names it made up.
func (f *Fleet) Knows(cluster, app string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.desired[cluster][app] != nil || f.status[cluster][app] != nil
}

// Bounds of what the hub keeps of one agent report.
const (
	MaxMessageBytes = 4 << 10   // a status message or NACK reason
	MaxDriftItems   = 100       // drifted objects listed
	MaxResources    = 500       // objects listed with their health
	MaxDiffBytes    = 16 << 10  // one object's diff
	MaxReportBytes  = 256 << 10 // all diffs of one report
)

// capReport cuts what an agent reported down to the bounds above, saying what it left out, so
// that one cluster's status costs the hub at most about MaxReportBytes per app it runs.
func capReport(r *Report) {
	r.Message = Truncate(r.Message, MaxMessageBytes)
	if n := len(r.Drift); n > MaxDriftItems {
		r.Drift = r.Drift[:MaxDriftItems:MaxDriftItems]
		r.Message = strings.TrimSpace(r.Message + fmt.Sprintf(" (%d more drifted objects not shown)", n-MaxDriftItems))
	}
	total := 0
	for i := range r.Drift {
		d := &r.Drift[i]
		d.Diff = Truncate(d.Diff, MaxDiffBytes)
		if total += len(d.Diff); total > MaxReportBytes {
			d.Diff = "(diff not kept: the report is over its size limit)"
		}
		d.Group, d.Version, d.Kind = Truncate(d.Group, 253), Truncate(d.Version, 63), Truncate(d.Kind, 63)
		d.Namespace, d.Name, d.Type = Truncate(d.Namespace, 253), Truncate(d.Name, 253), Truncate(d.Type, 63)
	}
	if len(r.Resources) > MaxResources {
		r.Resources = r.Resources[:MaxResources:MaxResources]
	}
	for i := range r.Resources {
		o := &r.Resources[i]
		o.Group, o.Version, o.Kind = Truncate(o.Group, 253), Truncate(o.Version, 63), Truncate(o.Kind, 63)
		o.Namespace, o.Name, o.Health = Truncate(o.Namespace, 253), Truncate(o.Name, 253), Truncate(o.Health, 63)
		o.Message = Truncate(o.Message, 1<<10)
	}
	capEvents(r)
	for _, s := range []*string{&r.Sync, &r.Health, &r.AppliedRevision, &r.AppliedDigest, &r.HealthyRevision, &r.RolledBackRevision} {
		*s = Truncate(*s, 128)
	}
}

// Truncate cuts s to at most n bytes on a character boundary, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "… (truncated)"
	return strings.ToValidUTF8(s[:max(0, n-len(mark))], "") + mark
}
