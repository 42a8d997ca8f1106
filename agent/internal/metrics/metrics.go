// Package metrics defines the agent's Prometheus metrics, served on /metrics. Labels are
// bounded: no revision or object names.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Agent holds the agent's metrics.
type Agent struct {
	reg *prometheus.Registry
}

// New registers the agent's metrics, the Go and process collectors and a build-info gauge.
func New(version string) *Agent {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flotilla_agent_build_info", Help: "The agent's version; always 1.",
	}, []string{"version"})
	info.WithLabelValues(version).Set(1)
	reg.MustRegister(info)
	return &Agent{reg: reg}
}

// Registerer is where the agent's components register their metrics.
func (a *Agent) Registerer() prometheus.Registerer { return a.reg }

// Handler serves the metrics.
func (a *Agent) Handler() http.Handler {
	return promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg})
}
