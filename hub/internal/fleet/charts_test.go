package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/hub/internal/charts"
	"github.com/flotilla-dev/flotilla/hub/internal/render"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// monitoringChart is platform/monitoring at version: a Deployment, a ConfigMap from values,
// a ServiceMonitor where the API is served, and (before 2.0.0) a ConfigMap the next version
// drops.
func monitoringChart(version string) map[string]string {
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: monitoring\nversion: " + version + "\n",
		"values.yaml": "env: none\nretention: 1d\n",
		"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  selector: {matchLabels: {app: mon}}
  template:
    metadata: {labels: {app: mon}}
    spec: {containers: [{name: mon, image: "mon:{{ .Chart.Version }}"}]}
`,
		"templates/config.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: {{ .Release.Name }}-config}
data: {env: {{ .Values.env | quote }}, retention: {{ .Values.retention | quote }}, cluster: {{ .Values.cluster | default "" | quote }}}
`,
		"templates/servicemonitor.yaml": `{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: {{ .Release.Name }}, namespace: {{ .Release.Namespace }}}
spec: {selector: {matchLabels: {app: mon}}}
{{- end }}
`,
		"values/staging.yaml":    "env: staging\n",
		"values/production.yaml": "env: production\nretention: 30d\n",
	}
	if version < "2.0.0" {
		files["templates/legacy.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-legacy}\n"
	}
	return files
}

func prefixed(prefix string, files map[string]string) map[string]string {
	out := map[string]string{}
	for p, c := range files {
		out[prefix+p] = c
	}
	return out
}

var twoClusters = []ClusterVars{
	{Name: "staging", Labels: map[string]string{"env": "staging"}},
	{Name: "production", Labels: map[string]string{"env": "production"}},
}

// objectsOf returns the desired objects of app on cluster by "Kind/name".
func objectsOf(t *testing.T, f *Fleet, cluster, app string) map[string]*unstructured.Unstructured {
	t.Helper()
	d := f.Snapshot(cluster)[app]
	if d == nil {
		t.Fatalf("no desired state for %s on %s", app, cluster)
	}
	objs, err := bundle.Decode(d.Bundle.Data)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		out[o.GetKind()+"/"+o.GetName()] = o
	}
	return out
}

