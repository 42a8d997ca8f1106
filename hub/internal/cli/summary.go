package cli

import (
	"context"
	"fmt"

	"github.com/flotilla-dev/flotilla/hub/internal/opclient"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// tally aggregates status rows per app or per cluster.
type tally struct {
	Total   int `json:"total"`
	Synced  int `json:"synced"`
	Healthy int `json:"healthy"`
	Drifted int `json:"drifted"`
	// RenderFailed counts the rows whose latest render on the hub failed (sync RenderFailed).
	RenderFailed int `json:"renderFailed"`
}

func (t tally) String() string {
	if t.Total == 0 {
		return "-"
	}
	s := fmt.Sprintf("%d/%d synced, %d/%d healthy", t.Synced, t.Total, t.Healthy, t.Total)
	if t.Drifted > 0 {
		s += fmt.Sprintf(", %d drifted", t.Drifted)
	}
	if t.RenderFailed > 0 {
		s += fmt.Sprintf(", %d render failed", t.RenderFailed)
	}
	return s
}

// tallies aggregates rows by key (the app or the cluster of a row).
func tallies(rows []*flotillav1.AppClusterStatus, key func(*flotillav1.AppClusterStatus) string) map[string]tally {
	out := map[string]tally{}
	for _, r := range rows {
		t := out[key(r)]
		t.Total++
		if r.Sync == "Synced" {
			t.Synced++
		}
		if r.Health == "Healthy" {
			t.Healthy++
		}
		if len(r.Drift) > 0 {
			t.Drifted++
		}
		if r.Sync == "RenderFailed" {
			t.RenderFailed++
		}
		out[key(r)] = t
	}
	return out
}

// statusTallies fetches the fleet status and aggregates it by key, and returns the hub
// replicas that did not answer (their clusters count as last seen); on error it returns an
// empty map (the aggregate columns then show "-").
func statusTallies(ctx context.Context, c *client, key func(*flotillav1.AppClusterStatus) string) (map[string]tally, []string) {
	resp, err := opclient.Status(ctx, c.op, &flotillav1.StatusRequest{})
	if err != nil {
		return map[string]tally{}, nil
	}
	return tallies(resp.Items, key), resp.UnreachablePeers
}

func byApp(r *flotillav1.AppClusterStatus) string     { return r.App }
func byCluster(r *flotillav1.AppClusterStatus) string { return r.Cluster }
