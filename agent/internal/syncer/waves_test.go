package syncer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// inWave puts the YAML of one object (whose metadata starts with its name) in a sync wave,
// with Argo CD's annotation.
func inWave(doc string, wave int) string {
	i := strings.Index(doc, "metadata:\n  name: ")
	end := i + strings.Index(doc[i:], "\n  name: ") + len("\n  name: ")
	end += strings.Index(doc[end:], "\n") + 1
	return doc[:end] + fmt.Sprintf("  annotations:\n    argocd.argoproj.io/sync-wave: %q\n", fmt.Sprint(wave)) + doc[end:]
}

func (r *recorder) lastNack() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.nacks) == 0 {
		return ""
	}
	return r.nacks[len(r.nacks)-1]
}

// TestWavesWaitForHealth: wave 1 is not created while wave 0's Deployment is not Healthy, the
// status says which wave the sync waits for, and past the progress deadline the sync fails
// naming the wave and the Deployment. A revision whose wave 0 becomes Healthy gets wave 1
// applied after it, and is acked.
func TestWavesWaitForHealth(t *testing.T) {
	e := newEnv(t)
	ns, agentNS := kubetest.Uniq("t-waves"), kubetest.Uniq("t-agent-waves")
	c, rec := startController(t, e, agentNS)
	failingDB := strings.Replace(kubetest.Deployment("db", 1, true), "progressDeadlineSeconds: 10", "progressDeadlineSeconds: 600", 1)
	d := desired(t, "waves", ns, SyncPolicy{Automated: true, Prune: true, CreateNamespace: true},
		inWave(failingDB, 0), inWave(kubetest.ConfigMap("after", "v1"), 1))
	d.Health = HealthPolicy{ProgressDeadline: 8 * time.Second}
	c.SetDesired(d)

	rec.waitStatus(t, "waves", 60*time.Second, "waiting for wave 0", func(s AppStatus) bool {
		return strings.Contains(s.Message, "waiting for wave 0 (1 of 2) to be Healthy: Deployment.apps/"+ns+"/db: Progressing")
	})
	testwait.For(t, 60*time.Second, "the sync to fail", func(context.Context) (bool, error) { return rec.lastNack() != "", nil })
	want := "wave 0 not Healthy within 8s: Deployment.apps/" + ns + "/db: Progressing"
	if nack := rec.lastNack(); !strings.Contains(nack, want) {
		t.Errorf("nack %q, want it to contain %q", nack, want)
	}
	if _, ok := e.ConfigMapValue(t, ns, "after", "value"); ok {
		t.Error("wave 1 was applied although wave 0 never became Healthy")
	}
	if rec.acked("waves", 1) {
		t.Error("a sync whose wave 0 never became Healthy was acked")
	}

	// Generation 2: the Deployment's pods become Ready; wave 1 follows it.
	d2 := desired(t, "waves", ns, SyncPolicy{Automated: true, Prune: true, CreateNamespace: true},
		inWave(kubetest.Deployment("db", 1, false), 0), inWave(kubetest.ConfigMap("after", "v2"), 1))
	d2.Generation, d2.Health = 2, HealthPolicy{ProgressDeadline: 60 * time.Second}
	c.SetDesired(d2)
	rec.waitAck(t, "waves", 2, 90*time.Second)
	ctx := kubetest.Ctx(t)
	dep, err := e.Client.AppsV1().Deployments(ns).Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, "after", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var available *metav1.Time
	for _, cond := range dep.Status.Conditions {
		if cond.Type == "Available" && cond.Status == "True" {
			available = &cond.LastTransitionTime
		}
	}
	if available == nil || cm.Data["value"] != "v2" || cm.CreationTimestamp.Before(available) {
		t.Errorf("wave 1 ConfigMap created at %v (value %q); wave 0 Deployment Available since %v", cm.CreationTimestamp, cm.Data["value"], available)
	}
	rec.waitStatus(t, "waves", 60*time.Second, "no wave message once synced", func(s AppStatus) bool {
		return s.Sync == SyncSynced && !strings.Contains(s.Message, "wave")
	})
}

// TestWavesBadAnnotationRefused: a revision with a wave that is not an integer, or two wave
// annotations that disagree, is refused naming the object and the annotations: nothing of it
// is applied and nothing pruned.
func TestWavesBadAnnotationRefused(t *testing.T) {
	e := newEnv(t)
	ns, agentNS := kubetest.Uniq("t-waves-bad"), kubetest.Uniq("t-agent-waves-bad")
	c, rec := startController(t, e, agentNS)
	policy := SyncPolicy{Automated: true, Prune: true, CreateNamespace: true}
	c.SetDesired(desired(t, "bad", ns, policy, kubetest.ConfigMap("old", "v1")))
	rec.waitAck(t, "bad", 1, 60*time.Second)

	for i, tc := range []struct{ doc, want string }{
		{kubetest.ConfigMap("broken", "v1", "argocd.argoproj.io/sync-wave", "first"),
			`ConfigMap/broken: annotation argocd.argoproj.io/sync-wave: "first" is not an integer`},
		{kubetest.ConfigMap("broken", "v1", "argocd.argoproj.io/sync-wave", "1", "flotilla.dev/wave", "2"),
			`ConfigMap/broken: annotation argocd.argoproj.io/sync-wave and flotilla.dev/wave: the waves differ (1 and 2): set one`},
	} {
		d := desired(t, "bad", ns, policy, kubetest.ConfigMap("new", "v1"), tc.doc)
		d.Generation = uint64(2 + i)
		_, writes := e.WritesDuring(func() {
			c.SetDesired(d)
			testwait.For(t, 60*time.Second, "the sync to be refused", func(context.Context) (bool, error) {
				return strings.Contains(rec.lastNack(), tc.want), nil
			})
		})
		for _, w := range writes {
			if !strings.Contains(w, "/events") { // the SyncFailed Event
				t.Errorf("a refused revision wrote: %s", w)
			}
		}
		if _, ok := e.ConfigMapValue(t, ns, "new", "value"); ok {
			t.Error("an object of a refused revision was applied")
		}
		if _, ok := e.ConfigMapValue(t, ns, "old", "value"); !ok {
			t.Error("a refused revision pruned the last good state")
		}
	}
}

