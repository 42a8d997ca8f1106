package fleet

import (
	"strings"
	"testing"
	"time"
)

// TestReportEventsBounded: an agent that sends more Warning Events, or longer ones, than it
// should grows the hub's memory no further than MaxEvents of MaxEventMessageBytes.
func TestReportEventsBounded(t *testing.T) {
	f := New(time.Minute)
	var evs []EventItem
	for range 50 {
		evs = append(evs, EventItem{Kind: "Deployment", Name: strings.Repeat("n", 1000), Reason: strings.Repeat("r", 1000),
			Message: strings.Repeat("m", 100_000), Type: "Warning"})
	}
	f.Status("c1", Report{App: "api", Health: "Healthy", Events: evs})
	r, ok := f.LatestReport("c1", "api")
	if !ok {
		t.Fatal("no report")
	}
	if len(r.Events) != MaxEvents {
		t.Fatalf("%d events kept, want %d", len(r.Events), MaxEvents)
	}
	for _, e := range r.Events {
		if len(e.Message) > MaxEventMessageBytes || len(e.Name) > 253 || len(e.Reason) > 128 {
			t.Errorf("event kept at message %d, name %d, reason %d bytes", len(e.Message), len(e.Name), len(e.Reason))
		}
	}
}
