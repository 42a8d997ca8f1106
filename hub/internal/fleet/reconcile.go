package fleet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	chart "helm.sh/helm/v4/pkg/chart/v2"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/charts"
	"github.com/flotilla-dev/flotilla/hub/internal/metrics"
	"github.com/flotilla-dev/flotilla/hub/internal/render"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	"github.com/flotilla-dev/flotilla/shared/ignore"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

type fetcher interface {
	Fetch(ctx context.Context, repoURL, rev string) (*source.Snapshot, error)
}

type renderer interface {
	Render(ctx context.Context, fsys filesys.FileSystem, path string) ([]*unstructured.Unstructured, error)
	RenderChart(ctx context.Context, src render.ChartSource, rel render.Release) ([]*unstructured.Unstructured, error)
	LoadChart(src render.ChartSource) (*chart.Chart, error)
	PatchObjects(ctx context.Context, objs []*unstructured.Unstructured, patches []render.Patch) ([]*unstructured.Unstructured, error)
}

type bundleCache interface {
	Get(key string) (*bundle.Bundle, bool)
	Put(key string, b *bundle.Bundle)
}

var (
	_ fetcher     = (*source.Fetcher)(nil)
	_ renderer    = (*render.Renderer)(nil)
	_ bundleCache = (*render.Cache)(nil)
)

// ClusterVars is a registered cluster as the reconciler sees it.
type ClusterVars = apps.ClusterVars

// ReconcilerConfig wires the reconciler.
type ReconcilerConfig struct {
	// AppsDir is a directory of Application manifests; or AppsRepo/AppsRevision/AppsPath name
	// them in Git (app of apps).
	AppsDir      string
	AppsRepo     string
	AppsRevision string
	AppsPath     string
	PollInterval time.Duration
	// RenderTimeout bounds one render.
	RenderTimeout time.Duration
	Fetcher       fetcher
	Renderer      renderer
	Cache         bundleCache
	// Charts fetches charts from Helm and OCI repositories; nil: apps with such charts fail
	// with ErrNoChartFetcher (charts in Git render without it).
	Charts charts.Source
	// Clusters lists the registered, non-revoked clusters.
	Clusters func() ([]ClusterVars, error)
	Logger   *slog.Logger
	// Metrics may be nil.
	Metrics *metrics.Hub
	// IgnoreDifferences are the hub's default ignoreDifferences rules (--ignore-differences):
	// every app gets them before its own.
	IgnoreDifferences []ignore.Rule
	// Rollouts runs the apps' progressive rollouts (may be nil: every cluster gets Git's target).
	Rollouts RolloutGate
}

// Reconciler turns Git into desired state: each round it loads the Applications, fetches
// their repositories, renders each app once per distinct (tree, path) and records the result
// per target cluster in the Fleet. A failed fetch or render changes nothing (invariant 1).
type Reconciler struct {
	cfg     ReconcilerConfig
	fleet   *Fleet
	trigger chan struct{}
	// lastFetched is the last successful fetch per repo@revision (owned by Run's goroutine).
	lastFetched map[string]time.Time
	// rendered is the last render per repo:path, keyed by what it read (owned likewise).
	rendered map[string]*rendered
	// policy remembers what the spec.policy check needs of recent bundles.
	policy policyIndex
	// fetchRound and charts are the current round's fetches of Git and of charts, for the
	// sources other than an app's primary one (charts.go; owned by Run's goroutine).
	fetchRound func(repo, rev string) (*source.Snapshot, error)
	charts     *chartRun
	// chartDirs remembers which repository paths of which trees hold a chart (charts.go).
	chartDirs map[string]bool
}

// NewReconciler returns a reconciler feeding fleet.
func NewReconciler(cfg ReconcilerConfig, fleet *Fleet) *Reconciler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RenderTimeout == 0 {
		cfg.RenderTimeout = time.Minute
	}
	if cfg.AppsRevision == "" {
		cfg.AppsRevision = "HEAD"
	}
	return &Reconciler{cfg: cfg, fleet: fleet, trigger: make(chan struct{}, 1), lastFetched: map[string]time.Time{}, rendered: map[string]*rendered{}}
}

// Trigger asks for a round now (a webhook, a new cluster, an operator).
func (r *Reconciler) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Run reconciles until ctx ends: at once, then every poll interval (±20% jitter) or when
// triggered.
func (r *Reconciler) Run(ctx context.Context) error {
	for {
		r.Round(ctx)
		wait := r.cfg.PollInterval
		if wait <= 0 {
			wait = 3 * time.Minute
		}
		wait = time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.trigger:
			t.Stop()
		case <-t.C:
		}
	}
}

