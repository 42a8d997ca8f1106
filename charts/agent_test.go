package charts

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestHelmTemplateAgent is `helm template a charts/agent --set clusterName=c1
// --set hub.address=hub.example.com:443 --set joinToken=x`.
func TestHelmTemplateAgent(t *testing.T) {
	vals := with(t, nil, "clusterName=c1,hub.address=hub.example.com:443,joinToken=x")
	objs, err := Render(AgentChart, Release{Name: "a", Namespace: "flotilla-system"}, vals)
	if err != nil {
		t.Fatal(err)
	}
	checkCommon(t, objs, "flotilla-system")
	d := deployment(t, objs, "a-flotilla-agent")
	c := d.Spec.Template.Spec.Containers[0]
	wantArgs := []string{"--namespace=flotilla-system", "--hub=hub.example.com:443",
		"--http-listen=0.0.0.0:8080", "--log-level=info", "--log-format=json", "--kube-api-qps=200", "--kube-api-burst=400", "--sync-timeout=5m"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args = %q, want %q", c.Args, wantArgs)
	}
	sec := typed[corev1.Secret](t, find(t, objs, "Secret", "a-flotilla-agent-join-token"))
	if got := string(sec.Data["joinToken"]); got != "x" {
		t.Errorf("join token secret = %q, want x", got)
	}
	if got := d.Labels["flotilla.dev/cluster"]; got != "c1" {
		t.Errorf("flotilla.dev/cluster label = %q, want c1", got)
	}
	wantKinds := []string{"ServiceAccount", "Secret", "ClusterRole", "ClusterRole", "ClusterRoleBinding",
		"ClusterRoleBinding", "Role", "RoleBinding", "Deployment"}
	if got := kinds(objs); !slices.Equal(got, wantKinds) {
		t.Errorf("kinds in install order = %q, want %q", got, wantKinds)
	}
}

