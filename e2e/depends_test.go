package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestDependsOnPerCluster: worker depends on api. api is made Degraded on staging only (its
// staging overlay's pods never become ready); a change to worker then reaches production at
// once, while on staging it waits, the previous revision running, `flotilla status` saying
// what it waits for. Once api is Healthy on staging again, worker follows there too. A cycle
// (api → worker → api) is refused by the hub and shown in `flotilla apps` for both apps.
func TestDependsOnPerCluster(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{pollInterval: time.Second})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	e.setApps(t,
		appSpec{name: "api", prune: true, selfHeal: true, health: "{progressDeadline: 10s}"},
		appSpec{name: "worker", prune: true, selfHeal: true, dependsOn: []string{"api"}})

	bad, err := e.repo.Commit("api: pods never ready on staging", map[string]string{
		"environments/staging/api/kustomization.yaml": stagingAPIOverlay("1.0.0", true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "staging", "api")
		return it != nil && it.AppliedRevision == bad && it.Health == "Degraded"
	}); err != nil {
		t.Fatalf("api Degraded on staging: %v", err)
	}

	worker := localfleet.DemoManifests("1.0.0")["base/worker/configmap.yaml"]
	moved, err := e.repo.Commit("worker: QUEUE changed", map[string]string{
		"base/worker/configmap.yaml": strings.Replace(worker, "QUEUE: jobs", "QUEUE: ordered", 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	items, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
		prod, staging := statusOf(items, "production", "worker"), statusOf(items, "staging", "worker")
		return prod != nil && prod.AppliedRevision == moved && prod.Sync == "Synced" &&
			staging != nil && staging.DesiredRevision == moved && strings.Contains(staging.Message, "waiting for api: Degraded")
	})
	if err != nil {
		t.Fatalf("worker moved on production only, waiting on staging: %v", err)
	}
	if it := statusOf(items, "staging", "worker"); it.AppliedRevision == moved || it.Sync != "OutOfSync" {
		t.Errorf("staging worker %+v, want OutOfSync at the previous revision", it)
	}
	out, err := e.fleet.CLI(e.ctx, "status", "--app", "worker", "--cluster", "staging", "-o", "wide")
	if err != nil || !strings.Contains(string(out), "waiting for api: Degraded") {
		t.Errorf("flotilla status -o wide (%v):\n%s\nwant it to say worker waits for api", err, out)
	}
	queue := func(cluster int) string {
		cm, err := kubeClient(t, e.clusters[cluster]).CoreV1().ConfigMaps("worker").Get(e.ctx, "worker-config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cm.Data["QUEUE"]
	}
	if got := queue(0); got != "jobs" {
		t.Errorf("staging worker-config QUEUE = %q, want the previous revision's jobs", got)
	}
	if got := queue(1); got != "ordered" {
		t.Errorf("production worker-config QUEUE = %q, want ordered", got)
	}

	fixed, err := e.repo.Commit("api: healthy on staging again", map[string]string{
		"environments/staging/api/kustomization.yaml": stagingAPIOverlay("1.0.0", false),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
		api, w := statusOf(items, "staging", "api"), statusOf(items, "staging", "worker")
		return api != nil && api.AppliedRevision == fixed && api.Health == "Healthy" &&
			w != nil && w.AppliedRevision == fixed && w.Sync == "Synced" && !strings.Contains(w.Message, "waiting")
	}); err != nil {
		t.Fatalf("worker follows on staging once api is Healthy: %v", err)
	}
	if got := queue(0); got != "ordered" {
		t.Errorf("staging worker-config QUEUE = %q, want ordered", got)
	}

	cycle := appSpec{name: "api", prune: true, selfHeal: true, dependsOn: []string{"worker"}}
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"api.yaml": cycle.yaml(e.git.URL(e.repo.Dir))}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, "flotilla apps shows the cycle", func(ctx context.Context) (bool, error) {
		out, err := e.fleet.CLI(ctx, "apps")
		return err == nil && strings.Contains(string(out), "dependsOn cycle: api → worker → api") &&
			strings.Contains(string(out), "dependsOn cycle: worker → api → worker"), nil
	})
}
