package kube

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

var shared = localkube.NewShared(localkube.Options{Name: "kube"})

func TestMain(m *testing.M) { os.Exit(shared.Main(m)) }

var seq atomic.Int64

func testClient(t *testing.T) *Client {
	t.Helper()
	c, err := NewForConfig(shared.Clusters(t)[0].Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestSecrets: the typed client reads and writes core/v1 objects, and its errors are the API
// server's, as its callers check them.
func TestSecrets(t *testing.T) {
	c, ctx := testClient(t), testContext(t)
	ns := fmt.Sprintf("kube-secrets-%d", seq.Add(1)) // -count runs again on the same cluster
	if _, err := c.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create of a namespace: %v, want AlreadyExists", err)
	}
	secrets := c.Secrets(ns)
	if _, err := secrets.Get(ctx, "s", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get of a missing secret: %v, want NotFound", err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Labels: map[string]string{"k": "v"}}, Data: map[string][]byte{"a": []byte("1")}}
	if _, err := secrets.Create(ctx, s, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.Get(ctx, "s", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a dry-run create left a secret (get: %v)", err)
	}
	made, err := secrets.Create(ctx, s, metav1.CreateOptions{})
	if err != nil || made.ResourceVersion == "" || string(made.Data["a"]) != "1" {
		t.Fatalf("create: %v, %+v", err, made)
	}
	got, err := secrets.Get(ctx, "s", metav1.GetOptions{})
	if err != nil || got.UID != made.UID {
		t.Fatalf("get: %v, %+v", err, got)
	}
	got.Data["a"] = []byte("2")
	updated, err := secrets.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil || string(updated.Data["a"]) != "2" {
		t.Fatalf("update: %v, %+v", err, updated)
	}
	if _, err := secrets.Update(ctx, got, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("update at an old resourceVersion: %v, want Conflict", err)
	}
	list, err := secrets.List(ctx, metav1.ListOptions{LabelSelector: "k=v"})
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "s" {
		t.Fatalf("list: %v, %+v", err, list)
	}
	if err := secrets.Delete(ctx, "s", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := secrets.Delete(ctx, "s", metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("second delete: %v, want NotFound", err)
	}
	if _, err := c.Events(ns).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: "e-"},
		InvolvedObject: corev1.ObjectReference{Kind: "Secret", Namespace: ns, Name: "s", APIVersion: "v1"},
		Reason:         "Test", Message: "m", Type: corev1.EventTypeNormal,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
