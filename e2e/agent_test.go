package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// The agent end to end: self-heal, drift reports, prune and its guards, staged CRDs, NACKs,
// restarts without the hub, quiet steady state, and Secret values kept out of every output.
// Objects are changed in the clusters as an operator would: with another field manager.

// manualManager is the field manager of the test's own edits to live objects.
const manualManager = "e2e-manual"

// TestSelfHealRevertsManualEdit: a manual edit of the api Deployment's image and replicas is
// reverted with selfHeal; without selfHeal it is reported (status and `flotilla diff`) and
// kept.
func TestSelfHealRevertsManualEdit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	staging := kubeClient(t, e.clusters[0])

	edited := editAPI(t, e.ctx, staging, 3, "registry.example/api:manual")
	testwait.For(t, time.Minute, "the manual edit of api reverted", func(ctx context.Context) (bool, error) {
		d, err := staging.AppsV1().Deployments("api").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return *d.Spec.Replicas == 1 && d.Spec.Template.Spec.Containers[0].Image == "registry.example/api:1.0.0", nil
	})
	t.Logf("manual edit (image, replicas) reverted by self-heal in %s", time.Since(edited).Round(time.Millisecond))
	assertAPI(t, e.ctx, e.clusters[0], 1, "registry.example/api:1.0.0")

	// Without selfHeal: the drift is reported, shown field by field, and kept.
	rev2 := e.setApps(t, appSpec{name: "api", prune: true})
	editAPI(t, e.ctx, staging, 2, "registry.example/api:manual-2")
	items, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "staging", "api")
		return it != nil && it.Sync == "OutOfSync" && findDrift(t, it, "Deployment", "api") != nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d := findDrift(t, statusOf(items, "staging", "api"), "Deployment", "api")
	if d.Type != "modified" || d.Namespace != "api" || d.Group != "apps" {
		t.Errorf("drift entry %+v, want a modified apps Deployment in namespace api", d)
	}
	for _, want := range []string{"spec.replicas: 2 → 1", "registry.example/api:manual-2"} {
		if !strings.Contains(d.Diff, want) {
			t.Errorf("status drift diff lacks %q:\n%s", want, d.Diff)
		}
	}
	if it := statusOf(items, "production", "api"); it == nil || it.Sync != "Synced" || len(it.Drift) != 0 {
		t.Errorf("production api affected by staging's drift: %+v", it)
	}
	out, err := e.fleet.CLI(e.ctx, "diff", "api", "--cluster", "staging")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"=== staging: Deployment.apps api/api (modified)", "spec.replicas: 2 → 1", "registry.example/api:manual-2"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("flotilla diff api --cluster staging lacks %q:\n%s", want, out)
		}
	}
	testwait.Holds(t, 10*time.Second, "the manual edit kept without selfHeal", func(ctx context.Context) error {
		d, err := staging.AppsV1().Deployments("api").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Containers[0].Image != "registry.example/api:manual-2" {
			return fmt.Errorf("api reverted to %d × %s", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
		}
		return nil
	})
	if it := mustStatus(t, e, "staging", "api"); it.AppliedRevision != rev2 || it.Sync != "OutOfSync" {
		t.Errorf("staging api after the kept edit: %+v", it)
	}
}

