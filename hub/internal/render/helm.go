package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	commonutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Chart size bounds, defaults of Options.
const (
	DefaultMaxChartBytes         = 10 << 20 // a packaged chart (.tgz), and a fetched dependency
	DefaultMaxChartExpandedBytes = 50 << 20 // all files of a chart and its dependencies
	DefaultMaxOutputBytes        = 64 << 20 // everything a chart's templates render
	helmHookAnnotation           = "helm.sh/hook"
	helmTestHookPrefix           = "test" // test, test-success, test-failure
)

// ErrLookup is wrapped by the error of a chart whose templates call `lookup`: the hub renders
// without any cluster, so a chart that reads the cluster would silently render differently
// from what it means.
var ErrLookup = errors.New("uses lookup, which reads a cluster; the hub renders charts without one")

// ChartSource is a chart to render: a packaged chart (Archive) or the files of a chart
// directory (Files, by path relative to the chart's root), and packaged charts added as
// dependencies (those Chart.yaml declares but charts/ lacks, fetched by the hub).
type ChartSource struct {
	// Name names the chart in errors: its name in a repository or its path in Git.
	Name         string
	Archive      []byte
	Files        map[string][]byte
	Dependencies [][]byte
}

// Capabilities are a cluster's, for .Capabilities: its Kubernetes version ("v1.31.2") and the
// API group-versions (and group-version/Kind) it serves. Empty fields take Helm's defaults:
// the Kubernetes version of the client-go the hub is built with and every API version
// client-go knows.
type Capabilities struct {
	KubeVersion string
	APIVersions []string
}

// Release is what one render of a chart is for: the release name and namespace, the user's
// values (MergeValues; the chart's own defaults go under them), the cluster's capabilities,
// and whether the chart's crds/ are left out.
type Release struct {
	Name         string
	Namespace    string
	Values       map[string]any
	Capabilities Capabilities
	SkipCRDs     bool
}

// RenderChart renders a chart the way `helm template` does, in-process and sandboxed: no
// `lookup` (a chart using it is refused, naming the template), no post-renderer, no plugins,
// no network; the chart's size and its output are bounded and the render has the Renderer's
// time bound. CRDs from crds/ (of the chart and its dependencies) come first unless
// SkipCRDs; NOTES.txt and partials render nothing; objects annotated as Helm test hooks are
// dropped, other hook objects are returned like any object. Errors name the chart and, where
// one is at fault, the template.
func (r *Renderer) RenderChart(ctx context.Context, src ChartSource, rel Release) ([]*unstructured.Unstructured, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	ch, err := r.LoadChart(src)
	if err != nil {
		return nil, err
	}
	name := src.Name
	if name == "" {
		name = ch.Name()
	}
	objs, err := r.renderChart(ctx, ch, rel)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", name, err)
	}
	return objs, nil
}

// LoadChart loads src within the size bounds, with its fetched dependencies added. Each call
// returns a new chart: rendering changes a chart (dependencies disabled by conditions are
// removed).
func (r *Renderer) LoadChart(src ChartSource) (*chart.Chart, error) {
	ch, err := r.loadOne(src.Name, src.Archive, src.Files)
	if err != nil {
		return nil, err
	}
	for i, dep := range src.Dependencies {
		d, err := r.loadOne(fmt.Sprintf("%s dependency %d", src.Name, i+1), dep, nil)
		if err != nil {
			return nil, err
		}
		ch.AddDependency(d)
	}
	if err := checkSize(ch, r.opts.MaxChartExpandedBytes); err != nil {
		return nil, fmt.Errorf("chart %s: %w", src.Name, err)
	}
	return ch, nil
}

func (r *Renderer) loadOne(name string, arch []byte, files map[string][]byte) (*chart.Chart, error) {
	var buffered []*archive.BufferedFile
	switch {
	case arch != nil:
		if n := len(arch); n > r.opts.MaxChartBytes {
			return nil, fmt.Errorf("chart %s: packaged chart of %d bytes, more than %d", name, n, r.opts.MaxChartBytes)
		}
		var err error
		if buffered, err = archive.LoadArchiveFiles(bytes.NewReader(arch)); err != nil {
			return nil, fmt.Errorf("chart %s: %w", name, err)
		}
	default:
		paths := make([]string, 0, len(files))
		for p := range files {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		for _, p := range paths {
			buffered = append(buffered, &archive.BufferedFile{Name: p, Data: files[p]})
		}
	}
	var total int
	for _, f := range buffered {
		total += len(f.Data)
	}
	if total > r.opts.MaxChartExpandedBytes {
		return nil, fmt.Errorf("chart %s: %d bytes of files, more than %d", name, total, r.opts.MaxChartExpandedBytes)
	}
	ch, err := loader.LoadFiles(buffered)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", name, err)
	}
	return ch, nil
}

// checkSize bounds the files of ch and its dependencies together.
func checkSize(ch *chart.Chart, limit int) error {
	var total int
	var walk func(c *chart.Chart)
	walk = func(c *chart.Chart) {
		for _, f := range c.Raw {
			total += len(f.Data)
		}
		for _, d := range c.Dependencies() {
			walk(d)
		}
	}
	walk(ch)
	if total > limit {
		return fmt.Errorf("%d bytes of files with its dependencies, more than %d", total, limit)
	}
	return nil
}

