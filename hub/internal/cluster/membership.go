package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/sync/errgroup"

	"github.com/flotilla-dev/flotilla/shared/logging"
)

const (
	// DefaultVNodes and DefaultLoadFactor are the ring parameters Owner uses.
	// With them a replica joining N-1 others takes at most 1.08/N of the
	// clusters, and the other replicas exchange only a few among themselves.
	DefaultVNodes     = 1024
	DefaultLoadFactor = 1.08

	// MaxBroadcastSize is the largest message Broadcast sends: a broadcast
	// rides in one encrypted UDP packet of memberlist's default 1400 bytes.
	MaxBroadcastSize = 1200

	keyEpoch = "epoch" // TODO(cluster): move to shared/logging with the other keys

	inboxSize           = 256             // received broadcasts waiting for handlers
	maxQueuedBroadcasts = 1024            // queued broadcasts kept while no peer takes them
	updateTimeout       = time.Second     // wait for our new metadata to go out
	cancelLeaveTimeout  = 2 * time.Second // Leave when the context of Start ends
	joinBackoffMin      = 250 * time.Millisecond
	joinBackoffMax      = 15 * time.Second
	joinCheckInterval   = 10 * time.Second // how often a joined replica checks it is still not alone
)

// Config configures one replica's membership.
type Config struct {
	NodeName      string   // unique per replica
	BindAddr      string   // gossip listen host:port (--gossip-listen); port 0 picks a free one
	AdvertiseGRPC string   // this replica's gRPC address for agents (sent in node metadata)
	Peers         []string // join addresses (--peers)
	Keys          [][]byte // 32-byte AES keys (--gossip-key-file, see ParseKeys), the first one primary; gossip is encrypted and a node without one of them cannot join
	Logger        *slog.Logger
}

// Member is a live hub replica.
type Member struct {
	Name     string
	GRPCAddr string
}

// Membership is this replica's view of the hub replicas and its share of the
// clusters. It is safe for concurrent use.
type Membership struct {
	name    string
	peers   []string
	log     *slog.Logger
	ml      *memberlist.Memberlist
	addr    string // the gossip address, read once: memberlist's local node is written by UpdateNode
	tracker *tracker
	meta    *localMeta
	queue   *memberlist.TransmitLimitedQueue
	inbox   *inbox
	keyring *memberlist.Keyring
	current atomic.Pointer[view]
	changes chan struct{}
	life    lifecycle
}

// lifecycle owns the goroutines of a Membership.
type lifecycle struct {
	cancel      context.CancelFunc
	workers     errgroup.Group
	once        sync.Once
	err         error
	stopped     chan struct{} // closed when memberlist has shut down
	watcherDone chan struct{} // closed when the goroutine watching ctx returns
}

// Start creates this replica's memberlist node, listening on cfg.BindAddr, and
// joins cfg.Peers in the background: while no peer is reachable it retries with
// jittered exponential backoff until ctx ends, so replicas may start in any
// order. When ctx ends the replica leaves the cluster and stops, as Leave does.
func Start(ctx context.Context, cfg Config) (*Membership, error) {
	host, port, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	m := &Membership{
		name:    cfg.NodeName,
		peers:   slices.Clone(cfg.Peers),
		log:     log,
		tracker: newTracker(cfg.NodeName),
		meta:    &localMeta{grpc: cfg.AdvertiseGRPC},
		inbox:   &inbox{ch: make(chan []byte, inboxSize)},
		changes: make(chan struct{}, 1),
	}
	mc, err := memberlistConfig(cfg, host, port, log)
	if err != nil {
		return nil, err
	}
	m.keyring = mc.Keyring
	m.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(m.tracker.live.Load()) },
		RetransmitMult: mc.RetransmitMult,
	}
	mc.Delegate = &delegate{meta: m.meta, queue: m.queue, inbox: m.inbox}
	mc.Events = m.tracker
	mc.Alive = m.tracker
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.BindAddr, err)
	}
	m.ml = ml
	local := ml.LocalNode() // no UpdateNode has run yet
	m.addr = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
	m.refresh() // our own join: epoch 1, Members and Owner answer from now on

	runCtx, cancel := context.WithCancel(ctx)
	m.life.cancel = cancel
	m.life.stopped = make(chan struct{})
	m.life.watcherDone = make(chan struct{})
	m.life.workers.Go(func() error { return m.watch(runCtx) })
	m.life.workers.Go(func() error { return m.dispatch(runCtx) })
	m.life.workers.Go(func() error { return m.joinLoop(runCtx) })
	go func() {
		defer close(m.life.watcherDone)
		select {
		case <-ctx.Done():
			if err := m.stop(true, cancelLeaveTimeout); err != nil {
				m.log.Warn("leave cluster", logging.Err(err))
			}
		case <-m.life.stopped:
		}
	}()

	m.log.Info("gossip started", logging.KeyAddr, m.gossipAddr(), logging.KeyCount, len(m.peers))
	return m, nil
}

