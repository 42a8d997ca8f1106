package gctune

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestTunerFollowsTheWork: with no work, the collector's target goes to the idle one; while
// work comes in faster than BusyWork, back to the one it started with; when the work stops,
// to the idle one after the hold; and when the tuner stops, to the one it started with.
func TestTunerFollowsTheWork(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	var work atomic.Uint64
	tu := New(25, func() uint64 { return work.Load() }, slog.New(slog.DiscardHandler))
	tu.SampleEvery, tu.BusyHold, tu.MinLiveHeap = 20*time.Millisecond, 200*time.Millisecond, 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tu.Run(ctx); close(done) }()

	waitGOGC(t, 25, "no work")
	stop := make(chan struct{})
	go func() { // 1,000 units a second, 100 times BusyWork
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				work.Add(1)
			}
		}
	}()
	waitGOGC(t, 100, "working")
	close(stop)
	waitGOGC(t, 25, "no work again")
	cancel()
	<-done
	if got := gogc(t); got != 100 {
		t.Fatalf("after the tuner stopped: GOGC=%d, want the 100 it started with", got)
	}
}

// TestTunerKeepsASmallHubsTarget: a hub whose live heap is under MinLiveHeap keeps the
// target it started with, idle or not: its collections would cost more than they save.
func TestTunerKeepsASmallHubsTarget(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	tu := New(25, func() uint64 { return 0 }, slog.New(slog.DiscardHandler))
	tu.SampleEvery, tu.BusyHold, tu.MinLiveHeap = 10*time.Millisecond, 0, 1<<40
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	samples, lowest := 0, 100
	tu.Work = func() uint64 { // read at every sample, after the one before was acted on
		samples++
		lowest = min(lowest, gogc(t))
		if samples == 10 {
			cancel()
		}
		return 0
	}
	tu.Run(ctx)
	if lowest != 100 {
		t.Fatalf("GOGC went to %d, want the 100 it started with throughout (the heap is far under MinLiveHeap)", lowest)
	}
}

// TestTunerLeavesALowerGOGC: a target already at or below the idle one is left alone.
func TestTunerLeavesALowerGOGC(t *testing.T) {
	old := debug.SetGCPercent(20)
	defer debug.SetGCPercent(old)
	tu := New(25, func() uint64 { return 0 }, slog.New(slog.DiscardHandler))
	tu.SampleEvery = 10 * time.Millisecond
	tu.Run(context.Background()) // returns at once
	if got := gogc(t); got != 20 {
		t.Fatalf("GOGC=%d, want the 20 it was", got)
	}
}

func waitGOGC(t *testing.T, want int, when string) {
	t.Helper()
	testwait.For(t, time.Minute, when, func(context.Context) (bool, error) { return gogc(t) == want, nil })
}

// gogc reads the collector's target as the runtime reports it.
func gogc(t *testing.T) int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatalf("/gc/gogc:percent: kind %v", s[0].Value.Kind())
	}
	return int(s[0].Value.Uint64())
}
