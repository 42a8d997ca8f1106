// Package gctune sets the hub's garbage collection target by how busy the hub is: lower (less
// memory) while it is idle, Go's default while it works (less CPU).
//
// An idle hub's heap is nearly all state that lives as long as its agents' connections, and at
// Go's default target (GOGC=100) the collector lets as much again accumulate as garbage before
// it collects: at 10,000 agents, a fifth of the hub's memory (BENCHMARKS.md). A lower target
// costs the collections of a busy hub (a reconnect storm, a restart, a delivery to every
// cluster) CPU it needs; an idle hub has that CPU to spare.
package gctune

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"
)

// Defaults of Tuner.
const (
	DefaultIdlePercent = 25
	DefaultSampleEvery = time.Second
	// DefaultBusyCPU: the hub is busy while it uses more than this share of one CPU.
	DefaultBusyCPU = 0.5
	// DefaultBusyHold is how long the hub counts as busy after its last busy sample.
	DefaultBusyHold = 30 * time.Second
)

// Tuner sets the garbage collector's target to Idle while the hub is idle and back to the
// target it started with while it is busy.
type Tuner struct {
	Idle        int           // GC percent while idle
	SampleEvery time.Duration // how often the hub's CPU is read
	BusyCPU     float64       // share of one CPU over a sample above which the hub is busy
	BusyHold    time.Duration // how long it stays busy after that
	// CPU is the process's CPU time so far (ProcessCPU where the platform has it).
	CPU func() (time.Duration, bool)
	Log *slog.Logger
}

// New is a Tuner with the defaults and idle as its idle target.
func New(idle int, log *slog.Logger) *Tuner {
	return &Tuner{Idle: idle, SampleEvery: DefaultSampleEvery, BusyCPU: DefaultBusyCPU, BusyHold: DefaultBusyHold, CPU: ProcessCPU, Log: log}
}

// Run tunes until ctx ends, then leaves the target it started with. It starts busy (a hub
// starting loads its state and its agents connect).
func (t *Tuner) Run(ctx context.Context) {
	if _, ok := t.CPU(); !ok {
		t.Log.Info("garbage collection not tuned: the process's CPU time is not available here")
		return
	}
	busy := debug.SetGCPercent(-1)
	debug.SetGCPercent(busy)
	if busy <= t.Idle || busy < 0 {
		return // GOGC is already as low, or off
	}
	defer debug.SetGCPercent(busy)
	current := busy
	last, lastBusy := time.Now(), time.Now()
	lastCPU, _ := t.CPU()
	tick := time.NewTicker(t.SampleEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cpu, _ := t.CPU()
		now := time.Now()
		if t.busy(cpu-lastCPU, now.Sub(last)) {
			lastBusy = now
		}
		lastCPU, last = cpu, now
		want := t.Idle
		if now.Sub(lastBusy) < t.BusyHold {
			want = busy
		}
		if want != current {
			debug.SetGCPercent(want)
			if want == t.Idle {
				// What the busy hub's garbage took stays with the process otherwise: the
				// runtime returns memory to the OS only above the new target's heap. The
				// collection this forces is the tuner's own work, not the hub's: the next
				// sample starts after it.
				debug.FreeOSMemory()
				lastCPU, _ = t.CPU()
				last = time.Now()
			}
			t.Log.Debug("garbage collection target", "gogc", want)
			current = want
		}
	}
}

// busy tells whether the hub, having used cpu over elapsed, was busy.
func (t *Tuner) busy(cpu, elapsed time.Duration) bool {
	return elapsed > 0 && cpu.Seconds() > t.BusyCPU*elapsed.Seconds()
}
