package rollout

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// hubParts are the real parts a coordinator works with in the hub: a fleet and a store.
type hubParts struct {
	t        *testing.T
	fleet    *fleet.Fleet
	store    *store.Store
	clusters []apps.ClusterVars
	app      *apps.Application

	mu       sync.Mutex
	notified []string
	triggers int
	// applies is when the pretend agents applied, moved on a second by each apply.
	applies time.Time
}

func newHubParts(t *testing.T, policy string) *hubParts {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "flotilla.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &hubParts{t: t, fleet: fleet.New(time.Hour), store: st, applies: time.Unix(1_700_000_000, 0),
		clusters: []apps.ClusterVars{cl("canary", "canary"), cl("m1", "main"), cl("m2", "main")}}
	h.app = &apps.Application{Name: "api", Destination: apps.Destination{Clusters: []string{"canary", "m1", "m2"}},
		Rollout: &apps.RolloutSpec{FailurePolicy: policy, Steps: []apps.RolloutStep{{Selector: ringSel("canary")}, {MaxUnavailable: 1}}}}
	for _, c := range h.clusters {
		h.fleet.Seen(c.Name, "test", true)
	}
	return h
}

func (h *hubParts) coordinator() *Coordinator {
	h.t.Helper()
	c, err := New(Config{
		Store: h.store, Fleet: h.fleet, Clusters: func() ([]apps.ClusterVars, error) { return h.clusters, nil },
		Trigger: func() { h.mu.Lock(); h.triggers++; h.mu.Unlock() },
		Notify: func(rec *Record, tr Transition) {
			h.mu.Lock()
			h.notified = append(h.notified, string(tr.Kind))
			h.mu.Unlock()
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// round does what the reconciler does: for each cluster it asks the revision and makes it
// desired, then records the apps; the coordinator advances (starting a rollout of a new
// commit) and asks for a round, which renders what it admitted.
func (h *hubParts) round(c *Coordinator, commit string) {
	h.render(c, commit)
	h.fleet.SetApps([]*fleet.AppInfo{{Name: "api", Destination: h.app.Destination, Revision: commit, Rollout: h.app.Rollout}})
	c.AdvanceAll()
	h.render(c, commit)
}

func (h *hubParts) render(c *Coordinator, commit string) {
	for _, cv := range h.clusters {
		rev, _, held := c.Revision(h.app, cv, commit)
		switch {
		case held && rev == "":
			continue
		case !held:
			rev = commit
		}
		h.fleet.SetDesired(fleet.Desired{Cluster: cv.Name, App: "api", Revision: rev, Bundle: testBundle(h.t, rev)})
	}
}

// applied makes cluster's agent ACK what is desired and report it Synced with health.
func (h *hubParts) applied(cluster, health string) {
	d := h.fleet.Snapshot(cluster)["api"]
	h.fleet.Ack(cluster, "api", d.Generation, d.Revision, d.Digest())
	rep := fleet.Report{App: "api", Sync: fleet.SyncSynced, Health: health, Generation: d.Generation, AppliedRevision: d.Revision,
		AppliedDigest: d.Digest(), AppliedAt: h.nextApply()}
	if health == healthHealthy {
		rep.HealthyRevision = d.Revision
	}
	h.fleet.Status(cluster, rep)
}

func (h *hubParts) nextApply() time.Time {
	h.applies = h.applies.Add(time.Second)
	return h.applies
}

func (h *hubParts) desired(cluster string) string { return h.fleet.Snapshot(cluster)["api"].Revision }

func testBundle(t *testing.T, rev string) *bundle.Bundle {
	t.Helper()
	b, err := bundle.New([]*unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "api"}, "data": map[string]any{"rev": rev},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCoordinatorWithFleetAndStore(t *testing.T) {
	h := newHubParts(t, apps.FailureHalt)
	c := h.coordinator()
	h.round(c, "v1")
	for _, cv := range h.clusters {
		h.applied(cv.Name, healthHealthy)
	}
	h.round(c, "v2")
	if h.desired("canary") != "v2" || h.desired("m1") != "v1" || h.desired("m2") != "v1" {
		t.Fatalf("after v2: canary %s m1 %s m2 %s", h.desired("canary"), h.desired("m1"), h.desired("m2"))
	}
	if got := h.fleet.Rows()[1].Message; got != "Waiting for rollout step 2 of r-v2" {
		t.Errorf("m1's status message = %q", got)
	}

	// The canary is Healthy on v2 (no soak): m1 is admitted and the reconciler asked for a round.
	h.applied("canary", healthHealthy)
	c.AdvanceAll()
	h.round(c, "v2")
	if h.desired("m1") != "v2" || h.desired("m2") != "v1" || h.triggers == 0 {
		t.Fatalf("after the canary: m1 %s m2 %s, %d triggers", h.desired("m1"), h.desired("m2"), h.triggers)
	}

	// A hub restart: the record is read back, and m2 is still held.
	c = h.coordinator()
	h.round(c, "v2")
	if h.desired("m2") != "v1" {
		t.Fatalf("after a restart m2 gets %s", h.desired("m2"))
	}
	h.applied("m1", healthHealthy)
	c.AdvanceAll()
	h.round(c, "v2")
	h.applied("m2", healthHealthy)
	c.AdvanceAll()
	v, err := c.Get("api")
	if err != nil || v.Record.State != StateCompleted {
		t.Fatalf("Get = %+v, %v", v, err)
	}
	if got := strings.Join(h.notified, " "); got != "rollout-started step-completed step-completed rollout-completed" {
		t.Errorf("notified %s", got)
	}
}

func TestCoordinatorFailures(t *testing.T) {
	for _, tt := range []struct {
		name, policy string
		fail         func(h *hubParts)
		canaryGets   string
		reason       string
	}{
		{"agent rolled back", apps.FailureHalt, func(h *hubParts) {
			h.fleet.Status("canary", fleet.Report{App: "api", Sync: fleet.SyncSynced, Health: healthHealthy, AppliedRevision: "v1",
				RolledBackRevision: "v2", Message: "RolledBack: revision v2 Deployment web not Available"})
		}, "v2", "its agent rolled v2 back"},
		{"degraded, rollback policy", apps.FailureRollback, func(h *hubParts) { h.applied("canary", healthDegraded) }, "v1", "Degraded on v2"},
		{"nack", apps.FailureHalt, func(h *hubParts) {
			h.fleet.Nack("canary", "api", h.fleet.Snapshot("canary")["api"].Generation, "admission webhook denied")
		}, "v2", "its agent refused v2: generation"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHubParts(t, tt.policy)
			c := h.coordinator()
			h.round(c, "v1")
			h.round(c, "v2")
			tt.fail(h)
			c.AdvanceAll()
			h.round(c, "v2")
			v, _ := c.Get("api")
			if v.Record.State != map[string]string{apps.FailureHalt: StateHalted, apps.FailureRollback: StateRolledBack}[tt.policy] ||
				!strings.Contains(v.Record.Reason, "canary: "+tt.reason) {
				t.Fatalf("state %s reason %q", v.Record.State, v.Record.Reason)
			}
			if h.desired("canary") != tt.canaryGets || h.desired("m1") != "v1" || h.desired("m2") != "v1" {
				t.Fatalf("canary %s m1 %s m2 %s", h.desired("canary"), h.desired("m1"), h.desired("m2"))
			}
			if got := strings.Join(h.notified, " "); got != "rollout-started rollout-halted" {
				t.Errorf("notified %s", got)
			}
			// A fixed commit supersedes the halted rollout and starts at the canary again.
			h.round(c, "v3")
			if h.desired("canary") != "v3" || h.desired("m1") != "v1" {
				t.Fatalf("after v3: canary %s m1 %s", h.desired("canary"), h.desired("m1"))
			}
		})
	}
}

// TestCoordinatorStaleDegraded: a cluster Degraded on what it held before its admission (here
// an earlier rollback) is ACKed the new revision; until its agent reports on that apply, the
// Degraded it said of the old one does not fail the new revision.
func TestCoordinatorStaleDegraded(t *testing.T) {
	h := newHubParts(t, apps.FailureHalt)
	c := h.coordinator()
	h.round(c, "v1")
	h.applied("canary", healthDegraded)
	h.round(c, "v2")
	d := h.fleet.Snapshot("canary")["api"]
	h.fleet.Ack("canary", "api", d.Generation, d.Revision, d.Digest()) // the report keeps Health Degraded
	c.AdvanceAll()
	if v, _ := c.Get("api"); v.Record.State != StateRunning {
		t.Fatalf("a stale Degraded failed the rollout: %s %s", v.Record.State, v.Record.Reason)
	}
	h.applied("canary", healthDegraded)
	c.AdvanceAll()
	if v, _ := c.Get("api"); v.Record.State != StateHalted {
		t.Fatalf("Degraded on the revision it applied: %s", v.Record.State)
	}
}
