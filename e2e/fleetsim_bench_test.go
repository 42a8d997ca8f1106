package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// EnvBenchAgents sets how many simulated agents BenchmarkFleetSim runs (default 1,000; the
// issue's fleet figure is 10,000: make bench-fleet).
const EnvBenchAgents = "FLOTILLA_BENCH_AGENTS"

// BenchmarkFleetSim runs a real hub process (built without -race) and e2e/cmd/fleetsim as a
// separate process with N simulated agents, and reports, for the hub alone:
//
//   - hub-KiB/agent: the hub's RSS growth per connected, synced, idle agent, at its highest
//     over 150s of idle (its heap grows with garbage up to its collector's target between
//     collections); hub-KiB/agent-low, the same when it first settled after the delivery;
//     hub-gogc-idle: the collector's target then (--gc-idle-percent); hub-idle-cpu-%: the
//     hub's CPU over those 150s, in percent of one CPU (heartbeats, reports, the benchmark's
//     polls of status and its garbage collections); and the Go heap in use
//     (after a collection), goroutine stacks and goroutines per agent (from the hub's
//     --profiling), with the heap profile kept in $FLOTILLA_BENCH_PROFILES (default: the temp
//     dir's flotilla-bench-profiles) for `go tool pprof -top`;
//
//   - commit-ack-p50/p99/max-ms: from a signed push webhook for a commit changing one app
//     (base/api) to each agent's ACK of it;
//
//   - restart-s, restart-resent: a hub restart until every agent is welcomed again and status
//     shows every app Synced at the commit, and how many bundles the restarted hub sent (0
//     wanted: the agents hold matching digests);
//
//   - storm-status-p99-ms, storm-status-one-p99-ms, storm-welcome-max-ms: every agent
//     reconnects at once while two operators time `flotilla status -o json` every 500ms (or
//     back to back when slower), one for the whole fleet and one for one cluster (with how
//     many calls each made; idle-status-p50-ms and idle-status-one-p50-ms: the same calls on
//     the idle hub just before), the longest any agent waited for its Welcome, the hub's
//     CPU per reconnect (storm-hub-cpu-ms/agent, the status calls included), and how many of
//     the hub's goroutines were waiting for a CPU (storm-runnable-p50/max, sampled every
//     250ms from go_sched_goroutines_runnable_goroutines). With FLOTILLA_BENCH_STORM_CPU=seconds,
//     a CPU profile of the hub over that long from the storm's start is kept beside the heap
//     profile.
//
// fleetsim runs at nice 19: its agents stand in for other machines and take only the CPU the
// hub leaves. The operators' CLI runs at nice -10 (operatorNice) for the same reason: it stands
// in for the operator's own machine.
//
// The hub runs with its default heartbeat (10s); status is polled every 200ms per 1,000
// clusters while waiting for the fleet to converge.
//
//	FLOTILLA_BENCH_AGENTS=1000 go test -run '^$' -bench FleetSim -benchtime 1x ./e2e/
func BenchmarkFleetSim(b *testing.B) {
	n := 1000
	if v := os.Getenv(EnvBenchAgents); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("%s=%q: want a positive number", EnvBenchAgents, v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Minute)
	defer cancel()
	bin := b.TempDir()
	if err := localfleet.Build(ctx, bin, false); err != nil {
		b.Fatal(err)
	}
	secret := filepath.Join(b.TempDir(), "webhook-secret")
	if err := os.WriteFile(secret, []byte("bench-secret\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	// The hub's default heartbeat (10s), not the tests' 1s: at 10,000 agents a 1s heartbeat is
	// 20,000 messages a second, and the fleet would not be idle when its memory is measured.
	e := newSimEnv(b, ctx, bin, false, 10*time.Minute, "--webhook-secret-file", secret, "--log-level", "info", "--profiling",
		"--heartbeat", "10s")
	start := time.Now()
	e.nice = true
	e.prepare(n)
	b.Logf("%d agents registered and enrolled in %s", n, time.Since(start).Round(time.Millisecond))
	rev, err := e.repo.Head()
	if err != nil {
		b.Fatal(err)
	}

	for b.Loop() {
		// (a) hub RSS per idle connected agent: the hub idle before and after.
		e.waitHubIdle(b)
		before, err := e.fleet.Hub.RSS()
		if err != nil {
			b.Fatal(err)
		}
		memBefore := e.hubMemory(b, "")
		e.run()
		if err := e.waitAllAt(20*time.Minute, n, rev); err != nil {
			b.Fatal(err)
		}
		e.waitStats(10*time.Minute, "every agent connected", func(s simStats) bool { return s.Connected == n })
		e.waitHubIdle(b)
		low := steadyRSS(b, e.fleet.Hub) // idle: the delivery's garbage gone
		b.ReportMetric(float64(low-before)/float64(n)/1024, "hub-KiB/agent-low")
		gogc, err := e.hubMetric("go_gc_gogc_percent")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(gogc, "hub-gogc-idle")
		idleCPU, err := e.fleet.Hub.CPU()
		if err != nil {
			b.Fatal(err)
		}
		after := peakRSS(b, e.ctx, e.fleet.Hub, idleWindow)
		b.ReportMetric(float64(after-before)/float64(n)/1024, "hub-KiB/agent")
		idleCPUEnd, err := e.fleet.Hub.CPU()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(100*(idleCPUEnd-idleCPU).Seconds()/idleWindow.Seconds(), "hub-idle-cpu-%")
		memAfter := e.hubMemory(b, fmt.Sprintf("hub-heap-%d-agents.pprof", n))
		b.ReportMetric(float64(memAfter.heap-memBefore.heap)/float64(n)/1024, "hub-heap-KiB/agent")
		b.ReportMetric(float64(memAfter.stack-memBefore.stack)/float64(n)/1024, "hub-stack-KiB/agent")
		b.ReportMetric(float64(memAfter.goroutines-memBefore.goroutines)/float64(n), "hub-goroutines/agent")

		// (b) webhook → every ACK of one changed app.
		rev, err = e.repo.Commit("api 1.1.0", map[string]string{"base/api/kustomization.yaml": localfleet.BaseAPIKustomization("1.1.0")})
		if err != nil {
			b.Fatal(err)
		}
		e.post("/mark")
		body := fmt.Sprintf(`{"ref":"refs/heads/main","repository":{"clone_url":%q}}`, e.git.URL(e.repo.Dir))
		if code := signedWebhook(b, e.fleet.HTTPAddr, body, "bench-secret"); code != http.StatusOK {
			b.Fatalf("webhook: status %d", code)
		}
		s := e.waitStats(10*time.Minute, "every agent ACKed the commit", func(s simStats) bool { return s.Acks >= n })
		b.ReportMetric(s.Latency.P50, "commit-ack-p50-ms")
		b.ReportMetric(s.Latency.P99, "commit-ack-p99-ms")
		b.ReportMetric(s.Latency.Max, "commit-ack-max-ms")
		if err := e.waitAllAt(10*time.Minute, n, rev); err != nil {
			b.Fatal(err)
		}

		// (c) hub restart: every agent back and synced; bundles the new hub sent.
		e.fleet.Hub.Stop(10 * time.Second)
		e.post("/reset")
		restarted := time.Now()
		if err := e.fleet.StartHub(ctx); err != nil {
			b.Fatal(err)
		}
		e.waitStats(20*time.Minute, "every agent welcomed again", func(s simStats) bool { return s.Welcomes >= n && s.Connected == n })
		if err := e.waitAllAt(20*time.Minute, n, rev); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(restarted).Seconds(), "restart-s")
		sent, err := e.hubMetric("flotilla_hub_stream_messages_total", `direction="out"`, `type="desired"`)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(sent, "restart-resent")

		// (d) reconnect storm while two operators call `flotilla status` every 500ms, one for
		// the whole fleet, one for one cluster; first the same calls on the idle hub.
		whole, one := []string{}, []string{"--cluster", "sim-00000"}
		idle := timeStatus(ctx, e.fleet, 5, nil, whole)
		idleOne := timeStatus(ctx, e.fleet, 5, nil, one)
		cpuBefore, err := e.fleet.Hub.CPU()
		if err != nil {
			b.Fatal(err)
		}
		e.post("/storm")
		if secs := os.Getenv(EnvBenchStormCPU); secs != "" {
			go e.keepProfile(b, "/debug/pprof/profile?seconds="+secs, fmt.Sprintf("hub-cpu-storm-%d-agents.pprof", n))
		}
		var done atomic.Bool
		polls := make(chan []time.Duration)
		go func() { polls <- timeStatus(ctx, e.fleet, math.MaxInt, &done, whole) }()
		pollsOne := make(chan []time.Duration)
		go func() { pollsOne <- timeStatus(ctx, e.fleet, math.MaxInt, &done, one) }()
		runnable := make(chan []float64)
		go func() { runnable <- e.sampleRunnable(&done) }()
		s = e.waitStats(20*time.Minute, "every agent reconnected after the storm", func(s simStats) bool { return s.Welcomes >= n && s.Connected == n })
		cpuAfter, err := e.fleet.Hub.CPU()
		if err != nil {
			b.Fatal(err)
		}
		done.Store(true)
		ds, dsOne, rs := <-polls, <-pollsOne, <-runnable
		// The hub's CPU per reconnect, the status calls of the storm included.
		b.ReportMetric(float64((cpuAfter-cpuBefore).Microseconds())/1000/float64(n), "storm-hub-cpu-ms/agent")
		b.ReportMetric(ms(percentile(idle, 50)), "idle-status-p50-ms")
		b.ReportMetric(ms(percentile(ds, 99)), "storm-status-p99-ms")
		b.ReportMetric(float64(len(ds)), "storm-status-calls")
		b.ReportMetric(ms(percentile(idleOne, 50)), "idle-status-one-p50-ms")
		b.ReportMetric(ms(percentile(dsOne, 99)), "storm-status-one-p99-ms")
		b.ReportMetric(float64(len(dsOne)), "storm-status-one-calls")
		b.ReportMetric(s.WelcomeWait.Max, "storm-welcome-max-ms")
		b.ReportMetric(percentile(rs, 50), "storm-runnable-p50")
		b.ReportMetric(percentile(rs, 100), "storm-runnable-max")
		b.ReportMetric(float64(n), "agents")
	}
	b.ReportMetric(0, "ns/op")
}

// waitAllAt waits until `flotilla status` shows every simulated cluster's apps Synced and
// Healthy at rev, polling the whole fleet's status every 200ms per 1,000 clusters (a status of
// 20,000 rows costs the hub about 0.4s of CPU: polling it faster would load the hub measured).
func (e *simEnv) waitAllAt(timeout time.Duration, n int, rev string) error {
	every := max(200*time.Millisecond, time.Duration(n)*200*time.Microsecond)
	_, err := e.fleet.WaitStatusEvery(e.ctx, every, timeout, simAllAt(n, rev))
	return err
}

// operatorNice runs the operators' `flotilla status` at nice -10: an operator's CLI runs on the
// operator's own machine, as fleetsim's agents (at nice 19) stand in for the clusters', so it
// gets the CPU it asks for and its time is its own work plus the hub's answer. On the same two
// cores at nice 0 it would share them with the hub in the storm and time the machine instead.
var operatorNice = []string{"nice", "-n", "-10"}

// hubIdleAfter is how long the hub takes to count itself idle after its last busy moment
// (--gc-idle-percent: 30s of at most 10 agent streams opened and desired messages sent a
// second), when its garbage collector's target goes down; the hub's memory per idle agent is
// measured once the hub has been that long without agents connecting or desired state sent.
const hubIdleAfter = 40 * time.Second

// statusEvery is how often an operator of the storm calls `flotilla status` (or as soon as
// the last call returned, if that took longer): an operator watching, not a load test.
const statusEvery = 500 * time.Millisecond

// timeStatus times `flotilla status -o json` with flags count times (fewer when stop is set),
// starting one every statusEvery at most; sorted; failed calls are left out. The time is the
// operator's: until the command has printed its answer and exited. Reading the answer back
// (checking it is a document of rows) is the benchmark's own work, after the time is taken.
func timeStatus(ctx context.Context, f *localfleet.Fleet, count int, stop *atomic.Bool, flags []string) []time.Duration {
	var ds []time.Duration
	for range count {
		if stop != nil && stop.Load() {
			break
		}
		t := time.Now()
		out, err := f.CLIWith(ctx, operatorNice, append([]string{"status", "-o", "json"}, flags...)...)
		d := time.Since(t)
		var doc struct {
			Items []json.RawMessage `json:"items"`
		}
		if err == nil && json.Unmarshal(out, &doc) == nil && len(doc.Items) > 0 {
			ds = append(ds, d)
		}
		time.Sleep(statusEvery - time.Since(t))
	}
	slices.Sort(ds)
	return ds
}

// sampleRunnable reads the hub's count of runnable goroutines (go_sched_goroutines_runnable,
// those waiting for a CPU) every 250ms until stop is set; sorted.
func (e *simEnv) sampleRunnable(stop *atomic.Bool) []float64 {
	var out []float64
	for !stop.Load() {
		if v, err := e.hubMetric("go_sched_goroutines_runnable_goroutines"); err == nil {
			out = append(out, v)
		}
		time.Sleep(250 * time.Millisecond)
	}
	slices.Sort(out)
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// idleWindow is how long the idle hub's RSS is watched for its highest reading: long enough
// for its garbage collector to let the heap grow to its target and collect at least once
// (every 2 minutes at the latest).
const idleWindow = 150 * time.Second

// waitHubIdle polls the hub's desired-state messages and connected agents until neither has
// changed for hubIdleAfter: the hub then counts itself idle (--gc-idle-percent).
func (e *simEnv) waitHubIdle(b *testing.B) {
	b.Helper()
	last, since := "", time.Now()
	testwait.For(b, 10*time.Minute, "the hub idle", func(context.Context) (bool, error) {
		sent, err := e.hubMetric("flotilla_hub_stream_messages_total", `direction="out"`, `type="desired"`)
		if err != nil {
			return false, nil
		}
		connected, err := e.hubMetric("flotilla_hub_agents_connected")
		if err != nil {
			return false, nil
		}
		if now := fmt.Sprint(sent, connected); now != last {
			last, since = now, time.Now()
		}
		return time.Since(since) >= hubIdleAfter, nil
	})
}

// steadyRSS polls p's RSS until it has stayed within 1 % of one reading for 2 s, and returns
// the last reading: the idle hub's memory once a delivery's garbage is collected.
func steadyRSS(b *testing.B, p *localkube.Process) int64 {
	b.Helper()
	var base, last int64
	var since time.Time
	testwait.For(b, 2*time.Minute, "the hub's RSS steady", func(context.Context) (bool, error) {
		rss, err := p.RSS()
		if err != nil {
			return false, err
		}
		last = rss
		if base == 0 || abs64(rss-base)*100 >= base {
			base, since = rss, time.Now()
		}
		return time.Since(since) >= 2*time.Second, nil
	})
	return last
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
