// Package gctune sets the hub's garbage collection target by how busy the hub is: lower (less
// memory) while it is idle, Go's default while it works (less CPU).
//
// An idle hub's heap is nearly all state that lives as long as its agents' connections, and at
// Go's default target (GOGC=100) the collector lets as much again accumulate as garbage before
// it collects (BENCHMARKS.md). A lower target costs the collections of a busy hub (a reconnect
// storm, a restart, a delivery to every cluster) CPU it needs; an idle hub has it to spare.
//
// Busy is measured by the hub's work with its agents (streams opened, desired state sent), not
// by its CPU: a garbage collection itself takes every idle CPU while it marks, and would make
// an idle hub look busy.
package gctune

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Defaults of Tuner.
const (
	DefaultIdlePercent = 25
	DefaultSampleEvery = time.Second
	// DefaultBusyWork: the hub is busy while it does more than this many units of work a
	// second (agent streams opened, desired-state messages sent).
	DefaultBusyWork = 10
	// DefaultBusyHold is how long the hub counts as busy after its last busy sample.
	DefaultBusyHold = 30 * time.Second
	// DefaultMinLiveHeap: below this live heap (about 2,000 agents) the idle target is not
	// worth its collections; a small hub keeps Go's default.
	DefaultMinLiveHeap = 64 << 20
)

// Tuner sets the garbage collector's target to Idle while the hub is idle and back to the
// target it started with while it is busy.
type Tuner struct {
	Idle        int           // GC percent while idle
	SampleEvery time.Duration // how often Work is read
	BusyWork    float64       // units of work a second above which the hub is busy
	BusyHold    time.Duration // how long it stays busy after that
	MinLiveHeap uint64        // live heap bytes below which the hub keeps its busy target
	// Work counts the hub's work so far (server.Server.Work).
	Work func() uint64
	Log  *slog.Logger
}

// New is a Tuner with the defaults, idle as its idle target and work as the hub's work.
func New(idle int, work func() uint64, log *slog.Logger) *Tuner {
	return &Tuner{Idle: idle, SampleEvery: DefaultSampleEvery, BusyWork: DefaultBusyWork, BusyHold: DefaultBusyHold,
		MinLiveHeap: DefaultMinLiveHeap, Work: work, Log: log}
}

// Run tunes until ctx ends, then leaves the target it started with. It starts busy (a hub
// starting loads its state and its agents connect).
func (t *Tuner) Run(ctx context.Context) {
	busy := debug.SetGCPercent(-1)
	debug.SetGCPercent(busy)
	if busy <= t.Idle || busy < 0 {
		return // GOGC is already as low, or off
	}
	defer debug.SetGCPercent(busy)
	current := busy
	last, lastBusy := time.Now(), time.Now()
	lastWork := t.Work()
	tick := time.NewTicker(t.SampleEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		work, now := t.Work(), time.Now()
		if elapsed := now.Sub(last).Seconds(); elapsed > 0 && float64(work-lastWork) > t.BusyWork*elapsed {
			lastBusy = now
		}
		lastWork, last = work, now
		want := t.Idle
		if now.Sub(lastBusy) < t.BusyHold || liveHeap() < t.MinLiveHeap {
			want = busy
		}
		if want == current {
			continue
		}
		debug.SetGCPercent(want)
		if want == t.Idle {
			// What the busy hub's garbage took stays with the process otherwise: the
			// runtime returns memory to the OS only above the new target's heap.
			debug.FreeOSMemory()
		}
		t.Log.Debug("garbage collection target", logging.KeyGOGC, want)
		current = want
	}
}

// liveHeap is the heap the last garbage collection left live, in bytes.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
