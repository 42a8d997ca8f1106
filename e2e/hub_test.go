package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

func appliedEverywhere(app, rev string) func([]localfleet.StatusItem) bool {
	return func(items []localfleet.StatusItem) bool {
		n := 0
		for _, it := range items {
			if it.App == app {
				if it.AppliedRevision != rev || it.Sync != "Synced" {
					return false
				}
				n++
			}
		}
		return n == 2
	}
}

// TestWebhookTriggersSyncWithoutPoll: with a 10-minute poll, a signed push event makes both
// clusters apply the new commit within seconds; a wrong signature is refused.
func TestWebhookTriggersSyncWithoutPoll(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "webhook-secret")
	if err := os.WriteFile(secretFile, []byte("hook-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{pollInterval: 10 * time.Minute, hubArgs: []string{"--webhook-secret-file", secretFile}})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	rev2, err := e.repo.Commit("api: 2.0.0", map[string]string{"base/api/kustomization.yaml": localfleet.BaseAPIKustomization("2.0.0")})
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"ref":"refs/heads/main","repository":{"clone_url":%q}}`, e.git.URL(e.repo.Dir))
	if code := postWebhook(t, e.fleet.HTTPAddr, body, "wrong-secret"); code != http.StatusUnauthorized {
		t.Fatalf("wrongly signed webhook: status %d, want 401", code)
	}
	pushed := time.Now()
	if code := postWebhook(t, e.fleet.HTTPAddr, body, "hook-secret"); code != http.StatusOK {
		t.Fatalf("signed webhook: status %d, want 200", code)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, appliedEverywhere("api", rev2)); err != nil {
		t.Fatal(err)
	}
	t.Logf("webhook to applied on both clusters: %s", time.Since(pushed).Round(time.Millisecond))
}

func postWebhook(t *testing.T, addr, body, secret string) int {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/api/webhook", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

type appItem struct {
	Name      string `json:"name"`
	RepoState string `json:"repoState"`
	Error     string `json:"error"`
}

func apps(ctx context.Context, f *localfleet.Fleet) ([]appItem, error) {
	out, err := f.CLI(ctx, "apps", "-o", "json")
	if err != nil {
		return nil, err
	}
	var resp struct {
		Items []appItem `json:"items"`
	}
	return resp.Items, json.Unmarshal(out, &resp)
}

// TestGitServerDownKeepsLastState: with the Git server stopped the fleet keeps its state, the
// repository shows Stale with its error, and it recovers on its own when Git returns.
func TestGitServerDownKeepsLastState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{pollInterval: time.Second})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	e.git.Stop()
	err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := apps(ctx, e.fleet)
		if err != nil || len(list) != 2 {
			return false, nil
		}
		for _, a := range list {
			if a.RepoState != "Stale" || !strings.Contains(a.Error, "fetch") {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("repository not shown Stale: %v", err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 10*time.Second, allAt(rev1, 4)); err != nil {
		t.Fatalf("fleet changed while Git was down: %v", err)
	}
	assertAPI(t, e.ctx, e.clusters[1], 5, "registry.example/api:1.0.0")

	rev2, err := e.repo.Commit("api: 1.2.0", map[string]string{"base/api/kustomization.yaml": localfleet.BaseAPIKustomization("1.2.0")})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.git.Start(e.ctx, filepath.Join(e.dir, "logs")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, appliedEverywhere("api", rev2)); err != nil {
		t.Fatal(err)
	}
	list, err := apps(e.ctx, e.fleet)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		if a.RepoState != "Current" || a.Error != "" {
			t.Fatalf("app %s after recovery: %+v", a.Name, a)
		}
	}
}

// TestKilledAgentShowsStale: a killed agent's cluster turns Stale within the heartbeat bound and
// its apps are never shown Healthy.
func TestKilledAgentShowsStale(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	e.fleet.Agents["staging"].Kill()
	killed := time.Now()
	items, err := e.fleet.WaitStatus(e.ctx, 10*time.Second, func(items []localfleet.StatusItem) bool {
		for _, it := range items {
			if it.Cluster == "staging" && (it.Health == "Healthy" || !strings.Contains(it.Message, "Stale")) {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed agent shown Stale after %s (heartbeat 1s)", time.Since(killed).Round(time.Millisecond))
	for _, it := range items {
		if it.Cluster == "production" && it.Health != "Healthy" {
			t.Fatalf("production affected by staging's agent: %+v", it)
		}
	}
	out, err := e.fleet.CLI(e.ctx, "clusters", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(`"state": "Stale"`)) {
		t.Fatalf("clusters does not show Stale:\n%s", out)
	}
}

// TestHubRestartWritesNothing: after a hub restart the agents reconnect, nothing is re-applied
// (zero write requests from the agents, counted in the API servers' audit logs) and nothing is
// pruned.
func TestHubRestartWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{pollInterval: time.Second})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	before := agentWrites(t, e.clusters)
	for name, n := range before {
		if n == 0 {
			t.Fatalf("cluster %s: no agent writes found in the audit log; the count cannot see the agent", name)
		}
	}
	if len(before) != 2 {
		t.Fatalf("agent writes found on %d clusters, want 2", len(before))
	}
	e.fleet.Hub.Stop(10 * time.Second)
	restarted := time.Now()
	if err := e.fleet.StartHub(e.ctx); err != nil {
		t.Fatal(err)
	}
	// Reconnected, re-reported, and several reconcile rounds (1s poll) done since the restart.
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		if !allAt(rev1, 4)(items) {
			return false
		}
		for _, it := range items {
			if it.LastSeen == nil || it.LastSeen.Before(restarted.Add(5*time.Second)) {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	after := agentWrites(t, e.clusters)
	for name, n := range after {
		if n != before[name] {
			t.Errorf("cluster %s: the agent made %d write requests after the hub restart", name, n-before[name])
		}
	}
	assertAPI(t, e.ctx, e.clusters[1], 5, "registry.example/api:1.0.0")
}

// agentWrites counts, per cluster, the write requests (not dry-run) the agent made, from the
// API server's audit log.
func agentWrites(t *testing.T, cs []*localkube.Cluster) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, c := range cs {
		if c.AuditLogPath == "" {
			t.Fatalf("cluster %s has no audit log", c.Name)
		}
		f, err := os.Open(c.AuditLogPath)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev struct {
				Verb       string `json:"verb"`
				UserAgent  string `json:"userAgent"`
				RequestURI string `json:"requestURI"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) != nil || !strings.HasPrefix(ev.UserAgent, "flotilla-agent") {
				continue
			}
			if strings.Contains(ev.RequestURI, "dryRun=All") {
				continue
			}
			out[c.Name]++
		}
		f.Close()
	}
	return out
}
