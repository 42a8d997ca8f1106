// Package apply is the agent's server-side-apply engine: it applies one app's revision to the
// cluster in stages (Namespaces and CRDs, then the rest, each object dry-run first and
// skipped when unchanged), prunes what the revision no longer holds as its policy allows,
// compares objects for drift, and keeps the live view (informers) that tells the agent's own
// writes from other actors' changes. It knows nothing of generations, health or the hub: the
// per-app controller (agent/internal/syncer) decides what to apply and when.
package apply

import (
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/shared/ignore"
	"github.com/flotilla-dev/flotilla/shared/policy"
)

// ObjectRef names one object.
type ObjectRef struct {
	Group     string
	Version   string
	Kind      string
	Namespace string
	Name      string
}

// String names the object for people, like shared/bundle.Ref: "Deployment.apps/api/web",
// "Namespace/api".
func (r ObjectRef) String() string {
	kind := r.Kind
	if r.Group != "" {
		kind += "." + r.Group
	}
	if r.Namespace != "" {
		return kind + "/" + r.Namespace + "/" + r.Name
	}
	return kind + "/" + r.Name
}

// Key identifies the object regardless of its API version.
func (r ObjectRef) Key() string {
	return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Revision is what the engine applies: one app's objects and the policy that governs them.
type Revision struct {
	App string
	// Namespace is the destination namespace: namespaced objects without one go there.
	Namespace string
	Objects   []*unstructured.Unstructured
	Policy    Policy
	// Access is the app's spec.policy, checked before anything is applied (policy.go).
	Access policy.Access
	// PruneConfirmed: an operator confirmed the deletions a prune would otherwise hold (a large
	// share of the inventory, Namespaces, PersistentVolumeClaims, CustomResourceDefinitions).
	PruneConfirmed bool
	// Ignore are the app's ignoreDifferences rules: fields that are not drift (ignore.go).
	Ignore []ignore.Rule
	// Hooks are the revision's hooks (agent/internal/plan): policy-checked with Objects, run by
	// RunHook, never applied by Apply, kept in an inventory, drift-checked or pruned.
	Hooks []*unstructured.Unstructured
	// Skipped are objects the revision names but never applies (hook Skip, Helm test hooks):
	// never pruned either.
	Skipped []*unstructured.Unstructured
	// Waves are the sync waves the inventory's objects were last applied in, by key (wave 0
	// left out): a prune deletes the highest wave first (steps.go).
	Waves map[string]int
}

// Policy is the part of an app's sync policy that governs how it is applied and pruned.
type Policy struct {
	Prune           bool
	AllowEmpty      bool
	CreateNamespace bool
	PruneLast       bool
	// Force (syncOptions Force=true): every object of the app is recreated when its update
	// changes an immutable field, as the per-object annotation does (recreate.go).
	Force bool
	// RespectIgnoreDifferences: Apply leaves the fields Ignore names as they are live (ignore.go).
	RespectIgnoreDifferences bool
	// PrunePropagation is how prune deletes propagate: "foreground", "background" (empty) or
	// "orphan" (syncoptions.go).
	PrunePropagation string
	// SkipValidation (syncOptions Validate=false): every object is applied without field
	// validation, as the per-object option does.
	SkipValidation bool
}

// Action is what the engine did with one object.
type Action int

// Actions of a ChangeSet's entries.
const (
	// Applied: written.
	Applied Action = iota
	// Unchanged: the live object already matched; no write.
	Unchanged
	// Pruned: deleted.
	Pruned
	// Released: its app label taken off, not deleted (preserveResourcesOnDeletion).
	Released
	// Held: a deletion awaiting confirmation (Revision.PruneConfirmed); still in the inventory.
	Held
	// Orphaned: no longer rendered and left in the cluster because of a keep annotation or
	// because another app claims it; dropped from the inventory.
	Orphaned
	// Stale: no longer rendered and not deleted because prune is off, the render is empty
	// without AllowEmpty, or PruneLast defers the prune; still in the inventory.
	Stale
	// PruneFailed: a deletion that failed (the API server or an admission check refused it,
	// or the object could not be read); still in the inventory, to be retried.
	PruneFailed
)

var actionNames = [...]string{"applied", "unchanged", "pruned", "released", "held", "orphaned", "stale", "prune-failed"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "unknown"
}

// Entry is one object and what was done with it.
type Entry struct {
	Object ObjectRef
	Action Action
}

// ChangeSet is what an Apply, Heal, Prune, DeleteInventory or Release did: an entry per object
// touched or considered, in the order it happened.
type ChangeSet struct {
	// Inventory is every object the app now owns: the applied ones plus those it still owns
	// but did not delete (held, stale, failed deletions). Sorted.
	Inventory []ObjectRef
	Entries   []Entry
	// Warnings are things a person should see: field manager conflicts taken over, holds,
	// failed deletions.
	Warnings []string
	// PruneTook is the time spent deleting.
	PruneTook time.Duration
	// Generations are the metadata.generation each write returned, by key: a live view older
	// than that has not seen the write yet (the syncer's wait for a wave).
	Generations map[string]int64

	written []ObjectRef // inventory objects written so far
}

// Objects returns the objects of the entries with action, in order.
func (c *ChangeSet) Objects(action Action) []ObjectRef {
	var out []ObjectRef
	for _, e := range c.Entries {
		if e.Action == action {
			out = append(out, e.Object)
		}
	}
	return out
}

// Count is how many entries have action.
func (c *ChangeSet) Count(action Action) int {
	n := 0
	for _, e := range c.Entries {
		if e.Action == action {
			n++
		}
	}
	return n
}

// add records refs with action.
func (c *ChangeSet) add(action Action, refs ...ObjectRef) {
	for _, r := range refs {
		c.Entries = append(c.Entries, Entry{Object: r, Action: action})
	}
}

// merge appends what part recorded to c.
func (c *ChangeSet) merge(part *ChangeSet) {
	for k, g := range part.Generations {
		c.wrote(k, g)
	}
	c.Entries = append(c.Entries, part.Entries...)
	c.Warnings = append(c.Warnings, part.Warnings...)
	c.written = append(c.written, part.written...)
}

// wrote records the generation a write of the object key returned.
func (c *ChangeSet) wrote(key string, generation int64) {
	if c.Generations == nil {
		c.Generations = map[string]int64{}
	}
	c.Generations[key] = generation
}

// Drift types.
const (
	DriftMissing  = "missing"
	DriftModified = "modified"
)

// Drift is one object that differs from what its revision declares.
type Drift struct {
	Object ObjectRef
	Type   string // DriftMissing or DriftModified
	Diff   string // Secret values masked
	// Fingerprint identifies the drifted state, so that an actor changing the object back to
	// the same state again can be told from new edits.
	Fingerprint string
}
