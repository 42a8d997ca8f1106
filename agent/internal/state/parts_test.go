package state

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// bigState is an app state whose bundle carries n random bytes (base64 in a ConfigMap), so
// that it compresses to about n bytes.
func bigState(app string, n int, seed uint64) *AppState {
	raw := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(raw)
	bundle := fmt.Sprintf(`[{"apiVersion":"v1","data":{"blob":%q},"kind":"ConfigMap","metadata":{"name":"big","namespace":"big"}}]`,
		base64.StdEncoding.EncodeToString(raw))
	st := sample(app)
	st.Generation, st.Revision, st.Digest = seed, fmt.Sprintf("rev-%d", seed), fmt.Sprintf("sha256:%d", seed)
	st.Bundle = []byte(bundle)
	st.HealthyRevision, st.HealthyDigest, st.HealthyBundle = st.Revision, st.Digest, st.Bundle
	return st
}

// compressedSize is the size of st's stored form, all parts together.
func compressedSize(t *testing.T, st *AppState) int {
	t.Helper()
	doc, err := encode(st)
	if err != nil {
		t.Fatal(err)
	}
	return len(compress(doc))
}

// stateSecrets returns the Secrets of app's state, by name.
func stateSecrets(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, app string) map[string]*corev1.Secret {
	t.Helper()
	list, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelAppState + "=" + AppLabelValue(app)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*corev1.Secret{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out
}

func names(m map[string]*corev1.Secret) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestSaveLoadLargeState(t *testing.T) {
	cs, wc := client(t)
	ns := uniq("state-large")
	ctx := ctx(t)
	big := bigState("shop", 6<<20, 1)
	size := compressedSize(t, big)
	wantParts := (size + MaxPartSize - 1) / MaxPartSize
	if wantParts < 5 {
		t.Fatalf("compressed state is %d bytes, %d parts: not the large state this test is about", size, wantParts)
	}
	st := NewStore(cs, ns)
	if err := st.Save(ctx, big); err != nil {
		t.Fatal(err)
	}
	// An app whose head name is what a dash-numbered part of "shop" would be called.
	if err := st.Save(ctx, sample("shop-1")); err != nil {
		t.Fatal(err)
	}

	secs := stateSecrets(t, ctx, cs, ns, "shop")
	if len(secs) != wantParts {
		t.Fatalf("state of %d compressed bytes is in %d Secrets %v, want %d", size, len(secs), names(secs), wantParts)
	}
	head := secs[SecretName("shop")]
	if head == nil || head.Annotations[AnnotationParts] != strconv.Itoa(wantParts) || len(head.Annotations[AnnotationSHA256]) != 64 {
		t.Fatalf("head %s: %v", SecretName("shop"), head)
	}
	total := 0
	for i := range wantParts {
		name := SecretName("shop")
		if i > 0 {
			name = PartName("shop", i)
		}
		sec := secs[name]
		if sec == nil {
			t.Fatalf("no Secret %s among %v", name, names(secs))
		}
		n := 0
		for _, v := range sec.Data {
			n += len(v)
		}
		if n >= 900<<10 {
			t.Errorf("Secret %s holds %d bytes, want < 900 KiB", name, n)
		}
		if sec.Labels[LabelState] != LabelStateApp || sec.Labels[LabelAppState] != "shop" {
			t.Errorf("Secret %s labels = %v", name, sec.Labels)
		}
		total += len(sec.Data[DataKey])
	}
	if total != size {
		t.Errorf("parts hold %d bytes, want %d", total, size)
	}
	t.Logf("state of %d random bytes: %d bytes compressed in %d Secrets", 6<<20, size, len(secs))

	loader := NewStore(cs, ns)
	got, err := loader.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["shop-1"] == nil {
		t.Fatalf("loaded %v, want shop and shop-1", keys(got))
	}
	if !reflect.DeepEqual(got["shop"], big) {
		t.Fatalf("loaded state differs from the saved one (revision %q, bundle %d bytes)", got["shop"].Revision, len(got["shop"].Bundle))
	}

	// Steady state: the same Store, a Store that loaded, and a fresh Store write nothing.
	before := wc.count.Load()
	for _, s := range []*Store{st, loader, NewStore(cs, ns)} {
		if err := s.Save(ctx, bigState("shop", 6<<20, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if n := wc.count.Load() - before; n != 0 {
		t.Errorf("saving an unchanged large state made %d write requests, want 0", n)
	}
}

func TestSaveShrinkDeletesParts(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		t.Run(fmt.Sprintf("fresh store %v", fresh), func(t *testing.T) {
			cs, _ := client(t)
			ns := uniq("state-shrink")
			ctx := ctx(t)
			st := NewStore(cs, ns)
			if err := st.Save(ctx, bigState("shop", 2<<20, 2)); err != nil {
				t.Fatal(err)
			}
			if n := len(stateSecrets(t, ctx, cs, ns, "shop")); n < 3 {
				t.Fatalf("large state in %d Secrets, want at least 3", n)
			}
			if fresh {
				st = NewStore(cs, ns)
			}
			small := sample("shop")
			if err := st.Save(ctx, small); err != nil {
				t.Fatal(err)
			}
			if secs := stateSecrets(t, ctx, cs, ns, "shop"); len(secs) != 1 || secs[SecretName("shop")] == nil {
				t.Fatalf("after shrinking, state Secrets are %v, want only %s", names(secs), SecretName("shop"))
			}
			got, err := NewStore(cs, ns).Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got["shop"], small) {
				t.Fatalf("loaded %+v, want the small state", got["shop"])
			}
			// And it grows again.
			big := bigState("shop", 1<<20, 3)
			if err := st.Save(ctx, big); err != nil {
				t.Fatal(err)
			}
			if got, err := NewStore(cs, ns).Load(ctx); err != nil || !reflect.DeepEqual(got["shop"], big) {
				t.Fatalf("after growing again: %v", err)
			}
		})
	}
}

func TestLoadReportsCorruptPart(t *testing.T) {
	cs, _ := client(t)
	ns := uniq("state-corrupt-part")
	ctx := ctx(t)
	st := NewStore(cs, ns)
	if err := st.Save(ctx, bigState("shop", 2<<20, 4)); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, sample("good")); err != nil {
		t.Fatal(err)
	}
	secrets := cs.CoreV1().Secrets(ns)
	part, err := secrets.Get(ctx, PartName("shop", 2), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	part.Data[DataKey][1000] ^= 0xff
	if _, err := secrets.Update(ctx, part, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := NewStore(cs, ns).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), SecretName("shop")) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("Load error = %v, want a checksum error naming %s", err, SecretName("shop"))
	}
	if got["shop"] != nil || got["good"] == nil {
		t.Errorf("loaded %v, want only good", keys(got))
	}

	if err := secrets.Delete(ctx, PartName("shop", 1), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err = NewStore(cs, ns).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), PartName("shop", 1)) || got["shop"] != nil {
		t.Errorf("with a part missing: loaded %v, error %v; want an error naming %s", keys(got), err, PartName("shop", 1))
	}

	// A Store that finds the state unreadable writes it anew.
	repaired := bigState("shop", 2<<20, 5)
	if err := NewStore(cs, ns).Save(ctx, repaired); err != nil {
		t.Fatal(err)
	}
	if got, err := NewStore(cs, ns).Load(ctx); err != nil || !reflect.DeepEqual(got["shop"], repaired) {
		t.Errorf("after a new save: %v", err)
	}
}

