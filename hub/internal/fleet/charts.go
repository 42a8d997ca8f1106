package fleet

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/charts"
	"github.com/flotilla-dev/flotilla/hub/internal/render"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// ErrNoChartFetcher is wrapped by the error of an app whose chart comes from a Helm or OCI
// repository when the hub has no chart fetcher (ReconcilerConfig.Charts).
var ErrNoChartFetcher = errors.New("no chart fetcher configured")

// chartFetchTimeout bounds one chart fetch (the index or manifest and the archive).
const chartFetchTimeout = 2 * time.Minute

// chartRun is what one round knows of charts: each chart reference fetched once, each
// chart's files read once (by archive digest, or Git tree and path) however many clusters
// it renders for.
type chartRun struct {
	artifacts map[charts.Ref]*charts.Artifact
	errs      map[charts.Ref]error
	loaded    map[string]*loadedChart
	// info is, per app, its chart as last rendered this round, for `flotilla apps`.
	info map[string]*ChartInfo
	// fsys is each snapshot's file system, built once per round to look for Chart.yaml.
	fsys map[*source.Snapshot]filesys.FileSystem
}

// chart fetches ref once per round through the configured fetcher.
func (r *Reconciler) chart(ctx context.Context, ref charts.Ref) (*charts.Artifact, error) {
	if r.cfg.Charts == nil {
		return nil, fmt.Errorf("chart %s from %s: %w", ref.Chart, ref.RepoURL, ErrNoChartFetcher)
	}
	r.chartRun()
	if a := r.charts.artifacts[ref]; a != nil {
		return a, nil
	}
	if err := r.charts.errs[ref]; err != nil {
		return nil, err
	}
	fctx, cancel := context.WithTimeout(ctx, chartFetchTimeout)
	a, err := r.cfg.Charts.Fetch(fctx, ref)
	cancel()
	if err != nil {
		r.charts.errs[ref] = err
		return nil, err
	}
	r.charts.artifacts[ref] = a
	return a, nil
}

func (r *Reconciler) chartRun() *chartRun {
	if r.charts == nil {
		r.charts = &chartRun{artifacts: map[charts.Ref]*charts.Artifact{}, errs: map[charts.Ref]error{}, loaded: map[string]*loadedChart{}, info: map[string]*ChartInfo{}, fsys: map[*source.Snapshot]filesys.FileSystem{}}
	}
	return r.charts
}

// fetchPrimary fetches the app's rendering source: its Git snapshot through fetch, or for a
// chart in a Helm or OCI repository the chart, standing as a snapshot whose commit is the
// resolved version and whose tree hash is the chart's digest. A chart served from the hub's
// cache while its repository is down comes with the fetch's error: both are non-nil.
func (r *Reconciler) fetchPrimary(ctx context.Context, app *apps.Application, fetch func(repo, rev string) (*source.Snapshot, error)) (*source.Snapshot, error) {
	if !app.Source.IsChart() {
		return fetch(app.Source.RepoURL, app.Source.TargetRevision)
	}
	a, err := r.chart(ctx, chartRef(app.Source))
	if err != nil {
		return nil, err
	}
	if a.Stale != nil {
		// The repository is down; the exact version came from the hub's cache: render it, and
		// show the repository Stale.
		return chartSnapshot(app.Source, a), a.Stale
	}
	r.lastFetched[app.Source.RepoURL+"@"+app.Source.TargetRevision] = time.Now()
	return chartSnapshot(app.Source, a), nil
}

// fetchPinned fetches the revision rev an operator pinned app to: a Git commit through fetch,
// or for a chart in a Helm or OCI repository that chart version (the revision its history
// shows), from the hub's chart cache while the repository is down.
func (r *Reconciler) fetchPinned(ctx context.Context, app *apps.Application, rev string, fetch func(repo, rev string) (*source.Snapshot, error)) (*source.Snapshot, error) {
	if !app.Source.IsChart() {
		return fetch(app.Source.RepoURL, rev)
	}
	s := app.Source
	s.TargetRevision = rev
	a, err := r.chart(ctx, chartRef(s))
	if err != nil {
		return nil, err
	}
	return chartSnapshot(s, a), nil
}

// noteChart puts the app's chart, as rendered this round, in its `flotilla apps` entry; for
// a chart in a repository whose fetch failed, the chart's name all the same.
func (r *Reconciler) noteChart(info *AppInfo, app *apps.Application) {
	if ci := r.chartRun().info[app.Name]; ci != nil {
		info.Chart, info.ChartVersion = ci.Chart, ci.Version
		return
	}
	info.Chart = app.Source.Chart
}

