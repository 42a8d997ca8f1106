package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// bigFleet is a Backend that answers with a generated fleet, for the render benchmark only:
// it measures the dashboard's own work (filtering, counting, paging, rendering), not a hub's.
type bigFleet struct {
	status   *flotillav1.StatusResponse
	clusters *flotillav1.ListClustersResponse
	apps     *flotillav1.ListAppsResponse
}

var _ Backend = (*bigFleet)(nil)

func newBigFleet(clusters, apps int) *bigFleet {
	f := &bigFleet{status: &flotillav1.StatusResponse{}, clusters: &flotillav1.ListClustersResponse{}, apps: &flotillav1.ListAppsResponse{}}
	now := time.Now().UnixMilli()
	for a := range apps {
		f.apps.Items = append(f.apps.Items, &flotillav1.App{Name: fmt.Sprintf("app-%02d", a), Revision: "3f2a9c1e"})
	}
	regions := []string{"eu", "us", "ap"}
	for c := range clusters {
		name := fmt.Sprintf("cluster-%05d", c)
		state := "Connected"
		if c%97 == 0 {
			state = "Stale"
		}
		f.clusters.Items = append(f.clusters.Items, &flotillav1.Cluster{Name: name, State: state, Connected: state == "Connected",
			Labels: map[string]string{"env": "production", "region": regions[c%3]}, LastSeenUnixMs: now, AgentVersion: "v1.4.2"})
		for a := range apps {
			s := &flotillav1.AppClusterStatus{Cluster: name, App: fmt.Sprintf("app-%02d", a), Sync: "Synced", Health: "Healthy",
				DesiredRevision: "3f2a9c1e0b", AppliedRevision: "3f2a9c1e0b", HealthyRevision: "3f2a9c1e0b", LastSeenUnixMs: now}
			if (c+a)%53 == 0 {
				s.Health = "Degraded"
			}
			if (c*a)%89 == 1 {
				s.Drift = []*flotillav1.DriftItem{{Object: &flotillav1.ObjectRef{Kind: "ConfigMap", Name: "x"}, Type: "modified"}}
			}
			f.status.Items = append(f.status.Items, s)
		}
	}
	return f
}

func (f *bigFleet) Status(context.Context, *flotillav1.StatusRequest, ...grpc.CallOption) (*flotillav1.StatusResponse, error) {
	return f.status, nil
}

func (f *bigFleet) ListClusters(context.Context, *flotillav1.ListClustersRequest, ...grpc.CallOption) (*flotillav1.ListClustersResponse, error) {
	return f.clusters, nil
}

func (f *bigFleet) ListApps(context.Context, *flotillav1.ListAppsRequest, ...grpc.CallOption) (*flotillav1.ListAppsResponse, error) {
	return f.apps, nil
}

func (f *bigFleet) History(context.Context, *flotillav1.HistoryRequest, ...grpc.CallOption) (*flotillav1.HistoryResponse, error) {
	return &flotillav1.HistoryResponse{}, nil
}

func (f *bigFleet) Sync(context.Context, *flotillav1.SyncRequest, ...grpc.CallOption) (*flotillav1.SyncResponse, error) {
	return &flotillav1.SyncResponse{}, nil
}

func (f *bigFleet) Rollback(context.Context, *flotillav1.RollbackRequest, ...grpc.CallOption) (*flotillav1.RollbackResponse, error) {
	return &flotillav1.RollbackResponse{}, nil
}

func (f *bigFleet) RevokeCluster(context.Context, *flotillav1.RevokeClusterRequest, ...grpc.CallOption) (*flotillav1.RevokeClusterResponse, error) {
	return &flotillav1.RevokeClusterResponse{}, nil
}

func (f *bigFleet) RolloutStatus(context.Context, *flotillav1.RolloutStatusRequest, ...grpc.CallOption) (*flotillav1.RolloutStatusResponse, error) {
	return nil, status.Error(codes.NotFound, "no rollout")
}

func (f *bigFleet) RolloutAction(context.Context, *flotillav1.RolloutActionRequest, ...grpc.CallOption) (*flotillav1.RolloutActionResponse, error) {
	return nil, status.Error(codes.NotFound, "no rollout")
}

// BenchmarkFleetPage10kx20 serves the fleet page's first view (no filter, page 1) for 10,000
// clusters × 20 apps, and a filtered view (a label selector and a state), reporting the server
// time per page (ns/op, and ms/page) and the HTML's size (KiB/page). Goals from issue 17:
// under 1 s and under 500 KiB. status-MiB is the size of the Status answer the page is built
// from (this fake backend hands it over in memory; a hub sends it over gRPC).
func BenchmarkFleetPage10kx20(b *testing.B) {
	fleet := newBigFleet(10000, 20)
	h, err := New(Config{Backend: fleet})
	if err != nil {
		b.Fatal(err)
	}
	// What the dashboard reads from the hub for any view (and every live read): the whole
	// fleet's status, as it travels over gRPC.
	statusMiB := float64(proto.Size(fleet.status)) / (1 << 20)
	for _, bc := range []struct{ name, url string }{
		{"first-view", "/"},
		{"selector-and-state", "/?selector=region%3Deu&state=drifted&page=3"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var size int
			start := time.Now()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, bc.url, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s: %d", bc.url, rec.Code)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/page")
			b.ReportMetric(float64(size)/1024, "KiB/page")
			b.ReportMetric(statusMiB, "status-MiB")
		})
	}
}
