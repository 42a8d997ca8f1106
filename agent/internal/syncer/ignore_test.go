package syncer

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/ignore"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestSelfHealLeavesIgnoredFields: with self-heal on, a field spec.ignoreDifferences names is
// edited in the cluster: it is not drift, the app stays Synced and the agent writes nothing to
// that object, while an edit of another object is healed. When the hub then sends the same
// bundle without the rule, every object is compared again and the edit is corrected.
func TestSelfHealLeavesIgnoredFields(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-heal-ignore")
	c, rec := startController(t, e, kubetest.Uniq("t-agent-heal-ignore"))
	d := desired(t, "heal-ignore", ns, SyncPolicy{Automated: true, SelfHeal: true, CreateNamespace: true},
		kubetest.ConfigMap("ignored", "v1"), kubetest.ConfigMap("healed", "v1"))
	d.Ignore = []ignore.Rule{{Kind: "ConfigMap", Name: "ignored", JSONPointers: []string{"/data/value"}}}
	c.SetDesired(d)
	rec.waitAck(t, "heal-ignore", 1, 30*time.Second)
	rec.waitStatus(t, "heal-ignore", 30*time.Second, "Synced", func(s AppStatus) bool { return s.Sync == SyncSynced })
	ctx := kubetest.Ctx(t)
	edit := func(name string) {
		t.Helper()
		cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["value"] = "by-hand"
		if _, err := e.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
	}
	_, what := e.WritesDuring(func() {
		edit("ignored")
		edit("healed")
		testwait.For(t, 30*time.Second, "the other ConfigMap healed", func(context.Context) (bool, error) {
			v, _ := e.ConfigMapValue(t, ns, "healed", "value")
			return v == "v1", nil
		})
		testwait.Stays(t, 3*time.Second, "the ignored field as edited", func() bool {
			v, _ := e.ConfigMapValue(t, ns, "ignored", "value")
			return v == "by-hand"
		})
	})
	for _, w := range configMapWrites(what) {
		if strings.HasSuffix(w, "/configmaps/ignored") {
			t.Errorf("the agent wrote the ConfigMap whose only change is ignored: %v", what)
		}
	}
	rec.waitStatus(t, "heal-ignore", 30*time.Second, "Synced without drift", func(s AppStatus) bool {
		return s.Sync == SyncSynced && len(s.Drift) == 0
	})

	// The same bundle, the rule gone: compared again and corrected.
	d2 := *d
	d2.Generation, d2.Ignore = 2, nil
	c.SetDesired(&d2)
	testwait.For(t, 30*time.Second, "the once ignored field corrected", func(context.Context) (bool, error) {
		v, _ := e.ConfigMapValue(t, ns, "ignored", "value")
		return v == "v1", nil
	})
}
