package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// testLogWriter sends log lines to t.Log until the test's cleanup starts;
// memberlist's own goroutines may still log for a moment after Shutdown.
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func testLogger(t testing.TB, name string) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

// testContext is cancelled after the cleanups of the nodes started with it
// have run (t.Context ends before any cleanup, which would make every node
// leave at once, with no one left to tell).
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func startNode(t *testing.T, ctx context.Context, name string, key []byte, peers ...string) *Membership {
	t.Helper()
	m, err := Start(ctx, Config{
		NodeName:      name,
		BindAddr:      "127.0.0.1:0",
		AdvertiseGRPC: name + ".hub.test:8443",
		Peers:         peers,
		Keys:          [][]byte{key},
		Logger:        testLogger(t, name),
	})
	if err != nil {
		t.Fatalf("Start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := m.Leave(time.Second); err != nil {
			t.Logf("leave %s: %v", name, err)
		}
	})
	return m
}

// kill stops a node the way a crash would: no leave message.
func kill(m *Membership) {
	_ = m.stop(false, 0)
	<-m.life.watcherDone
}

func memberNames(m *Membership) []string {
	var out []string
	for _, mb := range m.Members() {
		out = append(out, mb.Name)
	}
	return out
}

type claim struct {
	owner Member
	epoch uint64
}

// agreed returns every cluster's owner and epoch when all nodes see exactly
// want as members and give the same answer for every cluster.
func agreed(nodes []*Membership, want []string, clusters []string) (map[string]claim, bool) {
	for _, n := range nodes {
		if !slices.Equal(memberNames(n), want) {
			return nil, false
		}
	}
	out := make(map[string]claim, len(clusters))
	for _, c := range clusters {
		for i, n := range nodes {
			o, e := n.Owner(c, clusters)
			if i == 0 {
				out[c] = claim{o, e}
			} else if out[c] != (claim{o, e}) {
				return nil, false
			}
		}
	}
	return out, true
}

func waitAgreed(t *testing.T, timeout time.Duration, nodes []*Membership, want, clusters []string) map[string]claim {
	t.Helper()
	var got map[string]claim
	testwait.Until(t, timeout, fmt.Sprintf("%d nodes agreeing on members %v and owners", len(nodes), want), func() bool {
		var ok bool
		got, ok = agreed(nodes, want, clusters)
		return ok
	})
	return got
}

// agreeTimeout bounds the waits for members to agree and reach each other, generous because make test runs them
// beside the e2e clusters on two cores.
const agreeTimeout = 60 * time.Second

// pingAll checks that every node answers an encrypted ping from every other,
// retrying (UDP) for up to agreeTimeout.
func pingAll(t *testing.T, nodes []*Membership, when string) {
	t.Helper()
	for _, from := range nodes {
		for _, to := range nodes {
			if from == to {
				continue
			}
			addr, err := net.ResolveUDPAddr("udp", to.gossipAddr())
			if err != nil {
				t.Fatal(err)
			}
			testwait.Until(t, agreeTimeout, fmt.Sprintf("%s: %s pinging %s", when, from.name, to.name), func() bool {
				_, err := from.ml.Ping(to.name, addr)
				return err == nil
			})
		}
	}
}

// broadcasts records the broadcasts each node receives.
type broadcasts struct {
	mu  sync.Mutex
	got map[string][]string
}

func recordBroadcasts(nodes []*Membership) *broadcasts {
	b := &broadcasts{got: map[string][]string{}}
	for _, n := range nodes {
		n.OnMessage(func(msg []byte) {
			b.mu.Lock()
			b.got[n.name] = append(b.got[n.name], string(msg))
			b.mu.Unlock()
		})
	}
	return b
}

// has reports whether node received msg.
func (b *broadcasts) has(node, msg string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Contains(b.got[node], msg)
}

