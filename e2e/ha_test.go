package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

// haMember is one of the four clusters of the HA test: two agents per local cluster, each in
// its own namespace, each with its own app in its own namespace.
type haMember struct {
	name     string
	kube     *localkube.Cluster
	env      string
	slot     string // a or b: which agent namespace and app
	agentNS  string
	appNS    string
	replicas int32 // of the worker Deployment in env's overlay
}

// haApplications: worker-a goes to the clusters labelled slot=a, worker-b to slot=b, each
// into its own namespace, from env's overlay.
func haApplications(repoURL string) map[string]string {
	app := func(slot string) string {
		return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata:
  name: worker-%[1]s
spec:
  source:
    repoURL: %[2]s
    targetRevision: main
    path: environments/{{ .labels.env }}/worker
  destination:
    clusterSelector:
      matchExpressions:
      - {key: slot, operator: In, values: [%[1]s]}
    namespace: worker-%[1]s
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
`, slot, repoURL)
	}
	return map[string]string{"worker-a.yaml": app("a"), "worker-b.yaml": app("b")}
}

// haFleet is the fleet of the HA test and benchmark: three hub replicas, four agents.
type haFleet struct {
	hubs    *localfleet.Replicas
	repo    *localfleet.Repo
	members []haMember
	names   []string
	cs      []*localkube.Cluster
	dir     string
}

// startHAFleet starts three hub replicas and the four agents of haMember, each listing the
// replicas from a different one, and stops them (and cleans the clusters) when tb ends.
func startHAFleet(tb testing.TB, ctx context.Context) *haFleet {
	tb.Helper()
	cs := clusters.Clusters(tb)
	dir := tb.TempDir()
	repo, git, err := localfleet.ServeDemo(ctx, dir, "1.0.0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(git.Stop)
	appsDir := filepath.Join(dir, "apps")
	if err := localfleet.WriteFiles(appsDir, haApplications(git.URL(repo.Dir))); err != nil {
		tb.Fatal(err)
	}
	members := []haMember{
		{name: "staging-a", kube: cs[0], env: "staging", slot: "a", agentNS: "flotilla-system", appNS: "worker-a", replicas: 1},
		{name: "staging-b", kube: cs[0], env: "staging", slot: "b", agentNS: "flotilla-b", appNS: "worker-b", replicas: 1},
		{name: "production-a", kube: cs[1], env: "production", slot: "a", agentNS: "flotilla-system", appNS: "worker-a", replicas: 3},
		{name: "production-b", kube: cs[1], env: "production", slot: "b", agentNS: "flotilla-b", appNS: "worker-b", replicas: 3},
	}
	hubs, err := localfleet.StartReplicas(ctx, localfleet.ReplicaOptions{
		Dir: dir, BinDir: binDir, AppsDir: appsDir, Count: 3, PollInterval: 2 * time.Second, Heartbeat: time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Log(hubs.Logs())
		}
		hubs.Stop()
	})
	for i, m := range members {
		token, err := hubs.Register(ctx, 0, m.name, map[string]string{"env": m.env, "slot": m.slot})
		if err != nil {
			tb.Fatal(err)
		}
		// Each agent lists the replicas from a different one: most reach a replica that does
		// not own their cluster first, and are redirected.
		if err := hubs.StartAgent(m.name, m.kube, m.agentNS, token, i%3); err != nil {
			tb.Fatal(err)
		}
	}
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = m.name
	}
	return &haFleet{hubs: hubs, repo: repo, members: members, names: names, cs: cs, dir: dir}
}

// TestHubReplicas runs three hub replicas (separate processes sharing the CA and a gossip
// key) and four agents. Every replica shows the whole fleet; killing the replica that owns
// clusters re-homes their agents, which write nothing on the way and still receive the next
// commit, with nothing pruned; restarting it moves its clusters back, again without a write;
// a sync and a pin asked of replicas that do not own the cluster take effect on it; a
// revocation made on one replica is enforced by all; a hub without the gossip key is refused.
func TestHubReplicas(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	f := startHAFleet(t, ctx)
	hubs, repo, members, names, cs, dir := f.hubs, f.repo, f.members, f.names, f.cs, f.dir

	// The fleet status from every replica shows every cluster, synced at the first commit.
	rev1, _ := repo.Head()
	for i := range hubs.Hubs {
		if _, err := waitReplicaStatus(ctx, hubs, i, 3*time.Minute, fleetAt(names, rev1)); err != nil {
			t.Fatal(err)
		}
	}
	owners := waitOwners(t, ctx, hubs, 0, names, nil)
	t.Logf("owners: %v", owners)
	assertHAWorkers(t, ctx, members, "jobs")

	// Kill the replica that owns the most clusters (at least one).
	victim := mostOwning(hubs, owners)
	var moved []string
	for c, o := range owners {
		if o == hubs.Hubs[victim].Name {
			moved = append(moved, c)
		}
	}
	slices.Sort(moved)
	survivor := (victim + 1) % 3
	settle(t, ctx, hubs, victim, names, rev1)
	before := agentWrites(t, cs)
	hubs.Hubs[victim].Process.Kill()
	killed := time.Now()
	t.Logf("killed hub-%d (%s), owner of %v", victim, hubs.Hubs[victim].Name, moved)

	// Until the survivors notice, the dead replica is reported, not hidden.
	if _, warn, err := hubs.Clusters(ctx, survivor); err == nil && warn != "" {
		t.Logf("right after the kill, hub-%d says: %s", survivor, warn)
	}
	rehomed := waitOwners(t, ctx, hubs, survivor, names, func(c, owner string) bool {
		return owner != hubs.Hubs[victim].Name
	})
	rehome := time.Since(killed)
	t.Logf("agents of %v shown re-homed by hub-%d %s after their replica was killed: owners now %v", moved, survivor, rehome.Round(time.Millisecond), rehomed)
	for _, c := range moved {
		if at, ok := connectedSince(hubs.Agents[c].LogPath, killed); ok {
			t.Logf("agent of %s connected to its new owner %s after the kill (from its log)", c, at.Sub(killed).Round(time.Millisecond))
		}
	}
	for _, c := range moved {
		if rehomed[c] == hubs.Hubs[victim].Name {
			t.Fatalf("cluster %s still owned by the killed replica", c)
		}
	}
	// Re-homing re-applies nothing: the agents keep what they hold and the new owners align.
	settle(t, ctx, hubs, survivor, names, rev1)
	if after := agentWrites(t, cs); !maps.Equal(after, before) {
		t.Errorf("agents wrote while re-homing: %v before, %v after", before, after)
	}

	// A new commit reaches every cluster, those that moved included; nothing is pruned.
	rev2, err := repo.Commit("worker: queue jobs-v2", map[string]string{"base/worker/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: worker-config
data:
  QUEUE: jobs-v2
  CONCURRENCY: "2"
`})
	if err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	if _, err := waitReplicaStatus(ctx, hubs, survivor, 2*time.Minute, fleetAt(names, rev2)); err != nil {
		t.Fatal(err)
	}
	t.Logf("commit applied on all four clusters %s after it was made, with hub-%d dead", time.Since(committed).Round(time.Millisecond), victim)
	assertHAWorkers(t, ctx, members, "jobs-v2")

	// The killed replica comes back: its clusters move back to it, again writing nothing.
	settle(t, ctx, hubs, survivor, names, rev2)
	before = agentWrites(t, cs)
	if err := hubs.Start(ctx, victim); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	if err := hubs.WaitMembers(ctx, time.Minute, hubs.Hubs, 3); err != nil {
		t.Fatalf("restarted replica not seen by all: %v", err)
	}
	back := waitOwners(t, ctx, hubs, victim, names, func(c, owner string) bool { return owner == owners[c] })
	t.Logf("ownership rebalanced %s after hub-%d restarted: %v", time.Since(restarted).Round(time.Millisecond), victim, back)
	for i := range hubs.Hubs {
		if _, err := waitReplicaStatus(ctx, hubs, i, time.Minute, fleetAt(names, rev2)); err != nil {
			t.Fatal(err)
		}
	}
	settle(t, ctx, hubs, victim, names, rev2)
	if after := agentWrites(t, cs); !maps.Equal(after, before) {
		t.Errorf("agents wrote while ownership rebalanced: %v before, %v after", before, after)
	}
	assertHAWorkers(t, ctx, members, "jobs-v2")

	// A sync and a pin asked of replicas that do not own the cluster take effect on it.
	opsFromNonOwners(t, ctx, f, back, rev1, rev2)

	// A revocation made on one replica is enforced by every replica.
	revoked := "production-b"
	via := 0
	if owners[revoked] == hubs.Hubs[0].Name {
		via = 1 // revoke on a replica that does not own the cluster
	}
	if _, _, err := hubs.CLI(ctx, via, "cluster", "revoke", revoked); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for i := range hubs.Hubs {
			_, _, err := hubs.CLI(ctx, i, "token", "create", "--cluster", revoked)
			if err == nil || !strings.Contains(err.Error(), "revoked") {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the revocation of %s on hub-%d did not reach every replica: %v", revoked, via, err)
	}
	// Its agent is cut off and refused by each replica it tries.
	refusedBy := map[string]bool{}
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		b, _ := os.ReadFile(hubs.Agents[revoked].LogPath)
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, "is revoked") {
				continue
			}
			for _, h := range hubs.Hubs {
				if strings.Contains(line, "addr="+h.Addr) {
					refusedBy[h.Addr] = true
				}
			}
		}
		return len(refusedBy) == len(hubs.Hubs), nil
	})
	if err != nil {
		t.Fatalf("the agent of %s was refused by %v only, want every replica", revoked, refusedBy)
	}
	list, _, err := hubs.Clusters(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if c.Name == revoked && (c.State != "Revoked" || c.Connected) {
			t.Errorf("cluster %s after revocation: %+v", revoked, c)
		}
	}

	// A hub with another gossip key cannot join.
	otherKey := filepath.Join(dir, "other.key")
	if err := localfleet.WriteGossipKey(otherKey); err != nil {
		t.Fatal(err)
	}
	outsider, outsiderHTTP, err := hubs.StartOutsider(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outsider.Stop(5 * time.Second) })
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		b, _ := os.ReadFile(outsider.LogPath)
		return strings.Contains(string(b), "no gossip peer reachable"), nil
	})
	if err != nil {
		t.Fatalf("the outsider never tried to join: %v\n%s", err, outsider.Tail(4096))
	}
	holdFor := time.Now().Add(5 * time.Second)
	for time.Now().Before(holdFor) {
		for i, h := range hubs.Hubs {
			if n, err := localfleet.Members(h.HTTPAddr); err != nil || n != 3 {
				t.Fatalf("hub-%d sees %d replicas (%v) while a hub without the key tries to join", i, n, err)
			}
		}
		if n, err := localfleet.Members(outsiderHTTP); err == nil && n != 1 {
			t.Fatalf("the hub without the key sees %d replicas", n)
		}
		<-time.After(250 * time.Millisecond) // the condition must hold throughout: checked on each tick
	}
}

