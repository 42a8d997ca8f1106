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
	"k8s.io/client-go/rest"

	"github.com/flotilla-dev/flotilla/agent/internal/kube"
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
func stateSecrets(t *testing.T, ctx context.Context, cs *kube.Client, ns, app string) map[string]*corev1.Secret {
	t.Helper()
	list, err := cs.Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelAppState + "=" + AppLabelValue(app)})
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
			name = PartName("shop", head.Annotations[AnnotationPartSet], i)
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
	before := wc.Count.Load()
	for _, s := range []*Store{st, loader, NewStore(cs, ns)} {
		if err := s.Save(ctx, bigState("shop", 6<<20, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if n := wc.Count.Load() - before; n != 0 {
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
	secrets := cs.Secrets(ns)
	head, err := secrets.Get(ctx, SecretName("shop"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	set := head.Annotations[AnnotationPartSet]
	part, err := secrets.Get(ctx, PartName("shop", set, 2), metav1.GetOptions{})
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

	if err := secrets.Delete(ctx, PartName("shop", set, 1), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err = NewStore(cs, ns).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), PartName("shop", set, 1)) || got["shop"] != nil {
		t.Errorf("with a part missing: loaded %v, error %v; want an error naming %s", keys(got), err, PartName("shop", set, 1))
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

// faultMode is how a faultTransport fails the write it is armed for.
type faultMode int

const (
	// crash: that write and every later one fail without reaching the API server (the agent
	// died before sending it).
	crash faultMode = iota
	// failOne: only that write fails; later ones pass (a transient error).
	failOne
	// lostReply: that write reaches the API server but its reply is lost, and every later
	// write fails (the agent died while the server wrote).
	lostReply
	// cancelSave: the Save's context is cancelled as that write is sent.
	cancelSave
)

func (m faultMode) String() string {
	return [...]string{"crash", "fail one", "lost reply", "cancel"}[m]
}

// fault arms a faultTransport. Save runs in the test's goroutine, and so do the round trips
// of its requests: only allow needs to be atomic (cutClient's callers set it directly).
type fault struct {
	allow  atomic.Int64 // writes that pass before the fault
	mode   faultMode
	cancel context.CancelFunc
	before func() // called before every write request, when set
	hit    bool   // the fault struck
}

// arm lets n writes pass, then injects the fault of mode.
func (f *fault) arm(n int, mode faultMode, cancel context.CancelFunc) {
	f.mode, f.cancel, f.hit = mode, cancel, false
	f.allow.Store(int64(n))
}

// disarm lets every write pass again and reports whether the fault struck.
func (f *fault) disarm() bool {
	f.allow.Store(1 << 40)
	f.mode, f.cancel = crash, nil
	return f.hit
}

// faultTransport injects f's fault into the write requests that pass through it.
type faultTransport struct {
	next http.RoundTripper
	f    *fault
}

var errCut = errors.New("cut: the agent died here")

func (c faultTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return c.next.RoundTrip(r)
	}
	f := c.f
	if f.before != nil {
		f.before()
	}
	n := f.allow.Add(-1)
	if n >= 0 || (f.mode == failOne && n < -1) {
		return c.next.RoundTrip(r)
	}
	f.hit = true
	switch f.mode {
	case lostReply:
		if n == -1 {
			if resp, err := c.next.RoundTrip(r); err == nil {
				_ = resp.Body.Close()
			}
		}
	case cancelSave:
		f.cancel()
		return c.next.RoundTrip(r) // its context is the Save's, now cancelled
	}
	return nil, errCut
}

// faultClient returns a clientset for the shared cluster whose writes pass through a
// faultTransport, unarmed.
func faultClient(t *testing.T) (*kube.Client, *fault) {
	t.Helper()
	cfg := rest.CopyConfig(shared.Clusters(t)[0].Config)
	f := &fault{}
	f.disarm()
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return faultTransport{next: rt, f: f} })
	cfg.QPS, cfg.Burst = -1, 0
	cs, err := kube.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, f
}

// cutClient returns a clientset that passes as many writes as the returned counter allows,
// then fails them all: a crash in the middle of a Save.
func cutClient(t *testing.T) (*kube.Client, *atomic.Int64) {
	cs, f := faultClient(t)
	return cs, &f.allow
}

// interruptions are the state changes TestInterruptedSave cuts short.
var interruptions = []struct {
	name     string
	old, new *AppState
}{
	{"large over large", bigState("shop", 1<<20, 10), bigState("shop", 1<<20, 11)},
	{"small over large", bigState("shop", 1<<20, 12), sample("shop")},
	{"large over small", sample("shop"), bigState("shop", 1<<20, 13)},
}

// TestInterruptedSave fails the first, second, ... write of a Save in every way a write can
// fail (the agent dies before or after the API server wrote, a transient error, the Save's
// context cancelled), until a Save meets no fault. After each, a fresh reader loads the
// complete old state or the complete new one, never an error or nothing; a Save that
// succeeded left the new one; and the next Save, from a Store that knows nothing, leaves no
// surplus parts behind.
func TestInterruptedSave(t *testing.T) {
	clean, _ := client(t)
	for _, tt := range interruptions {
		for _, mode := range []faultMode{crash, failOne, lostReply, cancelSave} {
			t.Run(tt.name+"/"+mode.String(), func(t *testing.T) {
				newParts := (compressedSize(t, tt.new) + MaxPartSize - 1) / MaxPartSize
				cut := 0
				for ; ; cut++ {
					cs, f := faultClient(t)
					ns := uniq("state-cut")
					ctx := ctx(t)
					st := NewStore(cs, ns)
					if err := st.Save(ctx, tt.old); err != nil {
						t.Fatal(err)
					}
					saveCtx, cancel := context.WithCancel(ctx)
					f.arm(cut, mode, cancel)
					err := st.Save(saveCtx, tt.new)
					cancel()
					hit := f.disarm()

					got, loadErr := NewStore(clean, ns).Load(ctx)
					if loadErr != nil {
						t.Fatalf("fault at write %d: Load: %v; want the old or the new state", cut+1, loadErr)
					}
					switch s := got["shop"]; {
					case reflect.DeepEqual(s, tt.new):
					case reflect.DeepEqual(s, tt.old):
						if err == nil {
							t.Fatalf("fault at write %d: Save succeeded, Load returned the old state", cut+1)
						}
					case s == nil:
						t.Fatalf("fault at write %d: Load found no state", cut+1)
					default:
						t.Fatalf("fault at write %d: Load returned revision %q, neither the old state nor the new", cut+1, s.Revision)
					}

					// Whatever the fault left, the next Save writes the new state and leaves
					// no surplus parts, even from a Store that knows nothing.
					if err := NewStore(cs, ns).Save(ctx, tt.new); err != nil {
						t.Fatal(err)
					}
					if secs := stateSecrets(t, ctx, clean, ns, "shop"); len(secs) != newParts {
						t.Fatalf("fault at write %d, then saved again: state Secrets %v, want %d", cut+1, names(secs), newParts)
					}
					if !hit {
						break // this Save ran to its end: every one of its writes has failed once
					}
				}
				t.Logf("a Save of %d parts over %d makes %d writes; each failed in turn", newParts,
					(compressedSize(t, tt.old)+MaxPartSize-1)/MaxPartSize, cut)
			})
		}
	}
}

// TestSaveReaderSeesOldOrNew loads the state from another client before and after every
// write a Save makes: a reader always finds the complete old state or the complete new one.
func TestSaveReaderSeesOldOrNew(t *testing.T) {
	clean, _ := client(t)
	for _, tt := range interruptions {
		t.Run(tt.name, func(t *testing.T) {
			cs, f := faultClient(t)
			ns := uniq("state-reader")
			ctx := ctx(t)
			st := NewStore(cs, ns)
			if err := st.Save(ctx, tt.old); err != nil {
				t.Fatal(err)
			}
			var reads, sawNew int
			f.before = func() {
				reads++
				got, err := NewStore(clean, ns).Load(ctx)
				switch s := got["shop"]; {
				case err != nil:
					t.Errorf("read %d: Load: %v", reads, err)
				case reflect.DeepEqual(s, tt.new):
					sawNew++
				case !reflect.DeepEqual(s, tt.old):
					t.Errorf("read %d: Load returned %v, neither the old state nor the new", reads, s != nil)
				case sawNew > 0:
					t.Errorf("read %d: the old state again after the new one", reads)
				}
			}
			if err := st.Save(ctx, tt.new); err != nil {
				t.Fatal(err)
			}
			f.before = nil
			if got, err := NewStore(clean, ns).Load(ctx); err != nil || !reflect.DeepEqual(got["shop"], tt.new) {
				t.Fatalf("after the Save: %v", err)
			}
			if reads < 2 {
				t.Fatalf("the Save made %d writes; the test needs a state of several parts", reads)
			}
			t.Logf("%d reads during the Save, %d of them saw the new state", reads, sawNew)
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
		for _, set := range []string{"", partSet(strings.Repeat("0123456789abcdef", 4))} {
			for _, i := range []int{1, maxParts} {
				p := PartName(app, set, i)
				if h, gotSet, n, ok := splitPartName(p); !ok || h != head || gotSet != set || n != i {
					t.Errorf("splitPartName(%q) = %q, %q, %d, %v", p, h, gotSet, n, ok)
				}
				if errs := validation.IsDNS1123Subdomain(p); len(errs) > 0 {
					t.Errorf("PartName(%q, %q, %d) = %q: %v", app, set, i, p, errs)
				}
			}
		}
		if v := AppLabelValue(app); len(validation.IsValidLabelValue(v)) > 0 {
			t.Errorf("AppLabelValue(%q) = %q: %v", app, v, validation.IsValidLabelValue(v))
		}
	}
	if AppLabelValue("shop") != "shop" || PartName("shop", "", 2) != "flotilla-app-shop.2" || PartName("shop", "0a1b", 2) != "flotilla-app-shop.0a1b.2" {
		t.Errorf("AppLabelValue(shop) = %q, PartName(shop, 2) = %q, %q", AppLabelValue("shop"), PartName("shop", "", 2), PartName("shop", "0a1b", 2))
	}
	for _, name := range []string{SecretName("shop-1"), "flotilla-app-shop..2", "flotilla-app-shop.a.b.2", "flotilla-app-shop.02"} {
		if _, _, _, ok := splitPartName(name); ok {
			t.Errorf("%q parses as a part name", name)
		}
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
	if _, err := cs.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	legacy := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SecretName("shop"), Namespace: ns, Labels: map[string]string{LabelState: LabelStateApp}},
		Type:       SecretType,
		Data:       map[string][]byte{DataKey: compress(doc)},
	}
	if _, err := cs.Secrets(ns).Create(ctx, legacy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st := NewStore(cs, ns)
	got, err := st.Load(ctx)
	if err != nil || !reflect.DeepEqual(got["shop"], old) {
		t.Fatalf("Load = %v, %v; want the state", keys(got), err)
	}
	before := wc.Count.Load()
	if err := st.Save(ctx, sample("shop")); err != nil {
		t.Fatal(err)
	}
	if err := NewStore(cs, ns).Save(ctx, sample("shop")); err != nil {
		t.Fatal(err)
	}
	if n := wc.Count.Load() - before; n != 0 {
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
