package server

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// BenchmarkFanOut measures delivery to many agents. The agents are SIMULATED: goroutines in
// this process that ACK without applying, each on its own in-memory connection carrying real
// TLS and gRPC. Once all are connected, one new desired revision is set for every cluster, as
// a webhook-triggered render does, and the time until the hub has recorded every ACK is
// reported, with the memory growth per connected agent (hub and simulated agent together: an
// upper bound for the hub).
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchFanOut(b, n)
			}
		})
	}
}

func benchFanOut(b *testing.B, n int) {
	b.StopTimer()
	h := startHub(b)
	const want = "r2"
	var acked atomic.Int64
	h.fleet.OnReport(func(_ string, r *fleet.Report) {
		if r.AppliedRevision == want {
			acked.Add(1)
		}
	})
	conns := make([]*flotillaConn, n)
	var reg errgroup.Group
	reg.SetLimit(256) // concurrent registrations share store transactions
	for i := range conns {
		conns[i] = &flotillaConn{name: fmt.Sprintf("sim-%05d", i)}
		reg.Go(func() error { h.register(b, conns[i].name); return nil })
	}
	_ = reg.Wait()
	runtime.GC()
	before := rssBytes()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	var connected atomic.Int64
	var dial errgroup.Group
	dial.SetLimit(64)
	for _, c := range conns {
		dial.Go(func() error {
			stream := connect(b, h.dial(b, h.agentCert(b, c.name)))
			connected.Add(1)
			g.Go(func() error { return simulateAgent(gctx, stream, false) })
			return nil
		})
	}
	_ = dial.Wait()
	runtime.GC()
	after := rssBytes()

	bundle := configMapBundle(b, "app", "v2")
	b.StartTimer()
	start := time.Now()
	for _, c := range conns {
		h.fleet.SetDesired(fleet.Desired{Cluster: c.name, App: "app", Revision: want, Bundle: bundle})
	}
	err := wait.PollUntilContextTimeout(ctx, time.Millisecond, 10*time.Minute, true, func(context.Context) (bool, error) {
		return acked.Load() >= int64(n), nil
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatalf("%d of %d ACKs recorded", acked.Load(), n)
	}
	perAgent := float64(after-before) / float64(n) / 1024
	b.ReportMetric(elapsed.Seconds(), "s/all-acks")
	b.ReportMetric(perAgent, "KiB-rss/agent")
	fmt.Fprintf(os.Stderr, "fan-out, SIMULATED agents in one process: %6d agents  desired→all ACKs %9s  RSS +%.1f KiB per agent (hub and simulated agent)\n",
		n, elapsed.Round(time.Millisecond), perAgent)
	cancel()
	_ = g.Wait()
}

type flotillaConn struct{ name string }

// simulateAgent ACKs every complete Desired without applying anything; with healthy it also
// reports it Synced and Healthy at once.
func simulateAgent(ctx context.Context, stream flotillav1.AgentService_ConnectClient, healthy bool) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return nil
		}
		d := m.GetDesired()
		if d == nil || d.ChunkIndex+1 != d.ChunkCount {
			continue
		}
		msgs := []*flotillav1.AgentMessage{{Msg: &flotillav1.AgentMessage_Ack{Ack: &flotillav1.Ack{
			App: d.App, Generation: d.Generation, Revision: d.Revision, Digest: d.Digest,
		}}}}
		if healthy {
			msgs = append(msgs, &flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Status{Status: &flotillav1.AppStatus{
				App: d.App, Sync: "Synced", Health: "Healthy", Generation: d.Generation, AppliedRevision: d.Revision,
				AppliedDigest: d.Digest, HealthyRevision: d.Revision, AppliedAtUnixMs: time.Now().UnixMilli(),
			}}})
		}
		for _, msg := range msgs {
			if err := stream.Send(msg); err != nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	var kb int64
	for _, line := range bytesLines(b) {
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
			return kb * 1024
		}
	}
	return 0
}

func bytesLines(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return out
}
