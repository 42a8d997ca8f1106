package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// Automatic rollback end to end (health.rollback: auto): a revision whose api pods on staging
// never become ready is returned by the staging agent to the last healthy revision once its
// progress deadline has passed, with the hub up or down. The hub shows the app RolledBack and
// notifies once; the rolled-back revision is not applied again until Git moves on for the app;
// a later good commit rolls forward.

// rollbackHook is the path of the test's webhook sink on the notification receiver.
const rollbackHook = "/hook/rollback"

// apiDeploymentPath is the URL path of the api Deployment on an API server.
const apiDeploymentPath = "/apis/apps/v1/namespaces/api/deployments/api"

// goodAPIImage is the api image of the healthy revision the tests roll back to.
const goodAPIImage = "registry.example/api:1.0.1"

// TestAutoRollback: with the hub up, the agent rolls the bad revision back; status shows it
// RolledBack, one rolled-back notification is sent, the bad revision is not re-applied across
// hub polls and a commit elsewhere, and a later good commit rolls forward.
func TestAutoRollback(t *testing.T) {
	t.Parallel()
	f := newRollbackFleet(t, 5*time.Second)
	bad, applied := f.breakStaging(t)
	deadlineAt := applied.Add(f.deadline)

	backAt := f.waitAPIBackAtGood(t)
	t.Logf("deadline passed → previous revision Healthy again on staging (seen from outside): %s",
		backAt.Sub(deadlineAt).Round(time.Millisecond))
	rollback := f.rollbackWrite(t, applied)
	if rollback.Before(deadlineAt) {
		t.Errorf("the agent rolled back at %s, %s before the progress deadline",
			rollback.Format(time.StampMilli), deadlineAt.Sub(rollback).Round(time.Millisecond))
	}
	f.assertRolledBackStatus(t, bad)
	f.assertRollbackEvent(t, bad)
	f.waitRolledBackNotification(t)

	// A commit that leaves api's objects as they are is not Git moving on for api: the hub
	// polls (every second) and applies it to worker, and api on staging stays where it is.
	f.commitApplied(t, "worker: QUEUE changed", "worker", map[string]string{
		"base/worker/configmap.yaml": strings.Replace(localfleet.DemoManifests("1.0.0")["base/worker/configmap.yaml"],
			"QUEUE: jobs", "QUEUE: rollback", 1),
	})
	f.assertNotReapplied(t, 6*time.Second)
	if it := mustStatus(t, f.env, "staging", "api"); it.Health != "Degraded" || !strings.HasPrefix(it.Message, "RolledBack from "+bad[:12]+": ") {
		t.Errorf("staging api no longer shown rolled back after a commit elsewhere: %+v", it)
	}

	f.rollForward(t, bad)
}

