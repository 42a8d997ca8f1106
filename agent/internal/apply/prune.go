package apply

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Prune deletes from inventory what d no longer holds, as d's policy allows, without applying
// anything: the deferred prune of PruneLast, once the revision is healthy. The Result's
// Inventory is what the app owns afterwards.
func (a *Applier) Prune(ctx context.Context, d *Revision, inventory []ObjectRef) (*ChangeSet, error) {
	return a.pruneStale(ctx, d, inventory, inventory, true)
}

// pruneStale handles the objects of prev that d no longer holds (prune), the Result's
// Inventory being the objects of inventory d holds plus those kept. finalPass as for prune.
func (a *Applier) pruneStale(ctx context.Context, d *Revision, prev, inventory []ObjectRef, finalPass bool) (*ChangeSet, error) {
	desired, err := a.desiredKeys(ctx, d)
	if err != nil {
		return nil, err
	}
	res := &ChangeSet{}
	for _, r := range inventory {
		if desired[r.Key()] {
			res.Inventory = append(res.Inventory, r)
		}
	}
	a.prune(ctx, d, prev, desired, finalPass, res)
	res.Inventory = dedupe(res.Inventory)
	sortRefs(res.Inventory)
	return res, nil
}

// DeleteInventory deletes an app's objects when the app leaves the cluster. It never deletes
// Namespaces, PersistentVolumeClaims or CRDs, objects with a keep annotation, or objects
// another app's label claims; those are reported as Orphaned. Objects whose deletion failed
// stay in the Result's Inventory.
func (a *Applier) DeleteInventory(ctx context.Context, app string, inventory []ObjectRef) *ChangeSet {
	res := &ChangeSet{}
	for _, r := range dedupe(inventory) {
		if protected(r) {
			res.add(Orphaned, r)
			continue
		}
		live, ok := a.claim(ctx, app, r, res)
		switch {
		case !ok:
		case keptOnDelete(live):
			res.add(Orphaned, r)
			res.Warnings = append(res.Warnings, fmt.Sprintf("delete %s: not deleted (sync option Delete=false); left in the cluster, no longer managed", r))
		default:
			a.deleteObject(ctx, r, live, res, metav1.DeletePropagationBackground)
		}
	}
	sortRefs(res.Inventory)
	return res
}

// Release lets an app's objects go when the app leaves the cluster with
// preserveResourcesOnDeletion: nothing is deleted; the app label is taken off each object the
// app still claims, so that no app manages it any more. Released objects are reported as
// Released; those another app claims (or that are gone) are left alone; a failed release stays
// in the Result's Inventory.
func (a *Applier) Release(ctx context.Context, app string, inventory []ObjectRef) *ChangeSet {
	res := &ChangeSet{}
	patch := []byte(`{"metadata":{"labels":{"` + LabelApp + `":null}}}`)
	for _, r := range dedupe(inventory) {
		live, err := a.Get(ctx, r)
		switch {
		case err != nil:
			res.Inventory = append(res.Inventory, r)
			res.Warnings = append(res.Warnings, fmt.Sprintf("release %s: %v; kept", r, err))
			continue
		case live == nil:
			continue
		case live.GetLabels()[LabelApp] != app:
			res.add(Orphaned, r)
			continue
		}
		m, err := a.restMapping(ctx, schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind})
		if err == nil {
			_, err = a.resource(m, r.Namespace).Patch(ctx, r.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: a.fieldManager})
		}
		if err != nil && !apierrors.IsNotFound(err) {
			res.Inventory = append(res.Inventory, r)
			res.Warnings = append(res.Warnings, objectError("release", r, err).Error())
			continue
		}
		res.add(Released, r)
	}
	sortRefs(res.Inventory)
	return res
}

// prune handles the objects of prev that desired lacks. Objects kept are appended to
// res.Inventory. finalPass is false during Apply, where PruneLast defers the deletions.
func (a *Applier) prune(ctx context.Context, d *Revision, prev []ObjectRef, desired map[string]bool, finalPass bool, res *ChangeSet) {
	var stale []ObjectRef
	for _, r := range dedupe(prev) {
		if !desired[r.Key()] {
			stale = append(stale, r)
		}
	}
	if len(stale) == 0 {
		return
	}
	keep := func() {
		res.add(Stale, stale...)
		res.Inventory = append(res.Inventory, stale...)
	}
	switch {
	case !d.Policy.Prune:
		keep()
		return
	case len(d.Objects)+len(d.Hooks)+len(d.Skipped) == 0 && !d.Policy.AllowEmpty:
		keep()
		res.Warnings = append(res.Warnings, fmt.Sprintf("the render has no objects: nothing pruned (allowEmpty is off), %d objects kept", len(stale)))
		return
	case d.Policy.PruneLast && !finalPass:
		keep() // pruned once the revision is healthy
		return
	}

	var del, held []doomed
	for _, r := range stale {
		live, ok := a.claim(ctx, d.App, r, res)
		if !ok {
			continue
		}
		if protected(r) && !d.PruneConfirmed {
			held = append(held, doomed{r, live})
			continue
		}
		del = append(del, doomed{r, live})
	}
	total := len(dedupe(prev))
	if n := len(del) + len(held); !d.PruneConfirmed && n > 0 && 2*n > total {
		held, del = append(held, del...), nil
		res.Warnings = append(res.Warnings, fmt.Sprintf("prune would delete %d of %d objects: held awaiting confirmation", n, total))
	} else if len(held) > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("deleting %d Namespaces, PersistentVolumeClaims or CRDs: held awaiting confirmation", len(held)))
	}
	for _, h := range held {
		res.add(Held, h.ref)
		res.Inventory = append(res.Inventory, h.ref)
	}
	start := time.Now()
	a.deleteByWave(ctx, d.Waves, del, propagation(d.Policy), res)
	res.PruneTook += time.Since(start)
}

