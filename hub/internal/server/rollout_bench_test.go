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
)

// BenchmarkRollout rolls a revision out to 1,000 SIMULATED agents (goroutines in this process,
// each on its own in-memory connection with real TLS and gRPC, that ACK what they are sent and
// report it Synced and Healthy at once) in batches of 10% (one step, maxUnavailable: 10%, no
// soak). The reconciler is played by the benchmark: on each trigger of the coordinator it
// asks the revision of every cluster and sets it desired. Reported: the time the hub spends
// per admission decision (one Coordinator.AdvanceAll that admits clusters: it judges every
// cluster from the agents' reports and stores the record; at most 10% update at once, and
// clusters are admitted as others finish, so there are more decisions than ten), the whole
// rollout's time, and what an active rollout costs: its record's heap and its size as stored.
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
	// round is the reconciler's round: the revision of every cluster, then the apps recorded.
	round := func(commit string) {
		for _, c := range clusters {
			rev, _, held := coord.Revision(app, c, commit)
			switch {
			case held && rev == "":
				continue
			case !held:
				rev = commit
			}
			h.fleet.SetDesired(fleet.Desired{Cluster: c.Name, App: "app", Revision: rev, Bundle: bundles[rev]})
		}
		h.fleet.SetApps([]*fleet.AppInfo{{Name: "app", Destination: app.Destination, Revision: commit, Rollout: app.Rollout}})
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	var dial errgroup.Group
	dial.SetLimit(64)
	for _, name := range names {
		dial.Go(func() error {
			stream := connect(b, h.dial(b, h.agentCert(b, name)))
			g.Go(func() error { return simulateAgent(gctx, stream, true) })
			return nil
		})
	}
	_ = dial.Wait()
	round("r1")
	coord.AdvanceAll() // the baseline: everywhere at once
	round("r1")
	waitCount(b, ctx, counter("r1"), n, "baseline r1 Healthy everywhere")

	b.StartTimer()
	start := time.Now()
	round("r2") // everything held at r1
	t0 := time.Now()
	coord.AdvanceAll() // starts the rollout and admits the first batch
	decisions := []time.Duration{time.Since(t0)}
	view, err := coord.Get("app")
	if err != nil {
		b.Fatal(err)
	}
	first := view.Record // the active rollout, with its first clusters admitted

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

	cancel()
	_ = g.Wait()
	stored, _ := json.Marshal(first)
	heap := recordHeap(first)
	slices.Sort(decisions)
	var sum time.Duration
	for _, d := range decisions {
		sum += d
	}
	mean := sum / time.Duration(max(1, len(decisions)))
	b.ReportMetric(float64(len(decisions)), "admissions")
	b.ReportMetric(float64(mean.Microseconds())/1000, "ms/admission-decision")
	b.ReportMetric(float64(decisions[len(decisions)-1].Microseconds())/1000, "ms/max-admission-decision")
	b.ReportMetric(elapsed.Seconds(), "s/rollout")
	b.ReportMetric(heap, "KiB-heap/active-rollout")
	b.ReportMetric(float64(len(stored))/1024, "KiB-stored/rollout")
	fmt.Fprintf(os.Stderr, "rollout, SIMULATED agents in one process: %d clusters, at most 10%% updating at once, admitted in %d decisions: decision (judging every cluster, storing the record) mean %s max %s; whole rollout %s; the active rollout's record %.0f KiB of heap, %.0f KiB stored\n",
		n, len(decisions), mean.Round(time.Microsecond), decisions[len(decisions)-1].Round(time.Microsecond), elapsed.Round(time.Millisecond), heap, float64(len(stored))/1024)
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

// recordHeap is the heap one copy of rec takes, in KiB: the mean over copies made between two
// collections.
func recordHeap(rec *rollout.Record) float64 {
	const copies = 500 // enough that the copies outweigh what the stopped agents free meanwhile
	keep := make([]*rollout.Record, copies)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = rec.Clone()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / copies / 1024
}
