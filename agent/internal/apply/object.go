package apply

import (
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// prepareObject returns the copy of o that is applied: server-owned metadata dropped and the
// app label set.
func prepareObject(o *unstructured.Unstructured, app string) *unstructured.Unstructured {
	obj := o.DeepCopy()
	for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"} {
		unstructured.RemoveNestedField(obj.Object, "metadata", f)
	}
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelApp] = app
	obj.SetLabels(labels)
	return obj
}

// RefOf names o.
func RefOf(o *unstructured.Unstructured) ObjectRef {
	gvk := o.GroupVersionKind()
	return ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName()}
}

func isNamespace(gvk schema.GroupVersionKind) bool { return gvk.Group == "" && gvk.Kind == "Namespace" }

func isCRD(gvk schema.GroupVersionKind) bool {
	return gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition"
}

// protected kinds are never deleted without confirmation: losing one loses data or whole
// sets of objects.
func protected(ref ObjectRef) bool {
	switch {
	case ref.Group == "" && (ref.Kind == "Namespace" || ref.Kind == "PersistentVolumeClaim"):
		return true
	case ref.Group == "apiextensions.k8s.io" && ref.Kind == "CustomResourceDefinition":
		return true
	}
	return false
}

// bundleCRDs returns the types the bundle's CRDs define and their scope ("Namespaced" or
// "Cluster").
func bundleCRDs(objs []*unstructured.Unstructured) map[schema.GroupKind]string {
	out := map[schema.GroupKind]string{}
	for _, o := range objs {
		if !isCRD(o.GroupVersionKind()) {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
		if group != "" && kind != "" {
			out[schema.GroupKind{Group: group, Kind: kind}] = scope
		}
	}
	return out
}

// installOrder orders the second stage so that what others refer to comes first (much as
// Helm and Argo CD do). Kinds not listed go last, in bundle order.
var installOrder = func() map[string]int {
	kinds := []string{
		"PriorityClass", "ResourceQuota", "LimitRange", "PodDisruptionBudget", "ServiceAccount",
		"Secret", "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
		"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "DaemonSet", "Pod",
		"ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
		"StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
	}
	m := make(map[string]int, len(kinds))
	for i, k := range kinds {
		m[k] = i
	}
	return m
}()

// lateKinds run after everything else: webhooks would reject objects of the same revision.
var lateKinds = map[string]bool{"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true}

func stageOf(gvk schema.GroupVersionKind) (stage, order int) {
	switch {
	case isNamespace(gvk):
		return 0, 0
	case isCRD(gvk):
		return 0, 1
	case lateKinds[gvk.Kind]:
		return 1, len(installOrder) + 1
	}
	if o, ok := installOrder[gvk.Kind]; ok {
		return 1, o
	}
	return 1, len(installOrder)
}

// sameObject compares a dry-run result with the live object, ignoring what changes on every
// write or belongs to controllers: resourceVersion, generation, managedFields, timestamps,
// status; and kubectl's last-applied-configuration annotation.
func sameObject(dry, live *unstructured.Unstructured) bool {
	return reflect.DeepEqual(comparableFields(dry), comparableFields(live))
}

func comparableFields(o *unstructured.Unstructured) map[string]any {
	c := o.DeepCopy().Object
	for _, f := range []string{"resourceVersion", "generation", "managedFields", "creationTimestamp"} {
		unstructured.RemoveNestedField(c, "metadata", f)
	}
	delete(c, "status")
	// kubectl's client-side apply copies the whole object it applied into this annotation, a
	// Secret's data included: it is never compared, diffed or shown.
	unstructured.RemoveNestedField(c, "metadata", "annotations", annotationLastApplied)
	if ann, found, _ := unstructured.NestedMap(c, "metadata", "annotations"); found && len(ann) == 0 {
		unstructured.RemoveNestedField(c, "metadata", "annotations")
	}
	return c
}

// annotationLastApplied is where kubectl's client-side apply keeps what it last applied.
const annotationLastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// keepAnnotated reports whether o carries an annotation that keeps it from pruning.
func keepAnnotated(o *unstructured.Unstructured) bool {
	return strings.EqualFold(strings.TrimSpace(o.GetAnnotations()[AnnotationPrune]), "disabled") || syncOptionOff(o, "Prune")
}
