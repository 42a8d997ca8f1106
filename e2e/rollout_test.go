package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// Progressive rollout end to end (spec.rollout) on four real clusters: one ring=canary, three
// ring=main. The api app's rollout has three steps: the canary with a soak; main-1 and main-2
// one at a time with a soak; main-3 after an operator's approval. A good commit reaches the
// canary first and the rest only after its soak, in batches; a bad commit (pods never ready on
// any cluster) is rolled back by the canary's agent, the rollout halts, and the main clusters
// never receive it; the hub is killed during a soak and the rollout resumes where it was.

// rolloutHook is the path of the test's webhook sink on the notification receiver.
const rolloutHook = "/hook/rollout"

// rolloutSpec is the api app's spec.rollout (and its health policy: the agents roll a revision
// back when it is not healthy within 15s).
const rolloutSpec = `  health: {progressDeadline: 15s, rollback: auto}
  rollout:
    steps:
    - clusters: {matchLabels: {ring: canary}}
      soak: 8s
    - clusters: [main-1, main-2]
      maxUnavailable: 1
      soak: 3s
    - clusters: {matchLabels: {ring: main}}
      approval: true
    failurePolicy: halt
`

var rolloutMains = []string{"main-1", "main-2", "main-3"}

// rolloutFleet is the test's fleet: four clusters of their own, the hub polling every second
// and notifying a receiver.
type rolloutFleet struct {
	*env
	recv  *notifReceiver
	kubes map[string]kubernetes.Interface
	kube  map[string]*localkube.Cluster
}

func newRolloutFleet(t *testing.T) *rolloutFleet {
	t.Helper()
	var opts []localkube.Options
	for _, name := range append([]string{"canary"}, rolloutMains...) {
		opts = append(opts, localkube.Options{Name: name, AuditLog: true})
	}
	return startRolloutFleet(t, opts, 30*time.Minute, func(gitURL string) string {
		return appSpec{name: "api", prune: true, selfHeal: true, spec: rolloutSpec}.render(gitURL, "environments/staging/api")
	})
}

// startRolloutFleet starts the clusters (the first labelled ring=canary, the others
// ring=main, all env=staging), the demo repository, app api from manifest (given the
// repository's URL) and a fleet whose hub notifies a receiver of the rollout's events.
func startRolloutFleet(t *testing.T, clusters []localkube.Options, timeout time.Duration, manifest func(gitURL string) string) *rolloutFleet {
	t.Helper()
	cs := localkube.StartT(t, clusters...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	dir := t.TempDir()
	e := &env{t: t, ctx: ctx, clusters: cs, appsDir: filepath.Join(dir, "apps"), dir: dir}
	var err error
	e.repo, e.git, err = localfleet.ServeDemo(ctx, dir, "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.git.Stop)
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"api.yaml": manifest(e.git.URL(e.repo.Dir))}); err != nil {
		t.Fatal(err)
	}
	recv := newNotifReceiver(t)
	members := []localfleet.Member{{Cluster: cs[0], Labels: map[string]string{"env": "staging", "ring": "canary"}}}
	for _, c := range cs[1:] {
		members = append(members, localfleet.Member{Cluster: c, Labels: map[string]string{"env": "staging", "ring": "main"}})
	}
	e.fleet, err = localfleet.Start(ctx, localfleet.Options{
		Dir: dir, BinDir: binDir, AppsDir: e.appsDir, PollInterval: time.Second, Heartbeat: time.Second,
		HubArgs: []string{"--notifications", recv.webhookConfig(t, rolloutHook)}, Members: members,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e.fleet.Logs())
		}
		e.fleet.Stop()
	})
	f := &rolloutFleet{env: e, recv: recv, kubes: map[string]kubernetes.Interface{}, kube: map[string]*localkube.Cluster{}}
	for _, c := range cs {
		f.kubes[c.Name], f.kube[c.Name] = kubeClient(t, c), c
	}
	return f
}

