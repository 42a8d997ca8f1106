package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/notify"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// recordStore is where records are kept (store.Store).
type recordStore interface {
	PutRollout(r store.Rollout) error
	MergeRollout(r store.Rollout) (bool, error)
	ListRollouts() ([]store.Rollout, error)
}

// fleetView is what the coordinator reads of the fleet, and where it says which clusters it
// holds back (fleet.Fleet).
type fleetView interface {
	LatestReport(cluster, app string) (fleet.Report, bool)
	Presence(cluster string) (fleet.Presence, string)
	Snapshot(cluster string) map[string]*fleet.Desired
	SetRolloutHolds(app string, holds map[string]string)
	SetRolloutHold(app, cluster, msg string)
	Pin(app, cluster string) string
}

var (
	_ recordStore = (*store.Store)(nil)
	_ fleetView   = (*fleet.Fleet)(nil)
)

// Config wires a Coordinator.
type Config struct {
	Store recordStore
	Fleet fleetView
	// Clusters lists the clusters the rollouts place (those this hub renders for).
	Clusters func() ([]apps.ClusterVars, error)
	// Trigger asks the reconciler for a round: a cluster's revision changed.
	Trigger func()
	// Notify is told each transition once (may be nil).
	Notify func(rec *Record, t Transition)
	// Changed is told each record this replica changed, to replicate it (may be nil).
	Changed func(r store.Rollout)
	// Off, when set, says why this hub runs no rollout (it is one of several replicas, whose
	// rollouts are not coordinated yet): a new commit of an app with spec.rollout is then held
	// back on every cluster, which keeps the revision it runs, and `flotilla status` says why.
	Off string
	// Interval is how often the active rollouts are judged (default a second).
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// Coordinator keeps each app's latest rollout and answers the reconciler which revision each
// cluster gets. It is safe for concurrent use.
type Coordinator struct {
	cfg  Config
	wake chan struct{}

	mu      sync.Mutex
	records map[string]*Record
	apps    map[string]*apps.Application // the apps with spec.rollout, as the last round saw them
}

// New returns a coordinator with the records kept in the store.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Trigger == nil {
		cfg.Trigger = func() {}
	}
	c := &Coordinator{cfg: cfg, wake: make(chan struct{}, 1), records: map[string]*Record{}, apps: map[string]*apps.Application{}}
	list, err := cfg.Store.ListRollouts()
	if err != nil {
		return nil, fmt.Errorf("rollouts: %w", err)
	}
	for _, sr := range list {
		rec, err := decode(sr)
		if err != nil {
			cfg.Logger.Warn("rollout record not loaded", logging.KeyApp, sr.App, logging.Err(err))
			continue
		}
		c.records[rec.App] = rec
		cfg.Fleet.SetRolloutHolds(rec.App, holds(rec))
	}
	return c, nil
}

func decode(sr store.Rollout) (*Record, error) {
	var rec Record
	if err := json.Unmarshal(sr.Data, &rec); err != nil {
		return nil, err
	}
	rec.App, rec.Seq = sr.App, sr.Seq
	return &rec, nil
}

// Revision is the revision cluster c gets of app, whose Git target is now commit, and whether
// a rollout holds it back from commit. A new commit of an app with spec.rollout starts its
// rollout (superseding a running one); the first commit seen of an app is its baseline.
func (c *Coordinator) Revision(app *apps.Application, cl apps.ClusterVars, commit string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	rec := c.records[app.Name]
	if app.Rollout == nil {
		delete(c.apps, app.Name)
		if rec != nil && (rec.State != StateCompleted || rec.Revision != commit) {
			// The app dropped spec.rollout: all at once, from this commit on.
			base := Baseline(app.Name, commit, now)
			base.Seq = rec.Seq + 1
			c.saveLocked(base)
		}
		return "", false
	}
	if c.cfg.Off != "" {
		return c.holdLocked(app.Name, rec, cl.Name, commit, now)
	}
	c.apps[app.Name] = app
	switch {
	case rec == nil:
		c.saveLocked(Baseline(app.Name, commit, now))
	case rec.Revision != commit:
		rec = Start(rec, commit, now)
		c.saveLocked(rec)
		c.notifyLocked(rec, Transition{Kind: notify.RolloutStarted, Summary: fmt.Sprintf("rollout %s of %s to %s started (%d steps)", rec.ID, app.Name, short(commit), len(app.Rollout.Steps))})
		c.advanceLocked(app.Name, false) // this round renders what it admits
	}
	rev, held := c.records[app.Name].RevisionFor(cl.Name)
	if !held {
		return "", false
	}
	return rev, true
}

// holdLocked is Revision on a hub that runs no rollout: the first commit seen of the app is
// its baseline, everywhere at once; a later one is held back on every cluster.
func (c *Coordinator) holdLocked(app string, rec *Record, cluster, commit string, now time.Time) (string, bool) {
	if rec == nil {
		rec = Baseline(app, commit, now)
		c.saveLocked(rec)
	}
	rev, _ := rec.RevisionFor(cluster)
	if rev == commit {
		c.cfg.Fleet.SetRolloutHold(app, cluster, "")
		return "", false
	}
	c.cfg.Fleet.SetRolloutHold(app, cluster, fmt.Sprintf("Rollout of %s not started: %s", short(commit), c.cfg.Off))
	return rev, true
}

