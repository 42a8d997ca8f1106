package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/hub/internal/cluster"
)

// syncBuffer is a log sink safe for the reload goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestGossipKeyFileRotation edits the key files of two running replicas the way an operator
// rotates the gossip key (new key added, made primary, old removed) and checks that the
// replicas pick each step up without a restart: a replica with only the new key joins them, a
// broken file keeps the keys in use, and one with only the old key is refused at the end.
func TestGossipKeyFileRotation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	oldKey, newKey := bytes.Repeat([]byte{1}, cluster.KeySize), bytes.Repeat([]byte{2}, cluster.KeySize)
	enc := base64.StdEncoding.EncodeToString
	dir := t.TempDir()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))

	start := func(name string, keys [][]byte, peers ...string) *cluster.Membership {
		t.Helper()
		m, err := cluster.Start(ctx, cluster.Config{NodeName: name, BindAddr: "127.0.0.1:0",
			AdvertiseGRPC: name + ":8443", Peers: peers, Keys: keys, Logger: log})
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() { _ = m.Leave(time.Second) })
		return m
	}
	write := func(file, content string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	members := func(m *cluster.Membership) []string {
		var out []string
		for _, mb := range m.Members() {
			out = append(out, mb.Name)
		}
		return out
	}
	waitMembers := func(what string, want []string, nodes ...*cluster.Membership) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
			for _, n := range nodes {
				if !slices.Equal(members(n), want) {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("%s: members not %v within 60s", what, want)
		}
	}

	fa, fb := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	write(fa, enc(oldKey)+"\n")
	write(fb, enc(oldKey)+"\n")
	a := start("hub-a", [][]byte{oldKey})
	b := start("hub-b", [][]byte{oldKey}, a.GossipAddr())
	waitMembers("two replicas", []string{"hub-a", "hub-b"}, a, b)
	for _, r := range []struct {
		m    *cluster.Membership
		file string
	}{{a, fa}, {b, fb}} {
		go func() { _ = reloadGossipKeys(ctx, r.m, r.file, 20*time.Millisecond, log) }()
	}

	// Steps 1 and 2 on both replicas: the new key is accepted, then primary.
	write(fa, "# rotation\n"+enc(oldKey)+"\n"+enc(newKey)+"\n")
	write(fb, enc(oldKey)+"\n"+enc(newKey)+"\n")
	write(fa, enc(newKey)+"\n"+enc(oldKey)+"\n")
	write(fb, enc(newKey)+"\n"+enc(oldKey)+"\n")
	c := start("hub-c", [][]byte{newKey}, a.GossipAddr())
	waitMembers("a replica with only the new key joins", []string{"hub-a", "hub-b", "hub-c"}, a, b, c)

	// A broken file keeps the keys in use, and says so.
	write(fa, "not a key\n")
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(logs.String(), "gossip keys not reloaded"), nil
	})
	if err != nil {
		t.Fatalf("a broken key file was not reported: %s", logs.String())
	}
	if !slices.EqualFunc(a.Keys(), [][]byte{newKey, oldKey}, bytes.Equal) {
		t.Errorf("a broken key file changed the keys in use")
	}

	// Step 3: the old key goes.
	write(fa, enc(newKey)+"\n")
	write(fb, enc(newKey)+"\n")
	for _, n := range []*cluster.Membership{a, b} {
		err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
			return slices.EqualFunc(n.Keys(), [][]byte{newKey}, bytes.Equal), nil
		})
		if err != nil {
			t.Fatalf("the old key was not removed: keys %d", len(n.Keys()))
		}
	}
	waitMembers("the rotated replicas stay together", []string{"hub-a", "hub-b", "hub-c"}, a, b, c)
}