func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func TestMembershipJoinAgreeFailover(t *testing.T) {
	ctx := testContext(t)
	key := testKey(1)
	a := startNode(t, ctx, "hub-a", key)
	b := startNode(t, ctx, "hub-b", key, a.gossipAddr())
	c := startNode(t, ctx, "hub-c", key, a.gossipAddr())
	all := []string{"hub-a", "hub-b", "hub-c"}
	clusters := names("cluster", 100)

	before := waitAgreed(t, agreeTimeout, []*Membership{a, b, c}, all, clusters)
	for _, mb := range a.Members() {
		if want := mb.Name + ".hub.test:8443"; mb.GRPCAddr != want {
			t.Errorf("member %s: gRPC address %q, want %q", mb.Name, mb.GRPCAddr, want)
		}
	}
	epochOf := map[string]uint64{}
	owned := map[string]int{}
	var maxBefore uint64
	for _, cl := range before {
		owned[cl.owner.Name]++
		maxBefore = max(maxBefore, cl.epoch)
		if e, ok := epochOf[cl.owner.Name]; ok && e != cl.epoch {
			t.Errorf("%s claims with two epochs: %x and %x", cl.owner.Name, e, cl.epoch)
		}
		epochOf[cl.owner.Name] = cl.epoch
	}
	t.Logf("owners of 100 clusters: %v", owned)
	if len(owned) != 3 {
		t.Errorf("clusters owned by %d members, want all 3: %v", len(owned), owned)
	}
	seen := map[uint64]string{}
	for name, e := range epochOf {
		if other, dup := seen[e]; dup {
			t.Errorf("%s and %s claim with the same epoch %x", name, other, e)
		}
		seen[e] = name
	}

	drain(a.Changes())
	drain(b.Changes())
	start := time.Now()
	kill(c)
	after := waitAgreed(t, 15*time.Second, []*Membership{a, b}, all[:2], clusters)
	t.Logf("survivors agreed %s after hub-c died", time.Since(start).Round(10*time.Millisecond))

	movedFromC := 0
	for cl, was := range before {
		now := after[cl]
		if now.owner.Name == "hub-c" {
			t.Fatalf("cluster %s still owned by the dead replica", cl)
		}
		if now.epoch <= maxBefore {
			t.Errorf("cluster %s: epoch %x after the failure, not above %x before", cl, now.epoch, maxBefore)
		}
		if was.owner.Name == "hub-c" {
			movedFromC++
		} else if now.owner != was.owner {
			t.Logf("cluster %s moved from %s to %s (bounded-load spillover)", cl, was.owner.Name, now.owner.Name)
		}
	}
	t.Logf("%d clusters moved from hub-c to the survivors", movedFromC)
	if movedFromC != owned["hub-c"] {
		t.Errorf("%d clusters moved from hub-c, it owned %d", movedFromC, owned["hub-c"])
	}
	for _, n := range []*Membership{a, b} {
		select {
		case <-n.Changes():
		default:
			t.Errorf("%s: Changes not signalled", n.name)
		}
	}
}

func TestMembershipRefusesNodeWithoutKey(t *testing.T) {
	ctx := testContext(t)
	a := startNode(t, ctx, "hub-a", testKey(1))
	b := startNode(t, ctx, "hub-b", testKey(1), a.gossipAddr())
	waitAgreed(t, agreeTimeout, []*Membership{a, b}, []string{"hub-a", "hub-b"}, nil)

	// Another key: an explicit join fails, and its join loop keeps failing.
	d := startNode(t, ctx, "hub-d", testKey(2), a.gossipAddr())
	if _, err := d.ml.Join([]string{a.gossipAddr()}); err == nil {
		t.Errorf("join with another key succeeded")
	}

	// No key at all: a bare memberlist node.
	mc := memberlist.DefaultLocalConfig()
	mc.Name = "intruder"
	mc.BindAddr, mc.BindPort = "127.0.0.1", 0
	mc.Logger = newStdLogger(testLogger(t, "intruder"))
	bare, err := memberlist.Create(mc)
	if err != nil {
		t.Fatalf("create bare memberlist: %v", err)
	}
	t.Cleanup(func() { _ = bare.Shutdown() })
	if _, err := bare.Join([]string{a.gossipAddr()}); err == nil {
		t.Errorf("join without a key succeeded")
	}

	outsiders := []string{"hub-d", "intruder"}
	testwait.Stays(t, 2*time.Second, "keyless and wrong-key nodes stay out", func() bool {
		for _, n := range []*Membership{a, b} {
			for _, name := range memberNames(n) {
				if slices.Contains(outsiders, name) {
					return false
				}
			}
		}
		return slices.Equal(memberNames(d), []string{"hub-d"}) && bare.NumMembers() == 1
	})
}

