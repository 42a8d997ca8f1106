package apply

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/policy"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestPolicyMatching(t *testing.T) {
	gk := func(group, kind string) schema.GroupKind { return schema.GroupKind{Group: group, Kind: kind} }
	obj := func(kind, ns, name string) *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		o.SetKind(kind)
		o.SetNamespace(ns)
		o.SetName(name)
		return o
	}
	p := policy.Access{
		Namespaces:       []string{"api", "team-*"},
		ClusterResources: []schema.GroupKind{gk("", "Namespace"), gk("rbac.authorization.k8s.io", "*")},
		Deny:             []schema.GroupKind{gk("rbac.authorization.k8s.io", "ClusterRoleBinding")},
	}
	tests := []struct {
		name       string
		policy     policy.Access
		gk         schema.GroupKind
		obj        *unstructured.Unstructured
		ns         string // where a namespaced object goes
		namespaced bool
		want       string
	}{
		{"destination namespace by default", policy.Access{}, gk("", "ConfigMap"), obj("ConfigMap", "", "c"), "api", true, ""},
		{"other namespace refused by default", policy.Access{}, gk("", "ConfigMap"), obj("ConfigMap", "web", "c"), "web", true,
			`ConfigMap/web/c: namespace "web" is not allowed by spec.policy.namespaces (unset: only the destination namespace "api")`},
		{"glob", p, gk("apps", "Deployment"), obj("Deployment", "team-a", "d"), "team-a", true, ""},
		{"glob miss", p, gk("apps", "Deployment"), obj("Deployment", "teama", "d"), "teama", true,
			`Deployment/teama/d: namespace "teama" is not allowed by spec.policy.namespaces`},
		{"cluster-scoped fails closed", policy.Access{}, gk("rbac.authorization.k8s.io", "ClusterRole"), obj("ClusterRole", "", "admin-all"), "", false,
			"ClusterRole/admin-all: cluster-scoped kind rbac.authorization.k8s.io/ClusterRole is not allowed by spec.policy.clusterResources"},
		{"cluster-scoped allowed by glob", p, gk("rbac.authorization.k8s.io", "ClusterRole"), obj("ClusterRole", "", "admin-all"), "", false, ""},
		{"deny wins", p, gk("rbac.authorization.k8s.io", "ClusterRoleBinding"), obj("ClusterRoleBinding", "", "b"), "", false,
			"ClusterRoleBinding/b: kind rbac.authorization.k8s.io/ClusterRoleBinding is denied by spec.policy.deny"},
		{"namespace name allowed", p, gk("", "Namespace"), obj("Namespace", "", "team-b"), "", false, ""},
		{"namespace name refused", p, gk("", "Namespace"), obj("Namespace", "", "kube-system"), "", false,
			`Namespace/kube-system: namespace "kube-system" is not allowed by spec.policy.namespaces`},
		{"core group is not any group", policy.Access{ClusterResources: []schema.GroupKind{gk("", "*")}}, gk("storage.k8s.io", "StorageClass"), obj("StorageClass", "", "fast"), "", false,
			"StorageClass/fast: cluster-scoped kind storage.k8s.io/StorageClass is not allowed by spec.policy.clusterResources"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := accessViolation(tt.policy, "api", tt.obj, tt.gk, tt.ns, tt.namespaced); got != tt.want {
				t.Errorf("violation = %q, want %q", got, tt.want)
			}
		})
	}
}

func clusterRole(name string, labels ...string) string {
	s := fmt.Sprintf("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: %s\n", name)
	if len(labels) > 0 {
		s += "  labels:\n"
		for i := 0; i+1 < len(labels); i += 2 {
			s += fmt.Sprintf("    %s: %q\n", labels[i], labels[i+1])
		}
	}
	return s + "rules:\n- apiGroups: [\"*\"]\n  resources: [\"*\"]\n  verbs: [\"*\"]\n"
}

