package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/hubtest"
	"github.com/flotilla-dev/flotilla/hub/internal/server"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// metered is a Backend that counts the bytes of the hub's answers (their protobuf size, what
// gRPC carries less its 5-byte frame headers).
type metered struct {
	Backend
	bytes atomic.Int64
}

func (m *metered) FleetPage(ctx context.Context, in *flotillav1.FleetPageRequest, opts ...grpc.CallOption) (*flotillav1.FleetPageResponse, error) {
	resp, err := m.Backend.FleetPage(ctx, in, opts...)
	if err == nil {
		m.bytes.Add(int64(proto.Size(resp)))
	}
	return resp, err
}

// bigHub is a real hub in this process (hubtest) holding a SIMULATED fleet of clusters × apps:
// clusters registered in its store, every app desired on every cluster and reported by an
// "agent" straight into the hub's fleet (no agent streams), some Degraded, some drifted, some
// Stale.
func bigHub(b *testing.B, clusters, apps int) *hubtest.Hub {
	// Every page read reads the whole fleet (no reuse of a recent read): a first view, cold.
	h := hubtest.Start(b, func(c *server.Config) { c.FleetReadReuse = -1 })
	regions := []string{"eu", "us", "ap"}
	var g errgroup.Group
	g.SetLimit(64) // the store batches concurrent writes
	for c := range clusters {
		g.Go(func() error {
			return h.Store.PutCluster(store.Cluster{Name: fmt.Sprintf("cluster-%05d", c), CreatedAt: time.Now(),
				Labels: map[string]string{"env": "production", "region": regions[c%3]}})
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	const rev = "3f2a9c1e0b3f2a9c1e0b3f2a9c1e0b3f2a9c1e0b"
	bundle := hubtest.ConfigMapBundle(b, "app", rev)
	var infos []*fleet.AppInfo
	for a := range apps {
		infos = append(infos, &fleet.AppInfo{Name: fmt.Sprintf("app-%02d", a), Revision: rev, RepoState: fleet.RepoCurrent})
	}
	h.Fleet.SetApps(infos)
	for c := range clusters {
		name := fmt.Sprintf("cluster-%05d", c)
		h.Fleet.Seen(name, "v1.4.2", c%97 != 0)
		for a := range apps {
			app := fmt.Sprintf("app-%02d", a)
			h.Fleet.SetDesired(fleet.Desired{Cluster: name, App: app, Revision: rev, Bundle: bundle})
			r := fleet.Report{App: app, Sync: "Synced", Health: "Healthy", AppliedRevision: rev, AppliedDigest: bundle.Digest, HealthyRevision: rev}
			if (c+a)%53 == 0 {
				r.Health = "Degraded"
			}
			if (c*a)%89 == 1 {
				r.Drift = []fleet.DriftItem{{Version: "v1", Kind: "ConfigMap", Namespace: app, Name: "settings", Type: "modified",
					Diff: "data.mode: \"fast\" → \"slow\""}}
			}
			h.Fleet.Status(name, r)
		}
	}
	return h
}

// BenchmarkFleetPage10kx20 serves the fleet page's first view (no filter, page 1) and a
// filtered view (a label selector, a state, page 3) for 10,000 clusters × 20 apps held by a
// real hub in this process, the dashboard reading it through the hub's in-process Operator
// service (as `flotilla hub --ui` does): ms/page is the server time of a view (the hub's
// FleetPage, reading the whole fleet for each view as for a first one, and the dashboard's
// render), KiB/page its HTML (goals from issue 17: under 1 s and
// 500 KiB). hub-KiB/view is what the hub answers for the view (FleetPage), and
// hub-KiB/unchanged-poll what it answers a live poll of the page when nothing changed;
// before-hub-MiB/view is what the dashboard read for every view and every poll before
// FleetPage (the whole fleet's Status, ListClusters and ListApps).
func BenchmarkFleetPage10kx20(b *testing.B) {
	h := bigHub(b, benchClusters, 20)
	local := h.Server.Local()
	ctx := server.AsOperator(context.Background(), "bench")
	st, err := local.Status(ctx, &flotillav1.StatusRequest{})
	if err != nil {
		b.Fatal(err)
	}
	cl, err := local.ListClusters(ctx, &flotillav1.ListClustersRequest{})
	if err != nil {
		b.Fatal(err)
	}
	ap, err := local.ListApps(ctx, &flotillav1.ListAppsRequest{})
	if err != nil {
		b.Fatal(err)
	}
	before := proto.Size(st) + proto.Size(cl) + proto.Size(ap)
	m := &metered{Backend: local}
	ui, err := New(Config{Backend: m})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, url string }{
		{"first-view", "/"},
		{"selector-and-state", "/?selector=region%3Deu&state=drifted&page=3"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var size int
			m.bytes.Store(0)
			start := time.Now()
			for b.Loop() {
				rec := httptest.NewRecorder()
				ui.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, bc.url, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s: %d", bc.url, rec.Code)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/page")
			b.ReportMetric(float64(size)/1024, "KiB/page")
			b.ReportMetric(float64(m.bytes.Load())/float64(b.N)/1024, "hub-KiB/view")
			b.ReportMetric(float64(before)/(1<<20), "before-hub-MiB/view")
			q := parseQuery(httptest.NewRequest(http.MethodGet, bc.url, nil).URL.Query())
			first, err := local.FleetPage(ctx, q.request(DefaultPageSize, ""))
			if err != nil {
				b.Fatal(err)
			}
			again, err := local.FleetPage(ctx, q.request(DefaultPageSize, first.Version))
			if err != nil {
				b.Fatal(err)
			}
			if !again.Unchanged {
				b.Fatalf("%s: a poll of an unchanged page was answered in full", bc.name)
			}
			b.ReportMetric(float64(proto.Size(again))/1024, "hub-KiB/unchanged-poll")
		})
	}
}

// benchClusters is the simulated fleet's size.
var benchClusters = 10000
