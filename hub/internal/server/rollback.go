package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/pins"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Rollback pins an app to an earlier revision on the chosen clusters (it stays there, whatever
// Git's target revision does, until cleared), or clears pins. Any replica takes the request:
// the pins replicate to every replica (replicate.go), and the owner of each cluster renders
// the pinned revision for it. Every pin is audited, by the replica that took the request.
func (s *Server) Rollback(ctx context.Context, req *flotillav1.RollbackRequest) (*flotillav1.RollbackResponse, error) {
	if req.App == "" {
		return nil, toStatus(invalidArgument("app is required"))
	}
	if !req.Clear && req.ToRevision == "" {
		return nil, toStatus(invalidArgument("--to REVISION is required (or --clear)"))
	}
	if len(req.ToRevision) > pins.MaxRevision {
		return nil, toStatus(invalidArgument("--to: a revision of at most %d characters", pins.MaxRevision))
	}
	if !req.Clear && req.Cluster == "" && req.Selector == "" {
		return nil, toStatus(invalidArgument("--cluster or --selector is required: a pin names its clusters"))
	}
	app, known := s.app(req.App)
	if !known {
		return nil, toStatus(fmt.Errorf("app %q is %w", req.App, fleet.ErrUnknownApp))
	}
	targeted, err := s.targeted(app)
	if err != nil {
		return nil, toStatus(err)
	}
	inSelector, err := s.selectClusters(req.Selector)
	if err != nil {
		return nil, toStatus(err)
	}
	actor := callerFrom(ctx).Name
	clusters, changed, err := s.pins.Apply(pins.Change{
		App: req.App, Revision: req.ToRevision, Clear: req.Clear, Cluster: req.Cluster, InSelector: inSelector,
		Actor: actor, Time: time.Now(),
	}, targeted)
	for _, p := range changed {
		s.replicator.Pin(p)
	}
	if errors.Is(err, pins.ErrNoMatchingCluster) {
		err = fmt.Errorf("app %q: %w (it targets %s)", req.App, err, strings.Join(targeted, ", "))
	}
	if err != nil {
		return nil, toStatus(err)
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

// app returns the app named name, as the hub last loaded it.
func (s *Server) app(name string) (fleet.AppInfo, bool) {
	for _, a := range s.cfg.Fleet.Apps() {
		if a.Name == name {
			return a, true
		}
	}
	return fleet.AppInfo{}, false
}

// targeted returns the registered, unrevoked clusters app targets, sorted.
func (s *Server) targeted(app fleet.AppInfo) ([]string, error) {
	targets, err := s.targeting()
	if err != nil {
		return nil, err
	}
	return targets(app), nil
}

// targeting returns what lists the registered, unrevoked clusters an app targets, sorted, over
// one reading of the registry. A hub that runs alone renders for all of them; one of several
// replicas renders only for those it owns, so their list comes from the app's destination and
// the replicated registry.
func (s *Server) targeting() (func(fleet.AppInfo) []string, error) {
	if s.cfg.HA == nil {
		return func(app fleet.AppInfo) []string { return app.Clusters }, nil
	}
	list, err := s.cfg.Store.ListClusters()
	if err != nil {
		return nil, fmt.Errorf("cluster registry: %w", err)
	}
	return func(app fleet.AppInfo) []string {
		var out []string
		for _, c := range list {
			if !c.Revoked && app.Destination.Targets(fleet.ClusterVars{Name: c.Name, Labels: c.Labels}) {
				out = append(out, c.Name)
			}
		}
		sort.Strings(out)
		return out
	}, nil
}

// RevokeCluster revokes a cluster: its agent's stream closes now and it is refused from then
// on (the registry keeps the mark across restarts).
func (s *Server) RevokeCluster(ctx context.Context, req *flotillav1.RevokeClusterRequest) (*flotillav1.RevokeClusterResponse, error) {
	c, found, err := s.cfg.Store.GetCluster(req.Name)
	if err != nil {
		return nil, toStatus(fmt.Errorf("cluster registry: %w", err))
	}
	if !found {
		return nil, toStatus(fmt.Errorf("cluster %q is %w", req.Name, store.ErrNotRegistered))
	}
	c.Revoked = true
	if err := s.cfg.Store.PutCluster(c); err != nil {
		return nil, toStatus(fmt.Errorf("revoke: %w", err))
	}
	s.replicator.Cluster(req.Name)
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
