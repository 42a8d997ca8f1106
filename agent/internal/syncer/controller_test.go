package syncer

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// recorder is a Reporter that keeps everything it is told.
type recorder struct {
	mu       sync.Mutex
	acks     []Held // App, Generation, Revision, Digest
	nacks    []string
	statuses []AppStatus
	hooks    []HookRun
}

var _ Reporter = (*recorder)(nil)

func (r *recorder) Ack(app string, generation uint64, revision, digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acks = append(r.acks, Held{App: app, Generation: generation, Revision: revision, Digest: digest})
}

func (r *recorder) Nack(app string, generation uint64, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nacks = append(r.nacks, reason)
}

func (r *recorder) Hook(h HookRun) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = append(r.hooks, h)
}

func (r *recorder) Status(s AppStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, s)
}

func (r *recorder) acked(app string, generation uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.acks {
		if a.App == app && a.Generation == generation {
			return true
		}
	}
	return false
}

func (r *recorder) counts() (acks, nacks, statuses int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acks), len(r.nacks), len(r.statuses)
}

// waitStatus waits for a status of app satisfying cond and returns it.
func (r *recorder) waitStatus(t *testing.T, app string, timeout time.Duration, what string, cond func(AppStatus) bool) AppStatus {
	t.Helper()
	var got, last AppStatus
	err := wait.PollUntilContextTimeout(kubetest.Ctx(t), 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, s := range r.statuses {
			if s.App == app {
				last = s
				if cond(s) {
					got = s
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("waiting for status %s of %s: %v; last status %+v", what, app, err, last)
	}
	return got
}

func (r *recorder) waitAck(t testing.TB, app string, generation uint64, timeout time.Duration) {
	t.Helper()
	testwait.For(t, timeout, "ack", func(context.Context) (bool, error) { return r.acked(app, generation), nil })
}

// startController runs a Controller for the test's duration.
func startController(t testing.TB, e *kubetest.Env, agentNS string, opts ...func(*Config)) (*Controller, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg := Config{
		RESTConfig: e.Config, Namespace: agentNS, Reporter: rec, HealthInterval: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := NewController(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Load(kubetest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return c, rec
}

// TestControllerSyncsAndRestores: a desired app is applied, acked and reported Healthy;
// duplicates and same-content generations write nothing; a new Controller restores what is
// held without writing.
func TestControllerSyncsAndRestores(t *testing.T) {
	nsAgentSync := kubetest.Uniq("t-agent-sync")
	nsCtlShop := kubetest.Uniq("t-ctl-shop")
	e := newEnv(t)
	agentNS := nsAgentSync
	c, rec := startController(t, e, agentNS)
	d := desired(t, "shop", nsCtlShop, SyncPolicy{Automated: true, Prune: true, CreateNamespace: true},
		kubetest.ConfigMap("settings", "v1"), kubetest.Deployment("web", 2, false))
	c.SetDesired(d)
	rec.waitAck(t, "shop", 1, time.Minute)
	s := rec.waitStatus(t, "shop", 90*time.Second, "Synced and Healthy", func(s AppStatus) bool {
		return s.Sync == SyncSynced && s.Health == "Healthy" && s.HealthyRevision == d.Revision
	})
	if s.AppliedRevision != d.Revision || s.AppliedDigest != d.Digest || len(s.Resources) != 2 {
		t.Errorf("status %+v", s)
	}
	// The healthy revision is in state, with its bundle.
	testwait.For(t, 30*time.Second, "healthy revision saved", func(ctx context.Context) (bool, error) {
		states, err := state.NewStore(e.Kube, agentNS).Load(ctx)
		st := states["shop"]
		return err == nil && st != nil && st.HealthyRevision == d.Revision && len(st.HealthyBundle) > 0, err
	})

	// A duplicate, then a newer generation with the same content: one Ack, no writes.
	d2 := *d
	d2.Generation = 2
	n, what := e.WritesDuring(func() {
		c.SetDesired(d)
		c.SetDesired(&d2)
		rec.waitAck(t, "shop", 2, 30*time.Second)
	})
	if n != 0 {
		t.Errorf("same content again made %d writes: %v", n, what)
	}
	if acks, _, _ := rec.counts(); acks != 2 {
		t.Errorf("%d acks, want 2 (the duplicate is a no-op)", acks)
	}

	// A new Controller restores what is held and writes nothing.
	rec2 := &recorder{}
	n, what = e.WritesDuring(func() {
		c2, err := NewController(Config{RESTConfig: e.Config, Namespace: agentNS, Reporter: rec2,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := c2.Load(kubetest.Ctx(t)); err != nil {
			t.Fatal(err)
		}
		held := c2.Held()
		want := []Held{{App: "shop", Generation: 1, Revision: d.Revision, Digest: d.Digest}}
		if !reflect.DeepEqual(held, want) {
			t.Errorf("Held after Load = %+v, want %+v", held, want)
		}
	})
	if n != 0 {
		t.Errorf("Load made %d writes: %v", n, what)
	}
	if a, nk, st := rec2.counts(); a+nk+st != 0 {
		t.Errorf("Load reported %d acks, %d nacks, %d statuses", a, nk, st)
	}
}

// TestControllerDegraded: a Deployment whose pods never become Ready misses its progress
// deadline and the app is reported Degraded.
func TestControllerDegraded(t *testing.T) {
	nsAgentDegraded := kubetest.Uniq("t-agent-degraded")
	nsCtlBroken := kubetest.Uniq("t-ctl-broken")
	e := newEnv(t)
	c, rec := startController(t, e, nsAgentDegraded)
	d := desired(t, "broken", nsCtlBroken, SyncPolicy{Automated: true, CreateNamespace: true}, kubetest.Deployment("web", 1, true))
	c.SetDesired(d)
	rec.waitAck(t, "broken", 1, time.Minute)
	s := rec.waitStatus(t, "broken", 90*time.Second, "Degraded", func(s AppStatus) bool { return s.Health == "Degraded" })
	if !strings.Contains(s.Message, "Deployment.apps/"+nsCtlBroken+"/web") || s.Sync != SyncSynced || s.HealthyRevision != "" {
		t.Errorf("status %+v", s)
	}
}

// TestControllerManualSync: without automated sync nothing is applied until a sync request.
func TestControllerManualSync(t *testing.T) {
	nsAgentManual := kubetest.Uniq("t-agent-manual")
	nsCtlManual := kubetest.Uniq("t-ctl-manual")
	e := newEnv(t)
	e.CreateNamespace(t, nsCtlManual)
	c, rec := startController(t, e, nsAgentManual)
	d := desired(t, "manual", nsCtlManual, SyncPolicy{}, kubetest.ConfigMap("settings", "v1"))
	c.SetDesired(d)
	s := rec.waitStatus(t, "manual", 30*time.Second, "OutOfSync and Missing", func(s AppStatus) bool {
		return s.Sync == SyncOutOfSync && s.Health == "Missing"
	})
	if !strings.Contains(s.Message, "automated sync is off") || len(s.Resources) != 1 {
		t.Errorf("status %+v", s)
	}
	if _, ok := e.ConfigMapValue(t, nsCtlManual, "settings", "value"); ok {
		t.Fatal("applied without automated sync or a sync request")
	}
	if acks, _, _ := rec.counts(); acks != 0 {
		t.Errorf("%d acks before a sync request", acks)
	}
	d2 := *d
	d2.Generation, d2.SyncRequested = 2, true
	c.SetDesired(&d2)
	rec.waitAck(t, "manual", 2, 30*time.Second)
	rec.waitStatus(t, "manual", 30*time.Second, "Synced Healthy", func(s AppStatus) bool {
		return s.Sync == SyncSynced && s.Health == "Healthy"
	})
}

// TestControllerNackKeepsPrevious: a rejected revision is nacked, retried within the limit,
// and the previous revision stays applied.
func TestControllerNackKeepsPrevious(t *testing.T) {
	nsAgentNack := kubetest.Uniq("t-agent-nack")
	nsCtlNack := kubetest.Uniq("t-ctl-nack")
	e := newEnv(t)
	e.CreateNamespace(t, nsCtlNack)
	c, rec := startController(t, e, nsAgentNack)
	policy := SyncPolicy{Automated: true, Retry: Retry{Limit: 2, Duration: 50 * time.Millisecond, Factor: 2}}
	good := desired(t, "nack", nsCtlNack, policy, kubetest.ConfigMap("settings", "v1"))
	c.SetDesired(good)
	rec.waitAck(t, "nack", 1, 30*time.Second)

	bad := desired(t, "nack", nsCtlNack, policy, kubetest.ConfigMap("settings", "v2"),
		strings.Replace(kubetest.Deployment("web", 1, false), "replicas: 1", "replicas: -1", 1))
	bad.Generation = 2
	c.SetDesired(bad)
	s := rec.waitStatus(t, "nack", 30*time.Second, "giving up", func(s AppStatus) bool {
		return strings.Contains(s.Message, "attempt 3/3, giving up")
	})
	if s.AppliedRevision != good.Revision || s.Sync != SyncOutOfSync || !strings.Contains(s.Message, "Deployment.apps/"+nsCtlNack+"/web") {
		t.Errorf("status %+v", s)
	}
	if _, nacks, _ := rec.counts(); nacks != 3 {
		t.Errorf("%d nacks, want 3 (first attempt and two retries)", nacks)
	}
	// SyncFailed Events on the object at fault: the first attempt and giving up, not each retry.
	waitEvent(t, e, nsCtlNack, EventSyncFailed, "attempt 3/3, giving up")
	list, err := e.Client.CoreV1().Events(nsCtlNack).List(kubetest.Ctx(t), metav1.ListOptions{FieldSelector: "reason=" + EventSyncFailed})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, ev := range list.Items {
		if ev.InvolvedObject.Kind != "Deployment" || ev.InvolvedObject.Name != "web" || ev.Type != "Warning" {
			t.Errorf("SyncFailed Event about %s/%s, type %s", ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Type)
		}
		msgs = append(msgs, ev.Message)
	}
	if len(msgs) != 2 || !strings.Contains(strings.Join(msgs, "\n"), "attempt 1/3") {
		t.Errorf("SyncFailed Events = %q, want two: attempt 1/3 and giving up", msgs)
	}
	if v, _ := e.ConfigMapValue(t, nsCtlNack, "settings", "value"); v != "v1" {
		t.Errorf("ConfigMap = %q, want v1 (previous revision kept)", v)
	}
	if held := c.Held(); len(held) != 1 || held[0].Revision != good.Revision {
		t.Errorf("Held = %+v", held)
	}
}

// TestControllerRemove: removing an app with prune deletes its objects and its state.
func TestControllerRemove(t *testing.T) {
	nsAgentRemove := kubetest.Uniq("t-agent-remove")
	nsCtlGone := kubetest.Uniq("t-ctl-gone")
	e := newEnv(t)
	agentNS := nsAgentRemove
	c, rec := startController(t, e, agentNS)
	d := desired(t, "gone", nsCtlGone, SyncPolicy{Automated: true, Prune: true},
		kubetest.Namespace(nsCtlGone), kubetest.ConfigMap("settings", "v1"))
	c.SetDesired(d)
	rec.waitAck(t, "gone", 1, 30*time.Second)
	c.Remove("gone", 2)
	testwait.For(t, 30*time.Second, "app removed", func(ctx context.Context) (bool, error) {
		_, err := e.Client.CoreV1().Secrets(agentNS).Get(ctx, state.SecretName("gone"), metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if _, ok := e.ConfigMapValue(t, nsCtlGone, "settings", "value"); ok {
		t.Error("ConfigMap of a removed app with prune still exists")
	}
	if _, err := e.Client.CoreV1().Namespaces().Get(kubetest.Ctx(t), nsCtlGone, metav1.GetOptions{}); err != nil {
		t.Errorf("namespace deleted with its app: %v", err)
	}
	if held := c.Held(); len(held) != 0 {
		t.Errorf("Held after Remove = %+v", held)
	}
	// A stale delivery does not bring it back.
	c.SetDesired(d)
	c.mu.Lock()
	_, ok := c.apps["gone"]
	c.mu.Unlock()
	if ok {
		t.Error("stale Desired after Remove re-created the app")
	}
}

func TestScrub(t *testing.T) {
	d := desired(t, "s", "ns", SyncPolicy{},
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ndata:\n  password: aHVudGVyMg==\nstringData:\n  token: tok-123456\n")
	msg := newScrubber(d).scrub(`Secret "creds" is invalid: data[x]: Invalid value: "hunter2"; aHVudGVyMg==; tok-123456`)
	for _, v := range []string{"hunter2", "aHVudGVyMg==", "tok-123456"} {
		if strings.Contains(msg, v) {
			t.Errorf("scrubbed message %q still contains %q", msg, v)
		}
	}
	if !strings.Contains(msg, `Secret "creds" is invalid`) {
		t.Errorf("scrubbed too much: %q", msg)
	}
}

func TestBackoff(t *testing.T) {
	r := Retry{Duration: time.Second, Factor: 2, MaxDuration: 5 * time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 10: 5 * time.Second} {
		got := backoff(r, n)
		if got < want*9/10 || got > want*11/10 {
			t.Errorf("backoff(%d) = %s, want %s ±10%%", n, got, want)
		}
	}
	if got := backoff(Retry{}, 1); got < 4*time.Second || got > 6*time.Second {
		t.Errorf("default backoff = %s", got)
	}
}

// TestControllerPruneLast: with PruneLast, objects no longer rendered go once the new
// revision is healthy, and the app is OutOfSync until then.
func TestControllerPruneLast(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-ctl-prunelast")
	c, rec := startController(t, e, kubetest.Uniq("t-agent-prunelast"))
	policy := SyncPolicy{Automated: true, Prune: true, PruneLast: true, CreateNamespace: true}
	c.SetDesired(desired(t, "prunelast", ns, policy, kubetest.ConfigMaps(4)...))
	rec.waitAck(t, "prunelast", 1, 30*time.Second)
	d2 := desired(t, "prunelast", ns, policy, kubetest.ConfigMaps(3)...)
	d2.Generation = 2
	c.SetDesired(d2)
	rec.waitAck(t, "prunelast", 2, 30*time.Second)
	s := rec.waitStatus(t, "prunelast", 30*time.Second, "Synced after prune", func(s AppStatus) bool {
		return s.Generation == 2 && s.Sync == SyncSynced && s.Health == "Healthy" && len(s.Resources) == 3
	})
	if s.HealthyRevision != d2.Revision {
		t.Errorf("healthy revision %q, want %q", s.HealthyRevision, d2.Revision)
	}
	if _, ok := e.ConfigMapValue(t, ns, "cm3", "value"); ok {
		t.Error("cm3 not pruned")
	}
}
