package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
)

// rowOf returns the status row of app on cluster.
func rowOf(items []localfleet.StatusItem, cluster, app string) (localfleet.StatusItem, bool) {
	for _, it := range items {
		if it.Cluster == cluster && it.App == app {
			return it, true
		}
	}
	return localfleet.StatusItem{}, false
}

// TestOperatorPinAndClear: `flotilla rollback --selector env=production --to REV` holds
// production at an earlier revision while staging follows Git, shows it as pinned, and
// `--clear` returns production to Git's revision.
func TestOperatorPinAndClear(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{pollInterval: time.Second})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	rev2, err := e.repo.Commit("api: 1.1.0", map[string]string{"base/api/kustomization.yaml": localfleet.BaseAPIKustomization("1.1.0")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, appliedEverywhere("api", rev2)); err != nil {
		t.Fatal(err)
	}

	if out, err := e.fleet.CLI(e.ctx, "rollback", "api", "--selector", "env=production", "--to", rev1[:10]); err != nil {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	assertAPI(t, e.ctx, e.clusters[1], 5, "registry.example/api:1.0.0")
	rev3, err := e.repo.Commit("api: 1.2.0", map[string]string{"base/api/kustomization.yaml": localfleet.BaseAPIKustomization("1.2.0")})
	if err != nil {
		t.Fatal(err)
	}
	items, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		st, ok1 := rowOf(items, "staging", "api")
		pr, ok2 := rowOf(items, "production", "api")
		return ok1 && ok2 && st.AppliedRevision == rev3 && pr.AppliedRevision == rev1 && pr.Health == "Healthy"
	})
	if err != nil {
		t.Fatal(err)
	}
	if pr, _ := rowOf(items, "production", "api"); !strings.Contains(pr.Message, "Pinned") {
		t.Fatalf("pinned row does not say so: %+v", pr)
	}
	out, err := e.fleet.CLI(e.ctx, "status", "--app", "api", "-o", "json")
	if err != nil || !strings.Contains(string(out), `"pinnedRevision": "`+rev1[:10]+`"`) {
		t.Fatalf("status json lacks the pin (err %v):\n%s", err, out)
	}
	assertAPI(t, e.ctx, e.clusters[0], 1, "registry.example/api:1.2.0")
	assertAPI(t, e.ctx, e.clusters[1], 5, "registry.example/api:1.0.0")

	if out, err := e.fleet.CLI(e.ctx, "rollback", "api", "--clear"); err != nil {
		t.Fatalf("rollback --clear: %v\n%s", err, out)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, appliedEverywhere("api", rev3)); err != nil {
		t.Fatal(err)
	}
	assertAPI(t, e.ctx, e.clusters[1], 5, "registry.example/api:1.2.0")
	out, err = e.fleet.CLI(e.ctx, "history", "api", "--cluster", "production", "-o", "json")
	if err != nil || !strings.Contains(string(out), rev1) || !strings.Contains(string(out), rev3) {
		t.Fatalf("history lacks the pinned and the cleared revision (err %v):\n%s", err, out)
	}
}

// TestRevokedClusterIsRefused: `flotilla cluster revoke` closes the agent's stream within
// seconds and the cluster stays refused, also after a hub restart.
func TestRevokedClusterIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	if out, err := e.fleet.CLI(e.ctx, "cluster", "revoke", "staging"); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	revoked := time.Now()
	if _, err := e.fleet.WaitStatus(e.ctx, 10*time.Second, func(items []localfleet.StatusItem) bool {
		st, ok := rowOf(items, "staging", "api")
		return ok && st.Health == "Unknown" && strings.Contains(st.Message, "Stale")
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("revoked cluster's stream closed and shown Stale after %s", time.Since(revoked).Round(time.Millisecond))
	waitLog := func(what string) {
		t.Helper()
		err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			return strings.Contains(e.fleet.Agents["staging"].Tail(8192), what), nil
		})
		if err != nil {
			t.Fatalf("agent log never says %q:\n%s", what, e.fleet.Agents["staging"].Tail(4096))
		}
	}
	waitLog("revoked")
	e.fleet.Hub.Stop(10 * time.Second)
	if err := e.fleet.StartHub(e.ctx); err != nil {
		t.Fatal(err)
	}
	out, err := e.fleet.CLI(e.ctx, "clusters", "-o", "json")
	if err != nil || !strings.Contains(string(out), `"state": "Revoked"`) {
		t.Fatalf("clusters after restart (err %v):\n%s", err, out)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 30*time.Second, func(items []localfleet.StatusItem) bool {
		pr, ok := rowOf(items, "production", "api")
		return ok && pr.Health == "Healthy"
	}); err != nil {
		t.Fatal(err)
	}
	items, err := e.fleet.Status(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := rowOf(items, "staging", "api"); ok && st.Health != "Unknown" {
		t.Fatalf("revoked cluster reconnected after the hub restart: %+v", st)
	}
}
