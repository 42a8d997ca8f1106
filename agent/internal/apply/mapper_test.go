package apply

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestRESTMapping: built-in kinds map to their resource and scope, a kind asked for without a
// version to its group's preferred version, an unknown kind is a no-match error naming it,
// and a CRD made after the first discovery is found once a miss has reset discovery.
func TestRESTMapping(t *testing.T) {
	e := newEnv(t)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	for _, tt := range []struct {
		gvk        schema.GroupVersionKind
		resource   schema.GroupVersionResource
		namespaced bool
	}{
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, true},
		{schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, true},
		{schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, nsGVR, false},
		{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, false},
		{schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "HorizontalPodAutoscaler"}, schema.GroupVersionResource{Group: "autoscaling", Version: "v1", Resource: "horizontalpodautoscalers"}, true},
		{schema.GroupVersionKind{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}, schema.GroupVersionResource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"}, true},
	} {
		m, err := a.restMapping(ctx, tt.gvk)
		if err != nil {
			t.Errorf("%s: %v", tt.gvk, err)
			continue
		}
		if m.Resource != tt.resource || (m.Scope.Name() == meta.RESTScopeNameNamespace) != tt.namespaced {
			t.Errorf("%s: %s namespaced=%t, want %s namespaced=%t", tt.gvk, m.Resource, m.Scope.Name() == meta.RESTScopeNameNamespace, tt.resource, tt.namespaced)
		}
	}

	unknown := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Gizmo"}
	if _, err := a.restMapping(ctx, unknown); !meta.IsNoMatchError(err) || !strings.Contains(err.Error(), `"Gizmo"`) {
		t.Errorf("unknown kind: %v, want a no-match error naming it", err)
	}

	// A CRD made behind the mapper's back: not known until a miss resets discovery.
	group := kubetest.Uniq("mapping") + ".flotilla.dev"
	crd := strings.NewReplacer("gadgets.capabilities.flotilla.dev", "widgets."+group, "capabilities.flotilla.dev", group,
		"kind: Gadget", "kind: Widget", "plural: gadgets", "plural: widgets", "singular: gadget", "singular: widget",
		"scope: Namespaced", "scope: Cluster").Replace(gadgetCRD)
	objs, _, _ := kubetest.Bundle(t, crd)
	if _, err := a.dyn.Resource(crdGVR).Create(ctx, objs[0], metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.dyn.Resource(crdGVR).Delete(context.Background(), "widgets."+group, metav1.DeleteOptions{})
	})
	widget := schema.GroupVersionKind{Group: group, Version: "v1", Kind: "Widget"}
	if _, err := a.lookup(ctx, widget); !meta.IsNoMatchError(err) {
		t.Fatalf("the new CRD's kind before discovery is reset: %v, want no match", err)
	}
	testwait.For(t, time.Minute, "the new CRD's kind mapped after a miss", func(ctx context.Context) (bool, error) {
		m, err := a.restMapping(ctx, widget)
		if meta.IsNoMatchError(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if m.Resource.Resource != "widgets" || m.Scope.Name() != meta.RESTScopeNameRoot {
			t.Fatalf("widget maps to %s, scope %s", m.Resource, m.Scope.Name())
		}
		return true, nil
	})
}

// TestRESTMappingAsClientGo: every built-in kind the API server serves maps as client-go's
// discovery REST mapper maps it, with its version and without. (Other tests' CRDs come and go
// meanwhile: their groups are left out.)
func TestRESTMappingAsClientGo(t *testing.T) {
	e := newEnv(t)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	dc, err := discovery.NewDiscoveryClientForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	want := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		if strings.Contains(gv.Group, ".") && !strings.HasSuffix(gv.Group, ".k8s.io") {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			for _, version := range []string{gv.Version, ""} {
				gk := schema.GroupKind{Group: gv.Group, Kind: r.Kind}
				w, werr := want.RESTMapping(gk, version)
				g, gerr := a.lookup(ctx, gk.WithVersion(version))
				if (werr == nil) != (gerr == nil) || werr == nil && (g.Resource != w.Resource || g.GroupVersionKind != w.GroupVersionKind || g.Scope.Name() != w.Scope.Name()) {
					t.Errorf("%s version %q: got %+v, %v; want %+v, %v", gk, version, g, gerr, w, werr)
				}
				n++
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d kinds compared", n)
	}
}
