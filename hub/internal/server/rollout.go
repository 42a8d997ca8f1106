package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-dev/flotilla/hub/internal/cluster"
	"github.com/flotilla-dev/flotilla/hub/internal/opclient"
	"github.com/flotilla-dev/flotilla/hub/internal/rollout"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// rollouts is the progressive rollouts' coordinator (rollout.Coordinator).
type rollouts interface {
	Get(app string) (*rollout.View, error)
	Act(app string, a rollout.Action) (*rollout.View, error)
	Export(app, replica string) (store.Rollout, bool)
	Coordinates(app string) bool
}

var (
	_ rollouts      = (*rollout.Coordinator)(nil)
	_ rollout.Peers = (*Server)(nil)
)

// errRolloutsOff: this hub runs no rollout coordinator.
var errRolloutsOff = errors.New("progressive rollouts are off on this hub")

// RolloutStatus returns an app's latest progressive rollout.
func (s *Server) RolloutStatus(ctx context.Context, req *flotillav1.RolloutStatusRequest) (*flotillav1.RolloutStatusResponse, error) {
	if req.App == "" {
		return nil, toStatus(invalidArgument("app is required"))
	}
	if s.cfg.Rollouts == nil {
		return nil, toStatus(errRolloutsOff)
	}
	if owner, forward := s.rolloutCoordinator(ctx, req.App); forward {
		resp, err := callPeer(ctx, s, owner, func(ctx context.Context, conn *grpc.ClientConn) (*flotillav1.RolloutStatusResponse, error) {
			return flotillav1.NewOperatorClient(conn).RolloutStatus(ctx, req)
		})
		return mapped(resp, err)
	}
	v, err := s.cfg.Rollouts.Get(req.App)
	if err != nil {
		return nil, toStatus(err)
	}
	return &flotillav1.RolloutStatusResponse{Rollout: s.rolloutToProto(v)}, nil
}

// RolloutAction approves, pauses, resumes or aborts an app's rollout, or skips a cluster in
// it; each is audited.
func (s *Server) RolloutAction(ctx context.Context, req *flotillav1.RolloutActionRequest) (*flotillav1.RolloutActionResponse, error) {
	if req.App == "" {
		return nil, toStatus(invalidArgument("app is required"))
	}
	if s.cfg.Rollouts == nil {
		return nil, toStatus(errRolloutsOff)
	}
	actor := callerFrom(ctx).Name
	if fromPeer(ctx) {
		// Forwarded by the replica the operator asked, which audits it; it names the operator.
		actor = req.Actor
	}
	var resp *flotillav1.RolloutActionResponse
	if owner, forward := s.rolloutCoordinator(ctx, req.App); forward {
		fwd := proto.CloneOf(req)
		fwd.Actor = actor
		var err error
		resp, err = callPeer(ctx, s, owner, func(ctx context.Context, conn *grpc.ClientConn) (*flotillav1.RolloutActionResponse, error) {
			return flotillav1.NewOperatorClient(conn).RolloutAction(ctx, fwd)
		})
		if err != nil {
			return nil, toStatus(err)
		}
	} else {
		v, err := s.cfg.Rollouts.Act(req.App, rollout.Action{Kind: req.Action, Cluster: req.Cluster, Rollback: req.Rollback, Actor: actor})
		if err != nil {
			return nil, toStatus(err)
		}
		resp = &flotillav1.RolloutActionResponse{Rollout: s.rolloutToProto(v)}
	}
	if fromPeer(ctx) {
		return resp, nil
	}
	detail := fmt.Sprintf("rollout=%s revision=%s", resp.Rollout.Id, resp.Rollout.Revision)
	if req.Cluster != "" {
		detail += " cluster=" + req.Cluster
	}
	if req.Rollback {
		detail += " rollback=true"
	}
	s.audit(actor, "rollout."+req.Action, req.App, detail)
	return resp, nil
}

// rolloutCoordinator is the replica that coordinates app's rollouts, and whether a request
// for them is to be forwarded there: it is another replica, and the request does not come
// from one.
func (s *Server) rolloutCoordinator(ctx context.Context, app string) (cluster.Member, bool) {
	if s.cfg.HA == nil || fromPeer(ctx) || s.cfg.Rollouts.Coordinates(app) {
		return cluster.Member{}, false
	}
	w, err := s.cfg.Ownership.Now()
	if err != nil {
		return cluster.Member{}, false
	}
	o := w.Of(rollout.OwnerKey(app))
	return o.Member, !o.Mine && o.Member.GRPCAddr != ""
}

