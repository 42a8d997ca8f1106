package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// skewCommit is the older release the version-skew test runs against this one: the last
// commit that landed before the hub's server and the agent's engine were restructured (same
// protocol version, same go.mod). Move it forward when the protocol or the stored state changes,
// so the test keeps covering the upgrade operators make.
const (
	skewCommit  = "c7c14edfce1e220a77ee2c11b97fc9665bfd224e"
	skewVersion = "skew-old"
)

// TestVersionSkew upgrades a fleet the way an operator does, one side at a time, with every
// combination of an older and a newer hub and agent running in between: the older hub with an
// older agent (staging) and a newer agent (production); then the newer hub with both; then
// both agents newer. At each step a new commit reaches both clusters, and an upgrade of either
// side makes no write to the clusters (their applied state is kept as it is).
func TestVersionSkew(t *testing.T) {
	t.Parallel()
	old := t.TempDir()
	// Building an older commit with -race compiles its whole dependency tree when the build
	// cache lacks it; on a loaded 2-core machine that took longer than 10 minutes once.
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Minute)
	defer cancel()
	if err := localfleet.BuildAt(ctx, skewCommit, skewVersion, old, true); err != nil {
		t.Fatal(err)
	}
	oldHub, oldAgent := filepath.Join(old, "flotilla"), filepath.Join(old, "flotilla-agent")
	newHub, newAgent := filepath.Join(binDir, "flotilla"), filepath.Join(binDir, "flotilla-agent")
	e := newEnv(t, envOptions{pollInterval: time.Second, binaries: map[string]string{"hub": oldHub, "staging": oldAgent}})
	staging, production := e.clusters[0], e.clusters[1]

	// The older hub: an older agent and a newer one apply the first revision and a commit.
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	assertAgentVersions(t, e, map[string]string{"staging": skewVersion, "production": "dev"})
	e.commitAPITag(t, "1.1.0")
	assertAPI(t, e.ctx, staging, 1, "registry.example/api:1.1.0")
	assertAPI(t, e.ctx, production, 5, "registry.example/api:1.1.0")

	// The hub upgraded: both agents reconnect to the newer hub and write nothing.
	before := agentWrites(t, e.clusters)
	e.fleet.Hub.Stop(10 * time.Second)
	e.fleet.UseBinary("hub", newHub)
	restarted := time.Now()
	if err := e.fleet.StartHub(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.waitReported(t, restarted)
	assertNoWritesSince(t, e, before, "the hub's upgrade")
	e.commitAPITag(t, "1.2.0")
	assertAPI(t, e.ctx, staging, 1, "registry.example/api:1.2.0")
	assertAPI(t, e.ctx, production, 5, "registry.example/api:1.2.0")

	// The older agent upgraded: it loads the state the older one saved and writes nothing.
	before = agentWrites(t, e.clusters)
	e.fleet.Agents["staging"].Stop(10 * time.Second)
	e.fleet.UseBinary("staging", newAgent)
	restarted = time.Now()
	if err := e.fleet.StartAgent(staging); err != nil {
		t.Fatal(err)
	}
	e.waitReported(t, restarted)
	assertAgentVersions(t, e, map[string]string{"staging": "dev", "production": "dev"})
	assertNoWritesSince(t, e, before, "the staging agent's upgrade")
	e.commitAPITag(t, "1.3.0")
	assertAPI(t, e.ctx, staging, 1, "registry.example/api:1.3.0")
}

// commitAPITag commits the api image tag and waits until every app on both clusters is Synced
// and Healthy at the new revision.
func (e *env) commitAPITag(t *testing.T, tag string) {
	t.Helper()
	rev, err := e.repo.Commit("api: "+tag, map[string]string{"base/api/kustomization.yaml": localfleet.BaseAPIKustomization(tag)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev, 4)); err != nil {
		t.Fatalf("commit %s (api %s): %v", rev, tag, err)
	}
}

// waitReported waits until every app on both clusters was reported after since, all at the
// revision they had (a restarted side has reconnected and the agents have reported again).
func (e *env) waitReported(t *testing.T, since time.Time) {
	t.Helper()
	rev, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
		if !allAt(rev, 4)(items) {
			return false
		}
		for _, it := range items {
			if it.LastSeen == nil || it.LastSeen.Before(since.Add(5*time.Second)) {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
}

// assertNoWritesSince fails for every cluster whose agent wrote since the counts in before.
func assertNoWritesSince(t *testing.T, e *env, before map[string]int, what string) {
	t.Helper()
	for name, n := range agentWrites(t, e.clusters) {
		if n != before[name] {
			t.Errorf("cluster %s: the agent made %d write requests after %s", name, n-before[name], what)
		}
	}
}

// assertAgentVersions checks the agent version `flotilla clusters` shows for each cluster: the
// processes under test are the builds the test means.
func assertAgentVersions(t *testing.T, e *env, want map[string]string) {
	t.Helper()
	testwait.For(t, time.Minute, fmt.Sprintf("agent versions %v", want), func(ctx context.Context) (bool, error) {
		out, err := e.fleet.CLI(ctx, "clusters", "-o", "json")
		if err != nil {
			return false, nil
		}
		var resp struct {
			Items []struct {
				Name         string `json:"name"`
				AgentVersion string `json:"agentVersion"`
			} `json:"items"`
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			return false, fmt.Errorf("clusters -o json: %w: %s", err, out)
		}
		got := map[string]string{}
		for _, it := range resp.Items {
			got[it.Name] = it.AgentVersion
		}
		for name, v := range want {
			if got[name] != v {
				return false, nil
			}
		}
		return true, nil
	})
}
