package server

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// TestSyncOnAnyReplicaReachesTheOwner: `flotilla sync` asked of a replica that does not own
// the cluster reaches the owner, whose agent gets the requested sync; a selector or the whole
// fleet reach every owner; the replica asked audits it, once; a refusal by the owner and an
// owner that does not answer are the operator's to see.
func TestSyncOnAnyReplicaReachesTheOwner(t *testing.T) {
	g, ca, rs := startReplicas(t, 3)
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(dialTCP(t, ca, rs[0].addr, adminOf(t, ca)))
	b := configMapBundle(t, "cm", "x")
	for _, c := range []struct{ name, env string }{{"c1", "prod"}, {"c2", "prod"}, {"c3", "dev"}} {
		if _, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: c.name, Labels: map[string]string{"env": c.env}}); err != nil {
			t.Fatal(err)
		}
	}
	owner := map[string]*replicaUnderTest{"c1": rs[1], "c2": rs[2], "c3": rs[0]}
	for c, r := range owner {
		g.setOwner(c, r.name)
		r.fleet.SetDesired(fleet.Desired{Cluster: c, App: "api", Revision: "r1", Bundle: b})
	}
	stream, m := hello(t, dialTCP(t, ca, rs[1].addr, agentOf(t, ca, "c1")))
	if m.GetWelcome() == nil {
		t.Fatalf("owner of c1 answered %v, want Welcome", m)
	}
	first := nextDesired(t, stream)
	if first.SyncRequested {
		t.Fatalf("first desired state already requested a sync: %v", first)
	}

	resp, err := op.Sync(ctx, &flotillav1.SyncRequest{App: "api", Cluster: "c1"})
	if err != nil {
		t.Fatalf("sync of c1 on hub-a, which does not own it: %v", err)
	}
	if !slices.Equal(resp.Clusters, []string{"c1"}) || len(resp.UnreachablePeers) != 0 {
		t.Fatalf("sync of c1: %v, want [c1]", resp)
	}
	if d := nextDesired(t, stream); !d.SyncRequested || d.Generation <= first.Generation {
		t.Fatalf("the agent of c1 got %v, want its sync requested in a newer generation than %d", d, first.Generation)
	}

	resp, err = op.Sync(ctx, &flotillav1.SyncRequest{App: "api", Selector: "env=prod", ConfirmPrune: true})
	if err != nil || !slices.Equal(resp.Clusters, []string{"c1", "c2"}) {
		t.Fatalf("sync of env=prod: %v, %v; want [c1 c2]", resp, err)
	}
	if d := rs[2].fleet.Snapshot("c2")["api"]; d == nil || !d.SyncRequested || !d.PruneConfirmed {
		t.Errorf("desired state of c2 at its owner: %+v, want a sync requested with the prune confirmed", d)
	}
	resp, err = op.Sync(ctx, &flotillav1.SyncRequest{App: "api"})
	if err != nil || !slices.Equal(resp.Clusters, []string{"c1", "c2", "c3"}) {
		t.Fatalf("sync of the whole fleet: %v, %v; want [c1 c2 c3]", resp, err)
	}

	// Audited once, by the replica the operator asked.
	syncs := func(r *replicaUnderTest) []string {
		recs, err := r.store.ListAudit(0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rec := range recs {
			if rec.Action == "sync" {
				out = append(out, rec.Actor+" "+rec.Detail)
			}
		}
		return out
	}
	if got := syncs(rs[0]); len(got) != 3 || !strings.HasPrefix(got[0], "admin ") {
		t.Errorf("audit of hub-a: %q, want the three syncs by admin", got)
	}
	for _, r := range rs[1:] {
		if got := syncs(r); len(got) != 0 {
			t.Errorf("audit of %s, which the syncs were forwarded to: %q", r.name, got)
		}
	}

	// The owner refuses a sync of another revision than its desired one.
	_, err = op.Sync(ctx, &flotillav1.SyncRequest{App: "api", Cluster: "c2", Revision: "r0"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "cluster c2") {
		t.Errorf("sync of c2 at another revision: %v, want the owner's FailedPrecondition", err)
	}

	// The owner of c1 does not answer: a sync of c1 says so; one of the fleet names it.
	rs[1].stop()
	_, err = op.Sync(ctx, &flotillav1.SyncRequest{App: "api", Cluster: "c1"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "hub-b") {
		t.Errorf("sync of c1 with its owner down: %v, want Unavailable naming hub-b", err)
	}
	resp, err = op.Sync(ctx, &flotillav1.SyncRequest{App: "api"})
	if err != nil || !slices.Equal(resp.Clusters, []string{"c2", "c3"}) || !slices.Equal(resp.UnreachablePeers, []string{"hub-b"}) {
		t.Errorf("sync of the fleet with hub-b down: %v, %v; want c2 and c3, hub-b unreachable", resp, err)
	}
}

// nextDesired returns the next Desired message on an agent stream.
func nextDesired(t *testing.T, stream flotillav1.AgentService_ConnectClient) *flotillav1.Desired {
	t.Helper()
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("agent stream: %v", err)
		}
		if d := m.GetDesired(); d != nil {
			return d
		}
	}
}