// TestAutoRollbackHubDown: the hub is killed as soon as the staging agent has acknowledged the
// bad revision, before its progress deadline; the agent rolls back on its own. The restarted hub
// shows the rollback, notifies it once, sends the bad revision again (it is still Git's) and the
// agent writes nothing for it; a later good commit rolls forward.
func TestAutoRollbackHubDown(t *testing.T) {
	t.Parallel()
	// The deadline leaves the test ample time, even on a loaded machine, to kill the hub
	// after the agent applied the bad revision and before the agent may roll it back.
	f := newRollbackFleet(t, 20*time.Second)
	bad, applied := f.breakStaging(t)
	deadlineAt := applied.Add(f.deadline)
	// Killed, not stopped: a graceful stop waits up to 5s for the agents' streams to end, and
	// the hub must be gone before the deadline.
	f.fleet.Hub.Kill()
	stopped := time.Now()
	if !stopped.Before(deadlineAt) {
		t.Fatalf("the hub was killed %s after the progress deadline had passed: the agent may have rolled back with the hub up",
			stopped.Sub(deadlineAt).Round(time.Millisecond))
	}
	t.Logf("hub killed %s before the progress deadline", deadlineAt.Sub(stopped).Round(time.Millisecond))

	backAt := f.waitAPIBackAtGood(t)
	t.Logf("deadline passed → previous revision Healthy again on staging, hub down (seen from outside): %s",
		backAt.Sub(deadlineAt).Round(time.Millisecond))
	if rollback := f.rollbackWrite(t, applied); rollback.Before(stopped) {
		t.Fatalf("the rollback was written at %s, before the hub was killed at %s",
			rollback.Format(time.StampMilli), stopped.Format(time.StampMilli))
	}
	f.assertRollbackEvent(t, bad)
	if done, _ := f.fleet.Hub.Exited(); !done {
		t.Fatal("the hub is running: the rollback was not made without it")
	}

	sentBefore := f.desiredSent(t, "staging", "api", bad)
	if err := f.fleet.StartHub(f.ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	f.assertRolledBackStatus(t, bad)
	t.Logf("restarted hub shows the rollback after %s", time.Since(restarted).Round(time.Millisecond))
	f.waitRolledBackNotification(t)
	// The restarted hub sends Git's revision, the bad one, again: the agent holds.
	testwait.For(t, 30*time.Second, "the restarted hub sent the bad revision to staging again", func(context.Context) (bool, error) {
		return f.desiredSent(t, "staging", "api", bad) > sentBefore, nil
	})
	f.assertNotReapplied(t, 6*time.Second)

	f.rollForward(t, bad)
}

// rollbackFleet is a test fleet (hub polling every second, notifications to a receiver) whose
// api app rolls back automatically, with a revision that is healthy on staging.
type rollbackFleet struct {
	*env
	recv     *notifReceiver
	deadline time.Duration
	staging  kubernetes.Interface
	// good is the last healthy revision: the rollback target.
	good string
	// rolledBack is when the staging agent wrote the rollback to the api Deployment.
	rolledBack time.Time
}

func newRollbackFleet(t *testing.T, deadline time.Duration) *rollbackFleet {
	t.Helper()
	recv := newNotifReceiver(t)
	e := newEnv(t, envOptions{pollInterval: time.Second, hubArgs: []string{"--notifications", recv.webhookConfig(t, rollbackHook)}})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	e.setApps(t, appSpec{name: "api", prune: true, selfHeal: true,
		health: fmt.Sprintf("{progressDeadline: %s, rollback: auto}", deadline)})
	good := e.commitGoodStagingAPI(t)
	return &rollbackFleet{env: e, recv: recv, deadline: deadline, staging: kubeClient(t, e.clusters[0]), good: good}
}

// commitGoodStagingAPI commits a revision that changes api's objects on staging, so that the
// agent holds it under its own name (a commit rendering the same objects is not sent again),
// and waits until the agent reports it Healthy as its last healthy revision: from then on it
// is the rollback target.
func (e *env) commitGoodStagingAPI(t *testing.T) string {
	t.Helper()
	good, err := e.repo.Commit("api: 1.0.1 on staging", map[string]string{
		"environments/staging/api/kustomization.yaml": stagingAPIOverlay("1.0.1", false),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "staging", "api")
		return it != nil && it.AppliedRevision == good && it.Health == "Healthy" && it.HealthyRevision == good
	}); err != nil {
		t.Fatal(err)
	}
	return good
}

// breakStaging commits a revision whose api pods on staging never become ready and waits
// until the staging agent has applied it. It returns the revision and when the agent wrote it
// to the api Deployment: the progress deadline runs from then.
func (f *rollbackFleet) breakStaging(t *testing.T) (string, time.Time) {
	t.Helper()
	committed := time.Now()
	bad, err := f.repo.Commit("api: 1.1.0 on staging (pods never ready)", map[string]string{
		"environments/staging/api/kustomization.yaml": stagingAPIOverlay("1.1.0", true),
	})
	if err != nil {
		t.Fatal(err)
	}
	items, err := f.fleet.WaitStatus(f.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "staging", "api")
		return it != nil && it.AppliedRevision == bad
	})
	if err != nil {
		t.Fatal(err)
	}
	writes := apiWrites(t, f.clusters[0], committed)
	if len(writes) == 0 {
		t.Fatal("the agent applied the bad revision without writing the api Deployment")
	}
	it := statusOf(items, "staging", "api")
	t.Logf("bad revision applied on staging; status seen %s later: health %s, healthy revision %s",
		time.Since(writes[0].StageTimestamp).Round(time.Millisecond), it.Health, it.HealthyRevision)
	return bad, writes[0].StageTimestamp
}

// waitAPIBackAtGood waits until the staging api Deployment runs the good template again with
// every replica updated and ready, and returns when that was first seen.
func (f *rollbackFleet) waitAPIBackAtGood(t *testing.T) time.Time {
	t.Helper()
	testwait.For(t, 2*time.Minute, "staging api back at the healthy revision", func(ctx context.Context) (bool, error) {
		d, err := f.staging.AppsV1().Deployments("api").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return apiRuns(d, goodAPIImage) && deploymentComplete(d), nil
	})
	return time.Now()
}

