package apply

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/ignore"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestCompactKeepsWhatReadersRead: the cache transform drops kubectl's last-applied annotation
// and the field set of the agent's own apply entry, and keeps the status (health), the other
// annotations and labels, the agent's entry itself (owns) and the other managers' field sets
// (ignoreDifferences by managedFieldsManagers).
func TestCompactKeepsWhatReadersRead(t *testing.T) {
	fields := func(f string) map[string]any { return map[string]any{"f:spec": map[string]any{f: map[string]any{}}} }
	status := map[string]any{"observedGeneration": int64(3), "conditions": []any{map[string]any{"type": "Available", "status": "True"}}}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{
			"name": "web", "namespace": "ns", "labels": map[string]any{LabelApp: "shop"},
			"annotations": map[string]any{annotationLastApplied: `{"big":"copy"}`, "team": "web"},
			"managedFields": []any{
				map[string]any{"manager": DefaultFieldManager, "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": fields("f:template")},
				map[string]any{"manager": hpaManager, "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": fields("f:replicas")},
				map[string]any{"manager": DefaultFieldManager, "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": fields("f:paused")},
			},
		},
		"spec":   map[string]any{"replicas": int64(5)},
		"status": status,
	}}
	wantStatus := obj.DeepCopy().Object["status"]
	out, err := compact(DefaultFieldManager)(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := out.(*unstructured.Unstructured)
	if !reflect.DeepEqual(u.Object["status"], wantStatus) {
		t.Errorf("status = %v, want it whole: %v", u.Object["status"], wantStatus)
	}
	if ann := u.GetAnnotations(); len(ann) != 1 || ann["team"] != "web" {
		t.Errorf("annotations = %v, want only team=web", ann)
	}
	if u.GetLabels()[LabelApp] != "shop" {
		t.Errorf("labels = %v, want the app label kept", u.GetLabels())
	}
	mfs := u.GetManagedFields()
	if len(mfs) != 3 {
		t.Fatalf("managedFields = %+v, want its 3 entries", mfs)
	}
	if mfs[0].Manager != DefaultFieldManager || mfs[0].FieldsV1 != nil {
		t.Errorf("the agent's apply entry = %+v, want it without its field set", mfs[0])
	}
	if mfs[1].Manager != hpaManager || mfs[1].FieldsV1 == nil || mfs[2].FieldsV1 == nil {
		t.Errorf("other entries = %+v, %+v; want their field sets", mfs[1], mfs[2])
	}
	a := &Applier{fieldManager: DefaultFieldManager}
	if !a.owns(u) {
		t.Error("owns() = false after compacting, want true")
	}

	// Without annotations left, the map goes; what is not an object passes untouched.
	bare := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"annotations": map[string]any{annotationLastApplied: "{}"}}}}
	if out, _ := compact(DefaultFieldManager)(bare); out.(*unstructured.Unstructured).GetAnnotations() != nil {
		t.Errorf("annotations = %v, want none", out.(*unstructured.Unstructured).GetAnnotations())
	}
	if out, _ := compact(DefaultFieldManager)("tombstone"); out != "tombstone" {
		t.Errorf("a non-object became %v", out)
	}
}

// TestWatchCacheIsCompactAndServesDriftAndHealth: against a real API server, the watch cache
// holds a Deployment without the last-applied annotation and the agent's field set, with its
// status as the API server has it; drift read from that cache still ignores the replicas the
// HPA's manager owns (managedFieldsManagers) and still sees an image changed by hand.
func TestWatchCacheIsCompactAndServesDriftAndHealth(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-compact")
	e.CreateNamespace(t, ns)
	a, ctx := runningApplier(t, e)

	d := revision(t, "compact", ns, Policy{}, kubetest.Deployment("web", 2, false))
	d.Ignore = []ignore.Rule{{Group: "apps", Kind: "Deployment", ManagedFieldsManagers: []string{hpaManager}}}
	if _, err := a.Apply(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	web := ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: ns, Name: "web"}
	a.Watch(ctx, []ObjectRef{web})
	scaleAs(t, e, ns, "web", 5, hpaManager)
	patch := `{"metadata":{"annotations":{"` + annotationLastApplied + `":"{\"kind\":\"Deployment\"}","team":"web"}}}`
	if _, err := e.Client.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
		t.Fatal(err)
	}

	// The cache has caught up with the API server when both show the same resourceVersion.
	var cached *unstructured.Unstructured
	var live map[string]any
	testwait.For(t, 30*time.Second, "the cache at the API server's version, status observed", func(ctx context.Context) (bool, error) {
		dep, err := e.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if dep.Status.ObservedGeneration != dep.Generation {
			return false, nil
		}
		obj, found, ok := a.cache.lookup(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, ns, "web")
		if !ok || !found || obj.GetResourceVersion() != dep.ResourceVersion {
			return false, nil
		}
		cached = obj
		live, err = runtime.DefaultUnstructuredConverter.ToUnstructured(dep)
		return err == nil, err
	})
	if _, found := cached.GetAnnotations()[annotationLastApplied]; found || cached.GetAnnotations()["team"] != "web" {
		t.Errorf("cached annotations = %v, want team and no last-applied", cached.GetAnnotations())
	}
	if !reflect.DeepEqual(cached.Object["status"], live["status"]) {
		t.Errorf("cached status = %v, want the API server's %v", cached.Object["status"], live["status"])
	}
	if !a.owns(cached) {
		t.Error("owns(cached) = false, want true")
	}
	var sawHPA bool
	for _, mf := range cached.GetManagedFields() {
		switch {
		case mf.Manager == DefaultFieldManager && mf.Operation == metav1.ManagedFieldsOperationApply && mf.FieldsV1 != nil:
			t.Errorf("the agent's apply entry kept its field set: %s", mf.FieldsV1.Raw)
		case mf.Manager == hpaManager && mf.FieldsV1 != nil:
			sawHPA = true
		}
	}
	if !sawHPA {
		t.Errorf("managedFields = %+v, want %s's entry with its field set", cached.GetManagedFields(), hpaManager)
	}

	driftUntil(t, a, d, "no drift: the replicas belong to "+hpaManager, noDrift)
	setImage(t, e, ns, "web", "registry.example/web:hacked")
	driftUntil(t, a, d, "the image change as drift", func(drift []Drift) bool {
		return len(drift) == 1 && strings.Contains(drift[0].Diff, "image") && !strings.Contains(drift[0].Diff, "replicas")
	})
}
