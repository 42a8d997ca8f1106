package syncer

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// denyDeletes installs a ValidatingAdmissionPolicy (CEL, no webhook server) refusing the
// deletion of the ConfigMaps of namespace ns named in names, waits until it is in force, and
// returns a function that removes it.
func denyDeletes(t *testing.T, e *kubetest.Env, ns string, names ...string) (remove func()) {
	t.Helper()
	ctx := kubetest.Ctx(t)
	name := "deny-delete-" + ns
	var quoted []string
	for _, n := range append(names, "probe") {
		quoted = append(quoted, "'"+n+"'")
	}
	fail := admissionv1.Fail
	pol := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Delete},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: "!(oldObject.metadata.name in [" + strings.Join(quoted, ", ") + "])",
				Message:    "this ConfigMap must not be deleted",
			}},
		},
	}
	bind := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns},
			}},
		},
	}
	vap := e.Client.AdmissionregistrationV1()
	if _, err := vap.ValidatingAdmissionPolicies().Create(ctx, pol, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := vap.ValidatingAdmissionPolicyBindings().Create(ctx, bind, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	remove = func() {
		ctx := context.Background()
		if err := vap.ValidatingAdmissionPolicyBindings().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
		if err := vap.ValidatingAdmissionPolicies().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	}
	t.Cleanup(remove)
	// In force once a dry-run deletion of the probe is refused.
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns}}
	if _, err := e.Client.CoreV1().ConfigMaps(ns).Create(ctx, probe, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, time.Minute, "the admission policy in force", func(ctx context.Context) (bool, error) {
		err := e.Client.CoreV1().ConfigMaps(ns).Delete(ctx, "probe", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil, nil
	})
	return remove
}

// TestFailedPruneIsKeptAndRetried: a deletion an admission policy refuses leaves the object in
// the app's inventory and the app OutOfSync, naming it; once the policy is gone, the retry
// prunes it without a new revision.
func TestFailedPruneIsKeptAndRetried(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-prune-retry")
	agentNS := kubetest.Uniq("t-agent-prune-retry")
	e.CreateNamespace(t, ns)
	c, rec := startController(t, e, agentNS)
	policy := SyncPolicy{Automated: true, Prune: true}
	docs := []string{kubetest.ConfigMap("a", "v1"), kubetest.ConfigMap("b", "v1"), kubetest.ConfigMap("c", "v1"), kubetest.ConfigMap("guarded", "v1")}
	c.SetDesired(desired(t, "guard", ns, policy, docs...))
	rec.waitStatus(t, "guard", time.Minute, "Synced", func(s AppStatus) bool { return s.Sync == SyncSynced })

	remove := denyDeletes(t, e, ns, "guarded")
	d2 := desired(t, "guard", ns, policy, docs[:3]...)
	d2.Generation = 2
	c.SetDesired(d2)
	rec.waitAck(t, "guard", 2, time.Minute)
	s := rec.waitStatus(t, "guard", time.Minute, "the failed deletion reported", func(s AppStatus) bool {
		return s.AppliedDigest == d2.Digest && strings.Contains(s.Message, "deletions failed")
	})
	if s.Sync != SyncOutOfSync || !strings.Contains(s.Message, "ConfigMap/"+ns+"/guarded") {
		t.Errorf("status with a failed deletion = %s %q, want OutOfSync naming the ConfigMap", s.Sync, s.Message)
	}
	if _, ok := e.ConfigMapValue(t, ns, "guarded", "value"); !ok {
		t.Fatal("the guarded ConfigMap is gone although its deletion was refused")
	}
	inInventory := func(ctx context.Context) (bool, error) {
		states, err := state.NewStore(e.Kube, agentNS).Load(ctx)
		if err != nil || states["guard"] == nil {
			return false, err
		}
		return slices.ContainsFunc(states["guard"].Inventory, func(r state.ObjectRef) bool { return r.Name == "guarded" }), nil
	}
	testwait.For(t, 30*time.Second, "the guarded ConfigMap in the saved inventory", inInventory)

	remove()
	testwait.For(t, 2*time.Minute, "the guarded ConfigMap pruned by a retry", func(context.Context) (bool, error) {
		_, ok := e.ConfigMapValue(t, ns, "guarded", "value")
		return !ok, nil
	})
	rec.waitStatus(t, "guard", time.Minute, "Synced after the retry", func(s AppStatus) bool {
		return s.Sync == SyncSynced && s.AppliedDigest == d2.Digest
	})
	testwait.For(t, 30*time.Second, "the guarded ConfigMap out of the saved inventory", func(ctx context.Context) (bool, error) {
		in, err := inInventory(ctx)
		return !in && err == nil, err
	})
}