// MissingDependencies lists the dependencies ch's Chart.yaml declares that are not in its
// charts/ directory (by name or alias), which the hub must fetch.
func MissingDependencies(ch *chart.Chart) []*chart.Dependency {
	var missing []*chart.Dependency
	for _, d := range ch.Metadata.Dependencies {
		found := slices.ContainsFunc(ch.Dependencies(), func(c *chart.Chart) bool {
			return c.Name() == d.Name
		})
		if !found {
			missing = append(missing, d)
		}
	}
	return missing
}

func (r *Renderer) renderChart(ctx context.Context, ch *chart.Chart, rel Release) ([]*unstructured.Unstructured, error) {
	if err := refuseLookup(ch); err != nil {
		return nil, err
	}
	caps, err := helmCapabilities(rel.Capabilities)
	if err != nil {
		return nil, err
	}
	if kv := ch.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("requires Kubernetes %s, the cluster runs %s", kv, caps.KubeVersion.String())
	}
	values := rel.Values
	if values == nil {
		values = map[string]any{}
	}
	if err := chartutil.ProcessDependencies(ch, values); err != nil {
		return nil, fmt.Errorf("dependencies: %w", err)
	}
	vals, err := commonutil.ToRenderValuesWithSchemaValidation(ch, values, common.ReleaseOptions{
		Name: rel.Name, Namespace: rel.Namespace, Revision: 1, IsInstall: true,
	}, caps, false)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	files, err := r.execute(ctx, ch, vals)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	if !rel.SkipCRDs {
		for _, crd := range ch.CRDObjects() {
			got, err := decode(crd.File.Data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", crd.Filename, err)
			}
			objs = append(objs, got...)
		}
	}
	names := make([]string, 0, len(files))
	var size int
	for name, content := range files {
		size += len(content)
		names = append(names, name)
	}
	if size > r.opts.MaxOutputBytes {
		return nil, fmt.Errorf("templates rendered %d bytes, more than %d", size, r.opts.MaxOutputBytes)
	}
	slices.Sort(names)
	for _, name := range names {
		base := path.Base(name)
		if base == "NOTES.txt" || strings.HasPrefix(base, "_") || strings.TrimSpace(files[name]) == "" {
			continue
		}
		got, err := decode([]byte(files[name]))
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		for _, u := range got {
			if isTestHook(u) {
				continue
			}
			if err := check(u); err != nil {
				return nil, fmt.Errorf("template %s: %s: %w", name, describe(u), err)
			}
			objs = append(objs, u)
		}
		if len(objs) > r.opts.MaxObjects {
			return nil, fmt.Errorf("more than %d objects (at template %s)", r.opts.MaxObjects, name)
		}
	}
	return objs, nil
}

// execute runs the templates under ctx. Template execution cannot be interrupted: on timeout
// its goroutine finishes on its own (its input is in memory and bounded).
func (r *Renderer) execute(ctx context.Context, ch *chart.Chart, vals common.Values) (map[string]string, error) {
	eng := engine.Engine{CustomTemplateFuncs: map[string]any{
		// Never reached for a chart refuseLookup passed, unless a template builds the call
		// with tpl from a value: refused then too.
		"lookup": func(string, string, string, string) (map[string]any, error) { return nil, ErrLookup },
	}}
	type result struct {
		files map[string]string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		files, err := eng.RenderWithContext(ctx, ch, vals)
		done <- result{files, err}
	}()
	select {
	case res := <-done:
		return res.files, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("templates: %w", ctx.Err())
	}
}

// lookupCall finds a call of lookup in a template action ({{ ... }}).
var (
	templateAction = regexp.MustCompile(`(?s){{(.*?)}}`)
	lookupCall     = regexp.MustCompile(`(^|[\s(|])lookup\b`)
)

// refuseLookup refuses a chart (or dependency) with a template that calls lookup, naming the
// template.
func refuseLookup(ch *chart.Chart) error {
	for _, t := range ch.Templates {
		for _, m := range templateAction.FindAllSubmatch(t.Data, -1) {
			if lookupCall.Match(m[1]) {
				return fmt.Errorf("template %s: %w", path.Join(ch.ChartFullPath(), t.Name), ErrLookup)
			}
		}
	}
	for _, d := range ch.Dependencies() {
		if err := refuseLookup(d); err != nil {
			return err
		}
	}
	return nil
}

// isTestHook reports whether u is a Helm test hook (helm.sh/hook: test, test-success, ...).
func isTestHook(u *unstructured.Unstructured) bool {
	for h := range strings.SplitSeq(u.GetAnnotations()[helmHookAnnotation], ",") {
		if strings.HasPrefix(strings.TrimSpace(h), helmTestHookPrefix) {
			return true
		}
	}
	return false
}

// helmCapabilities are Helm's default capabilities with the cluster's version and API versions
// where it reported them.
func helmCapabilities(c Capabilities) (*common.Capabilities, error) {
	caps := common.DefaultCapabilities.Copy()
	if c.KubeVersion != "" {
		kv, err := common.ParseKubeVersion(c.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("cluster's kubernetes version %q: %w", c.KubeVersion, err)
		}
		caps.KubeVersion = *kv
	}
	if len(c.APIVersions) > 0 {
		caps.APIVersions = slices.Clone(c.APIVersions)
	}
	return caps, nil
}
