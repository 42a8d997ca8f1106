package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/cluster"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// This file replicates the cluster registry, the join tokens and the operator pins between
// hub replicas. Every change (cluster added or revoked, token created or redeemed, pin set or
// cleared) is broadcast by gossip as one small message carrying the whole record; a replica
// folds what it receives into its store with merges that commute (store.MergeCluster,
// store.MergeToken, store.MergePin), so duplicates and any order give the same registry.
// Broadcasts are best effort and a replica that joins later never sees them: every replica
// also pulls the whole registry from its peers (peers.go).

// registryPrefix starts every registry broadcast; other broadcasts are ignored.
var registryPrefix = []byte("flotilla.registry.v1 ")

// registryMsg is one registry broadcast: one of the fields is set.
type registryMsg struct {
	Cluster *store.Cluster   `json:"cluster,omitempty"`
	Token   *store.JoinToken `json:"token,omitempty"`
	Pin     *store.Pin       `json:"pin,omitempty"`
	// ConfirmRemoval carries an operator's confirmation of a held mass removal of apps. It is
	// not stored: a replica that misses it keeps holding until confirmed there too.
	ConfirmRemoval []string `json:"confirmRemoval,omitempty"`
}

// encodeRegistryMsg encodes m. A cluster whose labels make the message too large for one
// gossip packet goes without them (and without its creation time, so that the labels of the
// full record, pulled later, win the merge); its revocation is what must travel fast.
func encodeRegistryMsg(m registryMsg) ([]byte, error) {
	b, err := marshalRegistryMsg(m)
	if err != nil || len(b) <= cluster.MaxBroadcastSize || m.Cluster == nil {
		return b, err
	}
	slim := *m.Cluster
	slim.Labels, slim.CreatedAt = nil, time.Time{}
	return marshalRegistryMsg(registryMsg{Cluster: &slim})
}

func marshalRegistryMsg(m registryMsg) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode registry broadcast: %w", err)
	}
	return append(bytes.Clone(registryPrefix), b...), nil
}

// decodeRegistryMsg decodes a broadcast; ok is false for one that is not a registry message.
func decodeRegistryMsg(b []byte) (m registryMsg, ok bool, err error) {
	rest, found := bytes.CutPrefix(b, registryPrefix)
	if !found {
		return registryMsg{}, false, nil
	}
	if err := json.Unmarshal(rest, &m); err != nil {
		return registryMsg{}, true, fmt.Errorf("decode registry broadcast: %w", err)
	}
	return m, true, nil
}

// replicatedCluster is the part of a cluster record that replicas share: the agent's version
// and last contact are each replica's own.
func replicatedCluster(c store.Cluster) store.Cluster {
	return store.Cluster{Name: c.Name, Labels: c.Labels, CreatedAt: c.CreatedAt, Revoked: c.Revoked}
}

// replicateCluster broadcasts the registry record of cluster, as stored here.
func (s *Server) replicateCluster(name string) {
	if s.cfg.HA == nil {
		return
	}
	c, found, err := s.cfg.Store.GetCluster(name)
	if err != nil || !found {
		s.log.Warn("cluster not replicated: not readable", logging.KeyCluster, name, logging.Err(err))
		return
	}
	rc := replicatedCluster(c)
	s.broadcast(registryMsg{Cluster: &rc})
}

// replicateToken broadcasts the join token id, as stored here (its secret hash, never the
// secret).
func (s *Server) replicateToken(id string) {
	if s.cfg.HA == nil {
		return
	}
	t, found, err := s.cfg.Replication.GetToken(id)
	if err != nil || !found {
		s.log.Warn("join token not replicated: not readable", logging.Err(err))
		return
	}
	s.broadcast(registryMsg{Token: &t})
}

// replicatePin broadcasts a change of a pin made here.
func (s *Server) replicatePin(p store.Pin) {
	if s.cfg.HA == nil {
		return
	}
	s.broadcast(registryMsg{Pin: &p})
}

func (s *Server) broadcast(m registryMsg) {
	b, err := encodeRegistryMsg(m)
	if err != nil {
		s.log.Warn("registry change not broadcast", logging.Err(err))
		return
	}
	s.cfg.HA.Replicas.Broadcast(b)
}

// OnBroadcast applies a registry broadcast from another replica (register it with
// cluster.Membership.OnMessage). It ignores other broadcasts.
func (s *Server) OnBroadcast(msg []byte) {
	m, ok, err := decodeRegistryMsg(msg)
	if !ok {
		return
	}
	if err != nil {
		s.log.Warn("registry broadcast dropped", logging.Err(err))
		return
	}
	if m.Cluster != nil {
		s.mergeCluster(*m.Cluster)
	}
	if m.Token != nil {
		if _, err := s.cfg.Replication.MergeToken(*m.Token); err != nil {
			s.log.Warn("replicated join token not stored", logging.Err(err))
		}
	}
	if m.Pin != nil {
		s.mergePins([]store.Pin{*m.Pin})
	}
	if len(m.ConfirmRemoval) > 0 {
		s.log.Warn("held removal confirmed on another replica", logging.KeyCount, len(m.ConfirmRemoval))
		s.confirmRemoval(m.ConfirmRemoval)
	}
}

