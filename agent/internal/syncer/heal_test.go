package syncer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/testwait"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// configMapWrites counts the writes among what that touch ConfigMaps.
func configMapWrites(what []string) []string {
	var out []string
	for _, w := range what {
		if strings.Contains(w, "/configmaps") {
			out = append(out, w)
		}
	}
	return out
}

// TestHealTouchesOnlyTheDriftedObject: one changed object of many is compared and re-applied
// alone, recorded as a DriftCorrected Event and counted in the metrics; the sync before it
// recorded a Synced Event.
func TestHealTouchesOnlyTheDriftedObject(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-heal-one")
	reg := prometheus.NewRegistry()
	c, rec := startController(t, e, kubetest.Uniq("t-agent-heal-one"), func(cfg *Config) { cfg.Registerer = reg })
	var docs []string
	for i := range 30 {
		docs = append(docs, kubetest.ConfigMap(fmt.Sprintf("cm-%02d", i), "v1"))
	}
	c.SetDesired(desired(t, "heal-one", ns, SyncPolicy{Automated: true, SelfHeal: true, CreateNamespace: true}, docs...))
	rec.waitAck(t, "heal-one", 1, 30*time.Second)
	rec.waitStatus(t, "heal-one", 30*time.Second, "Synced", func(s AppStatus) bool { return s.Sync == SyncSynced && s.Health == "Healthy" })
	ctx := kubetest.Ctx(t)
	waitEvent(t, e, ns, EventSynced, "synced: 31 applied") // and the namespace
	if got := testutil.ToFloat64(c.metrics.syncs.WithLabelValues(resultSucceeded)); got != 1 {
		t.Errorf("flotilla_agent_syncs_total{result=succeeded} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.metrics.objects.WithLabelValues("applied")); got != 31 {
		t.Errorf("flotilla_agent_objects_total{action=applied} = %v, want 31 (and the namespace)", got)
	}

	n, what := e.WritesDuring(func() {
		cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, "cm-07", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["value"] = "by-hand"
		if _, err := e.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, 30*time.Second, "cm-07 healed", func(context.Context) (bool, error) {
			v, _ := e.ConfigMapValue(t, ns, "cm-07", "value")
			return v == "v1", nil
		})
		waitEvent(t, e, ns, EventDriftCorrected, "re-applied ConfigMap/"+ns+"/cm-07")
	})
	writes := configMapWrites(what)
	if len(writes) != 1 || !strings.HasSuffix(writes[0], "/configmaps/cm-07") {
		t.Errorf("healing one object wrote %d times (%d ConfigMap writes: %v), want only cm-07 once", n, len(writes), writes)
	}
	if got := testutil.ToFloat64(c.metrics.drift.WithLabelValues(DriftModified)); got != 1 {
		t.Errorf("flotilla_agent_drift_events_total{type=modified} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.metrics.corrected); got != 1 {
		t.Errorf("flotilla_agent_drift_corrected_total = %v, want 1", got)
	}

	// Edits to new values, one after another, are new drift, not a fight: never contested.
	for i := range 3 {
		edit := fmt.Sprintf("by-hand-%d", i)
		cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(ctx, "cm-07", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["value"] = edit
		if _, err := e.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, 30*time.Second, "cm-07 healed after "+edit, func(context.Context) (bool, error) {
			v, _ := e.ConfigMapValue(t, ns, "cm-07", "value")
			return v == "v1", nil
		})
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, s := range rec.statuses {
		for _, d := range s.Drift {
			if d.Contested {
				t.Fatalf("%s reported contested after edits to new values: %+v", d.Object, s)
			}
		}
	}
}

// TestHealthReadsTheWatchCache: once an app is applied, assessing its health every interval
// reads the informers' caches, not the API server.
func TestHealthReadsTheWatchCache(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-health-cache")
	c, rec := startController(t, e, kubetest.Uniq("t-agent-health-cache"))
	var docs []string
	for i := range 20 {
		docs = append(docs, kubetest.ConfigMap(fmt.Sprintf("cm-%02d", i), "v1"))
	}
	c.SetDesired(desired(t, "cached", ns, SyncPolicy{Automated: true, CreateNamespace: true}, docs...))
	rec.waitStatus(t, "cached", 30*time.Second, "Healthy", func(s AppStatus) bool { return s.Sync == SyncSynced && s.Health == "Healthy" })

	before := e.Writes.ConfigMapGets.Load()
	assessed := func() uint64 {
		var m dto.Metric
		if err := c.metrics.healthAssessed.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount()
	}
	n0 := assessed()
	testwait.For(t, 30*time.Second, "five health rounds", func(context.Context) (bool, error) { return assessed() >= n0+5, nil })
	if got := e.Writes.ConfigMapGets.Load() - before; got != 0 {
		t.Errorf("five health rounds of 20 ConfigMaps made %d GETs of ConfigMaps, want 0 (read from the watch cache)", got)
	}
}

// TestContestedObjectBacksOff: an object another actor changes back at once is corrected
// with growing delays (2 s, then 6 s, ...), reported contested meanwhile, never hot-looped;
// once the actor stops, the next correction sticks.
func TestContestedObjectBacksOff(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-contest")
	c, rec := startController(t, e, kubetest.Uniq("t-agent-contest"))
	c.SetDesired(desired(t, "contest", ns, SyncPolicy{Automated: true, SelfHeal: true, CreateNamespace: true}, kubetest.ConfigMap("fought", "ours")))
	rec.waitStatus(t, "contest", 30*time.Second, "Synced", func(s AppStatus) bool { return s.Sync == SyncSynced })

	// The other actor: whenever the value is ours, it sets its own at once. It notes when it
	// saw each of the agent's corrections.
	ctx := kubetest.Ctx(t)
	actx, stopActor := context.WithCancel(ctx)
	defer stopActor()
	w, err := e.Client.CoreV1().ConfigMaps(ns).Watch(actx, metav1.ListOptions{FieldSelector: "metadata.name=fought"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var corrections []time.Time
	actorDone := make(chan struct{})
	go func() {
		defer close(actorDone)
		first := true
		for ev := range w.ResultChan() {
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok || cm.Data["value"] == "theirs" {
				continue
			}
			if !first {
				mu.Lock()
				corrections = append(corrections, time.Now())
				mu.Unlock()
			}
			first = false
			cm.Data["value"] = "theirs"
			_, _ = e.Client.CoreV1().ConfigMaps(ns).Update(actx, cm, metav1.UpdateOptions{FieldManager: "other-controller"})
		}
	}()

	s := rec.waitStatus(t, "contest", 30*time.Second, "contested", func(s AppStatus) bool {
		d := driftOf(s, DriftModified, "ConfigMap/"+ns+"/fought")
		return d != nil && d.Contested
	})
	if !strings.Contains(s.Message, "contested") {
		t.Errorf("status message %q does not say contested", s.Message)
	}
	var seen []time.Time
	testwait.For(t, time.Minute, "three corrections", func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		seen = slices.Clone(corrections)
		return len(seen) >= 3, nil
	})
	// Delays grow: about 2 s before the second correction, about 6 s before the third.
	d1, d2 := seen[1].Sub(seen[0]), seen[2].Sub(seen[1])
	if d1 < contestFirst/2 || d2 < d1+contestFirst {
		t.Errorf("corrections %s and %s apart, want about %s and %s: backing off, not hot-looping",
			d1.Round(time.Millisecond), d2.Round(time.Millisecond), contestFirst, contestFirst*contestFactor)
	}

	stopActor()
	<-actorDone
	testwait.For(t, time.Minute, "corrected once the actor stopped", func(context.Context) (bool, error) {
		v, _ := e.ConfigMapValue(t, ns, "fought", "value")
		return v == "ours", nil
	})
	rec.waitStatus(t, "contest", time.Minute, "Synced again", func(s AppStatus) bool { return s.Sync == SyncSynced && len(s.Drift) == 0 })
}

// TestHumanEditsCorrectedAtOnce: an operator scaling a managed Deployment by hand again and
// again, seconds apart (kubectl scale), is not taken for a controller fighting the agent: each
// edit is plain drift, corrected at once, never contested.
func TestHumanEditsCorrectedAtOnce(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-human")
	c, rec := startController(t, e, kubetest.Uniq("t-agent-human"))
	c.SetDesired(desired(t, "human", ns, SyncPolicy{Automated: true, SelfHeal: true, CreateNamespace: true}, kubetest.Deployment("web", 1, false)))
	rec.waitStatus(t, "human", time.Minute, "Synced", func(s AppStatus) bool { return s.Sync == SyncSynced })
	ctx := kubetest.Ctx(t)
	deps := e.Client.AppsV1().Deployments(ns)
	// The operator's pace, as in the report: the next edit 5 s after seeing the last one
	// corrected (counted from the correction, so a slow correction on a loaded machine does not
	// bring the edits closer to it than a person would).
	const pace = 5 * time.Second
	next := time.Now()
	for i := range 4 {
		<-time.After(time.Until(next))
		scale, err := deps.GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scale.Spec.Replicas = 3
		if _, err := deps.UpdateScale(ctx, "web", scale, metav1.UpdateOptions{FieldManager: "kubectl"}); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, 30*time.Second, fmt.Sprintf("scale %d corrected", i+1), func(ctx context.Context) (bool, error) {
			d, err := deps.Get(ctx, "web", metav1.GetOptions{})
			return err == nil && *d.Spec.Replicas == 1, nil
		})
		next = time.Now().Add(pace)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, s := range rec.statuses {
		for _, d := range s.Drift {
			if d.Contested {
				t.Fatalf("%s reported contested after an operator's edits %s apart: %q", d.Object, pace, s.Message)
			}
		}
	}
}

// waitEvent waits for an Event with reason whose message contains text in namespace ns.
func waitEvent(t *testing.T, e *kubetest.Env, ns, reason, text string) {
	t.Helper()
	var seen []string
	err := wait.PollUntilContextTimeout(kubetest.Ctx(t), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := e.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		seen = seen[:0]
		for _, ev := range list.Items {
			seen = append(seen, ev.Reason+": "+ev.Message)
			if ev.Reason == reason && strings.Contains(ev.Message, text) && ev.Source.Component == eventComponent {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s Event containing %q in %s; events: %v", reason, text, ns, seen)
	}
}

// TestNewRevisionNeverReportedWithOldHealth: right after a new revision is applied, the
// status does not carry the previous revision's health: a revision whose pods never become
// ready is never reported Healthy.
func TestNewRevisionNeverReportedWithOldHealth(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-fresh-health")
	c, rec := startController(t, e, kubetest.Uniq("t-agent-fresh-health"))
	policy := SyncPolicy{Automated: true, CreateNamespace: true}
	c.SetDesired(desired(t, "fresh", ns, policy, kubetest.ConfigMap("a", "v1")))
	rec.waitStatus(t, "fresh", 30*time.Second, "Healthy", func(s AppStatus) bool { return s.Health == "Healthy" })

	d2 := desired(t, "fresh", ns, policy, kubetest.ConfigMap("a", "v1"), kubetest.Deployment("web", 1, true))
	d2.Generation = 2
	c.SetDesired(d2)
	rec.waitStatus(t, "fresh", 30*time.Second, "revision 2 assessed", func(s AppStatus) bool {
		return s.AppliedDigest == d2.Digest && s.Health != "Healthy" && len(s.Resources) == 2
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, s := range rec.statuses {
		if s.App == "fresh" && s.AppliedDigest == d2.Digest && s.Health == "Healthy" {
			t.Fatalf("revision 2, whose pods never become ready, reported Healthy: %+v", s)
		}
	}
}