// opsFromNonOwners asks `flotilla sync` and then `flotilla rollback --to` of a replica that
// does not own the cluster of members[0], and clears the pin on the other non-owner: the
// owner's agent syncs, then holds the pinned revision while the rest of the fleet stays at rev2,
// then returns to rev2.
func opsFromNonOwners(t *testing.T, ctx context.Context, f *haFleet, owners map[string]string, rev1, rev2 string) {
	t.Helper()
	hubs, m := f.hubs, f.members[0]
	var others []int
	for i, h := range hubs.Hubs {
		if h.Name != owners[m.name] {
			others = append(others, i)
		}
	}
	if len(others) != 2 {
		t.Fatalf("owner of %s: %q among %d replicas", m.name, owners[m.name], len(hubs.Hubs))
	}
	app := "worker-" + m.slot
	t.Logf("%s is owned by %s; sync and pin through hub-%d, clear through hub-%d", m.name, owners[m.name], others[0], others[1])

	settle(t, ctx, hubs, others[0], f.names, rev2)
	before := agentWrites(t, f.cs)[m.kube.Name]
	if out, errOut, err := hubs.CLI(ctx, others[0], "sync", app, "--cluster", m.name, "--wait", "--timeout", "1m"); err != nil {
		t.Fatalf("sync of %s on %s through hub-%d: %v\n%s%s", app, m.name, others[0], err, out, errOut)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return agentWrites(t, f.cs)[m.kube.Name] > before, nil
	})
	if err != nil {
		t.Fatalf("the agent of %s did not sync after `flotilla sync` on hub-%d: %v", m.name, others[0], err)
	}

	if out, errOut, err := hubs.CLI(ctx, others[0], "rollback", app, "--cluster", m.name, "--to", rev1); err != nil {
		t.Fatalf("pin of %s on %s through hub-%d: %v\n%s%s", app, m.name, others[0], err, out, errOut)
	}
	pinned := func(items []localfleet.StatusItem, warn string) bool {
		if warn != "" || len(items) != len(f.names) {
			return false
		}
		for _, it := range items {
			want := rev2
			if it.Cluster == m.name {
				want = rev1
			}
			if it.Sync != "Synced" || it.DesiredRevision != want || it.AppliedRevision != want {
				return false
			}
		}
		return true
	}
	if _, err := waitReplicaStatus(ctx, hubs, others[1], 2*time.Minute, pinned); err != nil {
		t.Fatalf("pin set on hub-%d: %v", others[0], err)
	}
	assertHAWorkersQueues(t, ctx, f.members, func(o haMember) string {
		if o.name == m.name {
			return "jobs" // rev1's
		}
		return "jobs-v2"
	})

	if out, errOut, err := hubs.CLI(ctx, others[1], "rollback", app, "--cluster", m.name, "--clear"); err != nil {
		t.Fatalf("clear of the pin through hub-%d: %v\n%s%s", others[1], err, out, errOut)
	}
	if _, err := waitReplicaStatus(ctx, hubs, others[0], 2*time.Minute, fleetAt(f.names, rev2)); err != nil {
		t.Fatalf("pin cleared on hub-%d: %v", others[1], err)
	}
	assertHAWorkers(t, ctx, f.members, "jobs-v2")
}