// memberlistConfig is memberlist's LAN configuration tuned for a handful of
// hub replicas, without the delegates.
func memberlistConfig(cfg Config, host string, port int, log *slog.Logger) (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	mc.BindAddr, mc.BindPort, mc.AdvertisePort = host, port, port
	// Fast failure detection: a dead replica's clusters move within seconds.
	// Suspicion lasts 3×ProbeInterval (×log10 of the members), up to 4 times
	// that without confirmation from other members.
	mc.ProbeInterval = 400 * time.Millisecond
	mc.ProbeTimeout = 200 * time.Millisecond
	mc.SuspicionMult = 3
	mc.SuspicionMaxTimeoutMult = 4
	mc.GossipInterval = 100 * time.Millisecond
	mc.PushPullInterval = 15 * time.Second
	mc.TCPTimeout = 3 * time.Second // bounds each join attempt, and so Leave
	mc.DeadNodeReclaimTime = 10 * time.Second
	keyring, err := memberlist.NewKeyring(cloneKeys(cfg.Keys[1:]), bytes.Clone(cfg.Keys[0]))
	if err != nil {
		return nil, fmt.Errorf("cluster config: gossip keys: %w", err)
	}
	mc.Keyring = keyring
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Logger = newStdLogger(log)
	return mc, nil
}

func cloneKeys(keys [][]byte) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = bytes.Clone(k)
	}
	return out
}

// Keys returns the installed gossip keys, the primary first.
func (m *Membership) Keys() [][]byte {
	primary := m.keyring.GetPrimaryKey()
	out := [][]byte{primary}
	for _, k := range m.keyring.GetKeys() {
		if !bytes.Equal(k, primary) {
			out = append(out, k)
		}
	}
	return out
}

// GossipAddr is the host:port this replica gossips on.
func (m *Membership) GossipAddr() string { return m.gossipAddr() }

// SetKeys replaces the gossip keyring without interrupting gossip: keys not yet
// installed are added, the first one becomes the primary (used to encrypt), and
// installed keys not listed are removed. Every key listed decrypts. It reports
// whether anything changed. Rotating a key on all replicas without downtime
// takes three such steps, each applied on every replica before the next: add
// the new key after the old one, move it first, remove the old one.
func (m *Membership) SetKeys(keys [][]byte) (bool, error) {
	if len(keys) == 0 {
		return false, fmt.Errorf("gossip keys: %w", ErrKeySize)
	}
	for _, k := range keys {
		if len(k) != KeySize {
			return false, fmt.Errorf("gossip keys: %w", ErrKeySize)
		}
	}
	has := func(list [][]byte, k []byte) bool {
		return slices.ContainsFunc(list, func(o []byte) bool { return bytes.Equal(o, k) })
	}
	installed := m.keyring.GetKeys()
	changed := false
	for _, k := range keys {
		if !has(installed, k) {
			if err := m.keyring.AddKey(bytes.Clone(k)); err != nil {
				return changed, fmt.Errorf("add gossip key: %w", err)
			}
			changed = true
		}
	}
	if !bytes.Equal(m.keyring.GetPrimaryKey(), keys[0]) {
		if err := m.keyring.UseKey(keys[0]); err != nil {
			return changed, fmt.Errorf("use gossip key: %w", err)
		}
		changed = true
	}
	for _, k := range installed {
		if !has(keys, k) {
			if err := m.keyring.RemoveKey(k); err != nil {
				return changed, fmt.Errorf("remove gossip key: %w", err)
			}
			changed = true
		}
	}
	return changed, nil
}

