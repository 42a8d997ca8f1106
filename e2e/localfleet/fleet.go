// Package localfleet runs the whole system on one machine: local Kubernetes clusters
// (localkube), a Git repository served by `git daemon`, the hub and one agent per cluster, all
// as real processes built from this repository. The end-to-end tests, the demo and the
// benchmarks drive it.
package localfleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

// Member is a cluster of the fleet and the labels it is registered with.
type Member struct {
	Cluster *localkube.Cluster
	Labels  map[string]string
}

// Options configure a fleet.
type Options struct {
	// Dir holds the hub's data dir, the apps dir, logs and the git repositories.
	Dir string
	// BinDir holds flotilla and flotilla-agent (see Build).
	BinDir  string
	Members []Member
	// AppsDir is the directory of Application manifests the hub reads.
	AppsDir      string
	PollInterval time.Duration
	Heartbeat    time.Duration
	// HubArgs are extra flags for `flotilla hub`.
	HubArgs []string
	// AgentArgs are extra flags for every `flotilla-agent`.
	AgentArgs []string
	// SkipAgents registers the members but starts no agents (a test starts them its own way,
	// with Token).
	SkipAgents bool
	// Binaries overrides BinDir's executable for one process: "hub" for the hub, a cluster's
	// name for its agent (an older build in the version-skew test). UseBinary changes it later.
	Binaries map[string]string
}

// Fleet is a running hub with its agents.
type Fleet struct {
	opts        Options
	HubAddr     string
	HTTPAddr    string
	DataDir     string
	AdminConfig string
	LogDir      string
	Hub         *localkube.Process
	Agents      map[string]*localkube.Process
	// AgentHTTP is each agent's /healthz, /readyz and /metrics address.
	AgentHTTP map[string]string
	tokens    map[string]string
}

// RepoRoot finds the repository root from the working directory (the directory with go.mod
// declaring the flotilla module).
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the flotilla module")
	}
	return filepath.Dir(mod), nil
}

// Build compiles flotilla and flotilla-agent into outDir, with the race detector when race is
// set. Without it they are built as `make build` and the images build them (CGO_ENABLED=0,
// -trimpath), so a benchmark measures the binaries operators run: a cgo build also maps the C
// library and its loader into each process (libc alone is 1.9 MB here).
func Build(ctx context.Context, outDir string, race bool) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	return build(ctx, root, outDir, race)
}

// BuildAt compiles flotilla and flotilla-agent as they were at an earlier commit of this
// repository into outDir, stamped with version (what `flotilla clusters` shows as the agent's
// version). The commit's tree is exported with git archive; a shallow clone fetches the commit
// (a full 40-digit hash) from its origin first.
func BuildAt(ctx context.Context, commit, version, outDir string, race bool) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	// A shallow clone lacks the commit: fetch it from the clone's origin first.
	if exec.CommandContext(ctx, "git", "-C", root, "cat-file", "-e", commit+"^{commit}").Run() != nil {
		if out, err := exec.CommandContext(ctx, "git", "-C", root, "fetch", "--no-tags", "--depth", "1", "origin", commit).CombinedOutput(); err != nil {
			return fmt.Errorf("commit %s is not in this clone and could not be fetched from origin (clone with history): %w: %s", commit, err, out)
		}
	}
	src, err := os.MkdirTemp("", "flotilla-at-"+commit[:7]+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	archive := exec.CommandContext(ctx, "git", "-C", root, "archive", "--format=tar", commit)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", src)
	if untar.Stdin, err = archive.StdoutPipe(); err != nil {
		return err
	}
	var stderr strings.Builder
	archive.Stderr = &stderr
	if err := untar.Start(); err != nil {
		return err
	}
	if err := archive.Run(); err != nil {
		return fmt.Errorf("git archive %s: %w: %s", commit, err, stderr.String())
	}
	if err := untar.Wait(); err != nil {
		return fmt.Errorf("unpacking %s: %w", commit, err)
	}
	return build(ctx, src, outDir, race,
		"-ldflags", "-X "+versionPkg+".Version="+version+" -X "+versionPkg+".Commit="+commit)
}

const versionPkg = "github.com/flotilla-dev/flotilla/shared/version"