// rollbackWrite returns when the agent wrote the api Deployment back, the first write of it
// after the bad revision's (at applied), and remembers it.
func (f *rollbackFleet) rollbackWrite(t *testing.T, applied time.Time) time.Time {
	t.Helper()
	writes := apiWrites(t, f.clusters[0], applied)
	if len(writes) == 0 {
		t.Fatal("the api Deployment is back at the healthy revision, but the audit log shows no write by the agent")
	}
	f.rolledBack = writes[0].StageTimestamp
	return f.rolledBack
}

// assertRolledBackStatus waits until `flotilla status` shows api on staging rolled back from
// bad to the good revision, and production untouched.
func (f *rollbackFleet) assertRolledBackStatus(t *testing.T, bad string) {
	t.Helper()
	items, err := f.fleet.WaitStatus(f.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		it, pr := statusOf(items, "staging", "api"), statusOf(items, "production", "api")
		return it != nil && it.Health == "Degraded" && strings.HasPrefix(it.Message, "RolledBack from "+bad[:12]+": ") &&
			pr != nil && pr.Health != "Unknown" // production's agent reconnected after a hub restart
	})
	if err != nil {
		t.Fatal(err)
	}
	it := statusOf(items, "staging", "api")
	t.Logf("staging api: sync %s, health %s, message %q", it.Sync, it.Health, it.Message)
	if it.Sync != "OutOfSync" || it.DesiredRevision != bad || it.AppliedRevision != f.good || it.HealthyRevision != f.good {
		t.Errorf("staging api rolled back: sync %s (want OutOfSync), desired %s (want %s), applied %s and healthy %s (want %s)",
			it.Sync, it.DesiredRevision, bad, it.AppliedRevision, it.HealthyRevision, f.good)
	}
	if want := "not healthy within " + f.deadline.String(); !strings.Contains(it.Message, want) {
		t.Errorf("staging api: the rollback message does not say %q: %q", want, it.Message)
	}
	if pr := statusOf(items, "production", "api"); pr == nil || pr.Health != "Healthy" || pr.Sync != "Synced" || strings.Contains(pr.Message, "RolledBack") {
		t.Errorf("production api (its objects unchanged by the bad revision): %+v", pr)
	}
}