// Round runs one reconcile round.
func (r *Reconciler) Round(ctx context.Context) {
	log := r.cfg.Logger
	start := time.Now()
	list, loadErrs := r.loadApps(ctx)
	for _, err := range loadErrs {
		log.Warn("application manifest rejected", logging.Err(err))
	}
	clusters, err := r.cfg.Clusters()
	if err != nil {
		log.Error("list clusters", logging.Err(err))
		return
	}
	snaps := map[string]*source.Snapshot{}
	snapErrs := map[string]error{}
	// fetch fetches each repo@revision once per round.
	fetch := func(repo, rev string) (*source.Snapshot, error) {
		key := repo + "@" + rev
		if snap, ok := snaps[key]; ok {
			return snap, nil
		}
		if err := snapErrs[key]; err != nil {
			return nil, err
		}
		fetchStart := time.Now()
		snap, err := r.cfg.Fetcher.Fetch(ctx, repo, rev)
		r.cfg.Metrics.GitFetch(time.Since(fetchStart), err)
		if err != nil {
			snapErrs[key] = err
			return nil, err
		}
		snaps[key] = snap
		r.lastFetched[key] = time.Now()
		return snap, nil
	}
	r.fetchRound, r.charts = fetch, nil
	infos := make([]*AppInfo, 0, len(list))
	targets := make(map[string]map[string]bool, len(clusters))
	for _, c := range clusters {
		targets[c.Name] = map[string]bool{} // covered by this load, even when no app targets it
	}
	for _, app := range list {
		info := &AppInfo{
			Name: app.Name, SourceFile: app.SourceFile, RepoURL: app.Source.RepoURL,
			TargetRevision: app.Source.TargetRevision, Path: app.Source.Path, Warnings: app.Warnings,
			Destination: app.Destination,
		}
		infos = append(infos, info)
		info.Rollout, info.Spec, info.Doc = app.Rollout, app.Spec, app.Doc // for the replica that coordinates its rollouts (rollout.go)
		snap, fetchErr := r.fetchPrimary(ctx, app, fetch)
		var errs []string
		for _, c := range clusters {
			if !app.Targets(c) {
				r.fleet.RemoveDesired(c.Name, app.Name)
				continue
			}
			if targets[c.Name] == nil {
				targets[c.Name] = map[string]bool{}
			}
			targets[c.Name][app.Name] = true
			info.Clusters = append(info.Clusters, c.Name)
			csnap, def := snap, app
			pinned := r.fleet.Pin(app.Name, c.Name)
			byOperator := pinned != ""
			if !byOperator && snap != nil {
				var wait bool
				if pinned, def, wait = r.rolloutRevision(app, c, snap.Commit); wait { // rollout.go
					continue // the coordinator's record is not here yet: the last desired state stays
				}
			}
			if pinned != "" {
				// An operator pinned this cluster to an earlier revision, or a rollout holds it
				// at the revision it runs until its step (with the definition it had).
				var err error
				if csnap, err = r.fetchPinned(ctx, def, pinned, fetch); err != nil { // charts.go
					errs = append(errs, fmt.Sprintf("%s: pinned revision %s: %v", c.Name, pinned, err))
					r.fleet.SetRenderError(c.Name, app.Name, pinned, fmt.Errorf("pinned revision %s: %w", pinned, err))
					continue
				}
			}
			if csnap == nil {
				continue
			}
			warnings, err := r.renderFor(ctx, def, c, csnap, byOperator, pinned == "" && def == app)
			addWarnings(info, warnings)
			r.fleet.SetRenderError(c.Name, app.Name, csnap.Commit, err)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", c.Name, err))
				log.Warn("render failed; last good state kept", logging.KeyApp, app.Name, logging.KeyCluster, c.Name, logging.Err(err))
			}
		}
		r.noteChart(info, app) // charts.go
		key := app.Source.RepoURL + "@" + app.Source.TargetRevision
		info.LastFetched = r.lastFetched[key]
		info.RepoState = RepoCurrent
		if fetchErr != nil {
			info.RepoState = RepoStale
			info.Error = "fetch: " + fetchErr.Error()
			log.Warn("fetch failed; last good state kept", logging.KeyApp, app.Name, logging.KeyRepo, app.Source.RepoURL, logging.Err(fetchErr))
		}
		if snap != nil {
			info.Revision = snap.Commit
		}
		if len(errs) > 0 {
			if info.Error != "" {
				info.Error += "; "
			}
			info.Error += "render: " + strings.Join(errs, "; ")
		}
	}
	for _, err := range loadErrs {
		infos = append(infos, loadErrorInfo(err))
	}
	if len(loadErrs) == 0 {
		// The full list of apps is known: apps that target no cluster any more go away, unless
		// too many of them went at once.
		names := make([]string, 0, len(list))
		for _, app := range list {
			names = append(names, app.Name)
		}
		if held := r.fleet.GuardRemoval(names); len(held) > 0 {
			log.Warn("removal of most applications held for confirmation (flotilla apps confirm-removal)", logging.KeyCount, len(held))
		}
		r.fleet.SetTargets(targets)
	}
	r.fleet.SetApps(infos)
	log.Debug("reconcile round done", logging.KeyCount, len(list), logging.KeyDuration, time.Since(start))
}

