package syncer

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// events collects what Config.OnEvent is told.
type events struct {
	mu   sync.Mutex
	list []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
}

func (e *events) all() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.list...)
}

// startRollbackController runs a Controller with a notification hook for the test's duration.
func startRollbackController(t *testing.T, e *kubetest.Env, agentNS string) (*Controller, *recorder, *events) {
	t.Helper()
	evs := &events{}
	c, rec := startController(t, e, agentNS, func(cfg *Config) { cfg.OnEvent = evs.add })
	return c, rec, evs
}

// webDeployment is kubetest.Deployment("web", 1, failing) whose own progress deadline is far away, so
// that only the app's health.progressDeadline decides, with image tag.
func webDeployment(failing bool, tag string) string {
	d := strings.Replace(kubetest.Deployment("web", 1, failing), "progressDeadlineSeconds: 10", "progressDeadlineSeconds: 600", 1)
	return strings.Replace(d, "registry.example/web:v1", "registry.example/web:"+tag, 1)
}

// revision builds a Desired of app "rb" with health policy hp at generation gen.
func revision(t *testing.T, ns string, gen uint64, hp HealthPolicy, docs ...string) *Desired {
	t.Helper()
	d := desired(t, "rb", ns, SyncPolicy{Automated: true, Prune: true, SelfHeal: true, CreateNamespace: true}, docs...)
	d.Generation, d.Health = gen, hp
	return d
}

// liveDeployment reads Deployment web of ns and assesses it.
func liveDeployment(ctx context.Context, e *kubetest.Env, ns string) (*unstructured.Unstructured, health.Status, error) {
	dep, err := e.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		return nil, "", err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(dep)
	if err != nil {
		return nil, "", err
	}
	obj := &unstructured.Unstructured{Object: m}
	obj.SetAPIVersion("apps/v1")
	obj.SetKind("Deployment")
	s, _ := health.Assess(obj)
	return obj, s, nil
}

func podLabels(obj *unstructured.Unstructured) map[string]string {
	labels, _, _ := unstructured.NestedStringMap(obj.Object, "spec", "template", "metadata", "labels")
	return labels
}

func warningEvents(t *testing.T, e *kubetest.Env, ns, reason string) []corev1.Event {
	t.Helper()
	list, err := e.Client.CoreV1().Events(ns).List(kubetest.Ctx(t), metav1.ListOptions{FieldSelector: "reason=" + reason})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func (r *recorder) lastAck(app string) Held {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.acks) - 1; i >= 0; i-- {
		if r.acks[i].App == app {
			return r.acks[i]
		}
	}
	return Held{}
}

