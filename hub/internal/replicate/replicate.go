// Package replicate keeps the cluster registry, the join tokens and the operator pins the
// same on every hub replica. Every change (cluster added or revoked, token created or
// redeemed, pin set or cleared) is broadcast by gossip as one small message carrying the
// whole record; a replica folds what it receives into its store with merges that commute
// (store.MergeCluster, store.MergeToken, store.MergePin), so duplicates and any order give the
// same registry. Broadcasts are best effort and a replica that joins later never sees them:
// every replica also pulls the whole registry (Registry) from its peers, which the server
// carries over gRPC.
package replicate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/cluster"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Store is what replication needs of the store (store.Store).
type Store interface {
	GetCluster(name string) (store.Cluster, bool, error)
	ListClusters() ([]store.Cluster, error)
	GetToken(id string) (store.JoinToken, bool, error)
	ListTokens(now time.Time) ([]store.JoinToken, error)
	MergeToken(t store.JoinToken) (bool, error)
	MergeCluster(c store.Cluster) (changed, revoked bool, err error)
}

// pinRecords are the operator pins (pins.Pins).
type pinRecords interface {
	Merge(records []store.Pin, owned func(cluster string) bool) (n int, mine bool)
	Records() ([]store.Pin, error)
}

// broadcaster sends a message to every other replica (cluster.Membership).
type broadcaster interface {
	Broadcast(msg []byte)
}

// Hooks are what the replica does when the registry changes under it. Each may be nil.
type Hooks struct {
	// Owned says, over one reading of the registry, which clusters this replica owns.
	Owned func() func(cluster string) bool
	// Revoked closes the agent stream of a cluster revoked on another replica.
	Revoked func(cluster string)
	// Changed asks for a new round of rendering: a cluster or one of its pins changed.
	Changed func()
	// ConfirmRemoval lets a held removal of apps go ahead, confirmed on another replica.
	ConfirmRemoval func(apps []string)
}

// Replicator broadcasts the changes made on this replica and folds in those of the others.
type Replicator struct {
	store Store
	pins  pinRecords
	bc    broadcaster // nil for a hub that runs alone: nothing to replicate
	hooks Hooks
	log   *slog.Logger
}

// New returns a Replicator over st and pins, broadcasting with bc (nil for a single hub).
func New(st Store, pins pinRecords, bc broadcaster, hooks Hooks, log *slog.Logger) *Replicator {
	if log == nil {
		log = slog.Default()
	}
	return &Replicator{store: st, pins: pins, bc: bc, hooks: hooks, log: log}
}

// prefix starts every registry broadcast; other broadcasts are ignored.
var prefix = []byte("flotilla.registry.v1 ")

// message is one registry broadcast: one of the fields is set.
type message struct {
	Cluster *store.Cluster   `json:"cluster,omitempty"`
	Token   *store.JoinToken `json:"token,omitempty"`
	Pin     *store.Pin       `json:"pin,omitempty"`
	// ConfirmRemoval carries an operator's confirmation of a held mass removal of apps. It is
	// not stored: a replica that misses it keeps holding until confirmed there too.
	ConfirmRemoval []string `json:"confirmRemoval,omitempty"`
}

// encode encodes m. A cluster whose labels make the message too large for one gossip packet
// goes without them (and without its creation time, so that the labels of the full record,
// pulled later, win the merge); its revocation is what must travel fast.
func encode(m message) ([]byte, error) {
	b, err := marshal(m)
	if err != nil || len(b) <= cluster.MaxBroadcastSize || m.Cluster == nil {
		return b, err
	}
	slim := *m.Cluster
	slim.Labels, slim.CreatedAt = nil, time.Time{}
	return marshal(message{Cluster: &slim})
}

func marshal(m message) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode registry broadcast: %w", err)
	}
	return append(bytes.Clone(prefix), b...), nil
}

// decode decodes a broadcast; ok is false for one that is not a registry message.
func decode(b []byte) (m message, ok bool, err error) {
	rest, found := bytes.CutPrefix(b, prefix)
	if !found {
		return message{}, false, nil
	}
	if err := json.Unmarshal(rest, &m); err != nil {
		return message{}, true, fmt.Errorf("decode registry broadcast: %w", err)
	}
	return m, true, nil
}

// Shared is the part of a cluster record that replicas share: the agent's version and last
// contact are each replica's own.
func Shared(c store.Cluster) store.Cluster {
	return store.Cluster{Name: c.Name, Labels: c.Labels, CreatedAt: c.CreatedAt, Revoked: c.Revoked}
}

// Cluster broadcasts the registry record of cluster name, as stored here.
func (r *Replicator) Cluster(name string) {
	if r.bc == nil {
		return
	}
	c, found, err := r.store.GetCluster(name)
	if err != nil || !found {
		r.log.Warn("cluster not replicated: not readable", logging.KeyCluster, name, logging.Err(err))
		return
	}
	rc := Shared(c)
	r.broadcast(message{Cluster: &rc})
}

