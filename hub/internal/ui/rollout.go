package ui

import (
	"context"
	"fmt"
	"net/url"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-dev/flotilla/hub/internal/rolloutfmt"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// rolloutView is the App page's Rollout panel: the app's latest rollout, in the words of
// `flotilla rollout status` (rolloutfmt), and the actions it admits.
type rolloutView struct {
	R     *flotillav1.Rollout
	State string
	// Change says the rollout carries an edit of the Application ("": a new revision only),
	// as `flotilla rollout status` says it.
	Change     string
	ShowReason bool
	Since      string // when the active step started
	Steps      []rolloutStepView
	// Running: the rollout has not ended, and pause/resume, abort and skip apply.
	Running bool
	// Approve: a step waits, or will wait, for an approval.
	Approve bool
	// Error is why the rollout could not be read ("": it was).
	Error string
}

type rolloutStepView struct {
	S        *flotillav1.RolloutStep
	State    string
	Clusters []rolloutClusterView
}

type rolloutClusterView struct {
	C     *flotillav1.RolloutCluster
	Since string
	// Skip is the confirmation URL of skipping this cluster ("": it is not stuck in the active
	// step).
	Skip string
}

// rolloutOf reads the app's rollout for its page; nil when it has none (no spec.rollout, no
// revision seen yet, or no rollout coordinator on the hub).
func rolloutOf(ctx context.Context, b Backend, app string) *rolloutView {
	resp, err := b.RolloutStatus(ctx, &flotillav1.RolloutStatusRequest{App: app})
	return rolloutViewOf(app, resp, err)
}

// rolloutViewOf is the panel of the hub's answer to RolloutStatus (resp or err).
func rolloutViewOf(app string, resp *flotillav1.RolloutStatusResponse, err error) *rolloutView {
	if err != nil {
		switch status.Code(err) {
		case codes.NotFound, codes.Unimplemented:
			return nil
		}
		msg := err.Error()
		if s, ok := status.FromError(err); ok {
			msg = s.Message()
		}
		return &rolloutView{Error: msg}
	}
	r := resp.Rollout
	v := &rolloutView{R: r, State: rolloutfmt.State(r), Change: rolloutfmt.Change(r), ShowReason: rolloutfmt.ShowReason(r), Running: rolloutfmt.InProgress(r)}
	v.Approve = v.Running && rolloutfmt.NeedsApproval(r)
	if r.StepStartedUnixMs > 0 {
		v.Since = agoMs(r.StepStartedUnixMs)
	}
	for _, s := range r.Steps {
		sv := rolloutStepView{S: s, State: rolloutfmt.StepState(s)}
		for _, c := range s.Clusters {
			cv := rolloutClusterView{C: c, Since: agoMs(c.SinceUnixMs)}
			if v.Running && s.State == "Active" && stuck(c.Phase) {
				cv.Skip = "/confirm/rollout-skip?" + url.Values{"app": {app}, "cluster": {c.Name}}.Encode()
			}
			sv.Clusters = append(sv.Clusters, cv)
		}
		v.Steps = append(v.Steps, sv)
	}
	return v
}

// stuck says whether a cluster of the active step is one the step may wait for: updating,
// soaking or failed (not done, skipped or pinned).
func stuck(phase string) bool {
	switch phase {
	case "Updating", "Soaking", "Failed":
		return true
	}
	return false
}

// rollingOut makes the action kind on an app's rollout.
func rollingOut(kind string) func(context.Context, Backend, target) (string, error) {
	return func(ctx context.Context, b Backend, f target) (string, error) {
		req := &flotillav1.RolloutActionRequest{App: f.App, Action: kind}
		switch kind {
		case "abort":
			req.Rollback = f.Rollback
		case "skip":
			if f.Cluster == "" {
				return "", badQuery("name the cluster to move on without")
			}
			req.Cluster = f.Cluster
		}
		resp, err := b.RolloutAction(ctx, req)
		if err != nil {
			return "", err
		}
		r := resp.Rollout
		msg := fmt.Sprintf("%s: rollout %s %s; %s", r.App, r.Id, rolloutfmt.PastTense(kind), rolloutfmt.State(r))
		if r.Waiting != "" {
			msg += ". " + r.Waiting
		}
		return msg, nil
	}
}

// rolloutKey tells two answers of RolloutStatus apart: the panel changes only when it does.
func rolloutKey(resp *flotillav1.RolloutStatusResponse, err error) string {
	if err != nil {
		return "error " + status.Code(err).String() + " " + err.Error()
	}
	data, merr := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
	if merr != nil {
		return "unreadable " + merr.Error()
	}
	return string(data)
}
