package server

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

type pinStore interface {
	PutPin(p store.Pin) error
	DeletePin(app, cluster string) error
	ListPins() ([]store.Pin, error)
}

// Rollback pins an app to an earlier revision on the chosen clusters (it stays there, whatever
// Git's target revision does, until cleared), or clears pins. Every pin is audited.
func (s *Server) Rollback(ctx context.Context, req *flotillav1.RollbackRequest) (*flotillav1.RollbackResponse, error) {
	if req.App == "" {
		return nil, status.Error(codes.InvalidArgument, "app is required")
	}
	if !req.Clear && req.ToRevision == "" {
		return nil, status.Error(codes.InvalidArgument, "--to REVISION is required (or --clear)")
	}
	if !req.Clear && req.Cluster == "" && req.Selector == "" {
		return nil, status.Error(codes.InvalidArgument, "--cluster or --selector is required: a pin names its clusters")
	}
	known := false
	var targeted []string
	for _, a := range s.cfg.Fleet.Apps() {
		if a.Name == req.App {
			known, targeted = true, a.Clusters
		}
	}
	if !known {
		return nil, status.Errorf(codes.NotFound, "app %q is not known to the hub", req.App)
	}
	inSelector, err := s.selectClusters(req.Selector)
	if err != nil {
		return nil, err
	}
	var clusters []string
	for _, c := range targeted {
		if (req.Cluster == "" || c == req.Cluster) && (inSelector == nil || inSelector[c]) {
			clusters = append(clusters, c)
		}
	}
	if req.Clear {
		pins, err := s.pins().ListPins()
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "pins: %v", err)
		}
		clusters = clusters[:0]
		for _, p := range pins {
			if p.App == req.App && (req.Cluster == "" || p.Cluster == req.Cluster) && (inSelector == nil || inSelector[p.Cluster]) {
				clusters = append(clusters, p.Cluster)
			}
		}
	}
	if len(clusters) == 0 {
		return nil, status.Errorf(codes.NotFound, "app %q: no matching cluster (it targets %s)", req.App, strings.Join(targeted, ", "))
	}
	sort.Strings(clusters)
	actor := callerFrom(ctx).Name
	for _, c := range clusters {
		if req.Clear {
			err = s.pins().DeletePin(req.App, c)
		} else {
			err = s.pins().PutPin(store.Pin{App: req.App, Cluster: c, Revision: req.ToRevision, Actor: actor, Time: time.Now()})
		}
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "pin: %v", err)
		}
	}
	if err := s.reloadPins(); err != nil {
		return nil, status.Errorf(codes.Unavailable, "pins: %v", err)
	}
	if req.Clear {
		s.audit(actor, "rollback.clear", req.App, fmt.Sprintf("clusters=%v", clusters))
	} else {
		s.audit(actor, "rollback", req.App, fmt.Sprintf("to=%s clusters=%v", req.ToRevision, clusters))
	}
	if s.cfg.Reconcile != nil {
		s.cfg.Reconcile.Trigger()
	}
	return &flotillav1.RollbackResponse{Clusters: clusters}, nil
}

func (s *Server) pins() pinStore { return s.cfg.Store.(pinStore) }

// reloadPins loads the pins from the store into the fleet.
func (s *Server) reloadPins() error {
	ps, ok := s.cfg.Store.(pinStore)
	if !ok {
		return nil
	}
	list, err := ps.ListPins()
	if err != nil {
		return err
	}
	pins := map[string]map[string]string{}
	for _, p := range list {
		if pins[p.App] == nil {
			pins[p.App] = map[string]string{}
		}
		pins[p.App][p.Cluster] = p.Revision
	}
	s.cfg.Fleet.SetPins(pins)
	return nil
}

// RevokeCluster revokes a cluster: its agent's stream closes now and it is refused from then
// on (the registry keeps the mark across restarts).
func (s *Server) RevokeCluster(ctx context.Context, req *flotillav1.RevokeClusterRequest) (*flotillav1.RevokeClusterResponse, error) {
	c, found, err := s.cfg.Store.GetCluster(req.Name)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "cluster registry: %v", err)
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "cluster %q is not registered", req.Name)
	}
	c.Revoked = true
	if err := s.cfg.Store.PutCluster(c); err != nil {
		return nil, status.Errorf(codes.Unavailable, "revoke: %v", err)
	}
	s.replicateCluster(req.Name)
	s.mu.Lock()
	if st := s.streams[req.Name]; st != nil {
		st.cancel()
	}
	s.mu.Unlock()
	s.audit(callerFrom(ctx).Name, "cluster.revoke", req.Name, "")
	s.log.Warn("cluster revoked", logging.KeyCluster, req.Name)
	if s.cfg.Reconcile != nil {
		s.cfg.Reconcile.Trigger()
	}
	return &flotillav1.RevokeClusterResponse{}, nil
}
