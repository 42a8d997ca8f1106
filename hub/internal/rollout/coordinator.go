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
	Pin(app, cluster string) string
	Apps() []fleet.AppInfo
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
	// Owns says whether this replica coordinates an app's rollouts: the one that owns
	// OwnerKey(app) on the replicas' ring (nil: a hub that runs alone coordinates them all).
	// The others follow the coordinator's record (Peers.Record) and take over from their copy.
	Owns func(app string) bool
	// Local says, over one reading of the registry, which clusters this replica owns: their
	// reports are in its fleet; the others' come from Peers.Reports (nil: all of them).
	Local func() func(cluster string) bool
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
	peers   Peers                        // nil for a hub that runs alone
	remote  map[string][]Report          // app → the other replicas' reports, as last gathered
	defs    map[string]*apps.Application // definitions parsed from records, by digest
	// outbox are the notifications waiting for the followers (notices.go); exported is, per
	// app and follower, the highest seq of the record it was answered.
	outbox   map[string][]notice
	exported map[string]map[string]uint64
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
	if cfg.Owns == nil {
		cfg.Owns = func(string) bool { return true }
	}
	if cfg.Local == nil {
		cfg.Local = func() func(string) bool { return func(string) bool { return true } }
	}
	c := &Coordinator{cfg: cfg, wake: make(chan struct{}, 1), records: map[string]*Record{}, apps: map[string]*apps.Application{},
		remote: map[string][]Report{}, defs: map[string]*apps.Application{}, outbox: map[string][]notice{}, exported: map[string]map[string]uint64{}}
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

// Revision is the revision cluster c gets of app, whose Git target is now commit, the
// definition of app it is rendered with (nil: app as it is), and whether a rollout holds it
// back from commit or from app's definition. It only reads the app's record: the coordinator
// starts a rollout (or makes the first commit seen of an app its baseline) when it next
// advances, from the apps as the round that ends records them (Fleet.SetApps), and asks for a
// round. So a new commit or edit is held back everywhere until its rollout admits clusters,
// and a cluster of an app with no record yet (here: another replica may coordinate it) is held
// at "": it keeps what it has.
func (c *Coordinator) Revision(app *apps.Application, cl apps.ClusterVars, commit string) (string, *apps.Application, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.records[app.Name]
	if app.Rollout == nil {
		if rec != nil && (rec.State != StateCompleted || rec.Target() != (Target{Revision: commit, Spec: app.Spec})) && c.cfg.Owns(app.Name) {
			// The app dropped spec.rollout: all at once, from this commit and definition on
			// (and when it gains it again, they are its baseline).
			base := Baseline(app.Name, Target{Revision: commit, Spec: app.Spec}, c.cfg.Now())
			base.Defs.setDoc(app.Spec, app.Doc)
			base.Seq = rec.Seq + 1
			c.saveLocked(base)
		}
		return "", nil, false
	}
	if rec == nil {
		return "", nil, true
	}
	t, _ := rec.TargetFor(cl.Name)
	if t.Spec == "" || t.Spec == app.Spec {
		return t.Revision, nil, t.Revision != commit
	}
	return t.Revision, c.definitionLocked(rec, t.Spec), true
}

// definitionLocked is the definition of rec's app whose digest is spec, parsed from the
// record once; nil (the app as it is now) when the record lacks it or it no longer parses.
func (c *Coordinator) definitionLocked(rec *Record, spec string) *apps.Application {
	if def := c.defs[spec]; def != nil {
		return def
	}
	doc, ok := rec.Defs.Docs[spec]
	if !ok {
		c.cfg.Logger.Warn("rollout: definition of the app not in its record; held clusters render the current one", logging.KeyApp, rec.App, logging.KeyRollout, rec.ID)
		return nil
	}
	def, err := apps.ParseDefinition("rollout "+rec.ID+" of "+rec.App, doc)
	if err != nil {
		c.cfg.Logger.Warn("rollout: definition of the app not parsed; held clusters render the current one", logging.KeyApp, rec.App, logging.KeyRollout, rec.ID, logging.Err(err))
		return nil
	}
	if len(c.defs) >= maxDefs {
		clear(c.defs)
	}
	c.defs[spec] = def
	return def
}

// maxDefs bounds the parsed definitions a coordinator keeps.
const maxDefs = 256

