package syncer

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/flotilla-dev/flotilla/agent/internal/health"
)

// TestApplyStagedHealthy applies a Namespace, a ConfigMap and a Deployment in one revision
// (the namespace does not exist before), sees the Deployment roll out, and re-applies the same
// bundle with zero write requests.
func TestApplyStagedHealthy(t *testing.T) {
	nsStaged := uniq("t-staged")
	e := newEnv(t)
	a := e.applier(t)
	ctx := testCtx(t)
	d := desired(t, "staged", nsStaged, SyncPolicy{Automated: true, Prune: true},
		namespace(nsStaged), configMap("settings", "v1"), deployment("web", 2, false))

	res, err := a.Apply(ctx, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ConfigMap/" + nsStaged + "/settings", "Namespace/" + nsStaged, "Deployment.apps/" + nsStaged + "/web"} // by group/kind
	if got := refNames(res.Inventory); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("inventory = %v, want %v", got, want)
	}
	if len(res.Applied) != 3 || len(res.Unchanged) != 0 {
		t.Errorf("applied %v, unchanged %v; want 3 applied", refNames(res.Applied), refNames(res.Unchanged))
	}
	cm, err := e.client.CoreV1().ConfigMaps(nsStaged).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels[LabelApp] != "staged" {
		t.Errorf("ConfigMap labels = %v, want %s=staged", cm.Labels, LabelApp)
	}
	poll(t, "Deployment web Healthy", 90*time.Second, func(ctx context.Context) (bool, error) {
		live, err := a.get(ctx, ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: nsStaged, Name: "web"})
		if err != nil {
			return false, err
		}
		s, _ := health.Assess(live)
		return s == health.Healthy, nil
	})

	// The same bundle again, from a fresh Applier (cold discovery cache): no writes at all.
	a2 := e.applier(t)
	var res2 *Result
	n, what := e.writesDuring(func() { res2, err = a2.Apply(ctx, d, res.Inventory) })
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("re-applying an unchanged bundle made %d write requests: %v", n, what)
	}
	if len(res2.Applied) != 0 || len(res2.Unchanged) != 3 {
		t.Errorf("re-apply: applied %v, unchanged %v", refNames(res2.Applied), refNames(res2.Unchanged))
	}

	// A changed ConfigMap is the only write.
	d2 := desired(t, "staged", nsStaged, d.Policy, namespace(nsStaged), configMap("settings", "v2"), deployment("web", 2, false))
	n, what = e.writesDuring(func() { res2, err = a2.Apply(ctx, d2, res.Inventory) })
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || !hasRef(res2.Applied, "ConfigMap/"+nsStaged+"/settings") {
		t.Errorf("changing one ConfigMap: %d writes %v, applied %v", n, what, refNames(res2.Applied))
	}
	if v, _ := e.configMapValue(t, nsStaged, "settings", "value"); v != "v2" {
		t.Errorf("ConfigMap value = %q, want v2", v)
	}
}