func TestAgent(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		check  func(t *testing.T, objs []*unstructured.Unstructured)
	}{{
		name:   "defaults",
		values: agentRequired(),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			d := deployment(t, objs, "flotilla-agent")
			if got := *d.Spec.Replicas; got != 1 {
				t.Errorf("replicas = %d, want 1", got)
			}
			if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("strategy = %q, want Recreate (never two agents at once)", d.Spec.Strategy.Type)
			}
			c := d.Spec.Template.Spec.Containers[0]
			if c.Image != "ghcr.io/flotilla-dev/flotilla-agent:"+appVersion(t, AgentChart) {
				t.Errorf("image = %q, want the chart's appVersion as tag", c.Image)
			}
			env := envByName(c)
			ref := env["FLOTILLA_JOIN_TOKEN"].ValueFrom
			if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "flotilla-agent-join-token" || ref.SecretKeyRef.Key != "joinToken" {
				t.Errorf("FLOTILLA_JOIN_TOKEN = %+v, want it from secret flotilla-agent-join-token key joinToken", env["FLOTILLA_JOIN_TOKEN"])
			}
			if d.Spec.Template.Spec.ServiceAccountName != "flotilla-agent" {
				t.Errorf("serviceAccountName = %q", d.Spec.Template.Spec.ServiceAccountName)
			}

			apps := typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "flotilla-agent-apps"))
			for _, want := range []struct{ group, resource, verb string }{
				{"", "configmaps", "delete"}, {"", "secrets", "patch"}, {"", "serviceaccounts", "create"},
				{"", "persistentvolumeclaims", "update"}, {"", "services", "list"},
				{"apps", "deployments", "patch"}, {"apps", "statefulsets", "delete"}, {"apps", "daemonsets", "watch"},
				{"apps", "replicasets", "get"}, {"batch", "jobs", "create"}, {"batch", "cronjobs", "delete"},
				{"networking.k8s.io", "ingresses", "patch"}, {"networking.k8s.io", "networkpolicies", "delete"},
				{"autoscaling", "horizontalpodautoscalers", "patch"}, {"policy", "poddisruptionbudgets", "patch"},
				{"rbac.authorization.k8s.io", "roles", "patch"}, {"rbac.authorization.k8s.io", "rolebindings", "delete"},
				{"", "pods", "list"}, {"", "events", "create"}, {"events.k8s.io", "events", "create"},
			} {
				if !allows(apps.Rules, want.group, want.resource, want.verb) {
					t.Errorf("ClusterRole flotilla-agent-apps does not allow %s %s/%s", want.verb, want.group, want.resource)
				}
			}
			for _, deny := range []struct{ group, resource, verb string }{
				{"", "pods", "delete"}, {"", "nodes", "get"}, {"rbac.authorization.k8s.io", "clusterroles", "create"},
				{"*", "*", "*"},
			} {
				if allows(apps.Rules, deny.group, deny.resource, deny.verb) {
					t.Errorf("ClusterRole flotilla-agent-apps allows %s %s/%s: not least privilege", deny.verb, deny.group, deny.resource)
				}
			}
			cl := typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "flotilla-agent-cluster"))
			for _, verb := range []string{"get", "list", "watch", "create"} {
				if !allows(cl.Rules, "", "namespaces", verb) {
					t.Errorf("ClusterRole flotilla-agent-cluster does not allow %s namespaces", verb)
				}
			}
			if allows(cl.Rules, "", "namespaces", "delete") {
				t.Error("ClusterRole flotilla-agent-cluster allows deleting namespaces")
			}
			if !allows(cl.Rules, "apiextensions.k8s.io", "customresourcedefinitions", "list") ||
				allows(cl.Rules, "apiextensions.k8s.io", "customresourcedefinitions", "create") {
				t.Errorf("CRDs: want read only, rules %+v", cl.Rules)
			}
			checkSelfRole(t, objs, "flotilla-agent")
			if has(objs, "ClusterRole", "flotilla-agent-full-control") {
				t.Error("full-control ClusterRole rendered without rbac.fullControl")
			}
		},
	}, {
		name:   "namespaced rbac",
		values: with(t, agentRequired(), "rbac.scope=namespaces,rbac.namespaces={team-a,team-b}"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			if has(objs, "ClusterRole", "flotilla-agent-apps") || has(objs, "ClusterRoleBinding", "flotilla-agent-apps") {
				t.Error("scope namespaces still renders the workload ClusterRole")
			}
			for _, ns := range []string{"team-a", "team-b"} {
				u := findIn(t, objs, "Role", ns, "flotilla-agent-apps")
				r := typed[rbacv1.Role](t, u)
				for _, want := range []struct{ group, resource, verb string }{
					{"apps", "deployments", "patch"}, {"", "secrets", "delete"}, {"", "events", "create"}, {"", "pods", "watch"},
				} {
					if !allows(r.Rules, want.group, want.resource, want.verb) {
						t.Errorf("Role %s/flotilla-agent-apps does not allow %s %s/%s", ns, want.verb, want.group, want.resource)
					}
				}
				rb := typed[rbacv1.RoleBinding](t, findIn(t, objs, "RoleBinding", ns, "flotilla-agent-apps"))
				if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != "flotilla-agent-apps" {
					t.Errorf("RoleBinding %s: roleRef %+v", ns, rb.RoleRef)
				}
			}
			cl := typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "flotilla-agent-cluster"))
			if !allows(cl.Rules, "", "namespaces", "get") {
				t.Error("the agent cannot read its namespace")
			}
			if allows(cl.Rules, "", "namespaces", "create") {
				t.Error("scope namespaces still allows creating namespaces")
			}
			checkSelfRole(t, objs, "flotilla-agent")
		},
	}, {
		name:   "full control",
		values: with(t, agentRequired(), "rbac.fullControl=true"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			cr := typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "flotilla-agent-full-control"))
			if !allows(cr.Rules, "anything.example.com", "widgets", "deletecollection") || !allows(cr.Rules, "", "nodes", "delete") {
				t.Errorf("full control rules %+v do not allow everything", cr.Rules)
			}
			crb := typed[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", "flotilla-agent-full-control"))
			if crb.RoleRef.Name != "flotilla-agent-full-control" {
				t.Errorf("roleRef %+v", crb.RoleRef)
			}
			if n := len(ofKind(objs, "ClusterRole")); n != 1 {
				t.Errorf("%d ClusterRoles, want only the full-control one", n)
			}
			checkSelfRole(t, objs, "flotilla-agent")
		},
	}, {
		name:   "extra rules",
		values: with(t, agentRequired(), "rbac.extraRules[0].apiGroups={monitoring.coreos.com},rbac.extraRules[0].resources={servicemonitors},rbac.extraRules[0].verbs={get,patch},rbac.extraClusterRules[0].apiGroups={storage.k8s.io},rbac.extraClusterRules[0].resources={storageclasses},rbac.extraClusterRules[0].verbs={get}"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			apps := typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "flotilla-agent-apps"))
			if !allows(apps.Rules, "monitoring.coreos.com", "servicemonitors", "patch") || !allows(apps.Rules, "apps", "deployments", "patch") {
				t.Errorf("extraRules not appended to the defaults: %+v", apps.Rules)
			}
			cl := typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "flotilla-agent-cluster"))
			if !allows(cl.Rules, "storage.k8s.io", "storageclasses", "get") {
				t.Errorf("extraClusterRules not appended: %+v", cl.Rules)
			}
		},
	}, {
		name:   "rbac off",
		values: with(t, agentRequired(), "rbac.create=false,serviceAccount.create=false,serviceAccount.name=my-agent"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			for _, k := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"} {
				if n := len(ofKind(objs, k)); n != 0 {
					t.Errorf("%d %s rendered with rbac.create=false", n, k)
				}
			}
			if got := deployment(t, objs, "flotilla-agent").Spec.Template.Spec.ServiceAccountName; got != "my-agent" {
				t.Errorf("serviceAccountName = %q, want my-agent", got)
			}
		},
	}, {
		name: "several hubs",
		values: fromYAML(t, `
hub:
  address: hub-0.example.com:443
  addresses: [hub-1.example.com:443, hub-0.example.com:443, "[2001:db8::1]:7443"]
joinToken: x
`),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			got := flagValues(deployment(t, objs, "flotilla-agent").Spec.Template.Spec.Containers[0].Args, "hub")
			want := []string{"hub-0.example.com:443", "hub-1.example.com:443", "[2001:db8::1]:7443"}
			if !slices.Equal(got, want) {
				t.Errorf("--hub values = %q, want %q", got, want)
			}
		},
	}, {
		name:   "only hub.addresses",
		values: with(t, nil, "hub.addresses={a.example.com:443,b.example.com:443}"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			got := flagValues(deployment(t, objs, "flotilla-agent").Spec.Template.Spec.Containers[0].Args, "hub")
			if want := []string{"a.example.com:443", "b.example.com:443"}; !slices.Equal(got, want) {
				t.Errorf("--hub values = %q, want %q", got, want)
			}
		},
	}, {
		name:   "existing join token secret",
		values: with(t, agentRequired(), "joinToken=,joinTokenSecret=cluster-c1-token,joinTokenSecretKey=token"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			if n := len(ofKind(objs, "Secret")); n != 0 {
				t.Errorf("%d Secrets rendered with joinTokenSecret", n)
			}
			c := deployment(t, objs, "flotilla-agent").Spec.Template.Spec.Containers[0]
			ref := envByName(c)["FLOTILLA_JOIN_TOKEN"].ValueFrom
			if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "cluster-c1-token" || ref.SecretKeyRef.Key != "token" {
				t.Errorf("FLOTILLA_JOIN_TOKEN from %+v, want cluster-c1-token/token", ref)
			}
			if len(flagValues(c.Args, "join-token")) != 0 {
				t.Errorf("args %q carry the join token: the agent reads it from $FLOTILLA_JOIN_TOKEN, off the command line", c.Args)
			}
		},
	}, {
		name:   "no join token",
		values: with(t, agentRequired(), "joinToken="),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			c := deployment(t, objs, "flotilla-agent").Spec.Template.Spec.Containers[0]
			if len(flagValues(c.Args, "join-token")) != 0 || len(c.Env) != 0 {
				t.Errorf("without a token: args %q env %+v, want neither --join-token nor its env", c.Args, c.Env)
			}
			if n := len(ofKind(objs, "Secret")); n != 0 {
				t.Errorf("%d Secrets rendered without a token", n)
			}
		},
	}, {
		name: "extra args and options",
		values: fromYAML(t, `
hub: {address: "hub.example.com:443"}
joinToken: x
logLevel: debug
logFormat: text
extraArgs: ["--field-manager=fleet"]
image: {repository: registry.local/flotilla-agent, tag: dev, pullPolicy: Always}
labels: {env: prod, region: eu}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Exists, effect: NoSchedule}]
resources: {limits: {cpu: "1"}}
`),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			d := deployment(t, objs, "flotilla-agent")
			c := d.Spec.Template.Spec.Containers[0]
			if c.Args[len(c.Args)-1] != "--field-manager=fleet" {
				t.Errorf("extraArgs not last: %q", c.Args)
			}
			for _, a := range []string{"--log-level=debug", "--log-format=text"} {
				if !slices.Contains(c.Args, a) {
					t.Errorf("args %q lack %s", c.Args, a)
				}
			}
			if c.Image != "registry.local/flotilla-agent:dev" || c.ImagePullPolicy != corev1.PullAlways {
				t.Errorf("image %q pull %q", c.Image, c.ImagePullPolicy)
			}
			if got := d.Annotations["flotilla.dev/cluster-labels"]; got != `{"env":"prod","region":"eu"}` {
				t.Errorf("cluster-labels annotation = %q", got)
			}
			ps := d.Spec.Template.Spec
			if ps.NodeSelector["kubernetes.io/os"] != "linux" || len(ps.Tolerations) != 1 || ps.Tolerations[0].Key != "dedicated" {
				t.Errorf("nodeSelector %v tolerations %+v", ps.NodeSelector, ps.Tolerations)
			}
			if c.Resources.Limits.Cpu().String() != "1" {
				t.Errorf("resources %+v", c.Resources)
			}
		},
	}, {
		name:   "stopped",
		values: with(t, agentRequired(), "replicas=0"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			if got := *deployment(t, objs, "flotilla-agent").Spec.Replicas; got != 0 {
				t.Errorf("replicas = %d, want 0", got)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := RenderAgent(tt.values)
			if err != nil {
				t.Fatal(err)
			}
			checkCommon(t, objs, DefaultNamespace)
			checkAgentPod(t, deployment(t, objs, "flotilla-agent"))
			tt.check(t, objs)
		})
	}
}