func TestMembershipBroadcast(t *testing.T) {
	ctx := testContext(t)
	key := testKey(1)
	a := startNode(t, ctx, "hub-a", key)
	b := startNode(t, ctx, "hub-b", key, a.gossipAddr())
	c := startNode(t, ctx, "hub-c", key, b.gossipAddr())
	nodes := []*Membership{a, b, c}
	waitAgreed(t, agreeTimeout, nodes, []string{"hub-a", "hub-b", "hub-c"}, nil)

	got := recordBroadcasts(nodes)
	a.Broadcast([]byte("revoke cert 1 from a"))
	c.Broadcast([]byte("revoke cert 2 from c"))
	testwait.Until(t, agreeTimeout, "broadcasts reaching the other members", func() bool {
		return got.has("hub-b", "revoke cert 1 from a") && got.has("hub-c", "revoke cert 1 from a") &&
			got.has("hub-a", "revoke cert 2 from c") && got.has("hub-b", "revoke cert 2 from c")
	})
	if got.has("hub-a", "revoke cert 1 from a") || got.has("hub-c", "revoke cert 2 from c") {
		t.Errorf("a sender received its own broadcast")
	}
}

func TestMembershipBroadcastTooLarge(t *testing.T) {
	a := startNode(t, testContext(t), "hub-a", testKey(1))
	a.Broadcast(make([]byte, MaxBroadcastSize+1))
	if n := a.queue.NumQueued(); n != 0 {
		t.Errorf("oversized broadcast queued (%d in queue)", n)
	}
	a.Broadcast(make([]byte, MaxBroadcastSize))
	if n := a.queue.NumQueued(); n != 1 {
		t.Errorf("%d broadcasts queued, want 1", n)
	}
}

func TestMembershipStartsBeforePeers(t *testing.T) {
	// Reserve a port for b, which starts after a.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()

	ctx := testContext(t)
	a := startNode(t, ctx, "hub-a", testKey(1), addr)
	if got := memberNames(a); !slices.Equal(got, []string{"hub-a"}) {
		t.Fatalf("members before any peer is up: %v", got)
	}
	if o, _ := a.Owner("cluster-1", nil); o.Name != "hub-a" {
		t.Errorf("alone, owner of cluster-1 is %q, want hub-a", o.Name)
	}
	b, err := Start(ctx, Config{NodeName: "hub-b", BindAddr: addr, AdvertiseGRPC: "hub-b:8443",
		Keys: [][]byte{testKey(1)}, Logger: testLogger(t, "hub-b")})
	if err != nil {
		t.Fatalf("start hub-b on the reserved port: %v", err)
	}
	t.Cleanup(func() { _ = b.Leave(time.Second) })
	waitAgreed(t, 15*time.Second, []*Membership{a, b}, []string{"hub-a", "hub-b"}, nil)
}

func TestMembershipLeavesWhenContextEnds(t *testing.T) {
	a := startNode(t, testContext(t), "hub-a", testKey(1))
	ctx, cancel := context.WithCancel(testContext(t))
	b := startNode(t, ctx, "hub-b", testKey(1), a.gossipAddr())
	waitAgreed(t, agreeTimeout, []*Membership{a, b}, []string{"hub-a", "hub-b"}, nil)

	cancel()
	// A graceful leave is seen at once, without waiting for failure detection.
	testwait.Until(t, 3*time.Second, "hub-a seeing hub-b leave", func() bool {
		return slices.Equal(memberNames(a), []string{"hub-a"})
	})
	select {
	case <-b.life.watcherDone:
	case <-time.After(5 * time.Second):
		t.Fatal("hub-b's goroutines still running after its context ended")
	}
	if err := b.Leave(time.Second); err != nil {
		t.Errorf("Leave after the context ended: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{NodeName: "hub-0", BindAddr: "0.0.0.0:7946", AdvertiseGRPC: "hub-0:8443", Keys: [][]byte{testKey(1)}}
	tests := []struct {
		name     string
		edit     func(*Config)
		wantErr  bool
		wantHost string
		wantPort int
	}{
		{name: "good", edit: func(*Config) {}, wantHost: "0.0.0.0", wantPort: 7946},
		{name: "empty host binds all", edit: func(c *Config) { c.BindAddr = ":7000" }, wantHost: "0.0.0.0", wantPort: 7000},
		{name: "no name", edit: func(c *Config) { c.NodeName = "" }, wantErr: true},
		{name: "no port", edit: func(c *Config) { c.BindAddr = "0.0.0.0" }, wantErr: true},
		{name: "bad port", edit: func(c *Config) { c.BindAddr = "0.0.0.0:99999" }, wantErr: true},
		{name: "no gRPC address", edit: func(c *Config) { c.AdvertiseGRPC = "" }, wantErr: true},
		{name: "gRPC address too long", edit: func(c *Config) { c.AdvertiseGRPC = string(bytes.Repeat([]byte("a"), 500)) }, wantErr: true},
		{name: "no key", edit: func(c *Config) { c.Keys = nil }, wantErr: true},
		{name: "16-byte key", edit: func(c *Config) { c.Keys = [][]byte{testKey(1)[:16]} }, wantErr: true},
		{name: "16-byte secondary key", edit: func(c *Config) { c.Keys = [][]byte{testKey(1), testKey(2)[:16]} }, wantErr: true},
		{name: "two keys", edit: func(c *Config) { c.Keys = [][]byte{testKey(1), testKey(2)} }, wantHost: "0.0.0.0", wantPort: 7946},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			host, port, err := c.validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("validate: err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (host != tt.wantHost || port != tt.wantPort) {
				t.Errorf("validate = %s:%d, want %s:%d", host, port, tt.wantHost, tt.wantPort)
			}
		})
	}
	if _, err := Start(t.Context(), Config{NodeName: "x", BindAddr: "127.0.0.1:0", AdvertiseGRPC: "x:1"}); !errors.Is(err, ErrKeySize) {
		t.Errorf("Start without a key: %v, want ErrKeySize", err)
	}
}

