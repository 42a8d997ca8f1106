package syncer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/testwait"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func driftOf(s AppStatus, typ, ref string) *DriftItem {
	for i, d := range s.Drift {
		if d.Type == typ && d.Object.String() == ref {
			return &s.Drift[i]
		}
	}
	return nil
}

// TestControllerDrift: objects changed or deleted by hand are reported, and left alone
// without self-heal.
func TestControllerDrift(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-drift")
	c, rec := startController(t, e, kubetest.Uniq("t-agent-drift"))
	c.SetDesired(desired(t, "drift", ns, SyncPolicy{Automated: true, CreateNamespace: true},
		kubetest.ConfigMap("a", "v1"), kubetest.ConfigMap("b", "v1")))
	rec.waitAck(t, "drift", 1, 30*time.Second)
	rec.waitStatus(t, "drift", 30*time.Second, "Synced", func(s AppStatus) bool { return s.Sync == SyncSynced && s.Health == "Healthy" })

	ctx := kubetest.Ctx(t)
	cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["value"] = "by-hand"
	if _, err := e.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	refA, refB := "ConfigMap/"+ns+"/a", "ConfigMap/"+ns+"/b"
	s := rec.waitStatus(t, "drift", 30*time.Second, "a modified", func(s AppStatus) bool { return driftOf(s, DriftModified, refA) != nil })
	if d := driftOf(s, DriftModified, refA); !strings.Contains(d.Diff, `data.value: "by-hand" → "v1"`) {
		t.Errorf("diff = %q", d.Diff)
	}
	if s.Sync != SyncOutOfSync {
		t.Errorf("sync = %s with drift, want OutOfSync", s.Sync)
	}

	if err := e.Client.CoreV1().ConfigMaps(ns).Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitStatus(t, "drift", 30*time.Second, "b missing", func(s AppStatus) bool { return driftOf(s, DriftMissing, refB) != nil })
	if v, _ := e.ConfigMapValue(t, ns, "a", "value"); v != "by-hand" {
		t.Errorf("a = %q: changed without self-heal", v)
	}
	if _, ok := e.ConfigMapValue(t, ns, "b", "value"); ok {
		t.Error("b recreated without self-heal")
	}
}

// TestControllerSelfHeal: with self-heal, changed and deleted objects are put back.
func TestControllerSelfHeal(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-heal")
	c, rec := startController(t, e, kubetest.Uniq("t-agent-heal"))
	c.SetDesired(desired(t, "heal", ns, SyncPolicy{Automated: true, SelfHeal: true, CreateNamespace: true},
		kubetest.ConfigMap("a", "v1"), kubetest.ConfigMap("b", "v1")))
	rec.waitAck(t, "heal", 1, 30*time.Second)

	ctx := kubetest.Ctx(t)
	cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["value"] = "by-hand"
	if _, err := e.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.CoreV1().ConfigMaps(ns).Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, "a and b healed", func(context.Context) (bool, error) {
		a, _ := e.ConfigMapValue(t, ns, "a", "value")
		b, _ := e.ConfigMapValue(t, ns, "b", "value")
		return a == "v1" && b == "v1", nil
	})
	rec.waitStatus(t, "heal", 30*time.Second, "Synced without drift", func(s AppStatus) bool {
		return s.Sync == SyncSynced && len(s.Drift) == 0 && s.Health == "Healthy"
	})
}

// TestSelfHealTurnedOnHealsReportedDrift: drift reported without self-heal is put back as
// soon as a new generation of the same revision turns self-heal on, without waiting for the
// object to change again.
func TestSelfHealTurnedOnHealsReportedDrift(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-heal-on")
	c, rec := startController(t, e, kubetest.Uniq("t-agent-heal-on"))
	d := desired(t, "healon", ns, SyncPolicy{Automated: true, CreateNamespace: true}, kubetest.ConfigMap("a", "v1"))
	c.SetDesired(d)
	rec.waitAck(t, "healon", 1, 30*time.Second)

	ctx := kubetest.Ctx(t)
	cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["value"] = "by-hand"
	if _, err := e.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	ref := "ConfigMap/" + ns + "/a"
	rec.waitStatus(t, "healon", 30*time.Second, "a modified", func(s AppStatus) bool { return driftOf(s, DriftModified, ref) != nil })

	healing := *d
	healing.Generation = 2
	healing.Policy.SelfHeal = true
	c.SetDesired(&healing)
	testwait.For(t, 30*time.Second, "a healed", func(context.Context) (bool, error) {
		v, _ := e.ConfigMapValue(t, ns, "a", "value")
		return v == "v1", nil
	})
	rec.waitStatus(t, "healon", 30*time.Second, "Synced without drift", func(s AppStatus) bool {
		return s.Sync == SyncSynced && len(s.Drift) == 0
	})
}