// checkAgentPod checks what every rendering of the agent must have.
func checkAgentPod(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%d containers, want 1", n)
	}
	c := d.Spec.Template.Spec.Containers[0]
	checkFlags(t, c.Args, agentFlags)
	if ns := flagValues(c.Args, "namespace"); !slices.Equal(ns, []string{DefaultNamespace}) {
		t.Errorf("--namespace = %q, want the release namespace", ns)
	}
	if hl := flagValues(c.Args, "http-listen"); !slices.Equal(hl, []string{"0.0.0.0:8080"}) {
		t.Errorf("--http-listen = %q, want 0.0.0.0:8080", hl)
	}
	if len(flagValues(c.Args, "hub")) == 0 {
		t.Error("no --hub")
	}
	checkEnvExpansion(t, c)
	checkSecurity(t, d.Spec.Template.Spec)
	checkProbes(t, c, 8080)
}

// checkSelfRole checks the Role in the agent's own namespace: full access to its Secrets, and
// events.
func checkSelfRole(t *testing.T, objs []*unstructured.Unstructured, name string) {
	t.Helper()
	r := typed[rbacv1.Role](t, findIn(t, objs, "Role", DefaultNamespace, name))
	for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
		if !allows(r.Rules, "", "secrets", verb) {
			t.Errorf("Role %s does not allow %s secrets", name, verb)
		}
	}
	if !allows(r.Rules, "", "events", "create") {
		t.Errorf("Role %s does not allow creating events", name)
	}
	findIn(t, objs, "RoleBinding", DefaultNamespace, name)
}