// Reports are the status rows of app on the clusters the other replicas own, each from its
// owner (rollout.Peers).
func (s *Server) Reports(ctx context.Context, app string) ([]rollout.Report, error) {
	if s.cfg.HA == nil {
		return nil, nil
	}
	w, err := s.cfg.Ownership.Now()
	if err != nil {
		return nil, err
	}
	answers, unreachable := askPeers(ctx, s, func(ctx context.Context, conn *grpc.ClientConn) (*flotillav1.StatusResponse, error) {
		return opclient.Status(ctx, flotillav1.NewOperatorClient(conn), &flotillav1.StatusRequest{App: app})
	})
	var out []rollout.Report
	for _, a := range answers {
		for _, it := range a.resp.Items {
			if it.App != app || w.Of(it.Cluster).Member.Name != a.peer.Name {
				continue // only the owner's row counts
			}
			out = append(out, rollout.Report{
				Cluster: it.Cluster, Sync: it.Sync, Health: it.Health, DesiredRevision: it.DesiredRevision, AppliedRevision: it.AppliedRevision,
				RolledBackRevision: it.RolledBackRevision, LastError: it.LastError, Message: it.Message,
				HealthySince: timeOfMs(it.HealthySinceUnixMs), AppliedAt: timeOfMs(it.AppliedAtUnixMs), Pinned: it.PinnedRevision != "",
				DesiredSpec: it.DesiredSpec, AppliedDesired: it.AppliedDesired,
			})
		}
	}
	if len(unreachable) > 0 {
		return out, fmt.Errorf("replicas %v did not answer: their clusters count as Stale", unreachable)
	}
	return out, nil
}

// Followers are the other live replicas, which follow the rollouts this one coordinates
// (rollout.Peers).
func (s *Server) Followers() []string {
	if s.cfg.HA == nil {
		return nil
	}
	local := s.cfg.HA.Replicas.Local().Name
	var out []string
	for _, m := range s.cfg.HA.Replicas.Members() {
		if m.Name != local {
			out = append(out, m.Name)
		}
	}
	return out
}

// Record is the record of app's rollout at the replica that coordinates it (rollout.Peers);
// not found when that is this one.
func (s *Server) Record(ctx context.Context, app string) (store.Rollout, bool, error) {
	if s.cfg.HA == nil {
		return store.Rollout{}, false, nil
	}
	w, err := s.cfg.Ownership.Now()
	if err != nil {
		return store.Rollout{}, false, err
	}
	o := w.Of(rollout.OwnerKey(app))
	if o.Mine || o.Member.GRPCAddr == "" {
		return store.Rollout{}, false, nil
	}
	resp, err := callPeer(ctx, s, o.Member, func(ctx context.Context, conn *grpc.ClientConn) (*flotillav1.ExportRolloutResponse, error) {
		return flotillav1.NewPeerClient(conn).ExportRollout(ctx, &flotillav1.ExportRolloutRequest{App: app, Replica: s.cfg.HA.Replicas.Local().Name})
	})
	if err != nil {
		return store.Rollout{}, false, fmt.Errorf("coordinator %s: %w", o.Member.Name, err)
	}
	return store.Rollout{App: app, Seq: resp.Seq, Data: resp.Data}, resp.Found, nil
}

// ExportRollout is the record of an app's rollout as this replica keeps it (Peer service).
func (s *Server) ExportRollout(_ context.Context, req *flotillav1.ExportRolloutRequest) (*flotillav1.ExportRolloutResponse, error) {
	if s.cfg.Rollouts == nil {
		return &flotillav1.ExportRolloutResponse{}, nil
	}
	r, found := s.cfg.Rollouts.Export(req.App, req.Replica)
	return &flotillav1.ExportRolloutResponse{Found: found, Seq: r.Seq, Data: r.Data}, nil
}

func timeOfMs(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func (s *Server) rolloutToProto(v *rollout.View) *flotillav1.Rollout {
	r := v.Record
	out := &flotillav1.Rollout{
		App: r.App, Id: r.ID, Revision: r.Revision, FromRevision: r.From, State: r.State, Paused: r.Paused, Edit: r.Edit(),
		Step: int32(r.Step + 1), FailurePolicy: v.FailurePolicy, Waiting: v.Waiting, Reason: r.Reason,
		StartedUnixMs: r.Started.UnixMilli(), StepStartedUnixMs: unixMs(r.StepStarted), UpdatedUnixMs: r.Updated.UnixMilli(),
	}
	if s.cfg.HA != nil {
		out.Coordinator = s.cfg.HA.Replicas.Local().Name
	}
	for _, st := range v.Steps {
		ps := &flotillav1.RolloutStep{Number: int32(st.Number), Description: st.Description, Approval: st.Approval, Approved: st.Approved, State: st.State}
		for _, c := range st.Clusters {
			ps.Clusters = append(ps.Clusters, &flotillav1.RolloutCluster{
				Name: c.Name, Phase: c.Phase, SinceUnixMs: unixMs(c.Since), Reason: c.Reason, Revision: c.Revision, Sync: c.Sync, Health: c.Health,
			})
		}
		out.Steps = append(out.Steps, ps)
	}
	return out
}

// unixMs is t in Unix milliseconds, 0 for the zero time.
func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
