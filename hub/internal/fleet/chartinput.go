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

	helmignore "helm.sh/helm/v4/pkg/ignore"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/charts"
	"github.com/flotilla-dev/flotilla/hub/internal/render"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
)

// The inputs of a chart render (charts.go renders): the chart's files, read once per round,
// its fetched dependencies, and its values for one cluster.

// loadedChart is a chart's files and what identifies it.
type loadedChart struct {
	files   map[string][]byte // by path relative to the chart
	version string
	digest  string // the archive's; in Git, of the files and fetched dependencies
	deps    [][]byte
	archive []byte // a chart from a repository: the packaged chart
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
		ref := chartRef(s)
		ref.Version = snap.Revision // the version asked for: the source's, or a pinned one
		a, err := r.chart(ctx, ref)
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
