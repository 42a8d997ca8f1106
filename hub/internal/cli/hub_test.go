package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	"github.com/flotilla-dev/flotilla/hub/internal/rollout"
	"github.com/flotilla-dev/flotilla/hub/internal/server"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
)

// testHub is a real hub running in the test's process: a store in a temporary directory, a CA,
// TLS gRPC on a loopback port, and the operator config the CLI reads (config).
type testHub struct {
	fleet    *fleet.Fleet
	store    *store.Store
	rollouts *rollout.Coordinator
	ca       *pki.CA
	addr     string // host:port of the hub's gRPC listener
	config   string // path of the operator config, as the hub writes DATA_DIR/admin.yaml
}

// testRetention is what the test hub keeps of history, as `flotilla history` tells.
var testRetention = store.Retention{HistoryPerApp: 100, HistoryMaxAge: 30 * 24 * time.Hour}

// startHub starts a hub for t, stopped when t ends. It is the one place the CLI's tests build a
// hub (server.Config is assembled here and nowhere else): nothing else in this package's tests
// knows how a hub is wired. Heartbeats are an hour apart, so no cluster goes Stale and no
// heartbeat changes what the hub says while a test reads it.
func startHub(t *testing.T) *testHub {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.LoadOrCreate(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.ServingCert(dir, []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "flotilla.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.SetRetention(testRetention)
	fetcher, err := source.New(source.Options{CacheDir: filepath.Join(dir, "git"), AllowLocal: true})
	if err != nil {
		t.Fatal(err)
	}
	fl := fleet.New(time.Hour)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rollouts, err := rollout.New(rollout.Config{Store: st, Fleet: fl, Clusters: registered(st), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{
		Fleet: fl, Store: st, Pins: st, Replication: st, CA: ca, Serving: serving, Heartbeat: time.Hour, HubVersion: "test",
		Logger: log, Git: fetcher, Retention: testRetention, Rollouts: rollouts,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("hub: %v", err)
		}
		st.Close()
	})

	cert, key, err := ca.IssueAdmin("admin", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h := &testHub{fleet: fl, store: st, rollouts: rollouts, ca: ca, addr: lis.Addr().String(), config: filepath.Join(dir, "admin.yaml")}
	if err := WriteConfig(h.config, &Config{Hub: h.addr, CA: string(ca.CertPEM()), Cert: string(cert), Key: string(key)}); err != nil {
		t.Fatal(err)
	}
	return h
}

// registered lists the registered clusters, as the hub's rollouts place them.
func registered(st *store.Store) func() ([]fleet.ClusterVars, error) {
	return func() ([]fleet.ClusterVars, error) {
		list, err := st.ListClusters()
		if err != nil {
			return nil, err
		}
		out := make([]fleet.ClusterVars, 0, len(list))
		for _, c := range list {
			out = append(out, fleet.ClusterVars{Name: c.Name, Labels: c.Labels})
		}
		return out, nil
	}
}
