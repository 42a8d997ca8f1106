package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Sync asks the agents to apply an app now (for apps without automated sync, or to retry).
// Only the replica owning a cluster holds its desired state and its agent's stream, so the
// replica the operator asks requests the sync on the clusters it owns and forwards the request
// to the owner of the named cluster, or to every other replica for a selector or the whole
// fleet; it audits the request once, with every cluster that took it.
func (s *Server) Sync(ctx context.Context, req *flotillav1.SyncRequest) (*flotillav1.SyncResponse, error) {
	if req.App == "" {
		return nil, toStatus(invalidArgument("app is required"))
	}
	inSelector, err := s.selectClusters(req.Selector)
	if err != nil {
		return nil, toStatus(err)
	}
	clusters, err := s.syncHere(req, inSelector)
	if err != nil {
		return nil, toStatus(err)
	}
	if fromPeer(ctx) {
		return &flotillav1.SyncResponse{Clusters: clusters}, nil // this replica's share
	}
	forwarded, unreachable, err := s.syncOnPeers(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	clusters = append(clusters, forwarded...)
	slices.Sort(clusters)
	clusters = slices.Compact(clusters)
	if len(clusters) == 0 {
		where := "any cluster"
		if req.Cluster != "" {
			where = "cluster " + req.Cluster
		}
		if len(unreachable) > 0 {
			return nil, toStatus(fmt.Errorf("app %q: no rendered desired state on %s here or on the hub replicas that answered; %s did not answer",
				req.App, where, strings.Join(unreachable, ", ")))
		}
		return nil, toStatus(fmt.Errorf("app %q has %w on %s", req.App, fleet.ErrNoDesiredState, where))
	}
	s.audit(callerFrom(ctx).Name, "sync", req.App, fmt.Sprintf("clusters=%v confirmPrune=%v", clusters, req.ConfirmPrune))
	return &flotillav1.SyncResponse{Clusters: clusters, UnreachablePeers: unreachable}, nil
}

// syncHere requests the sync on the clusters this replica owns that req names, once every one
// of them passed the revision check, and returns them.
func (s *Server) syncHere(req *flotillav1.SyncRequest, inSelector map[string]bool) ([]string, error) {
	mine := s.cfg.Ownership.Owned()
	var picked []string
	for _, cluster := range s.cfg.Fleet.ClusterNames() {
		if (req.Cluster != "" && cluster != req.Cluster) || (inSelector != nil && !inSelector[cluster]) || !mine(cluster) {
			continue
		}
		if req.Revision != "" {
			d := s.cfg.Fleet.DesiredOf(cluster, req.App)
			if d == nil {
				continue
			}
			if !strings.HasPrefix(d.Revision, req.Revision) {
				return nil, fmt.Errorf("cluster %s: %w", cluster, &fleet.RevisionError{App: req.App, Desired: d.Revision, Asked: req.Revision})
			}
		}
		picked = append(picked, cluster)
	}
	var out []string
	for _, cluster := range picked {
		if s.cfg.Fleet.RequestSync(cluster, req.App, req.ConfirmPrune) {
			out = append(out, cluster)
		}
	}
	return out, nil
}

// syncShare is one peer's answer to a forwarded sync: the clusters that took it, or why the
// peer refused it (a revision check).
type syncShare struct {
	clusters []string
	refused  error
}

// syncOnPeers forwards req to the owner of req.Cluster, or, without a cluster, to every other
// replica, and returns the clusters that took it and the replicas that did not answer. A
// refusal by a peer is the error.
func (s *Server) syncOnPeers(ctx context.Context, req *flotillav1.SyncRequest) (clusters, unreachable []string, err error) {
	if s.cfg.HA == nil {
		return nil, nil, nil
	}
	call := func(ctx context.Context, conn *grpc.ClientConn) (syncShare, error) {
		resp, err := flotillav1.NewOperatorClient(conn).Sync(ctx, req)
		switch status.Code(err) {
		case codes.OK:
			return syncShare{clusters: resp.Clusters}, nil
		case codes.FailedPrecondition, codes.InvalidArgument:
			return syncShare{refused: err}, nil
		case codes.NotFound:
			return syncShare{}, nil // a replica that predates forwarding: none there
		}
		return syncShare{}, err
	}
	var answers []peerAnswer[syncShare]
	if req.Cluster != "" {
		o, err := s.ownerOf(req.Cluster)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster registry: %w", err)
		}
		if o.Mine {
			return nil, nil, nil
		}
		share, err := callPeer(ctx, s, o.Member, call)
		if err != nil {
			s.log.Warn("hub replica did not answer", logging.KeyPeer, o.Member.Name, logging.KeyAddr, o.Member.GRPCAddr, logging.Err(err))
			return nil, []string{o.Member.Name}, nil
		}
		answers = []peerAnswer[syncShare]{{peer: o.Member, resp: share}}
	} else {
		answers, unreachable = askPeers(ctx, s, call)
	}
	for _, a := range answers {
		if a.resp.refused != nil {
			return nil, nil, a.resp.refused
		}
		clusters = append(clusters, a.resp.clusters...)
	}
	return clusters, unreachable, nil
}
