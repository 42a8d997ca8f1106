package notify

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// fleetView is what the watcher reads of the fleet.
type fleetView interface {
	Snapshot(cluster string) map[string]*fleet.Desired
	Presence(cluster string) (fleet.Presence, string)
	Apps() []fleet.AppInfo
}

var _ fleetView = (*fleet.Fleet)(nil)

// Watcher derives notifications from the fleet: from each report an agent sends (Report,
// called by the fleet's OnReport hook) and, on a ticker, from the clusters' presence and the
// repositories' state (Poll). It remembers per cluster×app, per cluster and per app only the
// facts whose changes are events, so each event is emitted once, not once per re-report,
// retry or poll.
type Watcher struct {
	fleet    fleetView
	clusters func() ([]string, error)
	emit     func(Notification)
	now      func() time.Time
	log      *slog.Logger

	mu       sync.Mutex
	apps     map[[2]string]appState // cluster, app
	presence map[string]string      // cluster → state
	repos    map[string]string      // app → repository state
}

// NewWatcher returns a watcher of fl that hands its notifications to emit, which must not
// block. clusters lists the registered clusters, for presence.
func NewWatcher(fl fleetView, clusters func() ([]string, error), emit func(Notification), log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{
		fleet: fl, clusters: clusters, emit: emit, now: time.Now, log: log,
		apps: map[[2]string]appState{}, presence: map[string]string{}, repos: map[string]string{},
	}
}

// Seed sets what is known of an app on a cluster without emitting anything: the reports
// persisted before a restart, so that a hub coming back does not announce them again.
func (w *Watcher) Seed(cluster string, r *fleet.Report) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.apps[[2]string{cluster, r.App}], _ = detect(appState{}, r, cluster, "")
}

// Report compares an app's new report with what was known and emits the events.
func (w *Watcher) Report(cluster string, r *fleet.Report) {
	d := w.fleet.Snapshot(cluster)[r.App]
	desired := ""
	if d != nil {
		desired = d.Revision
	}
	key := [2]string{cluster, r.App}
	w.mu.Lock()
	next, changes := detect(w.apps[key], r, cluster, desired)
	w.apps[key] = next
	w.mu.Unlock()
	now := w.now().UTC()
	for _, c := range changes {
		n := Notification{Event: c.event, Cluster: cluster, App: r.App, Revision: c.revision, Summary: c.summary, Time: now}
		if d != nil && d.Revision == c.revision {
			n.Author, n.Message = d.Author, firstLine(d.Message)
		}
		w.emit(n)
	}
}

// Poll emits a notification for each cluster that went from Connected to Stale and each app
// whose repository went from Current to Stale since the last poll.
func (w *Watcher) Poll() {
	names, err := w.clusters()
	if err != nil {
		w.log.Warn("notifications: list clusters", logging.Err(err))
		return
	}
	now := w.now().UTC()
	var out []Notification
	w.mu.Lock()
	seen := make(map[string]bool, len(names))
	for _, c := range names {
		seen[c] = true
		p, state := w.fleet.Presence(c)
		if w.presence[c] == fleet.StateConnected && state == fleet.StateStale {
			why := fmt.Sprintf("silent for %s", now.Sub(p.LastSeen).Round(time.Second))
			if !p.Connected {
				why = "agent disconnected, " + why
			}
			out = append(out, Notification{Event: ClusterStale, Cluster: c, Time: now,
				Summary: fmt.Sprintf("cluster %s is Stale: %s; its apps show Unknown until it reports again", c, why)})
		}
		w.presence[c] = state
	}
	for c := range w.presence {
		if !seen[c] {
			delete(w.presence, c)
		}
	}
	for _, a := range w.fleet.Apps() {
		if a.Name == "" || a.RepoState == "" {
			continue // a manifest that did not load
		}
		if w.repos[a.Name] == fleet.RepoCurrent && a.RepoState == fleet.RepoStale {
			out = append(out, Notification{Event: RepoStale, App: a.Name, Revision: a.Revision, Time: now,
				Summary: fmt.Sprintf("%s: repository %s cannot be fetched; the last good state is still served", a.Name, redactURL(a.RepoURL))})
		}
		w.repos[a.Name] = a.RepoState
	}
	w.mu.Unlock()
	for _, n := range out {
		w.emit(n)
	}
}

// Run polls every interval until ctx ends.
func (w *Watcher) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		w.Poll()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' || c == '\r' {
			return s[:i]
		}
	}
	return s
}

// userinfo is the credentials part of a URL.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s"']+@`)

// redactURL drops credentials a repository URL may carry.
func redactURL(raw string) string { return userinfo.ReplaceAllString(raw, "$1") }