// build compiles the two binaries of the module in dir: with -race (which needs cgo), or as
// released.
func build(ctx context.Context, dir, outDir string, race bool, flags ...string) error {
	for bin, pkg := range map[string]string{"flotilla": "./hub/cmd/flotilla", "flotilla-agent": "./agent/cmd/flotilla-agent"} {
		args := append([]string{"build", "-o", filepath.Join(outDir, bin)}, flags...)
		env := os.Environ()
		if race {
			args = append(args, "-race")
		} else {
			args = append(args, "-trimpath")
			env = append(env, "CGO_ENABLED=0")
		}
		cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
		cmd.Dir = dir
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, out)
		}
	}
	return nil
}

// Start starts the hub, registers every member and starts its agent.
func Start(ctx context.Context, opts Options) (*Fleet, error) {
	if opts.PollInterval == 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = time.Second
	}
	f := &Fleet{
		opts: opts, DataDir: filepath.Join(opts.Dir, "hub-data"), LogDir: filepath.Join(opts.Dir, "logs"),
		Agents: map[string]*localkube.Process{}, AgentHTTP: map[string]string{}, tokens: map[string]string{},
	}
	f.AdminConfig = filepath.Join(f.DataDir, "admin.yaml")
	if err := os.MkdirAll(f.LogDir, 0o700); err != nil {
		return nil, err
	}
	ports, err := localkube.FreePorts(2)
	if err != nil {
		return nil, err
	}
	f.HubAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
	f.HTTPAddr = "127.0.0.1:" + strconv.Itoa(ports[1])
	if err := f.StartHub(ctx); err != nil {
		return nil, err
	}
	for _, m := range opts.Members {
		if err := f.Register(ctx, m.Cluster.Name, m.Labels); err != nil {
			f.Stop()
			return nil, err
		}
		if opts.SkipAgents {
			continue
		}
		if err := f.StartAgent(m.Cluster); err != nil {
			f.Stop()
			return nil, err
		}
	}
	return f, nil
}

// StartHub starts (or restarts) the hub process and waits until the CLI can reach it.
func (f *Fleet) StartHub(ctx context.Context) error {
	args := []string{"hub", "--data-dir", f.DataDir, "--listen", f.HubAddr, "--http-listen", f.HTTPAddr,
		"--apps-dir", f.opts.AppsDir, "--poll-interval", f.opts.PollInterval.String(),
		"--heartbeat", f.opts.Heartbeat.String(), "--allow-local-repos", "--log-level", "debug"}
	hub, err := localkube.StartProcess("hub", f.binary("hub", "flotilla"), append(args, f.opts.HubArgs...), nil, f.LogDir)
	if err != nil {
		return err
	}
	f.Hub = hub
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if done, err := hub.Exited(); done {
			return false, fmt.Errorf("hub exited: %v\n%s", err, hub.Tail(4096))
		}
		_, err := f.CLI(ctx, "clusters")
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("hub did not come up: %w", err)
	}
	return nil
}

// Register adds a cluster to the hub and keeps its join token for StartAgent.
func (f *Fleet) Register(ctx context.Context, name string, labels map[string]string) error {
	var parts []string
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	out, err := f.CLI(ctx, "cluster", "add", name, "--labels", strings.Join(parts, ","))
	if err != nil {
		return err
	}
	f.tokens[name] = strings.TrimSpace(string(out))
	return nil
}

// Token is the join token the hub issued for a registered cluster.
func (f *Fleet) Token(cluster string) string { return f.tokens[cluster] }

// StartAgent starts (or restarts) the agent of a cluster. The join token is passed on every
// start; after the first, the agent uses the identity it keeps in the cluster.
func (f *Fleet) StartAgent(c *localkube.Cluster) error {
	ports, err := localkube.FreePorts(1)
	if err != nil {
		return err
	}
	f.AgentHTTP[c.Name] = "127.0.0.1:" + strconv.Itoa(ports[0])
	args := []string{"--hub", f.HubAddr, "--join-token", f.tokens[c.Name], "--kubeconfig", c.Kubeconfig,
		"--http-listen", f.AgentHTTP[c.Name], "--log-level", "debug"}
	p, err := localkube.StartProcess("agent-"+c.Name, f.binary(c.Name, "flotilla-agent"), append(args, f.opts.AgentArgs...), nil, f.LogDir)
	if err != nil {
		return err
	}
	f.Agents[c.Name] = p
	return nil
}