// fleetAt holds when the rows are exactly one per cluster of names, each Synced and Healthy
// at rev, rev recorded as healthy (the agents' last write for it), and no replica failed to
// answer.
func fleetAt(names []string, rev string) func([]localfleet.StatusItem, string) bool {
	return func(items []localfleet.StatusItem, warn string) bool {
		if warn != "" || len(items) != len(names) {
			return false
		}
		for _, it := range items {
			if !slices.Contains(names, it.Cluster) || it.Sync != "Synced" || it.Health != "Healthy" ||
				it.AppliedRevision != rev || it.DesiredRevision != rev || it.HealthyRevision != rev {
				return false
			}
		}
		return true
	}
}

// waitReplicaStatus polls the fleet status from replica i until cond holds.
func waitReplicaStatus(ctx context.Context, hubs *localfleet.Replicas, i int, timeout time.Duration, cond func([]localfleet.StatusItem, string) bool) ([]localfleet.StatusItem, error) {
	var last []localfleet.StatusItem
	var lastWarn string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		items, warn, err := hubs.Status(ctx, i)
		if err != nil {
			return false, nil
		}
		last, lastWarn = items, warn
		return cond(items, warn), nil
	})
	if err != nil {
		b, _ := json.MarshalIndent(last, "", "  ")
		return last, fmt.Errorf("fleet status from hub-%d did not converge in %s: %w (%s)\n%s", i, timeout, err, lastWarn, b)
	}
	return last, nil
}

