package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// hooksHook is the path of the test's webhook sink on the notification receiver.
const hooksHook = "/hook/hooks"

// hookJob is an Argo CD hook Job of one pod, which fails when failing.
func hookJob(name, phase string, failing bool) string {
	labels := "{job: " + name + "}"
	if failing {
		labels = fmt.Sprintf("{job: %s, %s: \"true\"}", name, localkube.ExitingPodLabel)
	}
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %s
  annotations:
    argocd.argoproj.io/hook: %s
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: %s
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: registry.example/%s:1.0.0
`, name, phase, labels, name)
}

// history returns the results `flotilla history APP --cluster staging` shows.
func history(ctx context.Context, f *localfleet.Fleet, app string) ([]string, error) {
	out, err := f.CLI(ctx, "history", app, "--cluster", "staging", "-o", "json")
	if err != nil {
		return nil, err
	}
	var resp struct{ Items []struct{ Result string } }
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	var results []string
	for _, it := range resp.Items {
		results = append(results, it.Result)
	}
	return results, nil
}

// TestPreSyncHooks: a PreSync migration Job runs to completion before the app's Deployment is
// applied, and `flotilla history` shows it. A later revision whose migration fails changes
// nothing: the previous Deployment keeps running, nothing is pruned, the SyncFail Job runs,
// history shows the failed hook and the failed sync, and sync-failed is notified.
func TestPreSyncHooks(t *testing.T) {
	t.Parallel()
	recv := newNotifReceiver(t)
	e := newEnv(t, envOptions{pollInterval: time.Second, hubArgs: []string{"--notifications", recv.webhookConfig(t, hooksHook)}})
	if _, err := e.repo.Commit("an app with a PreSync migration", map[string]string{
		"hooks/app/kustomization.yaml": "resources:\n- migrate.yaml\n- web.yaml\n- old.yaml\n",
		"hooks/app/migrate.yaml":       hookJob("migrate", "PreSync", false),
		"hooks/app/web.yaml":           wavedDeployment("web", 0, 0),
		"hooks/app/old.yaml":           configMapYAML("old", nil),
	}); err != nil {
		t.Fatal(err)
	}
	e.setApps(t, appSpec{name: "hooks", path: "hooks/app", clusters: []string{"staging"}, prune: true})
	staging := kubeClient(t, e.clusters[0])
	job, err := staging.BatchV1().Jobs("hooks").Get(e.ctx, "migrate", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web, err := staging.AppsV1().Deployments("hooks").Get(e.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status.CompletionTime == nil || web.CreationTimestamp.Before(job.Status.CompletionTime) {
		t.Errorf("web Deployment created at %s, the PreSync Job completed at %v: the Job must complete first",
			web.CreationTimestamp.Format(time.RFC3339), job.Status.CompletionTime)
	}
	wantHistory := func(what string, want ...string) {
		t.Helper()
		var last []string
		testwait.For(t, time.Minute, what, func(ctx context.Context) (bool, error) {
			results, err := history(ctx, e.fleet, "hooks")
			if err != nil {
				return false, err
			}
			if strings.Join(results, "\n") != strings.Join(last, "\n") {
				t.Logf("history: %q", results)
			}
			last = results
			all := strings.Join(results, "\n")
			for _, w := range want {
				if !strings.Contains(all, w) {
					return false, nil
				}
			}
			return true, nil
		})
	}
	wantHistory("the PreSync hook in history", "PreSync hook Job.batch/hooks/migrate: Succeeded")

	// A revision whose migration fails: web's image would change and old would be pruned.
	bad, err := e.repo.Commit("a migration that fails", map[string]string{
		"hooks/app/kustomization.yaml": "resources:\n- migrate.yaml\n- web.yaml\n- alert.yaml\n",
		"hooks/app/migrate.yaml":       hookJob("migrate", "PreSync", true),
		"hooks/app/alert.yaml":         hookJob("alert", "SyncFail", false),
		"hooks/app/web.yaml":           strings.Replace(wavedDeployment("web", 0, 0), "web:1.0.0", "web:2.0.0", 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	wantHistory("the failed hook and sync in history", "PreSync hook Job.batch/hooks/migrate: Failed", "SyncFail hook Job.batch/hooks/alert: Succeeded", "Failed: PreSync hook Job.batch/hooks/migrate failed")
	testwait.For(t, 30*time.Second, "a sync-failed notification", func(context.Context) (bool, error) {
		return len(recv.events(t, hooksHook, "sync-failed", "staging", "hooks")) > 0, nil
	})
	web, err = staging.AppsV1().Deployments("hooks").Get(e.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := web.Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:1.0.0" {
		t.Errorf("web runs %s after the failed PreSync hook, want the previous revision's 1.0.0", img)
	}
	if _, err := staging.CoreV1().ConfigMaps("hooks").Get(e.ctx, "old", metav1.GetOptions{}); err != nil {
		t.Errorf("ConfigMap old after the failed PreSync hook: %v (want it kept: nothing pruned)", err)
	}
	if _, err := staging.BatchV1().Jobs("hooks").Get(e.ctx, "alert", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Error("the SyncFail Job was not run")
	}
	if it := mustStatus(t, e, "staging", "hooks"); it.AppliedRevision == bad || it.DesiredRevision != bad || it.Sync != "OutOfSync" {
		t.Errorf("staging hooks: %s, applied %s, desired %s: want OutOfSync, desired %s not applied", it.Sync, it.AppliedRevision, it.DesiredRevision, bad)
	}
}