// UseBinary makes the next start of a process ("hub" or a cluster's name) run path.
func (f *Fleet) UseBinary(process, path string) {
	if f.opts.Binaries == nil {
		f.opts.Binaries = map[string]string{}
	}
	f.opts.Binaries[process] = path
}

// binary is the executable a process runs: its override, or name in BinDir.
func (f *Fleet) binary(process, name string) string {
	if path, ok := f.opts.Binaries[process]; ok {
		return path
	}
	return filepath.Join(f.opts.BinDir, name)
}

// CLI runs `flotilla` with the operator config and returns its standard output.
func (f *Fleet) CLI(ctx context.Context, args ...string) ([]byte, error) {
	return f.CLIWith(ctx, nil, args...)
}

// CLIWith is CLI with the command run through prefix, for example nice -n -10.
func (f *Fleet) CLIWith(ctx context.Context, prefix []string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	argv := append(append(slices.Clone(prefix), filepath.Join(f.opts.BinDir, "flotilla"), "--config", f.AdminConfig), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("flotilla %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// StatusItem is one row of `flotilla status -o json`.
type StatusItem struct {
	Cluster           string            `json:"cluster"`
	App               string            `json:"app"`
	Sync              string            `json:"sync"`
	Health            string            `json:"health"`
	DesiredRevision   string            `json:"desiredRevision"`
	AppliedRevision   string            `json:"appliedRevision"`
	HealthyRevision   string            `json:"healthyRevision"`
	LastSeen          *time.Time        `json:"lastSeen"`
	Drift             []json.RawMessage `json:"drift"`
	Message           string            `json:"message"`
	CommitToAppliedMs int64             `json:"commitToAppliedMs"`
}

// Status returns `flotilla status -o json` with flags (e.g. --cluster NAME).
func (f *Fleet) Status(ctx context.Context, flags ...string) ([]StatusItem, error) {
	out, err := f.CLI(ctx, append([]string{"status", "-o", "json"}, flags...)...)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Items []StatusItem `json:"items"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("status -o json: %w: %s", err, out)
	}
	return resp.Items, nil
}

// WaitStatus polls `flotilla status` until cond holds for the rows, or the timeout passes; the
// error then shows the last rows.
func (f *Fleet) WaitStatus(ctx context.Context, timeout time.Duration, cond func([]StatusItem) bool) ([]StatusItem, error) {
	return f.WaitStatusEvery(ctx, 200*time.Millisecond, timeout, cond)
}

// WaitStatusEvery is WaitStatus polling every interval: a whole fleet's status costs the hub
// more the larger the fleet, and polling it back to back would load the hub being measured.
func (f *Fleet) WaitStatusEvery(ctx context.Context, interval, timeout time.Duration, cond func([]StatusItem) bool) ([]StatusItem, error) {
	var last []StatusItem
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		items, err := f.Status(ctx)
		if err != nil {
			return false, nil
		}
		last = items
		return cond(items), nil
	})
	if err != nil {
		b, _ := json.MarshalIndent(last, "", "  ")
		return last, fmt.Errorf("fleet status did not converge in %s: %w\n%s", timeout, err, b)
	}
	return last, nil
}

// Logs returns the tail of the hub's and every agent's log.
func (f *Fleet) Logs() string {
	procs := []*localkube.Process{f.Hub}
	for _, a := range f.Agents {
		procs = append(procs, a)
	}
	return tails(procs)
}

// tails is the tail of each process's log, under its name.
func tails(procs []*localkube.Process) string {
	var b strings.Builder
	for _, p := range procs {
		if p != nil {
			fmt.Fprintf(&b, "\n--- %s (%s) ---\n%s", p.Name(), p.LogPath, p.Tail(16384))
		}
	}
	return b.String()
}

// Stop stops the agents and the hub.
func (f *Fleet) Stop() {
	for _, a := range f.Agents {
		a.Stop(5 * time.Second)
	}
	if f.Hub != nil {
		f.Hub.Stop(5 * time.Second)
	}
}