// renderFor renders app for cluster c and makes it desired state, unless the render fails or
// breaks the app's policy. It returns warnings for `flotilla apps` (plain Secrets, hooks never
// run). current: snap and app are the app's own target, not an operator's pin nor a rollout's
// hold (its chart is the one `flotilla apps` shows).
func (r *Reconciler) renderFor(ctx context.Context, app *apps.Application, c ClusterVars, snap *source.Snapshot, pinned, current bool) ([]string, error) {
	path, err := app.PathFor(c)
	if err != nil {
		return nil, err
	}
	var (
		b     *bundle.Bundle
		chart *ChartInfo
	)
	helm, err := r.needsSources(app, snap, path)
	switch {
	case err != nil:
	case helm:
		b, chart, err = r.sourcesBundle(ctx, app, c, snap, path, current) // charts.go
	default:
		b, err = r.bundleFor(ctx, snap, path)
	}
	if err != nil {
		return nil, err
	}
	if err := r.checkPolicy(app, b); err != nil {
		return nil, err
	}
	warnings, err := r.checkSecrets(app, b)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, r.optionWarnings(b)...)
	warnings = append(warnings, checkHooks(b)...) // hooks.go
	r.fleet.SetDesired(Desired{
		Cluster: c.Name, App: app.Name, Revision: snap.Commit, Bundle: b,
		Namespace: app.Destination.Namespace, Policy: app.SyncPolicy, Health: app.Health, Access: app.Access,
		IgnoreDifferences: slices.Concat(r.cfg.IgnoreDifferences, app.IgnoreDifferences),
		CommitTime:        snap.Time, Author: snap.Author, Message: snap.Message, Pinned: pinned, DependsOn: app.DependsOn,
		Chart: chart, Spec: app.Spec,
	})
	return warnings, nil
}

// bundleFor returns the bundle of path at snap: from the cache for this tree, else from the last
// render of the same repository path when everything that render read is unchanged in this
// commit, else from a new render (which records what it reads).
func (r *Reconciler) bundleFor(ctx context.Context, snap *source.Snapshot, path string) (*bundle.Bundle, error) {
	key := render.CacheKey(snap.RepoURL, snap.TreeHash, path)
	if b, ok := r.cfg.Cache.Get(key); ok {
		r.cfg.Metrics.RenderCache(true)
		return b, nil
	}
	fsys, err := snap.FileSystem()
	if err != nil {
		return nil, err
	}
	last := snap.RepoURL + ":" + path
	if prev := r.rendered[last]; prev != nil && prev.in.hash(fsys) == prev.hash {
		r.cfg.Metrics.RenderCache(true)
		r.cfg.Cache.Put(key, prev.bundle)
		return prev.bundle, nil
	}
	r.cfg.Metrics.RenderCache(false)
	renderStart := time.Now()
	rfs, in := record(fsys)
	rctx, cancel := context.WithTimeout(ctx, r.cfg.RenderTimeout)
	objs, err := r.cfg.Renderer.Render(rctx, rfs, path)
	cancel()
	r.cfg.Metrics.Render(time.Since(renderStart), err)
	if err != nil {
		return nil, err
	}
	b, err := bundle.New(objs)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", path, err)
	}
	r.cfg.Cache.Put(key, b)
	r.rendered[last] = &rendered{in: in, hash: in.hash(fsys), bundle: b}
	return b, nil
}

func (r *Reconciler) loadApps(ctx context.Context) ([]*apps.Application, []error) {
	if r.cfg.AppsDir != "" {
		return apps.LoadDir(r.cfg.AppsDir)
	}
	if r.cfg.AppsRepo == "" {
		return nil, nil
	}
	snap, err := r.cfg.Fetcher.Fetch(ctx, r.cfg.AppsRepo, r.cfg.AppsRevision)
	if err != nil {
		return nil, []error{fmt.Errorf("apps repository: %w", err)}
	}
	fsys, err := snap.FS()
	if err != nil {
		return nil, []error{fmt.Errorf("apps repository: %w", err)}
	}
	root := strings.Trim(r.cfg.AppsPath, "/")
	if root == "" {
		root = "."
	}
	if _, err := fs.Stat(fsys, root); err != nil {
		return nil, []error{fmt.Errorf("apps repository: path %q: %w", r.cfg.AppsPath, errors.Unwrap(err))}
	}
	return apps.LoadFS(fsys, root)
}

func loadErrorInfo(err error) *AppInfo {
	var ae *apps.Error
	if errors.As(err, &ae) {
		return &AppInfo{Name: ae.App, SourceFile: ae.File, Error: err.Error()}
	}
	return &AppInfo{Error: err.Error()}
}