// editAPI changes the api Deployment's replicas and image as an operator would, and returns
// when the API server answered.
func editAPI(t *testing.T, ctx context.Context, client kubernetes.Interface, replicas int, image string) time.Time {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d,"template":{"spec":{"containers":[{"name":"api","image":%q}]}}}}`, replicas, image)
	_, err := client.AppsV1().Deployments("api").Patch(ctx, "api", types.StrategicMergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: manualManager})
	if err != nil {
		t.Fatalf("edit api: %v", err)
	}
	return time.Now()
}

// TestDeletedConfigMapRecreated: a managed ConfigMap deleted by hand comes back.
func TestDeletedConfigMapRecreated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	staging := kubeClient(t, e.clusters[0])
	old, err := staging.CoreV1().ConfigMaps("worker").Get(e.ctx, "worker-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := staging.CoreV1().ConfigMaps("worker").Delete(e.ctx, "worker-config", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	testwait.For(t, time.Minute, "worker-config recreated", func(ctx context.Context) (bool, error) {
		cm, err := staging.CoreV1().ConfigMaps("worker").Get(ctx, "worker-config", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return cm.UID != old.UID && cm.Data["QUEUE"] == "jobs" && cm.Data["CONCURRENCY"] == "2", nil
	})
	t.Logf("deleted ConfigMap recreated in %s", time.Since(deleted).Round(time.Millisecond))
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
}

// TestPruneAndKeep: an object removed from Git is pruned with prune on, kept with prune off,
// and kept with either keep annotation.
func TestPruneAndKeep(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	cs := kubeClients(t, e.clusters)

	// Prune on: removed from Git, deleted from both clusters.
	e.commitApplied(t, "worker: add doomed", "worker", map[string]string{
		"base/worker/doomed.yaml":        configMapYAML("doomed", nil),
		"base/worker/kustomization.yaml": workerKustomization("doomed.yaml"),
	})
	waitConfigMaps(t, e.ctx, cs, "worker", true, "doomed")
	e.commitApplied(t, "worker: remove doomed", "worker", map[string]string{
		"base/worker/doomed.yaml":        "",
		"base/worker/kustomization.yaml": workerKustomization(),
	})
	waitConfigMaps(t, e.ctx, cs, "worker", false, "doomed")

	// Keep annotations: put on the objects in Git first, then the objects are removed from Git.
	e.commitApplied(t, "worker: add kept objects", "worker", map[string]string{
		"base/worker/keep-flotilla.yaml": configMapYAML("keep-flotilla", map[string]string{"flotilla.dev/prune": "disabled"}),
		"base/worker/keep-argocd.yaml":   configMapYAML("keep-argocd", map[string]string{"argocd.argoproj.io/sync-options": "Prune=false"}),
		"base/worker/kustomization.yaml": workerKustomization("keep-flotilla.yaml", "keep-argocd.yaml"),
	})
	waitConfigMaps(t, e.ctx, cs, "worker", true, "keep-flotilla", "keep-argocd")
	rev := e.commitApplied(t, "worker: remove kept objects", "worker", map[string]string{
		"base/worker/keep-flotilla.yaml": "",
		"base/worker/keep-argocd.yaml":   "",
		"base/worker/kustomization.yaml": workerKustomization(),
	})
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, allAt(rev, 4)); err != nil {
		t.Fatal(err)
	}
	testwait.Holds(t, 5*time.Second, "annotated objects kept", func(ctx context.Context) error {
		return configMapsExist(ctx, cs, "worker", "keep-flotilla", "keep-argocd")
	})

	// Prune off: removed from Git, kept, and the app says so.
	e.setApps(t, appSpec{name: "worker", selfHeal: true})
	e.commitApplied(t, "worker: add stale", "worker", map[string]string{
		"base/worker/stale.yaml":         configMapYAML("stale", nil),
		"base/worker/kustomization.yaml": workerKustomization("stale.yaml"),
	})
	waitConfigMaps(t, e.ctx, cs, "worker", true, "stale")
	rev = e.commitApplied(t, "worker: remove stale", "worker", map[string]string{
		"base/worker/stale.yaml":         "",
		"base/worker/kustomization.yaml": workerKustomization(),
	})
	items, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		for _, c := range []string{"staging", "production"} {
			it := statusOf(items, c, "worker")
			if it == nil || it.AppliedRevision != rev || !strings.Contains(it.Message, "no longer rendered and not pruned") {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if it := statusOf(items, "staging", "worker"); it.Sync != "OutOfSync" {
		t.Errorf("worker with an object kept from pruning (prune off): sync %s, want OutOfSync", it.Sync)
	}
	testwait.Holds(t, 5*time.Second, "stale object kept with prune off", func(ctx context.Context) error {
		return configMapsExist(ctx, cs, "worker", "stale", "keep-flotilla", "keep-argocd")
	})
}

// TestEmptyRenderPrunesNothing: an overlay that renders zero objects deletes nothing.
func TestEmptyRenderPrunesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	deletesBefore := agentRequests(t, e.clusters[0], "delete")
	rev2, err := e.repo.Commit("staging worker: render nothing", map[string]string{
		"environments/staging/worker/kustomization.yaml": "resources: []\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	items, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "staging", "worker")
		return it != nil && it.DesiredRevision == rev2 && it.AppliedRevision == rev2
	})
	if err != nil {
		t.Fatal(err)
	}
	it := statusOf(items, "staging", "worker")
	t.Logf("staging worker after the empty render: sync %s, message %q", it.Sync, it.Message)
	if it.Sync == "Synced" {
		t.Errorf("staging worker Synced although Git renders nothing and the cluster holds 2 objects")
	}
	staging := kubeClient(t, e.clusters[0])
	testwait.Holds(t, 10*time.Second, "worker objects kept after an empty render", func(ctx context.Context) error {
		if _, err := staging.AppsV1().Deployments("worker").Get(ctx, "worker", metav1.GetOptions{}); err != nil {
			return err
		}
		_, err := staging.CoreV1().ConfigMaps("worker").Get(ctx, "worker-config", metav1.GetOptions{})
		return err
	})
	if n := len(agentRequests(t, e.clusters[0], "delete")) - len(deletesBefore); n != 0 {
		t.Errorf("the agent made %d delete requests after an empty render", n)
	}
}

// TestLargePruneHeldUntilConfirmed: a revision deleting more than half of an app's objects is
// held, and shown held, until an operator confirms it for a cluster.
func TestLargePruneHeldUntilConfirmed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	cs := kubeClients(t, e.clusters)
	extras := []string{"extra-1", "extra-2", "extra-3", "extra-4"}
	files := map[string]string{"base/worker/kustomization.yaml": workerKustomization("extras.yaml")}
	var docs []string
	for _, n := range extras {
		docs = append(docs, configMapYAML(n, nil))
	}
	files["base/worker/extras.yaml"] = strings.Join(docs, "---\n")
	rev := e.commitApplied(t, "worker: four more ConfigMaps", "worker", files)
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, allAt(rev, 4)); err != nil {
		t.Fatal(err)
	}

	// 4 of 6 objects go: held on both clusters.
	rev, err := e.repo.Commit("worker: drop the extras", map[string]string{
		"base/worker/extras.yaml":        "",
		"base/worker/kustomization.yaml": workerKustomization(),
	})
	if err != nil {
		t.Fatal(err)
	}
	items, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		for _, c := range []string{"staging", "production"} {
			it := statusOf(items, c, "worker")
			if it == nil || it.AppliedRevision != rev || !strings.Contains(it.Message, "4 deletions awaiting confirmation") {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if it := statusOf(items, "staging", "worker"); it.Sync != "OutOfSync" {
		t.Errorf("worker with held deletions: sync %s, want OutOfSync", it.Sync)
	}
	testwait.Holds(t, 5*time.Second, "held deletions not done", func(ctx context.Context) error {
		return configMapsExist(ctx, cs, "worker", extras...)
	})

	// Confirmed for staging: deleted there, still held in production.
	if out, err := e.fleet.CLI(e.ctx, "sync", "worker", "--cluster", "staging", "--confirm-prune"); err != nil {
		t.Fatalf("sync --confirm-prune: %v\n%s", err, out)
	}
	waitConfigMaps(t, e.ctx, cs[:1], "worker", false, extras...)
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "staging", "worker")
		return it != nil && it.Sync == "Synced" && it.Health == "Healthy" && it.AppliedRevision == rev &&
			!strings.Contains(it.Message, "awaiting confirmation")
	}); err != nil {
		t.Fatal(err)
	}
	if err := configMapsExist(e.ctx, cs[1:], "worker", extras...); err != nil {
		t.Errorf("production lost held objects after a confirmation for staging only: %v", err)
	}
	if it := mustStatus(t, e, "production", "worker"); !strings.Contains(it.Message, "4 deletions awaiting confirmation") {
		t.Errorf("production worker after staging's confirmation: %+v", it)
	}
}

// TestCRDAndCustomResourceInOneRevision: a new app whose one revision holds a CRD and a
// custom resource of it applies (the CRD first, established, then the resource).
func TestCRDAndCustomResourceInOneRevision(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	widgetGVR := schema.GroupVersionResource{Group: "e2e.flotilla.dev", Version: "v1", Resource: "widgets"}
	t.Cleanup(func() {
		// Stop the agents first: they would bring the CRD back. The CRD is cluster-scoped, so the
		// shared namespace cleanup would not remove it.
		e.fleet.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, c := range e.clusters {
			dyn := dynamicClient(t, c)
			if err := dyn.Resource(crdGVR).Delete(ctx, "widgets.e2e.flotilla.dev", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete CRD on %s: %v", c.Name, err)
			}
			if err := kubeClient(t, c).CoreV1().Namespaces().Delete(ctx, "widgets", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete namespace widgets on %s: %v", c.Name, err)
			}
			err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
				_, err1 := dyn.Resource(crdGVR).Get(ctx, "widgets.e2e.flotilla.dev", metav1.GetOptions{})
				_, err2 := kubeClient(t, c).CoreV1().Namespaces().Get(ctx, "widgets", metav1.GetOptions{})
				return apierrors.IsNotFound(err1) && apierrors.IsNotFound(err2), nil
			})
			if err != nil {
				t.Errorf("CRD or namespace widgets on %s not gone: %v", c.Name, err)
			}
		}
	})

	rev, err := e.repo.Commit("widgets: CRD and a widget", map[string]string{
		"crds/widgets/crd.yaml":    widgetCRD,
		"crds/widgets/widget.yaml": widgetCR,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{
		"widgets.yaml": appSpec{name: "widgets", path: "crds/widgets", clusters: []string{"staging"}, prune: true, selfHeal: true,
			clusterKinds: []string{"apiextensions.k8s.io/CustomResourceDefinition"}}.yaml(e.git.URL(e.repo.Dir)),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "staging", "widgets")
		return it != nil && it.AppliedRevision == rev && it.Sync == "Synced" && it.Health == "Healthy"
	}); err != nil {
		t.Fatal(err)
	}
	w, err := dynamicClient(t, e.clusters[0]).Resource(widgetGVR).Namespace("widgets").Get(e.ctx, "sample", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the widget of the revision: %v", err)
	}
	if size, _, _ := unstructured.NestedInt64(w.Object, "spec", "size"); size != 3 || w.GetLabels()["flotilla.dev/app"] != "widgets" {
		t.Errorf("widget: size %d, labels %v", size, w.GetLabels())
	}
	if it := mustStatus(t, e, "staging", "widgets"); strings.Contains(it.Message, "failed") {
		t.Errorf("widgets message after a clean sync: %q", it.Message)
	}
}

const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.flotilla.dev
spec:
  group: e2e.flotilla.dev
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
`

