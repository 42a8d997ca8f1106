package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
)

// TestFleetSim runs e2e/cmd/fleetsim as its own process against a real hub process, no
// Kubernetes: 20 simulated agents enrol with join tokens, receive the demo's commit and a new
// one, ACK them, and `flotilla status` shows them Synced and Healthy; told to NACK, the next
// commit shows the NACK in status.
func TestFleetSim(t *testing.T) {
	t.Parallel()
	const n = 20
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e := newSimEnv(t, ctx, binDir, true, 0)
	e.prepare(n)
	e.run("--apply-delay", "50ms")
	rev, err := e.repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(ctx, 3*time.Minute, simAllAt(n, rev)); err != nil {
		t.Fatal(err)
	}
	e.waitStats(time.Minute, "every agent connected and ACKed both apps", func(s simStats) bool {
		return s.Agents == n && s.Connected == n && s.Acks >= 2*n && s.Latency.Count >= 2*n && s.Nacks == 0
	})

	rev, err = e.repo.Commit("api 1.1.0", map[string]string{"base/api/kustomization.yaml": localfleet.BaseAPIKustomization("1.1.0")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(ctx, 3*time.Minute, simAllAt(n, rev)); err != nil {
		t.Fatal(err)
	}

	e.post("/mode?set=nack")
	rev, err = e.repo.Commit("api 1.2.0", map[string]string{"base/api/kustomization.yaml": localfleet.BaseAPIKustomization("1.2.0")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.fleet.WaitStatus(ctx, 3*time.Minute, func(items []localfleet.StatusItem) bool {
		nacked := 0
		for _, it := range items {
			if it.App == "api" && it.DesiredRevision == rev && it.Sync == "OutOfSync" && strings.Contains(it.Message, "simulated apply failure") {
				nacked++
			}
		}
		return nacked == n
	})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := e.stats(); err != nil || s.Nacks < n {
		t.Errorf("fleetsim counted %d NACKs (err %v), want at least %d", s.Nacks, err, n)
	}
	if failed, err := e.hubMetric("flotilla_hub_syncs_total", `result="failed"`); err != nil || failed < n {
		t.Errorf("the hub counted %v failed syncs (err %v), want at least %d NACKs", failed, err, n)
	}
}
