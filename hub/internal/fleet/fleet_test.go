package fleet

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

func testBundle(t *testing.T, name string) *bundle.Bundle {
	t.Helper()
	b, err := bundle.New([]*unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// watch is a channel that receives a value whenever the cluster's desired state changes.
func watch(f *Fleet, cluster string) <-chan struct{} {
	ch := make(chan struct{}, 1)
	f.Watch(cluster, func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	return ch
}

func TestSetDesiredMovesGenerationOnlyOnChange(t *testing.T) {
	f := New(time.Minute)
	wake := watch(f, "c1")
	b1, b2 := testBundle(t, "a"), testBundle(t, "b")
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: b1})
	if got := f.Snapshot("c1")["api"].Generation; got != 1 {
		t.Fatalf("first generation = %d, want 1", got)
	}
	<-wake
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: b1})
	select {
	case <-wake:
		t.Fatal("an unchanged desired state woke the stream")
	default:
	}
	if got := f.Snapshot("c1")["api"].Generation; got != 1 {
		t.Fatalf("unchanged desired state moved the generation to %d", got)
	}
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r2", Bundle: b2})
	if got := f.Snapshot("c1")["api"].Generation; got != 2 {
		t.Fatalf("generation after a change = %d, want 2", got)
	}
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r2", Bundle: b2, Policy: apps.SyncPolicy{Automated: true}})
	if got := f.Snapshot("c1")["api"].Generation; got != 3 {
		t.Fatalf("generation after a policy change = %d, want 3", got)
	}
	dependent := Desired{Cluster: "c1", App: "api", Revision: "r2", Bundle: b2, Policy: apps.SyncPolicy{Automated: true}, DependsOn: []string{"db"}}
	f.SetDesired(dependent)
	if got := f.Snapshot("c1")["api"].Generation; got != 4 {
		t.Fatalf("generation after a dependsOn change = %d, want 4", got)
	}
	dependent.DependsOn = []string{"db"} // equal, not the same slice
	f.SetDesired(dependent)
	if got := f.Snapshot("c1")["api"].Generation; got != 4 {
		t.Fatalf("an unchanged dependsOn moved the generation to %d", got)
	}
}

func TestAlignAfterHubRestart(t *testing.T) {
	b1, b2 := testBundle(t, "a"), testBundle(t, "b")
	tests := []struct {
		name    string
		held    Held
		desired *bundle.Bundle
		want    uint64
	}{
		{"agent holds the desired digest: adopt its generation", Held{App: "api", Generation: 7, Revision: "r1", Digest: b1.Digest}, b1, 7},
		{"agent holds an older digest: move past its generation", Held{App: "api", Generation: 7, Revision: "r0", Digest: b2.Digest}, b1, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(time.Minute)
			f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: tt.desired})
			f.Align("c1", []Held{tt.held})
			if got := f.Snapshot("c1")["api"].Generation; got != tt.want {
				t.Fatalf("generation = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestShouldRemoveOnlyWhenAppsAreKnown(t *testing.T) {
	f := New(time.Minute)
	f.SetRemovalGrace(0) // the grace has its own tests (removal_test.go)
	if f.ShouldRemove("c1", "old") {
		t.Fatal("a hub that has not loaded its apps removed an app")
	}
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: testBundle(t, "a")})
	f.SetTargets(map[string]map[string]bool{"c1": {"api": true, "broken": true}})
	if f.ShouldRemove("c1", "api") {
		t.Fatal("a desired app would be removed")
	}
	if f.ShouldRemove("c1", "broken") {
		t.Fatal("an app that targets the cluster but failed to render would be removed")
	}
	if !f.ShouldRemove("c1", "old") {
		t.Fatal("an app no longer targeting the cluster is not removed")
	}
}

func TestRowsNeverShowStaleClustersHealthy(t *testing.T) {
	now := time.Now()
	f := New(3 * time.Second)
	f.now = func() time.Time { return now }
	b := testBundle(t, "a")
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: b})
	f.Seen("c1", "v1", true)
	f.Ack("c1", "api", 1, "r1", b.Digest)
	f.Status("c1", Report{App: "api", Sync: SyncSynced, Health: "Healthy", AppliedRevision: "r1", AppliedDigest: b.Digest})
	if r := f.Rows()[0]; r.Health != "Healthy" || r.Sync != SyncSynced {
		t.Fatalf("connected row = %+v", r)
	}
	now = now.Add(10 * time.Second)
	r := f.Rows()[0]
	if r.Health != HealthUnknown || !strings.Contains(r.Message, "Stale: silent for 10s") {
		t.Fatalf("stale row = %+v", r)
	}
	f.Seen("c1", "", false)
	if r := f.Rows()[0]; r.Health != HealthUnknown || !strings.Contains(r.Message, "agent disconnected") {
		t.Fatalf("disconnected row = %+v", r)
	}
}

// TestSeenWhileTheFleetIsRead: an agent's message is recorded while the fleet's lock is held
// (as a whole fleet's status holds it for every row): presence has a lock of its own.
func TestSeenWhileTheFleetIsRead(t *testing.T) {
	f := New(time.Minute)
	f.Seen("c1", "v1", false)
	f.mu.Lock()
	seen := make(chan struct{})
	go func() {
		f.Seen("c1", "v2", true)
		close(seen)
	}()
	testwait.Until(t, 30*time.Second, "Seen returns while the fleet's lock is held", func() bool {
		select {
		case <-seen:
			return true
		default:
			return false
		}
	})
	p, state := f.Presence("c1")
	f.mu.Unlock()
	if !p.Connected || p.AgentVersion != "v2" || state != StateConnected {
		t.Fatalf("presence = %+v, %s; want connected, v2", p, state)
	}
}