const widgetCR = `apiVersion: e2e.flotilla.dev/v1
kind: Widget
metadata:
  name: sample
spec:
  size: 3
  color: blue
`

// TestInvalidObjectNacked: a revision with an object the API server refuses is NACKed with a
// message naming the object; nothing of it is written and the previous revision stays.
func TestInvalidObjectNacked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	cs := kubeClients(t, e.clusters)
	good := rev1
	for _, tc := range []struct {
		name, broken string
	}{
		{"replicas not a number", brokenDeployment(`"lots"`, "broken")},
		{"invalid container name", brokenDeployment("1", "Broken_Container")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			workerBefore := map[string]int64{}
			for i, c := range cs {
				d, err := c.AppsV1().Deployments("worker").Get(e.ctx, "worker", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				workerBefore[e.clusters[i].Name] = d.Generation
			}
			// A valid change and an invalid object in one revision.
			bad, err := e.repo.Commit("worker: "+tc.name, map[string]string{
				"base/worker/configmap.yaml":     strings.Replace(localfleet.DemoManifests("1.0.0")["base/worker/configmap.yaml"], "QUEUE: jobs", "QUEUE: changed", 1),
				"base/worker/broken.yaml":        tc.broken,
				"base/worker/kustomization.yaml": workerKustomization("broken.yaml"),
			})
			if err != nil {
				t.Fatal(err)
			}
			items, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
				for _, c := range []string{"staging", "production"} {
					it := statusOf(items, c, "worker")
					if it == nil || it.DesiredRevision != bad || !strings.Contains(it.Message, "Deployment.apps/worker/broken") {
						return false
					}
				}
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			// The retries (limit 3, backoff 2s, 4s, 8s) are refused the same way: nothing is written.
			testwait.Holds(t, 20*time.Second, "the refused revision left no trace", func(ctx context.Context) error {
				for i, c := range cs {
					cm, err := c.CoreV1().ConfigMaps("worker").Get(ctx, "worker-config", metav1.GetOptions{})
					if err != nil {
						return err
					}
					if cm.Data["QUEUE"] != "jobs" {
						return fmt.Errorf("%s: worker-config QUEUE=%q: part of the refused revision was written", e.clusters[i].Name, cm.Data["QUEUE"])
					}
					if _, err := c.AppsV1().Deployments("worker").Get(ctx, "broken", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
						return fmt.Errorf("%s: Deployment broken: %v, want NotFound", e.clusters[i].Name, err)
					}
				}
				return nil
			})
			if items, err = e.fleet.Status(e.ctx); err != nil {
				t.Fatal(err)
			}
			for _, c := range []string{"staging", "production"} {
				it := statusOf(items, c, "worker")
				t.Logf("%s worker: %s", c, it.Message)
				if !strings.Contains(it.Message, "Deployment.apps/worker/broken") {
					t.Errorf("%s: the NACK message does not name Deployment.apps/worker/broken: %q", c, it.Message)
				}
				if it.AppliedRevision != good || it.Sync != "OutOfSync" || it.Health != "Healthy" {
					t.Errorf("%s worker after a refused revision: applied %s (want %s), sync %s, health %s",
						c, it.AppliedRevision, good, it.Sync, it.Health)
				}
			}
			if it := statusOf(items, "staging", "api"); it == nil || it.AppliedRevision != bad || it.Sync != "Synced" {
				t.Errorf("staging api (not touched by the refused objects) did not move on: %+v", it)
			}
			for i, c := range cs {
				name := e.clusters[i].Name
				d, err := c.AppsV1().Deployments("worker").Get(e.ctx, "worker", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if d.Generation != workerBefore[name] || d.Status.ReadyReplicas != *d.Spec.Replicas {
					t.Errorf("%s: worker Deployment changed: generation %d → %d, ready %d/%d", name,
						workerBefore[name], d.Generation, d.Status.ReadyReplicas, *d.Spec.Replicas)
				}
			}
			// Git fixed: the fleet moves on.
			good = e.commitApplied(t, "worker: fixed", "worker", map[string]string{
				"base/worker/configmap.yaml":     localfleet.DemoManifests("1.0.0")["base/worker/configmap.yaml"],
				"base/worker/broken.yaml":        "",
				"base/worker/kustomization.yaml": workerKustomization(),
			})
			if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, allAt(good, 4)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func brokenDeployment(replicas, container string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
spec:
  replicas: %s
  selector:
    matchLabels: {app: broken}
  template:
    metadata:
      labels: {app: broken}
    spec:
      containers:
      - name: %s
        image: registry.example/broken:1.0.0
`, replicas, container)
}

// TestAgentRestartWithoutHub: an agent restarted while the hub is down keeps self-healing from
// the state it keeps in the cluster, and prunes nothing.
func TestAgentRestartWithoutHub(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	staging := kubeClient(t, e.clusters[0])
	e.fleet.Hub.Stop(10 * time.Second)
	agent := e.fleet.Agents["staging"]
	agent.Stop(10 * time.Second)
	loaded := countInFile(t, agent.LogPath, `msg="app state loaded"`)
	deletesBefore := len(agentRequests(t, e.clusters[0], "delete"))
	if err := e.fleet.StartAgent(e.clusters[0]); err != nil {
		t.Fatal(err)
	}
	agent = e.fleet.Agents["staging"]
	testwait.For(t, time.Minute, "the restarted agent loaded its state", func(context.Context) (bool, error) {
		if done, err := agent.Exited(); done {
			return false, fmt.Errorf("agent exited: %v\n%s", err, agent.Tail(4096))
		}
		return countInFile(t, agent.LogPath, `msg="app state loaded"`) > loaded, nil
	})

	uids := map[string]types.UID{}
	cm, err := staging.CoreV1().ConfigMaps("worker").Get(e.ctx, "worker-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uids["cm"] = cm.UID
	svc, err := staging.CoreV1().Services("api").Get(e.ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uids["svc"] = svc.UID
	if err := staging.CoreV1().ConfigMaps("worker").Delete(e.ctx, "worker-config", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := staging.CoreV1().Services("api").Delete(e.ctx, "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	testwait.For(t, time.Minute, "worker-config and the api Service recreated with the hub down", func(ctx context.Context) (bool, error) {
		cm, err1 := staging.CoreV1().ConfigMaps("worker").Get(ctx, "worker-config", metav1.GetOptions{})
		svc, err2 := staging.CoreV1().Services("api").Get(ctx, "api", metav1.GetOptions{})
		if apierrors.IsNotFound(err1) || apierrors.IsNotFound(err2) {
			return false, nil
		}
		if err1 != nil || err2 != nil {
			return false, fmt.Errorf("%v %v", err1, err2)
		}
		return cm.UID != uids["cm"] && svc.UID != uids["svc"] && cm.Data["QUEUE"] == "jobs", nil
	})
	t.Logf("deleted objects recreated by the restarted agent without a hub in %s", time.Since(deleted).Round(time.Millisecond))
	testwait.Holds(t, 10*time.Second, "every object of both apps kept", func(ctx context.Context) error {
		return demoObjectsExist(ctx, staging)
	})
	if n := len(agentRequests(t, e.clusters[0], "delete")) - deletesBefore; n != 0 {
		t.Errorf("the agent made %d delete requests after restarting without a hub", n)
	}

	// The hub returns: the fleet is as before, still nothing deleted.
	if err := e.fleet.StartHub(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	if err := demoObjectsExist(e.ctx, staging); err != nil {
		t.Error(err)
	}
	if n := len(agentRequests(t, e.clusters[0], "delete")) - deletesBefore; n != 0 {
		t.Errorf("the agent made %d delete requests after the hub returned", n)
	}
}

// demoObjectsExist checks every object of the demo apps on a cluster.
func demoObjectsExist(ctx context.Context, c kubernetes.Interface) error {
	var errs []string
	check := func(what string, err error) {
		if err != nil {
			errs = append(errs, what+": "+err.Error())
		}
	}
	_, err := c.AppsV1().Deployments("api").Get(ctx, "api", metav1.GetOptions{})
	check("api Deployment", err)
	_, err = c.CoreV1().Services("api").Get(ctx, "api", metav1.GetOptions{})
	check("api Service", err)
	_, err = c.AutoscalingV2().HorizontalPodAutoscalers("api").Get(ctx, "api", metav1.GetOptions{})
	check("api HPA", err)
	_, err = c.AppsV1().Deployments("worker").Get(ctx, "worker", metav1.GetOptions{})
	check("worker Deployment", err)
	_, err = c.CoreV1().ConfigMaps("worker").Get(ctx, "worker-config", metav1.GetOptions{})
	check("worker-config", err)
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// TestSteadyStateWritesNothing: once converged, the agents make no write request for a minute.
func TestSteadyStateWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	before := agentWrites(t, e.clusters)
	if len(before) != 2 || before["staging"] == 0 || before["production"] == 0 {
		t.Fatalf("agent writes before the quiet minute: %v; the count cannot see both agents", before)
	}
	start := time.Now()
	err := wait.PollUntilContextTimeout(e.ctx, 2*time.Second, time.Minute, true, func(context.Context) (bool, error) {
		now := agentWrites(t, e.clusters)
		for name, n := range now {
			if n != before[name] {
				return false, fmt.Errorf("cluster %s: %d agent write requests after %s of steady state",
					name, n-before[name], time.Since(start).Round(time.Second))
			}
		}
		return false, nil
	})
	if !wait.Interrupted(err) {
		for _, c := range e.clusters {
			for _, ev := range agentRequests(t, c, "") {
				if ev.StageTimestamp.After(start) {
					t.Logf("%s: %s %s", c.Name, ev.Verb, ev.RequestURI)
				}
			}
		}
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 10*time.Second, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
}

// TestSecretValueNeverShown: a Git-managed Secret changed live is shown modified, and neither
// its Git value nor its live value appears in status, diff, history or the logs.
func TestSecretValueNeverShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	gitCanary := fmt.Sprintf("git-canary-%d", time.Now().UnixNano())
	liveCanary := fmt.Sprintf("live-canary-%d", time.Now().UnixNano())
	// Without selfHeal, so the drift stays to be looked at.
	e.setApps(t, appSpec{name: "worker", prune: true})
	secret := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: worker-secret
type: Opaque
data:
  TOKEN: %s
`, base64.StdEncoding.EncodeToString([]byte(gitCanary)))
	rev := e.commitApplied(t, "worker: a secret", "worker", map[string]string{
		"base/worker/secret.yaml":        secret,
		"base/worker/kustomization.yaml": workerKustomization("secret.yaml"),
	})
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, allAt(rev, 4)); err != nil {
		t.Fatal(err)
	}
	staging := kubeClient(t, e.clusters[0])
	patch := fmt.Sprintf(`{"data":{"TOKEN":%q}}`, base64.StdEncoding.EncodeToString([]byte(liveCanary)))
	if _, err := staging.CoreV1().Secrets("worker").Patch(e.ctx, "worker-secret", types.MergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: manualManager}); err != nil {
		t.Fatal(err)
	}
	items, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "staging", "worker")
		return it != nil && it.Sync == "OutOfSync" && findDrift(t, it, "Secret", "worker-secret") != nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d := findDrift(t, statusOf(items, "staging", "worker"), "Secret", "worker-secret")
	if d.Type != "modified" {
		t.Errorf("Secret drift type %q, want modified", d.Type)
	}
	if !strings.Contains(d.Diff, "data.TOKEN") {
		t.Errorf("Secret drift does not name the changed key data.TOKEN:\n%s", d.Diff)
	}
	diffOut, err := e.fleet.CLI(e.ctx, "diff", "worker", "--cluster", "staging")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(diffOut), "=== staging: Secret worker/worker-secret (modified)") {
		t.Errorf("flotilla diff worker --cluster staging does not show the Secret modified:\n%s", diffOut)
	}

	outputs := map[string][]byte{"diff worker --cluster staging": diffOut}
	for _, args := range [][]string{
		{"status", "-o", "json"}, {"status", "-o", "yaml"}, {"status", "-o", "wide"}, {"status", "--drifted", "-o", "json"},
		{"diff", "worker"}, {"history", "worker", "-o", "json"}, {"apps", "-o", "json"},
	} {
		out, err := e.fleet.CLI(e.ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		outputs["flotilla "+strings.Join(args, " ")] = out
	}
	logs := []string{e.fleet.Hub.LogPath}
	for _, a := range e.fleet.Agents {
		logs = append(logs, a.LogPath)
	}
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		outputs["log "+p] = b
	}
	for where, out := range outputs {
		for _, canary := range []string{gitCanary, liveCanary} {
			for _, form := range []string{canary, base64.StdEncoding.EncodeToString([]byte(canary))} {
				if strings.Contains(string(out), form) {
					t.Errorf("%s shows a Secret value (%s)", where, form)
				}
			}
		}
	}
}

