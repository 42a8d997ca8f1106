package server

import (
	"crypto/tls"
	"slices"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/cluster"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// This file makes the server one of several hub replicas: each cluster is owned by one live
// replica (Config.Ownership, a cluster.Ownership); an agent that reaches
// another replica is sent a Redirect to the owner, and when the members change the streams
// of clusters that moved are closed, so their agents reconnect and are redirected.

// replicaSet is this replica's view of the hub replicas (cluster.Membership).
type replicaSet interface {
	Local() cluster.Member
	Members() []cluster.Member
	Broadcast(msg []byte)
}

// HAConfig makes the server one of several hub replicas. A nil *HAConfig is a single hub:
// it owns every cluster and has no peers.
type HAConfig struct {
	Replicas replicaSet
	// PeerTLS is the client TLS configuration for calling the other replicas: a flotilla:hub
	// certificate issued by the shared CA, and that CA as roots. ServerName is set per peer.
	PeerTLS *tls.Config
	// PeerTimeout bounds each call to another replica (default 3s).
	PeerTimeout time.Duration
	// RegistryPull is how often the whole registry is pulled from every peer (default 10s).
	RegistryPull time.Duration
}

// ownerOf returns the owner of the cluster name. A single hub owns every cluster, with
// epoch 0.
func (s *Server) ownerOf(name string) (cluster.Owner, error) {
	now, err := s.cfg.Ownership.Now()
	if err != nil {
		return cluster.Owner{}, err
	}
	return now.Of(name), nil
}

// release gives up the clusters this replica no longer owns (cluster.Ownership.Release
// calls it with those it owns): their agents' streams close (the agents reconnect, are
// redirected, and nothing is removed from them) and their desired state is dropped
// (Fleet.Retain), together, so that no stream stays open here without the state it was
// aligned with.
func (s *Server) release(mine func(cluster string) bool) {
	s.mu.Lock()
	for c, st := range s.streams {
		if !mine(c) {
			st.cancel()
			s.log.Info("cluster owned by another replica now; stream closed", logging.KeyCluster, c)
		}
	}
	s.mu.Unlock()
	s.cfg.Fleet.Retain(mine)
}

// claim is the ownership check of a new agent stream, made once the stream is the cluster's
// current one here (so that a change of members after it finds the stream to close). When
// another replica owns the cluster it sends the agent a Redirect and returns done. Otherwise
// it returns the epoch to put in Welcome.
func (s *Server) claim(stream flotillav1.AgentService_ConnectServer, cluster string) (epoch uint64, done bool, err error) {
	o, err := s.ownerOf(cluster)
	if err != nil {
		return 0, true, toStatus(reword(err, "cluster registry unavailable"))
	}
	if o.Mine {
		return o.Epoch, false, nil
	}
	s.log.Info("agent redirected to the replica owning its cluster", logging.KeyCluster, cluster,
		logging.KeyPeer, o.Member.Name, logging.KeyAddr, o.Member.GRPCAddr)
	return 0, true, stream.Send(&flotillav1.HubMessage{Msg: &flotillav1.HubMessage_Redirect{Redirect: &flotillav1.Redirect{
		Address: o.Member.GRPCAddr, Epoch: o.Epoch, Replicas: s.replicaAddrs(),
	}}})
}

// replicaAddrs are the gRPC addresses of the live replicas, for Welcome and Redirect; none
// for a single hub.
func (s *Server) replicaAddrs() []string {
	if s.cfg.HA == nil {
		return nil
	}
	var out []string
	for _, m := range s.cfg.HA.Replicas.Members() {
		if m.GRPCAddr != "" {
			out = append(out, m.GRPCAddr)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// closeStream closes the cluster's stream here, if any.
func (s *Server) closeStream(cluster string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[cluster]; st != nil {
		st.cancel()
	}
}
