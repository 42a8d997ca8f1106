package e2e

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

// allAt reports whether every app on every cluster is Synced and Healthy at revision rev.
func allAt(rev string, want int) func([]localfleet.StatusItem) bool {
	return func(items []localfleet.StatusItem) bool {
		if len(items) != want {
			return false
		}
		for _, it := range items {
			if it.Sync != "Synced" || it.Health != "Healthy" || it.AppliedRevision != rev || it.DesiredRevision != rev {
				return false
			}
		}
		return true
	}
}

// TestDeliveryEndToEnd is the whole path: Git → hub → agents → clusters → `flotilla status`.
func TestDeliveryEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	staging, production := e.clusters[0], e.clusters[1]
	rev1, err := e.repo.Head()
	if err != nil {
		t.Fatal(err)
	}

	// Initial sync: both apps Synced and Healthy on both clusters, replicas 1 and 5.
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	assertAPI(t, e.ctx, staging, 1, "registry.example/api:1.0.0")
	assertAPI(t, e.ctx, production, 5, "registry.example/api:1.0.0")

	// A new commit changing the image tag in base/api reaches both clusters.
	committed := time.Now()
	rev2, err := e.repo.Commit("api: 1.1.0", map[string]string{"base/api/kustomization.yaml": localfleet.BaseAPIKustomization("1.1.0")})
	if err != nil {
		t.Fatal(err)
	}
	items, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
		for _, it := range items {
			if it.App == "api" && it.AppliedRevision != rev2 {
				return false
			}
		}
		return len(items) == 4
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("commit to applied on both clusters: %s (poll interval 2s)", time.Since(committed).Round(time.Millisecond))
	for _, it := range items {
		if it.App == "api" {
			t.Logf("  %s: hub-measured commit-to-applied %dms", it.Cluster, it.CommitToAppliedMs)
		}
	}
	assertAPI(t, e.ctx, staging, 1, "registry.example/api:1.1.0")
	assertAPI(t, e.ctx, production, 5, "registry.example/api:1.1.0")
	if _, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, allAt(rev2, 4)); err != nil {
		t.Fatal(err)
	}

	// Prometheus metrics on hub and agents: the key series moved.
	hubMetrics := scrape(t, e.fleet.HTTPAddr)
	for series, min := range map[string]float64{
		`flotilla_hub_agents_connected`:                                      2,
		`flotilla_hub_syncs_total{result="synced"}`:                          4,
		`flotilla_hub_commit_to_applied_seconds_count`:                       2,
		`flotilla_hub_render_cache_requests_total{result="miss"}`:            2,
		`flotilla_hub_git_fetch_duration_seconds_count{result="ok"}`:         2,
		`flotilla_hub_stream_messages_total{direction="out",type="desired"}`: 4,
	} {
		if got := hubMetrics[series]; got < min {
			t.Errorf("hub metric %s = %v, want at least %v", series, got, min)
		}
	}
	for name, addr := range e.fleet.AgentHTTP {
		m := scrape(t, addr)
		for series, min := range map[string]float64{
			`process_resident_memory_bytes`:                           1,
			`flotilla_agent_syncs_total{result="succeeded"}`:          2, // two commits
			`flotilla_agent_objects_total{action="applied"}`:          2,
			`flotilla_agent_sync_duration_seconds_count`:              2,
			`flotilla_agent_health_assessment_duration_seconds_count`: 1,
		} {
			if got := m[series]; got < min {
				t.Errorf("agent %s: metric %s = %v, want at least %v", name, series, got, min)
			}
		}
		if _, ok := m[`flotilla_agent_rollbacks_total{result="failed"}`]; !ok {
			t.Errorf("agent %s: flotilla_agent_rollbacks_total not exported", name)
		}
	}

	// The operator CLI: filters, history, a sync that waits for every cluster.
	out, err := e.fleet.CLI(e.ctx, "status", "--selector", "env=production", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), `"cluster": "staging"`) || !strings.Contains(string(out), `"cluster": "production"`) {
		t.Fatalf("status --selector env=production:\n%s", out)
	}
	out, err = e.fleet.CLI(e.ctx, "history", "api", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{rev1, rev2, `"author": "Flotilla Demo`, `"message": "api: 1.1.0`, `"cluster": "staging"`, `"cluster": "production"`} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("history api lacks %q:\n%s", want, out)
		}
	}
	if out, err := e.fleet.CLI(e.ctx, "sync", "worker", "--selector", "env=staging", "--wait", "--timeout", "1m"); err != nil {
		t.Fatalf("sync --wait: %v\n%s", err, out)
	}
	if _, err := e.fleet.CLI(e.ctx, "status", "--selector", "env in (staging"); err == nil || !strings.Contains(err.Error(), "selector") {
		t.Fatalf("a bad selector: %v, want an error naming the selector", err)
	}

	// A hub restarted with the same data dir keeps its CA and clusters; the agents reconnect
	// on their own and the fleet is still Synced and Healthy at rev2.
	caBefore, err := os.ReadFile(filepath.Join(e.fleet.DataDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	e.fleet.Hub.Stop(10 * time.Second)
	if err := e.fleet.StartHub(e.ctx); err != nil {
		t.Fatal(err)
	}
	caAfter, err := os.ReadFile(filepath.Join(e.fleet.DataDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(caBefore) != string(caAfter) {
		t.Fatal("the hub's CA changed across a restart")
	}
	out, err = e.fleet.CLI(e.ctx, "clusters", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"staging", "production"} {
		if !strings.Contains(string(out), `"name": "`+name+`"`) {
			t.Fatalf("cluster %s lost across the restart:\n%s", name, out)
		}
	}
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		return allAt(rev2, 4)(items) && items[0].LastSeen != nil && time.Since(*items[0].LastSeen) < 5*time.Second
	}); err != nil {
		t.Fatal(err)
	}
}

func assertAPI(t *testing.T, ctx context.Context, c *localkube.Cluster, replicas int32, image string) {
	t.Helper()
	client, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	var d *appsv1.Deployment
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err = client.AppsV1().Deployments("api").Get(ctx, "api", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return *d.Spec.Replicas == replicas && d.Spec.Template.Spec.Containers[0].Image == image &&
			d.Status.ReadyReplicas == replicas && d.Status.UpdatedReplicas == replicas, nil
	})
	if err != nil {
		got := "none"
		if d != nil {
			got = d.Spec.Template.Spec.Containers[0].Image
		}
		t.Fatalf("cluster %s: want api with %d ready replicas of %s, got image %s: %v", c.Name, replicas, image, got, err)
	}
}

// scrape reads a Prometheus text endpoint into series → value (the series text as written,
// labels included).
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
