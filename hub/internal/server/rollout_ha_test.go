package server

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/rollout"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// rolloutReplica is a replica of the HA rollout test with its coordinator; its rounds are
// played by the test, as the reconciler plays them.
type rolloutReplica struct {
	*replicaUnderTest
	coord *rollout.Coordinator

	mu       sync.Mutex
	notified []string
}

// round renders app at commit for the clusters this replica owns, as Reconciler.Round does.
func (r *rolloutReplica) round(t *testing.T, app *apps.Application, commit string, clusters []apps.ClusterVars) {
	t.Helper()
	mine := r.srv.cfg.Ownership.Owned()
	for _, c := range clusters {
		if !mine(c.Name) {
			continue
		}
		rev, _, held := r.coord.Revision(app, c, commit)
		switch {
		case held && rev == "":
			continue
		case !held:
			rev = commit
		}
		r.fleet.SetDesired(fleet.Desired{Cluster: c.Name, App: app.Name, Revision: rev, Bundle: configMapBundle(t, app.Name, rev)})
	}
	r.fleet.SetApps([]*fleet.AppInfo{{Name: app.Name, Destination: app.Destination, Revision: commit, Rollout: app.Rollout}})
}

// healthy makes cluster's agent (connected to this replica) apply what is desired and report
// it Synced and Healthy.
func (r *rolloutReplica) healthy(cluster, app string) {
	d := r.fleet.Snapshot(cluster)[app]
	r.fleet.Seen(cluster, "test", true)
	r.fleet.Ack(cluster, app, d.Generation, d.Revision, d.Digest())
	r.fleet.Status(cluster, fleet.Report{App: app, Sync: fleet.SyncSynced, Health: "Healthy", Generation: d.Generation,
		AppliedRevision: d.Revision, AppliedDigest: d.Digest(), HealthyRevision: d.Revision, AppliedAt: time.Now()})
}

func (r *rolloutReplica) desired(cluster, app string) string {
	if d := r.fleet.Snapshot(cluster)[app]; d != nil {
		return d.Revision
	}
	return ""
}

// TestRolloutCoordinatedAcrossReplicas: two replicas, the canary on one, the main cluster on
// the other; the first coordinates the app. The coordinator judges the main cluster from its
// owner's status rows; the other replica holds its cluster by the coordinator's record and
// says so in status; `flotilla rollout` asked of it reaches the coordinator (an action audited
// once, where it was asked). When the coordinator goes, the other replica owns the app's key
// and goes on from the same step: the canary is not admitted again, nothing is notified
// twice.
// rolloutReplicas are two replicas with their coordinators, the canary on hub-a, main-1 on
// hub-b, hub-a coordinating api (a two-step rollout: the canary, then the rest).
type rolloutReplicas struct {
	g        *gossip
	op       flotillav1.OperatorClient
	clusters []apps.ClusterVars
	rs       []*rolloutReplica
	app      *apps.Application
}

