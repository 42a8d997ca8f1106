package apply

import (
	"context"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Hooks (agent/internal/plan): objects the controller runs in a phase of a sync, usually Jobs
// or Pods. The engine creates them and deletes them; the controller waits for them to
// complete and decides what to delete when. They are labelled for their app like any object,
// but never part of an inventory: never pruned, never drift-checked.

// RunHook creates hook, one of d's hooks, labelled for d's app (its namespace defaulted to d's,
// which CreateNamespace creates when missing). With recreate (BeforeHookCreation), an object
// of its name left by an earlier run is deleted first, in the foreground, and waited for; without,
// it is applied over it. It returns the object's reference and the UID of the object that
// runs.
func (a *Applier) RunHook(ctx context.Context, d *Revision, hook *unstructured.Unstructured, recreate bool) (ObjectRef, types.UID, error) {
	items, err := a.prepare(ctx, &Revision{
		App: d.App, Namespace: d.Namespace, Objects: []*unstructured.Unstructured{hook},
		Policy: Policy{CreateNamespace: d.Policy.CreateNamespace},
	})
	if err != nil {
		return ObjectRef{}, "", err
	}
	i := slices.IndexFunc(items, func(it *item) bool { return it.inventory })
	it := items[i]
	if ns := slices.DeleteFunc(slices.Clone(items), func(it *item) bool { return it.inventory }); len(ns) > 0 {
		// The destination namespace, made by CreateNamespace.
		if _, err := a.applyItems(ctx, ns, nil); err != nil {
			return it.ref, "", err
		}
	}
	if it.mapping == nil {
		if err := a.resolveDeferred(ctx, []*item{it}); err != nil {
			return it.ref, "", err
		}
	}
	live, err := a.live(ctx, it.mapping, it.obj.GetNamespace(), it.obj.GetName(), false)
	if err != nil {
		return it.ref, "", objectError("get", it.ref, err)
	}
	var out *unstructured.Unstructured
	if live != nil && recreate {
		out, err = a.recreate(ctx, it, live.GetUID())
	} else {
		out, err = a.resource(it.mapping, it.obj.GetNamespace()).Apply(ctx, it.obj.GetName(), it.obj, metav1.ApplyOptions{FieldManager: a.fieldManager, Force: true})
		if err != nil {
			err = objectError("apply", it.ref, err)
		}
	}
	if err != nil {
		return it.ref, "", err
	}
	a.noteWrite(it.ref, out.GetResourceVersion())
	return it.ref, out.GetUID(), nil
}

// DeleteHook deletes the hook object ref names, if it is still the one of uid, in the
// background (a Job's pods follow it). An object already gone is no error.
func (a *Applier) DeleteHook(ctx context.Context, ref ObjectRef, uid types.UID) error {
	m, err := a.restMapping(ctx, schema.GroupVersionKind{Group: ref.Group, Version: ref.Version, Kind: ref.Kind})
	if err != nil {
		return objectError("resolve", ref, err)
	}
	policy := metav1.DeletePropagationBackground
	err = a.resource(m, ref.Namespace).Delete(ctx, ref.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy,
	})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or another object of its name by now
	}
	return objectError("delete", ref, err)
}
