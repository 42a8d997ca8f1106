package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/opclient"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// TestStatusPagesALargeFleet: a fleet whose status rows outgrow one message (3,000 clusters ×
// 2 apps, each row with 1 KiB of drift) is read a page at a time: every row once, in order, no
// cluster split across pages. In one answer, it is more than the message limit.
func TestStatusPagesALargeFleet(t *testing.T) {
	h := startHub(t)
	const clusters = 3000
	diff := strings.Repeat("x", 1024)
	for i := range clusters {
		c := fmt.Sprintf("c%05d", i)
		for _, app := range []string{"api", "web"} {
			h.fleet.RestoreReport(c, &fleet.Report{App: app, Sync: fleet.SyncOutOfSync, Reported: time.Now(),
				Drift: []fleet.DriftItem{{Version: "v1", Kind: "ConfigMap", Name: app, Type: "Modified", Diff: diff}}})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	op := flotillav1.NewOperatorClient(h.dial(t, h.adminCert(t)))

	if _, err := op.Status(ctx, &flotillav1.StatusRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("the whole fleet in one answer: %v, want ResourceExhausted (the rows outgrow a message)", err)
	}

	var rows []*flotillav1.AppClusterStatus
	req := &flotillav1.StatusRequest{PageSize: 1001}
	pages := 0
	for {
		resp, err := op.Status(ctx, req)
		if err != nil {
			t.Fatalf("page %d after %q: %v", pages+1, req.AfterCluster, err)
		}
		pages++
		if n := len(resp.Items); n == 0 || n > 1002 {
			t.Fatalf("page %d: %d rows, want 1..1002 (1001 asked, a cluster's two rows kept together)", pages, n)
		}
		if last := resp.Items[len(resp.Items)-1]; resp.NextAfterCluster != "" && resp.NextAfterCluster != last.Cluster {
			t.Fatalf("page %d: next after %q, want its last cluster %q", pages, resp.NextAfterCluster, last.Cluster)
		}
		rows = append(rows, resp.Items...)
		if resp.NextAfterCluster == "" {
			break
		}
		req.AfterCluster = resp.NextAfterCluster
	}
	if pages < 6 {
		t.Errorf("%d pages of at most 1,002 rows for 6,000 rows", pages)
	}
	checkAllRows(t, rows, clusters)

	// StatusPages sends the same pages in one call.
	stream, err := op.StatusPages(ctx, &flotillav1.StatusRequest{PageSize: 1001})
	if err != nil {
		t.Fatal(err)
	}
	var streamed []*flotillav1.AppClusterStatus
	streamedPages := 0
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("StatusPages, page %d: %v", streamedPages+1, err)
		}
		streamedPages++
		if resp.NextAfterCluster != "" && resp.NextAfterCluster != resp.Items[len(resp.Items)-1].Cluster {
			t.Fatalf("StatusPages, page %d: next after %q, want its last cluster", streamedPages, resp.NextAfterCluster)
		}
		streamed = append(streamed, resp.Items...)
	}
	if streamedPages != pages {
		t.Errorf("StatusPages sent %d pages, Status answered %d", streamedPages, pages)
	}
	checkAllRows(t, streamed, clusters)

	// The CLI's reader takes every page in one StatusPages call.
	counted := &countingOperator{OperatorClient: op}
	all, err := opclient.Status(ctx, counted, &flotillav1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	checkAllRows(t, all.Items, clusters)
	if counted.pages != 1 || counted.status != 0 {
		t.Errorf("opclient.Status made %d StatusPages and %d Status calls, want 1 and 0", counted.pages, counted.status)
	}

	// A new read starts from the fleet as it is now, not as the last pages read it.
	h.fleet.RestoreReport("c00000", &fleet.Report{App: "api", Sync: fleet.SyncSynced, AppliedRevision: "5e6f", Reported: time.Now(),
		Drift: []fleet.DriftItem{{Version: "v1", Kind: "ConfigMap", Name: "api", Type: "Modified", Diff: diff}}})
	again, err := opclient.Status(ctx, op, &flotillav1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Items[0].AppliedRevision; got != "5e6f" {
		t.Fatalf("c00000/api after its new report: applied %q, want 5e6f", got)
	}

	one, err := opclient.Status(ctx, op, &flotillav1.StatusRequest{Cluster: "c01234"})
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Items) != 2 || one.Items[0].Cluster != "c01234" || one.Items[0].App != "api" || one.Items[1].App != "web" {
		t.Fatalf("status of one cluster = %v, want its api and web rows", one.Items)
	}
}

// TestStatusFromAHubBeforeStatusPages: against a hub whose Operator service has no
// StatusPages (one from before it), opclient.Status reads the pages a Status call each.
func TestStatusFromAHubBeforeStatusPages(t *testing.T) {
	h, srv := newHubUnderTest(t, RateLimits{})
	old := flotillav1.Operator_ServiceDesc
	old.Streams = nil // StatusPages is the Operator service's only stream
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{srv.cfg.Serving}, ClientCAs: srv.roots, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS13,
	})), grpc.UnaryInterceptor(srv.unaryAuth))
	gs.RegisterService(&old, srv)
	go func() { _ = gs.Serve(h.lis) }()
	t.Cleanup(gs.Stop)

	const clusters = 1500
	for i := range clusters {
		for _, app := range []string{"api", "web"} {
			h.fleet.RestoreReport(fmt.Sprintf("c%05d", i), &fleet.Report{App: app, Sync: fleet.SyncOutOfSync, Reported: time.Now(),
				Drift: []fleet.DriftItem{{Version: "v1", Kind: "ConfigMap", Name: app, Type: "Modified", Diff: "x"}}})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	counted := &countingOperator{OperatorClient: flotillav1.NewOperatorClient(h.dial(t, h.adminCert(t)))}
	all, err := opclient.Status(ctx, counted, &flotillav1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	checkAllRows(t, all.Items, clusters)
	if counted.pages != 1 || counted.status != 1 {
		t.Errorf("opclient.Status made %d StatusPages and %d Status calls, want 1 (refused) and 1 (3,000 rows in a page of 5,000)", counted.pages, counted.status)
	}
}

// countingOperator counts the Status and StatusPages calls made through it.
type countingOperator struct {
	flotillav1.OperatorClient
	status, pages int
}

func (c *countingOperator) Status(ctx context.Context, req *flotillav1.StatusRequest, opts ...grpc.CallOption) (*flotillav1.StatusResponse, error) {
	c.status++
	return c.OperatorClient.Status(ctx, req, opts...)
}

func (c *countingOperator) StatusPages(ctx context.Context, req *flotillav1.StatusRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[flotillav1.StatusResponse], error) {
	c.pages++
	return c.OperatorClient.StatusPages(ctx, req, opts...)
}

// checkAllRows checks rows are every cluster's api and web rows, once each, in order.
func checkAllRows(t *testing.T, rows []*flotillav1.AppClusterStatus, clusters int) {
	t.Helper()
	if len(rows) != 2*clusters {
		t.Fatalf("%d rows, want %d", len(rows), 2*clusters)
	}
	for i, r := range rows {
		want := fmt.Sprintf("c%05d/%s", i/2, []string{"api", "web"}[i%2])
		if got := r.Cluster + "/" + r.App; got != want || len(r.Drift) != 1 {
			t.Fatalf("row %d = %s with %d drift items, want %s with 1", i, got, len(r.Drift), want)
		}
	}
}

// TestCutStatusPage: a page gathered from replicas ends where a replica's own page ended (it
// may hold more clusters after it), and at the page size, never inside a cluster.
func TestCutStatusPage(t *testing.T) {
	items := func(names ...string) []*flotillav1.AppClusterStatus {
		var out []*flotillav1.AppClusterStatus
		for _, n := range names {
			c, a, _ := strings.Cut(n, "/")
			out = append(out, &flotillav1.AppClusterStatus{Cluster: c, App: a})
		}
		return out
	}
	names := func(its []*flotillav1.AppClusterStatus) string {
		var out []string
		for _, it := range its {
			out = append(out, it.Cluster+"/"+it.App)
		}
		return strings.Join(out, " ")
	}
	all := items("a/x", "a/y", "b/x", "c/x", "c/y", "d/x")
	for _, tc := range []struct {
		name      string
		size      int32
		reached   []string
		want      string
		wantAfter string
	}{
		{"every replica done, all fit", 10, []string{"", ""}, "a/x a/y b/x c/x c/y d/x", ""},
		{"a replica stopped at b", 10, []string{"", "b"}, "a/x a/y b/x", "b"},
		{"the lowest stop counts", 10, []string{"c", "b"}, "a/x a/y b/x", "b"},
		{"the size ends the page between clusters", 3, []string{"", ""}, "a/x a/y b/x", "b"},
		{"a cluster's rows stay together", 4, []string{"", ""}, "a/x a/y b/x c/x c/y", "c"},
		{"a replica stopped at a cluster none returned", 10, []string{"bb"}, "a/x a/y b/x", "bb"},
		{"a replica stopped after every row here", 10, []string{"e"}, "a/x a/y b/x c/x c/y d/x", "e"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, after := cutStatusPage(all, tc.size, tc.reached)
			if names(got) != tc.want || after != tc.wantAfter {
				t.Fatalf("cut = %q, next after %q; want %q, %q", names(got), after, tc.want, tc.wantAfter)
			}
		})
	}
}

// BenchmarkStatus10kx2 reads the status of 10,000 connected clusters × 2 apps the way
// `flotilla status` does (page by page over TLS gRPC), and of one cluster.
func BenchmarkStatus10kx2(b *testing.B) {
	h := startHub(b)
	const clusters = 10000
	for i := range clusters {
		c := fmt.Sprintf("sim-%05d", i)
		h.fleet.Seen(c, "bench", true)
		for _, app := range []string{"api", "web"} {
			h.fleet.RestoreReport(c, &fleet.Report{App: app, Sync: fleet.SyncSynced, Health: "Healthy",
				AppliedRevision: "3f2a9c1e0b", HealthyRevision: "3f2a9c1e0b", Reported: time.Now(), AppliedAt: time.Now(), HealthySince: time.Now()})
		}
	}
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(h.dial(b, h.adminCert(b)))
	var whole, one time.Duration
	for b.Loop() {
		t := time.Now()
		resp, err := opclient.Status(ctx, op, &flotillav1.StatusRequest{})
		if err != nil || len(resp.Items) != 2*clusters {
			b.Fatalf("status: %d rows, %v", len(resp.GetItems()), err)
		}
		whole += time.Since(t)
		t = time.Now()
		if _, err := opclient.Status(ctx, op, &flotillav1.StatusRequest{Cluster: "sim-04242"}); err != nil {
			b.Fatal(err)
		}
		one += time.Since(t)
	}
	b.ReportMetric(float64(whole.Milliseconds())/float64(b.N), "whole-fleet-ms")
	b.ReportMetric(float64(one.Microseconds())/1000/float64(b.N), "one-cluster-ms")
	b.ReportMetric(0, "ns/op")
}
