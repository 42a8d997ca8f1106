package syncer

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

func TestWaitingFor(t *testing.T) {
	ready := dependencyState{present: true, sync: SyncSynced, health: "Healthy"}
	tests := []struct {
		name   string
		deps   []string
		states map[string]dependencyState
		want   string
	}{
		{"no dependencies", nil, nil, ""},
		{"Synced and Healthy", []string{"a"}, map[string]dependencyState{"a": ready}, ""},
		{"Progressing", []string{"a"}, map[string]dependencyState{"a": {present: true, sync: SyncSynced, health: "Progressing"}},
			"waiting for a: Progressing"},
		{"Degraded", []string{"a"}, map[string]dependencyState{"a": {present: true, sync: SyncSynced, health: "Degraded"}},
			"waiting for a: Degraded"},
		{"OutOfSync", []string{"a"}, map[string]dependencyState{"a": {present: true, sync: SyncOutOfSync, health: "Healthy"}},
			"waiting for a: OutOfSync"},
		{"OutOfSync and Missing", []string{"a"}, map[string]dependencyState{"a": {present: true, sync: SyncOutOfSync, health: "Missing"}},
			"waiting for a: OutOfSync, Missing"},
		{"not reported yet", []string{"a"}, map[string]dependencyState{"a": {present: true}}, "waiting for a: not reported yet"},
		{"not delivered here", []string{"cert-manager"}, nil, "waiting for cert-manager: not on this cluster"},
		{"being removed", []string{"a"}, map[string]dependencyState{"a": {removing: true}}, "waiting for a: being removed from this cluster"},
		{"only those not ready, in order", []string{"c", "a", "b"},
			map[string]dependencyState{"a": ready, "b": {present: true, sync: SyncSynced, health: "Suspended"}},
			"waiting for c: not on this cluster; waiting for b: Suspended"},
	}
	for _, tt := range tests {
		if got := waitingFor(tt.deps, tt.states); got != tt.want {
			t.Errorf("%s: waitingFor = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestGated(t *testing.T) {
	held := &state.AppState{Digest: "sha256:1"}
	tests := []struct {
		name    string
		d       *Desired
		applied *state.AppState
		want    bool
	}{
		{"no dependencies", &Desired{Digest: "sha256:2"}, held, false},
		{"first revision", &Desired{Digest: "sha256:2", DependsOn: []string{"a"}}, nil, true},
		{"first revision after a sync that failed half-way", &Desired{Digest: "sha256:2", DependsOn: []string{"a"}}, &state.AppState{}, true},
		{"new revision", &Desired{Digest: "sha256:2", DependsOn: []string{"a"}}, held, true},
		{"the revision held (a re-sync)", &Desired{Digest: "sha256:1", DependsOn: []string{"a"}}, held, false},
	}
	for _, tt := range tests {
		if got := gated(tt.d, tt.applied); got != tt.want {
			t.Errorf("%s: gated = %t, want %t", tt.name, got, tt.want)
		}
	}
}

// TestDependsOnWaitsForTheDependency: an app that depends on base is not applied while base is
// Progressing or Degraded, its status naming base and its state; it is applied once base's next
// revision turns Synced and Healthy (queued by base's status change: nothing else would queue
// it). A later revision of it waits likewise while base fails again, the revision it holds
// staying in place and self-healed meanwhile. A dependency the hub did not deliver to the
// cluster is named as such.
func TestDependsOnWaitsForTheDependency(t *testing.T) {
	e := newEnv(t)
	nsBase, nsApp := kubetest.Uniq("t-dep-base"), kubetest.Uniq("t-dep-app")
	c, rec := startController(t, e, kubetest.Uniq("t-agent-dep"))
	policy := SyncPolicy{Automated: true, Prune: true, SelfHeal: true, CreateNamespace: true}
	revision := func(app, ns string, generation uint64, deps []string, docs ...string) *Desired {
		d := desired(t, app, ns, policy, docs...)
		d.Generation, d.DependsOn = generation, deps
		return d
	}
	waitingFor := func(app, what string) AppStatus {
		t.Helper()
		return rec.waitStatus(t, app, 90*time.Second, what, func(s AppStatus) bool { return strings.Contains(s.Message, what) })
	}
	ctx := kubetest.Ctx(t)

	// base's pods never become ready: Progressing, then Degraded at its Deployment's progress
	// deadline (10 s).
	c.SetDesired(revision("base", nsBase, 1, nil, kubetest.Deployment("web", 1, true)))
	app1 := revision("app", nsApp, 1, []string{"base"}, kubetest.ConfigMap("settings", "v1"))
	c.SetDesired(app1)
	if s := waitingFor("app", "waiting for base: Progressing"); s.Sync != SyncOutOfSync || s.AppliedRevision != "" {
		t.Errorf("status while waiting %+v, want OutOfSync with nothing applied", s)
	}
	rec.waitStatus(t, "base", 90*time.Second, "Degraded", func(s AppStatus) bool { return s.Health == "Degraded" })
	waitingFor("app", "waiting for base: Degraded")
	if rec.acked("app", 1) {
		t.Fatal("app was applied while base was Degraded")
	}
	if _, ok := e.ConfigMapValue(t, nsApp, "settings", "value"); ok {
		t.Fatal("app's ConfigMap exists while base is Degraded")
	}

	// base's next revision is healthy: app goes ahead.
	base2 := revision("base", nsBase, 2, nil, kubetest.Deployment("web", 1, false))
	c.SetDesired(base2)
	rec.waitStatus(t, "base", 90*time.Second, "Synced and Healthy", func(s AppStatus) bool {
		return s.AppliedRevision == base2.Revision && s.Sync == SyncSynced && s.Health == "Healthy"
	})
	rec.waitAck(t, "app", 1, 30*time.Second)
	rec.waitStatus(t, "app", 60*time.Second, "Synced and Healthy, not waiting", func(s AppStatus) bool {
		return s.Sync == SyncSynced && s.Health == "Healthy" && !strings.Contains(s.Message, "waiting")
	})

	// base fails again; app's next revision waits, and the revision it holds is self-healed.
	base3 := revision("base", nsBase, 3, nil, kubetest.Deployment("web", 2, true))
	c.SetDesired(base3)
	rec.waitStatus(t, "base", 90*time.Second, "the failing revision applied", func(s AppStatus) bool {
		return s.Generation == 3 && s.AppliedRevision == base3.Revision && s.Health != "Healthy"
	})
	app2 := revision("app", nsApp, 2, []string{"base"}, kubetest.ConfigMap("settings", "v2"))
	c.SetDesired(app2)
	rec.waitStatus(t, "app", 90*time.Second, "revision 2 waiting for base, revision 1 running", func(s AppStatus) bool {
		return s.Generation == 2 && strings.Contains(s.Message, "waiting for base: ") && s.AppliedRevision == app1.Revision && s.Sync == SyncOutOfSync
	})
	cm, err := e.Client.CoreV1().ConfigMaps(nsApp).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["value"] = "tampered"
	if _, err := e.Client.CoreV1().ConfigMaps(nsApp).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, "the held revision self-healed", func(context.Context) (bool, error) {
		v, _ := e.ConfigMapValue(t, nsApp, "settings", "value")
		return v == "v1", nil
	})
	if rec.acked("app", 2) {
		t.Fatal("app's new revision was applied while base is failing")
	}

	// A dependency that is not on this cluster.
	c.SetDesired(revision("lone", kubetest.Uniq("t-dep-lone"), 1, []string{"cert-manager"}, kubetest.ConfigMap("settings", "v1")))
	waitingFor("lone", "waiting for cert-manager: not on this cluster")
}
