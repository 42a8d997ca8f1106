package apps

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	sigsjson "sigs.k8s.io/json"
)

// Progressive rollouts (spec.rollout): a new revision of the app reaches the clusters it
// targets step by step, each step gated on the agents' health reports (hub/internal/rollout
// runs them). Only Flotilla Applications carry spec.rollout; Argo CD Applications are rolled
// out all at once, as before.

// Failure policies of a rollout.
const (
	FailureHalt     = "halt"
	FailureRollback = "rollback"
)

// RolloutSpec is spec.rollout.
type RolloutSpec struct {
	Steps []RolloutStep
	// FailurePolicy is FailureHalt (the default) or FailureRollback.
	FailurePolicy string
}

// RolloutStep is one step of a rollout. A step that names no clusters takes every cluster no
// earlier step took; a step that sets only Approval is a gate that takes no cluster.
type RolloutStep struct {
	// Names or Selector (at most one) choose the step's clusters.
	Names    []string
	Selector labels.Selector
	// MaxUnavailable is how many of the step's clusters may be updating at once (0: all);
	// MaxUnavailablePercent, when set, is that as a percentage of the step's clusters
	// (rounded down, at least one).
	MaxUnavailable        int
	MaxUnavailablePercent int
	// Soak is how long each cluster must be Synced and Healthy on the new revision.
	Soak time.Duration
	// Approval: the step waits for `flotilla rollout approve` before it starts.
	Approval bool
}

// Gate reports whether the step is only an approval gate: it takes no cluster.
func (s *RolloutStep) Gate() bool {
	return s.Approval && s.Names == nil && s.Selector == nil && s.MaxUnavailable == 0 && s.MaxUnavailablePercent == 0 && s.Soak == 0
}

// Selects reports whether the step names cluster c (a step without names or selector
// selects every cluster; a gate none).
func (s *RolloutStep) Selects(c ClusterVars) bool {
	switch {
	case s.Gate():
		return false
	case s.Names != nil:
		return slices.Contains(s.Names, c.Name)
	case s.Selector != nil:
		return s.Selector.Matches(labels.Set(c.Labels))
	}
	return true
}

// Batch is how many of n clusters of the step may be updating at once.
func (s *RolloutStep) Batch(n int) int {
	switch {
	case s.MaxUnavailablePercent > 0:
		return max(1, n*s.MaxUnavailablePercent/100)
	case s.MaxUnavailable > 0:
		return s.MaxUnavailable
	}
	return max(1, n)
}

// MaxRolloutSteps bounds spec.rollout.steps.
const MaxRolloutSteps = 32

type rolloutDoc struct {
	Steps         []rolloutStepDoc `json:"steps"`
	FailurePolicy string           `json:"failurePolicy,omitempty"`
}

type rolloutStepDoc struct {
	Clusters       json.RawMessage `json:"clusters,omitempty"`
	MaxUnavailable json.RawMessage `json:"maxUnavailable,omitempty"`
	Soak           *duration       `json:"soak,omitempty"`
	Approval       bool            `json:"approval,omitempty"`
}

// rolloutSpec converts and checks spec.rollout, naming the field of each error.
func rolloutSpec(d *rolloutDoc, errAt errorf) (*RolloutSpec, []error) {
	if d == nil {
		return nil, nil
	}
	var errs []error
	spec := &RolloutSpec{FailurePolicy: d.FailurePolicy}
	switch d.FailurePolicy {
	case "":
		spec.FailurePolicy = FailureHalt
	case FailureHalt, FailureRollback:
	default:
		errs = append(errs, errAt("spec.rollout.failurePolicy", fmt.Errorf("%q must be halt or rollback", d.FailurePolicy)))
	}
	switch n := len(d.Steps); {
	case n == 0:
		errs = append(errs, errAt("spec.rollout.steps", ErrRequired))
	case n > MaxRolloutSteps:
		errs = append(errs, errAt("spec.rollout.steps", fmt.Errorf("%d steps, at most %d", n, MaxRolloutSteps)))
	}
	for i, sd := range d.Steps {
		field := fmt.Sprintf("spec.rollout.steps[%d]", i)
		var st RolloutStep
		st.Approval = sd.Approval
		var err error
		if st.Names, st.Selector, err = stepClusters(sd.Clusters); err != nil {
			errs = append(errs, errAt(field+".clusters", err))
		}
		if st.MaxUnavailable, st.MaxUnavailablePercent, err = maxUnavailable(sd.MaxUnavailable); err != nil {
			errs = append(errs, errAt(field+".maxUnavailable", err))
		}
		if sd.Soak != nil {
			if st.Soak, err = sd.Soak.parse(field+".soak", errAt); err != nil {
				errs = append(errs, err)
			}
		}
		spec.Steps = append(spec.Steps, st)
	}
	return spec, errs
}

// stepClusters reads a step's clusters: a list of names or a label selector.
func stepClusters(raw json.RawMessage) ([]string, labels.Selector, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	if raw[0] == '[' {
		var names []string
		if err := json.Unmarshal(raw, &names); err != nil {
			return nil, nil, fmt.Errorf("want a list of cluster names or a label selector: %w", trimJSONPrefix(err))
		}
		if len(names) == 0 {
			return nil, nil, fmt.Errorf("empty list of cluster names")
		}
		for i, n := range names {
			if strings.TrimSpace(n) == "" {
				return nil, nil, fmt.Errorf("[%d]: empty cluster name", i)
			}
		}
		return names, nil, nil
	}
	var ls metav1.LabelSelector
	strict, err := sigsjson.UnmarshalStrict(raw, &ls, sigsjson.DisallowUnknownFields)
	if err == nil && len(strict) > 0 {
		err = strict[0]
	}
	if err != nil {
		return nil, nil, fmt.Errorf("want a list of cluster names or a label selector: %w", trimJSONPrefix(err))
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return nil, nil, err
	}
	return nil, sel, nil
}

// maxUnavailable reads a count ("3" or 3) or a percentage ("10%").
func maxUnavailable(raw json.RawMessage) (count, percent int, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = string(raw)
	}
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 100 {
			return 0, 0, fmt.Errorf("%q: want a count or a percentage from 1%% to 100%%", s)
		}
		return 0, n, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, 0, fmt.Errorf("%q: want a count of at least 1 or a percentage such as \"10%%\"", s)
	}
	return n, 0, nil
}
