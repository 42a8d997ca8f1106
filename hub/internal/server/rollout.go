package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/rollout"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// rollouts is the progressive rollouts' coordinator (rollout.Coordinator).
type rollouts interface {
	Get(app string) (*rollout.View, error)
	Act(app string, a rollout.Action) (*rollout.View, error)
}

var _ rollouts = (*rollout.Coordinator)(nil)

// errRolloutsOff: this hub runs no rollout coordinator.
var errRolloutsOff = errors.New("progressive rollouts are off on this hub")

// RolloutStatus returns an app's latest progressive rollout.
func (s *Server) RolloutStatus(_ context.Context, req *flotillav1.RolloutStatusRequest) (*flotillav1.RolloutStatusResponse, error) {
	if req.App == "" {
		return nil, toStatus(invalidArgument("app is required"))
	}
	if s.cfg.Rollouts == nil {
		return nil, toStatus(errRolloutsOff)
	}
	v, err := s.cfg.Rollouts.Get(req.App)
	if err != nil {
		return nil, toStatus(err)
	}
	return &flotillav1.RolloutStatusResponse{Rollout: rolloutToProto(v)}, nil
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
	v, err := s.cfg.Rollouts.Act(req.App, rollout.Action{Kind: req.Action, Cluster: req.Cluster, Rollback: req.Rollback, Actor: actor})
	if err != nil {
		return nil, toStatus(err)
	}
	detail := fmt.Sprintf("rollout=%s revision=%s", v.Record.ID, v.Record.Revision)
	if req.Cluster != "" {
		detail += " cluster=" + req.Cluster
	}
	if req.Rollback {
		detail += " rollback=true"
	}
	s.audit(actor, "rollout."+req.Action, req.App, detail)
	return &flotillav1.RolloutActionResponse{Rollout: rolloutToProto(v)}, nil
}

func rolloutToProto(v *rollout.View) *flotillav1.Rollout {
	r := v.Record
	out := &flotillav1.Rollout{
		App: r.App, Id: r.ID, Revision: r.Revision, FromRevision: r.From, State: r.State, Paused: r.Paused,
		Step: int32(r.Step + 1), FailurePolicy: v.FailurePolicy, Waiting: v.Waiting, Reason: r.Reason,
		StartedUnixMs: r.Started.UnixMilli(), StepStartedUnixMs: unixMs(r.StepStarted), UpdatedUnixMs: r.Updated.UnixMilli(),
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