// claim reads the live object for a deletion and decides whether it may go: it must exist, be
// labelled for app and carry no keep annotation. Objects that stay for a reason are recorded
// in res; ok is true only for an object to delete.
func (a *Applier) claim(ctx context.Context, app string, r ObjectRef, res *ChangeSet) (*unstructured.Unstructured, bool) {
	live, err := a.Get(ctx, r)
	switch {
	case err != nil:
		res.Inventory = append(res.Inventory, r)
		res.add(PruneFailed, r)
		res.Warnings = append(res.Warnings, fmt.Sprintf("prune %s: %v; kept", r, err))
		return nil, false
	case live == nil:
		return nil, false // already gone
	case live.GetLabels()[LabelApp] != app:
		res.add(Orphaned, r)
		res.Warnings = append(res.Warnings, fmt.Sprintf("prune %s: not deleted, labelled %s=%q", r, LabelApp, live.GetLabels()[LabelApp]))
		return nil, false
	case keepAnnotated(live):
		res.add(Orphaned, r)
		res.Warnings = append(res.Warnings, fmt.Sprintf("prune %s: not deleted (Prune=false); left in the cluster, no longer managed", r))
		return nil, false
	}
	return live, true
}

// deleteObject deletes live (the object r names) with the given propagation, only if it is
// still the same object (UID). A failure keeps r in the inventory.
func (a *Applier) deleteObject(ctx context.Context, r ObjectRef, live *unstructured.Unstructured, res *ChangeSet, policy metav1.DeletionPropagation) {
	m, err := a.restMapping(ctx, schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind})
	if err == nil {
		uid := types.UID(live.GetUID())
		err = a.resource(m, r.Namespace).Delete(ctx, r.Name, metav1.DeleteOptions{
			Preconditions:     &metav1.Preconditions{UID: &uid},
			PropagationPolicy: &policy,
		})
	}
	if err != nil && !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
		res.Inventory = append(res.Inventory, r)
		res.add(PruneFailed, r)
		res.Warnings = append(res.Warnings, objectError("delete", r, err).Error())
		return
	}
	res.add(Pruned, r)
}

// desiredKeys returns the keys of d's objects as Apply would name them (namespace defaulted).
func (a *Applier) desiredKeys(ctx context.Context, d *Revision) (map[string]bool, error) {
	crds := bundleCRDs(d.Objects)
	keys := map[string]bool{}
	fresh := false
	for _, o := range slices.Concat(d.Objects, d.Hooks, d.Skipped) {
		obj := o.DeepCopy()
		gvk := obj.GroupVersionKind()
		namespaced, _, err := a.scope(ctx, gvk, crds, &item{obj: obj}, &fresh)
		if err != nil {
			return nil, err
		}
		switch {
		case !namespaced:
			obj.SetNamespace("")
		case obj.GetNamespace() == "":
			obj.SetNamespace(d.Namespace)
		}
		keys[RefOf(obj).Key()] = true
	}
	return keys, nil
}

// dedupe drops repeated objects (by key; the first version wins).
func dedupe(refs []ObjectRef) []ObjectRef {
	seen := map[string]bool{}
	out := make([]ObjectRef, 0, len(refs))
	for _, r := range refs {
		if !seen[r.Key()] {
			seen[r.Key()] = true
			out = append(out, r)
		}
	}
	return out
}

// Refs names d's objects as Apply would (namespace defaulted), for assessing an app that has
// nothing applied yet.
func (a *Applier) Refs(ctx context.Context, d *Revision) []ObjectRef {
	crds := bundleCRDs(d.Objects)
	out := make([]ObjectRef, 0, len(d.Objects))
	for _, o := range d.Objects {
		obj := o.DeepCopy()
		namespaced, _, err := a.scope(ctx, obj.GroupVersionKind(), crds, &item{obj: obj}, nil)
		switch {
		case err == nil && !namespaced:
			obj.SetNamespace("")
		case obj.GetNamespace() == "" && (err != nil || namespaced):
			obj.SetNamespace(d.Namespace)
		}
		out = append(out, RefOf(obj))
	}
	return out
}
