package apps

import (
	"strings"
	"testing"
	"time"
)

func TestParseRollout(t *testing.T) {
	doc := head + `spec:
  source: {repoURL: r}
  destination: {clusterSelector: {matchLabels: {team: a}}}
  rollout:
    steps:
    - clusters: {matchLabels: {ring: canary}}
      soak: 10m
    - clusters: [eu-1, eu-2]
      maxUnavailable: 1
    - maxUnavailable: 10%
      soak: 5m
    - approval: true
    - {}
    failurePolicy: rollback
`
	list, errs := Parse("apps/api.yaml", []byte(doc))
	if len(errs) > 0 || len(list) != 1 {
		t.Fatalf("Parse: %v", errs)
	}
	r := list[0].Rollout
	if r == nil || len(r.Steps) != 5 || r.FailurePolicy != FailureRollback {
		t.Fatalf("rollout = %+v", r)
	}
	canary := ClusterVars{Name: "c1", Labels: map[string]string{"ring": "canary"}}
	main := ClusterVars{Name: "eu-1", Labels: map[string]string{"ring": "main"}}
	s := r.Steps
	if !s[0].Selects(canary) || s[0].Selects(main) || s[0].Soak != 10*time.Minute {
		t.Errorf("step 0 = %+v", s[0])
	}
	if !s[1].Selects(main) || s[1].Selects(canary) || s[1].Batch(2) != 1 {
		t.Errorf("step 1 = %+v", s[1])
	}
	if !s[2].Selects(canary) || s[2].Batch(35) != 3 || s[2].Batch(5) != 1 {
		t.Errorf("step 2 = %+v batch(35)=%d", s[2], s[2].Batch(35))
	}
	if !s[3].Gate() || s[3].Selects(main) {
		t.Errorf("step 3 = %+v, want a gate", s[3])
	}
	if s[4].Gate() || !s[4].Selects(main) || s[4].Batch(7) != 7 {
		t.Errorf("step 4 = %+v", s[4])
	}

	list, errs = Parse("apps/api.yaml", []byte(head+"spec: {source: {repoURL: r}, destination: {clusters: [a]}, rollout: {steps: [{}]}}\n"))
	if len(errs) > 0 || list[0].Rollout.FailurePolicy != FailureHalt {
		t.Errorf("default failure policy: %v %+v", errs, list)
	}
}

func TestParseRolloutErrors(t *testing.T) {
	base := head + "spec:\n  source: {repoURL: r}\n  destination: {clusters: [a]}\n  rollout:\n"
	tests := []struct {
		name, rollout string
		want          []string
	}{
		{"no steps", "    failurePolicy: halt\n", []string{`spec.rollout.steps: required`}},
		{"bad policy", "    steps: [{}]\n    failurePolicy: retry\n", []string{`spec.rollout.failurePolicy: "retry" must be halt or rollback`}},
		{"bad step fields", `    steps:
    - {clusters: {matchLabels: {ring: canary}, zone: x}, soak: soon}
    - {clusters: [], maxUnavailable: 0}
    - {maxUnavailable: 120%}
    - {clusters: 3}
`, []string{
			`spec.rollout.steps[0].clusters: want a list of cluster names or a label selector: unknown field "zone"`,
			`spec.rollout.steps[0].soak: "soon" is not a duration`,
			`spec.rollout.steps[1].clusters: empty list of cluster names`,
			`spec.rollout.steps[1].maxUnavailable: "0": want a count of at least 1`,
			`spec.rollout.steps[2].maxUnavailable: "120%": want a count or a percentage from 1% to 100%`,
			`spec.rollout.steps[3].clusters: want a list of cluster names or a label selector`,
		}},
		{"unknown field", "    steps: [{wait: 5m}]\n", []string{`unknown field "spec.rollout.steps[0].wait"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := Parse("apps/api.yaml", []byte(base+tt.rollout))
			if len(errs) != len(tt.want) {
				t.Fatalf("errors = %q, want %d: %q", errs, len(tt.want), tt.want)
			}
			for i, err := range errs {
				if !strings.Contains(err.Error(), `Application "api": `+tt.want[i]) {
					t.Errorf("error %d = %q, want %q", i, err, tt.want[i])
				}
			}
		})
	}
}

// TestArgoCDRolloutIsUnsupported: an Argo CD Application goes to one cluster; a spec.rollout
// on one is not read, and said so.
func TestArgoCDRolloutIsUnsupported(t *testing.T) {
	doc := "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: api}\n" +
		"spec: {source: {repoURL: r}, destination: {name: c}, rollout: {steps: [{}]}}\n"
	list, errs := Parse("apps/api.yaml", []byte(doc))
	if len(errs) > 0 || len(list) != 1 {
		t.Fatalf("Parse: %v", errs)
	}
	if list[0].Rollout != nil || !strings.Contains(strings.Join(list[0].Warnings, "\n"), "spec.rollout") {
		t.Errorf("rollout %+v, warnings %q", list[0].Rollout, list[0].Warnings)
	}
}

// TestRolloutOfARepositoryChart: a chart from a Helm or OCI repository is rolled out by its
// resolved version, so spec.rollout is accepted on it.
func TestRolloutOfARepositoryChart(t *testing.T) {
	doc := head + "spec:\n  source: {repoURL: 'https://charts.example.com', chart: web, targetRevision: 1.2.*}\n" +
		"  destination: {clusters: [a]}\n  rollout: {steps: [{}]}\n"
	list, errs := Parse("apps/api.yaml", []byte(doc))
	if len(errs) != 0 || len(list) != 1 || list[0].Rollout == nil || list[0].Spec == "" {
		t.Fatalf("Parse = %+v, %v", list, errs)
	}
}
