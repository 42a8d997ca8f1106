// Package rolloutfmt is the text operators read of a progressive rollout, shared by
// `flotilla rollout` and the dashboard's App page so that both say the same thing: its state
// ("Running (paused) at step 2 of 4"), a step's state ("Pending (needs approval)") and what an
// action did ("approved").
package rolloutfmt

import (
	"fmt"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// State is "Running at step 2 of 4", "Running (paused) at step 1 of 3", "Completed", ...
func State(r *flotillav1.Rollout) string {
	state := r.State
	if r.Paused {
		state += " (paused)"
	}
	if n := int32(len(r.Steps)); n > 0 && r.Step <= n && r.State != "Completed" {
		state += fmt.Sprintf(" at step %d of %d", r.Step, n)
	}
	return state
}

// Change says what the rollout carries, when it is an edit of the Application: "an
// Application edit" (at the same revision) or "a new revision and an Application edit"; ""
// for a new revision alone.
func Change(r *flotillav1.Rollout) string {
	switch {
	case !r.Edit:
		return ""
	case r.FromRevision != "" && r.FromRevision != r.Revision:
		return "a new revision and an Application edit"
	}
	return "an Application edit"
}

// StepState is a step's state, with " (needs approval)" while it waits for one.
func StepState(s *flotillav1.RolloutStep) string {
	if waitsForApproval(s) {
		return s.State + " (needs approval)"
	}
	return s.State
}

// ShowReason says whether the rollout's reason is worth showing: it has ended or halted, and
// waits for nothing.
func ShowReason(r *flotillav1.Rollout) bool {
	return r.Reason != "" && r.Waiting == "" && r.State != "Running"
}

// PastTense is what an action did: "approved", "aborted", "skipped a cluster", ...
func PastTense(action string) string {
	switch action {
	case "abort":
		return "aborted"
	case "skip":
		return "skipped a cluster"
	case "approve", "pause", "resume":
		return action + "d"
	}
	return action
}

// InProgress says whether the rollout has not ended: running, or waiting for an approval.
func InProgress(r *flotillav1.Rollout) bool {
	return r.State == "Running" || r.State == "WaitingApproval"
}

// NeedsApproval says whether a step of the rollout waits, or will wait, for an approval.
func NeedsApproval(r *flotillav1.Rollout) bool {
	for _, s := range r.Steps {
		if waitsForApproval(s) {
			return true
		}
	}
	return false
}

func waitsForApproval(s *flotillav1.RolloutStep) bool {
	return s.Approval && !s.Approved && s.State != "Done"
}
