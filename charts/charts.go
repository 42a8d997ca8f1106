// Package charts holds the Helm charts of the hub (charts/hub) and the agent (charts/agent),
// embedded, and renders them in-process the way `helm template` does, for tests: the chart
// tests here, and tests that apply a rendered chart to a real cluster.
package charts

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	commonutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The chart directories, relative to this package.
const (
	AgentChart = "agent"
	HubChart   = "hub"
)

// Release names and namespace RenderAgent and RenderHub use.
const (
	AgentReleaseName = "flotilla-agent"
	HubReleaseName   = "flotilla-hub"
	DefaultNamespace = "flotilla-system"
)

// KubeVersion is the Kubernetes version charts are rendered for unless a Release names
// another: the one matching the k8s.io/client-go the module builds with (v0.37).
const KubeVersion = "v1.37.0"

//go:embed all:agent all:hub
var chartFiles embed.FS

// Release names a Helm release: its name and namespace (.Release.Name, .Release.Namespace),
// and the Kubernetes version it is rendered for (.Capabilities.KubeVersion; KubeVersion when
// empty).
type Release struct {
	Name        string
	Namespace   string
	KubeVersion string
}

// RenderAgent renders the agent chart as release flotilla-agent in namespace flotilla-system
// with values over the chart's defaults, and returns its objects in Helm's install order.
func RenderAgent(values map[string]any) ([]*unstructured.Unstructured, error) {
	return Render(AgentChart, Release{Name: AgentReleaseName, Namespace: DefaultNamespace}, values)
}

// RenderHub renders the hub chart as release flotilla-hub in namespace flotilla-system with
// values over the chart's defaults, and returns its objects in Helm's install order.
func RenderHub(values map[string]any) ([]*unstructured.Unstructured, error) {
	return Render(HubChart, Release{Name: HubReleaseName, Namespace: DefaultNamespace}, values)
}

// Load loads the embedded chart in directory name (AgentChart or HubChart).
func Load(name string) (*chart.Chart, error) {
	sub, err := fs.Sub(chartFiles, name)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", name, err)
	}
	var files []*archive.BufferedFile
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: p, Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", name, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("chart %s: no files", name)
	}
	ch, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", name, err)
	}
	return ch, nil
}

// Render renders the embedded chart in directory name for rel with values over the chart's
// defaults, as `helm template` does: values are checked against values.schema.json (the error
// names the offending field), templates are rendered, NOTES.txt is dropped, and the objects
// come back in Helm's install order.
func Render(name string, rel Release, values map[string]any) ([]*unstructured.Unstructured, error) {
	ch, err := Load(name)
	if err != nil {
		return nil, err
	}
	files, err := RenderFiles(ch, rel, values)
	if err != nil {
		return nil, err
	}
	return Objects(files)
}

// RenderFiles renders ch for rel with values and returns the rendered files by template path,
// NOTES.txt included.
func RenderFiles(ch *chart.Chart, rel Release, values map[string]any) (map[string]string, error) {
	if values == nil {
		values = map[string]any{}
	}
	caps, err := capabilities(rel.KubeVersion)
	if err != nil {
		return nil, err
	}
	if kv := ch.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart %s: requires Kubernetes %s, have %s", ch.Name(), kv, caps.KubeVersion.String())
	}
	vals, err := commonutil.ToRenderValues(ch, values, common.ReleaseOptions{
		Name: rel.Name, Namespace: rel.Namespace, Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", ch.Name(), err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("chart %s: render: %w", ch.Name(), err)
	}
	return files, nil
}

// capabilities are Helm's defaults with the Kubernetes version set to version (KubeVersion
// when empty).
func capabilities(version string) (*common.Capabilities, error) {
	if version == "" {
		version = KubeVersion
	}
	kv, err := common.ParseKubeVersion(version)
	if err != nil {
		return nil, fmt.Errorf("kubernetes version %q: %w", version, err)
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	return caps, nil
}

// Objects decodes rendered files into objects in Helm's install order, skipping NOTES.txt,
// partials and empty documents.
func Objects(files map[string]string) ([]*unstructured.Unstructured, error) {
	manifests := make(map[string]string, len(files))
	for p, content := range files {
		if strings.HasSuffix(p, "NOTES.txt") || path.Ext(p) == ".tpl" {
			continue
		}
		manifests[p] = content
	}
	hooks, sorted, err := releaseutil.SortManifests(manifests, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("split manifests: %w", err)
	}
	if len(hooks) > 0 {
		return nil, errors.New("charts have no hooks: found one")
	}
	objs := make([]*unstructured.Unstructured, 0, len(sorted))
	for _, m := range sorted {
		js, err := yaml.YAMLToJSON([]byte(m.Content))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		objs = append(objs, u)
	}
	return objs, nil
}
