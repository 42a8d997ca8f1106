package syncer

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// pruneSetup applies n ConfigMaps cm0..cm(n-1) (extra documents appended) to a fresh namespace
// and returns their inventory.
func pruneSetup(t *testing.T, e *env, a *Applier, ns string, n int, extra ...string) []ObjectRef {
	t.Helper()
	e.createNamespace(t, ns)
	docs := append(configMaps(n), extra...)
	res, err := a.Apply(testCtx(t), desired(t, ns, ns, SyncPolicy{Automated: true, Prune: true}, docs...), nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Inventory
}

func configMaps(n int) []string {
	var docs []string
	for i := 0; i < n; i++ {
		docs = append(docs, configMap(fmt.Sprintf("cm%d", i), "v1"))
	}
	return docs
}

func TestPrune(t *testing.T) {
	nsPruneEmpty := uniq("t-prune-empty")
	nsPruneHalf := uniq("t-prune-half")
	nsPruneKeep := uniq("t-prune-keep")
	nsPruneLast := uniq("t-prune-last")
	nsPruneOff := uniq("t-prune-off")
	nsPruneOn := uniq("t-prune-on")
	nsPruneOwner := uniq("t-prune-owner")
	nsPrunePvc := uniq("t-prune-pvc")
	e := newEnv(t)
	a := e.applier(t)
	ctx := testCtx(t)

	t.Run("prune on deletes", func(t *testing.T) {
		inv := pruneSetup(t, e, a, nsPruneOn, 4)
		res, err := a.Apply(ctx, desired(t, nsPruneOn, nsPruneOn, SyncPolicy{Automated: true, Prune: true}, configMaps(3)...), inv)
		if err != nil {
			t.Fatal(err)
		}
		if got := refNames(res.Pruned); len(got) != 1 || got[0] != "ConfigMap/"+nsPruneOn+"/cm3" {
			t.Errorf("pruned %v, want cm3", got)
		}
		if len(res.Inventory) != 3 || hasRef(res.Inventory, "ConfigMap/"+nsPruneOn+"/cm3") {
			t.Errorf("inventory %v", refNames(res.Inventory))
		}
		if _, ok := e.configMapValue(t, nsPruneOn, "cm3", "value"); ok {
			t.Error("cm3 still exists")
		}
	})

	t.Run("prune off keeps", func(t *testing.T) {
		inv := pruneSetup(t, e, a, nsPruneOff, 4)
		res, err := a.Apply(ctx, desired(t, nsPruneOff, nsPruneOff, SyncPolicy{Automated: true}, configMaps(3)...), inv)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Pruned) != 0 || !hasRef(res.Stale, "ConfigMap/"+nsPruneOff+"/cm3") || !hasRef(res.Inventory, "ConfigMap/"+nsPruneOff+"/cm3") {
			t.Errorf("pruned %v, stale %v, inventory %v", refNames(res.Pruned), refNames(res.Stale), refNames(res.Inventory))
		}
		if _, ok := e.configMapValue(t, nsPruneOff, "cm3", "value"); !ok {
			t.Error("cm3 deleted with prune off")
		}
	})

	t.Run("keep annotations", func(t *testing.T) {
		keep1 := configMap("keep1", "v1", AnnotationPrune, "disabled")
		keep2 := configMap("keep2", "v1", AnnotationArgoSyncOptions, "Replace=true, Prune=false")
		inv := pruneSetup(t, e, a, nsPruneKeep, 4, keep1, keep2)
		res, err := a.Apply(ctx, desired(t, nsPruneKeep, nsPruneKeep, SyncPolicy{Automated: true, Prune: true}, configMaps(4)...), inv)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Pruned) != 0 || len(res.Orphaned) != 2 {
			t.Errorf("pruned %v, orphaned %v; want both kept as orphans", refNames(res.Pruned), refNames(res.Orphaned))
		}
		if hasRef(res.Inventory, "ConfigMap/"+nsPruneKeep+"/keep1") {
			t.Errorf("orphan still in inventory %v", refNames(res.Inventory))
		}
		for _, name := range []string{"keep1", "keep2"} {
			if _, ok := e.configMapValue(t, nsPruneKeep, name, "value"); !ok {
				t.Errorf("%s deleted despite its keep annotation", name)
			}
		}
	})

	t.Run("empty render prunes nothing", func(t *testing.T) {
		inv := pruneSetup(t, e, a, nsPruneEmpty, 2)
		var res *Result
		var err error
		n, _ := e.writesDuring(func() {
			res, err = a.Apply(ctx, desired(t, nsPruneEmpty, nsPruneEmpty, SyncPolicy{Automated: true, Prune: true}), inv)
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 || len(res.Inventory) != 2 || len(res.Warnings) != 1 {
			t.Errorf("empty render: %d writes, inventory %v, warnings %q", n, refNames(res.Inventory), res.Warnings)
		}
	})

	t.Run("deleting more than half is held", func(t *testing.T) {
		inv := pruneSetup(t, e, a, nsPruneHalf, 3)
		d := desired(t, nsPruneHalf, nsPruneHalf, SyncPolicy{Automated: true, Prune: true}, configMaps(1)...)
		res, err := a.Apply(ctx, d, inv)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Held) != 2 || len(res.Pruned) != 0 || len(res.Inventory) != 3 {
			t.Errorf("held %v, pruned %v, inventory %v", refNames(res.Held), refNames(res.Pruned), refNames(res.Inventory))
		}
		if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "awaiting confirmation") {
			t.Errorf("warnings %q", res.Warnings)
		}
		for _, name := range []string{"cm1", "cm2"} {
			if _, ok := e.configMapValue(t, nsPruneHalf, name, "value"); !ok {
				t.Errorf("%s deleted", name)
			}
		}
		// Confirmed, they go.
		d.PruneConfirmed = true
		res, err = a.Apply(ctx, d, res.Inventory)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Pruned) != 2 || len(res.Inventory) != 1 {
			t.Errorf("confirmed: pruned %v, inventory %v", refNames(res.Pruned), refNames(res.Inventory))
		}
	})

	t.Run("protected kinds are held", func(t *testing.T) {
		pvc := "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n"
		inv := pruneSetup(t, e, a, nsPrunePvc, 4, pvc)
		res, err := a.Apply(ctx, desired(t, nsPrunePvc, nsPrunePvc, SyncPolicy{Automated: true, Prune: true}, configMaps(4)...), inv)
		if err != nil {
			t.Fatal(err)
		}
		if got := refNames(res.Held); len(got) != 1 || got[0] != "PersistentVolumeClaim/"+nsPrunePvc+"/data" {
			t.Errorf("held %v, want the PVC", got)
		}
		if _, err := e.client.CoreV1().PersistentVolumeClaims(nsPrunePvc).Get(ctx, "data", metav1.GetOptions{}); err != nil {
			t.Errorf("PVC gone: %v", err)
		}
	})

	t.Run("another app's object is not deleted", func(t *testing.T) {
		inv := pruneSetup(t, e, a, nsPruneOwner, 4)
		claimFor(t, e, nsPruneOwner, "cm3", "other")
		res, err := a.Apply(ctx, desired(t, nsPruneOwner, nsPruneOwner, SyncPolicy{Automated: true, Prune: true}, configMaps(3)...), inv)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Pruned) != 0 || !hasRef(res.Orphaned, "ConfigMap/"+nsPruneOwner+"/cm3") {
			t.Errorf("pruned %v, orphaned %v", refNames(res.Pruned), refNames(res.Orphaned))
		}
	})

	t.Run("prune last defers to Prune", func(t *testing.T) {
		inv := pruneSetup(t, e, a, nsPruneLast, 4)
		d := desired(t, nsPruneLast, nsPruneLast, SyncPolicy{Automated: true, Prune: true, PruneLast: true}, configMaps(3)...)
		res, err := a.Apply(ctx, d, inv)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Pruned) != 0 || !hasRef(res.Stale, "ConfigMap/"+nsPruneLast+"/cm3") {
			t.Fatalf("apply pruned %v, stale %v", refNames(res.Pruned), refNames(res.Stale))
		}
		res, err = a.Prune(ctx, d, res.Inventory)
		if err != nil {
			t.Fatal(err)
		}
		if got := refNames(res.Pruned); len(got) != 1 || len(res.Inventory) != 3 {
			t.Errorf("Prune: pruned %v, inventory %v", got, refNames(res.Inventory))
		}
	})
}