// ---- helpers ----

// appSpec is an Application variant for the demo repository.
type appSpec struct {
	name string
	// path defaults to the demo's environments/{{ .labels.env }}/<name>.
	path string
	// namespace defaults to name.
	namespace string
	// clusters names the target clusters; empty targets both (by the env label).
	clusters []string
	// manual leaves automated sync off.
	manual                      bool
	prune, selfHeal, allowEmpty bool
	// clusterKinds are cluster-scoped kinds the app's policy allows, as "group/Kind".
	clusterKinds []string
	// health is the spec.health flow mapping, e.g. "{progressDeadline: 5s, rollback: auto}".
	health string
	// preserve sets spec.syncPolicy.preserveResourcesOnDeletion.
	preserve bool
	// dependsOn lists the apps of spec.dependsOn.
	dependsOn []string
	// syncOptions are added to CreateNamespace=true.
	syncOptions []string
	// spec is more of the spec, as YAML lines indented by two spaces (e.g. ignoreDifferences).
	spec string
}

// pathMarker makes each rewrite of a templated path textually new (spaces inside the
// template action, which render the same), so a test can see when the hub has loaded it.
var pathMarker atomic.Int32

func (s appSpec) sourcePath() string {
	if s.path != "" {
		return s.path
	}
	return fmt.Sprintf("environments/{{%s.labels.env }}/%s", strings.Repeat(" ", int(pathMarker.Add(1))), s.name)
}