func (c Config) validate() (string, int, error) {
	if c.NodeName == "" {
		return "", 0, errors.New("cluster config: node name is empty")
	}
	host, p, err := net.SplitHostPort(c.BindAddr)
	if err != nil {
		return "", 0, fmt.Errorf("cluster config: gossip listen address %q: %w", c.BindAddr, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("cluster config: gossip listen port %q: %w", p, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if c.AdvertiseGRPC == "" {
		return "", 0, errors.New("cluster config: advertised gRPC address is empty")
	}
	meta := encodeMeta(nodeMeta{Version: metaVersion, GRPC: c.AdvertiseGRPC, Epoch: math.MaxUint64})
	if len(meta) > memberlist.MetaMaxSize {
		return "", 0, fmt.Errorf("cluster config: advertised gRPC address is %d bytes, too long", len(c.AdvertiseGRPC))
	}
	if len(c.Keys) == 0 {
		return "", 0, fmt.Errorf("cluster config: no gossip key: %w", ErrKeySize)
	}
	for _, k := range c.Keys {
		if len(k) != KeySize {
			return "", 0, fmt.Errorf("cluster config: %w", ErrKeySize)
		}
	}
	return host, int(port), nil
}

// Members returns the live members, this replica included, sorted by name.
func (m *Membership) Members() []Member {
	return slices.Clone(m.current.Load().members)
}

// Owner returns the member that owns cluster when the clusters in all (cluster
// is added when missing) are spread over the live members with a Ring, and the
// epoch that member claims it with (see the package documentation). Every
// replica with the same members and the same list computes the same owner.
// It returns the zero Member for an empty cluster name.
func (m *Membership) Owner(cluster string, all []string) (Member, uint64) {
	return m.current.Load().owner(cluster, all)
}

// Changes is signalled, without blocking and coalesced, whenever the members
// or their epochs change; read Members or Owner again when it fires.
func (m *Membership) Changes() <-chan struct{} { return m.changes }

// Broadcast queues msg to be gossiped to every other member. Delivery is
// best effort: each member receives it with high probability within a few
// gossip intervals, none is told it was lost, and a member that joins later
// never sees it. The sender's own handlers are not called. A message larger
// than MaxBroadcastSize is dropped and logged.
func (m *Membership) Broadcast(msg []byte) {
	if len(msg) == 0 {
		return
	}
	if len(msg) > MaxBroadcastSize {
		m.log.Warn("broadcast too large, dropped", logging.KeyCount, len(msg))
		return
	}
	m.queue.QueueBroadcast(broadcast(bytes.Clone(msg)))
	m.queue.Prune(maxQueuedBroadcasts) // nobody to take them while we are alone
}

// OnMessage adds fn to the handlers of broadcasts from other members. Handlers
// run one at a time on one goroutine, in the order added; a slow handler
// delays the others, and while it is behind new messages are dropped. msg
// must not be modified.
func (m *Membership) OnMessage(fn func(msg []byte)) { m.inbox.add(fn) }

// Leave tells the other members this replica is leaving, waiting at most
// timeout for that message to go out, then stops gossip and the goroutines of
// the Membership. Calling it again, or after the context of Start ended, does
// nothing more and returns the first result.
func (m *Membership) Leave(timeout time.Duration) error {
	err := m.stop(true, timeout)
	<-m.life.watcherDone
	return err
}

// stop ends the workers, then leaves (if asked) and shuts memberlist down.
// Without leave the others find this replica dead by probing, as after a crash.
func (m *Membership) stop(leave bool, timeout time.Duration) error {
	m.life.once.Do(func() {
		m.life.cancel()
		_ = m.life.workers.Wait() // workers end with their context and return nil
		var errs []error
		if leave {
			if err := m.ml.Leave(timeout); err != nil {
				errs = append(errs, fmt.Errorf("leave cluster: %w", err))
			}
		}
		if err := m.ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("shut down gossip: %w", err))
		}
		m.life.err = errors.Join(errs...)
		close(m.life.stopped)
		m.log.Info("gossip stopped")
	})
	return m.life.err
}

// watch is the one goroutine that turns membership events into views.
func (m *Membership) watch(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.tracker.notify:
			m.refresh()
		}
	}
}