func keys(m map[string]*unstructured.Unstructured) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func writeApp(t *testing.T, dir, name, doc string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestChartFromGit: a chart directory in Git renders per cluster with label-driven value
// files and each cluster's own capabilities; a version bump prunes what it dropped; a chart
// using lookup is refused naming chart and template, and the last good state stays.
func TestChartFromGit(t *testing.T) {
	repo := newTestRepo(t)
	repo.commit("monitoring 1.0.0", prefixed("platform/monitoring/", monitoringChart("1.0.0")))
	appsDir := t.TempDir()
	writeApp(t, appsDir, "monitoring", fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: monitoring}
spec:
  source:
    repoURL: %s
    targetRevision: main
    path: platform/monitoring
    helm:
      valueFiles: ["values/{{ .labels.env }}.yaml"]
      valuesObject: {cluster: "{{ .name }}"}
  destination: {clusterSelector: {matchExpressions: [{key: env, operator: Exists}]}, namespace: monitoring}
`, repo.dir))
	f, r := newTestReconciler(t, appsDir, twoClusters)
	f.SetCapabilities("production", render.Capabilities{KubeVersion: "v1.33.1", APIVersions: []string{"v1", "apps/v1", "monitoring.coreos.com/v1"}})
	ctx := context.Background()
	r.Round(ctx)
	if errs := appErrors(f); errs != "" {
		t.Fatal(errs)
	}
	stg, prod := objectsOf(t, f, "staging", "monitoring"), objectsOf(t, f, "production", "monitoring")
	if got, want := keys(stg), []string{"ConfigMap/monitoring-config", "ConfigMap/monitoring-legacy", "Deployment/monitoring"}; !reflect.DeepEqual(got, want) {
		t.Errorf("staging objects %v, want %v", got, want)
	}
	if _, ok := prod["ServiceMonitor/monitoring"]; !ok {
		t.Errorf("production (API served) objects %v lack the ServiceMonitor", keys(prod))
	}
	data := func(objs map[string]*unstructured.Unstructured) map[string]string {
		d, _, _ := unstructured.NestedStringMap(objs["ConfigMap/monitoring-config"].Object, "data")
		return d
	}
	if d := data(stg); d["env"] != "staging" || d["retention"] != "1d" || d["cluster"] != "staging" {
		t.Errorf("staging values %v", d)
	}
	if d := data(prod); d["env"] != "production" || d["retention"] != "30d" || d["cluster"] != "production" {
		t.Errorf("production values %v", d)
	}
	if c := f.Snapshot("production")["monitoring"].Chart; c == nil || c.Chart != "platform/monitoring" || c.Version != "1.0.0" || !strings.HasPrefix(c.ValuesDigest, "sha256:") {
		t.Errorf("chart info %+v", c)
	}

	// The version bump reaches both and drops the legacy ConfigMap.
	repo.git("rm", "-q", "platform/monitoring/templates/legacy.yaml")
	repo.commit("monitoring 2.0.0", prefixed("platform/monitoring/", map[string]string{"Chart.yaml": "apiVersion: v2\nname: monitoring\nversion: 2.0.0\n"}))
	r.Round(ctx)
	for _, c := range twoClusters {
		objs := objectsOf(t, f, c.Name, "monitoring")
		if _, ok := objs["ConfigMap/monitoring-legacy"]; ok {
			t.Errorf("%s still has the legacy ConfigMap", c.Name)
		}
		img := objs["Deployment/monitoring"].Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"]
		if img != "mon:2.0.0" {
			t.Errorf("%s image %v", c.Name, img)
		}
	}
	good := f.Snapshot("staging")["monitoring"].Bundle.Digest

	// lookup: refused, named, last good state kept.
	repo.commit("lookup", prefixed("platform/monitoring/", map[string]string{
		"templates/secret.yaml": "{{- $s := lookup \"v1\" \"Secret\" \"x\" \"y\" }}\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: z}\n",
	}))
	r.Round(ctx)
	if got := f.Snapshot("staging")["monitoring"].Bundle.Digest; got != good {
		t.Error("the refused render replaced the last good state")
	}
	errs := appErrors(f)
	if !strings.Contains(errs, "chart platform/monitoring: template monitoring/templates/secret.yaml: uses lookup") {
		t.Errorf("errors %q do not name chart and template", errs)
	}
}

// fakeCharts serves packaged charts by name and version, counting fetches (pure logic: the
// real fetcher, with HTTPS and OCI, is hub/internal/charts).
type fakeCharts struct {
	mu       sync.Mutex
	archives map[string][]byte // "repo chart version" → .tgz
	newest   map[string]string // "repo chart" → version
	fetches  int
	down     bool
}

var _ charts.Source = (*fakeCharts)(nil)

func (c *fakeCharts) Fetch(_ context.Context, ref charts.Ref) (*charts.Artifact, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fetches++
	if c.down {
		return nil, fmt.Errorf("repository %s chart %s: connection refused", ref.RepoURL, ref.Chart)
	}
	v := ref.Version
	if v == "" {
		v = c.newest[ref.RepoURL+" "+ref.Chart]
	}
	a := c.archives[ref.RepoURL+" "+ref.Chart+" "+v]
	if a == nil {
		return nil, fmt.Errorf("repository %s: chart %s version %q not found", ref.RepoURL, ref.Chart, ref.Version)
	}
	return &charts.Artifact{Ref: ref, Version: v, Digest: bundle.Digest(a), Archive: a}, nil
}

func (c *fakeCharts) add(t testing.TB, repo string, files map[string]string) {
	t.Helper()
	raw := map[string][]byte{}
	for p, s := range files {
		raw[p] = []byte(s)
	}
	ch, err := render.New(render.Options{}).LoadChart(render.ChartSource{Name: "test", Files: raw})
	if err != nil {
		t.Fatal(err)
	}
	p, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.archives == nil {
		c.archives, c.newest = map[string][]byte{}, map[string]string{}
	}
	c.archives[repo+" "+ch.Name()+" "+ch.Metadata.Version] = data
	c.newest[repo+" "+ch.Name()] = ch.Metadata.Version
}

// TestChartFromRepositoryMultiSource: an Argo CD multi-source app (a chart from a Helm
// repository, values from Git through $values) renders once per distinct input; with no
// fetcher, or the repository down, the app says so and keeps its last good state.
func TestChartFromRepositoryMultiSource(t *testing.T) {
	const helmRepo = "https://charts.example.com"
	repo := newTestRepo(t)
	repo.commit("values", map[string]string{"values/staging.yaml": "retention: 7d\n", "values/production.yaml": "retention: 90d\n"})
	src := &fakeCharts{}
	src.add(t, helmRepo, monitoringChart("1.0.0"))
	appsDir := t.TempDir()
	writeApp(t, appsDir, "monitoring", fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: mon}
spec:
  sources:
  - repoURL: %s
    chart: monitoring
    targetRevision: 1.0.0
    helm:
      releaseName: prom
      valueFiles: ["$values/values/{{ .labels.env }}.yaml", "values/{{ .labels.env }}.yaml"]
  - {repoURL: %q, targetRevision: main, ref: values}
  destination: {name: staging, namespace: monitoring}
`, helmRepo, repo.dir))
	f, r := newTestReconciler(t, appsDir, twoClusters)
	ctx := context.Background()
	r.Round(ctx)
	if !strings.Contains(appErrors(f), "no chart fetcher configured") {
		t.Errorf("without a fetcher: errors %q", appErrors(f))
	}
	r.cfg.Charts = src
	r.Round(ctx)
	if errs := appErrors(f); errs != "" {
		t.Fatal(errs)
	}
	objs := objectsOf(t, f, "staging", "mon")
	d, _, _ := unstructured.NestedStringMap(objs["ConfigMap/prom-config"].Object, "data")
	// $values file first, then the chart's own values/staging.yaml over it.
	if d["retention"] != "7d" || d["env"] != "staging" {
		t.Errorf("values %v", d)
	}
	if c := f.Snapshot("staging")["mon"].Chart; c == nil || c.Chart != "monitoring" || c.Version != "1.0.0" {
		t.Errorf("chart info %+v", c)
	}
	good := f.Snapshot("staging")["mon"].Bundle.Digest
	src.mu.Lock()
	src.down = true
	src.mu.Unlock()
	r.Round(ctx)
	if got := f.Snapshot("staging")["mon"].Bundle.Digest; got != good {
		t.Error("a repository down replaced the last good state")
	}
	for _, a := range f.Apps() {
		if a.Name == "mon" && (a.RepoState != RepoStale || !strings.Contains(a.Error, "connection refused")) {
			t.Errorf("app %+v, want Stale with the fetch error", a)
		}
	}
}