// rolloutView is `flotilla rollout status api -o json`.
type rolloutView struct {
	ID       string `json:"id"`
	Revision string `json:"revision"`
	State    string `json:"state"`
	Step     int    `json:"step"`
	Waiting  string `json:"waiting"`
	Reason   string `json:"reason"`
	Steps    []struct {
		Number   int    `json:"number"`
		State    string `json:"state"`
		Clusters []struct {
			Name  string    `json:"name"`
			Phase string    `json:"phase"`
			Since time.Time `json:"since"`
		} `json:"clusters"`
	} `json:"steps"`
}

// phase returns a cluster's phase and since when.
func (v *rolloutView) phase(cluster string) (string, time.Time) {
	for _, s := range v.Steps {
		for _, c := range s.Clusters {
			if c.Name == cluster {
				return c.Phase, c.Since
			}
		}
	}
	return "", time.Time{}
}

func (f *rolloutFleet) rollout(ctx context.Context) (*rolloutView, error) {
	out, err := f.fleet.CLI(ctx, "rollout", "status", "api", "-o", "json")
	if err != nil {
		return nil, err
	}
	var resp struct{ Items []rolloutView }
	if err := json.Unmarshal(out, &resp); err != nil || len(resp.Items) != 1 {
		return nil, fmt.Errorf("rollout status -o json: %v: %s", err, out)
	}
	return &resp.Items[0], nil
}

// waitRollout waits until the rollout of rev satisfies cond, and returns it.
func (f *rolloutFleet) waitRollout(t *testing.T, rev, what string, timeout time.Duration, cond func(*rolloutView) bool) *rolloutView {
	t.Helper()
	var v *rolloutView
	testwait.For(t, timeout, what, func(ctx context.Context) (bool, error) {
		got, err := f.rollout(ctx)
		if err != nil {
			return false, nil // the hub may be restarting
		}
		v = got
		return v.Revision == rev && cond(v), nil
	})
	return v
}

// firstWrite returns when cluster's agent first wrote the api Deployment after since, or the
// zero time.
func (f *rolloutFleet) firstWrite(t *testing.T, cluster string, since time.Time) time.Time {
	t.Helper()
	if w := apiWrites(t, f.kube[cluster], since); len(w) > 0 {
		return w[0].StageTimestamp
	}
	return time.Time{}
}

