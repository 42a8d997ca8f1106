package notify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
)

// PollInterval is how often cluster presence and repository states are checked.
const PollInterval = time.Second

// Notifier is a Watcher feeding a Dispatcher. A nil *Notifier does nothing, so the hub runs
// the same without notifications configured.
type Notifier struct {
	watcher    *Watcher
	dispatcher *Dispatcher
}

// New returns a notifier of fl's events for cfg's sinks. clusters lists the registered
// clusters; rec may be nil.
func New(cfg *Config, fl fleetView, clusters func() ([]string, error), rec recorder, log *slog.Logger) *Notifier {
	d := NewDispatcher(cfg, rec, log)
	return &Notifier{watcher: NewWatcher(fl, clusters, d.Notify, log), dispatcher: d}
}

// Seed records a report persisted before a restart without notifying.
func (n *Notifier) Seed(cluster string, r *fleet.Report) {
	if n != nil {
		n.watcher.Seed(cluster, r)
	}
}

// Report handles an agent's new report for an app (the fleet's OnReport hook). It never
// blocks on delivery.
func (n *Notifier) Report(cluster string, r *fleet.Report) {
	if n != nil {
		n.watcher.Report(cluster, r)
	}
}

// RemovalHeld announces a held mass removal (the fleet's OnRemovalHold hook). It never blocks.
func (n *Notifier) RemovalHeld(h fleet.RemovalHold) {
	if n == nil {
		return
	}
	n.dispatcher.Notify(Notification{Event: RemovalHeld, Time: h.Since,
		Summary: fmt.Sprintf("%d of %d Applications are gone from the apps source (%s): nothing of them is removed until they come back or an operator runs `flotilla apps confirm-removal`",
			len(h.Apps), h.Total, strings.Join(h.Apps, ", "))})
}

// Rollout announces a transition of an app's progressive rollout (the rollout coordinator's
// hook, called once per transition). It never blocks.
func (n *Notifier) Rollout(event Event, app, revision, summary string, at time.Time) {
	if n == nil {
		return
	}
	n.dispatcher.Notify(Notification{Event: event, App: app, Revision: revision, Summary: summary, Time: at})
}

// Run polls and delivers until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	if n == nil {
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.watcher.Run(ctx, PollInterval) })
	g.Go(func() error { return n.dispatcher.Run(ctx) })
	return g.Wait()
}