func chartRef(s apps.Source) charts.Ref {
	return charts.Ref{RepoURL: s.RepoURL, Chart: s.Chart, Version: s.TargetRevision}
}

func chartSnapshot(s apps.Source, a *charts.Artifact) *source.Snapshot {
	return &source.Snapshot{
		RepoURL: s.RepoURL, Revision: s.TargetRevision, Commit: a.Version, TreeHash: a.Digest,
		Message: fmt.Sprintf("chart %s %s", s.Chart, a.Version),
	}
}

// needsSources reports whether app renders through sourcesBundle rather than bundleFor: a
// chart, several sources, kustomize patches (for a chart only), or a Git path holding
// Chart.yaml. Whether a path of a tree holds a chart never changes, so the answer is kept
// across rounds (bounded), and a round with no new commit builds no file system to ask.
func (r *Reconciler) needsSources(app *apps.Application, snap *source.Snapshot, p string) (bool, error) {
	if app.Source.IsChart() || len(app.Sources) > 0 || len(app.Source.Patches) > 0 {
		return true, nil
	}
	return r.chartPath(snap, p)
}

// chartPath reports whether path p of snap holds Chart.yaml, remembered across rounds.
func (r *Reconciler) chartPath(snap *source.Snapshot, p string) (bool, error) {
	key := snap.RepoURL + "@" + snap.TreeHash + ":" + p
	if is, ok := r.chartDirs[key]; ok {
		return is, nil
	}
	fsys, err := r.fileSystem(snap)
	if err != nil {
		return false, err
	}
	if r.chartDirs == nil || len(r.chartDirs) >= maxChartDirs {
		r.chartDirs = map[string]bool{}
	}
	r.chartDirs[key] = isChartDir(fsys, p)
	return r.chartDirs[key], nil
}

// fileSystem is snap's file system, built once per round (a snapshot builds a new one on
// every call) however many clusters and value files read it. Chart code only reads it.
func (r *Reconciler) fileSystem(snap *source.Snapshot) (filesys.FileSystem, error) {
	run := r.chartRun()
	if fsys := run.fsys[snap]; fsys != nil {
		return fsys, nil
	}
	fsys, err := snap.FileSystem()
	if err != nil {
		return nil, err
	}
	run.fsys[snap] = fsys
	return fsys, nil
}

// maxChartDirs bounds the memory of needsSources.
const maxChartDirs = 4096

func isChartDir(fsys filesys.FileSystem, p string) bool {
	f := path.Join("/", p, "Chart.yaml")
	return fsys.Exists(f) && !fsys.IsDir(f)
}

// sourceOut is one source's render.
type sourceOut struct {
	name   string // for errors: repoURL and chart or path
	bundle *bundle.Bundle
}

// ChartInfo is what a chart render records, for `flotilla apps` and history.
type ChartInfo struct {
	Chart        string
	Version      string
	ValuesDigest string
}

// sourcesBundle renders every source of app that renders for cluster c into one bundle. A
// chart is rendered with the cluster's capabilities, cached by (chart digest, values digest,
// capabilities digest, release name, namespace). An object two sources both render is an
// error naming both. current: snap is the app's own target (renderFor).
func (r *Reconciler) sourcesBundle(ctx context.Context, app *apps.Application, c ClusterVars, snap *source.Snapshot, primaryPath string, current bool) (*bundle.Bundle, *ChartInfo, error) {
	list := app.Sources
	if len(list) == 0 {
		list = []apps.Source{app.Source}
	}
	var (
		outs []sourceOut
		info *ChartInfo
	)
	for _, s := range list {
		if !s.Renders() {
			continue
		}
		ssnap := snap
		p := primaryPath
		if !sameSource(s, app.Source) {
			var err error
			if ssnap, err = r.snapshotOf(ctx, s); err != nil {
				return nil, nil, err
			}
			if !s.IsChart() {
				if p, err = app.SourcePathFor(s, c); err != nil {
					return nil, nil, err
				}
			}
		}
		out, ci, err := r.renderSource(ctx, app, s, c, ssnap, p)
		if err != nil {
			return nil, nil, err
		}
		if info == nil && ci != nil {
			info = ci
			if current { // `flotilla apps` shows the app's chart, not a pin's or a held cluster's
				r.chartRun().info[app.Name] = ci
			}
		}
		outs = append(outs, out)
	}
	if len(outs) == 1 {
		return outs[0].bundle, info, nil
	}
	objs, err := mergeSources(outs)
	if err != nil {
		return nil, nil, err
	}
	b, err := bundle.New(objs)
	if err != nil {
		return nil, nil, fmt.Errorf("application %q: %w", app.Name, err)
	}
	return b, info, nil
}

