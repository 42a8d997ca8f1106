package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// An edit of an Application rolled out like a commit (issue 16), on two real clusters: the
// api app is the demo's platform/ingress chart with a logLevel set in the Application's
// helm.valuesObject; its rollout takes the canary (no soak), waits for an approval, then the
// rest. Editing the value in the Application (no commit) reaches the canary; the main
// cluster's objects are not written (their resourceVersions unchanged) until
// `flotilla rollout approve`, then it gets the edit too.

// editAppManifest is the api Application with logLevel level.
func editAppManifest(repoURL, level string) string {
	return `apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata:
  name: api
spec:
  source:
    repoURL: ` + repoURL + `
    targetRevision: main
    path: platform/ingress
    helm:
      valuesObject: {logLevel: ` + level + `}
  destination:
    clusterSelector: {matchLabels: {env: staging}}
    namespace: api
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
  rollout:
    steps:
    - clusters: {matchLabels: {ring: canary}}
      soak: 0s
    - approval: true
    - {}
`
}

func newEditFleet(t *testing.T) *rolloutFleet {
	t.Helper()
	return startRolloutFleet(t, []localkube.Options{{Name: "canary"}, {Name: "main"}}, 20*time.Minute, func(gitURL string) string {
		return editAppManifest(gitURL, "info")
	})
}

// chartObjects returns the resourceVersions of the chart's objects on cluster, and its
// ConfigMap's LOG_LEVEL.
func (f *rolloutFleet) chartObjects(ctx context.Context, cluster string) (map[string]string, string, error) {
	c := f.kubes[cluster]
	cm, err := c.CoreV1().ConfigMaps("api").Get(ctx, "api-settings", metav1.GetOptions{})
	if err != nil {
		return nil, "", err
	}
	d, err := c.AppsV1().Deployments("api").Get(ctx, "api-controller", metav1.GetOptions{})
	if err != nil {
		return nil, "", err
	}
	svc, err := c.CoreV1().Services("api").Get(ctx, "api", metav1.GetOptions{})
	if err != nil {
		return nil, "", err
	}
	return map[string]string{"ConfigMap/api-settings": cm.ResourceVersion, "Deployment/api-controller": d.ResourceVersion, "Service/api": svc.ResourceVersion},
		cm.Data["LOG_LEVEL"], nil
}

// waitLevel waits until cluster's ConfigMap says level.
func (f *rolloutFleet) waitLevel(t *testing.T, cluster, level string, timeout time.Duration) {
	t.Helper()
	testwait.For(t, timeout, cluster+"'s LOG_LEVEL "+level, func(ctx context.Context) (bool, error) {
		_, got, err := f.chartObjects(ctx, cluster)
		return err == nil && got == level, nil
	})
}

func TestRolloutApplicationEdit(t *testing.T) {
	f := newEditFleet(t)
	rev, err := f.repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.fleet.WaitStatus(f.ctx, 5*time.Minute, allAt(rev, 2)); err != nil {
		t.Fatal(err)
	}
	base := f.waitRollout(t, rev, "the baseline", time.Minute, func(v *rolloutView) bool { return v.State == "Completed" })
	f.waitLevel(t, "canary", "info", time.Minute)
	f.waitLevel(t, "main", "info", time.Minute)
	before, _, err := f.chartObjects(f.ctx, "main")
	if err != nil {
		t.Fatal(err)
	}

	edited := time.Now()
	if err := localfleet.WriteFiles(f.appsDir, map[string]string{"api.yaml": editAppManifest(f.git.URL(f.repo.Dir), "warn")}); err != nil {
		t.Fatal(err)
	}
	v := f.waitRollout(t, rev, "the edit's rollout waiting for approval", 3*time.Minute, func(v *rolloutView) bool {
		return v.ID != base.ID && v.State == "WaitingApproval"
	})
	if !strings.HasPrefix(v.ID, base.ID+"-") {
		t.Errorf("the edit's rollout id %q, want %s and a suffix (same commit)", v.ID, base.ID)
	}
	f.waitLevel(t, "canary", "warn", time.Minute)
	t.Logf("edit → canary done and the rollout waiting for approval: %s", time.Since(edited).Round(time.Millisecond))
	out, err := f.fleet.CLI(f.ctx, "rollout", "status", "api")
	if err != nil || !strings.Contains(string(out), "(an Application edit)") {
		t.Errorf("rollout status: %v: %s", err, out)
	}
	if it := mustStatus(t, f.env, "main", "api"); it.Message != "Waiting for rollout step 3 of "+v.ID+" (an Application edit)" {
		t.Errorf("main's status message %q", it.Message)
	}
	testwait.Holds(t, 5*time.Second, "main untouched until approved", func(ctx context.Context) error {
		got, level, err := f.chartObjects(ctx, "main")
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(before) || level != "info" {
			return fmt.Errorf("main's objects changed before approval: %v → %v (LOG_LEVEL %s)", before, got, level)
		}
		return nil
	})

	approved := time.Now()
	if out, err := f.fleet.CLI(f.ctx, "rollout", "approve", "api"); err != nil {
		t.Fatalf("rollout approve: %v: %s", err, out)
	}
	f.waitRollout(t, rev, "the edit's rollout completed", 3*time.Minute, func(v *rolloutView) bool { return v.State == "Completed" })
	f.waitLevel(t, "main", "warn", 2*time.Minute)
	t.Logf("approval → main's LOG_LEVEL warn: %s", time.Since(approved).Round(time.Millisecond))
	if n := len(f.notifications(t, "rollout-started")); n != 1 {
		t.Errorf("%d rollout-started notifications, want 1 (the edit's)", n)
	}
}
