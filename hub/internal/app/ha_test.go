package app

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/metrics"
	"github.com/flotilla-dev/flotilla/hub/internal/server"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
)

func TestReplicaOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    ReplicaOptions
		wantErr string
	}{
		{name: "alone", opts: ReplicaOptions{}},
		{name: "replica", opts: ReplicaOptions{GossipListen: "127.0.0.1:7946", GossipKeyFile: "k", Peers: []string{"hub-0:7946"}}},
		{name: "first replica without peers", opts: ReplicaOptions{GossipListen: ":7946", GossipKeyFile: "k"}},
		{name: "peers without gossip", opts: ReplicaOptions{Peers: []string{"hub-0:7946"}}, wantErr: "need --gossip-listen"},
		{name: "key without gossip", opts: ReplicaOptions{GossipKeyFile: "k"}, wantErr: "need --gossip-listen"},
		{name: "gossip without key", opts: ReplicaOptions{GossipListen: ":7946"}, wantErr: "--gossip-key-file"},
		{name: "bad gossip address", opts: ReplicaOptions{GossipListen: "7946", GossipKeyFile: "k"}, wantErr: "--gossip-listen"},
		{name: "bad peer", opts: ReplicaOptions{GossipListen: ":7946", GossipKeyFile: "k", Peers: []string{"hub-0"}}, wantErr: "--peers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			err := o.validate("/data", "10.0.0.1:7443")
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one naming %q", err, tt.wantErr)
			}
			if o.CADir != "/data" || o.NodeName != "10.0.0.1:7443" {
				t.Errorf("defaults: ca dir %q, node name %q; want the data dir and the advertised address", o.CADir, o.NodeName)
			}
		})
	}
}

func TestOwnedClusters(t *testing.T) {
	list := func() ([]fleet.ClusterVars, error) {
		return []fleet.ClusterVars{{Name: "a"}, {Name: "b"}, {Name: "c"}}, nil
	}
	names := func(l func() ([]fleet.ClusterVars, error)) []string {
		cs, err := l()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	owned := func() func(string) bool { return func(c string) bool { return c != "b" } }
	if got := names(ownedClusters(list, nil, owned)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("alone: %v, want every cluster", got)
	}
	if got := names(ownedClusters(list, &server.HAConfig{}, owned)); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("replica: %v, want the owned clusters a and c", got)
	}
}

// TestPresenceCountsOnlyWhatThisReplicaOwns: a replica counts as stale only the clusters it
// owns whose agent is not connected; a cluster owned by another replica is that replica's to
// count, and an agent connected here counts as connected.
func TestPresenceCountsOnlyWhatThisReplicaOwns(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "flotilla.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, c := range []store.Cluster{
		{Name: "mine-connected"}, {Name: "mine-silent"}, {Name: "mine-revoked", Revoked: true},
		{Name: "theirs"}, {Name: "theirs-connected-here"},
	} {
		if err := st.PutCluster(c); err != nil {
			t.Fatal(err)
		}
	}
	fl := fleet.New(time.Minute)
	fl.Seen("mine-connected", "v1", true)
	fl.Seen("theirs-connected-here", "v1", true) // until this replica lets go of it
	tests := []struct {
		name                     string
		owned                    func(string) bool
		wantConnected, wantStale int
	}{
		{"alone", func(string) bool { return true }, 2, 2},
		{"replica", func(c string) bool { return strings.HasPrefix(c, "mine-") }, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := metrics.New(presenceCounter(st, fl, func() func(string) bool { return tt.owned }, 0))
			checkPresence(t, m, tt.wantConnected, tt.wantStale)
		})
	}
}

// TestPresenceReadsTheRegistryAtMostEveryInterval: the presence metrics read the cluster
// registry once per interval (a scrape of 10,000 clusters' records costs tens of
// milliseconds); the agents' presence they read at every scrape.
func TestPresenceReadsTheRegistryAtMostEveryInterval(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "flotilla.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, name := range []string{"a", "b"} {
		if err := st.PutCluster(store.Cluster{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	fl := fleet.New(time.Minute)
	m := metrics.New(presenceCounter(st, fl, func() func(string) bool { return func(string) bool { return true } }, time.Hour))
	checkPresence(t, m, 0, 2)
	if err := st.PutCluster(store.Cluster{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	fl.Seen("a", "v1", true)
	checkPresence(t, m, 1, 1) // c not read yet; a's agent connected, counted at once
}

// checkPresence scrapes m and checks its presence gauges.
func checkPresence(t *testing.T, m *metrics.Hub, connected, stale int) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		fmt.Sprintf("flotilla_hub_agents_connected %d\n", connected),
		fmt.Sprintf("flotilla_hub_clusters_stale %d\n", stale),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(body, "flotilla_hub_"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