// assertRollbackEvent checks the Kubernetes Event the staging agent recorded: one RolledBack
// naming both revisions.
func (f *rollbackFleet) assertRollbackEvent(t *testing.T, bad string) {
	t.Helper()
	var found []string
	for _, ns := range []string{"api", "flotilla-system"} {
		evs, err := f.staging.CoreV1().Events(ns).List(f.ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs.Items {
			if ev.Reason == "RolledBack" && ev.Source.Component == "flotilla-agent" {
				found = append(found, ev.Message)
			}
		}
	}
	if len(found) != 1 || !strings.Contains(found[0], bad) || !strings.Contains(found[0], f.good) {
		t.Errorf("RolledBack Events on staging: %q; want one naming %s and %s", found, bad, f.good)
	}
}

// waitRolledBackNotification waits for the rolled-back notification of api on staging.
func (f *rollbackFleet) waitRolledBackNotification(t *testing.T) {
	t.Helper()
	testwait.For(t, 30*time.Second, "a rolled-back notification", func(context.Context) (bool, error) {
		return len(f.recv.events(t, rollbackHook, "rolled-back", "staging", "api")) > 0, nil
	})
}

// assertNotReapplied checks, for d, that the staging agent makes no write to the api Deployment
// and that it stays at the good template and generation.
func (f *rollbackFleet) assertNotReapplied(t *testing.T, d time.Duration) {
	t.Helper()
	writes := len(apiWrites(t, f.clusters[0], f.rolledBack))
	dep, err := f.staging.AppsV1().Deployments("api").Get(f.ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gen := dep.Generation
	testwait.Holds(t, d, "the bad revision not re-applied", func(ctx context.Context) error {
		if n := len(apiWrites(t, f.clusters[0], f.rolledBack)) - writes; n != 0 {
			return fmt.Errorf("the agent wrote the api Deployment %d times after the rollback", n)
		}
		dep, err := f.staging.AppsV1().Deployments("api").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if dep.Generation != gen || !apiRuns(dep, goodAPIImage) {
			return fmt.Errorf("api Deployment changed: generation %d → %d, image %s, failing label %t", gen, dep.Generation,
				dep.Spec.Template.Spec.Containers[0].Image, dep.Spec.Template.Labels[localkube.FailingPodLabel] != "")
		}
		return nil
	})
	if writes != 0 {
		t.Errorf("the agent wrote the api Deployment %d times after the rollback", writes)
	}
}

// rollForward commits a good revision for staging and waits until api is Healthy at it; then
// checks that the rollback was notified exactly once, with the commit's details.
func (f *rollbackFleet) rollForward(t *testing.T, bad string) {
	t.Helper()
	next, err := f.repo.Commit("api: 1.2.0 on staging", map[string]string{
		"environments/staging/api/kustomization.yaml": stagingAPIOverlay("1.2.0", false),
	})
	if err != nil {
		t.Fatal(err)
	}
	items, err := f.fleet.WaitStatus(f.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "staging", "api")
		// HealthyRevision too: right after a sync the agent may still report the health it
		// last assessed, that of the revision rolled back to.
		return it != nil && it.AppliedRevision == next && it.Health == "Healthy" && it.Sync == "Synced" && it.HealthyRevision == next
	})
	if err != nil {
		t.Fatal(err)
	}
	if it := statusOf(items, "staging", "api"); strings.Contains(it.Message, "RolledBack") {
		t.Errorf("staging api rolled forward still shown rolled back: %q", it.Message)
	}
	assertAPI(t, f.ctx, f.clusters[0], 1, "registry.example/api:1.2.0")

	n := f.recv.events(t, rollbackHook, "rolled-back", "staging", "api")
	if len(n) != 1 {
		t.Fatalf("%d rolled-back notifications for api on staging, want 1: %+v", len(n), n)
	}
	want := fmt.Sprintf("api on staging: revision %s did not become healthy: rolled back to %s", bad[:8], f.good[:8])
	if n[0].Revision != bad || n[0].Summary != want || n[0].Author != "Flotilla Demo <demo@flotilla.dev>" ||
		n[0].Message != "api: 1.1.0 on staging (pods never ready)" {
		t.Errorf("rolled-back notification %+v; want revision %s, summary %q and the commit's author and message", n[0], bad, want)
	}
	// Degraded once, at the revision that failed: not at the healthy one the agent returned to
	// (what a hub that learns of the rollback only after it was made would otherwise say).
	if d := f.recv.events(t, rollbackHook, "health-degraded", "staging", "api"); len(d) != 1 || d[0].Revision != bad {
		t.Errorf("health-degraded notifications for api on staging: %+v; want one, for revision %s", d, bad)
	}
	if p := f.recv.events(t, rollbackHook, "rolled-back", "production", "api"); len(p) != 0 {
		t.Errorf("rolled-back notifications for production: %+v", p)
	}
	var seen []string
	for _, ev := range []string{"sync-succeeded", "health-degraded", "rolled-back", "health-recovered"} {
		for _, n := range f.recv.events(t, rollbackHook, ev, "staging", "api") {
			seen = append(seen, fmt.Sprintf("%s %s@%s", n.Time.Format("15:04:05.000"), ev, n.Revision[:8]))
		}
	}
	slices.Sort(seen)
	t.Logf("notifications for api on staging: %s", strings.Join(seen, ", "))
}

// desiredSent counts the hub's log lines saying it sent rev of app to cluster.
func (f *rollbackFleet) desiredSent(t *testing.T, cluster, app, rev string) int {
	t.Helper()
	b, err := os.ReadFile(f.fleet.Hub.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `msg="desired sent"`) && strings.Contains(line, "cluster="+cluster+" ") &&
			strings.Contains(line, "app="+app+" ") && strings.Contains(line, "revision="+rev) {
			n++
		}
	}
	return n
}

// apiWrites returns the agent's writes of the api Deployment after since, from the audit log.
func apiWrites(t *testing.T, c *localkube.Cluster, since time.Time) []auditEvent {
	t.Helper()
	var out []auditEvent
	for _, ev := range agentRequests(t, c, "") {
		path, _, _ := strings.Cut(ev.RequestURI, "?")
		if path == apiDeploymentPath && ev.StageTimestamp.After(since) {
			out = append(out, ev)
		}
	}
	return out
}

// apiRuns reports whether the api Deployment's template is the healthy one: image, and no
// failing label.
func apiRuns(d *appsv1.Deployment, image string) bool {
	_, failing := d.Spec.Template.Labels[localkube.FailingPodLabel]
	return !failing && d.Spec.Template.Spec.Containers[0].Image == image
}

// deploymentComplete reports whether the Deployment's rollout of its current template is done:
// every replica updated, ready and available, none of an older template left.
func deploymentComplete(d *appsv1.Deployment) bool {
	want := *d.Spec.Replicas
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.Replicas == want && s.UpdatedReplicas == want &&
		s.ReadyReplicas == want && s.AvailableReplicas == want
}
