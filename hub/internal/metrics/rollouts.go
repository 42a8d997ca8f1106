package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Rollouts are the progressive rollouts' metrics.
type Rollouts struct {
	steps prometheus.Histogram
}

// Rollouts registers flotilla_hub_rollouts (the apps' latest rollouts by state, read from
// count at scrape time: it returns a count per state, every state included) and
// flotilla_hub_rollout_step_duration_seconds. A nil *Hub records nothing.
func (h *Hub) Rollouts(states []string, count func() map[string]int) *Rollouts {
	if h == nil {
		return nil
	}
	for _, state := range states {
		h.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flotilla_hub_rollouts", Help: "Apps whose latest progressive rollout is in each state (the coordinating replica counts it).",
			ConstLabels: prometheus.Labels{"state": state},
		}, func() float64 { return float64(count()[state]) }))
	}
	r := &Rollouts{steps: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "flotilla_hub_rollout_step_duration_seconds", Help: "Time from a rollout step's start to its clusters all soaked, approval waits included.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 16),
	})}
	h.reg.MustRegister(r.steps)
	return r
}

// StepDone records the duration of a completed step.
func (r *Rollouts) StepDone(d time.Duration) {
	if r != nil {
		r.steps.Observe(d.Seconds())
	}
}
