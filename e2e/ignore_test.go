package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// Ignored differences and per-object sync options end to end: an HPA-scaled Deployment whose
// spec.replicas is ignored stays Synced and is not written back, while a Git change to its
// image still applies (keeping the HPA's replicas with RespectIgnoreDifferences=true); a Job
// annotated Replace=true whose immutable template changes in Git is deleted and recreated.

// TestIgnoreDifferencesHPA: api on staging is scaled by another field manager (as the HPA
// controller does, through the scale subresource). With ignoreDifferences on /spec/replicas
// and self-heal on, the agent writes nothing, the app stays Synced without drift, and the next
// commit's image reaches the cluster with the HPA's replica count left alone.
func TestIgnoreDifferencesHPA(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{pollInterval: time.Second})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	e.setApps(t, appSpec{name: "api", prune: true, selfHeal: true, syncOptions: []string{"RespectIgnoreDifferences=true"},
		spec: "  ignoreDifferences:\n  - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}\n"})
	staging := kubeClient(t, e.clusters[0])

	scaled := time.Now()
	scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "api"}, Spec: autoscalingv1.ScaleSpec{Replicas: 3}}
	if _, err := staging.AppsV1().Deployments("api").UpdateScale(e.ctx, "api", scale, metav1.UpdateOptions{FieldManager: "kube-controller-manager"}); err != nil {
		t.Fatal(err)
	}
	testwait.Holds(t, 8*time.Second, "api on staging Synced without drift and at the HPA's 3 replicas", func(ctx context.Context) error {
		d, err := staging.AppsV1().Deployments("api").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != 3 {
			return fmt.Errorf("replicas %d, the HPA set 3", *d.Spec.Replicas)
		}
		it := mustStatus(t, e, "staging", "api")
		if it.Sync != "Synced" || len(it.Drift) != 0 {
			return fmt.Errorf("status %s with drift %s", it.Sync, it.Drift)
		}
		return nil
	})
	if w := apiWrites(t, e.clusters[0], scaled); len(w) != 0 {
		t.Errorf("the agent wrote the api Deployment %d times after the HPA scaled it; want none", len(w))
	}

	rev2, err := e.repo.Commit("api: 1.0.1 on staging", map[string]string{
		"environments/staging/api/kustomization.yaml": stagingAPIOverlay("1.0.1", false),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "staging", "api")
		return it != nil && it.AppliedRevision == rev2 && it.Sync == "Synced"
	}); err != nil {
		t.Fatal(err)
	}
	d, err := staging.AppsV1().Deployments("api").Get(e.ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/api:1.0.1" || *d.Spec.Replicas != 3 {
		t.Errorf("after the commit: image %s, replicas %d; want 1.0.1 from Git and the HPA's 3", img, *d.Spec.Replicas)
	}
}

// TestReplaceRecreatesImmutableChange: a Job annotated argocd.argoproj.io/sync-options:
// Replace=true whose pod template (immutable) changes in Git is deleted and created anew.
func TestReplaceRecreatesImmutableChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{pollInterval: time.Second})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	job := func(tag string) map[string]string {
		return map[string]string{
			"environments/staging/api/kustomization.yaml": strings.Replace(stagingAPIOverlay("1.0.0", false),
				"- ../../../base/api\n", "- ../../../base/api\n- migrate.yaml\n", 1),
			"environments/staging/api/migrate.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    argocd.argoproj.io/sync-options: Replace=true
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: registry.example/migrate:` + tag + `
`,
		}
	}
	rev2, err := e.repo.Commit("api: a migration Job on staging", job("1"))
	if err != nil {
		t.Fatal(err)
	}
	staging := kubeClient(t, e.clusters[0])
	waitApplied := func(rev string) {
		t.Helper()
		if _, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
			it := statusOf(items, "staging", "api")
			return it != nil && it.AppliedRevision == rev
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitApplied(rev2)
	before, err := staging.BatchV1().Jobs("api").Get(e.ctx, "migrate", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rev3, err := e.repo.Commit("api: migration image 2", job("2"))
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(rev3)
	after, err := staging.BatchV1().Jobs("api").Get(e.ctx, "migrate", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.UID == before.UID || after.Spec.Template.Spec.Containers[0].Image != "registry.example/migrate:2" {
		t.Errorf("Job after the change: uid %s (was %s), image %s; want a new Job running migrate:2",
			after.UID, before.UID, after.Spec.Template.Spec.Containers[0].Image)
	}
	if it := mustStatus(t, e, "staging", "api"); it.Sync != "Synced" {
		t.Errorf("api on staging %s after the recreation: %s", it.Sync, it.Message)
	}
}
