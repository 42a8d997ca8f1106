package syncer

import (
	"context"
	"strings"
	"testing"
	"time"

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
	ns := uniq("t-drift")
	c, rec := startController(t, e, uniq("t-agent-drift"))
	c.SetDesired(desired(t, "drift", ns, SyncPolicy{Automated: true, CreateNamespace: true},
		configMap("a", "v1"), configMap("b", "v1")))
	rec.waitAck(t, "drift", 1, 30*time.Second)
	rec.waitStatus(t, "drift", 30*time.Second, "Synced", func(s AppStatus) bool { return s.Sync == SyncSynced && s.Health == "Healthy" })

	ctx := testCtx(t)
	cm, err := e.client.CoreV1().ConfigMaps(ns).Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["value"] = "by-hand"
	if _, err := e.client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
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

	if err := e.client.CoreV1().ConfigMaps(ns).Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitStatus(t, "drift", 30*time.Second, "b missing", func(s AppStatus) bool { return driftOf(s, DriftMissing, refB) != nil })
	if v, _ := e.configMapValue(t, ns, "a", "value"); v != "by-hand" {
		t.Errorf("a = %q: changed without self-heal", v)
	}
	if _, ok := e.configMapValue(t, ns, "b", "value"); ok {
		t.Error("b recreated without self-heal")
	}
}

// TestControllerSelfHeal: with self-heal, changed and deleted objects are put back.
func TestControllerSelfHeal(t *testing.T) {
	e := newEnv(t)
	ns := uniq("t-heal")
	c, rec := startController(t, e, uniq("t-agent-heal"))
	c.SetDesired(desired(t, "heal", ns, SyncPolicy{Automated: true, SelfHeal: true, CreateNamespace: true},
		configMap("a", "v1"), configMap("b", "v1")))
	rec.waitAck(t, "heal", 1, 30*time.Second)

	ctx := testCtx(t)
	cm, err := e.client.CoreV1().ConfigMaps(ns).Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["value"] = "by-hand"
	if _, err := e.client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	if err := e.client.CoreV1().ConfigMaps(ns).Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "a and b healed", 30*time.Second, func(context.Context) (bool, error) {
		a, _ := e.configMapValue(t, ns, "a", "value")
		b, _ := e.configMapValue(t, ns, "b", "value")
		return a == "v1" && b == "v1", nil
	})
	rec.waitStatus(t, "heal", 30*time.Second, "Synced without drift", func(s AppStatus) bool {
		return s.Sync == SyncSynced && len(s.Drift) == 0 && s.Health == "Healthy"
	})
}

// TestDriftHidesSecretValues: a Secret's drift names its fields, never their values.
func TestDriftHidesSecretValues(t *testing.T) {
	e := newEnv(t)
	ns := uniq("t-drift-secret")
	e.createNamespace(t, ns)
	a := e.applier(t)
	ctx := testCtx(t)
	d := desired(t, "secret", ns, SyncPolicy{},
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: desired-pass-123\n")
	if _, err := a.Apply(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	sec, err := e.client.CoreV1().Secrets(ns).Get(ctx, "creds", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data["password"] = []byte("live-pass-456")
	if _, err := e.client.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	drift, err := a.Drift(ctx, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 1 || drift[0].Type != DriftModified || drift[0].Diff != "data.password: (value hidden)" {
		t.Fatalf("drift = %+v", drift)
	}
	for _, v := range []string{"desired-pass-123", "live-pass-456", "bGl2ZS1wYXNzLTQ1Ng==", "ZGVzaXJlZC1wYXNzLTEyMw=="} {
		if strings.Contains(drift[0].Diff, v) {
			t.Errorf("diff shows a secret value: %q", drift[0].Diff)
		}
	}
}

// TestDriftIgnoresLastAppliedConfiguration: kubectl's client-side apply annotation, which
// carries the whole object it applied (a Secret's data included), is never compared, diffed or
// shown: an object that differs only by it has not drifted, and a diff never holds it.
func TestDriftIgnoresLastAppliedConfiguration(t *testing.T) {
	e := newEnv(t)
	ns := uniq("t-drift-last-applied")
	e.createNamespace(t, ns)
	a := e.applier(t)
	ctx := testCtx(t)
	const canary = "CANARY-last-applied-9f3e"
	d := desired(t, "last-applied", ns, SyncPolicy{}, configMap("settings", "v1"),
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: desired-pass\n")
	if _, err := a.Apply(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	// What kubectl apply (client-side) leaves behind: the applied object, keys sorted.
	lastApplied := func(kind, data string) string {
		return `{"apiVersion":"v1","data":` + data + `,"kind":"` + kind + `","metadata":{"annotations":{},"name":"x","namespace":"` + ns + `"}}` + "\n"
	}
	cm, err := e.client.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Annotations = map[string]string{annotationLastApplied: lastApplied("ConfigMap", `{"token":"`+canary+`"}`)}
	if _, err := e.client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
		t.Fatal(err)
	}
	sec, err := e.client.CoreV1().Secrets(ns).Get(ctx, "creds", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data["password"] = []byte(canary)
	sec.Annotations = map[string]string{annotationLastApplied: lastApplied("Secret", `{"password":"`+canary+`"}`)}
	if _, err := e.client.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
		t.Fatal(err)
	}

	drift, err := a.Drift(ctx, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 1 || drift[0].Object.Kind != "Secret" || drift[0].Diff != "data.password: (value hidden)" {
		t.Fatalf("drift = %+v, want only the Secret's data.password, hidden", drift)
	}
	for _, it := range drift {
		if strings.Contains(it.Diff, canary) || strings.Contains(it.Diff, "last-applied") {
			t.Errorf("diff of %s shows the last-applied annotation: %q", it.Object, it.Diff)
		}
	}
}