// cutTransport passes write requests until its allowance runs out, then fails them: a crash
// in the middle of a Save.
type cutTransport struct {
	next  http.RoundTripper
	allow *atomic.Int64
}

var errCut = errors.New("cut: the agent died here")

func (c cutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if c.allow.Add(-1) < 0 {
			return nil, errCut
		}
	}
	return c.next.RoundTrip(r)
}

func cutClient(t *testing.T) (kubernetes.Interface, *atomic.Int64) {
	t.Helper()
	cfg := rest.CopyConfig(shared.Clusters(t)[0].Config)
	allow := &atomic.Int64{}
	allow.Store(1 << 40)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return cutTransport{next: rt, allow: allow} })
	cfg.QPS, cfg.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, allow
}

// TestInterruptedSave cuts a Save after every number of writes: Load then returns the old
// state, the new one, or reports the state unreadable; never anything else, and never the new
// state before its head is written.
func TestInterruptedSave(t *testing.T) {
	tests := []struct {
		name     string
		old, new *AppState
	}{
		{"large over large", bigState("shop", 2<<20, 10), bigState("shop", 2<<20, 11)},
		{"small over large", bigState("shop", 2<<20, 12), sample("shop")},
		{"large over small", sample("shop"), bigState("shop", 2<<20, 13)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newParts := (compressedSize(t, tt.new) + MaxPartSize - 1) / MaxPartSize
			for cut := 0; cut <= newParts; cut++ {
				cs, allow := cutClient(t)
				ns := uniq("state-cut")
				ctx := ctx(t)
				st := NewStore(cs, ns)
				if err := st.Save(ctx, tt.old); err != nil {
					t.Fatal(err)
				}
				allow.Store(int64(cut))
				err := st.Save(ctx, tt.new)
				allow.Store(1 << 40)
				headWritten := cut >= newParts // parts first, the head last
				if !headWritten && !errors.Is(err, errCut) {
					t.Fatalf("cut after %d writes: Save = %v, want the cut", cut, err)
				}
				got, loadErr := NewStore(cs, ns).Load(ctx)
				switch s := got["shop"]; {
				case headWritten:
					if loadErr != nil || !reflect.DeepEqual(s, tt.new) {
						t.Fatalf("cut after %d writes, the head written: Load = %v, %v; want the new state", cut, s != nil, loadErr)
					}
				case s == nil:
					if loadErr == nil {
						t.Fatalf("cut after %d writes: no state and no error", cut)
					}
				case reflect.DeepEqual(s, tt.old):
				default:
					t.Fatalf("cut after %d of %d writes: Load returned revision %q, neither the old state nor unreadable", cut, newParts, s.Revision)
				}

				// Whatever the cut left, the next Save writes the new state and leaves no
				// surplus parts, even from a Store that knows nothing.
				if err := NewStore(cs, ns).Save(ctx, tt.new); err != nil {
					t.Fatal(err)
				}
				if n := len(stateSecrets(t, ctx, cs, ns, "shop")); n != newParts {
					t.Fatalf("cut after %d writes, then saved again: %d state Secrets, want %d", cut, n, newParts)
				}
			}
		})
	}
}

