// Package e2e holds the end-to-end tests: real local clusters, a Git server, the hub and the
// agents as separate processes built from this repository.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

// clusters hands each test a pair of clusters of its own, so the tests run in parallel
// (go test -parallel); each test runs its own hub and agents on them.
var clusters = localkube.NewPool(localkube.Options{Name: "staging", AuditLog: true}, localkube.Options{Name: "production", AuditLog: true})

// binDir holds the flotilla and flotilla-agent binaries built for this run (with -race).
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "flotilla-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	if err := localfleet.Build(ctx, binDir, true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built flotilla and flotilla-agent (-race) in %s\n", time.Since(start).Round(time.Millisecond))
	return clusters.Main(m)
}

// env is one test's fleet: the shared clusters labelled env=staging and env=production, a Git
// repository with the demo layout served by git daemon, the hub and two agents.
type env struct {
	t        *testing.T
	ctx      context.Context
	repo     *localfleet.Repo
	git      *localfleet.GitDaemon
	appsDir  string
	dir      string
	fleet    *localfleet.Fleet
	clusters []*localkube.Cluster
}

// envOptions vary a test's fleet.
type envOptions struct {
	apiTag       string
	pollInterval time.Duration
	hubArgs      []string
	skipAgents   bool
	// binaries overrides the hub's ("hub") or a cluster's agent's executable.
	binaries map[string]string
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.apiTag == "" {
		o.apiTag = "1.0.0"
	}
	if o.pollInterval == 0 {
		o.pollInterval = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	cs := clusters.Clusters(t)
	dir := t.TempDir()
	e := &env{t: t, ctx: ctx, clusters: cs, appsDir: filepath.Join(dir, "apps"), dir: dir}
	var err error
	e.repo, e.git, err = localfleet.ServeDemo(ctx, dir, o.apiTag)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.git.Stop)
	if err := localfleet.WriteFiles(e.appsDir, localfleet.DemoApplications(e.git.URL(e.repo.Dir))); err != nil {
		t.Fatal(err)
	}
	e.fleet, err = localfleet.Start(ctx, localfleet.Options{
		Dir: dir, BinDir: binDir, AppsDir: e.appsDir, PollInterval: o.pollInterval, Heartbeat: time.Second, HubArgs: o.hubArgs, SkipAgents: o.skipAgents,
		Binaries: o.binaries,
		Members: []localfleet.Member{
			{Cluster: cs[0], Labels: map[string]string{"env": "staging"}},
			{Cluster: cs[1], Labels: map[string]string{"env": "production"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e.fleet.Logs())
		}
		e.fleet.Stop() // then the pool deletes the test's namespaces
	})
	return e
}