// TestWavesPruneInReverseOrder: objects no longer rendered are deleted the highest wave first,
// each wave once the one above it is gone: a finalizer holding wave 2's object keeps wave 1's
// and wave 0's from deletion until it is released.
func TestWavesPruneInReverseOrder(t *testing.T) {
	e := newEnv(t)
	ns, agentNS := kubetest.Uniq("t-waves-prune"), kubetest.Uniq("t-agent-waves-prune")
	c, rec := startController(t, e, agentNS)
	policy := SyncPolicy{Automated: true, Prune: true, CreateNamespace: true}
	keep := kubetest.ConfigMaps(4) // so that the prune deletes fewer than half of the objects
	d := desired(t, "rev", ns, policy, append(keep,
		inWave(kubetest.ConfigMap("w0", "v1"), 0), inWave(kubetest.ConfigMap("w1", "v1"), 1), inWave(kubetest.ConfigMap("w2", "v1"), 2))...)
	c.SetDesired(d)
	rec.waitAck(t, "rev", 1, 60*time.Second)
	ctx := kubetest.Ctx(t)
	hold := []byte(`{"metadata":{"finalizers":["flotilla.dev/test-hold"]}}`)
	if _, err := e.Client.CoreV1().ConfigMaps(ns).Patch(ctx, "w2", types.MergePatchType, hold, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	d2 := desired(t, "rev", ns, policy, keep...)
	d2.Generation = 2
	c.SetDesired(d2)
	testwait.For(t, 60*time.Second, "wave 2 deleted", func(ctx context.Context) (bool, error) {
		cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, "w2", metav1.GetOptions{})
		return err == nil && cm.DeletionTimestamp != nil, nil
	})
	testwait.Holds(t, 3*time.Second, "waves 1 and 0 kept while wave 2 is not gone", func(ctx context.Context) error {
		for _, name := range []string{"w1", "w0"} {
			cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cm.DeletionTimestamp != nil {
				return fmt.Errorf("%s deleted before wave 2 was gone", name)
			}
		}
		return nil
	})
	release := []byte(`{"metadata":{"finalizers":null}}`)
	if _, err := e.Client.CoreV1().ConfigMaps(ns).Patch(ctx, "w2", types.MergePatchType, release, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitAck(t, "rev", 2, 60*time.Second)
	for _, name := range []string{"w2", "w1", "w0"} {
		if _, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s: %v, want it pruned", name, err)
		}
	}
}

// TestWavesRollBackWhenAWaveFails: with rollback: auto, a revision whose wave 0 is not Healthy
// within the progress deadline fails, and the agent returns to the last healthy revision (its
// wave 1 was never applied) and marks the revision rolled back, as for a revision that turns
// unhealthy after it is applied.
func TestWavesRollBackWhenAWaveFails(t *testing.T) {
	e := newEnv(t)
	ns, agentNS := kubetest.Uniq("t-waves-rb"), kubetest.Uniq("t-agent-waves-rb")
	c, rec, evs := startRollbackController(t, e, agentNS)
	hp := HealthPolicy{ProgressDeadline: 8 * time.Second, AutoRollback: true}
	a := revision(t, ns, 1, hp, inWave(webDeployment(false, "v1"), 0), inWave(kubetest.ConfigMap("after", "a"), 1))
	c.SetDesired(a)
	rec.waitStatus(t, "rb", 90*time.Second, "A healthy", func(s AppStatus) bool {
		return s.Health == "Healthy" && s.HealthyRevision == a.Revision
	})

	b := revision(t, ns, 2, hp, inWave(webDeployment(true, "v2"), 0), inWave(kubetest.ConfigMap("after", "b"), 1))
	c.SetDesired(b)
	s := rec.waitStatus(t, "rb", 90*time.Second, "B rolled back", func(s AppStatus) bool { return s.RolledBackRevision == b.Revision })
	if s.AppliedRevision != a.Revision || !strings.Contains(s.Message, "wave 0 not Healthy within 8s") {
		t.Errorf("status after the rollback: applied %s (want %s), message %q", s.AppliedRevision, a.Revision, s.Message)
	}
	if nack := rec.lastNack(); !strings.Contains(nack, "wave 0 not Healthy within 8s: Deployment.apps/"+ns+"/web") {
		t.Errorf("nack %q does not name the wave and the Deployment", nack)
	}
	testwait.For(t, 60*time.Second, "the Deployment back at A", func(ctx context.Context) (bool, error) {
		dep, _, err := liveDeployment(ctx, e, ns)
		return err == nil && podLabels(dep)[localkube.FailingPodLabel] == "", nil
	})
	if v, _ := e.ConfigMapValue(t, ns, "after", "value"); v != "a" {
		t.Errorf("wave 1 ConfigMap holds %q, want A's value: B's wave 1 must never be applied", v)
	}
	if got := evs.all(); len(got) != 1 || got[0].Reason != EventRolledBack || got[0].Revision != b.Revision {
		t.Errorf("events %+v, want one RolledBack from %s", got, b.Revision)
	}
}
