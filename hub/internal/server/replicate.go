package server

import (
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/replicate"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// This file carries the replication of the registry between hub replicas (hub/internal/
// replicate) over the server: broadcasts from cluster.Membership, and the whole registry in
// ExportRegistry (peers.go).

// newReplicator returns the replication of s's registry: broadcast to the other replicas
// when s is one of several, acting through s on what changes under it.
func newReplicator(s *Server) *replicate.Replicator {
	var bc interface{ Broadcast([]byte) }
	if s.cfg.HA != nil {
		bc = s.cfg.HA.Replicas
	}
	return replicate.New(s.cfg.Replication, s.pins, bc, replicate.Hooks{
		Owned:          s.cfg.Ownership.Owned,
		Revoked:        s.closeStream,
		Changed:        s.trigger,
		ConfirmRemoval: s.confirmRemoval,
	}, s.log)
}

// OnBroadcast applies a registry broadcast from another replica (register it with
// cluster.Membership.OnMessage). It ignores other broadcasts.
func (s *Server) OnBroadcast(msg []byte) { s.replicator.OnBroadcast(msg) }

// registryToProto and registryFromProto carry the registry in ExportRegistry.
func registryToProto(r replicate.Registry) *flotillav1.ExportRegistryResponse {
	clusters, tokens := r.Clusters, r.Tokens
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
	for _, p := range r.Pins {
		resp.Pins = append(resp.Pins, &flotillav1.RegistryPin{
			App: p.App, Cluster: p.Cluster, Revision: p.Revision, Actor: p.Actor, TimeUnixMs: p.Time.UnixMilli(), Cleared: p.Cleared,
		})
	}
	return resp
}

func registryFromProto(resp *flotillav1.ExportRegistryResponse) replicate.Registry {
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
	return replicate.Registry{Clusters: clusters, Tokens: tokens, Pins: pins}
}
