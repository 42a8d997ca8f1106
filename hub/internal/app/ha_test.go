package app

import (
	"slices"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/server"
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