func startRolloutReplicas(t *testing.T) *rolloutReplicas {
	t.Helper()
	g, ca, urs := startReplicas(t, 2)
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(dialTCP(t, ca, urs[1].addr, adminOf(t, ca)))
	clusters := []apps.ClusterVars{{Name: "canary", Labels: map[string]string{"ring": "canary"}}, {Name: "main-1", Labels: map[string]string{"ring": "main"}}}
	for _, c := range clusters {
		if _, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: c.Name, Labels: c.Labels}); err != nil {
			t.Fatal(err)
		}
	}
	g.setOwner("canary", "hub-a")
	g.setOwner("main-1", "hub-b")
	g.setOwner(rollout.OwnerKey("api"), "hub-a")
	var rs []*rolloutReplica
	for _, u := range urs {
		r := &rolloutReplica{replicaUnderTest: u}
		own := u.srv.cfg.Ownership
		coord, err := rollout.New(rollout.Config{
			Store: u.store, Fleet: u.fleet, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Clusters: func() ([]apps.ClusterVars, error) { return clusters, nil },
			Owns: func(app string) bool {
				w, err := own.Now()
				return err == nil && w.Mine(rollout.OwnerKey(app))
			},
			Local: own.Owned,
			Notify: func(_ *rollout.Record, tr rollout.Transition) {
				r.mu.Lock()
				r.notified = append(r.notified, string(tr.Kind))
				r.mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		coord.SetPeers(u.srv)
		u.srv.cfg.Rollouts, r.coord = coord, coord
		rs = append(rs, r)
	}
	app := &apps.Application{Name: "api", Destination: apps.Destination{Selector: labels.Everything()},
		Rollout: &apps.RolloutSpec{FailurePolicy: apps.FailureHalt, Steps: []apps.RolloutStep{{Selector: labels.SelectorFromSet(labels.Set{"ring": "canary"})}, {}}}}
	return &rolloutReplicas{g: g, op: op, clusters: clusters, rs: rs, app: app}
}

// both plays a round of commit on each replica, then advances each coordinator.
func (h *rolloutReplicas) both(t *testing.T, commit string) {
	t.Helper()
	for _, r := range h.rs {
		r.round(t, h.app, commit, h.clusters)
	}
	for _, r := range h.rs {
		r.coord.AdvanceAll()
	}
}

func (r *rolloutReplica) notifications() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.notified, " ")
}

