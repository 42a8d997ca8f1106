package notify

import (
	"fmt"
	"strings"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
)

// appState is what the watcher remembers of one app on one cluster: the facts whose changes
// are events. Comparing a report with it, rather than with the raw previous report, makes a
// re-report, a retry or a reordering of unrelated fields change nothing.
type appState struct {
	digest         string // applied bundle
	drift          bool
	failing        bool   // the latest apply was NACKed
	failedRev      string // the revision whose failure was notified
	degraded       bool   // Degraded since the last time it was Healthy
	pruneHeld      bool
	rolledBack     string // the revision the agent rolled back from
	rollbackFailed bool
	renderFailed   bool // the hub's latest render for the cluster failed
}

// change is an event found in a report, before the hub adds the commit and the time.
type change struct {
	event    Event
	revision string
	summary  string
}

// Markers in the agent's status message.
const (
	msgPruneHeld      = "awaiting confirmation"
	msgRollbackFailed = "rollback failed"
)

// detect compares an app's new report r on cluster with what was known before, prev, and
// returns the new state and the events, in a stable order. desired is the revision the hub
// wants on the cluster ("" if none).
func detect(prev appState, r *fleet.Report, cluster, desired string) (appState, []change) {
	next := appState{
		digest:         prev.digest,
		drift:          len(r.Drift) > 0,
		failing:        r.LastError != "",
		failedRev:      prev.failedRev,
		degraded:       prev.degraded,
		pruneHeld:      strings.Contains(r.Message, msgPruneHeld),
		rolledBack:     r.RolledBackRevision,
		rollbackFailed: strings.Contains(strings.ToLower(r.Message), msgRollbackFailed),
		renderFailed:   r.RenderError != "",
	}
	var out []change
	add := func(e Event, rev, format string, args ...any) {
		out = append(out, change{event: e, revision: rev, summary: fmt.Sprintf(format, args...)})
	}
	where := fmt.Sprintf("%s on %s", r.App, cluster)

	rolledBack := next.rolledBack != "" && next.rolledBack != prev.rolledBack
	if rolledBack {
		add(RolledBack, next.rolledBack, "%s: revision %s did not become healthy: rolled back to %s",
			where, shortRev(next.rolledBack), shortRev(r.AppliedRevision))
	}
	if next.rollbackFailed && !prev.rollbackFailed {
		add(RollbackFailed, r.AppliedRevision, "%s: automatic rollback of revision %s failed; see flotilla status",
			where, shortRev(r.AppliedRevision))
	}

	if r.AppliedDigest != "" && r.AppliedDigest != prev.digest {
		next.digest = r.AppliedDigest
		if !rolledBack {
			add(SyncSucceeded, r.AppliedRevision, "%s: revision %s applied", where, shortRev(r.AppliedRevision))
		}
	}
	switch {
	case !next.failing:
		next.failedRev = ""
	case !prev.failing || (prev.failedRev != "" && prev.failedRev != desired):
		next.failedRev = desired
		add(SyncFailed, desired, "%s: sync of revision %s failed; the previous state stays applied (see flotilla status)",
			where, shortRev(desired))
	case prev.failedRev == "":
		next.failedRev = desired // failing already when seeded after a restart: not news
	}

	// A render failure is announced when it starts, not again for each commit that still
	// fails, and its end once (the agent then gets the new state, announced when applied).
	switch {
	case next.renderFailed && !prev.renderFailed:
		add(SyncFailed, r.RenderRevision, "%s: render of revision %s failed; the last good state stays (see flotilla status)",
			where, shortRev(r.RenderRevision))
	case !next.renderFailed && prev.renderFailed:
		add(SyncSucceeded, desired, "%s: revision %s renders again", where, shortRev(desired))
	}

	switch {
	case next.drift && !prev.drift:
		add(DriftDetected, r.AppliedRevision, "%s: %s", where, driftSummary(r.Drift))
	case !next.drift && prev.drift:
		add(DriftCorrected, r.AppliedRevision, "%s: the live objects match Git again", where)
	}

	switch {
	case r.Health == "Degraded" && !prev.degraded:
		next.degraded = true
		// An agent holding an app rolled back reports it Degraded for the revision that
		// failed, not for the healthy one it returned to (first seen so when the hub missed
		// the report before the rollback: it was down, or the agent coalesced it).
		rev := r.AppliedRevision
		if next.rolledBack != "" {
			rev = next.rolledBack
		}
		add(HealthDegraded, rev, "%s: health Degraded at revision %s", where, shortRev(rev))
	case r.Health == "Healthy" && prev.degraded:
		next.degraded = false
		add(HealthRecovered, r.AppliedRevision, "%s: Healthy again at revision %s", where, shortRev(r.AppliedRevision))
	}

	if next.pruneHeld && !prev.pruneHeld {
		add(PruneHeld, r.AppliedRevision, "%s: deletions held for confirmation (flotilla sync %s --cluster %s --confirm-prune)",
			where, r.App, cluster)
	}
	return next, out
}

// driftSummary names the drifted objects (at most a few) and how they differ, never what
// their fields hold.
func driftSummary(items []fleet.DriftItem) string {
	const most = 5
	names := make([]string, 0, min(len(items), most))
	for _, d := range items[:min(len(items), most)] {
		name := d.Name
		if d.Namespace != "" {
			name = d.Namespace + "/" + d.Name
		}
		names = append(names, fmt.Sprintf("%s %s (%s)", d.Kind, name, d.Type))
	}
	s := strings.Join(names, ", ")
	if n := len(items) - most; n > 0 {
		s += fmt.Sprintf(" and %d more", n)
	}
	if len(items) == 1 {
		return "drift detected: 1 object differs from Git: " + s
	}
	return fmt.Sprintf("drift detected: %d objects differ from Git: %s", len(items), s)
}
