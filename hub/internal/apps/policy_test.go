package apps

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestPolicyMatching(t *testing.T) {
	gk := func(group, kind string) schema.GroupKind { return schema.GroupKind{Group: group, Kind: kind} }
	p := AccessPolicy{
		Namespaces:       []string{"api", "team-*", "env-?"},
		ClusterResources: []schema.GroupKind{gk("", "Namespace"), gk("rbac.authorization.k8s.io", "*"), gk("*.example.com", "Widget")},
		Deny:             []schema.GroupKind{gk("rbac.authorization.k8s.io", "ClusterRoleBinding"), gk("", "Secret")},
	}
	namespaces := []struct {
		policy AccessPolicy
		ns     string
		dest   string
		want   bool
	}{
		{p, "api", "api", true},
		{p, "team-a", "api", true},
		{p, "team-", "api", true},
		{p, "team", "api", false},
		{p, "env-1", "api", true},
		{p, "env-12", "api", false},
		{p, "kube-system", "api", false},
		{p, "", "api", false},
		// Unset: only the destination namespace.
		{AccessPolicy{}, "api", "api", true},
		{AccessPolicy{}, "web", "api", false},
		{AccessPolicy{}, "", "", false},
		{AccessPolicy{Namespaces: []string{"*"}}, "anything", "api", true},
	}
	for _, tt := range namespaces {
		if got := tt.policy.AllowsNamespace(tt.ns, tt.dest); got != tt.want {
			t.Errorf("%v.AllowsNamespace(%q, dest %q) = %t, want %t", tt.policy.Namespaces, tt.ns, tt.dest, got, tt.want)
		}
	}
	kinds := []struct {
		policy        AccessPolicy
		gk            schema.GroupKind
		cluster, deny bool
	}{
		{p, gk("", "Namespace"), true, false},
		{p, gk("rbac.authorization.k8s.io", "ClusterRole"), true, false},
		// Deny wins: the glob allows it, the deny refuses it.
		{p, gk("rbac.authorization.k8s.io", "ClusterRoleBinding"), true, true},
		{p, gk("a.example.com", "Widget"), true, false},
		{p, gk("example.com", "Widget"), false, false},
		{p, gk("a.example.com", "Gadget"), false, false},
		{p, gk("", "Secret"), false, true},
		{p, gk("apps", "Secret"), false, false},
		// Fail closed: nothing cluster-scoped unless listed, the core group is not any group.
		{AccessPolicy{}, gk("", "Namespace"), false, false},
		{AccessPolicy{ClusterResources: []schema.GroupKind{gk("", "*")}}, gk("storage.k8s.io", "StorageClass"), false, false},
		{AccessPolicy{ClusterResources: []schema.GroupKind{gk("*", "*")}}, gk("", "Node"), true, false},
	}
	for _, tt := range kinds {
		if got := tt.policy.AllowsClusterKind(tt.gk); got != tt.cluster {
			t.Errorf("%v.AllowsClusterKind(%v) = %t, want %t", tt.policy.ClusterResources, tt.gk, got, tt.cluster)
		}
		if got := tt.policy.Denies(tt.gk); got != tt.deny {
			t.Errorf("%v.Denies(%v) = %t, want %t", tt.policy.Deny, tt.gk, got, tt.deny)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	const argoHead = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: api}\n"
	tests := []struct {
		name string
		doc  string
		want AccessPolicy
		errs []string // each an error's prefix
	}{
		{"unset", head + "spec: {source: {repoURL: r}, destination: {clusters: [a], namespace: api}}\n", AccessPolicy{}, nil},
		{"full", head + `spec:
  source: {repoURL: r}
  destination: {clusters: [a], namespace: api}
  policy:
    namespaces: [api, "team-*"]
    clusterResources: [{group: "", kind: Namespace}]
    deny: [{group: rbac.authorization.k8s.io, kind: ClusterRoleBinding}]
`, AccessPolicy{
			Namespaces:       []string{"api", "team-*"},
			ClusterResources: []schema.GroupKind{{Kind: "Namespace"}},
			Deny:             []schema.GroupKind{{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}},
		}, nil},
		{"argo", argoHead + `spec:
  project: default
  source: {repoURL: r}
  destination: {name: a, namespace: api}
  policy: {clusterResources: [{group: "*", kind: "*"}]}
`, AccessPolicy{ClusterResources: []schema.GroupKind{{Group: "*", Kind: "*"}}}, nil},
		{"argo misspelt field", argoHead + "spec: {source: {repoURL: r}, destination: {name: a}, policy: {denny: []}}\n", AccessPolicy{},
			[]string{`apps/api.yaml: Application "api": spec.policy: unknown field "denny"`}},
		{"unknown field", head + "spec: {source: {repoURL: r}, destination: {clusters: [a]}, policy: {clusterResourceWhitelist: []}}\n", AccessPolicy{},
			[]string{`apps/api.yaml: Application "api": unknown field "spec.policy.clusterResourceWhitelist"`}},
		{"bad entries", head + `spec:
  source: {repoURL: r}
  destination: {clusters: [a]}
  policy:
    namespaces: ["", Kube_System, "a/b", "team-["]
    clusterResources: [{group: ""}, {group: "[", kind: X}]
    deny: [{kind: "Cluster[Role"}]
`, AccessPolicy{}, []string{
			`apps/api.yaml: Application "api": spec.policy.namespaces[0]: required`,
			`apps/api.yaml: Application "api": spec.policy.namespaces[1]: "Kube_System": a lowercase RFC 1123 label`,
			`apps/api.yaml: Application "api": spec.policy.namespaces[2]: "a/b": a namespace glob has no /`,
			`apps/api.yaml: Application "api": spec.policy.namespaces[3]: "team-[": syntax error in pattern`,
			`apps/api.yaml: Application "api": spec.policy.clusterResources[0].kind: required`,
			`apps/api.yaml: Application "api": spec.policy.clusterResources[1]: "[": syntax error in pattern`,
			`apps/api.yaml: Application "api": spec.policy.deny[0]: "Cluster[Role": syntax error in pattern`,
		}},
		{"destination not allowed", head + "spec: {source: {repoURL: r}, destination: {clusters: [a], namespace: api}, policy: {namespaces: [\"team-*\"]}}\n", AccessPolicy{},
			[]string{`apps/api.yaml: Application "api": spec.policy.namespaces: the destination namespace "api" is not among ["team-*"]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apps, errs := Parse("apps/api.yaml", []byte(tt.doc))
			if len(errs) != len(tt.errs) {
				t.Fatalf("errors = %q, want %d: %q", errs, len(tt.errs), tt.errs)
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), tt.errs[i]) {
					t.Errorf("error %d = %q, want prefix %q", i, err, tt.errs[i])
				}
			}
			if len(tt.errs) > 0 {
				return
			}
			if len(apps) != 1 {
				t.Fatalf("apps = %v, want one", apps)
			}
			if got := apps[0].Access; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("policy = %+v, want %+v", got, tt.want)
			}
			if len(apps[0].Warnings) > 0 {
				t.Errorf("warnings %q", apps[0].Warnings)
			}
		})
	}
}