// setPinnableApp gives every replica the app api, targeting the clusters labelled env=prod;
// each renders it only for the clusters it owns.
func setPinnableApp(rs []*replicaUnderTest, owned map[string][]string) {
	for _, r := range rs {
		r.fleet.SetApps([]*fleet.AppInfo{{
			Name: "api", Clusters: owned[r.name],
			Destination: apps.Destination{Selector: labels.SelectorFromSet(labels.Set{"env": "prod"})},
		}})
	}
}

// TestPinsReplicateAndTheOwnerActs: a pin set on a replica that owns nothing is held by every
// replica, and the owner of the cluster renders again at once; a clear made on another replica
// reaches them all the same way. Only the replica asked audits.
func TestPinsReplicateAndTheOwnerActs(t *testing.T) {
	g, ca, rs := startReplicas(t, 3)
	ctx := context.Background()
	opA := flotillav1.NewOperatorClient(dialTCP(t, ca, rs[0].addr, adminOf(t, ca)))
	opC := flotillav1.NewOperatorClient(dialTCP(t, ca, rs[2].addr, adminOf(t, ca)))
	for _, c := range []string{"c1", "c2"} {
		if _, err := opA.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: c, Labels: map[string]string{"env": "prod"}}); err != nil {
			t.Fatal(err)
		}
	}
	g.setOwner("c1", "hub-b")
	g.setOwner("c2", "hub-c")
	setPinnableApp(rs, map[string][]string{"hub-b": {"c1"}, "hub-c": {"c2"}})
	before := rs[1].rounds.n.Load()

	resp, err := opA.Rollback(ctx, &flotillav1.RollbackRequest{App: "api", Cluster: "c1", ToRevision: "v1"})
	if err != nil || !slices.Equal(resp.Clusters, []string{"c1"}) {
		t.Fatalf("pin of c1 on hub-a, which owns nothing: %v, %v; want [c1]", resp, err)
	}
	for _, r := range rs {
		if got := pinsOf(t, r); !slices.Equal(got, []string{"api/c1=v1"}) {
			t.Errorf("pins of %s: %v, want api/c1=v1", r.name, got)
		}
		if got := r.fleet.Pin("api", "c1"); got != "v1" {
			t.Errorf("fleet of %s: pin %q, want v1", r.name, got)
		}
	}
	if rs[1].rounds.n.Load() == before {
		t.Error("the owner of c1 did not render again for the pin")
	}

	resp, err = opA.Rollback(ctx, &flotillav1.RollbackRequest{App: "api", Selector: "env=prod", ToRevision: "v0"})
	if err != nil || !slices.Equal(resp.Clusters, []string{"c1", "c2"}) {
		t.Fatalf("pin of env=prod on hub-a: %v, %v; want [c1 c2]", resp, err)
	}
	if got := rs[2].fleet.Pin("api", "c2"); got != "v0" {
		t.Errorf("owner of c2: pin %q, want v0", got)
	}

	// hub-c, which owns c2 only, clears the pin of c1.
	before = rs[1].rounds.n.Load()
	resp, err = opC.Rollback(ctx, &flotillav1.RollbackRequest{App: "api", Cluster: "c1", Clear: true})
	if err != nil || !slices.Equal(resp.Clusters, []string{"c1"}) {
		t.Fatalf("clear of c1 on hub-c: %v, %v; want [c1]", resp, err)
	}
	for _, r := range rs {
		if got := pinsOf(t, r); !slices.Equal(got, []string{"api/c2=v0"}) {
			t.Errorf("pins of %s after the clear: %v, want api/c2=v0 only", r.name, got)
		}
		if got := r.fleet.Pin("api", "c1"); got != "" {
			t.Errorf("fleet of %s: c1 still pinned to %q", r.name, got)
		}
	}
	if rs[1].rounds.n.Load() == before {
		t.Error("the owner of c1 did not render again for the clear")
	}

	audits := func(r *replicaUnderTest) int {
		recs, err := r.store.ListAudit(0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, rec := range recs {
			if strings.HasPrefix(rec.Action, "rollback") {
				n++
			}
		}
		return n
	}
	if a, b, c := audits(rs[0]), audits(rs[1]), audits(rs[2]); a != 2 || b != 0 || c != 1 {
		t.Errorf("rollback audit records on hub-a, hub-b, hub-c: %d, %d, %d; want 2, 0, 1", a, b, c)
	}
}