// resourceVersions returns the resourceVersions of the api namespace's Deployment, Service and
// ConfigMaps on cluster.
func (f *rolloutFleet) resourceVersions(t *testing.T, cluster string) map[string]string {
	t.Helper()
	c := f.kubes[cluster]
	out := map[string]string{}
	d, err := c.AppsV1().Deployments("api").Get(f.ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out["Deployment/api"] = d.ResourceVersion
	svc, err := c.CoreV1().Services("api").Get(f.ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out["Service/api"] = svc.ResourceVersion
	cms, err := c.CoreV1().ConfigMaps("api").List(f.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		out["ConfigMap/"+cm.Name] = cm.ResourceVersion
	}
	return out
}

// commit commits api's staging overlay at tag (failing: pods never ready).
func (f *rolloutFleet) commit(t *testing.T, tag string, failing bool) (string, time.Time) {
	t.Helper()
	at := time.Now()
	rev, err := f.repo.Commit("api: "+tag, map[string]string{"environments/staging/api/kustomization.yaml": stagingAPIOverlay(tag, failing)})
	if err != nil {
		t.Fatal(err)
	}
	return rev, at
}

// notifications counts the rollout notifications of event for api.
func (f *rolloutFleet) notifications(t *testing.T, event string) []webhookNotification {
	return f.recv.events(t, rolloutHook, event, "", "api")
}

// TestRolloutAcrossFleet is the whole story on four clusters; see the top of this file.
func TestRolloutAcrossFleet(t *testing.T) {
	t.Parallel()
	f := newRolloutFleet(t)
	rev0, err := f.repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.fleet.WaitStatus(f.ctx, 5*time.Minute, allAt(rev0, 4)); err != nil {
		t.Fatal(err)
	}
	v, err := f.rollout(f.ctx)
	if err != nil || v.State != "Completed" || v.Revision != rev0 {
		t.Fatalf("the first revision is the baseline, everywhere at once: %+v, %v", v, err)
	}

	t.Run("good commit: canary, then batches, then approval", func(t *testing.T) { f.goodCommit(t, rev0) })
	t.Run("bad commit: canary rolls back, rollout halts, main untouched", func(t *testing.T) { f.badCommit(t) })
	t.Run("hub killed during the canary's soak: the rollout resumes", func(t *testing.T) { f.hubKilledDuringSoak(t) })

	for event, want := range map[string]int{"rollout-started": 3, "rollout-halted": 1, "rollout-waiting-approval": 2, "rollout-completed": 2} {
		testwait.For(t, 30*time.Second, "the "+event+" notifications", func(context.Context) (bool, error) {
			return len(f.notifications(t, event)) >= want, nil
		})
		if got := len(f.notifications(t, event)); got != want {
			t.Errorf("%d %s notifications, want %d", got, event, want)
		}
	}
	t.Logf("step-completed notifications: %d", len(f.notifications(t, "step-completed")))
}

// goodCommit: the canary gets the commit first; main-1 and main-2 only after the canary's
// soak, one at a time; main-3 only after approval.
func (f *rolloutFleet) goodCommit(t *testing.T, rev0 string) {
	good, committed := f.commit(t, "1.0.1", false)
	v := f.waitRollout(t, good, "the canary soaking the good commit", 3*time.Minute, func(v *rolloutView) bool {
		p, _ := v.phase("canary")
		return p == "Soaking" || p == "Done"
	})
	if p, _ := v.phase("canary"); p == "Soaking" {
		for _, m := range rolloutMains {
			if w := f.firstWrite(t, m, committed); !w.IsZero() {
				t.Errorf("%s written at %s while the canary soaks", m, w.Format(time.StampMilli))
			}
		}
	}
	v = f.waitRollout(t, good, "the rollout waiting for approval", 5*time.Minute, func(v *rolloutView) bool { return v.State == "WaitingApproval" })
	_, canaryDone := v.phase("canary")
	_, main1Done := v.phase("main-1")
	_, main2Done := v.phase("main-2")
	w1, w2 := f.firstWrite(t, "main-1", committed), f.firstWrite(t, "main-2", committed)
	if w1.IsZero() || w2.IsZero() || !w1.After(canaryDone) || !w2.After(main1Done) {
		t.Errorf("order: canary done %s, main-1 first write %s, done %s, main-2 first write %s",
			canaryDone.Format(time.StampMilli), w1.Format(time.StampMilli), main1Done.Format(time.StampMilli), w2.Format(time.StampMilli))
	}
	t.Logf("canary step done → main-1's first apply: %s", w1.Sub(canaryDone).Round(time.Millisecond))
	t.Logf("main-1 done (batch 1) → main-2's first apply (batch 2): %s", w2.Sub(main1Done).Round(time.Millisecond))

	// Held for approval: main-3 keeps its revision, and says so in `flotilla status`.
	if it := mustStatus(t, f.env, "main-3", "api"); it.Message != "Waiting for rollout step 3 of "+v.ID || it.DesiredRevision != rev0 {
		t.Errorf("main-3 while waiting for approval: message %q, desired %s", it.Message, it.DesiredRevision)
	}
	testwait.Holds(t, 3*time.Second, "main-3 untouched until approved", func(ctx context.Context) error {
		if w := f.firstWrite(t, "main-3", committed); !w.IsZero() {
			return fmt.Errorf("main-3 written at %s before approval", w.Format(time.StampMilli))
		}
		return nil
	})
	approved := time.Now()
	if out, err := f.fleet.CLI(f.ctx, "rollout", "approve", "api"); err != nil {
		t.Fatalf("rollout approve: %v: %s", err, out)
	}
	f.waitRollout(t, good, "the rollout completed", 3*time.Minute, func(v *rolloutView) bool { return v.State == "Completed" })
	w3 := f.firstWrite(t, "main-3", committed)
	t.Logf("approval (main-2 done %s before) → main-3's first apply: %s", approved.Sub(main2Done).Round(time.Millisecond), w3.Sub(approved).Round(time.Millisecond))
	if _, err := f.fleet.WaitStatus(f.ctx, 2*time.Minute, allAt(good, 4)); err != nil {
		t.Fatal(err)
	}
}

// badCommit: pods never become ready anywhere; the canary's agent rolls the commit back, the
// rollout halts, and the main clusters never receive it.
func (f *rolloutFleet) badCommit(t *testing.T) {
	before := map[string]map[string]string{}
	for _, m := range rolloutMains {
		before[m] = f.resourceVersions(t, m)
	}
	bad, _ := f.commit(t, "1.1.0", true)
	v := f.waitRollout(t, bad, "the rollout halted", 4*time.Minute, func(v *rolloutView) bool { return v.State == "Halted" })
	// The canary's agent reports the revision Degraded at its progress deadline and rolls it
	// back: whichever report the hub judges first halts the rollout.
	if !strings.HasPrefix(v.Reason, "canary: Degraded on "+bad[:12]) && !strings.HasPrefix(v.Reason, "canary: its agent rolled "+bad[:12]+" back") {
		t.Errorf("halt reason %q", v.Reason)
	}
	t.Logf("halted: %s", v.Reason)
	items, err := f.fleet.WaitStatus(f.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "canary", "api")
		return it != nil && strings.HasPrefix(it.Message, "RolledBack from "+bad[:12])
	})
	if err != nil {
		t.Fatalf("the canary's agent did not roll the bad commit back: %v", err)
	}
	// Nothing of the bad commit reaches the main ring, however long it is given.
	testwait.Holds(t, 5*time.Second, "the main clusters untouched", func(ctx context.Context) error {
		for _, m := range rolloutMains {
			if n := f.desiredSentTo(t, m, bad); n != 0 {
				return fmt.Errorf("the hub sent the bad revision to %s %d times", m, n)
			}
			if got := f.resourceVersions(t, m); fmt.Sprint(got) != fmt.Sprint(before[m]) {
				return fmt.Errorf("%s's api objects changed: %v → %v", m, before[m], got)
			}
		}
		return nil
	})
	for _, m := range rolloutMains {
		if it := statusOf(items, m, "api"); !strings.HasPrefix(it.Message, "Rollout "+v.ID+" halted") || it.Health != "Healthy" {
			t.Errorf("%s: %+v", m, it)
		}
	}
}

