package apply

import (
	"context"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Sync waves and hooks, as the engine sees them: the controller (agent/internal/syncer) plans a
// revision (agent/internal/plan) and, when it has more than one step, hands the engine one step
// at a time (ApplyStep), waiting for each to be Healthy in between; the engine prunes stale
// objects the highest wave first (deleteByWave).

// ApplyStep applies the objects of d, one step of a revision, as Apply does but pruning
// nothing: the Result's Inventory is inventory plus d's objects. On error it is inventory plus
// what was written, as for Apply.
func (a *Applier) ApplyStep(ctx context.Context, d *Revision, inventory []ObjectRef) (*ChangeSet, error) {
	items, err := a.checkAndPrepare(ctx, d)
	if err != nil {
		return nil, err
	}
	a.warm(ctx, items)
	res, err := a.applyItems(ctx, items, inventory)
	if err != nil {
		return res, err
	}
	res.Inventory = slices.Clone(inventory)
	for _, it := range items {
		if it.inventory {
			res.Inventory = append(res.Inventory, it.ref)
		}
	}
	res.Inventory = dedupe(res.Inventory)
	sortRefs(res.Inventory)
	return res, nil
}

// PruneSteps prunes, once every step of d is applied, what d no longer holds of prev (the
// inventory before the first step), as Apply does after writing: PruneLast defers it. inventory
// is the app's inventory after the steps; the Result's Inventory is what the app then owns.
func (a *Applier) PruneSteps(ctx context.Context, d *Revision, prev, inventory []ObjectRef) (*ChangeSet, error) {
	return a.pruneStale(ctx, d, prev, inventory, false)
}

// Check refuses d, objects and hooks, when it breaks its policy (policy.go), writing nothing.
func (a *Applier) Check(ctx context.Context, d *Revision) error {
	return a.checkPolicy(ctx, d)
}

// unappliedKeys returns the keys of d's hooks and skipped objects, which a prune never deletes;
// an empty map when it has none.
func (a *Applier) unappliedKeys(ctx context.Context, d *Revision) (map[string]bool, error) {
	if len(d.Hooks)+len(d.Skipped) == 0 {
		return map[string]bool{}, nil
	}
	crds := slices.DeleteFunc(slices.Clone(d.Objects), func(o *unstructured.Unstructured) bool { return !isCRD(o.GroupVersionKind()) })
	return a.desiredKeys(ctx, &Revision{Namespace: d.Namespace, Objects: crds, Hooks: d.Hooks, Skipped: d.Skipped})
}

// doomed is an object a prune deletes, and its live state.
type doomed struct {
	ref  ObjectRef
	live *unstructured.Unstructured
}

// pruneWaveWait bounds the wait for one wave's deletions to be gone before the next wave's.
const pruneWaveWait = 2 * time.Minute

// deleteByWave deletes del, the highest wave (by waves) first. With more than one wave, each
// wave's deletions must be gone before the next wave's start; past pruneWaveWait the rest stay
// in the inventory as failed deletions, retried with the others.
func (a *Applier) deleteByWave(ctx context.Context, waves map[string]int, del []doomed, policy metav1.DeletionPropagation, res *ChangeSet) {
	groups := map[int][]doomed{}
	for _, x := range del {
		w := waves[x.ref.Key()]
		groups[w] = append(groups[w], x)
	}
	order := make([]int, 0, len(groups))
	for w := range groups {
		order = append(order, w)
	}
	slices.Sort(order)
	slices.Reverse(order)
	for i, w := range order {
		var gone []ObjectRef
		for _, x := range groups[w] {
			a.deleteObject(ctx, x.ref, x.live, res, policy)
			if e := res.Entries[len(res.Entries)-1]; e.Action == Pruned {
				gone = append(gone, x.ref)
			}
		}
		if i == len(order)-1 {
			return
		}
		if err := a.waitGone(ctx, gone); err != nil {
			for _, rest := range order[i+1:] {
				for _, x := range groups[rest] {
					res.Inventory = append(res.Inventory, x.ref)
					res.add(PruneFailed, x.ref)
				}
			}
			res.Warnings = append(res.Warnings, fmt.Sprintf("prune of wave %d: %v; lower waves are deleted later", w, err))
			return
		}
	}
}

// waitGone waits until refs no longer exist.
func (a *Applier) waitGone(ctx context.Context, refs []ObjectRef) error {
	var left ObjectRef
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, pruneWaveWait, true, func(ctx context.Context) (bool, error) {
		for _, r := range refs {
			live, err := a.Get(ctx, r)
			if err != nil || live != nil {
				left = r
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%s not gone: %w", left, err)
	}
	return nil
}
