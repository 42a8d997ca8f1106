package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// yamlBundle builds the bundle of YAML documents.
func yamlBundle(t *testing.T, docs ...string) *bundle.Bundle {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, d := range docs {
		js, err := yaml.YAMLToJSON([]byte(d))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	b, err := bundle.New(objs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPolicyCheck(t *testing.T) {
	const (
		clusterRole = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: admin-all}\n"
		crb         = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: admin-all}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin-all}\n"
		cm          = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
		cmTeamA     = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: team-a}\n"
		cmKube      = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: kube-system}\n"
		nsTeamA     = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n"
		nsKube      = "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system}\n"
		// A Widget with its CRD in the bundle: the CRD says it is namespaced.
		widgetCRD = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\n" +
			"spec: {group: example.com, scope: Namespaced, names: {kind: Widget, plural: widgets}, versions: []}\n"
		widget       = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
		widgetInNS   = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: api}\n"
		roleInKube   = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: kube-system}\n"
		clusterScope = "cluster-scoped kind "
	)
	gk := func(group, kind string) schema.GroupKind { return schema.GroupKind{Group: group, Kind: kind} }
	crdAllowed := apps.AccessPolicy{ClusterResources: []schema.GroupKind{gk("apiextensions.k8s.io", "CustomResourceDefinition")}}
	tests := []struct {
		name   string
		policy apps.AccessPolicy
		docs   []string
		want   []string // the violations, in bundle order (group, kind, namespace, name); none: allowed
	}{
		{"default: destination namespace only", apps.AccessPolicy{}, []string{cm}, nil},
		{"default refuses another namespace", apps.AccessPolicy{}, []string{cmKube},
			[]string{`ConfigMap/kube-system/settings: namespace "kube-system" is not allowed by spec.policy.namespaces (unset: only the destination namespace "api")`}},
		{"default refuses cluster-scoped kinds", apps.AccessPolicy{}, []string{clusterRole, nsTeamA},
			[]string{
				"Namespace/team-a: " + clusterScope + "Namespace is not allowed by spec.policy.clusterResources",
				"ClusterRole/admin-all: " + clusterScope + "rbac.authorization.k8s.io/ClusterRole is not allowed by spec.policy.clusterResources",
			}},
		{"globs", apps.AccessPolicy{Namespaces: []string{"api", "team-*"}}, []string{cm, cmTeamA, cmKube},
			[]string{`ConfigMap/kube-system/settings: namespace "kube-system" is not allowed by spec.policy.namespaces`}},
		{"namespace objects need an allowed name", apps.AccessPolicy{Namespaces: []string{"api", "team-*"}, ClusterResources: []schema.GroupKind{gk("", "Namespace")}},
			[]string{nsTeamA, nsKube}, []string{`Namespace/kube-system: namespace "kube-system" is not allowed by spec.policy.namespaces`}},
		{"deny wins", apps.AccessPolicy{ClusterResources: []schema.GroupKind{gk("rbac.authorization.k8s.io", "*")}, Deny: []schema.GroupKind{gk("rbac.authorization.k8s.io", "ClusterRoleBinding")}},
			[]string{clusterRole, crb}, []string{"ClusterRoleBinding/admin-all: kind rbac.authorization.k8s.io/ClusterRoleBinding is denied by spec.policy.deny"}},
		{"deny namespaced kinds", apps.AccessPolicy{Namespaces: []string{"*"}, Deny: []schema.GroupKind{gk("rbac.authorization.k8s.io", "Role")}},
			[]string{cm, roleInKube}, []string{"Role/kube-system/r: kind rbac.authorization.k8s.io/Role is denied by spec.policy.deny"}},
		{"deny names the destination namespace", apps.AccessPolicy{Deny: []schema.GroupKind{gk("", "ConfigMap")}},
			[]string{cm}, []string{"ConfigMap/api/settings: kind ConfigMap is denied by spec.policy.deny"}},
		{"scope from a CRD of the bundle", crdAllowed, []string{widgetCRD, widget}, nil},
		// Unknown kind without a namespace: taken for cluster-scoped, fail closed.
		{"unknown kind without namespace", apps.AccessPolicy{}, []string{widget},
			[]string{"Widget/w: " + clusterScope + "example.com/Widget is not allowed by spec.policy.clusterResources"}},
		{"unknown kind with namespace", apps.AccessPolicy{}, []string{widgetInNS}, nil},
		{"well-known namespaced kind without namespace", apps.AccessPolicy{}, []string{"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"}, nil},
		// A well-known cluster-scoped kind stays cluster-scoped whatever its metadata says.
		{"cluster-scoped kind with a namespace", apps.AccessPolicy{}, []string{"apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast, namespace: api}\nprovisioner: x\n"},
			[]string{"StorageClass/fast: " + clusterScope + "storage.k8s.io/StorageClass is not allowed by spec.policy.clusterResources"}},
		{"allow everything", apps.AccessPolicy{Namespaces: []string{"*"}, ClusterResources: []schema.GroupKind{gk("*", "*")}},
			[]string{clusterRole, crb, cmKube, nsKube, widget}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := decodePolicyObjects(yamlBundle(t, tt.docs...).Data)
			if err != nil {
				t.Fatal(err)
			}
			err = checkAccess(tt.policy, "api", objs)
			switch {
			case len(tt.want) == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case len(tt.want) > 0 && err == nil:
				t.Fatalf("allowed, want %q", tt.want)
			case err != nil:
				if got := strings.Split(err.Error(), "; "); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
					t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
				}
			}
		})
	}
}

