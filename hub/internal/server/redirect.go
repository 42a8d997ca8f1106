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
// replica (cluster.Membership.Owner over every registered cluster); an agent that reaches
// another replica is sent a Redirect to the owner, and when the members change the streams
// of clusters that moved are closed, so their agents reconnect and are redirected.

// replicaSet is this replica's view of the hub replicas (cluster.Membership).
type replicaSet interface {
	Local() cluster.Member
	Members() []cluster.Member
	Owner(cluster string, all []string) (cluster.Member, uint64)
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

// owner is who owns a cluster and the epoch of that claim; mine when it is this replica.
type owner struct {
	member cluster.Member
	epoch  uint64
	mine   bool
}

// ownerOf returns the owner of cluster. A single hub owns every cluster, with epoch 0.
func (s *Server) ownerOf(cluster string) (owner, error) {
	if s.cfg.HA == nil {
		return owner{mine: true}, nil
	}
	keys, err := s.clusterKeys()
	if err != nil {
		return owner{}, err
	}
	return s.ownerIn(cluster, keys), nil
}

func (s *Server) ownerIn(cluster string, keys []string) owner {
	m, epoch := s.cfg.HA.Replicas.Owner(cluster, keys)
	return owner{member: m, epoch: epoch, mine: m.Name == "" || m.Name == s.cfg.HA.Replicas.Local().Name}
}

// clusterKeys are the clusters spread over the replicas: every registered cluster, revoked
// ones included, so that a revocation moves no other cluster. Every replica with the same
// registry and members computes the same owners.
func (s *Server) clusterKeys() ([]string, error) {
	list, err := s.cfg.Store.ListClusters()
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(list))
	for i, c := range list {
		keys[i] = c.Name
	}
	return keys, nil
}

// Owned returns a function reporting whether this replica owns a cluster, over one reading
// of the registry; on a single hub it is always true. The notifier watches only the clusters
// it accepts. While the registry cannot be read every cluster counts as owned: that renders
// more than needed, but drops no state (agents are not served meanwhile: claim fails).
func (s *Server) Owned() func(cluster string) bool {
	if s.cfg.HA == nil {
		return func(string) bool { return true }
	}
	keys, err := s.clusterKeys()
	if err != nil {
		s.log.Warn("cluster registry unreadable; every cluster counts as owned here", logging.Err(err))
		return func(string) bool { return true }
	}
	return func(c string) bool { return s.ownerIn(c, keys).mine }
}

// Release gives up the clusters this replica no longer owns, over one reading of the owners,
// which it returns: their agents' streams close (the agents reconnect, are redirected, and
// nothing is removed from them) and their desired state is dropped (Fleet.Retain), together,
// so that no stream stays open here without the state it was aligned with. The reconciler
// renders only the clusters it accepts. On a single hub it does nothing and owns them all.
func (s *Server) Release() func(cluster string) bool {
	mine := s.Owned()
	if s.cfg.HA == nil {
		return mine
	}
	s.mu.Lock()
	for c, st := range s.streams {
		if !mine(c) {
			st.cancel()
			s.log.Info("cluster owned by another replica now; stream closed", logging.KeyCluster, c)
		}
	}
	s.mu.Unlock()
	s.cfg.Fleet.Retain(mine)
	return mine
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
	if o.mine {
		return o.epoch, false, nil
	}
	s.log.Info("agent redirected to the replica owning its cluster", logging.KeyCluster, cluster,
		logging.KeyPeer, o.member.Name, logging.KeyAddr, o.member.GRPCAddr)
	return 0, true, stream.Send(&flotillav1.HubMessage{Msg: &flotillav1.HubMessage_Redirect{Redirect: &flotillav1.Redirect{
		Address: o.member.GRPCAddr, Epoch: o.epoch, Replicas: s.replicaAddrs(),
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
