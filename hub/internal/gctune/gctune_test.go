package gctune

import (
	"context"
	"io"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestTunerFollowsTheProcessCPU: with the process idle, the collector's target goes to the
// idle one; while the process burns CPU, back to the one it started with; when the process
// is idle again, to the idle one after the hold; and when the tuner stops, to the one it
// started with.
func TestTunerFollowsTheProcessCPU(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	tu := New(50, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tu.SampleEvery, tu.BusyCPU, tu.BusyHold = 50*time.Millisecond, 0.2, 300*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tu.Run(ctx); close(done) }()

	waitGOGC(t, 50, "idle")
	var burn atomic.Bool
	burn.Store(true)
	go func() {
		for x := 0; burn.Load(); x++ {
			_ = x * x
		}
	}()
	waitGOGC(t, 100, "burning CPU")
	burn.Store(false)
	waitGOGC(t, 50, "idle again")
	cancel()
	<-done
	if got := gogc(t); got != 100 {
		t.Fatalf("after the tuner stopped: GOGC=%d, want the 100 it started with", got)
	}
}

// TestTunerLeavesALowerGOGC: a target already at or below the idle one is left alone.
func TestTunerLeavesALowerGOGC(t *testing.T) {
	old := debug.SetGCPercent(30)
	defer debug.SetGCPercent(old)
	tu := New(50, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tu.SampleEvery = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	tu.Run(ctx) // returns at once
	if got := gogc(t); got != 30 {
		t.Fatalf("GOGC=%d, want the 30 it was", got)
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