// mergePins folds pin changes from another replica into the store and, when any changed,
// into the fleet; when one concerns a cluster this replica owns, the reconciler renders it
// again at once, so that its agent gets the pinned revision (or Git's again) promptly. It
// returns how many changed.
func (s *Server) mergePins(pins []store.Pin) int {
	n, mine := s.pins.Merge(pins, s.Owned())
	if mine && s.cfg.Reconcile != nil {
		s.cfg.Reconcile.Trigger()
	}
	return n
}

// mergeCluster folds a cluster record from another replica into the registry and acts on a
// revocation at once: the agent's stream here closes and the cluster is no longer rendered.
func (s *Server) mergeCluster(c store.Cluster) bool {
	changed, revoked, err := s.cfg.Replication.MergeCluster(replicatedCluster(c))
	if err != nil {
		s.log.Warn("replicated cluster not stored", logging.KeyCluster, c.Name, logging.Err(err))
		return false
	}
	if revoked {
		s.closeStream(c.Name)
		s.log.Warn("cluster revoked on another replica", logging.KeyCluster, c.Name)
	}
	if changed && s.cfg.Reconcile != nil {
		s.cfg.Reconcile.Trigger()
	}
	return changed
}

// replicaStore is what replication needs of the store beyond registry.
type replicaStore interface {
	GetToken(id string) (store.JoinToken, bool, error)
	ListTokens(now time.Time) ([]store.JoinToken, error)
	MergeToken(t store.JoinToken) (bool, error)
	MergeCluster(c store.Cluster) (changed, revoked bool, err error)
}

// registryState is what replicas exchange in ExportRegistry.
type registryState struct {
	clusters []store.Cluster
	tokens   []store.JoinToken
	pins     []store.Pin
}

// registryToProto and registryFromProto carry the registry in ExportRegistry.
func registryToProto(r registryState) *flotillav1.ExportRegistryResponse {
	clusters, tokens := r.clusters, r.tokens
	resp := &flotillav1.ExportRegistryResponse{}
	for _, c := range clusters {
		rc := &flotillav1.RegistryCluster{Name: c.Name, Labels: c.Labels, Revoked: c.Revoked}
		if !c.CreatedAt.IsZero() {
			rc.CreatedUnixMs = c.CreatedAt.UnixMilli()
		}
		resp.Clusters = append(resp.Clusters, rc)
	}
	for _, t := range tokens {
		rt := &flotillav1.RegistryToken{Id: t.ID, SecretHash: t.SecretHash, Cluster: t.Cluster, ExpiresUnixMs: t.ExpiresAt.UnixMilli()}
		if !t.UsedAt.IsZero() {
			rt.UsedUnixMs = t.UsedAt.UnixMilli()
		}
		resp.Tokens = append(resp.Tokens, rt)
	}
	for _, p := range r.pins {
		resp.Pins = append(resp.Pins, &flotillav1.RegistryPin{
			App: p.App, Cluster: p.Cluster, Revision: p.Revision, Actor: p.Actor, TimeUnixMs: p.Time.UnixMilli(), Cleared: p.Cleared,
		})
	}
	return resp
}

func registryFromProto(resp *flotillav1.ExportRegistryResponse) registryState {
	var clusters []store.Cluster
	for _, rc := range resp.GetClusters() {
		c := store.Cluster{Name: rc.Name, Labels: rc.Labels, Revoked: rc.Revoked}
		if rc.CreatedUnixMs > 0 {
			c.CreatedAt = time.UnixMilli(rc.CreatedUnixMs)
		}
		clusters = append(clusters, c)
	}
	var tokens []store.JoinToken
	for _, rt := range resp.GetTokens() {
		t := store.JoinToken{ID: rt.Id, SecretHash: rt.SecretHash, Cluster: rt.Cluster, ExpiresAt: time.UnixMilli(rt.ExpiresUnixMs)}
		if rt.UsedUnixMs > 0 {
			t.UsedAt = time.UnixMilli(rt.UsedUnixMs)
		}
		tokens = append(tokens, t)
	}
	var pins []store.Pin
	for _, rp := range resp.GetPins() {
		p := store.Pin{App: rp.App, Cluster: rp.Cluster, Revision: rp.Revision, Actor: rp.Actor, Cleared: rp.Cleared}
		if rp.TimeUnixMs > 0 {
			p.Time = time.UnixMilli(rp.TimeUnixMs) // without a time MergePin refuses it
		}
		pins = append(pins, p)
	}
	return registryState{clusters: clusters, tokens: tokens, pins: pins}
}