const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.flotilla.dev
spec:
  group: e2e.flotilla.dev
  scope: Namespaced
  names:
    kind: Widget
    plural: widgets
    singular: widget
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: integer
`

func widget(name string, size int) string {
	return "apiVersion: e2e.flotilla.dev/v1\nkind: Widget\nmetadata:\n  name: " + name +
		"\nspec:\n  size: " + strconv.Itoa(size) + "\n"
}

// TestApplyCRDAndCustomResource applies a CRD and a resource of its kind in one revision.
func TestApplyCRDAndCustomResource(t *testing.T) {
	nsCrd := uniq("t-crd")
	e := newEnv(t)
	e.createNamespace(t, nsCrd)
	a := e.applier(t)
	ctx := testCtx(t)
	d := desired(t, "crd", nsCrd, SyncPolicy{Automated: true}, widgetCRD, widget("w1", 3))
	res, err := a.Apply(ctx, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The CRD is cluster-wide: a test run before this one (-count) may have applied it.
	crd := "CustomResourceDefinition.apiextensions.k8s.io/widgets.e2e.flotilla.dev"
	if !(hasRef(res.Applied, crd) || hasRef(res.Unchanged, crd)) || !hasRef(res.Applied, "Widget.e2e.flotilla.dev/"+nsCrd+"/w1") {
		t.Errorf("applied %v", refNames(res.Applied))
	}
	w, err := a.get(ctx, ObjectRef{Group: "e2e.flotilla.dev", Version: "v1", Kind: "Widget", Namespace: nsCrd, Name: "w1"})
	if err != nil || w == nil {
		t.Fatalf("widget not found: %v", err)
	}
	n, what := e.writesDuring(func() { _, err = e.applier(t).Apply(ctx, d, res.Inventory) })
	if err != nil || n != 0 {
		t.Errorf("re-apply: %d writes %v, err %v", n, what, err)
	}

	// A custom resource whose kind nobody defines fails before anything is written.
	bad := desired(t, "crd", nsCrd, SyncPolicy{Automated: true}, widgetCRD, widget("w1", 4),
		"apiVersion: e2e.flotilla.dev/v1\nkind: Gadget\nmetadata:\n  name: g\n")
	n, _ = e.writesDuring(func() { _, err = a.Apply(ctx, bad, res.Inventory) })
	var oe *ObjectError
	if !errors.As(err, &oe) || oe.Object.Kind != "Gadget" || !IsRejected(err) {
		t.Errorf("unknown kind: err = %v, want a rejected ObjectError naming the Gadget", err)
	}
	if n != 0 {
		t.Errorf("a revision with an unknown kind made %d writes", n)
	}
}

// TestApplyMissingNamespace: objects for a namespace that is neither there nor in the bundle
// fail the revision, unless CreateNamespace makes the destination namespace.
func TestApplyMissingNamespace(t *testing.T) {
	nsApi := uniq("t-api")
	e := newEnv(t)
	a := e.applier(t)
	ctx := testCtx(t)
	d := desired(t, "nsless", nsApi, SyncPolicy{Automated: true}, configMap("settings", "v1"))
	var err error
	n, _ := e.writesDuring(func() { _, err = a.Apply(ctx, d, nil) })
	if err == nil || err.Error() != `namespace "`+nsApi+`" not found (set syncOptions CreateNamespace=true)` {
		t.Fatalf("err = %v", err)
	}
	if !IsRejected(err) || n != 0 {
		t.Errorf("rejected = %v, writes = %d", IsRejected(err), n)
	}

	d.Policy.CreateNamespace = true
	res, err := a.Apply(ctx, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CoreV1().Namespaces().Get(ctx, nsApi, metav1.GetOptions{}); err != nil {
		t.Errorf("namespace not created: %v", err)
	}
	if got := refNames(res.Inventory); len(got) != 1 || got[0] != "ConfigMap/"+nsApi+"/settings" {
		t.Errorf("inventory = %v, want only the ConfigMap (a created namespace is not the app's)", got)
	}
}

// TestApplyInvalidObjectWritesNothing: a revision with one invalid object fails naming it, and
// nothing of the revision is written.
func TestApplyInvalidObjectWritesNothing(t *testing.T) {
	nsInvalid := uniq("t-invalid")
	e := newEnv(t)
	e.createNamespace(t, nsInvalid)
	a := e.applier(t)
	ctx := testCtx(t)
	good := desired(t, "invalid", nsInvalid, SyncPolicy{Automated: true}, configMap("settings", "v1"))
	res, err := a.Apply(ctx, good, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, deploy string }{
		{"negative replicas", strings.Replace(deployment("web", 1, false), "replicas: 1", "replicas: -1", 1)},
		{"unknown field", strings.Replace(deployment("web", 1, false), "replicas: 1", "replicas: 1\n  replicaz: 2", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := desired(t, "invalid", nsInvalid, SyncPolicy{Automated: true}, configMap("settings", "v2"), tc.deploy)
			var err error
			n, what := e.writesDuring(func() { _, err = a.Apply(ctx, bad, res.Inventory) })
			if err == nil {
				t.Fatal("invalid revision applied")
			}
			if !strings.Contains(err.Error(), "Deployment.apps/"+nsInvalid+"/web") || !IsRejected(err) {
				t.Errorf("err = %v (rejected %v), want a rejected error naming Deployment.apps/t-invalid/web", err, IsRejected(err))
			}
			if n != 0 {
				t.Errorf("failed revision made %d writes: %v", n, what)
			}
			if v, _ := e.configMapValue(t, nsInvalid, "settings", "value"); v != "v1" {
				t.Errorf("ConfigMap value = %q, want v1 (unchanged)", v)
			}
		})
	}
}

// TestApplyFailureAfterWrite: when a revision fails after its first write (here: an invalid
// object in a namespace the revision creates, so it can only be dry-run after stage 1), what
// was written is returned in the inventory so that it is not lost.
func TestApplyFailureAfterWrite(t *testing.T) {
	e := newEnv(t)
	ns := uniq("t-halfway")
	a := e.applier(t)
	ctx := testCtx(t)
	prev := []ObjectRef{{Version: "v1", Kind: "ConfigMap", Namespace: ns, Name: "old"}}
	d := desired(t, "halfway", ns, SyncPolicy{Automated: true, Prune: true},
		namespace(ns), strings.Replace(deployment("web", 1, false), "replicas: 1", "replicas: -1", 1))
	res, err := a.Apply(ctx, d, prev)
	if err == nil || !IsRejected(err) {
		t.Fatalf("err = %v, want the invalid Deployment rejected", err)
	}
	if res == nil {
		t.Fatal("no Result after a write")
	}
	want := []string{"ConfigMap/" + ns + "/old", "Namespace/" + ns}
	if got := refNames(res.Inventory); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("inventory = %v, want %v", got, want)
	}
}

// TestApplyReportsConflicts: a field another manager set is taken over and reported.
func TestApplyReportsConflicts(t *testing.T) {
	nsConflict := uniq("t-conflict")
	e := newEnv(t)
	e.createNamespace(t, nsConflict)
	ctx := testCtx(t)
	_, err := e.client.CoreV1().ConfigMaps(nsConflict).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data:       map[string]string{"value": "by-hand"},
	}, metav1.CreateOptions{FieldManager: "kubectl-edit"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.applier(t).Apply(ctx, desired(t, "conflict", nsConflict, SyncPolicy{}, configMap("settings", "v1")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "kubectl-edit") || !strings.Contains(res.Warnings[0], "ConfigMap/"+nsConflict+"/settings") {
		t.Errorf("warnings = %q, want one naming the object and manager kubectl-edit", res.Warnings)
	}
	if v, _ := e.configMapValue(t, nsConflict, "settings", "value"); v != "v1" {
		t.Errorf("value = %q, want v1", v)
	}
}

// TestApplyTransientError: an unreachable API server is not a rejected revision.
func TestApplyTransientError(t *testing.T) {
	nsTransient := uniq("t-transient")
	e := newEnv(t)
	e.createNamespace(t, nsTransient)
	a := e.applier(t)
	ctx := testCtx(t)
	d := desired(t, "transient", nsTransient, SyncPolicy{}, configMap("settings", "v1"))
	if _, err := a.Apply(ctx, d, nil); err != nil { // warms discovery
		t.Fatal(err)
	}
	a.dyn = brokenDynamic(t, e)
	d = desired(t, "transient", nsTransient, SyncPolicy{}, configMap("settings", "v2"))
	_, err := a.Apply(ctx, d, nil)
	if err == nil || IsRejected(err) {
		t.Errorf("err = %v, rejected = %v; want a transient error", err, IsRejected(err))
	}
}

func TestIsRejected(t *testing.T) {
	ref := ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "api", Name: "web"}
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{objectError("apply", ref, apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "web", nil)), true},
		{objectError("apply", ref, apierrors.NewForbidden(gr, "web", errors.New("no"))), true},
		{objectError("apply", ref, apierrors.NewServiceUnavailable("later")), false},
		{objectError("apply", ref, apierrors.NewTimeoutError("slow", 1)), false},
		{objectError("apply", ref, apierrors.NewTooManyRequests("slow down", 1)), false},
		{&NamespaceError{Namespace: "api"}, true},
		{errors.New("connection refused"), false},
	} {
		if got := IsRejected(tc.err); got != tc.want {
			t.Errorf("IsRejected(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	err := objectError("dry-run", ref, apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "web", nil))
	if !strings.HasPrefix(err.Error(), "dry-run Deployment.apps/api/web: Invalid: ") {
		t.Errorf("error text %q", err)
	}
}