// policyErr returns err's violations, failing t when err is not a *PolicyError.
func policyErr(t *testing.T, err error) []string {
	t.Helper()
	var pe *PolicyError
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v, want a *PolicyError", err)
	}
	if !IsRejected(err) {
		t.Errorf("a policy violation is not taken for a rejected revision: %v", err)
	}
	return pe.Violations
}

// TestPolicyRefusesClusterRole: a revision with a ClusterRole its policy does not list is
// refused before anything is written, naming the object and the rule, and NACKed by the
// controller (syncer TestPolicyRefusalNacked); allow-listing the kind applies it.
func TestPolicyRefusesClusterRole(t *testing.T) {
	ns := kubetest.Uniq("t-policy")
	role := kubetest.Uniq("t-policy-admin-all")
	e := newEnv(t)
	e.CreateNamespace(t, ns)
	t.Cleanup(func() {
		_ = e.Client.RbacV1().ClusterRoles().Delete(context.Background(), role, metav1.DeleteOptions{})
	})
	ctx := kubetest.Ctx(t)
	a := newApplier(t, e)
	d := revision(t, "policy", ns, Policy{}, kubetest.ConfigMap("settings", "v1"), clusterRole(role))
	d.Access = policy.Access{}

	var err error
	n, what := e.WritesDuring(func() { _, err = a.Apply(ctx, d, nil) })
	want := "ClusterRole/" + role + ": cluster-scoped kind rbac.authorization.k8s.io/ClusterRole is not allowed by spec.policy.clusterResources"
	if v := policyErr(t, err); len(v) != 1 || v[0] != want {
		t.Errorf("violations %q, want [%q]", v, want)
	}
	if n != 0 {
		t.Errorf("a refused revision made %d writes: %v", n, what)
	}
	if _, ok := e.ConfigMapValue(t, ns, "settings", "value"); ok {
		t.Error("the ConfigMap of the refused revision was applied")
	}
	if _, err := e.Client.RbacV1().ClusterRoles().Get(ctx, role, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused ClusterRole exists (err %v)", err)
	}

	// Allow-listed, it applies.
	d2 := *d
	d2.Access = policy.Access{ClusterResources: []schema.GroupKind{{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}}}
	if _, err := a.Apply(ctx, &d2, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.RbacV1().ClusterRoles().Get(ctx, role, metav1.GetOptions{}); err != nil {
		t.Errorf("the allowed ClusterRole: %v", err)
	}
	if v, _ := e.ConfigMapValue(t, ns, "settings", "value"); v != "v1" {
		t.Errorf("ConfigMap value %q, want v1", v)
	}
}

// TestPolicyScopeFromBundleCRD: the agent takes the scope of a kind its cluster does not serve
// yet from the CRD of the same revision.
func TestPolicyScopeFromBundleCRD(t *testing.T) {
	e := newEnv(t)
	a := newApplier(t, e)
	crd := func(scope string) string {
		return "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gizmos.policy.flotilla.dev}\n" +
			"spec: {group: policy.flotilla.dev, scope: " + scope + ", names: {kind: Gizmo, plural: gizmos}, versions: [{name: v1, served: true, storage: true}]}\n"
	}
	const gizmo = "apiVersion: policy.flotilla.dev/v1\nkind: Gizmo\nmetadata: {name: g1}\n"
	access := policy.Access{ClusterResources: []schema.GroupKind{{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}}}

	d := revision(t, "gizmos", "api", Policy{}, crd("Cluster"), gizmo)
	d.Access = access
	want := "Gizmo/g1: cluster-scoped kind policy.flotilla.dev/Gizmo is not allowed by spec.policy.clusterResources"
	if v := policyErr(t, a.checkPolicy(kubetest.Ctx(t), d)); len(v) != 1 || v[0] != want {
		t.Errorf("violations %q, want [%q]", v, want)
	}
	d = revision(t, "gizmos", "api", Policy{}, crd("Namespaced"), gizmo)
	d.Access = access
	if err := a.checkPolicy(kubetest.Ctx(t), d); err != nil {
		t.Errorf("a namespaced Gizmo in the destination namespace: %v", err)
	}
}

// TestPolicySelfManagementRefused: without --allow-self-management, no revision may touch the
// agent's namespace, its identity and state Secrets, or its own ServiceAccount and RBAC objects
// (by name, by label, or by the live object's label), whatever the app's policy allows; nothing
// is written. With it, the same revision applies.
func TestPolicySelfManagementRefused(t *testing.T) {
	agentNS := kubetest.Uniq("t-policy-self")
	appNS := kubetest.Uniq("t-policy-app")
	e := newEnv(t)
	e.CreateNamespace(t, agentNS)
	e.CreateNamespace(t, appNS)
	ctx := kubetest.Ctx(t)
	// A ClusterRole the chart installed under a release name: only its label says whose it is.
	released := kubetest.Uniq("t-policy-release-cluster")
	if _, err := e.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{
		Name: released, Labels: map[string]string{LabelAgentName: AgentName},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.Client.RbacV1().ClusterRoles().Delete(context.Background(), released, metav1.DeleteOptions{})
	})
	a, err := New(e.Config, Options{GuardNamespace: agentNS})
	if err != nil {
		t.Fatal(err)
	}
	const why = "the agent does not let apps modify itself (--allow-self-management)"
	tests := []struct {
		name, doc, want string
	}{
		{"object in the agent's namespace",
			fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sneaky, namespace: %s}\n", agentNS),
			fmt.Sprintf("ConfigMap/%s/sneaky: in the agent's own namespace %q: %s", agentNS, agentNS, why)},
		{"identity Secret",
			fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: flotilla-agent-identity, namespace: %s}\nstringData: {cluster: other}\n", agentNS),
			fmt.Sprintf("Secret/%s/flotilla-agent-identity: in the agent's own namespace %q: %s", agentNS, agentNS, why)},
		{"the agent's namespace", kubetest.Namespace(agentNS),
			fmt.Sprintf("Namespace/%s: the agent's own namespace: %s", agentNS, why)},
		{"ClusterRole by name", clusterRole("flotilla-agent-cluster"),
			"ClusterRole/flotilla-agent-cluster: the agent's own ClusterRole: " + why},
		{"ClusterRoleBinding by label",
			"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: extra, labels: {app.kubernetes.io/name: flotilla-agent}}\n" +
				"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: []\n",
			"ClusterRoleBinding/extra: the agent's own ClusterRoleBinding: " + why},
		{"ClusterRole by the live object's label", clusterRole(released),
			fmt.Sprintf("ClusterRole/%s: the agent's own ClusterRole (labelled app.kubernetes.io/name=flotilla-agent): %s", released, why)},
		{"ServiceAccount in an app namespace", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: flotilla-agent}\n",
			fmt.Sprintf("ServiceAccount/%s/flotilla-agent: the agent's own ServiceAccount: %s", appNS, why)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := revision(t, "self", appNS, Policy{}, kubetest.ConfigMap("ok", "v1"), tt.doc) // allows everything
			var err error
			n, what := e.WritesDuring(func() { _, err = a.Apply(ctx, d, nil) })
			if v := policyErr(t, err); len(v) != 1 || v[0] != tt.want {
				t.Errorf("violations %q, want [%q]", v, tt.want)
			}
			if n != 0 {
				t.Errorf("a refused revision made %d writes: %v", n, what)
			}
		})
	}
	if _, ok := e.ConfigMapValue(t, appNS, "ok", "value"); ok {
		t.Error("an object of a refused revision was applied")
	}

	// --allow-self-management: the same object applies.
	d := revision(t, "self", appNS, Policy{}, tests[0].doc)
	if _, err := newApplier(t, e).Apply(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.ConfigMapValue(t, agentNS, "sneaky", "value"); !ok {
		t.Error("with self-management allowed, the ConfigMap was not applied")
	}
}
