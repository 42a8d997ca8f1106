// Package hubtest starts a real hub in a test's process (store, CA, TLS gRPC on loopback) and
// stands in for agents on its real stream. The CLI's and the dashboard's tests share it, so
// that only one place knows how a hub is wired for tests.
package hubtest

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	"github.com/flotilla-dev/flotilla/hub/internal/rollout"
	"github.com/flotilla-dev/flotilla/hub/internal/server"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// Hub is a real hub running in the test's process.
type Hub struct {
	Server *server.Server
	Fleet  *fleet.Fleet
	Store  *store.Store
	// Rollouts is the hub's rollout coordinator.
	Rollouts *rollout.Coordinator
	CA       *pki.CA
	// Addr is host:port of the hub's gRPC listener.
	Addr string
	// AdminCert and AdminKey are PEM: the operator certificate the hub writes to admin.yaml.
	AdminCert, AdminKey []byte
}

// Retention is what the test hub keeps of history.
var Retention = store.Retention{HistoryPerApp: 100, HistoryMaxAge: 30 * 24 * time.Hour}

// Start starts a hub for t, stopped when t ends. server.Config is assembled here and nowhere
// else in tests (opts adjust it). Heartbeats are an hour apart, so no cluster goes Stale while
// a test reads.
func Start(t testing.TB, opts ...func(*server.Config)) *Hub {
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
	st.SetRetention(Retention)
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
	cfg := server.Config{
		Fleet: fl, Store: st, Pins: st, Replication: st, CA: ca, Serving: serving, Heartbeat: time.Hour, HubVersion: "test",
		Logger: log, Git: fetcher, Retention: Retention, Rollouts: rollouts,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv := server.New(cfg)
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
	return &Hub{Server: srv, Fleet: fl, Store: st, Rollouts: rollouts, CA: ca, Addr: lis.Addr().String(), AdminCert: cert, AdminKey: key}
}

// Dial connects to the hub over TLS with the given client certificate (none: nil), closed
// when t ends.
func (h *Hub) Dial(t testing.TB, cert *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{RootCAs: h.CA.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(h.Addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Operator is a client of the hub's Operator service with the admin certificate.
func (h *Hub) Operator(t testing.TB) flotillav1.OperatorClient {
	t.Helper()
	cert, err := tls.X509KeyPair(h.AdminCert, h.AdminKey)
	if err != nil {
		t.Fatal(err)
	}
	return flotillav1.NewOperatorClient(h.Dial(t, &cert))
}

// WaitReport waits until the hub's latest report on app from cluster satisfies ok.
func (h *Hub) WaitReport(t *testing.T, cluster, app string, ok func(fleet.Report) bool) {
	t.Helper()
	testwait.Until(t, 30*time.Second, "report on "+app+" from "+cluster, func() bool {
		r, found := h.Fleet.LatestReport(cluster, app)
		return found && ok(r)
	})
}

// WaitHistory waits until the hub recorded n history entries of app on cluster.
func (h *Hub) WaitHistory(t *testing.T, app, cluster string, n int) {
	t.Helper()
	testwait.For(t, 30*time.Second, "history of "+app+" on "+cluster, func(ctx context.Context) (bool, error) {
		recs, err := h.Store.ListHistory(app, cluster, 0)
		return len(recs) >= n, err
	})
}

// ConfigMapBundle is a bundle of one ConfigMap, name, whose data holds revision: data.
func ConfigMapBundle(t testing.TB, name, data string) *bundle.Bundle {
	t.Helper()
	b, err := bundle.New([]*unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name},
		"data": map[string]any{"revision": data},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
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