func (s appSpec) yaml(repoURL string) string {
	return s.render(repoURL, s.sourcePath())
}

func (s appSpec) render(repoURL, path string) string {
	ns := s.namespace
	if ns == "" {
		ns = s.name
	}
	dest := "    clusterSelector:\n      matchExpressions:\n      - {key: env, operator: In, values: [staging, production]}\n"
	if len(s.clusters) > 0 {
		dest = fmt.Sprintf("    clusters: [%s]\n", strings.Join(s.clusters, ", "))
	}
	automated := ""
	if !s.manual {
		automated = fmt.Sprintf("    automated: {prune: %t, selfHeal: %t, allowEmpty: %t}\n", s.prune, s.selfHeal, s.allowEmpty)
	}
	if s.preserve {
		automated += "    preserveResourcesOnDeletion: true\n"
	}
	return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata:
  name: %s
spec:
  source:
    repoURL: %s
    targetRevision: main
    path: %q
  destination:
%s    namespace: %s
  syncPolicy:
%s    syncOptions: [%s]
    retry: {limit: 3, backoff: {duration: 2s, factor: 2, maxDuration: 30s}}
%s%s%s%s`, s.name, repoURL, path, dest, ns, automated, strings.Join(append([]string{"CreateNamespace=true"}, s.syncOptions...), ", "),
		s.policy(), s.healthPolicy(), s.spec, s.dependencies())
}

// dependencies is the spec.dependsOn line, or nothing.
func (s appSpec) dependencies() string {
	if len(s.dependsOn) == 0 {
		return ""
	}
	return "  dependsOn: [{app: " + strings.Join(s.dependsOn, "}, {app: ") + "}]\n"
}

// healthPolicy is the spec.health line, or nothing.
func (s appSpec) healthPolicy() string {
	if s.health == "" {
		return ""
	}
	return "  health: " + s.health + "\n"
}

// policy is the spec.policy allowing clusterKinds, or nothing.
func (s appSpec) policy() string {
	if len(s.clusterKinds) == 0 {
		return ""
	}
	var kinds []string
	for _, gk := range s.clusterKinds {
		g, k, _ := strings.Cut(gk, "/")
		kinds = append(kinds, fmt.Sprintf("{group: %q, kind: %s}", g, k))
	}
	return "  policy:\n    clusterResources: [" + strings.Join(kinds, ", ") + "]\n"
}

func (s appSpec) clusterCount() int {
	if len(s.clusters) > 0 {
		return len(s.clusters)
	}
	return 2
}

// setApps rewrites Applications in the apps directory and returns once every agent concerned
// holds them: it waits until the hub shows the new files, then commits (nothing) so that the
// revision moves, and waits until the apps report that revision applied: an agent that
// acknowledged it got the new policy with it.
func (e *env) setApps(tb testing.TB, specs ...appSpec) string {
	tb.Helper()
	paths := map[string]string{}
	files := map[string]string{}
	for _, s := range specs {
		paths[s.name] = s.sourcePath()
		files[s.name+".yaml"] = s.render(e.git.URL(e.repo.Dir), paths[s.name])
	}
	if err := localfleet.WriteFiles(e.appsDir, files); err != nil {
		tb.Fatal(err)
	}
	testwait.For(tb, 30*time.Second, "the hub loaded the new Applications", func(ctx context.Context) (bool, error) {
		out, err := e.fleet.CLI(ctx, "apps", "-o", "json")
		if err != nil {
			return false, nil
		}
		var resp struct {
			Items []struct{ Name, Path string }
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			return false, err
		}
		seen := 0
		for _, it := range resp.Items {
			if p, ok := paths[it.Name]; ok && it.Path == p {
				seen++
			}
		}
		return seen == len(paths), nil
	})
	rev, err := e.repo.Commit("apps changed", nil)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		for _, s := range specs {
			n := 0
			for _, it := range items {
				if it.App == s.name && it.AppliedRevision == rev {
					n++
				}
			}
			if n != s.clusterCount() {
				return false
			}
		}
		return true
	}); err != nil {
		tb.Fatal(err)
	}
	return rev
}

// commitApplied commits files and waits until app reports the new revision applied on both
// clusters.
func (e *env) commitApplied(tb testing.TB, msg, app string, files map[string]string) string {
	tb.Helper()
	rev, err := e.repo.Commit(msg, files)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
		n := 0
		for _, it := range items {
			if it.App == app && it.AppliedRevision == rev {
				n++
			}
		}
		return n == 2
	}); err != nil {
		tb.Fatalf("%s: %v", msg, err)
	}
	return rev
}

func workerKustomization(extra ...string) string {
	return "resources:\n- deployment.yaml\n- configmap.yaml\n" + func() string {
		var b strings.Builder
		for _, f := range extra {
			b.WriteString("- " + f + "\n")
		}
		return b.String()
	}()
}

func configMapYAML(name string, annotations map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n", name)
	if len(annotations) > 0 {
		b.WriteString("  annotations:\n")
		keys := make([]string, 0, len(annotations))
		for k := range annotations {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "    %s: %q\n", k, annotations[k])
		}
	}
	fmt.Fprintf(&b, "data:\n  name: %s\n", name)
	return b.String()
}

func statusOf(items []localfleet.StatusItem, cluster, app string) *localfleet.StatusItem {
	for i := range items {
		if items[i].Cluster == cluster && items[i].App == app {
			return &items[i]
		}
	}
	return nil
}

func mustStatus(t *testing.T, e *env, cluster, app string) *localfleet.StatusItem {
	t.Helper()
	items, err := e.fleet.Status(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	it := statusOf(items, cluster, app)
	if it == nil {
		t.Fatalf("no status for %s on %s", app, cluster)
	}
	return it
}

// driftEntry is one drift entry of `flotilla status -o json`.
type driftEntry struct {
	Group, Kind, Namespace, Name, Type, Diff string
}

func findDrift(tb testing.TB, it *localfleet.StatusItem, kind, name string) *driftEntry {
	if it == nil {
		return nil
	}
	for _, raw := range it.Drift {
		var d driftEntry
		if err := json.Unmarshal(raw, &d); err != nil {
			tb.Fatalf("drift entry %s: %v", raw, err)
		}
		if d.Kind == kind && d.Name == name {
			return &d
		}
	}
	return nil
}

func kubeClient(tb testing.TB, c *localkube.Cluster) kubernetes.Interface {
	tb.Helper()
	client, err := c.Client()
	if err != nil {
		tb.Fatal(err)
	}
	return client
}

func kubeClients(tb testing.TB, cs []*localkube.Cluster) []kubernetes.Interface {
	out := make([]kubernetes.Interface, len(cs))
	for i, c := range cs {
		out[i] = kubeClient(tb, c)
	}
	return out
}

func dynamicClient(tb testing.TB, c *localkube.Cluster) dynamic.Interface {
	tb.Helper()
	d, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func configMapsExist(ctx context.Context, cs []kubernetes.Interface, ns string, names ...string) error {
	for i, c := range cs {
		for _, n := range names {
			if _, err := c.CoreV1().ConfigMaps(ns).Get(ctx, n, metav1.GetOptions{}); err != nil {
				return fmt.Errorf("client %d: ConfigMap %s/%s: %w", i, ns, n, err)
			}
		}
	}
	return nil
}

// waitConfigMaps waits until the ConfigMaps exist (or are gone) on every cluster.
func waitConfigMaps(tb testing.TB, ctx context.Context, cs []kubernetes.Interface, ns string, exist bool, names ...string) {
	tb.Helper()
	what := fmt.Sprintf("ConfigMaps %v in %s exist=%t", names, ns, exist)
	testwait.For(tb, time.Minute, what, func(ctx context.Context) (bool, error) {
		for _, c := range cs {
			for _, n := range names {
				_, err := c.CoreV1().ConfigMaps(ns).Get(ctx, n, metav1.GetOptions{})
				if err != nil && !apierrors.IsNotFound(err) {
					return false, err
				}
				if (err == nil) != exist {
					return false, nil
				}
			}
		}
		return true, nil
	})
}

// auditEvent is one line of an API server audit log.
type auditEvent struct {
	Verb           string    `json:"verb"`
	UserAgent      string    `json:"userAgent"`
	RequestURI     string    `json:"requestURI"`
	StageTimestamp time.Time `json:"stageTimestamp"`
}

// agentRequests returns the agent's write requests of verb (any when empty), dry runs left
// out, from the cluster's audit log.
func agentRequests(tb testing.TB, c *localkube.Cluster, verb string) []auditEvent {
	tb.Helper()
	f, err := os.Open(c.AuditLogPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev auditEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil || !strings.HasPrefix(ev.UserAgent, "flotilla-agent") ||
			strings.Contains(ev.RequestURI, "dryRun=All") || (verb != "" && ev.Verb != verb) {
			continue
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// countInFile counts the lines of a file holding s.
func countInFile(tb testing.TB, path, s string) int {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Count(string(b), s)
}
