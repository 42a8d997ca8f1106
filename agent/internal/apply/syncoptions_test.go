package apply

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

func TestSyncOptionParsing(t *testing.T) {
	obj := func(ann ...string) *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		m := map[string]string{}
		for i := 0; i+1 < len(ann); i += 2 {
			m[ann[i]] = ann[i+1]
		}
		o.SetAnnotations(m)
		return o
	}
	for _, tc := range []struct {
		name                               string
		o                                  *unstructured.Unstructured
		keep, keepOnDelete, skipDry, extra bool
		unknown                            string
	}{
		{"none", obj(), false, false, false, false, ""},
		{"argo prune and delete", obj(AnnotationArgoSyncOptions, "Prune=false, Delete=false"), true, true, false, false, ""},
		{"flotilla prune", obj(AnnotationSyncOptions, "prune=false"), true, false, false, false, ""},
		{"legacy prune annotation", obj(AnnotationPrune, "disabled"), true, false, false, false, ""},
		{"skip dry-run", obj(AnnotationArgoSyncOptions, "SkipDryRunOnMissingResource=true,ServerSideApply=true"), false, false, true, false, ""},
		{"ignore extraneous", obj(AnnotationArgoCompareOptions, "IgnoreExtraneous"), false, false, false, true, ""},
		{"unknown", obj(AnnotationArgoSyncOptions, "Validate=false,PruneLast=true,Prune=true", AnnotationArgoCompareOptions, "ServerSideDiff=true"),
			false, false, false, false, "PruneLast=true, Prune=true, ServerSideDiff=true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := keepAnnotated(tc.o); got != tc.keep {
				t.Errorf("keepAnnotated = %v, want %v", got, tc.keep)
			}
			if got := keptOnDelete(tc.o); got != tc.keepOnDelete {
				t.Errorf("keptOnDelete = %v, want %v", got, tc.keepOnDelete)
			}
			if got := skipDryRunOnMissing(tc.o); got != tc.skipDry {
				t.Errorf("skipDryRunOnMissing = %v, want %v", got, tc.skipDry)
			}
			if got := ignoreExtraneous(tc.o); got != tc.extra {
				t.Errorf("ignoreExtraneous = %v, want %v", got, tc.extra)
			}
			if got := strings.Join(unknownSyncOptions(tc.o), ", "); got != tc.unknown {
				t.Errorf("unknownSyncOptions = %q, want %q", got, tc.unknown)
			}
		})
	}
}

