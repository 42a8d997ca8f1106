package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	helmignore "helm.sh/helm/v4/pkg/ignore"
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

// loadedChart is a chart's files and what identifies it.
type loadedChart struct {
	files   map[string][]byte // by path relative to the chart
	version string
	digest  string // the archive's; in Git, of the files and fetched dependencies
	deps    [][]byte
	archive []byte // a chart from a repository: the packaged chart
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
// resolved version and whose tree hash is the chart's digest.
func (r *Reconciler) fetchPrimary(ctx context.Context, app *apps.Application, fetch func(repo, rev string) (*source.Snapshot, error)) (*source.Snapshot, error) {
	if !app.Source.IsChart() {
		return fetch(app.Source.RepoURL, app.Source.TargetRevision)
	}
	a, err := r.chart(ctx, chartRef(app.Source))
	if err != nil {
		return nil, err
	}
	r.lastFetched[app.Source.RepoURL+"@"+app.Source.TargetRevision] = time.Now()
	return chartSnapshot(app.Source, a), nil
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
// chart, several sources, or a Git path holding Chart.yaml. Whether a path of a tree holds a
// chart never changes, so the answer is kept across rounds (bounded), and a round with no new
// commit builds no file system to ask.
func (r *Reconciler) needsSources(app *apps.Application, snap *source.Snapshot, p string) (bool, error) {
	if app.Source.IsChart() || len(app.Sources) > 0 {
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
// error naming both.
func (r *Reconciler) sourcesBundle(ctx context.Context, app *apps.Application, c ClusterVars, snap *source.Snapshot, primaryPath string) (*bundle.Bundle, *ChartInfo, error) {
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
			r.chartRun().info[app.Name] = ci
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

// chartRender is everything one chart render needs, and its cache key's parts.
type chartRender struct {
	name, version string
	src           render.ChartSource
	rel           render.Release
	digest        string
	valuesDigest  string
}

// chartInput gathers a chart, its dependencies, its values for cluster c and the cluster's
// capabilities.
func (r *Reconciler) chartInput(ctx context.Context, app *apps.Application, s apps.Source, c ClusterVars, snap *source.Snapshot, p string) (*chartRender, error) {
	h, err := app.HelmFor(s, c)
	if err != nil {
		return nil, err
	}
	lc, err := r.loadChart(ctx, s, snap, p)
	if err != nil {
		return nil, err
	}
	in := &chartRender{name: p, version: lc.version, digest: lc.digest}
	in.src = render.ChartSource{Name: p, Files: lc.files, Dependencies: lc.deps}
	if s.IsChart() {
		in.name = s.Chart
		in.src = render.ChartSource{Name: s.Chart, Archive: lc.archive}
	}
	chartFile := func(rel string) ([]byte, error) {
		if data, ok := lc.files[rel]; ok {
			return data, nil
		}
		return nil, os.ErrNotExist
	}
	vals, err := r.values(ctx, app, h, chartFile)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", in.name, err)
	}
	if in.valuesDigest, err = render.ValuesDigest(vals); err != nil {
		return nil, fmt.Errorf("chart %s: %w", in.name, err)
	}
	in.rel = render.Release{
		Name: h.ReleaseName, Namespace: h.Namespace, Values: vals, SkipCRDs: h.SkipCRDs,
		Capabilities: r.fleet.Capabilities(c.Name),
	}
	if h.KubeVersion != "" {
		in.rel.Capabilities.KubeVersion = h.KubeVersion // helm.kubeVersion overrides the cluster's
	}
	if len(h.APIVersions) > 0 {
		in.rel.Capabilities.APIVersions = h.APIVersions
	}
	return in, nil
}

// loadChart reads a chart's files once per round: from its archive (a chart in a repository)
// or its Git directory, with the dependencies Chart.yaml declares and charts/ lacks fetched.
func (r *Reconciler) loadChart(ctx context.Context, s apps.Source, snap *source.Snapshot, p string) (*loadedChart, error) {
	run := r.chartRun()
	key := snap.RepoURL + "@" + snap.TreeHash + ":" + p
	if s.IsChart() {
		key = snap.TreeHash
	}
	if lc := run.loaded[key]; lc != nil {
		return lc, nil
	}
	lc := &loadedChart{}
	if s.IsChart() {
		a, err := r.chart(ctx, chartRef(s))
		if err != nil {
			return nil, err
		}
		ch, err := r.cfg.Renderer.LoadChart(render.ChartSource{Name: s.Chart, Archive: a.Archive})
		if err != nil {
			return nil, err
		}
		lc.version, lc.digest, lc.archive, lc.files = a.Version, a.Digest, a.Archive, map[string][]byte{}
		for _, f := range ch.Raw {
			lc.files[f.Name] = f.Data
		}
	} else {
		fsys, err := r.fileSystem(snap)
		if err != nil {
			return nil, err
		}
		if lc.files, err = chartFiles(fsys, p); err != nil {
			return nil, err
		}
		ch, err := r.cfg.Renderer.LoadChart(render.ChartSource{Name: p, Files: lc.files})
		if err != nil {
			return nil, err
		}
		lc.version = ch.Metadata.Version
		digests := []string{render.FilesDigest(lc.files)}
		for _, d := range render.MissingDependencies(ch) {
			a, err := r.dependency(ctx, p, d.Name, d.Repository, d.Version)
			if err != nil {
				return nil, err
			}
			lc.deps = append(lc.deps, a.Archive)
			digests = append(digests, a.Digest)
		}
		lc.digest = strings.Join(digests, "+")
	}
	run.loaded[key] = lc
	return lc, nil
}

// dependency fetches a dependency Chart.yaml declares and charts/ lacks, from its repository.
func (r *Reconciler) dependency(ctx context.Context, chartPath, name, repo, version string) (*charts.Artifact, error) {
	if !apps.IsChartRepo(repo) {
		return nil, fmt.Errorf("chart %s: dependency %s: repository %q: only https:// and oci:// repositories are fetched (put a file:// or @alias dependency in charts/)", chartPath, name, repo)
	}
	a, err := r.chart(ctx, charts.Ref{RepoURL: repo, Chart: name, Version: version})
	if err != nil {
		return nil, fmt.Errorf("chart %s: dependency %s: %w", chartPath, name, err)
	}
	return a, nil
}

// chartFiles reads the files of the chart directory p, leaving out what its .helmignore (and
// Helm's defaults) ignore, as Helm does when it loads a directory.
func chartFiles(fsys filesys.FileSystem, p string) (map[string][]byte, error) {
	dir := path.Join("/", p)
	rules := helmignore.Empty()
	if data, err := fsys.ReadFile(path.Join(dir, helmignore.HelmIgnore)); err == nil {
		if rules, err = helmignore.Parse(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("chart %s: %s: %w", p, helmignore.HelmIgnore, err)
		}
	}
	rules.AddDefaults()
	files := map[string][]byte{}
	err := fsys.Walk(dir, func(name string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(name, dir+"/")
		if name == dir || rel == "" {
			return nil
		}
		if rules.Ignore(rel, fi) {
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if fi.IsDir() {
			return nil
		}
		data, err := fsys.ReadFile(name)
		if err != nil {
			return err
		}
		files[rel] = data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", p, err)
	}
	return files, nil
}

// values reads the value files (in the chart, or "$REF/path" in the source whose ref is REF)
// and merges them with the rest of the helm block in Helm's order.
func (r *Reconciler) values(ctx context.Context, app *apps.Application, h apps.Helm, chartFile func(string) ([]byte, error)) (map[string]any, error) {
	v := render.Values{Values: h.Values, Object: h.ValuesObject}
	for _, p := range h.Parameters {
		v.Parameters = append(v.Parameters, render.Parameter{Name: p.Name, Value: p.Value, ForceString: p.ForceString})
	}
	for _, f := range h.ValueFiles {
		data, err := r.valueFile(ctx, app, f, chartFile)
		if errors.Is(err, os.ErrNotExist) && h.IgnoreMissingValueFiles {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("values file %s: %w", f, err)
		}
		v.Files = append(v.Files, render.ValueFile{Name: f, Data: data})
	}
	return render.MergeValues(v)
}

func (r *Reconciler) valueFile(ctx context.Context, app *apps.Application, f string, chartFile func(string) ([]byte, error)) ([]byte, error) {
	ref, rest, ok := apps.SplitRef(f)
	if !ok {
		if c := path.Clean(f); path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
			return nil, fmt.Errorf("leaves the chart (use $REF/path for another source's files)")
		}
		return chartFile(path.Clean(f))
	}
	i := slices.IndexFunc(app.Sources, func(s apps.Source) bool { return s.Ref == ref })
	if i < 0 {
		return nil, fmt.Errorf("no source has ref %q", ref)
	}
	snap, err := r.snapshotOf(ctx, app.Sources[i])
	if err != nil {
		return nil, err
	}
	if app.Sources[i].IsChart() {
		return nil, fmt.Errorf("source %q is a chart: value files come from Git sources", ref)
	}
	fsys, err := r.fileSystem(snap)
	if err != nil {
		return nil, err
	}
	c := path.Clean(rest)
	if c == ".." || strings.HasPrefix(c, "../") {
		return nil, fmt.Errorf("leaves the repository")
	}
	return fsys.ReadFile(path.Join("/", c))
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
