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
func TestRolloutCoordinatedAcrossReplicas(t *testing.T) {
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
	a, b := rs[0], rs[1]
	app := &apps.Application{Name: "api", Destination: apps.Destination{Selector: labels.Everything()},
		Rollout: &apps.RolloutSpec{FailurePolicy: apps.FailureHalt, Steps: []apps.RolloutStep{{Selector: labels.SelectorFromSet(labels.Set{"ring": "canary"})}, {}}}}
	both := func(commit string) {
		for _, r := range rs {
			r.round(t, app, commit, clusters)
		}
		for _, r := range rs {
			r.coord.AdvanceAll()
		}
	}

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
