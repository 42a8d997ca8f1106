package metrics

import "github.com/prometheus/client_golang/prometheus"

// Replicas registers flotilla_hub_replicas, the live hub replicas this one sees (itself
// included), read from count at scrape time. Only a hub that is one of several calls it.
func (h *Hub) Replicas(count func() int) {
	if h == nil {
		return
	}
	h.gauge("flotilla_hub_replicas", "Live hub replicas seen by this one, itself included.", func() float64 { return float64(count()) })
}

// Handshakes registers flotilla_hub_handshakes_waiting, the TLS handshakes of agents waiting
// for one of the hub's bounded slots (a reconnect storm), read from waiting at scrape time.
func (h *Hub) Handshakes(waiting func() int64) {
	if h == nil {
		return
	}
	h.gauge("flotilla_hub_handshakes_waiting", "TLS handshakes waiting for one of the hub's slots (--max-handshakes); operators' and replicas' never wait.",
		func() float64 { return float64(waiting()) })
}

// gauge registers a gauge read from read at scrape time.
func (h *Hub) gauge(name, help string, read func() float64) {
	h.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, read))
}