// ensureLocked makes commit, rendered with app's definition, the target of app's rollout: its
// baseline when the app is new, else a rollout that supersedes the last one (a new commit, an
// edit of the Application, or both), advanced at once (trigger: ask for a round).
func (c *Coordinator) ensureLocked(app *apps.Application, commit string, trigger bool) {
	c.apps[app.Name] = app
	now := c.cfg.Now()
	to := Target{Revision: commit, Spec: app.Spec}
	rec := c.records[app.Name]
	switch {
	case rec == nil:
		rec = Baseline(app.Name, to, now)
		rec.Defs.setDoc(app.Spec, app.Doc)
		c.saveLocked(rec)
		if trigger {
			c.cfg.Trigger()
		}
	case rec.Defs.Spec == "" && app.Spec != "":
		// A record from before edits were rolled out: the app's definition now is the one it
		// carries (and its clusters had), as it was taken then.
		next := rec.Clone()
		next.Defs.Spec = app.Spec
		next.Defs.setDoc(app.Spec, app.Doc)
		next.touch(now)
		c.saveLocked(next)
		c.ensureLocked(app, commit, trigger)
	case rec.Target() != to:
		rec = Start(rec, to, now)
		rec.Defs.setDoc(app.Spec, app.Doc)
		c.commitLocked(rec, true, []Transition{{Kind: notify.RolloutStarted, Summary: fmt.Sprintf("rollout %s of %s to %s started (%d steps)%s", rec.ID, app.Name, short(commit), len(app.Rollout.Steps), editNote(rec))}})
		c.advanceLocked(app.Name, trigger)
	}
}

// editNote is ": an Application edit" for a rollout that carries one.
func editNote(rec *Record) string {
	if rec.Edit() {
		return ": " + EditWords
	}
	return ""
}

