package metrics

import "github.com/prometheus/client_golang/prometheus"

// Notifications counts notification deliveries. A nil *Notifications records nothing.
type Notifications struct {
	deliveries *prometheus.CounterVec
}

// Notifications registers the notification counter on h's registry; call it once. It returns
// nil for a nil h.
func (h *Hub) Notifications() *Notifications {
	if h == nil {
		return nil
	}
	n := &Notifications{deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flotilla_hub_notifications_total",
		Help: "Notification deliveries, by sink (as configured) and result (sent; failed: every attempt failed or the receiver refused; dropped: queue full).",
	}, []string{"sink", "result"})}
	h.reg.MustRegister(n.deliveries)
	return n
}

// Notification counts one delivery result.
func (n *Notifications) Notification(sink, result string) {
	if n != nil {
		n.deliveries.WithLabelValues(sink, result).Inc()
	}
}
