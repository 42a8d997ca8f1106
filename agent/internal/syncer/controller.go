package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/kube"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Defaults for Config.
const (
	DefaultHealthInterval = 2 * time.Second
	DefaultWorkers        = 2
	DefaultSyncTimeout    = 5 * time.Minute
	// Retry backoff when the sync policy sets none (Argo CD's defaults).
	defaultRetryDuration    = 5 * time.Second
	defaultRetryFactor      = 2
	defaultRetryMaxDuration = 3 * time.Minute
)

// Log attribute keys of this package, next to shared/logging's.
const (
	keyApplied   = "applied"
	keyUnchanged = "unchanged"
	keyPruned    = "pruned"
	keyHeld      = "held"
	keyKept      = "kept"
	keyDeleted   = "deleted"
	keyReleased  = "released"
	keyAttempt   = "attempt"
	keyRetry     = "retry"
	keyWarning   = "warning"
	keyTarget    = "target"
	keyReason    = "reason"
	keyPhase     = "phase"
	keyResult    = "result"
)

// Config configures a Controller.
type Config struct {
	RESTConfig *rest.Config
	// Namespace is the agent's own namespace, where app state is kept.
	Namespace string
	// FieldManager is the server-side apply field manager (apply.DefaultFieldManager).
	FieldManager string
	Reporter     Reporter
	Logger       *slog.Logger
	// HealthInterval is how often app health is assessed (DefaultHealthInterval).
	HealthInterval time.Duration
	// Workers is how many apps sync at once (DefaultWorkers).
	Workers int
	// SyncTimeout bounds each call of the engine for an app: an apply, a heal, a prune, a
	// removal, a drift check (DefaultSyncTimeout). One still running then is cancelled and
	// fails as a transient error, retried with backoff (engine.go).
	SyncTimeout time.Duration
	// AllowSelfManagement lets desired state modify the agent itself: its namespace and its
	// own ServiceAccount and RBAC objects (refused otherwise, see selfGuard).
	AllowSelfManagement bool
	// OnEvent, when set, is told of automatic rollbacks, done or failed (notifications). It is
	// called from a worker and must return quickly.
	OnEvent func(Event)
	// AgeIdentity decrypts the EncryptedSecrets of desired state (encrypted.go); without one
	// a revision holding an EncryptedSecret fails.
	AgeIdentity age.Identity
	// Registerer, when set, registers the syncer's Prometheus metrics (metrics.go).
	Registerer prometheus.Registerer
}

// Controller is the agent's per-app loop: it applies each app's latest desired state, keeps
// its state in the cluster, assesses health and reports to the hub.
type Controller struct {
	cfg     Config
	log     *slog.Logger
	applier *apply.Applier
	store   *state.Store
	kube    *kube.Client
	queue   workqueue.TypedDelayingInterface[string]
	metrics *metrics
	// warnings are each app's latest Warning Events (warnings.go).
	warnings warningSet
	// assessNow wakes the health loop (assessSoon).
	assessNow chan struct{}

	mu   sync.Mutex
	apps map[string]*app
	// removed keeps the generation each removed app was removed at, so a stale Desired
	// delivered afterwards does not bring it back.
	removed map[string]uint64
}

