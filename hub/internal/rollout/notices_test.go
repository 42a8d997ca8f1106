package rollout

import (
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/internal/notify"
)

// TestMarkNotified: a transition is notified once per rollout and step: marking it again (a
// replica that derives it anew from a copy that has it) yields nothing.
func TestMarkNotified(t *testing.T) {
	r := &Record{}
	step0 := Transition{Kind: notify.RolloutStepCompleted, Step: 0}
	step1 := Transition{Kind: notify.RolloutStepCompleted, Step: 1}
	if got := r.markNotified([]Transition{step0}); len(got) != 1 {
		t.Fatalf("first mark: %v", got)
	}
	if got := r.markNotified([]Transition{step0, step1}); len(got) != 1 || got[0].Step != 1 {
		t.Fatalf("second mark: %v, want step 1 only", got)
	}
	if got := strings.Join(r.Clone().Notified, ","); got != "step-completed/0,step-completed/1" {
		t.Errorf("Notified %s", got)
	}
}
