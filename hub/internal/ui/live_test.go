package ui

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// countingPages is a Backend that counts the FleetPage reads and the answers "unchanged".
type countingPages struct {
	Backend
	mu               sync.Mutex
	reads, unchanged int
}

func (c *countingPages) FleetPage(ctx context.Context, in *flotillav1.FleetPageRequest, opts ...grpc.CallOption) (*flotillav1.FleetPageResponse, error) {
	resp, err := c.Backend.FleetPage(ctx, in, opts...)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	if err == nil && resp.Unchanged {
		c.unchanged++
	}
	return resp, err
}

func (c *countingPages) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads, c.unchanged
}

// TestLiveReadsEachPageOnce: the live updates read each distinct page once per poll however
// many pages listen to it, and a poll of a page that did not change is answered "unchanged"
// and sends the listeners nothing.
func TestLiveReadsEachPageOnce(t *testing.T) {
	d := startDashboard(t, 50)
	b := &countingPages{Backend: d.hub.Operator(t)}
	l := newLive(b, time.Hour, 50, slog.New(slog.DiscardHandler))
	apiPage := query{App: "api", Page: 1}
	subs := []*listener{l.add(apiPage), l.add(apiPage), l.add(apiPage), l.add(query{Cluster: "prod-1", Page: 1})}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	l.read(ctx, l.listeners())
	if reads, _ := b.counts(); reads != 2 {
		t.Errorf("first poll: %d reads of the hub, want 2 (one per distinct page)", reads)
	}
	for i, s := range subs {
		select {
		case <-s.out:
		default:
			t.Errorf("listener %d got no first event", i)
		}
	}
	l.read(ctx, l.listeners())
	if reads, unchanged := b.counts(); reads != 4 || unchanged != 2 {
		t.Errorf("second poll: %d reads, %d unchanged; want 4 and 2", reads, unchanged)
	}
	for i, s := range subs {
		select {
		case e := <-s.out:
			t.Errorf("listener %d got %s though nothing changed", i, e)
		default:
		}
	}
}
