package apply

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
	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestApplyStagedHealthy applies a Namespace, a ConfigMap and a Deployment in one revision
// (the namespace does not exist before), sees the Deployment roll out, and re-applies the same
// bundle with zero write requests.
func TestApplyStagedHealthy(t *testing.T) {
	nsStaged := kubetest.Uniq("t-staged")
	e := newEnv(t)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	d := revision(t, "staged", nsStaged, Policy{Prune: true},
		kubetest.Namespace(nsStaged), kubetest.ConfigMap("settings", "v1"), kubetest.Deployment("web", 2, false))

	res, err := a.Apply(ctx, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ConfigMap/" + nsStaged + "/settings", "Namespace/" + nsStaged, "Deployment.apps/" + nsStaged + "/web"} // by group/kind
	if got := kubetest.Names(res.Inventory); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("inventory = %v, want %v", got, want)
	}
	if res.Count(Applied) != 3 || res.Count(Unchanged) != 0 {
		t.Errorf("applied %v, unchanged %v; want 3 applied", kubetest.Names(res.Objects(Applied)), kubetest.Names(res.Objects(Unchanged)))
	}
	cm, err := e.Client.CoreV1().ConfigMaps(nsStaged).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels[LabelApp] != "staged" {
		t.Errorf("ConfigMap labels = %v, want %s=staged", cm.Labels, LabelApp)
	}
	testwait.For(t, 90*time.Second, "Deployment web Healthy", func(ctx context.Context) (bool, error) {
		live, err := a.Get(ctx, ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: nsStaged, Name: "web"})
		if err != nil {
			return false, err
		}
		s, _ := health.Assess(live)
		return s == health.Healthy, nil
	})

	// The same bundle again, from a fresh Applier (cold discovery cache): no writes at all.
	a2 := newApplier(t, e)
	var res2 *ChangeSet
	n, what := e.WritesDuring(func() { res2, err = a2.Apply(ctx, d, res.Inventory) })
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("re-applying an unchanged bundle made %d write requests: %v", n, what)
	}
	if res2.Count(Applied) != 0 || res2.Count(Unchanged) != 3 {
		t.Errorf("re-apply: applied %v, unchanged %v", kubetest.Names(res2.Objects(Applied)), kubetest.Names(res2.Objects(Unchanged)))
	}

	// A changed ConfigMap is the only write.
	d2 := revision(t, "staged", nsStaged, d.Policy, kubetest.Namespace(nsStaged), kubetest.ConfigMap("settings", "v2"), kubetest.Deployment("web", 2, false))
	n, what = e.WritesDuring(func() { res2, err = a2.Apply(ctx, d2, res.Inventory) })
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || !kubetest.Has(res2.Objects(Applied), "ConfigMap/"+nsStaged+"/settings") {
		t.Errorf("changing one ConfigMap: %d writes %v, applied %v", n, what, kubetest.Names(res2.Objects(Applied)))
	}
	if v, _ := e.ConfigMapValue(t, nsStaged, "settings", "value"); v != "v2" {
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
	nsCrd := kubetest.Uniq("t-crd")
	e := newEnv(t)
	e.CreateNamespace(t, nsCrd)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	d := revision(t, "crd", nsCrd, Policy{}, widgetCRD, widget("w1", 3))
	res, err := a.Apply(ctx, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The CRD is cluster-wide: a test run before this one (-count) may have applied it.
	crd := "CustomResourceDefinition.apiextensions.k8s.io/widgets.e2e.flotilla.dev"
	if !(kubetest.Has(res.Objects(Applied), crd) || kubetest.Has(res.Objects(Unchanged), crd)) || !kubetest.Has(res.Objects(Applied), "Widget.e2e.flotilla.dev/"+nsCrd+"/w1") {
		t.Errorf("applied %v", kubetest.Names(res.Objects(Applied)))
	}
	w, err := a.Get(ctx, ObjectRef{Group: "e2e.flotilla.dev", Version: "v1", Kind: "Widget", Namespace: nsCrd, Name: "w1"})
	if err != nil || w == nil {
		t.Fatalf("widget not found: %v", err)
	}
	n, what := e.WritesDuring(func() { _, err = newApplier(t, e).Apply(ctx, d, res.Inventory) })
	if err != nil || n != 0 {
		t.Errorf("re-apply: %d writes %v, err %v", n, what, err)
	}

	// A custom resource whose kind nobody defines fails before anything is written.
	bad := revision(t, "crd", nsCrd, Policy{}, widgetCRD, widget("w1", 4),
		"apiVersion: e2e.flotilla.dev/v1\nkind: Gadget\nmetadata:\n  name: g\n")
	n, _ = e.WritesDuring(func() { _, err = a.Apply(ctx, bad, res.Inventory) })
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
	nsApi := kubetest.Uniq("t-api")
	e := newEnv(t)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	d := revision(t, "nsless", nsApi, Policy{}, kubetest.ConfigMap("settings", "v1"))
	var err error
	n, _ := e.WritesDuring(func() { _, err = a.Apply(ctx, d, nil) })
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
	if _, err := e.Client.CoreV1().Namespaces().Get(ctx, nsApi, metav1.GetOptions{}); err != nil {
		t.Errorf("namespace not created: %v", err)
	}
	if got := kubetest.Names(res.Inventory); len(got) != 1 || got[0] != "ConfigMap/"+nsApi+"/settings" {
		t.Errorf("inventory = %v, want only the ConfigMap (a created namespace is not the app's)", got)
	}
}

// TestApplyInvalidObjectWritesNothing: a revision with one invalid object fails naming it, and
// nothing of the revision is written.
func TestApplyInvalidObjectWritesNothing(t *testing.T) {
	nsInvalid := kubetest.Uniq("t-invalid")
	e := newEnv(t)
	e.CreateNamespace(t, nsInvalid)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	good := revision(t, "invalid", nsInvalid, Policy{}, kubetest.ConfigMap("settings", "v1"))
	res, err := a.Apply(ctx, good, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, deploy string }{
		{"negative replicas", strings.Replace(kubetest.Deployment("web", 1, false), "replicas: 1", "replicas: -1", 1)},
		{"unknown field", strings.Replace(kubetest.Deployment("web", 1, false), "replicas: 1", "replicas: 1\n  replicaz: 2", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := revision(t, "invalid", nsInvalid, Policy{}, kubetest.ConfigMap("settings", "v2"), tc.deploy)
			var err error
			n, what := e.WritesDuring(func() { _, err = a.Apply(ctx, bad, res.Inventory) })
			if err == nil {
				t.Fatal("invalid revision applied")
			}
			if !strings.Contains(err.Error(), "Deployment.apps/"+nsInvalid+"/web") || !IsRejected(err) {
				t.Errorf("err = %v (rejected %v), want a rejected error naming Deployment.apps/t-invalid/web", err, IsRejected(err))
			}
			if n != 0 {
				t.Errorf("failed revision made %d writes: %v", n, what)
			}
			if v, _ := e.ConfigMapValue(t, nsInvalid, "settings", "value"); v != "v1" {
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
	ns := kubetest.Uniq("t-halfway")
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	prev := []ObjectRef{{Version: "v1", Kind: "ConfigMap", Namespace: ns, Name: "old"}}
	d := revision(t, "halfway", ns, Policy{Prune: true},
		kubetest.Namespace(ns), strings.Replace(kubetest.Deployment("web", 1, false), "replicas: 1", "replicas: -1", 1))
	res, err := a.Apply(ctx, d, prev)
	if err == nil || !IsRejected(err) {
		t.Fatalf("err = %v, want the invalid Deployment rejected", err)
	}
	if res == nil {
		t.Fatal("no Result after a write")
	}
	want := []string{"ConfigMap/" + ns + "/old", "Namespace/" + ns}
	if got := kubetest.Names(res.Inventory); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("inventory = %v, want %v", got, want)
	}
}

// TestApplyReportsConflicts: a field another manager set is taken over and reported.
func TestApplyReportsConflicts(t *testing.T) {
	nsConflict := kubetest.Uniq("t-conflict")
	e := newEnv(t)
	e.CreateNamespace(t, nsConflict)
	ctx := kubetest.Ctx(t)
	_, err := e.Client.CoreV1().ConfigMaps(nsConflict).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data:       map[string]string{"value": "by-hand"},
	}, metav1.CreateOptions{FieldManager: "kubectl-edit"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := newApplier(t, e).Apply(ctx, revision(t, "conflict", nsConflict, Policy{}, kubetest.ConfigMap("settings", "v1")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "kubectl-edit") || !strings.Contains(res.Warnings[0], "ConfigMap/"+nsConflict+"/settings") {
		t.Errorf("warnings = %q, want one naming the object and manager kubectl-edit", res.Warnings)
	}
	if v, _ := e.ConfigMapValue(t, nsConflict, "settings", "value"); v != "v1" {
		t.Errorf("value = %q, want v1", v)
	}
}

// TestApplyTransientError: an unreachable API server is not a rejected revision.
func TestApplyTransientError(t *testing.T) {
	nsTransient := kubetest.Uniq("t-transient")
	e := newEnv(t)
	e.CreateNamespace(t, nsTransient)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	d := revision(t, "transient", nsTransient, Policy{}, kubetest.ConfigMap("settings", "v1"))
	if _, err := a.Apply(ctx, d, nil); err != nil { // warms discovery
		t.Fatal(err)
	}
	a.dyn = e.BrokenDynamic(t)
	d = revision(t, "transient", nsTransient, Policy{}, kubetest.ConfigMap("settings", "v2"))
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
