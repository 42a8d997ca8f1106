package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flotilla-dev/flotilla/hub/internal/cluster"
	"github.com/flotilla-dev/flotilla/hub/internal/opclient"
	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// This file is what hub replicas ask of each other, with their flotilla:hub certificates:
// the whole registry (ExportRegistry, pulled on every change of members and every
// RegistryPull), the fleet-wide operator queries, which the replica an operator asks answers
// by gathering each peer's share, and operator syncs, which it forwards to the owners of the
// clusters (sync.go). A peer that does not answer in time is named in the response, never
// silently left out.

const (
	defaultPeerTimeout  = 3 * time.Second
	defaultRegistryPull = 10 * time.Second
)

// peerCallable are the Operator methods another replica may call: the queries a replica
// gathers from its peers, and Sync, which it forwards to them. A replica answers them with
// its own share only, and does not audit a forwarded sync (the replica the operator asked
// does).
var peerCallable = map[string]bool{
	"/flotilla.v1.Operator/Status":       true,
	"/flotilla.v1.Operator/StatusPages":  true,
	"/flotilla.v1.Operator/FleetPage":    true,
	"/flotilla.v1.Operator/ListClusters": true,
	"/flotilla.v1.Operator/History":      true,
	"/flotilla.v1.Operator/Sync":         true,
	// The replica that coordinates an app's rollouts answers these for the others.
	"/flotilla.v1.Operator/RolloutStatus": true,
	"/flotilla.v1.Operator/RolloutAction": true,
}

// peerMayCall reports whether a caller of role may call fullMethod, which needs another role.
func peerMayCall(role, fullMethod string) bool {
	return role == pki.RoleHub && peerCallable[fullMethod]
}

// fromPeer reports whether the request comes from another hub replica.
func fromPeer(ctx context.Context) bool { return callerFrom(ctx).Role == pki.RoleHub }

func newPeerConns(ha *HAConfig) *peerConns {
	if ha == nil || ha.PeerTLS == nil {
		return &peerConns{tls: &tls.Config{MinVersion: tls.VersionTLS13}}
	}
	return &peerConns{tls: ha.PeerTLS}
}

// peerConns keeps one client connection per peer address.
type peerConns struct {
	tls *tls.Config

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (p *peerConns) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.conns[addr]; c != nil {
		return c, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("peer address %q: %w", addr, err)
	}
	cfg := p.tls.Clone()
	cfg.ServerName = host
	cfg.NextProtos = []string{opclient.PriorityALPN} // ahead of agents' handshakes (handshakes.go)
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize+64<<10)))
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", addr, err)
	}
	if p.conns == nil {
		p.conns = map[string]*grpc.ClientConn{}
	}
	p.conns[addr] = c
	return c, nil
}

// retain closes the connections to addresses no longer among the members.
func (p *peerConns) retain(addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.conns {
		if !slices.Contains(addrs, a) {
			_ = c.Close()
			delete(p.conns, a)
		}
	}
}

func (p *peerConns) close() { p.retain(nil) }

// peerAnswer is one peer's answer to a gathered query.
type peerAnswer[T any] struct {
	peer cluster.Member
	resp T
}

// askPeers calls every other live replica at once, each bounded by PeerTimeout, and returns
// the answers and the names of the peers that did not answer.
func askPeers[T any](ctx context.Context, s *Server, call func(context.Context, *grpc.ClientConn) (T, error)) ([]peerAnswer[T], []string) {
	local := s.cfg.HA.Replicas.Local().Name
	var (
		mu          sync.Mutex
		answers     []peerAnswer[T]
		unreachable []string
		wg          sync.WaitGroup
	)
	for _, m := range s.cfg.HA.Replicas.Members() {
		if m.Name == local {
			continue
		}
		wg.Go(func() {
			resp, err := callPeer(ctx, s, m, call)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unreachable = append(unreachable, m.Name)
				s.log.Warn("hub replica did not answer", logging.KeyPeer, m.Name, logging.KeyAddr, m.GRPCAddr, logging.Err(err))
				return
			}
			answers = append(answers, peerAnswer[T]{peer: m, resp: resp})
		})
	}
	wg.Wait()
	slices.Sort(unreachable)
	return answers, unreachable
}

