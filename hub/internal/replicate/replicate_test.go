package replicate

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/cluster"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
)

// hash is a join token's secret hash.
var hash = bytes.Repeat([]byte{7}, 32)

// pinLog is pins.Pins as replication sees it: it keeps the records merged.
type pinLog struct{ merged []store.Pin }

func (p *pinLog) Merge(records []store.Pin, owned func(string) bool) (int, bool) {
	p.merged = append(p.merged, records...)
	mine := false
	for _, r := range records {
		mine = mine || owned(r.Cluster)
	}
	return len(records), mine
}

func (p *pinLog) Records() ([]store.Pin, error) { return p.merged, nil }

// wire is the gossip between two replicas: what one broadcasts, the other receives.
type wire struct{ to *Replicator }

func (w *wire) Broadcast(msg []byte) { w.to.OnBroadcast(msg) }

// replica is one replica's store, pins and what its hooks saw.
type replica struct {
	*Replicator
	store   *store.Store
	pins    *pinLog
	revoked []string
	changes int
	removed []string
}

func newReplica(t *testing.T, bc broadcaster, owns string) *replica {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "flotilla.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &replica{store: st, pins: &pinLog{}}
	r.Replicator = New(st, r.pins, bc, Hooks{
		Owned:          func() func(string) bool { return func(c string) bool { return c == owns } },
		Revoked:        func(c string) { r.revoked = append(r.revoked, c) },
		Changed:        func() { r.changes++ },
		ConfirmRemoval: func(apps []string) { r.removed = apps },
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return r
}

// TestBroadcasts: what one replica changes reaches the other's store, which acts on it: a
// revocation closes the stream, a pin on a cluster it owns renders again.
func TestBroadcasts(t *testing.T) {
	w := &wire{}
	a := newReplica(t, w, "")
	b := newReplica(t, nil, "c1")
	w.to = b.Replicator

	now := time.Now().Truncate(time.Millisecond)
	if err := a.store.PutCluster(store.Cluster{Name: "c1", Labels: map[string]string{"env": "prod"}, CreatedAt: now, AgentVersion: "a's own"}); err != nil {
		t.Fatal(err)
	}
	a.Cluster("c1")
	got, found, err := b.store.GetCluster("c1")
	if err != nil || !found || got.Labels["env"] != "prod" || got.AgentVersion != "" || b.changes != 1 {
		t.Fatalf("b's c1 = %+v, %v, %v (changes %d)", got, found, err, b.changes)
	}

	if err := a.store.PutCluster(store.Cluster{Name: "c1", Labels: map[string]string{"env": "prod"}, CreatedAt: now, Revoked: true}); err != nil {
		t.Fatal(err)
	}
	a.Cluster("c1")
	if got, _, _ := b.store.GetCluster("c1"); !got.Revoked || !slices.Equal(b.revoked, []string{"c1"}) {
		t.Fatalf("revocation: b's c1 %+v, streams closed %v", got, b.revoked)
	}

	if err := a.store.PutToken(store.JoinToken{ID: "t1", SecretHash: hash, Cluster: "c1", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	a.Token("t1")
	if tok, found, err := b.store.GetToken("t1"); err != nil || !found || !bytes.Equal(tok.SecretHash, hash) {
		t.Fatalf("b's token = %+v, %v, %v", tok, found, err)
	}

	before := b.changes
	a.Pin(store.Pin{App: "api", Cluster: "c1", Revision: "v1", Actor: "op", Time: now})
	if len(b.pins.merged) != 1 || b.changes != before+1 {
		t.Fatalf("pin: merged %v, changes %d", b.pins.merged, b.changes-before)
	}
	a.Pin(store.Pin{App: "api", Cluster: "c2", Revision: "v1", Actor: "op", Time: now})
	if len(b.pins.merged) != 2 || b.changes != before+1 {
		t.Fatalf("a pin on a cluster b does not own rendered again (changes %d)", b.changes-before)
	}

	a.ConfirmRemoval([]string{"web"})
	if !slices.Equal(b.removed, []string{"web"}) {
		t.Fatalf("confirmed removal = %v", b.removed)
	}

	b.OnBroadcast([]byte("another.protocol {}"))
	b.OnBroadcast(append(slices.Clone(prefix), "{not json"...))
}

// TestLargeClusterTravelsSlim: a cluster whose labels overflow a gossip packet is broadcast
// without labels and creation time, so that its revocation still travels.
func TestLargeClusterTravelsSlim(t *testing.T) {
	labels := map[string]string{}
	for i := range 200 {
		labels[strings.Repeat("k", 10)+string(rune('a'+i%26))+strings.Repeat("x", i)] = strings.Repeat("v", 50)
	}
	b, err := encode(message{Cluster: &store.Cluster{Name: "c1", Labels: labels, CreatedAt: time.Now(), Revoked: true}})
	if err != nil || len(b) > cluster.MaxBroadcastSize {
		t.Fatalf("encode: %d bytes, %v", len(b), err)
	}
	m, ok, err := decode(b)
	if !ok || err != nil || m.Cluster == nil || !m.Cluster.Revoked || m.Cluster.Labels != nil || !m.Cluster.CreatedAt.IsZero() {
		t.Fatalf("decode = %+v, %v, %v", m.Cluster, ok, err)
	}
}

// TestPull: a replica's export merged into another changes only what differs.
func TestPull(t *testing.T) {
	a := newReplica(t, nil, "")
	b := newReplica(t, nil, "")
	now := time.Now().Truncate(time.Millisecond)
	if err := a.store.PutCluster(store.Cluster{Name: "c1", CreatedAt: now, AgentVersion: "a's own"}); err != nil {
		t.Fatal(err)
	}
	if err := a.store.PutToken(store.JoinToken{ID: "t1", SecretHash: hash, Cluster: "c1", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	a.pins.merged = []store.Pin{{App: "api", Cluster: "c1", Revision: "v1", Actor: "op", Time: now}}
	reg, err := a.Export()
	if err != nil || len(reg.Clusters) != 1 || reg.Clusters[0].AgentVersion != "" || len(reg.Tokens) != 1 || len(reg.Pins) != 1 {
		t.Fatalf("Export = %+v, %v", reg, err)
	}
	if n := b.Merge("hub-a", reg); n != 3 {
		t.Fatalf("first pull changed %d records, want 3", n)
	}
	b.pins.merged = nil
	reg.Pins = nil
	if n := b.Merge("hub-a", reg); n != 0 {
		t.Fatalf("second pull changed %d records, want 0", n)
	}
}
