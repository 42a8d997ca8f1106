package e2e

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
)

// wavedDeployment is a Deployment of one replica in a sync wave (Argo CD's annotation). With
// minReadySeconds its pods count as available only that long after they are Ready.
func wavedDeployment(name string, wave, minReadySeconds int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  annotations:
    argocd.argoproj.io/sync-wave: "%[2]d"
spec:
  replicas: 1
  minReadySeconds: %[3]d
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: main
        image: registry.example/%[1]s:1.0.0
`, name, wave, minReadySeconds)
}

// availableSince is when d's Available condition last turned True; zero if it is not.
func availableSince(d *appsv1.Deployment) time.Time {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == "True" {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// TestSyncWavesWaitForAvailable: an Argo CD app in two waves through the real hub and agent:
// the wave 1 Deployment is created only once the wave 0 Deployment is Available (its pods
// become available 4 s after they are Ready, so created together the web Deployment would come
// seconds before db is Available), and the app ends Synced and Healthy.
func TestSyncWavesWaitForAvailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	if _, err := e.repo.Commit("an app in two waves", map[string]string{
		"waves/app/kustomization.yaml": "resources:\n- db.yaml\n- web.yaml\n",
		"waves/app/db.yaml":            wavedDeployment("db", 0, 4),
		"waves/app/web.yaml":           wavedDeployment("web", 1, 0),
	}); err != nil {
		t.Fatal(err)
	}
	rev := e.setApps(t, appSpec{name: "waves", path: "waves/app", clusters: []string{"staging"}, prune: true})
	if _, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "staging", "waves")
		return it != nil && it.AppliedRevision == rev && it.Sync == "Synced" && it.Health == "Healthy"
	}); err != nil {
		t.Fatal(err)
	}
	staging := kubeClient(t, e.clusters[0])
	db, err := staging.AppsV1().Deployments("waves").Get(e.ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web, err := staging.AppsV1().Deployments("waves").Get(e.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dbAvailable := availableSince(db)
	t.Logf("db created %s, Available %s; web created %s", db.CreationTimestamp.Format(time.TimeOnly),
		dbAvailable.Format(time.TimeOnly), web.CreationTimestamp.Format(time.TimeOnly))
	if dbAvailable.IsZero() || web.CreationTimestamp.Time.Before(dbAvailable) {
		t.Errorf("wave 1's web Deployment was created at %s, before wave 0's db was Available (%s)",
			web.CreationTimestamp.Format(time.RFC3339), dbAvailable.Format(time.RFC3339))
	}
	if gap := web.CreationTimestamp.Sub(db.CreationTimestamp.Time); gap < 3*time.Second {
		t.Errorf("web created %s after db; db's pods need 4s to be available", gap)
	}
}
