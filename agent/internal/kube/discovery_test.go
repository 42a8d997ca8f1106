package kube

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
)

func testDiscovery(t *testing.T, unaggregated bool) *Discovery {
	t.Helper()
	d, err := NewDiscovery(shared.Clusters(t)[0].Config)
	if err != nil {
		t.Fatal(err)
	}
	d.unaggregated = unaggregated
	return d
}

// resources lists each group-version's resources and subresources as "name kind scope
// singular" (a subresource's singular name, which unaggregated discovery leaves empty and
// client-go's aggregated discovery takes from its resource, left out).
func resources(lists []*metav1.APIResourceList) map[string][]string {
	out := map[string][]string{}
	for _, l := range lists {
		var rs []string
		for _, r := range l.APIResources {
			singular := r.SingularName
			if strings.Contains(r.Name, "/") {
				singular = ""
			}
			rs = append(rs, fmt.Sprintf("%s %s namespaced=%t %s", r.Name, r.Kind, r.Namespaced, singular))
		}
		slices.Sort(rs)
		out[l.GroupVersion] = rs
	}
	return out
}

// TestDiscoveryAsClientGo: both ways of discovery (aggregated and one group-version at a time)
// find the API server's version and the same group-versions, resources, subresources, kinds
// and scopes as client-go's discovery client, each group's preferred version first.
func TestDiscoveryAsClientGo(t *testing.T) {
	ctx := testContext(t)
	dc, err := discovery.NewDiscoveryClientForConfig(shared.Clusters(t)[0].Config)
	if err != nil {
		t.Fatal(err)
	}
	groups, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	want := resources(lists)
	wantVersion, err := dc.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	for _, unaggregated := range []bool{false, true} {
		t.Run(fmt.Sprintf("unaggregated=%t", unaggregated), func(t *testing.T) {
			d := testDiscovery(t, unaggregated)
			v, err := d.ServerVersion(ctx)
			if err != nil || v.GitVersion != wantVersion.GitVersion {
				t.Fatalf("server version %v, %v; want %s", v, err, wantVersion.GitVersion)
			}
			apis, err := d.APIs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(apis.Failed) > 0 {
				t.Errorf("failed: %v", apis.Failed)
			}
			got := resources(apis.Lists)
			if !maps.EqualFunc(got, want, slices.Equal) {
				for gv := range maps.Keys(want) {
					if !slices.Equal(got[gv], want[gv]) {
						t.Errorf("%s:\n got %q\nwant %q", gv, got[gv], want[gv])
					}
				}
				t.Fatalf("group-versions:\n got %v\nwant %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
			}
			if apis.Lists[0].GroupVersion != "v1" {
				t.Errorf("first group-version %s, want the core group's v1", apis.Lists[0].GroupVersion)
			}
			first := map[string]string{} // group → its first group-version in Lists
			for _, l := range apis.Lists {
				gv, _ := schema.ParseGroupVersion(l.GroupVersion)
				if _, ok := first[gv.Group]; !ok {
					first[gv.Group] = l.GroupVersion
				}
			}
			for _, g := range groups {
				if first[g.Name] != g.PreferredVersion.GroupVersion {
					t.Errorf("group %q: first %s, want the preferred %s", g.Name, first[g.Name], g.PreferredVersion.GroupVersion)
				}
			}
		})
	}
}

// TestDiscoveryFailedGroup: a group-version whose aggregated API server is down is left out
// and named in Failed (aggregated discovery says it is stale; its own GET fails); the others
// are discovered.
func TestDiscoveryFailedGroup(t *testing.T) {
	ctx := testContext(t)
	dyn, err := dynamic.NewForConfig(shared.Clusters(t)[0].Config)
	if err != nil {
		t.Fatal(err)
	}
	apiServices := dyn.Resource(schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"})
	svc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": "v1.down.flotilla.dev"},
		"spec": map[string]any{
			"group": "down.flotilla.dev", "version": "v1", "groupPriorityMinimum": int64(1000), "versionPriority": int64(15),
			"insecureSkipTLSVerify": true,
			"service":               map[string]any{"namespace": "default", "name": "nobody-listens"},
		},
	}}
	if _, err := apiServices.Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = apiServices.Delete(context.Background(), "v1.down.flotilla.dev", metav1.DeleteOptions{}) })
	down := schema.GroupVersion{Group: "down.flotilla.dev", Version: "v1"}
	for _, unaggregated := range []bool{false, true} {
		t.Run(fmt.Sprintf("unaggregated=%t", unaggregated), func(t *testing.T) {
			apis, err := testDiscovery(t, unaggregated).APIs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := resources(apis.Lists)
			if _, ok := got[down.String()]; ok {
				t.Errorf("%s discovered", down)
			}
			if len(got["v1"]) == 0 || len(got["apps/v1"]) == 0 {
				t.Errorf("core and apps not discovered beside the failed group: %v", slices.Sorted(maps.Keys(got)))
			}
			if apis.Failed[down] == nil || len(apis.Failed) != 1 {
				t.Errorf("failed: %v, want %s alone", apis.Failed, down)
			}
		})
	}
}
