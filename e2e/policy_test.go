package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
)

// policyApp is an Application for the repository's extras/rbac, on staging only.
func policyApp(repoURL, policy string) string {
	return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata:
  name: rbac
spec:
  source: {repoURL: %s, targetRevision: main, path: extras/rbac}
  destination: {clusters: [staging], namespace: policy-team}
  syncPolicy:
    automated: {prune: true}
    syncOptions: [CreateNamespace=true]
%s`, repoURL, policy)
}

// TestPolicyClusterScopedObjectRefusedUntilAllowed: an app holding a ClusterRole its
// spec.policy does not list fails its render on the hub; `flotilla apps` names the object and
// the rule, and nothing of the app reaches the cluster. Once the policy lists the kind, the app
// is applied, ClusterRole included. (The agent's own check, for a render that would get past
// the hub, is covered by agent/internal/syncer's TestPolicy tests.)
func TestPolicyClusterScopedObjectRefusedUntilAllowed(t *testing.T) {
	t.Parallel()
	const ns, role = "policy-team", "e2e-policy-admin-all"
	cs := clusters.Clusters(t)
	t.Cleanup(func() { // after the fleet has stopped: no agent recreates it
		for _, c := range cs {
			if client, err := c.Client(); err == nil {
				_ = client.RbacV1().ClusterRoles().Delete(context.Background(), role, metav1.DeleteOptions{})
			}
		}
	})
	e := newEnv(t, envOptions{})
	staging, err := cs[0].Client()
	if err != nil {
		t.Fatal(err)
	}
	rev, err := e.repo.Commit("an app with a ClusterRole", map[string]string{
		"extras/rbac/clusterrole.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: " + role +
			"\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [get]\n",
		"extras/rbac/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: team-settings\ndata:\n  team: a\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	repoURL := e.git.URL(e.repo.Dir)
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"rbac.yaml": policyApp(repoURL, "")}); err != nil {
		t.Fatal(err)
	}

	// The hub refuses the render, naming the object and the rule.
	const rule = "staging: ClusterRole/" + role + ": cluster-scoped kind rbac.authorization.k8s.io/ClusterRole is not allowed by spec.policy.clusterResources"
	appError := func(ctx context.Context) (string, error) {
		items, err := apps(ctx, e.fleet)
		if err != nil {
			return "", err
		}
		for _, it := range items {
			if it.Name == "rbac" {
				return it.Error, nil
			}
		}
		return "", nil
	}
	var last string
	if err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		last, _ = appError(ctx)
		return strings.Contains(last, rule), nil
	}); err != nil {
		t.Fatalf("flotilla apps: rbac error %q, want it to contain %q", last, rule)
	}

	// flotilla status shows the refusal on the app's row for staging (and no row elsewhere),
	// while the agent keeps applying the other apps.
	items, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, func(items []localfleet.StatusItem) bool {
		ok := 0
		for _, it := range items {
			if it.App == "rbac" && (it.Cluster != "staging" || it.Sync != "RenderFailed") {
				return false
			}
			if it.Cluster == "staging" && it.App != "rbac" && it.Sync == "Synced" && it.Health == "Healthy" {
				ok++
			}
		}
		return ok == 2 && statusOf(items, "staging", "rbac") != nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if it := statusOf(items, "staging", "rbac"); it.Health != "Unknown" || it.AppliedRevision != "" ||
		!strings.Contains(it.Message, strings.TrimPrefix(rule, "staging: ")) || !strings.Contains(it.Message, rev[:12]) {
		t.Errorf("staging rbac row %+v, want RenderFailed at %s naming the object and the rule, health Unknown", it, rev)
	}
	// Two poll intervals of the hub (2s) and more: still nothing.
	if err := wait.PollUntilContextTimeout(e.ctx, 500*time.Millisecond, 6*time.Second, true, func(context.Context) (bool, error) {
		if _, err := staging.RbacV1().ClusterRoles().Get(e.ctx, role, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("the refused ClusterRole exists (err %v)", err)
		}
		if _, err := staging.CoreV1().Namespaces().Get(e.ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("namespace %s of the refused app exists (err %v)", ns, err)
		}
		return false, nil
	}); err != nil && !wait.Interrupted(err) {
		t.Fatal(err)
	}

	// Allow-listed, the app is applied, ClusterRole included.
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{
		"rbac.yaml": policyApp(repoURL, "  policy:\n    clusterResources: [{group: rbac.authorization.k8s.io, kind: ClusterRole}]\n"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, func(items []localfleet.StatusItem) bool {
		for _, it := range items {
			if it.Cluster == "staging" && it.App == "rbac" {
				return it.Sync == "Synced" && it.AppliedRevision == rev
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	cr, err := staging.RbacV1().ClusterRoles().Get(e.ctx, role, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the allowed ClusterRole: %v", err)
	}
	if cr.Labels["flotilla.dev/app"] != "rbac" {
		t.Errorf("ClusterRole labels %v, want flotilla.dev/app=rbac", cr.Labels)
	}
	if _, err := staging.CoreV1().ConfigMaps(ns).Get(e.ctx, "team-settings", metav1.GetOptions{}); err != nil {
		t.Errorf("the app's ConfigMap: %v", err)
	}
	if msg, err := appError(e.ctx); err != nil || msg != "" {
		t.Errorf("flotilla apps: rbac error %q (%v) once allowed, want none", msg, err)
	}
	if production, err := cs[1].Client(); err == nil {
		if _, err := production.RbacV1().ClusterRoles().Get(e.ctx, role, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the ClusterRole is on production, which the app does not target (err %v)", err)
		}
	}
}
