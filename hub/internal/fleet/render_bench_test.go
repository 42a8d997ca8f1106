package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/flotilla-dev/flotilla/hub/internal/render"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
)

const benchOverlays = 10

// benchClusterCount is how many clusters BenchmarkRenderFanOut reconciles: 1,000, or
// $FLOTILLA_BENCH_CLUSTERS (make bench: 10,000).
func benchClusterCount(b *testing.B) int {
	v := os.Getenv("FLOTILLA_BENCH_CLUSTERS")
	if v == "" {
		return 1000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("FLOTILLA_BENCH_CLUSTERS=%q: want a positive number", v)
	}
	return n
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingRenderer counts the renders it performs.
type countingRenderer struct {
	next  renderer
	count atomic.Int64
}

var _ renderer = (*countingRenderer)(nil)

func (c *countingRenderer) Render(ctx context.Context, fsys filesys.FileSystem, path string) ([]*unstructured.Unstructured, error) {
	c.count.Add(1)
	return c.next.Render(ctx, fsys, path)
}

func (c *countingRenderer) RenderChart(ctx context.Context, src render.ChartSource, rel render.Release) ([]*unstructured.Unstructured, error) {
	c.count.Add(1)
	return c.next.RenderChart(ctx, src, rel)
}

func (c *countingRenderer) LoadChart(src render.ChartSource) (*chart.Chart, error) {
	return c.next.LoadChart(src)
}

func (c *countingRenderer) PatchObjects(ctx context.Context, objs []*unstructured.Unstructured, patches []render.Patch) ([]*unstructured.Unstructured, error) {
	return c.next.PatchObjects(ctx, objs, patches)
}

// benchRepo is a Git working repository made with the git CLI.
type benchRepo struct {
	tb  testing.TB
	dir string
}

func (r *benchRepo) git(args ...string) {
	r.tb.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Bench", "GIT_AUTHOR_EMAIL=bench@flotilla.dev",
		"GIT_COMMITTER_NAME=Bench", "GIT_COMMITTER_EMAIL=bench@flotilla.dev", "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		r.tb.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (r *benchRepo) commit(msg string, files map[string]string) {
	r.tb.Helper()
	for p, content := range files {
		full := filepath.Join(r.dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.tb.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			r.tb.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
}

// overlayKustomization is overlays/<env>/kustomization.yaml: the base, labelled, scaled, and
// with its own settings (generation changes the settings).
func overlayKustomization(env string, replicas, generation int) string {
	return fmt.Sprintf(`resources:
- ../../base
labels:
- pairs: {env: %[1]s}
  includeSelectors: false
patches:
- target: {kind: Deployment, name: web}
  patch: |
    - op: replace
      path: /spec/replicas
      value: %[2]d
configMapGenerator:
- name: web-settings
  literals: [ENV=%[1]s, GENERATION=%[3]d]
`, env, replicas, generation)
}

func newBenchRepo(tb testing.TB) *benchRepo {
	r := &benchRepo{tb: tb, dir: filepath.Join(tb.TempDir(), "deploy")}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	r.git("init", "-q", "-b", "main")
	files := map[string]string{
		"base/kustomization.yaml": "resources:\n- deployment.yaml\n- service.yaml\n",
		"base/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example/web:1.0.0
        envFrom: [{configMapRef: {name: web-settings}}]
`,
		"base/service.yaml": `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`,
	}
	for i := range benchOverlays {
		files[fmt.Sprintf("overlays/env-%d/kustomization.yaml", i)] = overlayKustomization(fmt.Sprintf("env-%d", i), i+1, 0)
	}
	r.commit("base and 10 overlays", files)
	return r
}

// roundResult is what one reconcile round did.
type roundResult struct {
	name    string
	renders int64  // Render calls
	misses  uint64 // cache misses
	resent  int    // clusters whose desired generation moved (their agent is sent the app again)
	wall    time.Duration
	cpu     time.Duration // CPU time of the process during the round
}

// BenchmarkRenderFanOut: renders performed versus clusters for 1,000 clusters (or
// $FLOTILLA_BENCH_CLUSTERS) over 10 overlays, with a real Git repository, fetcher, renderer and
// cache. Round 1 starts cold; round 2 follows a commit that touches one overlay; round 3
// follows no change. cpu-us/cluster-* is the CPU the round cost per cluster: the hub's decision
// for one cluster (a render-cache hit or miss and the desired-state diff).
func BenchmarkRenderFanOut(b *testing.B) {
	benchClusters := benchClusterCount(b)
	repo := newBenchRepo(b)
	appsDir := filepath.Join(b.TempDir(), "apps")
	if err := os.MkdirAll(appsDir, 0o755); err != nil {
		b.Fatal(err)
	}
	app := fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: web}
spec:
  source: {repoURL: %q, targetRevision: main, path: "overlays/{{ .labels.env }}"}
  destination:
    clusterSelector: {matchExpressions: [{key: env, operator: Exists}]}
    namespace: web
  syncPolicy: {automated: {prune: true}}
`, repo.dir)
	if err := os.WriteFile(filepath.Join(appsDir, "web.yaml"), []byte(app), 0o644); err != nil {
		b.Fatal(err)
	}
	clusters := make([]ClusterVars, benchClusters)
	for i := range clusters {
		clusters[i] = ClusterVars{Name: fmt.Sprintf("cluster-%04d", i), Labels: map[string]string{"env": fmt.Sprintf("env-%d", i%benchOverlays)}}
	}
	fetcher, err := source.New(source.Options{CacheDir: b.TempDir(), AllowLocal: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var results []roundResult
	b.ResetTimer()
	for n := range b.N {
		cache := render.NewCache(0)
		rend := &countingRenderer{next: render.New(render.Options{})}
		f := New(time.Minute)
		r := NewReconciler(ReconcilerConfig{
			AppsDir: appsDir, Fetcher: fetcher, Renderer: rend, Cache: cache,
			Clusters: func() ([]ClusterVars, error) { return clusters, nil },
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		}, f)
		results = results[:0]
		round := func(name string) {
			gens := generations(f, clusters)
			before, renders := cache.Stats().Misses, rend.count.Load()
			start, cpu := time.Now(), cpuTime(b)
			r.Round(ctx)
			res := roundResult{name: name, wall: time.Since(start), cpu: cpuTime(b) - cpu, renders: rend.count.Load() - renders, misses: cache.Stats().Misses - before}
			for i, g := range generations(f, clusters) {
				if g != gens[i] {
					res.resent++
				}
			}
			if errs := appErrors(f); errs != "" {
				b.Fatalf("round %q: %s", name, errs)
			}
			results = append(results, res)
		}
		round("1 cold")
		env := n % benchOverlays
		b.StopTimer()
		repo.commit("touch one overlay", map[string]string{
			fmt.Sprintf("overlays/env-%d/kustomization.yaml", env): overlayKustomization(fmt.Sprintf("env-%d", env), env+1, n+1),
		})
		b.StartTimer()
		round(fmt.Sprintf("2 commit touching env-%d", env))
		round("3 no change")
	}
	b.StopTimer()

	fmt.Fprintf(os.Stderr, "\nrender fan-out: %d clusters over %d overlays (last of %d runs)\n", benchClusters, benchOverlays, b.N)
	fmt.Fprintf(os.Stderr, "%-26s %9s %8s %13s %16s %10s\n", "round", "clusters", "renders", "cache misses", "clusters re-sent", "wall")
	for _, res := range results {
		fmt.Fprintf(os.Stderr, "%-26s %9d %8d %13d %16d %10s\n", res.name, benchClusters, res.renders, res.misses, res.resent, res.wall.Round(10*time.Microsecond))
	}
	for i, unit := range []string{"cold", "commit", "nochange"} {
		b.ReportMetric(float64(results[i].renders), "renders-"+unit)
		b.ReportMetric(float64(results[i].wall.Microseconds())/1000, "ms-"+unit)
		b.ReportMetric(float64(results[i].cpu.Microseconds())/float64(benchClusters), "cpu-us/cluster-"+unit)
	}
	b.ReportMetric(float64(results[1].resent), "resent-commit")
	b.ReportMetric(float64(benchClusters), "clusters")
}

// generations returns the desired generation of app web on each cluster (0 for none).
func generations(f *Fleet, clusters []ClusterVars) []uint64 {
	out := make([]uint64, len(clusters))
	for i, c := range clusters {
		if d := f.Snapshot(c.Name)["web"]; d != nil {
			out[i] = d.Generation
		}
	}
	return out
}

// appErrors returns the errors the round recorded for its apps.
func appErrors(f *Fleet) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []string
	for name, a := range f.apps {
		if a.Error != "" {
			errs = append(errs, name+": "+a.Error)
		}
	}
	return strings.Join(errs, "; ")
}