// TestOrphanPartsIgnoredThenDeleted: a shrinking Save cut after its head leaves surplus parts;
// Load ignores them and the next Save, even of the same state, deletes them.
func TestOrphanPartsIgnoredThenDeleted(t *testing.T) {
	cs, allow := cutClient(t)
	ns := uniq("state-orphans")
	ctx := ctx(t)
	if err := NewStore(cs, ns).Save(ctx, bigState("shop", 2<<20, 20)); err != nil {
		t.Fatal(err)
	}
	small := sample("shop")
	allow.Store(1) // the head, not the deletions
	err := NewStore(cs, ns).Save(ctx, small)
	allow.Store(1 << 40)
	if err != nil {
		t.Fatalf("Save with the clean-up cut: %v (the state is written: want no error)", err)
	}
	if n := len(stateSecrets(t, ctx, cs, ns, "shop")); n < 3 {
		t.Fatalf("%d state Secrets after the cut, want the head and orphan parts", n)
	}
	st := NewStore(cs, ns)
	got, err := st.Load(ctx)
	if err != nil || !reflect.DeepEqual(got["shop"], small) {
		t.Fatalf("Load with orphan parts = %v, %v; want the small state, no error", keys(got), err)
	}
	if err := st.Save(ctx, sample("shop")); err != nil {
		t.Fatal(err)
	}
	if secs := stateSecrets(t, ctx, cs, ns, "shop"); len(secs) != 1 {
		t.Fatalf("after the next Save, state Secrets are %v, want only the head", names(secs))
	}
}

