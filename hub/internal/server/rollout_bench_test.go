package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/rollout"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// BenchmarkRollout rolls a revision out to 1,000 SIMULATED agents (goroutines in this process,
// each on its own in-memory connection with real TLS and gRPC, that ACK what they are sent and
// report it Synced and Healthy at once) in batches of 10% (one step, maxUnavailable: 10%, no
// soak). The reconciler is played by the benchmark: on each trigger of the coordinator it
// asks the revision of every cluster and sets it desired. Reported: the time the hub spends
// per batch decision (one Coordinator.AdvanceAll that admits a batch, over the agents'
// reports), the whole rollout's time, and the heap an active rollout costs (its record, and
// its size as stored).
func BenchmarkRollout(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchRollout(b, 1000)
	}
}

func benchRollout(b *testing.B, n int) {
	b.StopTimer()
	h := startHub(b)
	names := make([]string, n)
	var reg errgroup.Group
	reg.SetLimit(256)
	for i := range names {
		names[i] = fmt.Sprintf("sim-%05d", i)
		reg.Go(func() error { h.register(b, names[i]); return nil })
	}
	_ = reg.Wait()
	clusters := make([]apps.ClusterVars, n)
	for i, name := range names {
		clusters[i] = apps.ClusterVars{Name: name}
	}
	app := &apps.Application{Name: "app", Destination: apps.Destination{Selector: labels.Everything()},
		Rollout: &apps.RolloutSpec{FailurePolicy: apps.FailureHalt, Steps: []apps.RolloutStep{{MaxUnavailablePercent: 10}}}}
	triggered := make(chan struct{}, 1)
	coord, err := rollout.New(rollout.Config{
		Store: h.store, Fleet: h.fleet, Clusters: func() ([]apps.ClusterVars, error) { return clusters, nil },
		Trigger: func() {
			select {
			case triggered <- struct{}{}:
			default:
			}
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	var healthyAt sync.Map // revision → *atomic.Int64 of clusters reporting it Healthy
	counter := func(rev string) *atomic.Int64 {
		c, _ := healthyAt.LoadOrStore(rev, new(atomic.Int64))
		return c.(*atomic.Int64)
	}
	h.fleet.OnReport(func(_ string, r *fleet.Report) {
		if r.Health == "Healthy" && r.HealthyRevision == r.AppliedRevision && r.AppliedRevision != "" {
			counter(r.AppliedRevision).Add(1)
		}
		coord.Poke()
	})
	bundles := map[string]*bundle.Bundle{"r1": configMapBundle(b, "app", "v1"), "r2": configMapBundle(b, "app", "v2")}
	round := func(commit string) {
		for _, c := range clusters {
			rev, held := coord.Revision(app, c, commit)
			if !held {
				rev = commit
			}
			h.fleet.SetDesired(fleet.Desired{Cluster: c.Name, App: "app", Revision: rev, Bundle: bundles[rev]})
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	var dial errgroup.Group
	dial.SetLimit(64)
	for _, name := range names {
		dial.Go(func() error {
			stream := connect(b, h.dial(b, h.agentCert(b, name)))
			g.Go(func() error { return simulateHealthyAgent(gctx, stream) })
			return nil
		})
	}
	_ = dial.Wait()
	round("r1") // the baseline: everywhere at once
	waitCount(b, ctx, counter("r1"), n, "baseline r1 Healthy everywhere")

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	b.StartTimer()
	start := time.Now()
	round("r2") // starts the rollout and admits the first batch
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	view, err := coord.Get("app")
	if err != nil {
		b.Fatal(err)
	}
	stored, _ := json.Marshal(view.Record)

	var decisions []time.Duration
	for view.Record.State != rollout.StateCompleted {
		select {
		case <-triggered:
			round("r2") // the reconciler's round after the coordinator admitted a batch
		case <-time.After(10 * time.Millisecond):
		}
		t0 := time.Now()
		coord.AdvanceAll()
		d := time.Since(t0)
		if len(triggered) > 0 {
			decisions = append(decisions, d)
		}
		if view, err = coord.Get("app"); err != nil {
			b.Fatal(err)
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("rollout not done in 10 minutes: %s, %s", view.Record.State, view.Waiting)
		}
	}
	round("r2")
	waitCount(b, ctx, counter("r2"), n, "r2 Healthy everywhere")
	elapsed := time.Since(start)
	b.StopTimer()

	slices.Sort(decisions)
	var sum time.Duration
	for _, d := range decisions {
		sum += d
	}
	mean := sum / time.Duration(max(1, len(decisions)))
	heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / 1024
	b.ReportMetric(float64(len(decisions)), "batches")
	b.ReportMetric(float64(mean.Microseconds())/1000, "ms/batch-decision")
	b.ReportMetric(float64(decisions[len(decisions)-1].Microseconds())/1000, "ms/max-batch-decision")
	b.ReportMetric(elapsed.Seconds(), "s/rollout")
	b.ReportMetric(heap, "KiB-heap/active-rollout")
	b.ReportMetric(float64(len(stored))/1024, "KiB-stored/rollout")
	fmt.Fprintf(os.Stderr, "rollout, SIMULATED agents in one process: %d clusters in %d batches of 10%%: decision per batch mean %s max %s; whole rollout %s; heap +%.0f KiB for the active rollout (record and the first batch's desired state), record %.0f KiB stored\n",
		n, len(decisions), mean.Round(time.Microsecond), decisions[len(decisions)-1].Round(time.Microsecond), elapsed.Round(time.Millisecond), heap, float64(len(stored))/1024)
	cancel()
	_ = g.Wait()
}

func waitCount(b *testing.B, ctx context.Context, c *atomic.Int64, n int, what string) {
	b.Helper()
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 5*time.Minute, true, func(context.Context) (bool, error) {
		return c.Load() >= int64(n), nil
	})
	if err != nil {
		b.Fatalf("%s: %d of %d", what, c.Load(), n)
	}
}

// simulateHealthyAgent ACKs every complete Desired and reports it Synced and Healthy at once.
func simulateHealthyAgent(ctx context.Context, stream flotillav1.AgentService_ConnectClient) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return nil
		}
		d := m.GetDesired()
		if d == nil || d.ChunkIndex+1 != d.ChunkCount {
			continue
		}
		for _, msg := range []*flotillav1.AgentMessage{
			{Msg: &flotillav1.AgentMessage_Ack{Ack: &flotillav1.Ack{App: d.App, Generation: d.Generation, Revision: d.Revision, Digest: d.Digest}}},
			{Msg: &flotillav1.AgentMessage_Status{Status: &flotillav1.AppStatus{App: d.App, Sync: "Synced", Health: "Healthy", Generation: d.Generation,
				AppliedRevision: d.Revision, AppliedDigest: d.Digest, HealthyRevision: d.Revision, AppliedAtUnixMs: time.Now().UnixMilli()}}},
		} {
			if err := stream.Send(msg); err != nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}