// NewController returns a Controller; Load, then Run it.
func NewController(cfg Config) (*Controller, error) {
	if cfg.RESTConfig == nil || cfg.Namespace == "" || cfg.Reporter == nil {
		return nil, errors.New("syncer: RESTConfig, Namespace and Reporter are required")
	}
	if cfg.FieldManager == "" {
		cfg.FieldManager = apply.DefaultFieldManager
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = DefaultHealthInterval
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = DefaultSyncTimeout
	}
	client, err := kube.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	c := &Controller{
		cfg:     cfg,
		log:     cfg.Logger,
		store:   state.NewStore(client, cfg.Namespace),
		kube:    client,
		queue:   workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{Name: "syncer"}),
		apps:    map[string]*app{},
		removed: map[string]uint64{},
		metrics: newMetrics(cfg.Registerer),

		assessNow: make(chan struct{}, 1),
	}
	guard := cfg.Namespace
	if cfg.AllowSelfManagement {
		guard = ""
	}
	c.applier, err = apply.New(cfg.RESTConfig, apply.Options{
		FieldManager: cfg.FieldManager, GuardNamespace: guard, Owners: c, OnChange: c.noteChange,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Load restores every app's state from the cluster. It applies and prunes nothing: each app
// keeps what it holds until the hub sends something newer (invariant 4).
func (c *Controller) Load(ctx context.Context) error {
	states, err := c.store.Load(ctx)
	if states == nil && err != nil {
		return err
	}
	if err != nil {
		c.log.Warn("some app state could not be read; those apps start empty", logging.Err(err))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, st := range states {
		a := c.apps[name]
		if a == nil {
			a = &app{name: name}
			c.apps[name] = a
		}
		if a.desired != nil && a.desired.Generation > st.Generation {
			a.applied = st // the hub already sent something newer; keep it
			continue
		}
		a.applied = st
		a.sync.done(st.Generation)
		a.drift.all = true // compare everything once: it may have changed while the agent was away
		if st.Digest == "" {
			continue // only the inventory of a sync that failed half-way: nothing is held
		}
		d, err := desiredFromState(st)
		if err != nil {
			c.log.Warn("app state holds an unreadable bundle", logging.KeyApp, name, logging.Err(err))
		}
		a.desired = decrypted(d, c.cfg.AgeIdentity)
	}
	c.log.Info("app state loaded", logging.KeyCount, len(states))
	return nil
}

// Held returns what the agent holds for each app, sorted by app.
func (c *Controller) Held() []Held {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Held
	for _, a := range c.apps {
		if st := a.applied; st != nil && st.Digest != "" {
			out = append(out, Held{App: st.App, Generation: st.Generation, Revision: st.Revision, Digest: st.Digest})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// SetDesired records d as its app's desired state and schedules a sync. It never blocks. A
// generation not newer than the app's latest is ignored (duplicates and stale deliveries).
func (c *Controller) SetDesired(d *Desired) {
	if d == nil || d.App == "" {
		return
	}
	d = decrypted(d, c.cfg.AgeIdentity)
	c.mu.Lock()
	a := c.apps[d.App]
	if a == nil {
		if d.Generation <= c.removed[d.App] {
			c.mu.Unlock()
			return
		}
		a = &app{name: d.App}
		c.apps[d.App] = a
	}
	if d.Generation <= a.latest() {
		c.mu.Unlock()
		return
	}
	was := a.desired
	a.desired, a.remove = d, 0
	a.sync.restart()
	if a.rb.cancelAssess != nil && (a.applied == nil || a.applied.Digest != d.Digest) {
		a.rb.cancelAssess() // a new revision: stop judging the previous one, apply this one
	}
	if a.sync.cancelSteps != nil && (was == nil || was.Digest != d.Digest) {
		a.sync.cancelSteps() // a newer revision: stop waiting for the waves of this one (waves.go)
	}
	if was != nil && was.Digest == d.Digest && !heals(was.Policy) && heals(d.Policy) {
		// Self-heal turned on for the revision held: the drift already found is put back now,
		// not when its objects next change.
		a.drift.all = true
	}
	c.mu.Unlock()
	c.queue.Add(d.App)
}

// heals reports whether p puts drift back.
func heals(p SyncPolicy) bool { return p.Automated && p.SelfHeal }

// Remove stops managing app: its state is deleted, and its objects too when its policy prunes
// (never Namespaces, PersistentVolumeClaims or CRDs). It never blocks; a generation older than
// the app's desired state is ignored.
func (c *Controller) Remove(app string, generation uint64) {
	c.mu.Lock()
	a := c.apps[app]
	if a == nil || (a.desired != nil && generation < a.desired.Generation) || (a.remove != 0 && generation < a.remove) {
		c.mu.Unlock()
		return
	}
	a.remove = max(generation, 1)
	c.mu.Unlock()
	c.queue.Add(app)
}

// ReportAll sends every app's status again (after a reconnect).
func (c *Controller) ReportAll() {
	for _, a := range c.snapshot() {
		c.publish(a, true)
	}
}

// Run syncs apps and assesses their health until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for range c.cfg.Workers {
		g.Go(func() error {
			for c.processNext(ctx) {
			}
			return nil
		})
	}
	g.Go(func() error {
		c.healthLoop(ctx)
		return nil
	})
	g.Go(func() error { c.watchWarnings(ctx); return nil })
	g.Go(func() error {
		for _, a := range c.snapshot() {
			c.mu.Lock()
			st := a.applied
			c.mu.Unlock()
			if st != nil {
				c.applier.Watch(ctx, fromStateRefs(st.Inventory))
				c.queue.AddAfter(a.name, driftDelay) // the drift check Load asked for
			}
		}
		c.applier.Run(ctx)
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		c.queue.ShutDown()
		return nil
	})
	return g.Wait()
}

func (c *Controller) processNext(ctx context.Context) bool {
	name, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(name)
	if ctx.Err() == nil {
		c.reconcile(ctx, name)
	}
	return true
}

func (c *Controller) snapshot() []*app {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*app, 0, len(c.apps))
	for _, a := range c.apps {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// reconcile brings one app to its desired state: level-triggered, it reads what is desired
// and what is applied and acts on the difference.
func (c *Controller) reconcile(ctx context.Context, name string) {
	c.mu.Lock()
	a := c.apps[name]
	c.mu.Unlock()
	if a == nil {
		return
	}
	defer func() { // after a.op is released: the health loop skips apps being reconciled
		c.publish(a, false) // the one report of a reconcile, whatever it did (none once removed)
		c.mu.Lock()
		due := a.health.takeDue()
		c.mu.Unlock()
		if due {
			c.assessSoon()
		}
	}()
	a.op.Lock()
	defer a.op.Unlock()

	c.mu.Lock()
	d, applied, removing := a.desired, a.applied, a.remove != 0
	c.mu.Unlock()
	switch {
	case removing:
		c.removeApp(ctx, a, applied)
		return
	}
	c.saveUnsaved(ctx, a)
	if d == nil {
		return
	}
	c.pruneLast(ctx, a)
	if c.rollBackIfDue(ctx, a, d) || c.holdRolledBack(ctx, a, d) {
		return
	}

	c.mu.Lock()
	applied = a.applied
	forced := a.sync.forced(d)
	if applied != nil && applied.Digest == d.Digest && !forced {
		// Same content: acknowledge without touching the cluster. The state catches up on its
		// next write, unless this ends a rollback mark (Git moved back to what the cluster
		// holds): that is saved now.
		ack := a.sync.acked < d.Generation
		unmark := false
		if ack {
			st := *applied
			st.Generation, st.Revision = d.Generation, d.Revision
			if !reflect.DeepEqual(st.Policy.IgnoreDifferences, d.Ignore) {
				a.drift.all = true // other fields are ignored now: compare every object again
			}
			st.Policy = toStatePolicy(d.Policy, d.Health, d.Access, d.Ignore)
			unmark, st.RolledBack = st.RolledBack != nil, nil
			a.applied = &st
			a.sync.done(d.Generation)
			applied = &st
		}
		c.mu.Unlock()
		if unmark {
			_ = c.save(ctx, a, applied) // a failure is retried (save.go)
		}
		if ack {
			c.cfg.Reporter.Ack(name, d.Generation, d.Revision, d.Digest)
		}
		c.checkDrift(ctx, a, d, applied)
		return
	}
	skip := (!d.Policy.Automated && !d.SyncRequested) || a.sync.gaveUp == d.Generation
	c.mu.Unlock()
	switch {
	case skip:
		c.checkDrift(ctx, a, d, applied)
	case c.awaitDependencies(ctx, a, d, applied): // depends.go
	default:
		c.sync(ctx, a, d, applied)
	}
}

var _ apply.Inventories = (*Controller)(nil)

// Holds implements apply.Inventories with what each app last applied: the engine refuses to
// write an object for one app that another app's inventory holds.
func (c *Controller) Holds(app string, ref apply.ObjectRef) bool {
	c.mu.Lock()
	a := c.apps[app]
	var inv []apply.ObjectRef
	if a != nil && a.applied != nil {
		inv = fromStateRefs(a.applied.Inventory)
	}
	c.mu.Unlock()
	key := ref.Key()
	for _, r := range inv {
		if r.Key() == key {
			return true
		}
	}
	return false
}