// saveLocked installs rec, stores it and tells the fleet which clusters it holds back.
func (c *Coordinator) saveLocked(rec *Record) {
	c.records[rec.App] = rec
	c.cfg.Fleet.SetRolloutHolds(rec.App, holds(rec))
	data, err := json.Marshal(rec)
	if err == nil {
		sr := store.Rollout{App: rec.App, Seq: rec.Seq, Data: data}
		if err = c.cfg.Store.PutRollout(sr); err == nil && c.cfg.Changed != nil {
			c.cfg.Changed(sr)
		}
	}
	if err != nil {
		c.cfg.Logger.Error("rollout record not stored", logging.KeyApp, rec.App, logging.KeyRollout, rec.ID, logging.Err(err))
	}
}

func holds(rec *Record) map[string]string {
	if rec.State == StateCompleted {
		return nil
	}
	out := map[string]string{}
	for name := range rec.Clusters {
		if msg := rec.Hold(name); msg != "" {
			out[name] = msg
		}
	}
	return out
}

func (c *Coordinator) notifyLocked(rec *Record, t Transition) {
	c.cfg.Logger.Info("rollout "+string(t.Kind), logging.KeyApp, rec.App, logging.KeyRollout, rec.ID, logging.KeyRevision, rec.Revision,
		logging.KeyStep, t.Step+1, logging.KeyState, rec.State, logging.KeyDuration, t.Duration)
	if c.cfg.Notify != nil {
		c.cfg.Notify(rec.Clone(), t)
	}
}

// Poke asks for the active rollouts to be judged now (an agent reported).
func (c *Coordinator) Poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run judges the active rollouts every interval, or when poked, until ctx ends.
func (c *Coordinator) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.wake:
		}
		c.AdvanceAll()
	}
}

// AdvanceAll advances every active rollout once.
func (c *Coordinator) AdvanceAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.records))
	for name, rec := range c.records {
		if rec.Active() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		c.advanceLocked(name, true)
	}
}

// advanceLocked advances app's rollout from the agents' reports; trigger asks for a round
// when a cluster's revision changed.
func (c *Coordinator) advanceLocked(name string, trigger bool) {
	rec, app := c.records[name], c.apps[name]
	if rec == nil || app == nil || !rec.Active() {
		return
	}
	targets, err := c.targetsOf(app)
	if err != nil {
		c.cfg.Logger.Warn("rollout not advanced: clusters not listed", logging.KeyApp, name, logging.Err(err))
		return
	}
	res := rec.Advance(app.Rollout, targets, c.observer(name, rec.Revision), c.cfg.Now())
	if res.Changed {
		c.saveLocked(rec)
	}
	for _, t := range res.Transitions {
		c.notifyLocked(rec, t)
	}
	if res.Moved && trigger {
		c.cfg.Trigger()
	}
}

func (c *Coordinator) targetsOf(app *apps.Application) ([]apps.ClusterVars, error) {
	all, err := c.cfg.Clusters()
	if err != nil {
		return nil, err
	}
	out := all[:0:0]
	for _, cl := range all {
		if app.Targets(cl) {
			out = append(out, cl)
		}
	}
	return out, nil
}

// observer reads what the agents report of app against revision.
func (c *Coordinator) observer(app, revision string) func(cluster string) Observation {
	return func(cluster string) Observation {
		return Observe(c.cfg.Fleet, cluster, app, revision)
	}
}

// Observe is what the fleet says of app on cluster against revision: the same reports
// `flotilla status` shows, nothing measured anew.
func Observe(fl fleetView, cluster, app, revision string) Observation {
	_, state := fl.Presence(cluster)
	o := Observation{Stale: state != fleet.StateConnected, Pinned: fl.Pin(app, cluster) != ""}
	rep, ok := fl.LatestReport(cluster, app)
	if !ok {
		return o
	}
	d := fl.Snapshot(cluster)[app]
	desired := d != nil && d.Revision == revision
	o.Sync, o.Health, o.HealthySince, o.AppliedAt = rep.Sync, rep.Health, rep.HealthySince, rep.AppliedAt
	o.OnRevision = desired && rep.AppliedDigest == d.Digest()
	o.Healthy = rep.Sync == fleet.SyncSynced && rep.Health == healthHealthy
	var nacked uint64
	if rep.LastError != "" {
		_, _ = fmt.Sscanf(rep.LastError, "generation %d:", &nacked)
	}
	switch {
	case rep.RolledBackRevision != "" && rep.RolledBackRevision == revision:
		o.Failure = fmt.Sprintf("its agent rolled %s back: %s", short(revision), rep.Message)
	case desired && rep.LastError != "" && nacked >= d.Generation:
		o.Failure = "its agent refused " + short(revision) + ": " + rep.LastError
	case o.OnRevision && rep.Health == healthDegraded && rep.RolledBackRevision == "":
		o.Degraded = fmt.Sprintf("Degraded on %s: %s", short(revision), rep.Message)
	}
	return o
}

// Health values the agents report.
const (
	healthHealthy  = "Healthy"
	healthDegraded = "Degraded"
)

var _ fleet.RolloutGate = (*Coordinator)(nil)

// CountByState counts the apps' latest rollouts by state, for metrics.
func (c *Coordinator) CountByState() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(AllStates))
	for _, rec := range c.records {
		out[rec.State]++
	}
	return out
}