func sameSource(a, b apps.Source) bool {
	return a.RepoURL == b.RepoURL && a.Path == b.Path && a.Chart == b.Chart && a.Ref == b.Ref && a.TargetRevision == b.TargetRevision
}

// snapshotOf fetches a source other than the app's primary one: a chart, or Git through the
// round's fetch.
func (r *Reconciler) snapshotOf(ctx context.Context, s apps.Source) (*source.Snapshot, error) {
	if s.IsChart() {
		a, err := r.chart(ctx, chartRef(s))
		if err != nil {
			return nil, err
		}
		return chartSnapshot(s, a), nil
	}
	if r.fetchRound == nil {
		return nil, fmt.Errorf("repository %q: no fetch in this round", s.RepoURL)
	}
	return r.fetchRound(s.RepoURL, s.TargetRevision)
}

// renderSource renders one source: a chart (from a repository or a Git directory with
// Chart.yaml), or a Git path through bundleFor.
func (r *Reconciler) renderSource(ctx context.Context, app *apps.Application, s apps.Source, c ClusterVars, snap *source.Snapshot, p string) (sourceOut, *ChartInfo, error) {
	if !s.IsChart() {
		isChart, err := r.chartPath(snap, p)
		if err != nil {
			return sourceOut{}, nil, err
		}
		if !isChart {
			if len(s.Patches) > 0 {
				return sourceOut{}, nil, fmt.Errorf("application %q: %s path %s: kustomize.patches apply to a chart's rendered output, and this path holds no Chart.yaml (list the patches in its kustomization)", app.Name, s.RepoURL, p)
			}
			b, err := r.bundleFor(ctx, snap, p)
			if err != nil {
				return sourceOut{}, nil, err
			}
			return sourceOut{name: s.RepoURL + " path " + p, bundle: b}, nil, nil
		}
	}
	in, err := r.chartInput(ctx, app, s, c, snap, p)
	if err != nil {
		return sourceOut{}, nil, err
	}
	key := render.ChartCacheKey(in.digest, in.valuesDigest, in.rel)
	if d := render.PatchesDigest(s.Patches); d != "" {
		key += "|patches=" + d
	}
	ci := &ChartInfo{Chart: in.name, Version: in.version, ValuesDigest: in.valuesDigest}
	name := s.RepoURL + " chart " + in.name
	if b, ok := r.cfg.Cache.Get(key); ok {
		r.cfg.Metrics.RenderCache(true)
		return sourceOut{name: name, bundle: b}, ci, nil
	}
	r.cfg.Metrics.RenderCache(false)
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, r.cfg.RenderTimeout)
	objs, err := r.cfg.Renderer.RenderChart(rctx, in.src, in.rel)
	if err == nil && len(s.Patches) > 0 {
		if objs, err = r.cfg.Renderer.PatchObjects(rctx, objs, s.Patches); err != nil {
			err = fmt.Errorf("application %q: chart %s: %w", app.Name, in.name, err)
		}
	}
	cancel()
	r.cfg.Metrics.Render(time.Since(start), err)
	if err != nil {
		return sourceOut{}, nil, err
	}
	b, err := bundle.New(objs)
	if err != nil {
		return sourceOut{}, nil, fmt.Errorf("chart %s: %w", in.name, err)
	}
	r.cfg.Cache.Put(key, b)
	return sourceOut{name: name, bundle: b}, ci, nil
}

// mergeSources puts the objects of several sources together; an object two sources render
// is an error naming both.
func mergeSources(outs []sourceOut) ([]*unstructured.Unstructured, error) {
	seen := map[string]string{}
	var all []*unstructured.Unstructured
	for _, o := range outs {
		objs, err := bundle.Decode(o.bundle.Data)
		if err != nil {
			return nil, err
		}
		for _, u := range objs {
			if prev, ok := seen[bundle.Key(u)]; ok {
				return nil, fmt.Errorf("%s is rendered by two sources: %s and %s", bundle.Ref(u), prev, o.name)
			}
			seen[bundle.Key(u)] = o.name
			all = append(all, u)
		}
	}
	return all, nil
}