// TestPruneFalseAndDeleteFalse: Prune=false (in Flotilla's annotation too) keeps an object
// dropped from Git, reported; Delete=false keeps one when its app leaves the cluster.
func TestPruneFalseAndDeleteFalse(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-keep-options")
	e.CreateNamespace(t, ns)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	keepPrune := kubetest.ConfigMap("keep-prune", "v1", AnnotationSyncOptions, "Prune=false")
	keepDelete := kubetest.ConfigMap("keep-delete", "v1", AnnotationArgoSyncOptions, "Delete=false")
	res, err := a.Apply(ctx, revision(t, "keep", ns, Policy{Prune: true}, keepPrune, keepDelete, kubetest.ConfigMap("a", "v1"), kubetest.ConfigMap("b", "v1")), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err = a.Apply(ctx, revision(t, "keep", ns, Policy{Prune: true}, keepDelete, kubetest.ConfigMap("a", "v1"), kubetest.ConfigMap("b", "v1")), res.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	if !kubetest.Has(res.Objects(Orphaned), "ConfigMap/"+ns+"/keep-prune") || kubetest.Has(res.Inventory, "ConfigMap/"+ns+"/keep-prune") {
		t.Errorf("Prune=false: orphaned %v, inventory %v; want keep-prune orphaned and out of the inventory", kubetest.Names(res.Objects(Orphaned)), kubetest.Names(res.Inventory))
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "keep-prune: not deleted (Prune=false)") {
		t.Errorf("warnings %q do not report keep-prune", res.Warnings)
	}
	if _, ok := e.ConfigMapValue(t, ns, "keep-prune", "value"); !ok {
		t.Error("Prune=false ConfigMap pruned")
	}
	del := a.DeleteInventory(ctx, "keep", res.Inventory)
	if del.Count(Pruned) != 2 || !kubetest.Has(del.Objects(Orphaned), "ConfigMap/"+ns+"/keep-delete") {
		t.Errorf("app removal: pruned %v, orphaned %v; want a and b deleted, keep-delete kept", kubetest.Names(del.Objects(Pruned)), kubetest.Names(del.Objects(Orphaned)))
	}
	if _, ok := e.ConfigMapValue(t, ns, "keep-delete", "value"); !ok {
		t.Error("Delete=false ConfigMap deleted with its app")
	}
}

// warnings records the warnings the API server sends.
type warnings struct {
	mu   sync.Mutex
	text []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.text = append(w.text, text)
}

func (w *warnings) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := strings.Join(w.text, "\n")
	w.text = nil
	return out
}

// TestValidateFalse: an object with a field its schema does not declare is refused; with
// Validate=false, per object or per app, it is applied without field validation, the field
// dropped, and without a warning from the API server.
func TestValidateFalse(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-validate")
	e.CreateNamespace(t, ns)
	w := &warnings{}
	cfg := rest.CopyConfig(e.Config)
	cfg.WarningHandler = w
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := kubetest.Ctx(t)
	group := kubetest.Uniq("validate") + ".e2e.flotilla.dev"
	schema := strings.Replace(crd(group), "        x-kubernetes-preserve-unknown-fields: true\n",
		"        properties:\n          spec:\n            type: object\n            properties:\n              size: {type: integer}\n", 1)
	t.Cleanup(func() {
		_ = a.dyn.Resource(crdGVR).Delete(context.Background(), "gadgets."+group, metav1.DeleteOptions{})
	})
	if _, err := a.Apply(ctx, revision(t, "validate-crd", "", Policy{}, schema), nil); err != nil {
		t.Fatal(err)
	}
	doc := func(name string, ann ...string) string {
		return strings.Replace(gadget(group, name, ann...), "spec: {size: 1}", "spec: {size: 1, bogusField: 2}", 1)
	}
	if _, err := a.Apply(ctx, revision(t, "validate", ns, Policy{}, doc("checked")), nil); err == nil || !strings.Contains(err.Error(), "bogusField") {
		t.Fatalf("an undeclared field with validation: err = %v, want it refused naming the field", err)
	}
	w.take()
	if _, err := a.Apply(ctx, revision(t, "validate", ns, Policy{}, doc("unchecked", AnnotationArgoSyncOptions, "Validate=false")), nil); err != nil {
		t.Fatalf("with Validate=false: %v", err)
	}
	if _, err := a.Apply(ctx, revision(t, "validate", ns, Policy{SkipValidation: true}, doc("app-wide")), nil); err != nil {
		t.Fatalf("with the app's Validate=false: %v", err)
	}
	if got := w.take(); got != "" {
		t.Errorf("with Validate=false: warnings %q, want none", got)
	}
	for _, name := range []string{"unchecked", "app-wide"} {
		live, err := a.Get(ctx, ObjectRef{Group: group, Version: "v1", Kind: "Gadget", Namespace: ns, Name: name})
		if err != nil || live == nil {
			t.Fatalf("Gadget %s not applied: %v", name, err)
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(live.Object, "spec", "bogusField"); found {
			t.Errorf("Gadget %s kept the unknown field", name)
		}
	}
}

// crd is a namespaced CRD of kind Gadget in group.
func crd(group string) string {
	return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.%[1]s
spec:
  group: %[1]s
  scope: Namespaced
  names: {kind: Gadget, plural: gadgets, singular: gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`, group)
}

func gadget(group, name string, ann ...string) string {
	return fmt.Sprintf("apiVersion: %s/v1\nkind: Gadget\nmetadata:\n  name: %s\n%sspec: {size: 1}\n", group, name, annotationsYAML(ann))
}

// TestSkipDryRunOnMissingResource: an object whose kind is not served yet fails the apply at
// once; with SkipDryRunOnMissingResource=true it is applied once its CRD is established, here
// by another party after the revision's first stage (the revision's Namespace) was written.
// A CRD in the same revision works with or without the option.
func TestSkipDryRunOnMissingResource(t *testing.T) {
	e := newEnv(t)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	group := kubetest.Uniq("skip") + ".e2e.flotilla.dev"
	ns := kubetest.Uniq("t-skip-dry-run")
	t.Cleanup(func() {
		_ = a.dyn.Resource(crdGVR).Delete(context.Background(), "gadgets."+group, metav1.DeleteOptions{})
	})

	_, err := a.Apply(ctx, revision(t, "skip", ns, Policy{}, kubetest.Namespace(ns), gadget(group, "g0")), nil)
	if err == nil {
		t.Fatal("a kind nobody serves, without the option: no error")
	}
	if _, err := e.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the failed apply wrote its Namespace: %v", err)
	}

	// Another party installs the CRD once the revision's Namespace exists.
	crdObjs, _, _ := kubetest.Bundle(t, crd(group))
	installed := make(chan error, 1)
	go func() {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := e.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return err == nil, nil
		})
		if err == nil {
			_, err = a.dyn.Resource(crdGVR).Create(ctx, crdObjs[0], metav1.CreateOptions{})
		}
		installed <- err
	}()
	res, err := a.Apply(ctx, revision(t, "skip", ns, Policy{}, kubetest.Namespace(ns),
		gadget(group, "g1", AnnotationArgoSyncOptions, "SkipDryRunOnMissingResource=true")), nil)
	if ierr := <-installed; ierr != nil {
		t.Fatalf("installing the CRD: %v", ierr)
	}
	if err != nil {
		t.Fatalf("with SkipDryRunOnMissingResource=true: %v", err)
	}
	if !kubetest.Has(res.Objects(Applied), "Gadget."+group+"/"+ns+"/g1") {
		t.Errorf("applied %v, want the Gadget", kubetest.Names(res.Objects(Applied)))
	}

	// The CRD in the same revision as its objects.
	group2 := kubetest.Uniq("skip") + ".e2e.flotilla.dev"
	t.Cleanup(func() {
		_ = a.dyn.Resource(crdGVR).Delete(context.Background(), "gadgets."+group2, metav1.DeleteOptions{})
	})
	res, err = a.Apply(ctx, revision(t, "skip", ns, Policy{}, crd(group2),
		gadget(group2, "g2", AnnotationArgoSyncOptions, "SkipDryRunOnMissingResource=true")), nil)
	if err != nil || !kubetest.Has(res.Objects(Applied), "Gadget."+group2+"/"+ns+"/g2") {
		t.Fatalf("CRD and object in one revision: applied %v, err %v", res, err)
	}
}

// TestPrunePropagationPolicy: PrunePropagationPolicy=orphan prunes an object and leaves what
// it owns, its owner reference removed; background (the default) deletes those too.
func TestPrunePropagationPolicy(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-propagation")
	e.CreateNamespace(t, ns)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	cmGVR := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	for _, tc := range []struct {
		name, policy string
		survives     bool
	}{{"orphan", "orphan", true}, {"default", "", false}} {
		owner := "owner-" + tc.name
		p := Policy{Prune: true, PrunePropagation: tc.policy}
		res, err := a.Apply(ctx, revision(t, "prop-"+tc.name, ns, p, kubetest.ConfigMap(owner, "v1"), kubetest.ConfigMap("stays-"+tc.name, "v1")), nil)
		if err != nil {
			t.Fatal(err)
		}
		live, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, owner, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dep := &unstructured.Unstructured{}
		dep.SetAPIVersion("v1")
		dep.SetKind("ConfigMap")
		dep.SetName("dependent-" + tc.name)
		dep.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner, UID: live.UID}})
		if _, err := a.dyn.Resource(cmGVR).Namespace(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Apply(ctx, revision(t, "prop-"+tc.name, ns, p, kubetest.ConfigMap("stays-"+tc.name, "v1")), res.Inventory); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, 60*time.Second, "the owner gone and its dependent "+map[bool]string{true: "orphaned", false: "deleted"}[tc.survives], func(ctx context.Context) (bool, error) {
			if _, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, owner, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false, nil
			}
			d, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, "dependent-"+tc.name, metav1.GetOptions{})
			if tc.survives {
				return err == nil && len(d.OwnerReferences) == 0, nil
			}
			return apierrors.IsNotFound(err), nil
		})
	}
}
