package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// simEnv is a real hub process with no real clusters, the demo repository served by git
// daemon, and e2e/cmd/fleetsim as a separate process running simulated agents against it.
type simEnv struct {
	tb      testing.TB
	ctx     context.Context
	dir     string
	binDir  string
	repo    *localfleet.Repo
	git     *localfleet.GitDaemon
	fleet   *localfleet.Fleet
	ids     string // the prepared identities
	sim     *localkube.Process
	control string // fleetsim's control endpoint
	nice    bool   // run fleetsim at nice 19 (benchmarks)
}

// simStats is fleetsim's GET /stats (its Summary).
type simStats struct {
	Agents      int     `json:"agents"`
	Connected   int     `json:"connected"`
	Welcomes    int     `json:"welcomes"`
	Bundles     int     `json:"bundles"`
	Acks        int     `json:"acks"`
	Nacks       int     `json:"nacks"`
	Latency     simDist `json:"latency"`
	WelcomeWait simDist `json:"welcomeWait"`
}

// simDist is one of fleetsim's distributions, in milliseconds.
type simDist struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50Ms"`
	P90   float64 `json:"p90Ms"`
	P99   float64 `json:"p99Ms"`
	Max   float64 `json:"maxMs"`
}

// newSimEnv starts the hub (built into binDir, with fleetsim beside it) with the demo's
// Applications; pollInterval 0 is two seconds.
func newSimEnv(tb testing.TB, ctx context.Context, binDir string, race bool, pollInterval time.Duration, hubArgs ...string) *simEnv {
	tb.Helper()
	dir := tb.TempDir()
	args := []string{"build", "-o", filepath.Join(binDir, "fleetsim")}
	if race {
		args = append(args, "-race")
	}
	if out, err := exec.CommandContext(ctx, "go", append(args, "./cmd/fleetsim")...).CombinedOutput(); err != nil {
		tb.Fatalf("go build fleetsim: %v\n%s", err, out)
	}
	repo, git, err := localfleet.ServeDemo(ctx, dir, "1.0.0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(git.Stop)
	appsDir := filepath.Join(dir, "apps")
	if err := localfleet.WriteFiles(appsDir, localfleet.DemoApplications(git.URL(repo.Dir))); err != nil {
		tb.Fatal(err)
	}
	if pollInterval == 0 {
		pollInterval = 2 * time.Second
	}
	f, err := localfleet.Start(ctx, localfleet.Options{
		Dir: dir, BinDir: binDir, AppsDir: appsDir, PollInterval: pollInterval, Heartbeat: time.Second, HubArgs: hubArgs,
	})
	if err != nil {
		tb.Fatal(err)
	}
	e := &simEnv{tb: tb, ctx: ctx, dir: dir, binDir: binDir, repo: repo, git: git, fleet: f, ids: filepath.Join(dir, "ids")}
	tb.Cleanup(func() {
		if e.sim != nil {
			e.sim.Stop(5 * time.Second)
			if tb.Failed() {
				tb.Log(e.sim.Tail(8192))
			}
		}
		if tb.Failed() {
			tb.Log(f.Logs())
		}
		f.Stop()
	})
	return e
}

// prepare registers n clusters labelled env=staging and enrols them with fleetsim prepare.
func (e *simEnv) prepare(n int) {
	e.tb.Helper()
	cmd := exec.CommandContext(e.ctx, filepath.Join(e.binDir, "fleetsim"), "prepare", "--hub", e.fleet.HubAddr,
		"--config", e.fleet.AdminConfig,
		"--count", strconv.Itoa(n), "--dir", e.ids, "--labels", "env=staging")
	if out, err := cmd.CombinedOutput(); err != nil {
		e.tb.Fatalf("fleetsim prepare: %v\n%s", err, out)
	}
}

// run starts fleetsim run with extra flags and waits for its control endpoint. For a
// benchmark (e.nice), fleetsim runs at the lowest CPU priority (nice 19): its agents stand in
// for other machines, and what they do must not take the measured hub's CPU (it takes what the
// hub leaves). Tests run it as any other process, beside other tests.
func (e *simEnv) run(flags ...string) {
	e.tb.Helper()
	addrFile := filepath.Join(e.dir, "control-addr")
	bin, args := filepath.Join(e.binDir, "fleetsim"), []string{"run", "--hub", e.fleet.HubAddr, "--dir", e.ids,
		"--control", "127.0.0.1:0", "--control-addr-file", addrFile}
	if e.nice {
		bin, args = "nice", append([]string{"-n", "19", bin}, args...)
	}
	p, err := localkube.StartProcess("fleetsim", bin, append(args, flags...), nil, e.fleet.LogDir)
	if err != nil {
		e.tb.Fatal(err)
	}
	e.sim = p
	testwait.Until(e.tb, time.Minute, "fleetsim's control endpoint", func() bool {
		b, err := os.ReadFile(addrFile)
		e.control = string(b)
		return err == nil && e.control != ""
	})
}

// post calls a control endpoint of fleetsim.
func (e *simEnv) post(path string) {
	e.tb.Helper()
	resp, err := http.Post("http://"+e.control+path, "", nil)
	if err != nil {
		e.tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.tb.Fatalf("fleetsim %s: %s", path, resp.Status)
	}
}

// stats reads fleetsim's figures.
func (e *simEnv) stats() (simStats, error) {
	var s simStats
	resp, err := http.Get("http://" + e.control + "/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// waitStats polls fleetsim's figures until cond holds.
func (e *simEnv) waitStats(timeout time.Duration, what string, cond func(simStats) bool) simStats {
	e.tb.Helper()
	var last simStats
	testwait.For(e.tb, timeout, what, func(context.Context) (bool, error) {
		s, err := e.stats()
		last = s
		return err == nil && cond(s), nil
	})
	return last
}

// hubMetric sums the samples of a metric on the hub's /metrics whose line has every one of
// labels (e.g. `direction="out"`).
func (e *simEnv) hubMetric(name string, labels ...string) (float64, error) {
	resp, err := http.Get("http://" + e.fleet.HTTPAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum, nil
}

// simAllAt tells whether every row of n simulated clusters' two demo apps is Synced and Healthy
// at rev.
func simAllAt(n int, rev string) func([]localfleet.StatusItem) bool {
	return func(items []localfleet.StatusItem) bool {
		at := 0
		for _, it := range items {
			if strings.HasPrefix(it.Cluster, "sim-") && it.AppliedRevision == rev && it.Sync == "Synced" && it.Health == "Healthy" {
				at++
			}
		}
		return at == 2*n
	}
}

// EnvBenchProfiles names the directory the benchmarks keep their profiles in.
const EnvBenchProfiles = "FLOTILLA_BENCH_PROFILES"

// hubMem is where the hub's memory is, as its runtime counts it.
type hubMem struct {
	heap, stack int64 // bytes: HeapInuse, StackInuse ("# Stack = inuse / sys")
	goroutines  int64
}

// hubMemory reads the hub's heap and stack in use and its goroutines from its /debug/pprof
// (the hub runs with --profiling), after a garbage collection; with a file name, it also keeps the
// heap profile there, in EnvBenchProfiles, and logs its path.
func (e *simEnv) hubMemory(b *testing.B, keep string) hubMem {
	b.Helper()
	get := func(path string) []byte {
		resp, err := http.Get("http://" + e.fleet.HTTPAddr + path)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d %v (does the hub run with --profiling?)", path, resp.StatusCode, err)
		}
		return body
	}
	var m hubMem
	for _, line := range strings.Split(string(get("/debug/pprof/heap?gc=1&debug=1")), "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapInuse = "); ok {
			m.heap, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "# Stack = "); ok { // "# Stack = inuse / sys"
			inuse, _, _ := strings.Cut(v, " ")
			m.stack, _ = strconv.ParseInt(inuse, 10, 64)
		}
	}
	first, _, _ := strings.Cut(string(get("/debug/pprof/goroutine?debug=1")), "\n")
	if _, err := fmt.Sscanf(first, "goroutine profile: total %d", &m.goroutines); err != nil || m.heap == 0 || m.stack == 0 {
		b.Fatalf("the hub's profiles unreadable: heap %d, stack %d, %q: %v", m.heap, m.stack, first, err)
	}
	if keep != "" {
		e.keepProfile(b, "/debug/pprof/heap?gc=1", keep)
	}
	return m
}

// EnvBenchStormCPU, set to a number of seconds, has BenchmarkFleetSim keep a CPU profile of the
// hub over that long from the start of its reconnect storm (in EnvBenchProfiles).
const EnvBenchStormCPU = "FLOTILLA_BENCH_STORM_CPU"

// keepProfile keeps the hub's profile at path (under /debug/pprof) as file name in
// EnvBenchProfiles, and logs where; a failure is logged, not fatal (it may run beside the
// measurement, in its own goroutine).
func (e *simEnv) keepProfile(b *testing.B, path, name string) {
	dir := os.Getenv(EnvBenchProfiles)
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "flotilla-bench-profiles")
	}
	resp, err := http.Get("http://" + e.fleet.HTTPAddr + path)
	if err != nil {
		b.Logf("hub profile %s: %v", path, err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	file := filepath.Join(dir, name)
	if err == nil {
		err = os.WriteFile(file, body, 0o644)
	}
	if err != nil {
		b.Logf("hub profile %s: %v", path, err)
		return
	}
	b.Logf("hub profile: %s (go tool pprof -top %s)", file, file)
}