// waitOwners polls `flotilla clusters` from replica i until every cluster of names is
// connected to a replica that accept (nil: any) takes as its owner, and returns the owners.
func waitOwners(t testing.TB, ctx context.Context, hubs *localfleet.Replicas, i int, names []string, accept func(cluster, owner string) bool) map[string]string {
	t.Helper()
	var last []localfleet.ClusterItem
	owners := map[string]string{}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, warn, err := hubs.Clusters(ctx, i)
		if err != nil || warn != "" {
			return false, nil
		}
		last = list
		clear(owners)
		for _, c := range list {
			if slices.Contains(names, c.Name) && c.Connected && c.Replica != "" && (accept == nil || accept(c.Name, c.Replica)) {
				owners[c.Name] = c.Replica
			}
		}
		return len(owners) == len(names), nil
	})
	if err != nil {
		t.Fatalf("clusters from hub-%d: not every cluster connected to its expected owner: %v\n%+v", i, err, last)
	}
	return maps.Clone(owners)
}

// settle waits until the status from replica i is at rev with every cluster seen after the
// last change, so that the agents had time to write, were they to.
func settle(t testing.TB, ctx context.Context, hubs *localfleet.Replicas, i int, names []string, rev string) {
	t.Helper()
	since := time.Now()
	if _, err := waitReplicaStatus(ctx, hubs, i, time.Minute, func(items []localfleet.StatusItem, warn string) bool {
		if !fleetAt(names, rev)(items, warn) {
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

// mostOwning returns the index of the replica owning the most clusters.
func mostOwning(hubs *localfleet.Replicas, owners map[string]string) int {
	best, most := 0, -1
	for i, h := range hubs.Hubs {
		n := 0
		for _, o := range owners {
			if o == h.Name {
				n++
			}
		}
		if n > most {
			best, most = i, n
		}
	}
	return best
}

// assertHAWorkers checks that every member's worker is in place in its namespace, with
// queue in its ConfigMap and the Deployment of its env.
func assertHAWorkers(t testing.TB, ctx context.Context, members []haMember, queue string) {
	t.Helper()
	assertHAWorkersQueues(t, ctx, members, func(haMember) string { return queue })
}

// assertHAWorkersQueues is assertHAWorkers with each member's own queue.
func assertHAWorkersQueues(t testing.TB, ctx context.Context, members []haMember, queueOf func(haMember) string) {
	t.Helper()
	for _, m := range members {
		queue := queueOf(m)
		client, err := m.kube.Client()
		if err != nil {
			t.Fatal(err)
		}
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			cm, err := client.CoreV1().ConfigMaps(m.appNS).Get(ctx, "worker-config", metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			d, err := client.AppsV1().Deployments(m.appNS).Get(ctx, "worker", metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			return cm.Data["QUEUE"] == queue && *d.Spec.Replicas == m.replicas && d.DeletionTimestamp == nil, nil
		})
		if err != nil {
			t.Fatalf("%s: worker not in place in %s on %s with queue %s: %v", m.name, m.appNS, m.kube.Name, queue, err)
		}
	}
}

// connectedSince returns when the agent logging to logPath first said, at or after since, that
// it connected to a hub.
func connectedSince(logPath string, since time.Time) (time.Time, bool) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `msg="connected to hub"`) {
			continue
		}
		stamp, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err == nil && !at.Before(since) {
			return at, true
		}
	}
	return time.Time{}, false
}
