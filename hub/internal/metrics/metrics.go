// Package metrics defines the hub's Prometheus metrics. Labels are bounded: no revision, object
// or cluster names.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Hub holds the hub's metrics. A nil *Hub records nothing, so components work without one.
type Hub struct {
	reg             *prometheus.Registry
	streamMessages  *prometheus.CounterVec
	streamBytes     *prometheus.CounterVec
	syncs           *prometheus.CounterVec
	gitFetch        *prometheus.HistogramVec
	render          *prometheus.HistogramVec
	renderCache     *prometheus.CounterVec
	commitToApplied prometheus.Histogram
}

// Presence reports, at scrape time, how many agents are connected to this hub and how many of
// the clusters it owns are stale. On one of several hub replicas a cluster counts only on the
// replica it is connected to or, when stale, on the one that owns it: summed over the replicas
// the counts are the fleet's.
type Presence func() (connected, stale int)

// New registers the hub's metrics (and the Go and process collectors) on a new registry.
func New(presence Presence) *Hub {
	reg := prometheus.NewRegistry()
	// The scheduler's metrics (go_sched_latencies_seconds above all: how long runnable
	// goroutines wait for a CPU) show a hub whose CPU is short, as in a reconnect storm.
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h := &Hub{
		reg: reg,
		streamMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_hub_stream_messages_total", Help: "Messages on agent streams, by direction (in, out) and type.",
		}, []string{"direction", "type"}),
		streamBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_hub_stream_bundle_bytes_total", Help: "Compressed bundle bytes sent to agents.",
		}, []string{"direction"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_hub_syncs_total", Help: "Syncs reported by agents, by result (synced: ACK, failed: NACK).",
		}, []string{"result"}),
		gitFetch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flotilla_hub_git_fetch_duration_seconds", Help: "Git fetch durations, by result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"result"}),
		render: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flotilla_hub_render_duration_seconds", Help: "Render durations (cache misses only), by result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"result"}),
		renderCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_hub_render_cache_requests_total", Help: "Render cache lookups, by result (hit, miss).",
		}, []string{"result"}),
		commitToApplied: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flotilla_hub_commit_to_applied_seconds", Help: "Time from a commit to its ACK by an agent.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 14),
		}),
	}
	reg.MustRegister(h.streamMessages, h.streamBytes, h.syncs, h.gitFetch, h.render, h.renderCache, h.commitToApplied)
	if presence != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "flotilla_hub_agents_connected",
				Help: "Agents with an open, live stream to this hub. With hub replicas each counts the agents connected to it; sum over the replicas for the fleet.",
			}, func() float64 { c, _ := presence(); return float64(c) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "flotilla_hub_clusters_stale",
				Help: "Registered clusters owned by this hub whose agent is disconnected or silent. With hub replicas each counts only the clusters it owns (a cluster owned by another replica is not stale here); sum over the replicas for the fleet.",
			}, func() float64 { _, s := presence(); return float64(s) }),
		)
	}
	return h
}

// Handler serves the metrics.
func (h *Hub) Handler() http.Handler {
	return promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{Registry: h.reg})
}

// StreamMessage counts one message on an agent stream.
func (h *Hub) StreamMessage(direction, typ string) {
	if h != nil {
		h.streamMessages.WithLabelValues(direction, typ).Inc()
	}
}

// BundleBytes counts compressed bundle bytes sent.
func (h *Hub) BundleBytes(n int) {
	if h != nil {
		h.streamBytes.WithLabelValues("out").Add(float64(n))
	}
}

// Sync counts an ACK (ok) or NACK.
func (h *Hub) Sync(ok bool) {
	if h != nil {
		h.syncs.WithLabelValues(result(ok, "synced", "failed")).Inc()
	}
}

// GitFetch observes one fetch.
func (h *Hub) GitFetch(d time.Duration, err error) {
	if h != nil {
		h.gitFetch.WithLabelValues(result(err == nil, "ok", "error")).Observe(d.Seconds())
	}
}

// Render observes one render (a cache miss).
func (h *Hub) Render(d time.Duration, err error) {
	if h != nil {
		h.render.WithLabelValues(result(err == nil, "ok", "error")).Observe(d.Seconds())
	}
}

// RenderCache counts a cache lookup.
func (h *Hub) RenderCache(hit bool) {
	if h != nil {
		h.renderCache.WithLabelValues(result(hit, "hit", "miss")).Inc()
	}
}

// CommitToApplied observes the latency of one applied revision.
func (h *Hub) CommitToApplied(d time.Duration) {
	if h != nil && d > 0 {
		h.commitToApplied.Observe(d.Seconds())
	}
}

func result(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}
