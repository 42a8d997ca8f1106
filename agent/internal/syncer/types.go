// Package syncer is the agent's core: it applies each app's desired bundle to the cluster
// (server-side apply, staged), keeps its inventory, prunes, watches health and drift, and
// reports back through a Reporter. Proto types never reach this package: hubclient maps them.
package syncer

import (
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/shared/ignore"
	"github.com/flotilla-dev/flotilla/shared/policy"
)

// Desired is the latest desired state of one app on this cluster, as the hub sent it.
type Desired struct {
	App        string
	Generation uint64
	Revision   string
	// Digest is "sha256:<hex>" of the canonical bundle (shared/bundle).
	Digest string
	// Namespace is the destination namespace: namespaced objects without one go there.
	Namespace string
	Objects   []*unstructured.Unstructured
	// Bundle is the canonical bundle data the objects were decoded from (kept in state).
	Bundle []byte
	Policy SyncPolicy
	Health HealthPolicy
	Access AccessPolicy // spec.policy, checked before anything is applied
	// Ignore are the ignoreDifferences rules: fields that are not drift.
	Ignore        []ignore.Rule
	CommitTime    time.Time
	SyncRequested bool // an operator asked for a sync (apps without automated sync)
	// PruneConfirmed: an operator confirmed the deletions a prune would otherwise hold (a large
	// share of the inventory, Namespaces, PersistentVolumeClaims, CustomResourceDefinitions).
	PruneConfirmed bool
	// DependsOn names the apps that must be Synced and Healthy on this cluster before a new
	// revision of this one is applied (depends.go).
	DependsOn []string

	// decryptErr is set when an EncryptedSecret of Objects could not be decrypted
	// (encrypted.go): Apply fails with it.
	decryptErr error
}

// revision is what the engine applies of d: its hooks and skipped objects apart (waves.go).
func (d *Desired) revision() *apply.Revision {
	r := &apply.Revision{
		App: d.App, Namespace: d.Namespace, Objects: d.Objects, Access: d.Access, PruneConfirmed: d.PruneConfirmed,
		Ignore: d.Ignore,
		Policy: apply.Policy{
			Prune: d.Policy.Prune, AllowEmpty: d.Policy.AllowEmpty, CreateNamespace: d.Policy.CreateNamespace,
			PruneLast: d.Policy.PruneLast, Force: d.Policy.Force, RespectIgnoreDifferences: d.Policy.RespectIgnoreDifferences,
			PrunePropagation: d.Policy.PrunePropagation, SkipValidation: d.Policy.SkipValidation,
		},
	}
	splitHooks(r)
	return r
}

// SyncPolicy mirrors the Application's syncPolicy.
type SyncPolicy struct {
	Automated       bool
	Prune           bool
	SelfHeal        bool
	AllowEmpty      bool
	CreateNamespace bool
	PruneLast       bool
	Retry           Retry
	// PreserveResourcesOnDeletion: when the app is removed, its objects stay, released.
	PreserveResourcesOnDeletion bool
	// Force (syncOptions Force=true): every object of the app is recreated when its update
	// changes an immutable field, as the per-object annotation does (recreate.go).
	Force bool
	// RespectIgnoreDifferences: a sync leaves the ignored fields as they are live.
	RespectIgnoreDifferences bool
	// PrunePropagation is how prune deletes propagate: "foreground", "background" (empty) or
	// "orphan".
	PrunePropagation string
	// SkipValidation (syncOptions Validate=false): no server-side field validation.
	SkipValidation bool
}

// Retry governs failed syncs.
type Retry struct {
	Limit       int
	Duration    time.Duration
	Factor      float64
	MaxDuration time.Duration
}

// HealthPolicy is the Application's health policy. A revision still Progressing after
// ProgressDeadline, or Degraded, is unhealthy; with AutoRollback the agent then re-applies the
// last healthy revision (rollback.go).
type HealthPolicy struct {
	ProgressDeadline time.Duration
	AutoRollback     bool
	// Rules are the app's custom health rules, at most one per group and kind.
	Rules []health.Rule
}

// Held is what the agent holds for an app; sent in Hello so the hub sends only differences.
type Held struct {
	App        string
	Generation uint64
	Revision   string
	Digest     string
}

// Sync states reported for an app.
const (
	SyncSynced    = "Synced"
	SyncOutOfSync = "OutOfSync"
	SyncUnknown   = "Unknown"
)

// AccessPolicy is the app's spec.policy (shared/policy). The hub checks it after rendering;
// the agent's check, before anything is applied (agent/internal/apply), is the authoritative
// one, because it knows from the cluster which kinds are cluster-scoped.
type AccessPolicy = policy.Access

// DriftItem is one object that differs from what the app declares.
type DriftItem struct {
	Object apply.ObjectRef
	Type   string // "missing" or "modified"
	Diff   string // Secret values masked
	// Contested: another actor keeps changing the object back; self-heal is backing off.
	Contested bool

	state string // fingerprint of the drifted state (drift.go), to tell a change back
}

// ResourceStatus is the health of one object.
type ResourceStatus struct {
	Object  apply.ObjectRef
	Health  string
	Message string
}

// AppStatus is the agent's report on one app.
type AppStatus struct {
	App             string
	Sync            string
	Health          string
	Message         string
	Generation      uint64
	AppliedRevision string
	AppliedDigest   string
	HealthyRevision string
	// RolledBackRevision is set while the app is held at its last healthy revision because
	// this revision did not become healthy (see rollback.go for how such an app is reported).
	RolledBackRevision string
	AppliedAt          time.Time
	Drift              []DriftItem
	Resources          []ResourceStatus
	Events             []ObjectEvent // the objects' latest Warning Events (warnings.go)
}

// Hook results.
const (
	HookSucceeded = "Succeeded"
	HookFailed    = "Failed"
)

// HookRun is the outcome of one hook of a sync (hooks.go).
type HookRun struct {
	App        string
	Generation uint64
	Revision   string
	Phase      string // PreSync, Sync, PostSync, SyncFail
	Object     apply.ObjectRef
	Result     string // HookSucceeded or HookFailed
	Message    string // scrubbed
	Started    time.Time
	Finished   time.Time
}

// Reporter carries the agent's answers to the hub. Implementations never block for long: the
// hub client queues and coalesces (latest status per app wins).
type Reporter interface {
	Ack(app string, generation uint64, revision, digest string)
	Nack(app string, generation uint64, reason string)
	Status(s AppStatus)
	// Hook reports the outcome of a hook, for the app's history.
	Hook(r HookRun)
}