func callPeer[T any](ctx context.Context, s *Server, m cluster.Member, call func(context.Context, *grpc.ClientConn) (T, error)) (T, error) {
	var zero T
	conn, err := s.peers.get(m.GRPCAddr)
	if err != nil {
		return zero, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.peerTimeout())
	defer cancel()
	return call(ctx, conn)
}

func (s *Server) peerTimeout() time.Duration {
	if t := s.cfg.HA.PeerTimeout; t > 0 {
		return t
	}
	return defaultPeerTimeout
}

// ExportRegistry returns this replica's cluster registry, live join tokens and pin records,
// cleared ones included (Peer service, flotilla:hub callers only).
func (s *Server) ExportRegistry(ctx context.Context, _ *flotillav1.ExportRegistryRequest) (*flotillav1.ExportRegistryResponse, error) {
	reg, err := s.replicator.Export()
	if err != nil {
		return nil, toStatus(err)
	}
	return registryToProto(reg), nil
}

// pullRegistry merges every peer's registry into this one.
func (s *Server) pullRegistry(ctx context.Context) {
	answers, _ := askPeers(ctx, s, func(ctx context.Context, conn *grpc.ClientConn) (*flotillav1.ExportRegistryResponse, error) {
		return flotillav1.NewPeerClient(conn).ExportRegistry(ctx, &flotillav1.ExportRegistryRequest{})
	})
	for _, a := range answers {
		if n := s.replicator.Merge(a.peer.Name, registryFromProto(a.resp)); n > 0 {
			s.log.Info("registry records pulled from a replica", logging.KeyPeer, a.peer.Name, logging.KeyCount, n)
		}
	}
}

// RunReplica keeps this replica in step with the others until ctx ends: on every change of
// members (changes, from cluster.Membership.Changes) it closes the streams of clusters that
// moved away, drops their desired state and renders the ones that moved here; it pulls the
// registry from every peer then and every RegistryPull. It returns nil on a single hub.
func (s *Server) RunReplica(ctx context.Context, changes <-chan struct{}) error {
	if s.cfg.HA == nil {
		return nil
	}
	defer s.peers.close()
	pull := make(chan struct{}, 1)
	every := s.cfg.HA.RegistryPull
	if every <= 0 {
		every = defaultRegistryPull
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-changes:
			}
			s.cfg.Ownership.Release()
			s.peers.retain(s.replicaAddrs())
			if s.cfg.Reconcile != nil {
				s.cfg.Reconcile.Trigger()
			}
			select {
			case pull <- struct{}{}:
			default:
			}
		}
	})
	g.Go(func() error {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.pullRegistry(ctx)
			select {
			case <-ctx.Done():
				return nil
			case <-pull:
			case <-t.C:
			}
		}
	})
	return g.Wait()
}

// gatherStatus answers Status for the whole fleet: the rows of the clusters this replica
// owns, each peer's rows of the clusters it owns, and, for the clusters of a peer that did
// not answer, what this replica last knew of them. Another replica asking gets this
// replica's share only.
func (s *Server) gatherStatus(ctx context.Context, req *flotillav1.StatusRequest, local *flotillav1.StatusResponse) (*flotillav1.StatusResponse, error) {
	if s.cfg.HA == nil {
		return local, nil
	}
	owners, err := s.cfg.Ownership.Now()
	if err != nil {
		return nil, fmt.Errorf("cluster registry: %w", err)
	}
	if fromPeer(ctx) {
		local.Items = slices.DeleteFunc(local.Items, func(it *flotillav1.AppClusterStatus) bool { return !owners.Mine(it.Cluster) })
		return local, nil
	}
	answers, unreachable := askPeers(ctx, s, func(ctx context.Context, conn *grpc.ClientConn) (*flotillav1.StatusResponse, error) {
		return flotillav1.NewOperatorClient(conn).Status(ctx, req)
	})
	rows := map[[2]string]*flotillav1.AppClusterStatus{}
	add := func(it *flotillav1.AppClusterStatus) {
		k := [2]string{it.Cluster, it.App}
		if old := rows[k]; old == nil || it.LastSeenUnixMs > old.LastSeenUnixMs {
			rows[k] = it
		}
	}
	for _, it := range local.Items {
		if owners.Mine(it.Cluster) || slices.Contains(unreachable, owners.Of(it.Cluster).Member.Name) {
			add(it)
		}
	}
	for _, a := range answers {
		for _, it := range a.resp.Items {
			add(it)
		}
	}
	resp := &flotillav1.StatusResponse{UnreachablePeers: unreachable}
	for _, it := range rows {
		resp.Items = append(resp.Items, it)
	}
	slices.SortFunc(resp.Items, func(a, b *flotillav1.AppClusterStatus) int {
		return cmpPair(a.Cluster, a.App, b.Cluster, b.App)
	})
	if req.PageSize > 0 {
		reached := []string{local.NextAfterCluster}
		for _, a := range answers {
			reached = append(reached, a.resp.NextAfterCluster)
		}
		resp.Items, resp.NextAfterCluster = cutStatusPage(resp.Items, req.PageSize, reached)
	}
	return resp, nil
}