// TestChartRendersOncePerDistinctInput: clusters with the same values and capabilities share
// one render.
func TestChartRendersOncePerDistinctInput(t *testing.T) {
	const helmRepo = "oci://registry.example.com/charts"
	src := &fakeCharts{}
	src.add(t, helmRepo, monitoringChart("1.0.0"))
	appsDir := t.TempDir()
	writeApp(t, appsDir, "mon", fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: mon}
spec:
  source: {repoURL: %s, chart: monitoring, helm: {valueFiles: ["values/{{ .labels.env }}.yaml"]}}
  destination: {clusterSelector: {matchExpressions: [{key: env, operator: Exists}]}, namespace: monitoring}
`, helmRepo))
	var clusters []ClusterVars
	for i := range 60 {
		clusters = append(clusters, ClusterVars{Name: fmt.Sprintf("c%02d", i), Labels: map[string]string{"env": []string{"staging", "production"}[i%2]}})
	}
	f, r := newTestReconciler(t, appsDir, clusters)
	rend := &countingRenderer{next: render.New(render.Options{})}
	r.cfg.Renderer, r.cfg.Charts = rend, src
	for i, c := range clusters {
		f.SetCapabilities(c.Name, render.Capabilities{KubeVersion: "v1.33.0", APIVersions: []string{"v1", fmt.Sprintf("example.com/v%d", i%3)}})
	}
	r.Round(context.Background())
	if errs := appErrors(f); errs != "" {
		t.Fatal(errs)
	}
	if n := rend.count.Load(); n != 6 {
		t.Errorf("%d renders for 60 clusters over 2 value sets and 3 capability sets, want 6", n)
	}
	if src.fetches != 1 {
		t.Errorf("%d fetches of one chart in one round", src.fetches)
	}
	r.Round(context.Background())
	if n := rend.count.Load(); n != 6 {
		t.Errorf("%d renders after a second round, want still 6", n)
	}
}

// TestChartDependenciesAndDuplicates: a Git chart's dependency that charts/ lacks is fetched
// from its repository and rendered with its values; an object two sources render is an error
// naming both; a file:// dependency absent from charts/ is refused naming it.
func TestChartDependenciesAndDuplicates(t *testing.T) {
	const helmRepo = "https://charts.example.com"
	src := &fakeCharts{}
	src.add(t, helmRepo, map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: redis\nversion: 1.2.0\n",
		"values.yaml":       "size: small\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: redis-{{ .Values.size }}}\n",
	})
	repo := newTestRepo(t)
	repo.commit("app with a dependency", map[string]string{
		"app/Chart.yaml":        "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- {name: redis, version: 1.2.0, repository: " + helmRepo + "}\n",
		"app/values.yaml":       "redis: {size: large}\n",
		"app/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n",
		"plain/cm.yaml":         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: redis-large}\n",
	})
	appsDir := t.TempDir()
	writeApp(t, appsDir, "app", fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: app}
spec:
  source: {repoURL: %q, targetRevision: main, path: app}
  destination: {name: staging, namespace: app}
`, repo.dir))
	f, r := newTestReconciler(t, appsDir, twoClusters[:1])
	r.cfg.Charts = src
	ctx := context.Background()
	r.Round(ctx)
	if errs := appErrors(f); errs != "" {
		t.Fatal(errs)
	}
	if got, want := keys(objectsOf(t, f, "staging", "app")), []string{"ConfigMap/app", "ConfigMap/redis-large"}; !reflect.DeepEqual(got, want) {
		t.Errorf("objects %v, want %v (the dependency fetched, with the parent's values)", got, want)
	}

	// Two sources rendering ConfigMap redis-large.
	writeApp(t, appsDir, "app", fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: app}