func TestRowsShowOutOfSyncWhileANewRevisionIsPending(t *testing.T) {
	f := New(time.Minute)
	b1, b2 := testBundle(t, "a"), testBundle(t, "b")
	f.Seen("c1", "v1", true)
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: b1})
	f.Status("c1", Report{App: "api", Sync: SyncSynced, Health: "Healthy", AppliedRevision: "r1", AppliedDigest: b1.Digest})
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r2", Bundle: b2})
	r := f.Rows()[0]
	if r.Sync != SyncOutOfSync || r.DesiredRevision != "r2" || r.AppliedRevision != "r1" {
		t.Fatalf("row = %+v", r)
	}
}

// TestRowsKeepTheAgentsRetryProgressAfterANack: the NACK reason shows until the agent
// reports; then its message, which tells the same failure with its retry progress, shows.
func TestRowsKeepTheAgentsRetryProgressAfterANack(t *testing.T) {
	f := New(time.Minute)
	b1, b2 := testBundle(t, "a"), testBundle(t, "b")
	f.Seen("c1", "v1", true)
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: b1})
	f.Ack("c1", "api", 1, "r1", b1.Digest)
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r2", Bundle: b2})
	const reason = "Deployment.apps/api/web: apply: spec.replicas: Invalid value"
	f.Nack("c1", "api", 2, reason)
	if r := f.Rows()[0]; r.Message != "generation 2: "+reason || r.LastError != r.Message {
		t.Fatalf("row after the NACK = %+v", r)
	}
	progress := "sync of revision r2 failed (attempt 2/4, retrying in 10s): " + reason
	f.Status("c1", Report{App: "api", Sync: SyncOutOfSync, Health: "Healthy", AppliedRevision: "r1", AppliedDigest: b1.Digest, Message: progress})
	if r := f.Rows()[0]; r.Message != progress || r.LastError != "generation 2: "+reason {
		t.Fatalf("row after the agent's report = %+v", r)
	}
	f.Status("c1", Report{App: "api", Sync: SyncOutOfSync, Health: "Healthy", AppliedRevision: "r1", AppliedDigest: b1.Digest, Message: "something else"})
	if r := f.Rows()[0]; r.Message != "generation 2: "+reason {
		t.Fatalf("a report not telling the failure hides the NACK: %+v", r)
	}
}

func TestAckEndsAnOperatorRequest(t *testing.T) {
	f := New(time.Minute)
	b := testBundle(t, "a")
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: b})
	if !f.RequestSync("c1", "api", true) {
		t.Fatal("RequestSync found nothing")
	}
	d := f.Snapshot("c1")["api"]
	if !d.SyncRequested || !d.PruneConfirmed || d.Generation != 2 {
		t.Fatalf("requested desired = %+v", d)
	}
	f.Ack("c1", "api", 2, "r1", b.Digest)
	d = f.Snapshot("c1")["api"]
	if d.SyncRequested || d.PruneConfirmed || d.Generation != 2 {
		t.Fatalf("after the ACK the request is still pending: %+v", d)
	}
	// A reconnecting agent that holds generation 2 is sent nothing new.
	f.Align("c1", []Held{{App: "api", Generation: 2, Revision: "r1", Digest: b.Digest}})
	if d := f.Snapshot("c1")["api"]; d.Generation != 2 || d.SyncRequested {
		t.Fatalf("after a reconnect: %+v", d)
	}
}

func TestACommitThatLeavesAnAppUnchangedSendsNothing(t *testing.T) {
	f := New(time.Minute)
	wake := watch(f, "c1")
	b := testBundle(t, "a")
	f.SetDesired(Desired{Cluster: "c1", App: "worker", Revision: "r1", Bundle: b})
	<-wake
	f.Seen("c1", "v1", true)
	f.Ack("c1", "worker", 1, "r1", b.Digest)
	f.Status("c1", Report{App: "worker", Sync: SyncSynced, Health: "Healthy", AppliedRevision: "r1", AppliedDigest: b.Digest, HealthyRevision: "r1"})

	f.SetDesired(Desired{Cluster: "c1", App: "worker", Revision: "r2", Bundle: b})
	select {
	case <-wake:
		t.Fatal("an unchanged bundle at a new revision woke the stream")
	default:
	}
	d := f.Snapshot("c1")["worker"]
	if d.Generation != 1 || d.Revision != "r2" {
		t.Fatalf("desired = generation %d revision %s, want 1 r2", d.Generation, d.Revision)
	}
	r := f.Rows()[0]
	if r.Sync != SyncSynced || r.AppliedRevision != "r2" || r.HealthyRevision != "r2" {
		t.Fatalf("row = %+v, want Synced at r2", r)
	}
}

// TestWatchTheNewestStream: a cluster's watch is its newest agent stream's; the older one's
// stop leaves it in place, and once stopped a change calls nobody.
func TestWatchTheNewestStream(t *testing.T) {
	f := New(time.Minute)
	var old, newer int
	stopOld := f.Watch("c1", func() { old++ })
	stopNewer := f.Watch("c1", func() { newer++ })
	stopOld()
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: testBundle(t, "a")})
	if old != 0 || newer != 1 {
		t.Fatalf("after a change: the older stream called %d times, the newer %d, want 0 and 1", old, newer)
	}
	stopNewer()
	f.SetDesired(Desired{Cluster: "c1", App: "api", Revision: "r2", Bundle: testBundle(t, "b")})
	if newer != 1 {
		t.Fatalf("a stopped watch was called again (%d)", newer)
	}
}