// refresh builds the view from what the tracker recorded. When the member set
// changed it advances the epoch counter and publishes it. Only watch (and
// Start, before watch runs) calls it.
func (m *Membership) refresh() {
	nodes, changed, maxSeen := m.tracker.take()
	counter := m.meta.counter.Load()
	if changed {
		counter = max(counter, maxSeen) + 1
		m.meta.counter.Store(counter)
	}
	v := buildView(m.name, m.meta.grpc, counter, nodes)
	old := m.current.Swap(v)
	if !v.equal(old) {
		m.logChanges(old, v, counter)
		select {
		case m.changes <- struct{}{}:
		default:
		}
	}
	if changed {
		if err := m.ml.UpdateNode(updateTimeout); err != nil {
			m.log.Debug("publish epoch", keyEpoch, counter, logging.Err(err))
		}
	}
}

func (m *Membership) logChanges(old, v *view, counter uint64) {
	var before []Member
	if old != nil {
		before = old.members
	}
	for _, mb := range v.members {
		if !slices.Contains(before, mb) && mb.Name != m.name {
			m.log.Info("replica joined", logging.KeyPeer, mb.Name, logging.KeyAddr, mb.GRPCAddr)
		}
	}
	for _, mb := range before {
		if !slices.Contains(v.members, mb) && mb.Name != m.name {
			m.log.Info("replica left", logging.KeyPeer, mb.Name, logging.KeyAddr, mb.GRPCAddr)
		}
	}
	m.log.Debug("membership view", logging.KeyCount, len(v.members), keyEpoch, counter)
}

// dispatch is the one goroutine that runs the OnMessage handlers.
func (m *Membership) dispatch(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg := <-m.inbox.ch:
			if n := m.inbox.dropped.Swap(0); n > 0 {
				m.log.Warn("broadcasts dropped, handlers too slow", logging.KeyCount, n)
			}
			for _, fn := range m.inbox.current() {
				fn(msg)
			}
		}
	}
}

// joinLoop joins the peers whenever this replica is alone: at start, until a
// peer answers, and later if every other member has gone (for instance after a
// partition outlasted memberlist's own reconnection).
func (m *Membership) joinLoop(ctx context.Context) error {
	if len(m.peers) == 0 {
		return nil
	}
	backoff := joinBackoffMin
	for {
		wait := joinCheckInterval
		if m.tracker.live.Load() <= 1 {
			if err := m.join(ctx); err == nil {
				backoff = joinBackoffMin
			} else {
				wait = backoff/2 + rand.N(backoff/2+1) // jitter: [backoff/2, backoff]
				backoff = min(2*backoff, joinBackoffMax)
				m.log.Info("no gossip peer reachable, retrying", logging.KeyDuration, wait, logging.Err(err))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// join tries each peer in turn until this replica sees another member; it
// returns why not otherwise. A peer that is this replica's own address counts
// for nothing.
func (m *Membership) join(ctx context.Context) error {
	var errs []error
	for _, p := range m.peers {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := m.ml.Join([]string{p}); err != nil {
			errs = append(errs, err) // memberlist's error names the peer
			continue
		}
		// Memberlist merged the peer's member list before Join returned; the
		// others are learnt from it.
		if n := m.tracker.live.Load(); n > 1 {
			m.log.Info("joined cluster", logging.KeyAddr, p, logging.KeyCount, n)
			return nil
		}
	}
	if len(errs) == 0 {
		return errors.New("peers answered but none is another member")
	}
	return joinErrors(errs)
}

// joinErrors flattens memberlist's multi-errors into one line for the log.
func joinErrors(errs []error) error {
	var msgs []string
	for _, err := range errs {
		var multi interface{ WrappedErrors() []error }
		if errors.As(err, &multi) {
			for _, e := range multi.WrappedErrors() {
				msgs = append(msgs, e.Error())
			}
			continue
		}
		msgs = append(msgs, err.Error())
	}
	return errors.New(strings.Join(msgs, "; "))
}

// gossipAddr is the address other replicas reach this one's gossip on.
func (m *Membership) gossipAddr() string { return m.addr }