// TestControllerRollback: revision A is healthy; revision B never becomes healthy within its
// progress deadline, so the agent re-applies A by itself (no hub), marks B, records an Event
// and reports RolledBack. B sent again is acknowledged without a write; revision C rolls
// forward.
func TestControllerRollback(t *testing.T) {
	e := newEnv(t)
	ns, agentNS := kubetest.Uniq("t-ctl-rollback"), kubetest.Uniq("t-agent-rollback")
	c, rec, evs := startRollbackController(t, e, agentNS)
	hp := HealthPolicy{ProgressDeadline: 10 * time.Second, AutoRollback: true}

	a := revision(t, ns, 1, hp, kubetest.ConfigMap("settings", "a"), webDeployment(false, "v1"))
	c.SetDesired(a)
	rec.waitStatus(t, "rb", 90*time.Second, "A healthy", func(s AppStatus) bool {
		return s.Health == "Healthy" && s.HealthyRevision == a.Revision
	})

	b := revision(t, ns, 2, hp, kubetest.ConfigMap("settings", "b"), webDeployment(true, "v1"))
	c.SetDesired(b)
	rec.waitAck(t, "rb", 2, time.Minute)
	sb := rec.waitStatus(t, "rb", 30*time.Second, "B applied", func(s AppStatus) bool { return s.AppliedRevision == b.Revision })
	deadline := sb.AppliedAt.Add(hp.ProgressDeadline)

	s := rec.waitStatus(t, "rb", 90*time.Second, "RolledBack", func(s AppStatus) bool { return s.RolledBackRevision == b.Revision })
	if s.AppliedRevision != a.Revision || s.HealthyRevision != a.Revision || s.Health != "Degraded" || s.Sync != SyncOutOfSync ||
		!strings.HasPrefix(s.Message, "RolledBack: revision "+b.Revision+" not healthy within 10s of the sync: Deployment.apps/"+ns+"/web") {
		t.Errorf("status after rollback %+v", s)
	}
	// The Deployment is back to A's template, and healthy.
	testwait.For(t, 90*time.Second, "Deployment back to A and Healthy", func(ctx context.Context) (bool, error) {
		obj, st, err := liveDeployment(ctx, e, ns)
		if err != nil {
			return false, err
		}
		_, failing := podLabels(obj)[localkube.FailingPodLabel]
		return !failing && st == health.Healthy, nil
	})
	t.Logf("from the progress deadline passing to revision A healthy again: %s", time.Since(deadline).Round(time.Millisecond))
	if v, _ := e.ConfigMapValue(t, ns, "settings", "value"); v != "a" {
		t.Errorf("ConfigMap = %q, want A's", v)
	}
	// An Event about the unhealthy Deployment, and the notification hook.
	if evts := warningEvents(t, e, ns, EventRolledBack); len(evts) != 1 || evts[0].Type != corev1.EventTypeWarning ||
		evts[0].InvolvedObject.Kind != "Deployment" || !strings.Contains(evts[0].Message, "revision "+b.Revision+" rolled back to "+a.Revision) {
		t.Errorf("RolledBack events: %+v", evts)
	}
	if got := evs.all(); len(got) != 1 || got[0].Reason != EventRolledBack || got[0].Revision != b.Revision || got[0].Target != a.Revision {
		t.Errorf("OnEvent got %+v", got)
	}
	// The mark is in the app's state: it survives a restart of the agent.
	states, err := state.NewStore(e.Kube, agentNS).Load(kubetest.Ctx(t))
	if st := states["rb"]; err != nil || st == nil || st.Revision != a.Revision || st.RolledBack == nil ||
		st.RolledBack.Revision != b.Revision || st.RolledBack.Digest != b.Digest || st.RolledBack.Failed {
		t.Fatalf("state after rollback: %+v (%v)", st, err)
	}
	// An agent restarting from that state holds A and reports the rollback.
	c2, err := NewController(Config{RESTConfig: e.Config, Namespace: agentNS, Reporter: &recorder{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Load(kubetest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	if held := c2.Held(); len(held) != 1 || held[0].Revision != a.Revision || held[0].Digest != a.Digest {
		t.Errorf("Held after restart = %+v, want A", held)
	}
	c2.mu.Lock()
	restarted := c2.statusOf(c2.apps["rb"])
	c2.mu.Unlock()
	if restarted.RolledBackRevision != b.Revision || !strings.HasPrefix(restarted.Message, "RolledBack: revision "+b.Revision) {
		t.Errorf("status after restart %+v", restarted)
	}

	// B again (the hub resends it, a new generation of the same revision and digest):
	// acknowledged with what the cluster holds, nothing written.
	b3 := *b
	b3.Generation = 3
	n, what := e.WritesDuring(func() {
		c.SetDesired(&b3)
		rec.waitAck(t, "rb", 3, 30*time.Second)
	})
	if n != 0 {
		t.Errorf("the rolled-back revision sent again made %d writes: %v", n, what)
	}
	if ack := rec.lastAck("rb"); ack.Revision != a.Revision || ack.Digest != a.Digest {
		t.Errorf("ack %+v, want A's revision and digest", ack)
	}
	if obj, _, err := liveDeployment(kubetest.Ctx(t), e, ns); err != nil || podLabels(obj)[localkube.FailingPodLabel] != "" {
		t.Errorf("B re-applied: %v %v", podLabels(obj), err)
	}

	// C, a new revision, rolls forward and clears the mark.
	cRev := revision(t, ns, 4, hp, kubetest.ConfigMap("settings", "c"), webDeployment(false, "v2"))
	c.SetDesired(cRev)
	rec.waitAck(t, "rb", 4, time.Minute)
	s = rec.waitStatus(t, "rb", 90*time.Second, "C healthy", func(s AppStatus) bool {
		return s.AppliedRevision == cRev.Revision && s.Health == "Healthy" && s.HealthyRevision == cRev.Revision
	})
	if s.RolledBackRevision != "" || s.Sync != SyncSynced || strings.Contains(s.Message, "RolledBack") {
		t.Errorf("status after C %+v", s)
	}
	if v, _ := e.ConfigMapValue(t, ns, "settings", "value"); v != "c" {
		t.Errorf("ConfigMap = %q, want C's", v)
	}
}

// TestControllerNoAutoRollback: with rollback: none, a revision that misses its deadline stays
// applied and is reported Degraded.
func TestControllerNoAutoRollback(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-ctl-norollback")
	c, rec, evs := startRollbackController(t, e, kubetest.Uniq("t-agent-norollback"))
	hp := HealthPolicy{ProgressDeadline: 10 * time.Second}
	a := revision(t, ns, 1, hp, webDeployment(false, "v1"))
	c.SetDesired(a)
	rec.waitStatus(t, "rb", 90*time.Second, "A healthy", func(s AppStatus) bool { return s.HealthyRevision == a.Revision })
	b := revision(t, ns, 2, hp, webDeployment(true, "v1"))
	c.SetDesired(b)
	s := rec.waitStatus(t, "rb", 90*time.Second, "Degraded", func(s AppStatus) bool {
		return s.AppliedRevision == b.Revision && s.Health == "Degraded"
	})
	if !strings.Contains(s.Message, "not healthy within 10s of the sync") || s.RolledBackRevision != "" || s.HealthyRevision != a.Revision {
		t.Errorf("status %+v", s)
	}
	// Whatever the worker would do after the Degraded assessment it does before this ack.
	b3 := *b
	b3.Generation = 3
	c.SetDesired(&b3)
	rec.waitAck(t, "rb", 3, 30*time.Second)
	obj, _, err := liveDeployment(kubetest.Ctx(t), e, ns)
	if err != nil || podLabels(obj)[localkube.FailingPodLabel] == "" {
		t.Errorf("revision B no longer applied: %v %v", podLabels(obj), err)
	}
	if got := evs.all(); len(got) != 0 {
		t.Errorf("OnEvent got %+v", got)
	}
	if evts := warningEvents(t, e, ns, EventRolledBack); len(evts) != 0 {
		t.Errorf("RolledBack events: %+v", evts)
	}
}

// TestControllerNewRevisionEndsHealthWait: a revision waiting to become healthy (deadline far
// away) is replaced at once by a newer one; no rollback follows.
func TestControllerNewRevisionEndsHealthWait(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-ctl-healthwait")
	c, rec, evs := startRollbackController(t, e, kubetest.Uniq("t-agent-healthwait"))
	hp := HealthPolicy{ProgressDeadline: 5 * time.Minute, AutoRollback: true}
	a := revision(t, ns, 1, hp, webDeployment(false, "v1"))
	c.SetDesired(a)
	rec.waitStatus(t, "rb", 90*time.Second, "A healthy", func(s AppStatus) bool { return s.HealthyRevision == a.Revision })
	b := revision(t, ns, 2, hp, webDeployment(true, "v1"))
	c.SetDesired(b)
	rec.waitStatus(t, "rb", time.Minute, "B progressing", func(s AppStatus) bool {
		return s.AppliedRevision == b.Revision && s.Health == "Progressing"
	})
	next := revision(t, ns, 3, hp, webDeployment(false, "v2"))
	start := time.Now()
	c.SetDesired(next)
	rec.waitAck(t, "rb", 3, 30*time.Second) // far less than B's five minutes
	t.Logf("new revision applied %s after it arrived during the health wait", time.Since(start).Round(time.Millisecond))
	s := rec.waitStatus(t, "rb", 90*time.Second, "new revision healthy", func(s AppStatus) bool {
		return s.AppliedRevision == next.Revision && s.HealthyRevision == next.Revision && s.Health == "Healthy"
	})
	if s.RolledBackRevision != "" || len(evs.all()) != 0 {
		t.Errorf("status %+v, events %+v", s, evs.all())
	}
}

// TestControllerRollbackFailed: when re-applying the last healthy revision fails, the agent
// stops: it keeps what is there, deletes nothing, reports RollbackFailed, and does not apply
// the bad revision again.
func TestControllerRollbackFailed(t *testing.T) {
	e := newEnv(t)
	ns, agentNS := kubetest.Uniq("t-ctl-rbfail"), kubetest.Uniq("t-agent-rbfail")
	c, rec, evs := startRollbackController(t, e, agentNS)
	hp := HealthPolicy{ProgressDeadline: 10 * time.Second, AutoRollback: true}
	a := revision(t, ns, 1, hp, kubetest.ConfigMap("settings", "a"), kubetest.ConfigMap("extra", "a"), webDeployment(false, "v1"))
	c.SetDesired(a)
	rec.waitStatus(t, "rb", 90*time.Second, "A healthy", func(s AppStatus) bool { return s.HealthyRevision == a.Revision })
	b := revision(t, ns, 2, hp, kubetest.ConfigMap("settings", "b"), webDeployment(true, "v1"))
	c.SetDesired(b)
	rec.waitAck(t, "rb", 2, time.Minute)
	testwait.For(t, 30*time.Second, "extra pruned by B", func(context.Context) (bool, error) {
		_, ok := e.ConfigMapValue(t, ns, "extra", "value")
		return !ok, nil
	})
	// A quota that forbids another ConfigMap: re-creating A's "extra" is refused.
	cms, err := e.Client.CoreV1().ConfigMaps(ns).List(kubetest.Ctx(t), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-more-configmaps"}, Spec: corev1.ResourceQuotaSpec{
		Hard: corev1.ResourceList{"count/configmaps": *resource.NewQuantity(int64(len(cms.Items)), resource.DecimalSI)},
	}}
	if _, err := e.Client.CoreV1().ResourceQuotas(ns).Create(kubetest.Ctx(t), quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	s := rec.waitStatus(t, "rb", 90*time.Second, "RollbackFailed", func(s AppStatus) bool {
		return strings.HasPrefix(s.Message, "RollbackFailed: revision "+b.Revision)
	})
	if s.Health != "Degraded" || s.Sync != SyncOutOfSync || s.RolledBackRevision != "" || !strings.Contains(s.Message, "extra") {
		t.Errorf("status %+v", s)
	}
	if got := evs.all(); len(got) != 1 || got[0].Reason != EventRollbackFailed {
		t.Errorf("OnEvent got %+v", got)
	}
	if evts := warningEvents(t, e, ns, EventRollbackFailed); len(evts) != 1 {
		t.Errorf("RollbackFailed events: %+v", evts)
	}
	// Nothing deleted, nothing more written: B's objects stay; B sent again writes nothing.
	if v, _ := e.ConfigMapValue(t, ns, "settings", "value"); v != "b" {
		t.Errorf("ConfigMap settings = %q, want B's (the failed rollback wrote nothing)", v)
	}
	b3 := *b
	b3.Generation = 3
	n, what := e.WritesDuring(func() {
		c.SetDesired(&b3)
		rec.waitAck(t, "rb", 3, 30*time.Second)
	})
	if n != 0 {
		t.Errorf("B sent again after a failed rollback made %d writes: %v", n, what)
	}
	obj, _, err := liveDeployment(kubetest.Ctx(t), e, ns)
	if err != nil || podLabels(obj)[localkube.FailingPodLabel] == "" {
		t.Errorf("Deployment changed after a failed rollback: %v %v", podLabels(obj), err)
	}
	states, err := state.NewStore(e.Kube, agentNS).Load(kubetest.Ctx(t))
	if st := states["rb"]; err != nil || st == nil || st.RolledBack == nil || !st.RolledBack.Failed || st.Revision != b.Revision {
		t.Errorf("state %+v (%v)", st, err)
	}
}

// TestControllerCustomHealthRule: the app's CEL rules judge its objects.
func TestControllerCustomHealthRule(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-ctl-celrule")
	c, rec, _ := startRollbackController(t, e, kubetest.Uniq("t-agent-celrule"))
	hp := HealthPolicy{Rules: []health.Rule{{Kind: "ConfigMap", Expression: `object.data.value == "ok"
		? {"status": "Healthy", "message": "value is ok"}
		: {"status": "Degraded", "message": "value is " + object.data.value}`}}}
	c.SetDesired(revision(t, ns, 1, hp, kubetest.ConfigMap("settings", "broken")))
	s := rec.waitStatus(t, "rb", 30*time.Second, "Degraded by the rule", func(s AppStatus) bool { return s.Health == "Degraded" })
	if !strings.Contains(s.Message, "ConfigMap/"+ns+"/settings: value is broken") {
		t.Errorf("status %+v", s)
	}
	c.SetDesired(revision(t, ns, 2, hp, kubetest.ConfigMap("settings", "ok")))
	rec.waitStatus(t, "rb", 30*time.Second, "Healthy by the rule", func(s AppStatus) bool {
		return s.Generation == 2 && s.Health == "Healthy" && len(s.Resources) == 1 && s.Resources[0].Message == "value is ok"
	})
}

// TestControllerRollbackOnDegraded: a revision that turns Degraded (here its Deployment's own
// progress deadline is exceeded) is rolled back without waiting for the app's deadline.
func TestControllerRollbackOnDegraded(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-ctl-rbdegraded")
	c, rec, _ := startRollbackController(t, e, kubetest.Uniq("t-agent-rbdegraded"))
	hp := HealthPolicy{ProgressDeadline: 5 * time.Minute, AutoRollback: true}
	a := revision(t, ns, 1, hp, webDeployment(false, "v1"))
	c.SetDesired(a)
	rec.waitStatus(t, "rb", 90*time.Second, "A healthy", func(s AppStatus) bool { return s.HealthyRevision == a.Revision })
	b := revision(t, ns, 2, hp, kubetest.Deployment("web", 1, true)) // progressDeadlineSeconds: 10
	c.SetDesired(b)
	s := rec.waitStatus(t, "rb", 90*time.Second, "RolledBack", func(s AppStatus) bool { return s.RolledBackRevision == b.Revision })
	if want := "RolledBack: revision " + b.Revision + " Degraded: Deployment.apps/" + ns + "/web: Progress deadline exceeded"; !strings.HasPrefix(s.Message, want) ||
		s.AppliedRevision != a.Revision {
		t.Errorf("status %+v, want message prefix %q", s, want)
	}
}
