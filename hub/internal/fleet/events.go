package fleet

import "time"

// Bounds of the Warning Events the hub keeps of an app on a cluster (an agent sends at most
// ten, messages of 256 bytes; the hub holds no more whatever it is sent).
const (
	MaxEvents            = 10
	MaxEventMessageBytes = 512
)

// EventItem is a Kubernetes Warning Event about one of an app's objects, as its agent saw it.
type EventItem struct {
	Group     string    `json:"group,omitempty"`
	Version   string    `json:"version,omitempty"`
	Kind      string    `json:"kind"`
	Namespace string    `json:"namespace,omitempty"`
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	Message   string    `json:"message,omitempty"`
	Count     int32     `json:"count,omitempty"`
	LastSeen  time.Time `json:"lastSeen,omitempty"`
}

func capEvents(r *Report) {
	if len(r.Events) > MaxEvents {
		r.Events = r.Events[:MaxEvents:MaxEvents]
	}
	for i := range r.Events {
		e := &r.Events[i]
		e.Group, e.Version, e.Kind = Truncate(e.Group, 253), Truncate(e.Version, 63), Truncate(e.Kind, 63)
		e.Namespace, e.Name, e.Type, e.Reason = Truncate(e.Namespace, 253), Truncate(e.Name, 253), Truncate(e.Type, 63), Truncate(e.Reason, 128)
		e.Message = Truncate(e.Message, MaxEventMessageBytes)
	}
}
