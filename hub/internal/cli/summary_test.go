package cli

import (
	"testing"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

func TestTallies(t *testing.T) {
	rows := []*flotillav1.AppClusterStatus{
		{Cluster: "a", App: "api", Sync: "Synced", Health: "Healthy"},
		{Cluster: "b", App: "api", Sync: "OutOfSync", Health: "Healthy", Drift: []*flotillav1.DriftItem{{Type: "modified"}}},
		{Cluster: "a", App: "worker", Sync: "Synced", Health: "Degraded"},
		{Cluster: "b", App: "worker", Sync: "RenderFailed", Health: "Healthy"},
	}
	apps := tallies(rows, byApp)
	if got := apps["api"]; got != (tally{Total: 2, Synced: 1, Healthy: 2, Drifted: 1}) {
		t.Fatalf("api = %+v", got)
	}
	if s := apps["api"].String(); s != "1/2 synced, 2/2 healthy, 1 drifted" {
		t.Fatalf("api = %q", s)
	}
	clusters := tallies(rows, byCluster)
	if got := clusters["a"]; got != (tally{Total: 2, Synced: 2, Healthy: 1}) {
		t.Fatalf("cluster a = %+v", got)
	}
	if got := clusters["b"]; got != (tally{Total: 2, Healthy: 2, Drifted: 1, RenderFailed: 1}) {
		t.Fatalf("cluster b = %+v", got)
	}
	if s := apps["worker"].String(); s != "1/2 synced, 1/2 healthy, 1 render failed" {
		t.Fatalf("worker = %q", s)
	}
	if s := (tally{}).String(); s != "-" {
		t.Fatalf("empty = %q", s)
	}
}