func TestDeleteInventory(t *testing.T) {
	nsDeleteInv := uniq("t-delete-inv")
	e := newEnv(t)
	a := e.applier(t)
	ctx := testCtx(t)
	keep := configMap("keep", "v1", AnnotationPrune, "disabled")
	inv := pruneSetup(t, e, a, nsDeleteInv, 2, keep, namespace(nsDeleteInv))
	res := a.DeleteInventory(ctx, nsDeleteInv, inv)
	if len(res.Pruned) != 2 || len(res.Orphaned) != 2 || len(res.Inventory) != 0 {
		t.Errorf("pruned %v, orphaned %v, inventory %v", refNames(res.Pruned), refNames(res.Orphaned), refNames(res.Inventory))
	}
	ns, err := e.client.CoreV1().Namespaces().Get(ctx, nsDeleteInv, metav1.GetOptions{})
	if err != nil || ns.Status.Phase != corev1.NamespaceActive {
		t.Errorf("namespace deleted: %v", err)
	}
	if _, ok := e.configMapValue(t, nsDeleteInv, "keep", "value"); !ok {
		t.Error("annotated ConfigMap deleted")
	}
}

// TestRelease: removing an app that preserves its objects deletes nothing and takes the app
// label off each object it claims, leaving another app's object alone.
func TestRelease(t *testing.T) {
	ns := uniq("t-release")
	e := newEnv(t)
	a := e.applier(t)
	ctx := testCtx(t)
	inv := pruneSetup(t, e, a, ns, 3)
	claimFor(t, e, ns, "cm2", "other")
	writes := e.writes.count.Load()
	res := a.Release(ctx, ns, inv)
	if len(res.Pruned) != 2 || !hasRef(res.Orphaned, "ConfigMap/"+ns+"/cm2") || len(res.Inventory) != 0 {
		t.Errorf("released %v, orphaned %v, inventory %v", refNames(res.Pruned), refNames(res.Orphaned), refNames(res.Inventory))
	}
	if n := e.writes.count.Load() - writes; n != 2 {
		t.Errorf("%d write requests, want 2 (one label removal per released object)", n)
	}
	for _, name := range []string{"cm0", "cm1", "cm2"} {
		cm, err := e.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
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
func claimFor(t *testing.T, e *env, ns, name, app string) {
	t.Helper()
	ctx := testCtx(t)
	cm, err := e.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Labels[LabelApp] = app
	if _, err := e.client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
