package apply

import (
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// pruneSetup applies n ConfigMaps cm0..cm(n-1) (extra documents appended) to a fresh namespace
// and returns their inventory.
func pruneSetup(t *testing.T, e *kubetest.Env, a *Applier, ns string, n int, extra ...string) []ObjectRef {
	t.Helper()
	e.CreateNamespace(t, ns)
	docs := append(kubetest.ConfigMaps(n), extra...)
	res, err := a.Apply(kubetest.Ctx(t), revision(t, ns, ns, Policy{Prune: true}, docs...), nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Inventory
}

func TestPrune(t *testing.T) {
	nsPruneEmpty := kubetest.Uniq("t-prune-empty")
	nsPruneHalf := kubetest.Uniq("t-prune-half")
	nsPruneKeep := kubetest.Uniq("t-prune-keep")
	nsPruneLast := kubetest.Uniq("t-prune-last")
	nsPruneOff := kubetest.Uniq("t-prune-off")
	nsPruneOn := kubetest.Uniq("t-prune-on")
	nsPruneOwner := kubetest.Uniq("t-prune-owner")
	nsPrunePvc := kubetest.Uniq("t-prune-pvc")
	e := newEnv(t)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)

	t.Run("prune on deletes", func(t *testing.T) {
		inv := pruneSetup(t, e, a, nsPruneOn, 4)
		res, err := a.Apply(ctx, revision(t, nsPruneOn, nsPruneOn, Policy{Prune: true}, kubetest.ConfigMaps(3)...), inv)
		if err != nil {
			t.Fatal(err)
		}
		if got := kubetest.Names(res.Objects(Pruned)); len(got) != 1 || got[0] != "ConfigMap/"+nsPruneOn+"/cm3" {
			t.Errorf("pruned %v, want cm3", got)
		}
		if len(res.Inventory) != 3 || kubetest.Has(res.Inventory, "ConfigMap/"+nsPruneOn+"/cm3") {
			t.Errorf("inventory %v", kubetest.Names(res.Inventory))
		}
		if _, ok := e.ConfigMapValue(t, nsPruneOn, "cm3", "value"); ok {
			t.Error("cm3 still exists")
		}
	})

	t.Run("prune off keeps", func(t *testing.T) {
		inv := pruneSetup(t, e, a, nsPruneOff, 4)
		res, err := a.Apply(ctx, revision(t, nsPruneOff, nsPruneOff, Policy{}, kubetest.ConfigMaps(3)...), inv)
		if err != nil {
			t.Fatal(err)
		}
		if res.Count(Pruned) != 0 || !kubetest.Has(res.Objects(Stale), "ConfigMap/"+nsPruneOff+"/cm3") || !kubetest.Has(res.Inventory, "ConfigMap/"+nsPruneOff+"/cm3") {
			t.Errorf("pruned %v, stale %v, inventory %v", kubetest.Names(res.Objects(Pruned)), kubetest.Names(res.Objects(Stale)), kubetest.Names(res.Inventory))
		}
		if _, ok := e.ConfigMapValue(t, nsPruneOff, "cm3", "value"); !ok {
			t.Error("cm3 deleted with prune off")
		}
	})

	t.Run("keep annotations", func(t *testing.T) {
		keep1 := kubetest.ConfigMap("keep1", "v1", AnnotationPrune, "disabled")
		keep2 := kubetest.ConfigMap("keep2", "v1", AnnotationArgoSyncOptions, "Replace=true, Prune=false")
		inv := pruneSetup(t, e, a, nsPruneKeep, 4, keep1, keep2)
		res, err := a.Apply(ctx, revision(t, nsPruneKeep, nsPruneKeep, Policy{Prune: true}, kubetest.ConfigMaps(4)...), inv)
		if err != nil {
			t.Fatal(err)
		}
		if res.Count(Pruned) != 0 || res.Count(Orphaned) != 2 {
			t.Errorf("pruned %v, orphaned %v; want both kept as orphans", kubetest.Names(res.Objects(Pruned)), kubetest.Names(res.Objects(Orphaned)))
		}
		if kubetest.Has(res.Inventory, "ConfigMap/"+nsPruneKeep+"/keep1") {
			t.Errorf("orphan still in inventory %v", kubetest.Names(res.Inventory))
		}
		for _, name := range []string{"keep1", "keep2"} {
			if _, ok := e.ConfigMapValue(t, nsPruneKeep, name, "value"); !ok {
				t.Errorf("%s deleted despite its keep annotation", name)
			}
		}
	})

	t.Run("empty render prunes nothing", func(t *testing.T) {
		inv := pruneSetup(t, e, a, nsPruneEmpty, 2)
		var res *ChangeSet
		var err error
		n, _ := e.WritesDuring(func() {
			res, err = a.Apply(ctx, revision(t, nsPruneEmpty, nsPruneEmpty, Policy{Prune: true}), inv)
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 || len(res.Inventory) != 2 || len(res.Warnings) != 1 {
			t.Errorf("empty render: %d writes, inventory %v, warnings %q", n, kubetest.Names(res.Inventory), res.Warnings)
		}
	})

	t.Run("deleting more than half is held", func(t *testing.T) {
		inv := pruneSetup(t, e, a, nsPruneHalf, 3)
		d := revision(t, nsPruneHalf, nsPruneHalf, Policy{Prune: true}, kubetest.ConfigMaps(1)...)
		res, err := a.Apply(ctx, d, inv)
		if err != nil {
			t.Fatal(err)
		}
		if res.Count(Held) != 2 || res.Count(Pruned) != 0 || len(res.Inventory) != 3 {
			t.Errorf("held %v, pruned %v, inventory %v", kubetest.Names(res.Objects(Held)), kubetest.Names(res.Objects(Pruned)), kubetest.Names(res.Inventory))
		}
		if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "awaiting confirmation") {
			t.Errorf("warnings %q", res.Warnings)
		}
		for _, name := range []string{"cm1", "cm2"} {
			if _, ok := e.ConfigMapValue(t, nsPruneHalf, name, "value"); !ok {
				t.Errorf("%s deleted", name)
			}
		}
		// Confirmed, they go.
		d.PruneConfirmed = true
		res, err = a.Apply(ctx, d, res.Inventory)
		if err != nil {
			t.Fatal(err)
		}
		if res.Count(Pruned) != 2 || len(res.Inventory) != 1 {
			t.Errorf("confirmed: pruned %v, inventory %v", kubetest.Names(res.Objects(Pruned)), kubetest.Names(res.Inventory))
		}
	})

	t.Run("protected kinds are held", func(t *testing.T) {
		pvc := "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n"
		inv := pruneSetup(t, e, a, nsPrunePvc, 4, pvc)
		res, err := a.Apply(ctx, revision(t, nsPrunePvc, nsPrunePvc, Policy{Prune: true}, kubetest.ConfigMaps(4)...), inv)
		if err != nil {
			t.Fatal(err)
		}
		if got := kubetest.Names(res.Objects(Held)); len(got) != 1 || got[0] != "PersistentVolumeClaim/"+nsPrunePvc+"/data" {
			t.Errorf("held %v, want the PVC", got)
		}
		if _, err := e.Client.CoreV1().PersistentVolumeClaims(nsPrunePvc).Get(ctx, "data", metav1.GetOptions{}); err != nil {
			t.Errorf("PVC gone: %v", err)
		}
	})

	t.Run("another app's object is not deleted", func(t *testing.T) {
		inv := pruneSetup(t, e, a, nsPruneOwner, 4)
		claimFor(t, e, nsPruneOwner, "cm3", "other")
		res, err := a.Apply(ctx, revision(t, nsPruneOwner, nsPruneOwner, Policy{Prune: true}, kubetest.ConfigMaps(3)...), inv)
		if err != nil {
			t.Fatal(err)
		}
		if res.Count(Pruned) != 0 || !kubetest.Has(res.Objects(Orphaned), "ConfigMap/"+nsPruneOwner+"/cm3") {
			t.Errorf("pruned %v, orphaned %v", kubetest.Names(res.Objects(Pruned)), kubetest.Names(res.Objects(Orphaned)))
		}
	})

	t.Run("prune last defers to Prune", func(t *testing.T) {
		inv := pruneSetup(t, e, a, nsPruneLast, 4)
		d := revision(t, nsPruneLast, nsPruneLast, Policy{Prune: true, PruneLast: true}, kubetest.ConfigMaps(3)...)
		res, err := a.Apply(ctx, d, inv)
		if err != nil {
			t.Fatal(err)
		}
		if res.Count(Pruned) != 0 || !kubetest.Has(res.Objects(Stale), "ConfigMap/"+nsPruneLast+"/cm3") {
			t.Fatalf("apply pruned %v, stale %v", kubetest.Names(res.Objects(Pruned)), kubetest.Names(res.Objects(Stale)))
		}
		res, err = a.Prune(ctx, d, res.Inventory)
		if err != nil {
			t.Fatal(err)
		}
		if got := kubetest.Names(res.Objects(Pruned)); len(got) != 1 || len(res.Inventory) != 3 {
			t.Errorf("Prune: pruned %v, inventory %v", got, kubetest.Names(res.Inventory))
		}
	})
}

func TestDeleteInventory(t *testing.T) {
	nsDeleteInv := kubetest.Uniq("t-delete-inv")
	e := newEnv(t)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	keep := kubetest.ConfigMap("keep", "v1", AnnotationPrune, "disabled")
	inv := pruneSetup(t, e, a, nsDeleteInv, 2, keep, kubetest.Namespace(nsDeleteInv))
	res := a.DeleteInventory(ctx, nsDeleteInv, inv)
	if res.Count(Pruned) != 2 || res.Count(Orphaned) != 2 || len(res.Inventory) != 0 {
		t.Errorf("pruned %v, orphaned %v, inventory %v", kubetest.Names(res.Objects(Pruned)), kubetest.Names(res.Objects(Orphaned)), kubetest.Names(res.Inventory))
	}
	ns, err := e.Client.CoreV1().Namespaces().Get(ctx, nsDeleteInv, metav1.GetOptions{})
	if err != nil || ns.Status.Phase != corev1.NamespaceActive {
		t.Errorf("namespace deleted: %v", err)
	}
	if _, ok := e.ConfigMapValue(t, nsDeleteInv, "keep", "value"); !ok {
		t.Error("annotated ConfigMap deleted")
	}
}

// TestRelease: removing an app that preserves its objects deletes nothing and takes the app
// label off each object it claims, leaving another app's object alone.
func TestRelease(t *testing.T) {
	ns := kubetest.Uniq("t-release")
	e := newEnv(t)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	inv := pruneSetup(t, e, a, ns, 3)
	claimFor(t, e, ns, "cm2", "other")
	writes := e.Writes.Count.Load()
	res := a.Release(ctx, ns, inv)
	if res.Count(Released) != 2 || !kubetest.Has(res.Objects(Orphaned), "ConfigMap/"+ns+"/cm2") || len(res.Inventory) != 0 {
		t.Errorf("released %v, orphaned %v, inventory %v", kubetest.Names(res.Objects(Released)), kubetest.Names(res.Objects(Orphaned)), kubetest.Names(res.Inventory))
	}
	if n := e.Writes.Count.Load() - writes; n != 2 {
		t.Errorf("%d write requests, want 2 (one label removal per released object)", n)
	}
	for _, name := range []string{"cm0", "cm1", "cm2"} {
		cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v (a preserved object was deleted)", name, err)
		}
		want := ""
		if name == "cm2" {
			want = "other"
		}
		if got := cm.Labels[LabelApp]; got != want {
			t.Errorf("%s: label %s=%q, want %q", name, LabelApp, got, want)
		}
	}
}

// claimFor labels the ConfigMap ns/name as app's.
func claimFor(t *testing.T, e *kubetest.Env, ns, name, app string) {
	t.Helper()
	ctx := kubetest.Ctx(t)
	cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Labels[LabelApp] = app
	if _, err := e.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
