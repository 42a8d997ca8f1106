package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/shared/syncoptions"
)

// AnnotationSyncOptions holds per-object sync options, comma separated, as
// AnnotationArgoSyncOptions does: "Force=true" deletes and recreates an object whose update
// changes an immutable field (a Deployment's selector, a Job's template, a Service's
// clusterIP); "Prune=false" keeps it from pruning.
const AnnotationSyncOptions = syncoptions.Flotilla

// recreateWait bounds the wait for an object deleted to be recreated to be gone.
const recreateWait = 2 * time.Minute

// immutableFields returns the fields err, an Invalid API error, says may not change; nil when
// it is another error.
func immutableFields(err error) []string {
	var se apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &se) || se.Status().Details == nil {
		return nil
	}
	var out []string
	for _, c := range se.Status().Details.Causes {
		msg := strings.ToLower(c.Message)
		if strings.Contains(msg, "immutable") || strings.Contains(msg, "may not change once set") || strings.Contains(msg, "may not be changed") {
			if c.Field != "" && !slices.Contains(out, c.Field) {
				out = append(out, c.Field)
			}
		}
	}
	return out
}

// immutableError is the failure of a dry-run that changes immutable fields of an object
// without Force=true: it names them and the option that recreates the object.
func immutableError(it *item, fields []string, err error) error {
	return &ObjectError{Object: it.ref, Op: "dry-run", Reason: string(metav1.StatusReasonInvalid), Rejected: true,
		Err: fmt.Errorf("immutable field %s changed: the object must be deleted and recreated, which the sync option Force=true (or Replace=true) does (for the whole app in spec.syncPolicy.syncOptions, or per object in the annotation %s or %s): %w",
			strings.Join(fields, ", "), AnnotationArgoSyncOptions, AnnotationSyncOptions, err)}
}

// recreate deletes the live object it replaces (the one of uid, in the foreground: what it
// owns goes first), waits (bounded) until it is gone and applies it anew.
func (a *Applier) recreate(ctx context.Context, it *item, uid types.UID) (*unstructured.Unstructured, error) {
	ri := a.resource(it.mapping, it.obj.GetNamespace())
	policy := metav1.DeletePropagationForeground
	err := ri.Delete(ctx, it.obj.GetName(), metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy,
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return nil, objectError("delete", it.ref, err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, recreateWait, true, func(ctx context.Context) (bool, error) {
		live, err := ri.Get(ctx, it.obj.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			return false, nil
		}
		return live.GetUID() != uid, nil
	})
	if err != nil {
		return nil, &ObjectError{Object: it.ref, Op: "delete", Err: fmt.Errorf("recreating it: not gone within %s: %w", recreateWait, err)}
	}
	out, err := a.ssa(ctx, it, false, true)
	if err != nil {
		return nil, objectError("apply", it.ref, err)
	}
	return out, nil
}
