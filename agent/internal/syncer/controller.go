package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Defaults for Config.
const (
	DefaultHealthInterval = 2 * time.Second
	DefaultWorkers        = 2
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
	kube    kubernetes.Interface
	queue   workqueue.TypedDelayingInterface[string]
	metrics *metrics
	// assessNow wakes the health loop (assessSoon).
	assessNow chan struct{}

	mu   sync.Mutex
	apps map[string]*app
	// removed keeps the generation each removed app was removed at, so a stale Desired
	// delivered afterwards does not bring it back.
	removed map[string]uint64
}

// app is the controller's record of one app. Fields below op are guarded by Controller.mu;
// applied is replaced, never modified, so a copy of the pointer can be read without the lock.
type app struct {
	name string
	op   sync.Mutex // held while syncing, removing or assessing: serialises state writes
	pub  sync.Mutex // serialises status reports

	desired   *Desired
	applied   *state.AppState // what the cluster holds; nil until something was applied
	remove    uint64          // generation of a pending Remove, 0 if none
	acked     uint64          // generation last acked
	synced    uint64          // generation last applied (a sync request is done)
	attempts  int             // failed sync attempts at desired.Generation
	gaveUp    uint64          // generation whose retries are exhausted
	syncErr   string          // scrubbed, for the status message
	notes     string          // held / stale / orphaned objects of the last sync
	pending   bool            // objects await pruning or confirmation: not Synced
	stale     int             // objects no longer rendered, kept (for PruneLast: until healthy)
	health    health.Status
	healthMsg string
	healthFor *state.AppState // the applied state health was assessed for
	assessDue bool            // a new revision was applied: assess it once reconcile is done
	resources []ResourceStatus
	drift     []DriftItem
	// driftRefs are the objects that changed since the last drift check; driftAll asks to
	// compare every object (after a start: changes made while the agent was away).
	driftRefs map[string]driftNote
	driftAll  bool
	contests  map[string]*contest // self-heals of objects others change back (drift.go); guarded by op
	reported  *AppStatus
	rb        rollbackState
	rules     ruleSet // guarded by op, not Controller.mu

	// pruneFailed counts the deletions of the last prune that failed; they are retried, the
	// pruneTries-th time with backoff (prune.go).
	pruneFailed, pruneTries int
	// unsaved records failed state writes (save.go).
	unsaved unsavedState
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
	client, err := kubernetes.NewForConfig(cfg.RESTConfig)
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
		a.applied, a.acked, a.synced = st, st.Generation, st.Generation
		a.driftAll = true // compare everything once: it may have changed while the agent was away
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
	a.desired, a.remove, a.attempts, a.syncErr = d, 0, 0, ""
	if a.rb.cancelAssess != nil && (a.applied == nil || a.applied.Digest != d.Digest) {
		a.rb.cancelAssess() // a new revision: stop judging the previous one, apply this one
	}
	c.mu.Unlock()
	c.queue.Add(d.App)
}

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

// latest is the newest generation the app has seen. Caller holds Controller.mu.
func (a *app) latest() uint64 {
	g := a.remove
	if a.desired != nil {
		g = max(g, a.desired.Generation)
	}
	if a.applied != nil {
		g = max(g, a.applied.Generation)
	}
	return g
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
		c.mu.Lock()
		due := a.assessDue
		a.assessDue = false
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
		c.publish(a, false)
		return
	}

	c.mu.Lock()
	applied = a.applied
	forced := d.SyncRequested && a.synced < d.Generation
	if applied != nil && applied.Digest == d.Digest && !forced {
		// Same content: acknowledge without touching the cluster. The state catches up on its
		// next write, unless this ends a rollback mark (Git moved back to what the cluster
		// holds): that is saved now.
		ack := a.acked < d.Generation
		unmark := false
		if ack {
			st := *applied
			st.Generation, st.Revision = d.Generation, d.Revision
			st.Policy = toStatePolicy(d.Policy, d.Health, d.Access)
			unmark, st.RolledBack = st.RolledBack != nil, nil
			a.applied, a.acked, a.synced = &st, d.Generation, d.Generation
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
		c.publish(a, false)
		return
	}
	skip := (!d.Policy.Automated && !d.SyncRequested) || a.gaveUp == d.Generation
	c.mu.Unlock()
	if skip {
		c.checkDrift(ctx, a, d, applied)
	} else {
		c.sync(ctx, a, d, applied)
	}
	c.publish(a, false)
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
