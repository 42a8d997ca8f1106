package apply

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestUnchangedObjectsCostNoRequests: with the watches running, the first apply of n objects
// dry-runs and writes each once; applying the same revision again costs no request at all;
// a revision that changes one object dry-runs and writes that one; an object changed by
// someone else is dry-run again (and found drifted) while the others are not.
func TestUnchangedObjectsCostNoRequests(t *testing.T) {
	const n = 20
	e := newEnv(t)
	ns := kubetest.Uniq("t-confirm")
	e.CreateNamespace(t, ns)
	a, ctx := runningApplier(t, e)

	count := func(fn func()) (writes, dryRuns int64) {
		w0, d0 := e.Writes.Count.Load(), e.Writes.DryRuns.Load()
		fn()
		return e.Writes.Count.Load() - w0, e.Writes.DryRuns.Load() - d0
	}
	// synced waits until the watch cache shows every ConfigMap as the API server has it.
	cmGVR := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	synced := func(what string) {
		testwait.For(t, 30*time.Second, what, func(ctx context.Context) (bool, error) {
			for i := range n {
				cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, fmt.Sprintf("cm%d", i), metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				obj, found, ok := a.cache.lookup(cmGVR, ns, cm.Name)
				if !ok || !found || obj.GetResourceVersion() != cm.ResourceVersion {
					return false, nil
				}
			}
			return true, nil
		})
	}

	d := revision(t, "confirm", ns, Policy{}, kubetest.ConfigMaps(n)...)
	var res *ChangeSet
	var err error
	if w, dr := count(func() { res, err = a.Apply(ctx, d, nil) }); err != nil || w != n || dr != n {
		t.Fatalf("first apply: %d writes, %d dry-runs, err %v; want %d of each", w, dr, err, n)
	}
	synced("the cache at the applied versions")

	if w, dr := count(func() { res, err = a.Apply(ctx, d, res.Inventory) }); err != nil || w != 0 || dr != 0 {
		t.Errorf("the same revision again: %d writes, %d dry-runs, err %v; want none", w, dr, err)
	}
	if got := res.Count(Unchanged); got != n {
		t.Errorf("the same revision again: %d objects Unchanged, want %d", got, n)
	}

	docs := kubetest.ConfigMaps(n)
	docs[3] = kubetest.ConfigMap("cm3", "v2")
	d2 := revision(t, "confirm", ns, Policy{}, docs...)
	if w, dr := count(func() { res, err = a.Apply(ctx, d2, res.Inventory) }); err != nil || w != 1 || dr != 1 {
		t.Errorf("one object changed: %d writes, %d dry-runs, err %v; want 1 of each", w, dr, err)
	}
	synced("the cache at cm3's new version")
	if v, _ := e.ConfigMapValue(t, ns, "cm3", "value"); v != "v2" {
		t.Errorf("cm3 = %q, want v2", v)
	}

	if _, err := e.Client.CoreV1().ConfigMaps(ns).Patch(ctx, "cm7", types.MergePatchType, []byte(`{"data":{"value":"edited"}}`),
		metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	synced("the cache at cm7's edit")
	var drift []Drift
	if w, dr := count(func() { drift, err = a.Drift(ctx, d2, nil) }); err != nil || w != 0 || dr != 1 {
		t.Errorf("drift check after an edit of one: %d writes, %d dry-runs, err %v; want 0 and 1", w, dr, err)
	}
	if len(drift) != 1 || drift[0].Object.Name != "cm7" || drift[0].Type != DriftModified {
		t.Errorf("drift = %+v, want cm7 modified", drift)
	}
}
