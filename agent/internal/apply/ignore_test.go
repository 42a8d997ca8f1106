package apply

import (
	"context"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/ignore"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// hpaManager is the field manager of the HorizontalPodAutoscaler controller.
const hpaManager = "kube-controller-manager"

// scaleAs sets a Deployment's replicas through its scale subresource, as an HPA does.
func scaleAs(t *testing.T, e *kubetest.Env, ns, name string, replicas int32, manager string) {
	t.Helper()
	ctx := kubetest.Ctx(t)
	s := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
	if _, err := e.Client.AppsV1().Deployments(ns).UpdateScale(ctx, name, s, metav1.UpdateOptions{FieldManager: manager}); err != nil {
		t.Fatal(err)
	}
}

// setImage changes a Deployment's image as a person with kubectl would.
func setImage(t *testing.T, e *kubetest.Env, ns, name, image string) {
	t.Helper()
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"` + image + `"}]}}}}`
	if _, err := e.Client.AppsV1().Deployments(ns).Patch(kubetest.Ctx(t), name, types.StrategicMergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
}

// liveDeployment returns a Deployment's replicas and image.
func liveDeployment(t *testing.T, e *kubetest.Env, ns, name string) (int32, string) {
	t.Helper()
	d, err := e.Client.AppsV1().Deployments(ns).Get(kubetest.Ctx(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image
}

// driftUntil polls Drift until ok holds of its result (the Deployment controller's own writes,
// such as its revision annotation, race with a single comparison), and returns that result.
func driftUntil(t *testing.T, a *Applier, d *Revision, what string, ok func([]Drift) bool) []Drift {
	t.Helper()
	var last []Drift
	testwait.For(t, 30*time.Second, what, func(ctx context.Context) (bool, error) {
		var err error
		last, err = a.Drift(ctx, d, nil)
		return err == nil && ok(last), err
	})
	return last
}

func noDrift(drift []Drift) bool { return len(drift) == 0 }

// TestIgnoredFieldIsNotDrift: with spec.replicas ignored (by JSON pointer, and by the
// manager that owns it), an HPA's scaling is not drift, and healing the Deployment writes
// nothing; an image changed by hand still is drift, and healing it restores the image and
// leaves the HPA's replicas.
func TestIgnoredFieldIsNotDrift(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule ignore.Rule
	}{
		{"json pointer", ignore.Rule{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}}},
		{"jq path", ignore.Rule{Group: "apps", Kind: "Deployment", Name: "web", JQPathExpressions: []string{".spec.replicas"}}},
		{"managed fields manager", ignore.Rule{Group: "*", Kind: "Deployment", ManagedFieldsManagers: []string{hpaManager}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ns := kubetest.Uniq("t-ignore")
			e.CreateNamespace(t, ns)
			a := newApplier(t, e)
			ctx := kubetest.Ctx(t)
			d := revision(t, "ignore", ns, Policy{}, kubetest.Deployment("web", 2, false))
			d.Ignore = []ignore.Rule{tc.rule}
			res, err := a.Apply(ctx, d, nil)
			if err != nil {
				t.Fatal(err)
			}
			web := ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: ns, Name: "web"}

			scaleAs(t, e, ns, "web", 5, hpaManager)
			driftUntil(t, a, d, "no drift after the HPA scaled", noDrift)
			n, what := e.WritesDuring(func() { _, err = a.Heal(ctx, d, []ObjectRef{web}, res.Inventory) })
			if err != nil || n != 0 {
				t.Errorf("healing a Deployment whose only difference is ignored: %d writes %v, err %v; want none", n, what, err)
			}

			setImage(t, e, ns, "web", "registry.example/web:hacked")
			drift := driftUntil(t, a, d, "the image change as drift", func(drift []Drift) bool {
				return len(drift) == 1 && strings.Contains(drift[0].Diff, "image")
			})
			if diff := drift[0].Diff; strings.Contains(diff, "replicas") {
				t.Errorf("diff = %q, want the image and not the ignored replicas", diff)
			}
			if _, err := a.Heal(ctx, d, []ObjectRef{web}, res.Inventory); err != nil {
				t.Fatal(err)
			}
			if replicas, image := liveDeployment(t, e, ns, "web"); replicas != 5 || image != "registry.example/web:v1" {
				t.Errorf("after the heal: replicas %d, image %s; want the HPA's 5 and Git's image", replicas, image)
			}
			driftUntil(t, a, d, "no drift after the heal", noDrift)
		})
	}
}

// TestManagedFieldsManagersOnlyThoseManagers: fields are ignored only while the named manager
// owns them: replicas set by someone else are drift.
func TestManagedFieldsManagersOnlyThoseManagers(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-ignore-managers")
	e.CreateNamespace(t, ns)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	d := revision(t, "managers", ns, Policy{}, kubetest.Deployment("web", 2, false))
	d.Ignore = []ignore.Rule{{Group: "apps", Kind: "Deployment", ManagedFieldsManagers: []string{hpaManager}}}
	if _, err := a.Apply(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	scaleAs(t, e, ns, "web", 4, "kubectl-scale")
	driftUntil(t, a, d, "replicas scaled by kubectl as drift", func(drift []Drift) bool {
		return len(drift) == 1 && drift[0].Diff == "spec.replicas: 4 → 2"
	})
	scaleAs(t, e, ns, "web", 6, hpaManager)
	driftUntil(t, a, d, "no drift once "+hpaManager+" owns the replicas", noDrift)
}

// TestRespectIgnoreDifferences: a sync of a new image keeps the HPA's replicas with
// RespectIgnoreDifferences=true, and writes Git's replicas without it (as Argo CD does).
func TestRespectIgnoreDifferences(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-respect")
	e.CreateNamespace(t, ns)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	rules := []ignore.Rule{{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}}}
	deploy := func(image string, respect bool) {
		t.Helper()
		doc := strings.Replace(kubetest.Deployment("web", 2, false), "registry.example/web:v1", image, 1)
		d := revision(t, "respect", ns, Policy{RespectIgnoreDifferences: respect}, doc)
		d.Ignore = rules
		if _, err := a.Apply(ctx, d, nil); err != nil {
			t.Fatal(err)
		}
	}
	deploy("registry.example/web:v1", true)
	if replicas, _ := liveDeployment(t, e, ns, "web"); replicas != 2 {
		t.Fatalf("a new Deployment has %d replicas, want Git's 2", replicas)
	}
	scaleAs(t, e, ns, "web", 5, hpaManager)
	deploy("registry.example/web:v2", true)
	if replicas, image := liveDeployment(t, e, ns, "web"); replicas != 5 || image != "registry.example/web:v2" {
		t.Errorf("with RespectIgnoreDifferences: replicas %d, image %s; want the HPA's 5 and v2", replicas, image)
	}
	deploy("registry.example/web:v3", false)
	if replicas, image := liveDeployment(t, e, ns, "web"); replicas != 2 || image != "registry.example/web:v3" {
		t.Errorf("without RespectIgnoreDifferences: replicas %d, image %s; want Git's 2 and v3", replicas, image)
	}
}

// TestIgnoreExtraneousIsNeverDrift: an object with the compare option IgnoreExtraneous is not
// drift however it changes; its neighbour without it is.
func TestIgnoreExtraneousIsNeverDrift(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-extraneous")
	e.CreateNamespace(t, ns)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	d := revision(t, "extraneous", ns, Policy{},
		kubetest.ConfigMap("loose", "v1", AnnotationArgoCompareOptions, "IgnoreExtraneous"), kubetest.ConfigMap("strict", "v1"))
	if _, err := a.Apply(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"loose", "strict"} {
		cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["value"] = "edited"
		if _, err := e.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	drift, err := a.Drift(ctx, d, nil)
	if err != nil || len(drift) != 1 || drift[0].Object.Name != "strict" {
		t.Errorf("drift = %+v, err %v; want only ConfigMap strict", drift, err)
	}
}