func TestRolloutCoordinatedAcrossReplicas(t *testing.T) {
	h := startRolloutReplicas(t)
	g, op, clusters, rs, app := h.g, h.op, h.clusters, h.rs, h.app
	ctx := context.Background()
	a, b := rs[0], rs[1]
	both := func(commit string) { h.both(t, commit) }

	// The first commit: the coordinator's baseline; the other replica waits for it, then
	// renders it.
	both("v1")
	if got := b.desired("main-1", "api"); got != "" {
		t.Fatalf("main-1 rendered %q before the coordinator's record came", got)
	}
	both("v1")
	a.healthy("canary", "api")
	b.healthy("main-1", "api")
	if got := b.desired("main-1", "api"); got != "v1" {
		t.Fatalf("main-1 desired %q, want the baseline v1", got)
	}

	both("v2")
	both("v2")
	if a.desired("canary", "api") != "v2" || b.desired("main-1", "api") != "v1" {
		t.Fatalf("after v2: canary %s, main-1 %s; want v2 and v1 (held)", a.desired("canary", "api"), b.desired("main-1", "api"))
	}
	if got := rowMessage(t, b, "main-1"); got != "Waiting for rollout step 2 of r-v2" {
		t.Errorf("main-1's status on its replica says %q", got)
	}
	st, err := op.RolloutStatus(ctx, &flotillav1.RolloutStatusRequest{App: "api"})
	if err != nil || st.Rollout.Coordinator != "hub-a" || st.Rollout.State != rollout.StateRunning || st.Rollout.Step != 1 {
		t.Fatalf("rollout status asked of hub-b: %v, %v; want hub-a's, Running at step 1", st, err)
	}
	if _, err := op.RolloutAction(ctx, &flotillav1.RolloutActionRequest{App: "api", Action: rollout.ActPause}); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.coord.Get("api"); !v.Record.Paused {
		t.Fatal("the pause asked of hub-b did not reach the coordinator")
	}
	if _, err := op.RolloutAction(ctx, &flotillav1.RolloutActionRequest{App: "api", Action: rollout.ActResume}); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		n := 0
		recs, err := r.store.ListAudit(0)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			if strings.HasPrefix(rec.Action, "rollout.") {
				n++
			}
		}
		if want := map[string]int{"hub-a": 0, "hub-b": 2}[r.name]; n != want {
			t.Errorf("%s audited %d rollout actions, want %d", r.name, n, want)
		}
	}

	// The canary is Healthy: the coordinator admits main-1, judged from hub-b's rows.
	a.healthy("canary", "api")
	both("v2")
	both("v2")
	if got := b.desired("main-1", "api"); got != "v2" {
		t.Fatalf("main-1 desired %s after the canary's step, want v2", got)
	}

	// The coordinator goes; hub-b now owns the app's key (and the canary) and finishes.
	a.stop()
	g.drop("hub-a")
	g.setOwner("canary", "hub-b")
	g.setOwner(rollout.OwnerKey("api"), "hub-b")
	before, _ := b.coord.Get("api")
	if before.Record.Step != 1 || before.Record.Clusters["canary"].Phase != rollout.PhaseDone {
		t.Fatalf("hub-b's copy: step %d, canary %s; want step 2 with the canary done", before.Record.Step+1, before.Record.Clusters["canary"].Phase)
	}
	b.healthy("main-1", "api")
	testwait.For(t, 10*time.Second, "hub-b completes the rollout", func(context.Context) (bool, error) {
		b.round(t, app, "v2", clusters)
		b.coord.AdvanceAll()
		v, err := b.coord.Get("api")
		return err == nil && v.Record.State == rollout.StateCompleted, err
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	if got := strings.Join(b.notified, " "); got != "step-completed rollout-completed" {
		t.Errorf("hub-b notified %q, want only the last step and the completion", got)
	}
	if got := b.desired("canary", "api"); got != "v2" {
		t.Errorf("the canary, now hub-b's, desired %s, want v2 (not rolled back, not admitted again)", got)
	}
}

func rowMessage(t *testing.T, r *rolloutReplica, cluster string) string {
	t.Helper()
	for _, row := range r.fleet.Rows() {
		if row.Cluster == cluster && row.App == "api" {
			return row.Message
		}
	}
	t.Fatalf("no row of api on %s", cluster)
	return ""
}

// TestRolloutNotifiedOnceAcrossFailover: the coordinator derives a step's completion and dies
// before the other replica has read the record: it has not notified it (the follower had not
// the record that marks it), and the replica that takes over derives it and notifies it once.
// A transition the follower did read is notified by the coordinator as soon as it did, and
// never again by the one that takes over.
func TestRolloutNotifiedOnceAcrossFailover(t *testing.T) {
	h := startRolloutReplicas(t)
	a, b := h.rs[0], h.rs[1]
	h.both(t, "v1")
	h.both(t, "v1")
	a.healthy("canary", "api")
	b.healthy("main-1", "api")
	h.both(t, "v2")
	h.both(t, "v2")
	if got := a.notifications(); got != "rollout-started" {
		t.Fatalf("hub-a notified %q once hub-b had the record, want rollout-started", got)
	}

	// The canary is Healthy: hub-a completes step 1 and dies before hub-b asks for the record.
	a.healthy("canary", "api")
	a.round(t, h.app, "v2", h.clusters)
	a.coord.AdvanceAll()
	if v, _ := a.coord.Get("api"); v.Record.Step != 1 {
		t.Fatalf("hub-a at step %d, want 2", v.Record.Step+1)
	}
	if got := a.notifications(); got != "rollout-started" {
		t.Fatalf("hub-a notified %q before hub-b had the record", got)
	}
	a.stop()
	h.g.drop("hub-a")
	h.g.setOwner("canary", "hub-b")
	h.g.setOwner(rollout.OwnerKey("api"), "hub-b")
	// The canary's agent reconnects to hub-b and reports it Healthy on v2.
	b.round(t, h.app, "v2", h.clusters)
	b.healthy("canary", "api")
	testwait.For(t, 10*time.Second, "hub-b completes the rollout", func(context.Context) (bool, error) {
		b.round(t, h.app, "v2", h.clusters)
		b.coord.AdvanceAll()
		b.round(t, h.app, "v2", h.clusters)
		if b.desired("main-1", "api") == "v2" {
			b.healthy("main-1", "api")
		}
		v, err := b.coord.Get("api")
		return err == nil && v.Record.State == rollout.StateCompleted, err
	})
	all := a.notifications() + " " + b.notifications()
	if n := strings.Count(all, "step-completed"); n != 2 {
		t.Errorf("notified %q: %d step-completed, want 2 (one per step)", all, n)
	}
	if got := b.notifications(); got != "step-completed step-completed rollout-completed" {
		t.Errorf("hub-b notified %q", got)
	}
}
