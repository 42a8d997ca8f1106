package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestBrokenOverlayOnOneCluster: a kustomization that breaks production's worker overlay shows
// in `flotilla status` (-o json, --selector, --watch) as a RenderFailed row for worker on
// production naming the missing file, with the health of the last good state that keeps
// running there, while worker on staging is Synced at the new commit; `flotilla apps` and
// `flotilla clusters` count it; one sync-failed notification is sent for it however many
// rounds fail, and once the overlay is fixed one sync-succeeded says it renders again and
// production applies the fix.
func TestBrokenOverlayOnOneCluster(t *testing.T) {
	t.Parallel()
	recv := newNotifReceiver(t)
	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "hook.url"), []byte(recv.URL+"/hook\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(cfgDir, "notifications.yaml")
	if err := os.WriteFile(cfg, []byte("sinks:\n- {name: ops, type: webhook, urlFile: hook.url, events: [sync-failed, sync-succeeded]}\nretryBackoff: 200ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{pollInterval: time.Second, hubArgs: []string{"--notifications", cfg}})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}

	const broken = "resources:\n- ../../../base/worker\n- queue.yaml\n"
	rev2, err := e.repo.Commit("worker: production queue (file forgotten)", map[string]string{
		"environments/production/worker/kustomization.yaml": broken,
	})
	if err != nil {
		t.Fatal(err)
	}
	items, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		prod, stg := statusOf(items, "production", "worker"), statusOf(items, "staging", "worker")
		return prod != nil && prod.Sync == "RenderFailed" && stg != nil && stg.DesiredRevision == rev2
	})
	if err != nil {
		t.Fatal(err)
	}
	prod, stg := statusOf(items, "production", "worker"), statusOf(items, "staging", "worker")
	t.Logf("production worker: %s", prod.Message)
	if prod.Health != "Healthy" || prod.DesiredRevision != rev1 || prod.AppliedRevision != rev1 ||
		!strings.HasPrefix(prod.Message, "RenderFailed at "+rev2[:12]+": ") ||
		!strings.Contains(prod.Message, "environments/production/worker/queue.yaml") || !strings.Contains(prod.Message, "doesn't exist") {
		t.Errorf("production worker %+v, want RenderFailed naming queue.yaml with the last good state %s Healthy", prod, rev1)
	}
	if stg.Sync != "Synced" || stg.Health != "Healthy" || stg.AppliedRevision != rev2 || stg.Message != "" {
		t.Errorf("staging worker %+v, want Synced and Healthy at %s", stg, rev2)
	}

	// --selector picks the row by its cluster's labels; --watch shows it too.
	out, err := e.fleet.CLI(e.ctx, "status", "--selector", "env=production", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var sel struct{ Items []localfleet.StatusItem }
	if err := json.Unmarshal(out, &sel); err != nil {
		t.Fatal(err)
	}
	if it := statusOf(sel.Items, "production", "worker"); len(sel.Items) != 2 || it == nil || it.Sync != "RenderFailed" {
		t.Errorf("status --selector env=production: %s", out)
	}
	watchCLI(t, e, "status --watch -o wide shows the render failure", func(out string) bool {
		return strings.Contains(out, "RenderFailed") && strings.Contains(out, "queue.yaml")
	}, "status", "--watch", "-o", "wide")

	// The per-app and per-cluster aggregates count it.
	out, err = e.fleet.CLI(e.ctx, "apps", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var appsResp struct {
		Items []struct {
			Name  string
			Fleet struct{ Total, Synced, RenderFailed int }
		}
	}
	if err := json.Unmarshal(out, &appsResp); err != nil {
		t.Fatal(err)
	}
	for _, a := range appsResp.Items {
		if a.Name == "worker" && (a.Fleet.Total != 2 || a.Fleet.Synced != 1 || a.Fleet.RenderFailed != 1) {
			t.Errorf("flotilla apps: worker fleet %+v, want 2 rows, 1 synced, 1 render failed", a.Fleet)
		}
	}
	out, err = e.fleet.CLI(e.ctx, "clusters", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var clustersResp struct {
		Items []struct {
			Name string
			Apps struct{ Total, RenderFailed int }
		}
	}
	if err := json.Unmarshal(out, &clustersResp); err != nil {
		t.Fatal(err)
	}
	for _, c := range clustersResp.Items {
		if want := map[string]int{"production": 1}[c.Name]; c.Apps.Total != 2 || c.Apps.RenderFailed != want {
			t.Errorf("flotilla clusters: %s apps %+v, want 2 rows, %d render failed", c.Name, c.Apps, want)
		}
	}

	// Another commit, still broken there, and several more rounds: still one sync-failed.
	if _, err := e.repo.Commit("api: 1.0.1", map[string]string{"base/api/kustomization.yaml": localfleet.BaseAPIKustomization("1.0.1")}); err != nil {
		t.Fatal(err)
	}
	var failed []webhookNotification
	if err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		failed = recv.events(t, "/hook", "sync-failed", "production", "worker")
		return len(failed) > 0, nil
	}); err != nil {
		t.Fatalf("no sync-failed notification; received %v", recv.all())
	}
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "production", "api")
		return it != nil && it.Sync == "Synced" && it.AppliedRevision != rev1
	}); err != nil {
		t.Fatal(err)
	}
	if failed = recv.events(t, "/hook", "sync-failed", "production", "worker"); len(failed) != 1 ||
		failed[0].Revision != rev2 || !strings.HasPrefix(failed[0].Summary, "worker on production: render of revision "+rev2[:8]+" failed") {
		t.Errorf("sync-failed notifications %+v, want one for %s", failed, rev2)
	}
	if n := recv.events(t, "/hook", "sync-failed", "staging", "worker"); len(n) != 0 {
		t.Errorf("sync-failed for staging: %+v", n)
	}

	// Fixed: production renders again and applies the fix.
	rev4, err := e.repo.Commit("worker: the production queue", map[string]string{
		"environments/production/worker/queue.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: worker-queue\ndata:\n  QUEUE: jobs\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "production", "worker")
		return it != nil && it.Sync == "Synced" && it.Health == "Healthy" && it.AppliedRevision == rev4
	}); err != nil {
		t.Fatal(err)
	}
	var recovered []webhookNotification
	if err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		recovered = nil
		for _, n := range recv.events(t, "/hook", "sync-succeeded", "production", "worker") {
			if strings.Contains(n.Summary, "renders again") {
				recovered = append(recovered, n)
			}
		}
		return len(recovered) > 0, nil
	}); err != nil {
		t.Fatalf("no sync-succeeded saying production's worker renders again; received %v", recv.all())
	}
	if len(recovered) != 1 || recovered[0].Revision != rev4 {
		t.Errorf("recovery notifications %+v, want one at %s", recovered, rev4)
	}
	if n := recv.events(t, "/hook", "sync-failed", "production", "worker"); len(n) != 1 {
		t.Errorf("sync-failed notifications after the fix %+v, want still one", n)
	}
}

// watchCLI runs a flotilla command that keeps printing (--watch) until what it printed so far
// satisfies shows, failing the test if it does not within a minute.
func watchCLI(t *testing.T, e *env, what string, shows func(out string) bool, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	var out syncBuffer
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "flotilla"), append([]string{"--config", e.fleet.AdminConfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel() // ends the command
		_ = cmd.Wait()
	}()
	testwait.For(t, time.Minute, what, func(context.Context) (bool, error) {
		return shows(out.String()), nil
	})
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