// gatherClusters answers ListClusters for the whole fleet: every cluster of the registry
// here, with the link state reported by the replica that owns it (this one's own view for a
// peer that did not answer). Another replica asking gets the clusters this one owns.
func (s *Server) gatherClusters(ctx context.Context, local *flotillav1.ListClustersResponse) (*flotillav1.ListClustersResponse, error) {
	if s.cfg.HA == nil {
		return local, nil
	}
	owners, err := s.cfg.Ownership.Now()
	if err != nil {
		return nil, fmt.Errorf("cluster registry: %w", err)
	}
	for _, it := range local.Items {
		it.Replica = owners.Of(it.Name).Member.Name
	}
	if fromPeer(ctx) {
		local.Items = slices.DeleteFunc(local.Items, func(it *flotillav1.Cluster) bool { return !owners.Mine(it.Name) })
		return local, nil
	}
	answers, unreachable := askPeers(ctx, s, func(ctx context.Context, conn *grpc.ClientConn) (*flotillav1.ListClustersResponse, error) {
		return flotillav1.NewOperatorClient(conn).ListClusters(ctx, &flotillav1.ListClustersRequest{})
	})
	byName := map[string]*flotillav1.Cluster{}
	for _, it := range local.Items {
		byName[it.Name] = it
	}
	for _, a := range answers {
		for _, it := range a.resp.Items {
			old := byName[it.Name]
			switch {
			case old == nil:
			case old.State == "Revoked" || it.State == "Revoked":
				it.State, it.Connected = "Revoked", false
			case owners.Mine(it.Name) && !it.Connected:
				continue // this replica owns it: its view wins over a stale claim
			}
			byName[it.Name] = it
		}
	}
	resp := &flotillav1.ListClustersResponse{UnreachablePeers: unreachable}
	for _, it := range byName {
		resp.Items = append(resp.Items, it)
	}
	slices.SortFunc(resp.Items, func(a, b *flotillav1.Cluster) int { return strings.Compare(a.Name, b.Name) })
	return resp, nil
}

// gatherHistory answers History for the whole fleet: every replica records the syncs of the
// clusters it owned at the time, so the history is the union of theirs, newest first.
func (s *Server) gatherHistory(ctx context.Context, req *flotillav1.HistoryRequest, limit int, local *flotillav1.HistoryResponse) (*flotillav1.HistoryResponse, error) {
	if s.cfg.HA == nil || fromPeer(ctx) {
		return local, nil
	}
	answers, unreachable := askPeers(ctx, s, func(ctx context.Context, conn *grpc.ClientConn) (*flotillav1.HistoryResponse, error) {
		return flotillav1.NewOperatorClient(conn).History(ctx, req)
	})
	items := slices.Clone(local.Items)
	for _, a := range answers {
		items = append(items, a.resp.Items...)
	}
	slices.SortStableFunc(items, func(a, b *flotillav1.HistoryEntry) int {
		if c := cmp.Compare(b.TimeUnixMs, a.TimeUnixMs); c != 0 {
			return c
		}
		return cmpPair(a.Cluster, a.App, b.Cluster, b.App)
	})
	items = slices.CompactFunc(items, func(a, b *flotillav1.HistoryEntry) bool {
		return a.TimeUnixMs == b.TimeUnixMs && a.Cluster == b.Cluster && a.App == b.App && a.Revision == b.Revision && a.Result == b.Result
	})
	if len(items) > limit {
		items = items[:limit]
	}
	return &flotillav1.HistoryResponse{Items: items, UnreachablePeers: unreachable}, nil
}

func cmpPair(a1, a2, b1, b2 string) int {
	if c := strings.Compare(a1, b1); c != 0 {
		return c
	}
	return strings.Compare(a2, b2)
}
