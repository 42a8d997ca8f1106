package identity

import (
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/agent/internal/kube"
)

// TestCheckWritable: the dry run writes nothing, passes where Save would succeed and fails,
// naming the Secret, where the agent may not create it (no RBAC) — before any token is spent.
func TestCheckWritable(t *testing.T) {
	client, ctx := kubeClient(t), testContext(t)
	const ns = "flotilla-identity-check"
	if err := EnsureNamespace(ctx, client, ns); err != nil {
		t.Fatal(err)
	}
	if err := NewStore(client, ns, "agent-identity").CheckWritable(ctx); err != nil {
		t.Fatalf("CheckWritable with admin rights: %v", err)
	}
	if _, err := client.Secrets(ns).Get(ctx, "agent-identity", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the dry run left a Secret behind (get: %v)", err)
	}
	cfg := *shared.Clusters(t)[0].Config
	cfg.Impersonate.UserName = "someone-without-rbac"
	nobody, err := kube.NewForConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = NewStore(nobody, ns, "agent-identity").CheckWritable(ctx)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), ns+"/agent-identity") {
		t.Fatalf("CheckWritable without rights: %v, want Forbidden naming the Secret", err)
	}
}

// TestSaveRetrying: a save that fails (its namespace does not exist yet) is retried until it
// succeeds; when the retries are spent the last error is returned.
func TestSaveRetrying(t *testing.T) {
	client, ctx := kubeClient(t), testContext(t)
	const ns = "flotilla-identity-retry"
	id := newTestIdentity(t, newTestCA(t), "prod-1", time.Now().Add(time.Hour))
	st := NewStore(client, ns, "agent-identity")
	fast := wait.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 40, Cap: 200 * time.Millisecond}

	failures := 0
	err := st.SaveRetrying(ctx, id, fast, func(err error) {
		failures++
		if failures == 2 { // the namespace appears after two failed attempts
			if err := EnsureNamespace(ctx, client, ns); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil || failures != 2 {
		t.Fatalf("SaveRetrying = %v after %d failures, want success after 2", err, failures)
	}
	assertLoads(ctx, t, st, id)

	failures = 0
	err = NewStore(client, "flotilla-never-created", "agent-identity").SaveRetrying(ctx, id,
		wait.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 3}, func(error) { failures++ })
	if err == nil || !apierrors.IsNotFound(err) || failures != 3 {
		t.Fatalf("SaveRetrying into a namespace that never appears = %v after %d failures, want NotFound after 3", err, failures)
	}
}
