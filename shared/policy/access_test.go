package policy

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestAccess(t *testing.T) {
	deployments := schema.GroupKind{Group: "apps", Kind: "Deployment"}
	crd := schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}
	clusterRole := schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}
	var zero Access
	if !zero.AllowsNamespace("api", "api") || zero.AllowsNamespace("other", "api") || zero.AllowsNamespace("", "") {
		t.Error("the zero policy allows exactly the destination namespace")
	}
	if zero.AllowsClusterKind(clusterRole) || zero.Denies(deployments) {
		t.Error("the zero policy allows no cluster-scoped kind and denies nothing")
	}
	p := Access{
		Namespaces:       []string{"team-*", "shared"},
		ClusterResources: []schema.GroupKind{{Group: "rbac.authorization.k8s.io", Kind: "*"}},
		Deny:             []schema.GroupKind{{Group: "*", Kind: "CustomResourceDefinition"}},
	}
	for ns, want := range map[string]bool{"team-a": true, "shared": true, "api": false, "team": false} {
		if got := p.AllowsNamespace(ns, "api"); got != want {
			t.Errorf("AllowsNamespace(%q) = %v, want %v", ns, got, want)
		}
	}
	if !p.AllowsClusterKind(clusterRole) || p.AllowsClusterKind(crd) {
		t.Error("clusterResources globs: rbac/* allowed, CRDs not")
	}
	if !p.Denies(crd) || p.Denies(deployments) {
		t.Error("deny globs: */CustomResourceDefinition denied, Deployments not")
	}
	if got := zero.NamespacesNote("api"); got != ` (unset: only the destination namespace "api")` {
		t.Errorf("NamespacesNote = %q", got)
	}
	if p.NamespacesNote("api") != "" {
		t.Error("NamespacesNote is empty when namespaces are set")
	}
	if KindName(deployments) != "apps/Deployment" || KindName(schema.GroupKind{Kind: "Namespace"}) != "Namespace" {
		t.Error("KindName")
	}
}