// saveLocked installs rec, stores it and tells the fleet which clusters it holds back.
func (c *Coordinator) saveLocked(rec *Record) {
	c.records[rec.App] = rec
	c.cfg.Fleet.SetRolloutHolds(rec.App, holds(rec))
	data, err := json.Marshal(rec)
	if err == nil {
		err = c.cfg.Store.PutRollout(store.Rollout{App: rec.App, Seq: rec.Seq, Data: data})
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

// AdvanceAll advances once every rollout this replica coordinates (starting those of new
// commits, as the last round saw the apps), and follows the others' coordinators.
func (c *Coordinator) AdvanceAll() { c.advanceAll(context.Background()) }

func (c *Coordinator) advanceAll(ctx context.Context) {
	infos := c.cfg.Fleet.Apps()
	for _, info := range infos {
		if info.Rollout == nil || info.Revision == "" {
			continue
		}
		if !c.cfg.Owns(info.Name) {
			c.follow(ctx, info.Name)
			continue
		}
		c.mu.Lock()
		c.ensureLocked(&apps.Application{Name: info.Name, Destination: info.Destination, Rollout: info.Rollout, Spec: info.Spec, Doc: info.Doc}, info.Revision, true)
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.flushAllLocked()
	peers := c.peers
	var names []string
	for name, rec := range c.records {
		if rec.Active() && c.apps[name] != nil && c.cfg.Owns(name) {
			names = append(names, name)
		}
	}
	c.mu.Unlock()
	sort.Strings(names)
	for _, name := range names {
		var reports []Report
		if peers != nil {
			var err error
			if reports, err = peers.Reports(ctx, name); err != nil {
				c.cfg.Logger.Warn("rollout: reports of other replicas not gathered", logging.KeyApp, name, logging.Err(err))
			}
		}
		c.mu.Lock()
		c.remote[name] = reports
		c.advanceLocked(name, true)
		c.mu.Unlock()
	}
}

// follow takes the coordinator's record of app when it is newer than this replica's copy,
// stores it (a replica that takes over goes on from it) and asks for a round when a cluster's
// revision changed.
func (c *Coordinator) follow(ctx context.Context, app string) {
	c.mu.Lock()
	peers := c.peers
	c.mu.Unlock()
	if peers == nil {
		return
	}
	sr, found, err := peers.Record(ctx, app)
	if err != nil || !found {
		if err != nil {
			c.cfg.Logger.Warn("rollout: coordinator's record not read", logging.KeyApp, app, logging.Err(err))
		}
		return
	}
	rec, err := decode(sr)
	if err != nil {
		c.cfg.Logger.Warn("rollout: coordinator's record not read", logging.KeyApp, app, logging.Err(err))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.records[app]
	if old != nil && old.Seq >= rec.Seq {
		return
	}
	if _, err := c.cfg.Store.MergeRollout(sr); err != nil {
		c.cfg.Logger.Warn("rollout: coordinator's record not stored", logging.KeyApp, app, logging.Err(err))
	}
	c.records[app] = rec
	c.cfg.Fleet.SetRolloutHolds(app, holds(rec))
	if old == nil || movedFor(old, rec) {
		c.cfg.Trigger()
	}
}

// movedFor reports whether some cluster gets another revision under b than under a.
func movedFor(a, b *Record) bool {
	for name := range b.Clusters {
		ta, _ := a.TargetFor(name)
		tb, _ := b.TargetFor(name)
		if ta != tb {
			return true
		}
	}
	return a.Target() != b.Target() || a.State != b.State
}

// Export is the record of app's rollout as this replica keeps it, for replica (another one,
// which stores it): the notifications of the transitions it marks may go out once every
// follower has it (notices.go).
func (c *Coordinator) Export(app, replica string) (store.Rollout, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.records[app]
	if rec == nil {
		return store.Rollout{}, false
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return store.Rollout{}, false
	}
	if replica != "" {
		if c.exported[app] == nil {
			c.exported[app] = map[string]uint64{}
		}
		c.exported[app][replica] = max(c.exported[app][replica], rec.Seq)
		c.flushLocked(app)
	}
	return store.Rollout{App: app, Seq: rec.Seq, Data: data}, true
}

// SetPeers gives the coordinator the other replicas (server.Server), once they can be asked.
func (c *Coordinator) SetPeers(p Peers) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peers = p
}

// Coordinates reports whether this replica coordinates app's rollouts.
func (c *Coordinator) Coordinates(app string) bool { return c.cfg.Owns(app) }

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
	res := rec.Advance(app.Rollout, targets, c.observer(name, rec.Target()), c.cfg.Now())
	c.commitLocked(rec, res.Changed, res.Transitions)
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

// observer reads what the agents report of app against t: in this replica's fleet for the
// clusters it owns, in the other replicas' reports (gathered by advanceAll) for the rest.
// A cluster no replica reported on is Stale.
func (c *Coordinator) observer(app string, t Target) func(cluster string) Observation {
	local := c.cfg.Local()
	remote := make(map[string]Report, len(c.remote[app]))
	for _, r := range c.remote[app] {
		remote[r.Cluster] = r
	}
	return func(cluster string) Observation {
		if local(cluster) {
			return Observe(c.cfg.Fleet, cluster, app, t)
		}
		if r, ok := remote[cluster]; ok {
			return r.observe(t)
		}
		return Observation{Stale: true}
	}
}

// Observe is what the fleet says of app on cluster against t: the same reports
// `flotilla status` shows, nothing measured anew. The cluster is on t when its desired state
// is t's revision rendered with t's definition, and its agent holds that.
func Observe(fl fleetView, cluster, app string, t Target) Observation {
	revision := t.Revision
	_, state := fl.Presence(cluster)
	o := Observation{Stale: state != fleet.StateConnected, Pinned: fl.Pin(app, cluster) != ""}
	rep, ok := fl.LatestReport(cluster, app)
	if !ok {
		return o
	}
	d := fl.Snapshot(cluster)[app]
	desired := d != nil && d.Revision == revision && (t.Spec == "" || d.Spec == t.Spec)
	o.Sync, o.Health, o.HealthySince, o.AppliedAt = rep.Sync, rep.Health, rep.HealthySince, rep.AppliedAt
	o.OnRevision = desired && rep.AppliedDigest == d.Digest()
	o.Healthy = rep.Sync == fleet.SyncSynced && rep.Health == healthHealthy
	var nacked uint64
	if rep.LastError != "" {
		_, _ = fmt.Sscanf(rep.LastError, "generation %d:", &nacked)
	}
	switch {
	case rep.RolledBackRevision != "" && rep.RolledBackRevision == revision && (t.Spec == "" || desired):
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

// CountByState counts the latest rollouts of the apps this replica coordinates by state, for
// metrics (summed over the replicas, each app counts once).
func (c *Coordinator) CountByState() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(AllStates))
	for app, rec := range c.records {
		if c.cfg.Owns(app) {
			out[rec.State]++
		}
	}
	return out
}
