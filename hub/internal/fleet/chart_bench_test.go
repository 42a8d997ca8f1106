package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/hub/internal/render"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// bigChart is a chart of n ConfigMaps (and a Deployment), named name at version.
func bigChart(name, version string, n int) map[string]string {
	return map[string]string{
		"Chart.yaml":  fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\n", name, version),
		"values.yaml": fmt.Sprintf("count: %d\nenv: none\n", n-1),
		"templates/configmaps.yaml": `{{- range $i := until (int .Values.count) }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $.Release.Name }}-{{ $i }}
  labels: {app: {{ $.Release.Name }}, index: "{{ $i }}"}
data:
  env: {{ $.Values.env | quote }}
  payload: {{ printf "%s-%d" $.Chart.Name $i | sha256sum | quote }}
  {{- if $.Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}
  monitored: "true"
  {{- end }}
{{- end }}
`,
		"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec: {containers: [{name: x, image: "x:{{ .Chart.Version }}"}]}
`,
		"values/staging.yaml":    "env: staging\n",
		"values/production.yaml": "env: production\n",
	}
}

const benchChartRepo = "oci://registry.example.com/charts"

func chartBenchApp(b *testing.B, chart string) string {
	b.Helper()
	dir := b.TempDir()
	doc := fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: %[2]s}
spec:
  source: {repoURL: %[1]s, chart: %[2]s, helm: {valueFiles: ["values/{{ .labels.env }}.yaml"]}}
  destination: {clusterSelector: {matchExpressions: [{key: env, operator: Exists}]}, namespace: bench}
`, benchChartRepo, chart)
	if err := os.WriteFile(filepath.Join(dir, chart+".yaml"), []byte(doc), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

func chartBenchReconciler(appsDir string, clusters []ClusterVars, src *fakeCharts, cache *render.Cache, rend renderer) (*Fleet, *Reconciler) {
	f := New(time.Minute)
	return f, NewReconciler(ReconcilerConfig{
		AppsDir: appsDir, Renderer: rend, Cache: cache, Charts: src,
		Clusters: func() ([]ClusterVars, error) { return clusters, nil },
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, f)
}

// BenchmarkChartRender200: one round rendering a chart of 200 objects for one cluster, cold
// (a new cache: load, template, decode, bundle) and warm (the same inputs: a cache hit).
func BenchmarkChartRender200(b *testing.B) {
	src := &fakeCharts{}
	src.add(b, benchChartRepo, bigChart("big", "1.0.0", 200))
	appsDir := chartBenchApp(b, "big")
	clusters := []ClusterVars{{Name: "c1", Labels: map[string]string{"env": "staging"}}}
	ctx := context.Background()
	var cold, warm time.Duration
	var objects int
	for b.Loop() {
		cache := render.NewCache(0)
		f, r := chartBenchReconciler(appsDir, clusters, src, cache, render.New(render.Options{}))
		start := time.Now()
		r.Round(ctx)
		cold += time.Since(start)
		start = time.Now()
		r.Round(ctx)
		warm += time.Since(start)
		if errs := appErrors(f); errs != "" {
			b.Fatal(errs)
		}
		objects = len(objectsOfBench(b, f, "c1", "big"))
	}
	n := float64(b.N)
	b.ReportMetric(float64(cold.Microseconds())/1000/n, "ms-cold")
	b.ReportMetric(float64(warm.Microseconds())/1000/n, "ms-warm")
	b.ReportMetric(float64(objects), "objects")
}

// BenchmarkChartFanOut: 1,000 clusters over 3 capability sets and 2 value sets cost 6
// renders.
func BenchmarkChartFanOut(b *testing.B) {
	const clusterCount = 1000
	src := &fakeCharts{}
	src.add(b, benchChartRepo, bigChart("fan", "1.0.0", 50))
	appsDir := chartBenchApp(b, "fan")
	clusters := make([]ClusterVars, clusterCount)
	for i := range clusters {
		clusters[i] = ClusterVars{Name: fmt.Sprintf("cluster-%04d", i), Labels: map[string]string{"env": []string{"staging", "production"}[i%2]}}
	}
	capSets := [][]string{{"v1", "apps/v1"}, {"v1", "apps/v1", "monitoring.coreos.com/v1"}, {"v1", "apps/v1", "policy/v1"}}
	ctx := context.Background()
	var renders int64
	var wall time.Duration
	for b.Loop() {
		rend := &countingRenderer{next: render.New(render.Options{})}
		f, r := chartBenchReconciler(appsDir, clusters, src, render.NewCache(0), rend)
		for i, c := range clusters {
			f.SetCapabilities(c.Name, render.Capabilities{KubeVersion: "v1.33.0", APIVersions: capSets[i%3]})
		}
		start := time.Now()
		r.Round(ctx)
		wall = time.Since(start)
		if errs := appErrors(f); errs != "" {
			b.Fatal(errs)
		}
		renders = rend.count.Load()
	}
	fmt.Fprintf(os.Stderr, "\nchart fan-out: %d clusters, 3 capability sets x 2 value sets: %d renders, round %s\n", clusterCount, renders, wall.Round(time.Millisecond))
	b.ReportMetric(float64(renders), "renders")
	b.ReportMetric(float64(wall.Microseconds())/1000, "ms-round")
}

// BenchmarkChartCacheMemory: the hub's heap added by 50 different charts (200 objects each)
// rendered and held in the render cache.
func BenchmarkChartCacheMemory(b *testing.B) {
	const charts = 50
	src := &fakeCharts{}
	dir := b.TempDir()
	for i := range charts {
		name := fmt.Sprintf("chart%02d", i)
		src.add(b, benchChartRepo, bigChart(name, "1.0.0", 200))
		doc := fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: %[2]s}
spec:
  source: {repoURL: %[1]s, chart: %[2]s}
  destination: {clusters: [c1], namespace: bench}
`, benchChartRepo, name)
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(doc), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	clusters := []ClusterVars{{Name: "c1"}}
	ctx := context.Background()
	var added float64
	for b.Loop() {
		cache := render.NewCache(0)
		f, r := chartBenchReconciler(dir, clusters, src, cache, render.New(render.Options{}))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r.Round(ctx)
		r.charts = nil // the round's fetched archives and chart files go with the round
		runtime.GC()
		runtime.ReadMemStats(&after)
		if errs := appErrors(f); errs != "" {
			b.Fatal(errs)
		}
		if n := cache.Stats().Entries; n != charts {
			b.Fatalf("%d cache entries, want %d", n, charts)
		}
		added = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
		runtime.KeepAlive(f)
	}
	b.ReportMetric(added, "MiB-heap-50-charts")
}

func objectsOfBench(b *testing.B, f *Fleet, cluster, app string) []*unstructured.Unstructured {
	d := f.Snapshot(cluster)[app]
	if d == nil {
		b.Fatalf("no desired %s on %s", app, cluster)
	}
	objs, err := bundle.Decode(d.Bundle.Data)
	if err != nil {
		b.Fatal(err)
	}
	return objs
}