func TestPolicyCheckListsAtMostTen(t *testing.T) {
	var docs []string
	for i := range 12 {
		docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-%02d}\n", i))
	}
	objs, err := decodePolicyObjects(yamlBundle(t, docs...).Data)
	if err != nil {
		t.Fatal(err)
	}
	err = checkAccess(apps.AccessPolicy{}, "api", objs)
	if err == nil || !strings.HasSuffix(err.Error(), "; and 2 more") || strings.Count(err.Error(), "Namespace/") != 10 {
		t.Errorf("error = %v, want 10 violations and 2 more", err)
	}
}

// TestRenderRefusedByPolicy: a render with an object the app's policy refuses fails that app's
// render on each cluster, naming the object and the rule, and the last good state stays; once
// the policy allows the kind, the render becomes desired with its policy.
func TestRenderRefusedByPolicy(t *testing.T) {
	repo := newTestRepo(t)
	repo.commit("settings", map[string]string{"app/settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n"})
	appsDir := filepath.Join(t.TempDir(), "apps")
	writeApp := func(policy string) {
		t.Helper()
		app := fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: web}
spec:
  source: {repoURL: %q, targetRevision: main, path: app}
  destination: {clusters: [one, two], namespace: api}
  syncPolicy: {automated: {}}
%s`, repo.dir, policy)
		if err := os.MkdirAll(appsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(appsDir, "web.yaml"), []byte(app), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeApp("")
	clusters := []ClusterVars{{Name: "one"}, {Name: "two"}}
	f, r := newTestReconciler(t, appsDir, clusters)
	ctx := context.Background()
	r.Round(ctx)
	if errs := appErrors(f); errs != "" {
		t.Fatalf("first round: %s", errs)
	}
	good := f.Snapshot("one")["web"]
	if good == nil {
		t.Fatal("nothing desired after a good render")
	}

	repo.commit("a ClusterRole", map[string]string{"app/role.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: admin-all}\nrules: []\n"})
	r.Round(ctx)
	const rule = "ClusterRole/admin-all: cluster-scoped kind rbac.authorization.k8s.io/ClusterRole is not allowed by spec.policy.clusterResources"
	errs := appErrors(f)
	if !strings.Contains(errs, "one: "+rule) || !strings.Contains(errs, "two: "+rule) {
		t.Errorf("app errors = %q, want %q for both clusters", errs, rule)
	}
	for _, c := range clusters {
		if d := f.Snapshot(c.Name)["web"]; d == nil || d.Generation != good.Generation || d.Digest() != good.Digest() {
			t.Errorf("%s: desired %+v after a refused render, want the last good state kept", c.Name, d)
		}
		if st := row(f, c.Name, "web"); st == nil || st.Sync != SyncRenderFailed || !strings.Contains(st.Message, rule) {
			t.Errorf("%s: status row %+v, want RenderFailed naming %q", c.Name, st, rule)
		}
	}

	writeApp("  policy: {clusterResources: [{group: rbac.authorization.k8s.io, kind: ClusterRole}]}\n")
	r.Round(ctx)
	if errs := appErrors(f); errs != "" {
		t.Fatalf("with the kind allowed: %s", errs)
	}
	d := f.Snapshot("one")["web"]
	if d == nil || d.Digest() == good.Digest() || len(d.Access.ClusterResources) != 1 {
		t.Errorf("desired %+v, want the new render with its policy", d)
	}
	if st := row(f, "one", "web"); st == nil || st.Sync == SyncRenderFailed {
		t.Errorf("status row %+v once allowed, want no render failure", st)
	}
}
