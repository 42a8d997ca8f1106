package rollout

import (
	"context"
	"fmt"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
)

// With hub replicas, each app's rollouts have one coordinator: the replica that owns
// OwnerKey(app) on the same ring that shares out the clusters. It judges every cluster the
// app targets, those it owns from its fleet and the others from their owners' status rows
// (Peers.Reports), and keeps the record. Every other replica reads the record from it each
// second (Peers.Record), stores its copy and renders its own clusters by it; when the
// coordinator goes, the next owner of the key goes on from its copy.

// Peers are the other hub replicas (server.Server).
type Peers interface {
	// Reports are the status rows of app on the clusters the other replicas own.
	Reports(ctx context.Context, app string) ([]Report, error)
	// Record is the record of app's rollout at the replica that coordinates it.
	Record(ctx context.Context, app string) (store.Rollout, bool, error)
	// Followers are the other live replicas (by name): each follows the record of the
	// rollouts this one coordinates.
	Followers() []string
}

// OwnerKey is the name an app's rollouts are owned under on the replicas' ring (a cluster
// name never has a slash).
func OwnerKey(app string) string { return "rollout/" + app }

// Report is what a replica says of an app on a cluster it owns: its `flotilla status` row.
type Report struct {
	Cluster            string
	Sync, Health       string
	DesiredRevision    string
	AppliedRevision    string // the desired revision when the agent holds what it renders to
	RolledBackRevision string
	LastError          string
	Message            string
	HealthySince       time.Time
	AppliedAt          time.Time
	Pinned             bool
	// DesiredSpec is the digest of the definition the desired state was rendered with;
	// AppliedDesired: the agent holds exactly the desired state's objects.
	DesiredSpec    string
	AppliedDesired bool
}

// observe is r judged against t, as Observe judges a report in this replica's fleet.
func (r Report) observe(t Target) Observation {
	revision := t.Revision
	desired := r.DesiredRevision == revision && (t.Spec == "" || r.DesiredSpec == t.Spec)
	on := desired && r.AppliedRevision == revision && (t.Spec == "" || r.AppliedDesired)
	o := Observation{
		// A row of a cluster that is not connected says Unknown: it is never counted Healthy.
		Stale:      r.Sync == fleet.SyncUnknown && r.Health == fleet.HealthUnknown,
		OnRevision: on, Healthy: r.Sync == fleet.SyncSynced && r.Health == healthHealthy,
		HealthySince: r.HealthySince, Sync: r.Sync, Health: r.Health, AppliedAt: r.AppliedAt, Pinned: r.Pinned,
	}
	switch {
	case r.RolledBackRevision != "" && r.RolledBackRevision == revision && (t.Spec == "" || desired):
		o.Failure = fmt.Sprintf("its agent rolled %s back: %s", short(revision), r.Message)
	case desired && !on && r.LastError != "":
		o.Failure = "its agent refused " + short(revision) + ": " + r.LastError
	case on && r.Health == healthDegraded && r.RolledBackRevision == "":
		o.Degraded = fmt.Sprintf("Degraded on %s: %s", short(revision), r.Message)
	}
	return o
}