// Token broadcasts the join token id, as stored here (its secret hash, never the secret).
func (r *Replicator) Token(id string) {
	if r.bc == nil {
		return
	}
	t, found, err := r.store.GetToken(id)
	if err != nil || !found {
		r.log.Warn("join token not replicated: not readable", logging.Err(err))
		return
	}
	r.broadcast(message{Token: &t})
}

// Pin broadcasts a change of a pin made here.
func (r *Replicator) Pin(p store.Pin) {
	if r.bc == nil {
		return
	}
	r.broadcast(message{Pin: &p})
}

// ConfirmRemoval broadcasts an operator's confirmation of the held removal of apps.
func (r *Replicator) ConfirmRemoval(apps []string) {
	if r.bc == nil {
		return
	}
	r.broadcast(message{ConfirmRemoval: apps})
}

func (r *Replicator) broadcast(m message) {
	b, err := encode(m)
	if err != nil {
		r.log.Warn("registry change not broadcast", logging.Err(err))
		return
	}
	r.bc.Broadcast(b)
}

// OnBroadcast applies a registry broadcast from another replica (register it with
// cluster.Membership.OnMessage). It ignores other broadcasts.
func (r *Replicator) OnBroadcast(msg []byte) {
	m, ok, err := decode(msg)
	if !ok {
		return
	}
	if err != nil {
		r.log.Warn("registry broadcast dropped", logging.Err(err))
		return
	}
	if m.Cluster != nil {
		r.mergeCluster(*m.Cluster)
	}
	if m.Token != nil {
		if _, err := r.store.MergeToken(*m.Token); err != nil {
			r.log.Warn("replicated join token not stored", logging.Err(err))
		}
	}
	if m.Pin != nil {
		r.mergePins([]store.Pin{*m.Pin})
	}
	if len(m.ConfirmRemoval) > 0 {
		r.log.Warn("held removal confirmed on another replica", logging.KeyCount, len(m.ConfirmRemoval))
		if r.hooks.ConfirmRemoval != nil {
			r.hooks.ConfirmRemoval(m.ConfirmRemoval)
		}
	}
}

// Registry is what replicas pull from each other: the cluster registry (as Shared), the live
// join tokens and every pin record, cleared ones included.
type Registry struct {
	Clusters []store.Cluster
	Tokens   []store.JoinToken
	Pins     []store.Pin
}

// Export returns this replica's registry.
func (r *Replicator) Export() (Registry, error) {
	clusters, err := r.store.ListClusters()
	if err != nil {
		return Registry{}, fmt.Errorf("cluster registry: %w", err)
	}
	for i := range clusters {
		clusters[i] = Shared(clusters[i])
	}
	tokens, err := r.store.ListTokens(time.Now())
	if err != nil {
		return Registry{}, fmt.Errorf("join tokens: %w", err)
	}
	pins, err := r.pins.Records()
	if err != nil {
		return Registry{}, fmt.Errorf("pins: %w", err)
	}
	return Registry{Clusters: clusters, Tokens: tokens, Pins: pins}, nil
}

// Merge folds the registry of the replica peer into this one and returns how many records
// changed.
func (r *Replicator) Merge(peer string, reg Registry) int {
	n := 0
	for _, c := range reg.Clusters {
		if r.mergeCluster(c) {
			n++
		}
	}
	for _, t := range reg.Tokens {
		changed, err := r.store.MergeToken(t)
		if err != nil {
			r.log.Warn("replicated join token not stored", logging.KeyPeer, peer, logging.Err(err))
		} else if changed {
			n++
		}
	}
	return n + r.mergePins(reg.Pins)
}

// mergePins folds pin changes from another replica into the store and the fleet; when one
// concerns a cluster this replica owns, the reconciler renders it again at once, so that its
// agent gets the pinned revision (or Git's again) promptly. It returns how many changed.
func (r *Replicator) mergePins(records []store.Pin) int {
	owned := func(string) bool { return true }
	if r.hooks.Owned != nil {
		owned = r.hooks.Owned()
	}
	n, mine := r.pins.Merge(records, owned)
	if mine {
		r.changed()
	}
	return n
}

// mergeCluster folds a cluster record from another replica into the registry and acts on a
// revocation at once: the agent's stream here closes and the cluster is no longer rendered.
func (r *Replicator) mergeCluster(c store.Cluster) bool {
	changed, revoked, err := r.store.MergeCluster(Shared(c))
	if err != nil {
		r.log.Warn("replicated cluster not stored", logging.KeyCluster, c.Name, logging.Err(err))
		return false
	}
	if revoked {
		if r.hooks.Revoked != nil {
			r.hooks.Revoked(c.Name)
		}
		r.log.Warn("cluster revoked on another replica", logging.KeyCluster, c.Name)
	}
	if changed {
		r.changed()
	}
	return changed
}

func (r *Replicator) changed() {
	if r.hooks.Changed != nil {
		r.hooks.Changed()
	}
}