// desiredSentTo counts the hub's log lines saying it sent rev of api to cluster.
func (f *rolloutFleet) desiredSentTo(t *testing.T, cluster, rev string) int {
	t.Helper()
	return (&rollbackFleet{env: f.env}).desiredSent(t, cluster, "api", rev)
}

// hubKilledDuringSoak: a fixed commit supersedes the halted rollout and starts at the canary;
// the hub is killed while the canary soaks and started again; the rollout carries on from the
// same step (the canary is not sent the commit again) and completes.
func (f *rolloutFleet) hubKilledDuringSoak(t *testing.T) {
	fixed, committed := f.commit(t, "1.2.0", false)
	v := f.waitRollout(t, fixed, "the canary soaking the fixed commit", 3*time.Minute, func(v *rolloutView) bool {
		p, _ := v.phase("canary")
		return p == "Soaking" || p == "Done"
	})
	p, since := v.phase("canary")
	f.fleet.Hub.Kill()
	killed := time.Now()
	t.Logf("hub killed with the canary %s (since %s, %s before)", p, since.Format(time.StampMilli), killed.Sub(since).Round(time.Millisecond))
	if p != "Soaking" {
		t.Errorf("the canary's soak was over before the hub was killed: the kill did not happen during the soak")
	}
	canaryWrites := len(apiWrites(t, f.kube["canary"], committed))
	sentBefore := f.desiredSentTo(t, "canary", fixed)
	starting := time.Now() // from here the new hub process runs; StartHub returns once the CLI reaches it
	if err := f.fleet.StartHub(f.ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	v = f.waitRollout(t, fixed, "the rollout waiting for approval after the restart", 5*time.Minute, func(v *rolloutView) bool { return v.State == "WaitingApproval" })
	_, canaryDone := v.phase("canary")
	t.Logf("hub down %s; the canary's step done %s after the restart, %s after it began to soak (soak 8s: not started again by the restart)",
		restarted.Sub(killed).Round(time.Millisecond), canaryDone.Sub(restarted).Round(time.Millisecond), canaryDone.Sub(since).Round(time.Millisecond))
	if n := len(apiWrites(t, f.kube["canary"], committed)); n != canaryWrites {
		t.Errorf("the canary's api Deployment written %d more times after the restart", n-canaryWrites)
	}
	for _, m := range rolloutMains[:2] {
		if w := f.firstWrite(t, m, committed); w.Before(starting) {
			t.Errorf("%s written at %s, before the hub was started again", m, w.Format(time.StampMilli))
		}
	}
	t.Logf("desired sent to the canary for the fixed commit: %d before the kill, %d in all", sentBefore, f.desiredSentTo(t, "canary", fixed))
	if out, err := f.fleet.CLI(f.ctx, "rollout", "approve", "api"); err != nil {
		t.Fatalf("rollout approve: %v: %s", err, out)
	}
	f.waitRollout(t, fixed, "the rollout completed", 3*time.Minute, func(v *rolloutView) bool { return v.State == "Completed" })
	if _, err := f.fleet.WaitStatus(f.ctx, 2*time.Minute, allAt(fixed, 4)); err != nil {
		t.Fatal(err)
	}
}

// TestRolloutHubReplicasCoordinatorKilled: three hub replicas; worker-a (staging-a, then
// production-a) gets a rollout whose first step soaks 10s. The replica that coordinates it is
// killed while staging-a soaks: a surviving replica takes the rollout over from its copy of
// the record, at the same step, and production-a gets the commit only after staging-a's
// soak; staging-a is not sent the commit again.
func TestRolloutHubReplicasCoordinatorKilled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	f := startHAFleet(t, ctx)
	hubs := f.hubs
	rev1, _ := f.repo.Head()
	for i := range hubs.Hubs {
		if _, err := waitReplicaStatus(ctx, hubs, i, 3*time.Minute, fleetAt(f.names, rev1)); err != nil {
			t.Fatal(err)
		}
	}
	appsDir := filepath.Join(f.dir, "apps")
	current, err := os.ReadFile(filepath.Join(appsDir, "worker-a.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	app := strings.Replace(string(current), "  syncPolicy:", `  rollout:
    steps:
    - {clusters: [staging-a], soak: 10s}
    - {}
  syncPolicy:`, 1)
	if err := localfleet.WriteFiles(appsDir, map[string]string{"worker-a.yaml": app}); err != nil {
		t.Fatal(err)
	}
	status := func(ctx context.Context, i int) (*rolloutView, string, error) {
		out, _, err := hubs.CLI(ctx, i, "rollout", "status", "worker-a", "-o", "json")
		if err != nil {
			return nil, "", err
		}
		var resp struct {
			Items []struct {
				rolloutView
				Coordinator string `json:"coordinator"`
			}
		}
		if err := json.Unmarshal(out, &resp); err != nil || len(resp.Items) != 1 {
			return nil, "", fmt.Errorf("rollout status: %v: %s", err, out)
		}
		return &resp.Items[0].rolloutView, resp.Items[0].Coordinator, nil
	}
	// waitRollout waits, asking replica i, until cond holds of worker-a's rollout.
	waitRollout := func(i int, what string, timeout time.Duration, cond func(*rolloutView, string) bool) (*rolloutView, string) {
		t.Helper()
		var v *rolloutView
		var coordinator string
		testwait.For(t, timeout, what, func(ctx context.Context) (bool, error) {
			got, c, err := status(ctx, i)
			if err != nil {
				return false, nil // a replica just killed may still be asked
			}
			v, coordinator = got, c
			return cond(v, c), nil
		})
		return v, coordinator
	}
	waitRollout(0, "worker-a's baseline", time.Minute, func(v *rolloutView, _ string) bool { return v.State == "Completed" && v.Revision == rev1 })

	committed := time.Now()
	rev2, err := f.repo.Commit("worker: queue rollout", map[string]string{
		"base/worker/configmap.yaml": strings.Replace(localfleet.DemoManifests("1.0.0")["base/worker/configmap.yaml"], "QUEUE: jobs", "QUEUE: rollout", 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	v, coordinator := waitRollout(0, "staging-a soaking the commit", 3*time.Minute, func(v *rolloutView, _ string) bool {
		p, _ := v.phase("staging-a")
		return v.Revision == rev2 && p == "Soaking"
	})
	_, soaking := v.phase("staging-a")
	victim := slices.IndexFunc(hubs.Hubs, func(h *localfleet.Replica) bool { return h.Name == coordinator })
	if victim < 0 {
		t.Fatalf("coordinator %q is none of the replicas", coordinator)
	}
	stagingA := f.members[0]
	productionA := f.members[2]
	writesBefore := len(workerWrites(t, stagingA.kube, "worker-a", committed))
	hubs.Hubs[victim].Process.Kill()
	killed := time.Now()
	t.Logf("killed the coordinator %s with staging-a soaking for %s", coordinator, killed.Sub(soaking).Round(time.Millisecond))
	if w := workerWrites(t, productionA.kube, "worker-a", committed); len(w) > 0 {
		t.Fatalf("production-a written at %s, during staging-a's soak", w[0].StageTimestamp.Format(time.StampMilli))
	}

	survivor := (victim + 1) % len(hubs.Hubs)
	v, next := waitRollout(survivor, "the rollout completed by a surviving replica", 5*time.Minute, func(v *rolloutView, c string) bool {
		return v.Revision == rev2 && v.State == "Completed" && c != coordinator
	})
	_, stagingDone := v.phase("staging-a")
	t.Logf("%s took over; staging-a's step done %s after the kill, %s after it began to soak (soak 10s)", next,
		stagingDone.Sub(killed).Round(time.Millisecond), stagingDone.Sub(soaking).Round(time.Millisecond))
	w := workerWrites(t, productionA.kube, "worker-a", committed)
	if len(w) == 0 || !w[0].StageTimestamp.After(stagingDone) {
		t.Errorf("production-a's first write of worker-a %v, want one after staging-a's step was done (%s)", w, stagingDone.Format(time.StampMilli))
	} else {
		t.Logf("staging-a's step done → production-a's first apply: %s", w[0].StageTimestamp.Sub(stagingDone).Round(time.Millisecond))
	}
	if n := len(workerWrites(t, stagingA.kube, "worker-a", committed)) - writesBefore; n != 0 {
		t.Errorf("staging-a's worker-a written %d more times after the kill: its step was repeated", n)
	}
	assertHAWorkersQueues(t, ctx, []haMember{stagingA, productionA}, func(haMember) string { return "rollout" })
}

// workerWrites returns the agents' writes in namespace ns of cluster c after since, from its
// audit log.
func workerWrites(t *testing.T, c *localkube.Cluster, ns string, since time.Time) []auditEvent {
	t.Helper()
	var out []auditEvent
	for _, ev := range agentRequests(t, c, "") {
		if strings.Contains(ev.RequestURI, "/namespaces/"+ns+"/") && ev.StageTimestamp.After(since) {
			out = append(out, ev)
		}
	}
	return out
}
