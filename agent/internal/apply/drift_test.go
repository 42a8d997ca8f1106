package apply

import (
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDriftHidesSecretValues: a Secret's drift names its fields, never their values.
func TestDriftHidesSecretValues(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-drift-secret")
	e.CreateNamespace(t, ns)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	d := revision(t, "secret", ns, Policy{},
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: desired-pass-123\n")
	if _, err := a.Apply(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	sec, err := e.Client.CoreV1().Secrets(ns).Get(ctx, "creds", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data["password"] = []byte("live-pass-456")
	if _, err := e.Client.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
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
	ns := kubetest.Uniq("t-drift-last-applied")
	e.CreateNamespace(t, ns)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	const canary = "CANARY-last-applied-9f3e"
	d := revision(t, "last-applied", ns, Policy{}, kubetest.ConfigMap("settings", "v1"),
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: desired-pass\n")
	if _, err := a.Apply(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	// What kubectl apply (client-side) leaves behind: the applied object, keys sorted.
	lastApplied := func(kind, data string) string {
		return `{"apiVersion":"v1","data":` + data + `,"kind":"` + kind + `","metadata":{"annotations":{},"name":"x","namespace":"` + ns + `"}}` + "\n"
	}
	cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Annotations = map[string]string{annotationLastApplied: lastApplied("ConfigMap", `{"token":"`+canary+`"}`)}
	if _, err := e.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
		t.Fatal(err)
	}
	sec, err := e.Client.CoreV1().Secrets(ns).Get(ctx, "creds", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data["password"] = []byte(canary)
	sec.Annotations = map[string]string{annotationLastApplied: lastApplied("Secret", `{"password":"`+canary+`"}`)}
	if _, err := e.Client.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
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
