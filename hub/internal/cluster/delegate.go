package cluster

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// This file holds what memberlist calls back into. Memberlist invokes these
// methods on its own goroutines, some with its locks held, so none of them
// blocks or calls into memberlist: each takes a short lock of ours, records,
// and signals the goroutines of Membership that act on it.

var (
	_ memberlist.Delegate        = (*delegate)(nil)
	_ memberlist.EventDelegate   = (*tracker)(nil)
	_ memberlist.AliveDelegate   = (*tracker)(nil)
	_ memberlist.UniqueBroadcast = broadcast(nil)
)

// tracker records the members memberlist reports. Membership.watch drains it.
type tracker struct {
	self   string
	notify chan struct{} // capacity 1: coalesced "something changed"
	live   atomic.Int32  // live members, self included; read by the broadcast queue

	mu      sync.Mutex
	nodes   map[string]nodeMeta // live members, self included
	tags    map[uint32]string   // epoch tag → name, for every live member
	changed bool                // the member set changed since the last take
	maxSeen uint64              // highest counter anyone published, departed members included
}

func newTracker(self string) *tracker {
	return &tracker{
		self:   self,
		notify: make(chan struct{}, 1),
		nodes:  make(map[string]nodeMeta),
		tags:   make(map[uint32]string),
	}
}

// NotifyAlive vets a node before memberlist accepts it: it must publish our
// metadata, and its epoch tag must not collide with another member's (two
// replicas would otherwise be able to claim an agent with the same epoch).
func (t *tracker) NotifyAlive(n *memberlist.Node) error {
	if _, err := decodeMeta(n.Meta); err != nil {
		return err
	}
	tag := nodeTag(n.Name)
	t.mu.Lock()
	other, ok := t.tags[tag]
	t.mu.Unlock()
	if ok && other != n.Name {
		return fmt.Errorf("epoch tag of node %q collides with member %q: rename one of them", n.Name, other)
	}
	return nil
}

// NotifyJoin records a member that joined.
func (t *tracker) NotifyJoin(n *memberlist.Node) {
	meta, _ := decodeMeta(n.Meta) // NotifyAlive refused undecodable metadata
	t.mu.Lock()
	t.nodes[n.Name] = meta
	t.tags[nodeTag(n.Name)] = n.Name
	t.changed = true
	t.maxSeen = max(t.maxSeen, meta.Epoch)
	t.live.Store(int32(len(t.nodes)))
	t.mu.Unlock()
	t.signal()
}

// NotifyLeave records a member that left or failed.
func (t *tracker) NotifyLeave(n *memberlist.Node) {
	meta, _ := decodeMeta(n.Meta)
	t.mu.Lock()
	delete(t.nodes, n.Name)
	if tag := nodeTag(n.Name); t.tags[tag] == n.Name {
		delete(t.tags, tag)
	}
	t.changed = true
	t.maxSeen = max(t.maxSeen, meta.Epoch)
	t.live.Store(int32(len(t.nodes)))
	t.mu.Unlock()
	t.signal()
}

// NotifyUpdate records new metadata of a member. A counter going backwards
// means the member restarted under the same name faster than it was found
// dead: that is a change of the member set too.
func (t *tracker) NotifyUpdate(n *memberlist.Node) {
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		return
	}
	t.mu.Lock()
	old, known := t.nodes[n.Name]
	if !known || (n.Name != t.self && meta.Epoch < old.Epoch) {
		t.changed = true
	}
	t.nodes[n.Name] = meta
	t.tags[nodeTag(n.Name)] = n.Name
	t.maxSeen = max(t.maxSeen, meta.Epoch)
	t.live.Store(int32(len(t.nodes)))
	t.mu.Unlock()
	t.signal()
}

func (t *tracker) signal() {
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

// take returns a copy of the live members, whether the member set changed
// since the last take, and the highest counter seen; it clears the change.
func (t *tracker) take() (map[string]nodeMeta, bool, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	nodes := make(map[string]nodeMeta, len(t.nodes))
	for k, v := range t.nodes {
		nodes[k] = v
	}
	changed := t.changed
	t.changed = false
	return nodes, changed, t.maxSeen
}

// localMeta is the metadata this replica publishes.
type localMeta struct {
	grpc    string
	counter atomic.Uint64 // written only by Membership.refresh
}

func (l *localMeta) encode() []byte {
	return encodeMeta(nodeMeta{Version: metaVersion, GRPC: l.grpc, Epoch: l.counter.Load()})
}

// delegate answers memberlist's Delegate calls.
type delegate struct {
	meta  *localMeta
	queue *memberlist.TransmitLimitedQueue
	inbox *inbox
}

// NodeMeta returns this replica's metadata; Start checked that it fits.
func (d *delegate) NodeMeta(int) []byte { return d.meta.encode() }

// NotifyMsg hands a broadcast to the dispatch goroutine, or drops it when that
// goroutine is behind: memberlist must not wait for our handlers.
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) == 0 {
		return
	}
	msg := bytes.Clone(b) // memberlist reuses b after we return
	select {
	case d.inbox.ch <- msg:
	default:
		d.inbox.dropped.Add(1)
	}
}

// GetBroadcasts returns queued broadcasts to piggyback on gossip.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState has nothing to exchange yet: the metadata carries the epoch.
func (d *delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState has nothing to merge yet.
func (d *delegate) MergeRemoteState([]byte, bool) {}

// inbox carries received broadcasts to the handlers registered with OnMessage.
type inbox struct {
	ch      chan []byte
	dropped atomic.Uint64

	mu       sync.Mutex
	handlers []func([]byte)
}

func (in *inbox) add(fn func([]byte)) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.handlers = append(in.handlers, fn)
}

func (in *inbox) current() []func([]byte) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.handlers[:len(in.handlers):len(in.handlers)]
}

// broadcast is one message in the transmit queue. Messages are independent:
// none replaces another.
type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}
func (b broadcast) UniqueBroadcast()                      {}
