package syncer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/testwait"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSecondAppDoesNotTakeAnotherAppsObject: two apps render the same ConfigMap. The first
// keeps it; the second's sync fails naming both apps and the object, without writing it, and
// is retried: once the first app stops rendering (and prunes) it, the second one creates it.
func TestSecondAppDoesNotTakeAnotherAppsObject(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-two-apps")
	e.CreateNamespace(t, ns)
	c, rec := startController(t, e, kubetest.Uniq("t-agent-two-apps"))
	policy := SyncPolicy{Automated: true, Prune: true, SelfHeal: true}
	first := desired(t, "first", ns, policy, kubetest.ConfigMap("shared", "from-first"), kubetest.ConfigMap("first-own", "v1"))
	c.SetDesired(first)
	rec.waitStatus(t, "first", time.Minute, "first Synced", func(s AppStatus) bool { return s.Sync == SyncSynced })

	c.SetDesired(desired(t, "second", ns, policy, kubetest.ConfigMap("shared", "from-second"), kubetest.ConfigMap("second-own", "v1")))
	want := []string{`apps "first" and "second"`, "ConfigMap/" + ns + "/shared"}
	s := rec.waitStatus(t, "second", time.Minute, "second's sync failed", func(s AppStatus) bool {
		return strings.Contains(s.Message, "failed")
	})
	for _, w := range want {
		if !strings.Contains(s.Message, w) {
			t.Errorf("second's status message %q does not name %s", s.Message, w)
		}
	}
	if s.Sync == SyncSynced {
		t.Errorf("second reported %s while its object belongs to first", s.Sync)
	}
	rec.mu.Lock()
	nacked := false
	for _, n := range rec.nacks {
		if strings.Contains(n, want[0]) && strings.Contains(n, want[1]) {
			nacked = true
		}
	}
	rec.mu.Unlock()
	if !nacked {
		t.Error("second's revision was not nacked naming both apps and the object")
	}
	ctx := kubetest.Ctx(t)
	cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, "shared", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels[apply.LabelApp] != "first" || cm.Data["value"] != "from-first" {
		t.Fatalf("shared ConfigMap labelled %q holding %q, want first's", cm.Labels[apply.LabelApp], cm.Data["value"])
	}
	if _, ok := e.ConfigMapValue(t, ns, "second-own", "value"); ok {
		t.Error("second's own ConfigMap was written although its sync failed")
	}
	// The first app is not disturbed: no drift, still Synced.
	rec.waitStatus(t, "first", 30*time.Second, "first still Synced", func(s AppStatus) bool { return s.Sync == SyncSynced && len(s.Drift) == 0 })

	// The first app lets go of it (and prunes it): the retry of the second one takes over.
	first2 := desired(t, "first", ns, policy, kubetest.ConfigMap("first-own", "v1"))
	first2.Generation = 2
	c.SetDesired(first2)
	testwait.For(t, 2*time.Minute, "shared ConfigMap the second app's", func(ctx context.Context) (bool, error) {
		cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, "shared", metav1.GetOptions{})
		return err == nil && cm.Labels[apply.LabelApp] == "second" && cm.Data["value"] == "from-second", nil
	})
	rec.waitStatus(t, "second", time.Minute, "second Synced", func(s AppStatus) bool { return s.Sync == SyncSynced })
}
