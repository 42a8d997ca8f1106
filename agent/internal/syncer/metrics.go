package syncer

import (
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the syncer's Prometheus series. Labels are bounded: results and drift types,
// never app, revision or object names.
type metrics struct {
	syncs          *prometheus.CounterVec
	syncDuration   prometheus.Histogram
	objects        *prometheus.CounterVec
	pruneDuration  prometheus.Histogram
	drift          *prometheus.CounterVec
	corrected      prometheus.Counter
	healDuration   prometheus.Histogram
	contested      prometheus.Counter
	rollbacks      *prometheus.CounterVec
	healthAssessed prometheus.Histogram
}

// Metric label values.
const (
	resultSucceeded = "succeeded"
	resultFailed    = "failed"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	buckets := []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	m := &metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_agent_syncs_total", Help: "Syncs of a revision (apply, then prune), by result: succeeded or failed.",
		}, []string{"result"}),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flotilla_agent_sync_duration_seconds", Help: "Time to sync a revision: dry-run, apply and prune.", Buckets: buckets,
		}),
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_agent_objects_total", Help: "Objects handled by syncs and self-heals, by action: applied (written), unchanged (no write), pruned (deleted), held (deletion awaiting confirmation).",
		}, []string{"action"}),
		pruneDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flotilla_agent_prune_duration_seconds", Help: "Time spent deleting what a revision no longer holds, per sync.", Buckets: buckets,
		}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_agent_drift_events_total", Help: "Objects found drifted from their revision, by type: missing or modified.",
		}, []string{"type"}),
		corrected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flotilla_agent_drift_corrected_total", Help: "Drifted objects re-applied by self-heal.",
		}),
		healDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flotilla_agent_self_heal_duration_seconds", Help: "Time to re-apply the drifted objects of one drift check.", Buckets: buckets,
		}),
		contested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flotilla_agent_drift_contested_total", Help: "Corrections postponed because another actor keeps changing the object back.",
		}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_agent_rollbacks_total", Help: "Automatic rollbacks to the last healthy revision, by result: succeeded or failed.",
		}, []string{"result"}),
		healthAssessed: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flotilla_agent_health_assessment_duration_seconds", Help: "Time to assess one app's health.", Buckets: buckets,
		}),
	}
	for _, r := range []string{resultSucceeded, resultFailed} {
		m.syncs.WithLabelValues(r)
		m.rollbacks.WithLabelValues(r)
	}
	for _, t := range []string{DriftMissing, DriftModified} {
		m.drift.WithLabelValues(t)
	}
	if reg != nil {
		reg.MustRegister(m.syncs, m.syncDuration, m.objects, m.pruneDuration, m.drift, m.corrected,
			m.healDuration, m.contested, m.rollbacks, m.healthAssessed)
	}
	return m
}

// synced records a sync: its result, duration and what it did (res may be nil).
func (m *metrics) synced(err error, took time.Duration, res *apply.ChangeSet) {
	result := resultSucceeded
	if err != nil {
		result = resultFailed
	}
	m.syncs.WithLabelValues(result).Inc()
	m.syncDuration.Observe(took.Seconds())
	m.counted(res)
}

// counted adds what res did to the object counters.
func (m *metrics) counted(res *apply.ChangeSet) {
	if res == nil {
		return
	}
	m.objects.WithLabelValues("applied").Add(float64(res.Count(apply.Applied)))
	m.objects.WithLabelValues("unchanged").Add(float64(res.Count(apply.Unchanged)))
	m.objects.WithLabelValues("pruned").Add(float64(res.Count(apply.Pruned)))
	m.objects.WithLabelValues("held").Add(float64(res.Count(apply.Held)))
	if res.PruneTook > 0 {
		m.pruneDuration.Observe(res.PruneTook.Seconds())
	}
}

func (m *metrics) driftDetected(items []DriftItem) {
	for _, it := range items {
		m.drift.WithLabelValues(it.Type).Inc()
	}
}

func (m *metrics) driftCorrected(n int, took time.Duration) {
	m.corrected.Add(float64(n))
	m.healDuration.Observe(took.Seconds())
}

func (m *metrics) rolledBack(err error) {
	result := resultSucceeded
	if err != nil {
		result = resultFailed
	}
	m.rollbacks.WithLabelValues(result).Inc()
}
