package syncer

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

func (r *recorder) hookRuns() []HookRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]HookRun(nil), r.hooks...)
}

// TestHooks: a PreSync Job runs to completion before the app's objects are applied, and is
// reported; a re-sync of the same revision does not run it again. A revision whose PreSync Job
// fails applies and prunes nothing (the previous revision keeps running), runs its SyncFail
// hook, is NACKed naming the hook, and reports both outcomes.
func TestHooks(t *testing.T) {
	e := newEnv(t)
	ns, agentNS := kubetest.Uniq("t-hooks"), kubetest.Uniq("t-agent-hooks")
	c, rec := startController(t, e, agentNS)
	policy := SyncPolicy{Automated: true, Prune: true, CreateNamespace: true}
	hp := HealthPolicy{ProgressDeadline: 60 * time.Second}
	d := desired(t, "hooks", ns, policy, kubetest.Job("migrate", false, "argocd.argoproj.io/hook", "PreSync"),
		kubetest.ConfigMap("settings", "v1"), kubetest.ConfigMap("old", "v1"))
	d.Health = hp
	c.SetDesired(d)
	rec.waitAck(t, "hooks", 1, 90*time.Second)

	ctx := kubetest.Ctx(t)
	job, err := e.Client.BatchV1().Jobs(ns).Get(ctx, "migrate", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status.CompletionTime == nil || cm.CreationTimestamp.Before(job.Status.CompletionTime) {
		t.Errorf("the ConfigMap was created at %v, the PreSync Job completed at %v: the Job must complete first", cm.CreationTimestamp, job.Status.CompletionTime)
	}
	if runs := rec.hookRuns(); len(runs) != 1 || runs[0].Phase != "PreSync" || runs[0].Result != HookSucceeded || runs[0].Object.Name != "migrate" {
		t.Errorf("hook runs reported %+v, want PreSync migrate Succeeded", runs)
	}

	// A re-sync of the same revision (an operator's sync) does not run the hook again.
	again := *d
	again.Generation, again.SyncRequested = 2, true
	c.SetDesired(&again)
	rec.waitAck(t, "hooks", 2, 60*time.Second)
	if j, err := e.Client.BatchV1().Jobs(ns).Get(ctx, "migrate", metav1.GetOptions{}); err != nil || j.UID != job.UID {
		t.Errorf("the PreSync Job was run again for the same revision (%v)", err)
	}
	if n := len(rec.hookRuns()); n != 1 {
		t.Errorf("%d hook runs reported, want still 1", n)
	}

	// Revision 2: its PreSync Job fails.
	d3 := desired(t, "hooks", ns, policy, kubetest.Job("migrate", true, "argocd.argoproj.io/hook", "PreSync"),
		kubetest.Job("alert", false, "argocd.argoproj.io/hook", "SyncFail"), kubetest.ConfigMap("settings", "v2"))
	d3.Generation, d3.Health = 3, hp
	c.SetDesired(d3)
	testwait.For(t, 90*time.Second, "the sync to fail", func(context.Context) (bool, error) {
		return strings.Contains(rec.lastNack(), "PreSync hook Job.batch/"+ns+"/migrate failed"), nil
	})
	if v, _ := e.ConfigMapValue(t, ns, "settings", "value"); v != "v1" {
		t.Errorf("settings = %q after a failed PreSync hook, want v1 (nothing of the revision applied)", v)
	}
	if _, ok := e.ConfigMapValue(t, ns, "old", "value"); !ok {
		t.Error("a failed PreSync hook pruned the previous revision's ConfigMap")
	}
	testwait.For(t, 60*time.Second, "the SyncFail hook reported", func(context.Context) (bool, error) {
		for _, r := range rec.hookRuns() {
			if r.Phase == "SyncFail" && r.Object.Name == "alert" && r.Result == HookSucceeded {
				return true, nil
			}
		}
		return false, nil
	})
	var failed bool
	for _, r := range rec.hookRuns() {
		failed = failed || (r.Phase == "PreSync" && r.Result == HookFailed && r.Generation == 3)
	}
	if !failed {
		t.Errorf("hook runs %+v: the failed PreSync hook is not reported", rec.hookRuns())
	}
	if _, err := e.Client.BatchV1().Jobs(ns).Get(ctx, "alert", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Error("the SyncFail Job does not exist")
	}
}

// TestPostSyncHook: a PostSync hook runs once the app's objects are applied and Healthy, and
// with HookSucceeded it is deleted once it succeeded; Helm's post-install hook is one.
func TestPostSyncHook(t *testing.T) {
	e := newEnv(t)
	ns, agentNS := kubetest.Uniq("t-postsync"), kubetest.Uniq("t-agent-postsync")
	c, rec := startController(t, e, agentNS)
	d := desired(t, "post", ns, SyncPolicy{Automated: true, Prune: true, CreateNamespace: true},
		kubetest.Deployment("web", 1, false),
		kubetest.Job("smoke", false, "helm.sh/hook", "post-install", "helm.sh/hook-delete-policy", "hook-succeeded"))
	d.Health = HealthPolicy{ProgressDeadline: 60 * time.Second}
	c.SetDesired(d)
	rec.waitAck(t, "post", 1, 90*time.Second)
	runs := rec.hookRuns()
	if len(runs) != 1 || runs[0].Phase != "PostSync" || runs[0].Result != HookSucceeded || runs[0].Object.Name != "smoke" {
		t.Fatalf("hook runs %+v, want PostSync smoke Succeeded", runs)
	}
	ctx := kubetest.Ctx(t)
	dep, err := e.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Status.AvailableReplicas != 1 {
		t.Errorf("web has %d available replicas once the PostSync hook ran, want 1", dep.Status.AvailableReplicas)
	}
	testwait.For(t, 30*time.Second, "the hook deleted (HookSucceeded)", func(ctx context.Context) (bool, error) {
		_, err := e.Client.BatchV1().Jobs(ns).Get(ctx, "smoke", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}
