package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flotilla-dev/flotilla/shared/syncoptions"
)

// Per-object options, in the annotations AnnotationArgoSyncOptions and AnnotationSyncOptions
// (comma separated) and AnnotationArgoCompareOptions:
//
//   - Prune=false: never pruned; an object dropped from Git is left in the cluster, no longer in
//     the inventory, and reported as Orphaned (prune.go).
//   - Delete=false: not deleted when its app leaves the cluster; reported as Orphaned.
//   - Force=true, Replace=true: an object whose update changes an immutable field is deleted and
//     recreated (recreate.go).
//   - ServerSideApply=true: what the agent always does.
//   - Validate=false: applied without the API server's field validation (fieldValidation=Ignore),
//     fields the kind's schema does not declare dropped (ssa).
//   - SkipDryRunOnMissingResource=true: an object whose kind the cluster does not serve yet is
//     not dry-run before the first write; it is applied once its kind is served (waited for, as
//     for the kinds of the revision's own CRDs, up to crdWait).
//   - compare-options IgnoreExtraneous: the object never counts as drift.
//
// AnnotationArgoCompareOptions holds Argo CD's compare options; IgnoreExtraneous keeps the
// object out of drift.
const AnnotationArgoCompareOptions = syncoptions.ArgoCompare

// syncOptionValue returns the value o's sync options annotations (Flotilla's or Argo CD's)
// give opt, case-insensitively ("" when unset).
func syncOptionValue(o *unstructured.Unstructured, opt string) string {
	return syncoptions.Value(o.GetAnnotations(), opt)
}

// syncOptionOff reports whether o's sync options set opt to false ("Prune=false").
func syncOptionOff(o *unstructured.Unstructured, opt string) bool {
	return syncOptionValue(o, opt) == "false"
}

// unknownSyncOptions lists the per-object options of o the agent does not honour.
func unknownSyncOptions(o *unstructured.Unstructured) []string {
	return syncoptions.Unknown(o.GetAnnotations())
}

// ignoreExtraneous reports whether o's compare options say it never counts as drift.
func ignoreExtraneous(o *unstructured.Unstructured) bool {
	return syncoptions.IgnoreExtraneous(o.GetAnnotations())
}

// keptOnDelete reports whether o stays in the cluster when its app leaves it (Delete=false).
func keptOnDelete(o *unstructured.Unstructured) bool { return syncOptionOff(o, "Delete") }

// skipDryRunOnMissing reports whether o may wait for its kind to be served
// (SkipDryRunOnMissingResource=true).
func skipDryRunOnMissing(o *unstructured.Unstructured) bool {
	return syncOptionValue(o, "SkipDryRunOnMissingResource") == "true"
}

// setOptions sets what the per-object and app sync options and the ignoreDifferences rules ask
// of each item; heal is true for a self-heal, which never writes an ignored field. Options the
// agent does not honour are named in res's warnings.
func (a *Applier) setOptions(d *Revision, items []*item, heal bool, res *ChangeSet) error {
	set, err := a.ignoreRules(d.Ignore)
	if err != nil {
		return err
	}
	for _, it := range items {
		it.force = it.force || syncOptionValue(it.obj, "Replace") == "true"
		it.skipValidation = d.Policy.SkipValidation || syncOptionOff(it.obj, "Validate")
		if heal || d.Policy.RespectIgnoreDifferences {
			it.respect = set.For(it.ref.Group, it.ref.Kind, it.ref.Namespace, it.ref.Name)
		}
		if unknown := unknownSyncOptions(it.obj); len(unknown) > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: sync options %s are not supported and are ignored", it.ref, strings.Join(unknown, ", ")))
		}
	}
	return nil
}

// ssa server-side applies it (dry-run or not, forcing conflicts or not). With Validate=false
// it is applied without field validation (fieldValidation=Ignore); and since server-side apply
// refuses fields the kind's schema does not declare whatever the validation, such fields are
// dropped from it (as a create or update without validation would) and it is applied again.
func (a *Applier) ssa(ctx context.Context, it *item, dryRun, force bool) (*unstructured.Unstructured, error) {
	opts := metav1.PatchOptions{FieldManager: a.fieldManager, Force: &force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if it.skipValidation {
		opts.FieldValidation = "Ignore"
	}
	patch := func() (*unstructured.Unstructured, error) {
		data, err := json.Marshal(it.obj.Object)
		if err != nil {
			return nil, err
		}
		return a.resource(it.mapping, it.obj.GetNamespace()).Patch(ctx, it.obj.GetName(), types.ApplyPatchType, data, opts)
	}
	out, err := patch()
	for range maxUndeclared {
		fields := undeclaredFields(err)
		if !it.skipValidation || len(fields) == 0 {
			break
		}
		obj := it.obj.DeepCopy()
		for _, f := range fields {
			unstructured.RemoveNestedField(obj.Object, f...)
		}
		it.obj = obj
		out, err = patch()
	}
	return out, err
}

// maxUndeclared bounds the applies of one object that drop undeclared fields.
const maxUndeclared = 3

// undeclared matches a field server-side apply refuses because the schema lacks it.
var undeclared = regexp.MustCompile(`(?m)(?:^|\s|: )\.([A-Za-z0-9_.-]+): field not declared in schema`)

// undeclaredFields returns the fields (as paths of map keys) err says the schema does not
// declare; fields inside lists are not returned.
func undeclaredFields(err error) [][]string {
	if err == nil {
		return nil
	}
	var out [][]string
	for _, m := range undeclared.FindAllStringSubmatch(err.Error(), -1) {
		out = append(out, strings.Split(m[1], "."))
	}
	return out
}

// propagation is the deletion propagation of prunes (PrunePropagationPolicy; background when
// unset).
func propagation(p Policy) metav1.DeletionPropagation {
	switch p.PrunePropagation {
	case "foreground":
		return metav1.DeletePropagationForeground
	case "orphan":
		return metav1.DeletePropagationOrphan
	default:
		return metav1.DeletePropagationBackground
	}
}
