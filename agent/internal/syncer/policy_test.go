package syncer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// clusterRoleYAML is a ClusterRole named name.
func clusterRoleYAML(name string) string {
	return fmt.Sprintf("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: %s}\nrules: []\n", name)
}

// TestPolicyRefusalNacked: a revision its spec.policy refuses (apply TestPolicyRefusesClusterRole)
// is NACKed naming the object and the rule, and never ACKed.
func TestPolicyRefusalNacked(t *testing.T) {
	ns := kubetest.Uniq("t-policy-nack")
	role := kubetest.Uniq("t-policy-nack-role")
	e := newEnv(t)
	e.CreateNamespace(t, ns)
	d := desired(t, "policy", ns, SyncPolicy{Automated: true}, kubetest.ConfigMap("settings", "v1"), clusterRoleYAML(role))
	d.Access = AccessPolicy{}
	want := "ClusterRole/" + role + ": cluster-scoped kind rbac.authorization.k8s.io/ClusterRole is not allowed by spec.policy.clusterResources"

	c, rec := startController(t, e, kubetest.Uniq("t-policy-agent"))
	c.SetDesired(d)
	testwait.For(t, time.Minute, "nack", func(context.Context) (bool, error) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.nacks) > 0, nil
	})
	rec.mu.Lock()
	nack := rec.nacks[0]
	rec.mu.Unlock()
	if !strings.Contains(nack, want) {
		t.Errorf("nack %q, want it to name %q", nack, want)
	}
	if rec.acked("policy", 1) {
		t.Error("a refused revision was acked")
	}
	if _, ok := e.ConfigMapValue(t, ns, "settings", "value"); ok {
		t.Error("the ConfigMap of the refused revision was applied")
	}
}

// TestSelfManagementGuard: the controller guards its own namespace (Config.Namespace) and
// NACKs a revision that writes into it; with Config.AllowSelfManagement it applies it.
func TestSelfManagementGuard(t *testing.T) {
	appNS := kubetest.Uniq("t-self-app")
	e := newEnv(t)
	e.CreateNamespace(t, appNS)
	sneaky := func(agentNS string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sneaky, namespace: %s}\ndata: {value: x}\n", agentNS)
	}

	guarded := kubetest.Uniq("t-self-guarded")
	e.CreateNamespace(t, guarded)
	c, rec := startController(t, e, guarded)
	c.SetDesired(desired(t, "self", appNS, SyncPolicy{Automated: true}, sneaky(guarded)))
	want := fmt.Sprintf("ConfigMap/%s/sneaky: in the agent's own namespace %q", guarded, guarded)
	testwait.For(t, time.Minute, "nack", func(context.Context) (bool, error) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.nacks) > 0 && strings.Contains(rec.nacks[0], want), nil
	})
	if _, ok := e.ConfigMapValue(t, guarded, "sneaky", "value"); ok {
		t.Error("the guarded agent wrote into its own namespace")
	}

	allowed := kubetest.Uniq("t-self-allowed")
	e.CreateNamespace(t, allowed)
	c2, rec2 := startController(t, e, allowed, func(c *Config) { c.AllowSelfManagement = true })
	c2.SetDesired(desired(t, "self", appNS, SyncPolicy{Automated: true}, sneaky(allowed)))
	testwait.Until(t, time.Minute, "ack with self-management allowed", func() bool { return rec2.acked("self", 1) })
	if _, ok := e.ConfigMapValue(t, allowed, "sneaky", "value"); !ok {
		t.Error("with self-management allowed, the ConfigMap was not applied")
	}
}
