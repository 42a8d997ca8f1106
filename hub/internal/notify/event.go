// Package notify tells people what happens in the fleet. A Watcher derives events from
// transitions — an agent's report for an app compared with the previous one, a cluster going
// Stale, a repository that can no longer be fetched — exactly once per event per cluster×app,
// and a Dispatcher delivers them to the configured sinks (generic JSON webhooks, Slack
// incoming webhooks) asynchronously, with bounded queues and jittered retries, never blocking
// the hub. Notifications carry names and revisions only: no object data, no diffs, no Secret
// values.
package notify

import (
	"fmt"
	"slices"
	"time"
)

// Event is a kind of notification.
type Event string

// The events.
const (
	DriftDetected   Event = "drift-detected"
	DriftCorrected  Event = "drift-corrected"
	SyncSucceeded   Event = "sync-succeeded"
	SyncFailed      Event = "sync-failed"
	HealthDegraded  Event = "health-degraded"
	HealthRecovered Event = "health-recovered"
	RolledBack      Event = "rolled-back"
	RollbackFailed  Event = "rollback-failed"
	PruneHeld       Event = "prune-held"
	ClusterStale    Event = "cluster-stale"
	RepoStale       Event = "repository-stale"
	// RemovalHeld: more than half of the Applications went from the apps source at once; their
	// removal waits for `flotilla apps confirm-removal`.
	RemovalHeld Event = "removal-held"
	// Progressive rollouts (hub/internal/rollout), once per transition of an app's rollout.
	RolloutStarted         Event = "rollout-started"
	RolloutStepCompleted   Event = "step-completed"
	RolloutWaitingApproval Event = "rollout-waiting-approval"
	RolloutHalted          Event = "rollout-halted"
	RolloutCompleted       Event = "rollout-completed"
)

// AllEvents lists every event, in a stable order.
var AllEvents = []Event{
	DriftDetected, DriftCorrected, SyncSucceeded, SyncFailed, HealthDegraded, HealthRecovered,
	RolledBack, RollbackFailed, PruneHeld, ClusterStale, RepoStale, RemovalHeld,
	RolloutStarted, RolloutStepCompleted, RolloutWaitingApproval, RolloutHalted, RolloutCompleted,
}

// parseEvent checks an event name from the configuration.
func parseEvent(s string) (Event, error) {
	if e := Event(s); slices.Contains(AllEvents, e) {
		return e, nil
	}
	return "", fmt.Errorf("unknown event %q (known: %v)", s, AllEvents)
}

// Notification is one event on one cluster×app, as sinks receive it. Cluster is empty for a
// repository event, App for a cluster event. Author and Message are those of the commit of
// Revision when the hub knows them.
type Notification struct {
	Event    Event     `json:"event"`
	Cluster  string    `json:"cluster,omitempty"`
	App      string    `json:"app,omitempty"`
	Revision string    `json:"revision,omitempty"`
	Author   string    `json:"author,omitempty"`
	Message  string    `json:"message,omitempty"`
	Summary  string    `json:"summary"`
	Time     time.Time `json:"time"`
}

func shortRev(rev string) string {
	if len(rev) > 8 {
		return rev[:8]
	}
	return rev
}
