package state

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/flotilla-dev/flotilla/agent/internal/kube"
	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

var shared = localkube.NewShared(localkube.Options{Name: "state"})

func TestMain(m *testing.M) { os.Exit(shared.Main(m)) }

// client returns a clientset for the shared cluster that counts its writes (kubetest).
func client(t *testing.T) (*kube.Client, *kubetest.Writes) {
	t.Helper()
	e := kubetest.NewEnv(t, shared.Clusters(t)[0])
	cs, err := kube.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs, e.Writes
}

var uniqSeq atomic.Int64

// uniq returns a namespace name for one test run (tests may run again on the same cluster
// with -count).
func uniq(base string) string { return fmt.Sprintf("%s-%d", base, uniqSeq.Add(1)) }

// ctx bounds a test's calls: generously, as a bound on a hang and not a figure (make test
// runs every package's control plane at once on two cores, and a 2 MiB state's Save under the
// race detector took most of a minute there).
func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func sample(app string) *AppState {
	bundle := []byte(`[{"apiVersion":"v1","data":{"html":"<b>&</b>"},"kind":"ConfigMap","metadata":{"name":"web","namespace":"api"}}]`)
	return &AppState{
		App: app, Generation: 7, Revision: "abc123", Digest: "sha256:00ff",
		Bundle: bundle, Namespace: "api",
		Policy:          Policy{Automated: true, Prune: true, RetryLimit: 3, RetryDuration: 5 * time.Second, RetryFactor: 2},
		Inventory:       []ObjectRef{{Version: "v1", Kind: "ConfigMap", Namespace: "api", Name: "web"}},
		HealthyRevision: "abc123", HealthyDigest: "sha256:00ff", HealthyBundle: bundle,
		AppliedAt: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	cs, _ := client(t)
	ns := uniq("state-roundtrip") // does not exist yet: Save creates it
	ctx := ctx(t)
	st := NewStore(cs, ns)
	a, b := sample("shop"), sample("billing")
	b.HealthyRevision, b.HealthyDigest, b.HealthyBundle = "old", "sha256:11", []byte(`[]`)
	b.Waves = map[string]int{"/ConfigMap/api/web": -2}                 // the sync wave it was applied in
	b.Hooks = &Hooks{Digest: "sha256:00ff", Done: []string{"PreSync"}} // hook phases done
	for _, s := range []*AppState{a, b} {
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := NewStore(cs, ns).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("loaded %d states, want 2", len(got))
	}
	for _, want := range []*AppState{a, b} {
		if !reflect.DeepEqual(got[want.App], want) {
			t.Errorf("app %s: loaded\n%+v\nwant\n%+v", want.App, got[want.App], want)
		}
	}
	sec, err := cs.Secrets(ns).Get(ctx, "flotilla-app-shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Labels[LabelState] != LabelStateApp {
		t.Errorf("state secret labels = %v", sec.Labels)
	}
}

func TestSaveUnchangedWritesNothing(t *testing.T) {
	cs, wc := client(t)
	ns := uniq("state-unchanged")
	ctx := ctx(t)
	s := sample("shop")
	if err := NewStore(cs, ns).Save(ctx, s); err != nil {
		t.Fatal(err)
	}

	// Same Store, same state.
	st := NewStore(cs, ns)
	if _, err := st.Load(ctx); err != nil {
		t.Fatal(err)
	}
	before := wc.Count.Load()
	if err := st.Save(ctx, sample("shop")); err != nil {
		t.Fatal(err)
	}
	// A fresh Store that has not loaded reads the Secret and still writes nothing.
	if err := NewStore(cs, ns).Save(ctx, sample("shop")); err != nil {
		t.Fatal(err)
	}
	if n := wc.Count.Load() - before; n != 0 {
		t.Errorf("saving an unchanged state made %d write requests, want 0", n)
	}

	// A change is written, once.
	changed := sample("shop")
	changed.Revision, changed.Generation = "def456", 8
	if err := st.Save(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if n := wc.Count.Load() - before; n != 1 {
		t.Errorf("saving a changed state twice made %d write requests, want 1", n)
	}
	got, err := NewStore(cs, ns).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got["shop"].Revision != "def456" || got["shop"].Generation != 8 {
		t.Errorf("loaded %+v, want revision def456 generation 8", got["shop"])
	}
}

// TestSaveAfterForeignWrite covers a Secret changed behind the Store's back: the Update
// conflicts and Save starts over from what the cluster holds.
func TestSaveAfterForeignWrite(t *testing.T) {
	cs, _ := client(t)
	ns := uniq("state-foreign")
	ctx := ctx(t)
	st := NewStore(cs, ns)
	if err := st.Save(ctx, sample("shop")); err != nil {
		t.Fatal(err)
	}
	other := sample("shop")
	other.Revision = "foreign"
	if err := NewStore(cs, ns).Save(ctx, other); err != nil {
		t.Fatal(err)
	}
	mine := sample("shop")
	mine.Revision = "mine"
	if err := st.Save(ctx, mine); err != nil {
		t.Fatal(err)
	}
	got, err := NewStore(cs, ns).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got["shop"].Revision != "mine" {
		t.Errorf("revision = %q, want mine", got["shop"].Revision)
	}
}

func TestDelete(t *testing.T) {
	cs, _ := client(t)
	ns := uniq("state-delete")
	ctx := ctx(t)
	st := NewStore(cs, ns)
	for _, app := range []string{"a", "b"} {
		if err := st.Save(ctx, sample(app)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "never-saved"); err != nil {
		t.Errorf("deleting absent state: %v", err)
	}
	got, err := NewStore(cs, ns).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["a"]; ok || got["b"] == nil {
		t.Errorf("after delete loaded %v, want only b", keys(got))
	}
	// Saving after a delete recreates it.
	if err := st.Save(ctx, sample("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Secrets(ns).Get(ctx, SecretName("a"), metav1.GetOptions{}); err != nil {
		t.Errorf("state of a not recreated: %v", err)
	}
}

func TestLoadSkipsCorrupt(t *testing.T) {
	cs, _ := client(t)
	ns := uniq("state-corrupt")
	ctx := ctx(t)
	st := NewStore(cs, ns)
	if err := st.Save(ctx, sample("good")); err != nil {
		t.Fatal(err)
	}
	bad := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SecretName("bad"), Namespace: ns, Labels: map[string]string{LabelState: LabelStateApp}},
		Data:       map[string][]byte{DataKey: []byte("not gzip")},
	}
	if _, err := cs.Secrets(ns).Create(ctx, bad, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	got, err := NewStore(cs, ns).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), SecretName("bad")) {
		t.Errorf("Load error = %v, want one naming %s", err, SecretName("bad"))
	}
	if got["good"] == nil || len(got) != 1 {
		t.Errorf("loaded %v, want only good", keys(got))
	}
}

func TestLoadEmptyNamespace(t *testing.T) {
	cs, _ := client(t)
	got, err := NewStore(cs, uniq("state-never-created")).Load(ctx(t))
	if err != nil || len(got) != 0 {
		t.Errorf("Load = %v, %v; want nothing, no error", keys(got), err)
	}
}

func TestSecretName(t *testing.T) {
	for _, app := range []string{"shop", "Shop_Front", strings.Repeat("x", 300), "a.b", "-x-"} {
		name := SecretName(app)
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("SecretName(%q) = %q: %v", app, name, errs)
		}
		if !strings.HasPrefix(name, SecretPrefix) {
			t.Errorf("SecretName(%q) = %q, want prefix %s", app, name, SecretPrefix)
		}
	}
	if SecretName("shop") != "flotilla-app-shop" {
		t.Errorf("SecretName(shop) = %s", SecretName("shop"))
	}
	if SecretName("Shop") == SecretName("shop-") {
		t.Error("distinct apps share a secret name")
	}
}

func keys(m map[string]*AppState) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