func TestDeleteRemovesParts(t *testing.T) {
	cs, _ := client(t)
	ns := uniq("state-delete-parts")
	ctx := ctx(t)
	st := NewStore(cs, ns)
	if err := st.Save(ctx, bigState("shop", 2<<20, 30)); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, sample("shop-1")); err != nil {
		t.Fatal(err)
	}
	if err := NewStore(cs, ns).Delete(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if secs := stateSecrets(t, ctx, cs, ns, "shop"); len(secs) != 0 {
		t.Fatalf("after Delete, state Secrets %v remain", names(secs))
	}
	if got, err := NewStore(cs, ns).Load(ctx); err != nil || len(got) != 1 || got["shop-1"] == nil {
		t.Fatalf("after Delete: loaded %v, %v; want only shop-1", keys(got), err)
	}
}

func TestPartNames(t *testing.T) {
	for _, app := range []string{"shop", "shop-1", "Shop_Front", strings.Repeat("x", 300), "a.b", "-x-", "___"} {
		head := SecretName(app)
		if strings.Contains(head, ".") {
			t.Errorf("SecretName(%q) = %q holds a dot", app, head)
		}
		for _, i := range []int{1, maxParts} {
			p := PartName(app, i)
			if h, n, ok := splitPartName(p); !ok || h != head || n != i {
				t.Errorf("splitPartName(%q) = %q, %d, %v", p, h, n, ok)
			}
		}
		if v := AppLabelValue(app); len(validation.IsValidLabelValue(v)) > 0 {
			t.Errorf("AppLabelValue(%q) = %q: %v", app, v, validation.IsValidLabelValue(v))
		}
	}
	if AppLabelValue("shop") != "shop" || PartName("shop", 2) != "flotilla-app-shop.2" {
		t.Errorf("AppLabelValue(shop) = %q, PartName(shop, 2) = %q", AppLabelValue("shop"), PartName("shop", 2))
	}
	if _, _, ok := splitPartName(SecretName("shop-1")); ok {
		t.Error("a head name parses as a part name")
	}
}

// TestLoadStateWithoutParts reads a state Secret written before states had parts (no count,
// no checksum, no app label) and keeps it without writing until the state changes.
func TestLoadStateWithoutParts(t *testing.T) {
	cs, wc := client(t)
	ns := uniq("state-legacy")
	ctx := ctx(t)
	old := sample("shop")
	doc, err := encode(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	legacy := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SecretName("shop"), Namespace: ns, Labels: map[string]string{LabelState: LabelStateApp}},
		Type:       SecretType,
		Data:       map[string][]byte{DataKey: compress(doc)},
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, legacy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st := NewStore(cs, ns)
	got, err := st.Load(ctx)
	if err != nil || !reflect.DeepEqual(got["shop"], old) {
		t.Fatalf("Load = %v, %v; want the state", keys(got), err)
	}
	before := wc.count.Load()
	if err := st.Save(ctx, sample("shop")); err != nil {
		t.Fatal(err)
	}
	if err := NewStore(cs, ns).Save(ctx, sample("shop")); err != nil {
		t.Fatal(err)
	}
	if n := wc.count.Load() - before; n != 0 {
		t.Errorf("saving the unchanged state made %d writes, want 0", n)
	}
	big := bigState("shop", 1<<20, 40)
	if err := st.Save(ctx, big); err != nil {
		t.Fatal(err)
	}
	if got, err := NewStore(cs, ns).Load(ctx); err != nil || !reflect.DeepEqual(got["shop"], big) {
		t.Fatalf("after a change: %v", err)
	}
}