// TestPinsCatchUpByPullAndAClearSticks: a replica that missed the broadcasts gets a pin from
// the registry pull; a clear it also missed is not undone when its peers pull its stale copy,
// and reaches it with its next pull.
func TestPinsCatchUpByPullAndAClearSticks(t *testing.T) {
	g, ca, rs := startReplicas(t, 2)
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(dialTCP(t, ca, rs[0].addr, adminOf(t, ca)))
	if _, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: "c1", Labels: map[string]string{"env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	g.setOwner("c1", "hub-b")
	setPinnableApp(rs, map[string][]string{"hub-b": {"c1"}})
	g.mu.Lock()
	g.deaf["hub-b"] = true
	g.mu.Unlock()

	if _, err := op.Rollback(ctx, &flotillav1.RollbackRequest{App: "api", Cluster: "c1", ToRevision: "v1"}); err != nil {
		t.Fatal(err)
	}
	if got := pinsOf(t, rs[1]); len(got) != 0 {
		t.Fatalf("deaf replica has pins before the pull: %v", got)
	}
	before := rs[1].rounds.n.Load()
	rs[1].srv.pullRegistry(ctx)
	if got := rs[1].fleet.Pin("api", "c1"); got != "v1" || rs[1].rounds.n.Load() == before {
		t.Fatalf("after the pull the owner has pin %q (rounds %d → %d); want v1 and a new round", got, before, rs[1].rounds.n.Load())
	}

	if _, err := op.Rollback(ctx, &flotillav1.RollbackRequest{App: "api", Cluster: "c1", Clear: true}); err != nil {
		t.Fatal(err)
	}
	if got := rs[1].fleet.Pin("api", "c1"); got != "v1" {
		t.Fatalf("deaf replica: pin %q, want the stale v1 until it pulls", got)
	}
	rs[0].srv.pullRegistry(ctx) // hub-a pulls hub-b's stale pin
	if got := pinsOf(t, rs[0]); len(got) != 0 || rs[0].fleet.Pin("api", "c1") != "" {
		t.Fatalf("the clear on hub-a was undone by pulling a stale pin: %v", got)
	}
	rs[1].srv.pullRegistry(ctx)
	if got := pinsOf(t, rs[1]); len(got) != 0 || rs[1].fleet.Pin("api", "c1") != "" {
		t.Fatalf("the owner still holds %v after pulling the clear", got)
	}
}

// pinsOf lists the pins in force on a replica as app/cluster=revision.
func pinsOf(t *testing.T, r *replicaUnderTest) []string {
	t.Helper()
	pins, err := r.store.ListPins()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pins {
		out = append(out, p.App+"/"+p.Cluster+"="+p.Revision)
	}
	return out
}

// TestListAppsListsEveryTargetedCluster: `flotilla apps` on any replica, even one that owns
// none of an app's clusters, lists every registered cluster the app targets, and no revoked
// one.
func TestListAppsListsEveryTargetedCluster(t *testing.T) {
	g, ca, rs := startReplicas(t, 3)
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(dialTCP(t, ca, rs[0].addr, adminOf(t, ca)))
	for _, c := range []struct{ name, env string }{{"c1", "prod"}, {"c2", "prod"}, {"c3", "dev"}, {"c4", "prod"}} {
		if _, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: c.name, Labels: map[string]string{"env": c.env}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := op.RevokeCluster(ctx, &flotillav1.RevokeClusterRequest{Name: "c4"}); err != nil {
		t.Fatal(err)
	}
	g.setOwner("c1", "hub-b")
	g.setOwner("c2", "hub-c")
	g.setOwner("c3", "hub-a")
	setPinnableApp(rs, map[string][]string{"hub-b": {"c1"}, "hub-c": {"c2"}})

	for _, r := range rs {
		resp, err := flotillav1.NewOperatorClient(dialTCP(t, ca, r.addr, adminOf(t, ca))).ListApps(ctx, &flotillav1.ListAppsRequest{})
		if err != nil {
			t.Fatalf("apps from %s: %v", r.name, err)
		}
		if len(resp.Items) != 1 || resp.Items[0].Name != "api" || !slices.Equal(resp.Items[0].Clusters, []string{"c1", "c2"}) {
			t.Errorf("apps from %s: %v, want api targeting [c1 c2]", r.name, resp.Items)
		}
	}
}

// TestConfirmRemovalReachesEveryReplica: each replica holds the same mass removal; an operator
// confirms on one, and every replica lets it go ahead and renders again.
func TestConfirmRemovalReachesEveryReplica(t *testing.T) {
	_, ca, rs := startReplicas(t, 3)
	ctx := context.Background()
	for _, r := range rs {
		r.fleet.GuardRemoval([]string{"api", "web", "db"})
		r.fleet.GuardRemoval([]string{"api"})
	}
	op := flotillav1.NewOperatorClient(dialTCP(t, ca, rs[0].addr, adminOf(t, ca)))
	apps, err := op.ListApps(ctx, &flotillav1.ListAppsRequest{})
	if err != nil || apps.RemovalHold == nil || !slices.Equal(apps.RemovalHold.Apps, []string{"db", "web"}) || apps.RemovalHold.Total != 3 {
		t.Fatalf("ListApps hold = %v, %v; want db and web of 3", apps.GetRemovalHold(), err)
	}
	before := make([]int32, len(rs))
	for i, r := range rs {
		before[i] = r.rounds.n.Load()
	}
	resp, err := op.ConfirmRemoval(ctx, &flotillav1.ConfirmRemovalRequest{})
	if err != nil || !slices.Equal(resp.Apps, []string{"db", "web"}) {
		t.Fatalf("ConfirmRemoval = %v, %v", resp, err)
	}
	for i, r := range rs {
		if held := r.fleet.GuardRemoval([]string{"api"}); held != nil {
			t.Errorf("%s still holds %v after the confirmation", r.name, held)
		}
		if r.rounds.n.Load() == before[i] {
			t.Errorf("%s did not render again after the confirmation", r.name)
		}
	}
	if _, err := op.ConfirmRemoval(ctx, &flotillav1.ConfirmRemovalRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("confirming with nothing held: %v, want FailedPrecondition", err)
	}
}
