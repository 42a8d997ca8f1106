package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// removeAppFiles deletes Applications from the apps directory.
func (e *env) removeAppFiles(tb testing.TB, names ...string) {
	tb.Helper()
	for _, n := range names {
		if err := os.Remove(filepath.Join(e.appsDir, n+".yaml")); err != nil {
			tb.Fatal(err)
		}
	}
}

// waitRemoving waits until app shows Removing on both clusters and returns the rows.
func (e *env) waitRemoving(tb testing.TB, app string) []localfleet.StatusItem {
	tb.Helper()
	items, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		for _, c := range []string{"staging", "production"} {
			if it := statusOf(items, c, app); it == nil || it.Sync != "Removing" {
				return false
			}
		}
		return true
	})
	if err != nil {
		tb.Fatalf("%s Removing on both clusters: %v", app, err)
	}
	return items
}

// removalEnv starts a fleet whose hub has the removal grace given and waits until the demo
// apps are applied everywhere.
func removalEnv(t *testing.T, grace string) (*env, string, []kubernetes.Interface) {
	t.Helper()
	e := newEnv(t, envOptions{hubArgs: []string{"--removal-grace", grace}})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	return e, rev1, kubeClients(t, e.clusters)
}

// waitWorkerGone waits until the worker app has no status row left.
func (e *env) waitWorkerGone(tb testing.TB) {
	tb.Helper()
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		return statusOf(items, "staging", "worker") == nil && statusOf(items, "production", "worker") == nil && len(items) == 2
	}); err != nil {
		tb.Fatalf("worker rows after the removal: %v", err)
	}
}

func workerExists(ctx context.Context, cs []kubernetes.Interface) error {
	for i, c := range cs {
		if _, err := c.AppsV1().Deployments("worker").Get(ctx, "worker", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
	}
	return configMapsExist(ctx, cs, "worker", "worker-config")
}

// TestAppRemovalWaitsForGrace: an Application deleted from the apps directory shows Removing on
// each cluster, with when its objects go, keeps its objects for the grace, and then they go.
func TestAppRemovalWaitsForGrace(t *testing.T) {
	t.Parallel()
	e, _, cs := removalEnv(t, "8s")
	e.removeAppFiles(t, "worker")
	items := e.waitRemoving(t, "worker")
	if it := statusOf(items, "staging", "worker"); !strings.Contains(it.Message, "objects are deleted at") {
		t.Errorf("Removing row message %q does not say when the objects go", it.Message)
	}
	// Seen Removing means not removed yet: the objects are all there.
	if err := workerExists(e.ctx, cs); err != nil {
		t.Fatalf("worker's objects went before its grace was over: %v", err)
	}
	waitConfigMaps(t, e.ctx, cs, "worker", false, "worker-config")
	e.waitWorkerGone(t)
}

// TestAppReturnWithinGraceWritesNothing: an Application that comes back within the grace
// cancels the removal, and the agents make no write request for it.
func TestAppReturnWithinGraceWritesNothing(t *testing.T) {
	t.Parallel()
	e, rev1, cs := removalEnv(t, "10m")
	worker, err := os.ReadFile(filepath.Join(e.appsDir, "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	before := agentWrites(t, e.clusters)
	e.removeAppFiles(t, "worker")
	e.waitRemoving(t, "worker")
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"worker.yaml": string(worker)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatalf("worker back: %v", err)
	}
	testwait.Holds(t, 5*time.Second, "worker kept, the agents silent", func(ctx context.Context) error {
		if err := workerExists(ctx, cs); err != nil {
			return err
		}
		for name, n := range agentWrites(t, e.clusters) {
			if n != before[name] {
				return fmt.Errorf("cluster %s: %d agent write requests for a removal cancelled in its grace", name, n-before[name])
			}
		}
		return nil
	})
}

// TestMassRemovalHeldUntilConfirmed: an apps directory emptied of every Application removes
// nothing, says so in `flotilla apps`, until an operator confirms; then the apps go after
// their grace.
func TestMassRemovalHeldUntilConfirmed(t *testing.T) {
	t.Parallel()
	e, _, cs := removalEnv(t, "2s")
	e.removeAppFiles(t, "api", "worker")
	testwait.For(t, 30*time.Second, "flotilla apps shows the held removal", func(ctx context.Context) (bool, error) {
		out, err := e.fleet.CLI(ctx, "apps")
		return err == nil && strings.Contains(string(out), "REMOVAL HELD") && strings.Contains(string(out), "2 of 2 Applications"), nil
	})
	testwait.Holds(t, 6*time.Second, "held: nothing removed, nothing Removing", func(ctx context.Context) error {
		items, err := e.fleet.Status(ctx)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.Sync == "Removing" {
				return fmt.Errorf("%s on %s Removing while the removal is held", it.App, it.Cluster)
			}
		}
		return workerExists(ctx, cs)
	})
	out, err := e.fleet.CLI(e.ctx, "apps", "confirm-removal")
	if err != nil || !strings.Contains(string(out), "api, worker") {
		t.Fatalf("confirm-removal: %v\n%s", err, out)
	}
	waitConfigMaps(t, e.ctx, cs, "worker", false, "worker-config")
	if out, err := e.fleet.CLI(e.ctx, "apps"); err != nil || strings.Contains(string(out), "REMOVAL HELD") {
		t.Fatalf("apps after the confirmation: %v\n%s", err, out)
	}
}

// TestPreserveResourcesOnDeletion: an Application with preserveResourcesOnDeletion that is
// removed leaves its objects in place, no longer labelled as managed, and deletes nothing.
func TestPreserveResourcesOnDeletion(t *testing.T) {
	t.Parallel()
	e, _, cs := removalEnv(t, "1s")
	e.setApps(t, appSpec{name: "worker", prune: true, selfHeal: true, preserve: true})
	// The agent deletes the app's state (a Secret in its own namespace), nothing of the app's.
	workerDeletes := func() int {
		n := 0
		for _, ev := range agentRequests(t, e.clusters[0], "delete") {
			if strings.Contains(ev.RequestURI, "/namespaces/worker/") {
				n++
			}
		}
		return n
	}
	deletesBefore := workerDeletes()
	e.removeAppFiles(t, "worker")
	e.waitWorkerGone(t)
	testwait.For(t, 30*time.Second, "worker's objects released", func(ctx context.Context) (bool, error) {
		for _, c := range cs {
			d, err := c.AppsV1().Deployments("worker").Get(ctx, "worker", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			cm, err := c.CoreV1().ConfigMaps("worker").Get(ctx, "worker-config", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if _, ok := d.Labels["flotilla.dev/app"]; ok {
				return false, nil
			}
			if _, ok := cm.Labels["flotilla.dev/app"]; ok {
				return false, nil
			}
		}
		return true, nil
	})
	if n := workerDeletes() - deletesBefore; n != 0 {
		t.Errorf("the agent made %d delete requests removing an app that preserves its objects", n)
	}
}