// TestMembershipKeyRotationWithoutDowntime rotates the gossip key on three
// replicas in the three documented steps (add the new key second, make it
// first, remove the old one), applying each step one replica at a time, and
// checks that every replica reaches every other at every point (an encrypted
// ping that a replica unable to decrypt never answers) and that all stay
// members; at the end a replica with only the old key cannot join, one with
// only the new key can.
func TestMembershipKeyRotationWithoutDowntime(t *testing.T) {
	ctx := testContext(t)
	oldKey, newKey := testKey(1), testKey(2)
	a := startNode(t, ctx, "hub-a", oldKey)
	b := startNode(t, ctx, "hub-b", oldKey, a.gossipAddr())
	c := startNode(t, ctx, "hub-c", oldKey, b.gossipAddr())
	nodes := []*Membership{a, b, c}
	all := []string{"hub-a", "hub-b", "hub-c"}
	waitAgreed(t, agreeTimeout, nodes, all, nil)

	steps := []struct {
		name string
		keys [][]byte
	}{
		{"add the new key", [][]byte{oldKey, newKey}},
		{"make the new key primary", [][]byte{newKey, oldKey}},
		{"remove the old key", [][]byte{newKey}},
	}
	for i, step := range steps {
		for _, n := range nodes {
			changed, err := n.SetKeys(step.keys)
			if err != nil || !changed {
				t.Fatalf("%s on %s: changed %v, %v", step.name, n.name, changed, err)
			}
			// Between replicas, the cluster is half on the old keyring and half
			// on the new one: every replica must still reach every other.
			pingAll(t, nodes, fmt.Sprintf("step %d after %s", i, n.name))
		}
		if changed, err := a.SetKeys(step.keys); err != nil || changed {
			t.Fatalf("%s again: changed %v, %v; want no change", step.name, changed, err)
		}
	}
	waitAgreed(t, agreeTimeout, nodes, all, nil)

	stale := startNode(t, ctx, "hub-old", oldKey)
	if _, err := stale.ml.Join([]string{a.gossipAddr()}); err == nil {
		t.Errorf("a replica with only the removed key joined")
	}
	fresh := startNode(t, ctx, "hub-d", newKey, a.gossipAddr())
	waitAgreed(t, agreeTimeout, append(nodes, fresh), append(all, "hub-d"), nil)
}

func TestSetKeysRefusesBadKeys(t *testing.T) {
	a := startNode(t, testContext(t), "hub-a", testKey(1))
	for _, keys := range [][][]byte{nil, {testKey(1)[:16]}, {testKey(1), testKey(2)[:8]}} {
		if _, err := a.SetKeys(keys); !errors.Is(err, ErrKeySize) {
			t.Errorf("SetKeys(%d keys) = %v, want ErrKeySize", len(keys), err)
		}
	}
	if !bytes.Equal(a.keyring.GetPrimaryKey(), testKey(1)) || len(a.keyring.GetKeys()) != 1 {
		t.Errorf("refused keys changed the keyring")
	}
}