spec:
  sources:
  - {repoURL: %[1]q, targetRevision: main, path: app}
  - {repoURL: %[1]q, targetRevision: main, path: plain}
  destination: {name: staging, namespace: app}
`, repo.dir))
	r.Round(ctx)
	if errs := appErrors(f); !strings.Contains(errs, "ConfigMap/redis-large is rendered by two sources: "+repo.dir+" chart app and "+repo.dir+" path plain") {
		t.Errorf("errors %q", errs)
	}

	repo.commit("a file:// dependency", map[string]string{
		"app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.2.0\ndependencies:\n- {name: common, version: 1.0.0, repository: file://../common}\n",
	})
	writeApp(t, appsDir, "app", fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: app}
spec:
  source: {repoURL: %q, targetRevision: main, path: app}
  destination: {name: staging, namespace: app}
`, repo.dir))
	r.Round(ctx)
	if errs := appErrors(f); !strings.Contains(errs, `chart app: dependency common: repository "file://../common": only https:// and oci:// repositories are fetched`) {
		t.Errorf("errors %q", errs)
	}
}

// TestChartHelmignore: a Git chart's .helmignore leaves files and directories out, as Helm
// does when it loads a directory.
func TestChartHelmignore(t *testing.T) {
	repo := newTestRepo(t)
	repo.commit("chart with .helmignore", map[string]string{
		"c/Chart.yaml":             "apiVersion: v2\nname: c\nversion: 0.1.0\n",
		"c/.helmignore":            "*.bak\nscratch/\n",
		"c/templates/cm.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {files: {{ len (.Files.Glob \"**\") | quote }}}\n",
		"c/templates/old.yaml.bak": "{{ this does not parse\n",
		"c/scratch/notes.txt":      "x\n",
		"c/scratch/deep/more.yaml": "y\n",
		"c/files/kept.txt":         "kept\n",
	})
	appsDir := t.TempDir()
	writeApp(t, appsDir, "c", fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: c}
spec:
  source: {repoURL: %q, targetRevision: main, path: c}
  destination: {name: staging, namespace: c}
`, repo.dir))
	f, r := newTestReconciler(t, appsDir, twoClusters[:1])
	r.Round(context.Background())
	if errs := appErrors(f); errs != "" {
		t.Fatal(errs)
	}
	d, _, _ := unstructured.NestedStringMap(objectsOf(t, f, "staging", "c")["ConfigMap/c"].Object, "data")
	// .helmignore and files/kept.txt: Chart.yaml and templates are not in .Files.
	if d["files"] != "2" {
		t.Errorf(".Files has %s files, want 2 (.helmignore, files/kept.txt)", d["files"])
	}
}

// TestChartCapabilitiesOverride: helm.kubeVersion and helm.apiVersions replace the cluster's
// own capabilities, as in Argo CD.
func TestChartCapabilitiesOverride(t *testing.T) {
	repo := newTestRepo(t)
	repo.commit("monitoring", prefixed("mon/", monitoringChart("1.0.0")))
	appsDir := t.TempDir()
	writeApp(t, appsDir, "mon", fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: mon}
spec:
  source: {repoURL: %q, targetRevision: main, path: mon, helm: {kubeVersion: v1.29.3, apiVersions: [v1, apps/v1, monitoring.coreos.com/v1]}}
  destination: {name: staging, namespace: mon}
`, repo.dir))
	f, r := newTestReconciler(t, appsDir, twoClusters[:1])
	f.SetCapabilities("staging", render.Capabilities{KubeVersion: "v1.33.0", APIVersions: []string{"v1", "apps/v1"}})
	r.Round(context.Background())
	if errs := appErrors(f); errs != "" {
		t.Fatal(errs)
	}
	if _, ok := objectsOf(t, f, "staging", "mon")["ServiceMonitor/mon"]; !ok {
		t.Error("helm.apiVersions did not make the ServiceMonitor render")
	}
}
