package server

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

func pageRows(resp *flotillav1.FleetPageResponse) []string {
	var out []string
	for _, r := range resp.Rows {
		for _, c := range r.Cells {
			out = append(out, fmt.Sprintf("%s/%s@%s", r.Cluster.Name, c.App, r.Cluster.Replica))
		}
		if len(r.Cells) == 0 {
			out = append(out, r.Cluster.Name+"@"+r.Cluster.Replica)
		}
	}
	return out
}

// TestFleetPageAcrossReplicas asks each of three replicas for pages of a fleet of six
// clusters, two owned by each: every replica filters and counts its own clusters, the one
// asked merges, sorts and pages them, and a replica that does not answer is named while its
// clusters show as the one asked last knew them.
func TestFleetPageAcrossReplicas(t *testing.T) {
	g, ca, rs := startReplicas(t, 3)
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(dialTCP(t, ca, rs[0].addr, adminOf(t, ca)))
	b := configMapBundle(t, "cm", "x")
	for i := range 6 {
		c := fmt.Sprintf("c%d", i+1)
		labels := map[string]string{"env": "staging"}
		if i%2 == 0 {
			labels["env"] = "production"
		}
		if _, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: c, Labels: labels}); err != nil {
			t.Fatal(err)
		}
		owner := rs[i/2]
		g.setOwner(c, owner.name)
		owner.fleet.SetDesired(fleet.Desired{Cluster: c, App: "api", Revision: "r1", Bundle: b})
		owner.fleet.Seen(c, "v1", true)
		r := fleet.Report{App: "api", Sync: fleet.SyncSynced, Health: "Healthy", AppliedRevision: "r1", AppliedDigest: b.Digest}
		switch c {
		case "c2":
			r.Health = "Degraded"
		case "c5":
			r.Drift = []fleet.DriftItem{{Version: "v1", Kind: "ConfigMap", Namespace: "api", Name: "cm", Type: "modified", Diff: "data.x: a → b"}}
		}
		owner.fleet.Status(c, r)
		// A stale row of a cluster owned elsewhere must not count.
		rs[(i/2+1)%3].fleet.SetDesired(fleet.Desired{Cluster: c, App: "stale", Revision: "r0", Bundle: b})
	}
	page := func(r *replicaUnderTest, req *flotillav1.FleetPageRequest) *flotillav1.FleetPageResponse {
		t.Helper()
		resp, err := flotillav1.NewOperatorClient(dialTCP(t, ca, r.addr, adminOf(t, ca))).FleetPage(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, r := range rs {
		var got []string
		for p := int32(1); p <= 3; p++ {
			resp := page(r, &flotillav1.FleetPageRequest{Page: p, PageSize: 2})
			if resp.Page != p || resp.Pages != 3 || !slices.Equal(resp.Apps, []string{"api"}) || len(resp.MatchingClusters) != 0 {
				t.Errorf("page %d from %s: page %d of %d, apps %v, matching %v", p, r.name, resp.Page, resp.Pages, resp.Apps, resp.MatchingClusters)
			}
			c := resp.Counts
			if c.Clusters != 6 || c.Cells != 6 || c.Healthy != 5 || c.Degraded != 1 || c.Drifted != 1 || c.Synced != 6 || c.Stale != 0 {
				t.Errorf("page %d from %s: counts %v", p, r.name, c)
			}
			got = append(got, pageRows(resp)...)
		}
		want := []string{"c1/api@hub-a", "c2/api@hub-a", "c3/api@hub-b", "c4/api@hub-b", "c5/api@hub-c", "c6/api@hub-c"}
		if !slices.Equal(got, want) {
			t.Errorf("pages from %s: %v, want %v", r.name, got, want)
		}
	}

	for _, tc := range []struct {
		req      *flotillav1.FleetPageRequest
		want     []string
		clusters int32
	}{
		{&flotillav1.FleetPageRequest{Selector: "env=production"}, []string{"c1/api@hub-a", "c3/api@hub-b", "c5/api@hub-c"}, 3},
		{&flotillav1.FleetPageRequest{State: "Degraded"}, []string{"c2/api@hub-a"}, 1},
		{&flotillav1.FleetPageRequest{State: "drifted", Selector: "env=production"}, []string{"c5/api@hub-c"}, 1},
		{&flotillav1.FleetPageRequest{Revision: "r0"}, nil, 0},
		{&flotillav1.FleetPageRequest{Cluster: "c4"}, []string{"c4/api@hub-b"}, 1},
		{&flotillav1.FleetPageRequest{Page: 9, PageSize: 4}, []string{"c5/api@hub-c", "c6/api@hub-c"}, 6}, // past the last: the last
	} {
		resp := page(rs[1], tc.req)
		if got := pageRows(resp); !slices.Equal(got, tc.want) || resp.Counts.Clusters != tc.clusters {
			t.Errorf("%v: %v (%d clusters counted), want %v (%d)", tc.req, got, resp.Counts.Clusters, tc.want, tc.clusters)
		}
	}
	if c := page(rs[2], &flotillav1.FleetPageRequest{State: "drifted"}).Counts; c.Clusters != 1 || c.Cells != 1 || c.Drifted != 1 || c.Degraded != 0 {
		t.Errorf("state=drifted: counts %v, want one cluster, one drifted cell", c)
	}
	// The drift's diff stays on the hub: the page says how many objects drifted.
	for _, r := range page(rs[0], &flotillav1.FleetPageRequest{Cluster: "c5"}).Rows {
		for _, c := range r.Cells {
			if len(c.Drift) != 0 || c.DriftCount != 1 {
				t.Errorf("c5/api: %d drift items, drift_count %d; want none and 1", len(c.Drift), c.DriftCount)
			}
		}
	}

	// A poll that names the version it holds gets "unchanged" until something shows changed.
	first := page(rs[0], &flotillav1.FleetPageRequest{PageSize: 2})
	again := page(rs[0], &flotillav1.FleetPageRequest{PageSize: 2, KnownVersion: first.Version})
	if !again.Unchanged || again.Version != first.Version || len(again.Rows) != 0 || again.Counts != nil {
		t.Errorf("unchanged page answered %v", again)
	}
	rs[2].fleet.Status("c6", fleet.Report{App: "api", Sync: fleet.SyncSynced, Health: "Degraded", AppliedRevision: "r1", AppliedDigest: b.Digest})
	// A replica reads the whole fleet at most every matrixTTL: the change shows within it.
	testwait.Until(t, 10*time.Second, "a new version once c6 turned Degraded (a count on page 1)", func() bool {
		changed := page(rs[0], &flotillav1.FleetPageRequest{PageSize: 2, KnownVersion: first.Version})
		return !changed.Unchanged && changed.Version != first.Version && changed.Counts.Degraded == 2
	})

	if _, err := op.FleetPage(ctx, &flotillav1.FleetPageRequest{State: "Sleepy"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("an unknown state: %v, want InvalidArgument", err)
	}
	if _, err := op.FleetPage(ctx, &flotillav1.FleetPageRequest{Selector: "=="}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a bad selector: %v, want InvalidArgument", err)
	}

	// hub-c stops answering: it is named, and its clusters show as hub-a last knew them (the
	// stale rows included, as in Status).
	for _, c := range []string{"c5", "c6"} {
		rs[0].fleet.SetDesired(fleet.Desired{Cluster: c, App: "api", Revision: "r1", Bundle: b})
	}
	rs[2].stop()
	var resp *flotillav1.FleetPageResponse
	want := []string{"c5/api@hub-c", "c5/stale@hub-c", "c6/api@hub-c", "c6/stale@hub-c"}
	testwait.Until(t, 10*time.Second, "hub-c's clusters as hub-a knows them", func() bool {
		resp = page(rs[0], &flotillav1.FleetPageRequest{Page: 3, PageSize: 2})
		return slices.Equal(pageRows(resp), want)
	})
	if !slices.Equal(resp.UnreachablePeers, []string{"hub-c"}) {
		t.Errorf("with hub-c silent: unreachable %v, want [hub-c]", resp.UnreachablePeers)
	}
}
