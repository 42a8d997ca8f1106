package identity

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/agent/internal/kube"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

var shared = localkube.NewShared(localkube.Options{Name: "identity"})

func TestMain(m *testing.M) { os.Exit(shared.Main(m)) }

func kubeClient(t *testing.T) *kube.Client {
	t.Helper()
	client, err := kube.NewForConfig(shared.Clusters(t)[0].Config)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestEnsureNamespace(t *testing.T) {
	client, ctx := kubeClient(t), testContext(t)
	for range 2 { // the second call finds it
		if err := EnsureNamespace(ctx, client, "flotilla-ns-test"); err != nil {
			t.Fatal(err)
		}
	}
	ns, err := client.Namespaces().Get(ctx, "flotilla-ns-test", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("namespace not created: %v", err)
	}
	if ns.Labels["app.kubernetes.io/managed-by"] != "flotilla-agent" {
		t.Errorf("namespace labels %v", ns.Labels)
	}
	if err := EnsureNamespace(ctx, client, "Not_Valid"); err == nil {
		t.Error("EnsureNamespace with an invalid name: want error")
	}
}

func TestStoreSaveAndLoad(t *testing.T) {
	client, ctx := kubeClient(t), testContext(t)
	const ns = "flotilla-identity"
	if err := EnsureNamespace(ctx, client, ns); err != nil {
		t.Fatal(err)
	}
	store := NewStore(client, ns, "agent-identity")
	ca := newTestCA(t)

	if id, ok, err := store.Load(ctx); err != nil || ok || id != nil {
		t.Fatalf("Load before Save = %v, %v, %v; want nil, false, nil", id, ok, err)
	}

	first := newTestIdentity(t, ca, "prod-1", time.Now().Add(time.Hour))
	if err := store.Save(ctx, first); err != nil {
		t.Fatal(err)
	}
	assertLoads(ctx, t, store, first)
	sec, err := client.Secrets(ns).Get(ctx, "agent-identity", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Type != corev1.SecretTypeTLS {
		t.Errorf("secret type %s, want %s", sec.Type, corev1.SecretTypeTLS)
	}
	for k, want := range map[string][]byte{"tls.crt": first.CertPEM, "tls.key": first.KeyPEM, "ca.crt": first.CAPEM, "cluster": []byte("prod-1")} {
		if !bytes.Equal(sec.Data[k], want) {
			t.Errorf("secret key %s does not hold what was saved", k)
		}
	}

	// Renewal updates the Secret in place and keeps what else is in it.
	sec.Data["note"] = []byte("kept")
	sec.Annotations = map[string]string{"example.com/owner": "helm"}
	if _, err := client.Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	renewed := newTestIdentity(t, ca, "prod-1", time.Now().Add(2*time.Hour))
	if err := store.Save(ctx, renewed); err != nil {
		t.Fatal(err)
	}
	assertLoads(ctx, t, store, renewed)
	sec, err = client.Secrets(ns).Get(ctx, "agent-identity", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["note"]) != "kept" || sec.Annotations["example.com/owner"] != "helm" {
		t.Errorf("update dropped foreign data or annotations: %v %v", sec.Data["note"], sec.Annotations)
	}

	// A broken identity is refused and leaves the stored one alone.
	broken := *renewed
	broken.KeyPEM = first.KeyPEM
	err = store.Save(ctx, &broken)
	if err == nil {
		t.Fatal("Save of a certificate with the wrong key: want error")
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("error %q quotes the key", err)
	}
	if err := store.Save(ctx, &Identity{KeyPEM: renewed.KeyPEM, CertPEM: renewed.CertPEM, CAPEM: renewed.CAPEM}); err == nil {
		t.Error("Save without cluster: want error")
	}
	assertLoads(ctx, t, store, renewed)
}

func TestStoreErrors(t *testing.T) {
	client, ctx := kubeClient(t), testContext(t)
	const ns = "flotilla-identity-errors"
	if err := EnsureNamespace(ctx, client, ns); err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t)
	id := newTestIdentity(t, ca, "prod-1", time.Now().Add(time.Hour))

	// A Secret of another type cannot become ours (the type is immutable).
	opaque := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "opaque", Namespace: ns}, Data: map[string][]byte{"x": []byte("y")}}
	if _, err := client.Secrets(ns).Create(ctx, opaque, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := NewStore(client, ns, "opaque").Save(ctx, id); err == nil || !strings.Contains(err.Error(), "type") {
		t.Errorf("Save over an Opaque secret: %v, want a type error", err)
	}

	// A Secret without our keys does not load.
	partial := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "partial", Namespace: ns},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": id.CertPEM, "tls.key": id.KeyPEM},
	}
	if _, err := client.Secrets(ns).Create(ctx, partial, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, ok, err := NewStore(client, ns, "partial").Load(ctx)
	if err == nil || ok {
		t.Errorf("Load of a secret without ca.crt and cluster = %v, %v; want error", ok, err)
	} else if !strings.Contains(err.Error(), "ca.crt") || !strings.Contains(err.Error(), "cluster") {
		t.Errorf("error %q does not name the missing keys", err)
	}

	// Saving into a namespace that does not exist fails.
	if err := NewStore(client, "flotilla-missing", "agent-identity").Save(ctx, id); err == nil {
		t.Error("Save into a missing namespace: want error")
	}
}

func assertLoads(ctx context.Context, t *testing.T, store *Store, want *Identity) {
	t.Helper()
	got, ok, err := store.Load(ctx)
	if err != nil || !ok {
		t.Fatalf("Load = %v, %v", ok, err)
	}
	if !bytes.Equal(got.KeyPEM, want.KeyPEM) || !bytes.Equal(got.CertPEM, want.CertPEM) ||
		!bytes.Equal(got.CAPEM, want.CAPEM) || got.Cluster != want.Cluster {
		t.Errorf("Load returned %v, want %v", got, want)
	}
	if _, err := got.TLSConfig("hub.example"); err != nil {
		t.Errorf("loaded identity is unusable: %v", err)
	}
}
