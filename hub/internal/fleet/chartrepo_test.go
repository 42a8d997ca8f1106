package fleet

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/hub/internal/charts"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/shared/chartstest"
)

// TestChartFromRealRepositories: the hub's own chart fetcher against a TLS Helm repository
// and a TLS OCI registry that both require credentials: a range re-resolves to a newly
// published version on the next round; with both repositories down, the app shows its
// repository Stale and every cluster keeps the last good state, and the exact version, held
// in the hub's chart cache, is still rendered.
func TestChartFromRealRepositories(t *testing.T) {
	auth := chartstest.Auth{Username: "fleet", Password: "s3cret-pass"}
	helmRepo := chartstest.NewHelmRepo(t, auth)
	oci := chartstest.NewOCIRegistry(t, auth)
	pkg := func(version string) []byte {
		return chartstest.PackageChart(t, chartstest.Chart{Name: "mon", Version: version, Files: map[string][]byte{
			"templates/config.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-config}\n" +
				"data: {version: {{ .Chart.Version | quote }}, env: {{ .Values.env | default \"none\" | quote }}}\n"),
		}})
	}
	helmRepo.Publish(t, pkg("1.0.0"))
	oci.Push(t, pkg("1.0.0"))
	// httptest's TLS servers share one certificate: one pool trusts both.
	fetcher := realFetcher(t, auth, helmRepo.CertPool(), helmRepo.URL, oci.URL)
	appsDir := t.TempDir()
	app := func(name, repoURL, version string) string {
		return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: %s}
spec:
  source:
    repoURL: %s
    chart: mon
    targetRevision: %q
    helm:
      valuesObject: {env: "{{ .labels.env }}"}
  destination: {clusterSelector: {matchExpressions: [{key: env, operator: Exists}]}, namespace: monitoring}
`, name, repoURL, version)
	}
	writeApp(t, appsDir, "ranged", app("ranged", helmRepo.URL, "1.*"))
	writeApp(t, appsDir, "exact", app("exact", oci.URL, "1.0.0"))
	ctx := context.Background()
	f, r := chartReconciler(ctx, t, appsDir, fetcher)
	configData := func(cluster, app string) map[string]string {
		d, _, _ := unstructured.NestedStringMap(objectsOf(t, f, cluster, app)["ConfigMap/"+app+"-config"].Object, "data")
		return d
	}
	if d := configData("production", "exact"); d["version"] != "1.0.0" || d["env"] != "production" {
		t.Errorf("exact on production: %v", d)
	}

	helmRepo.Publish(t, pkg("1.1.0"))
	r.Round(ctx)
	for _, c := range twoClusters {
		if d := configData(c.Name, "ranged"); d["version"] != "1.1.0" || d["env"] != c.Labels["env"] {
			t.Errorf("ranged on %s after 1.1.0 was published: %v", c.Name, d)
		}
	}
	good := map[string]string{}
	for _, c := range twoClusters {
		for _, a := range []string{"ranged", "exact"} {
			good[c.Name+"/"+a] = f.Snapshot(c.Name)[a].Bundle.Digest
		}
	}

	helmRepo.Stop()
	oci.Stop()
	r.Round(ctx)
	for key, digest := range good {
		c, a, _ := strings.Cut(key, "/")
		if got := f.Snapshot(c)[a].Bundle.Digest; got != digest {
			t.Errorf("%s: the last good state was replaced while its repository is down", key)
		}
	}
	for _, a := range f.Apps() {
		if a.RepoState != RepoStale || !strings.Contains(a.Error, "fetch: ") {
			t.Errorf("app %s: state %s error %q, want Stale with the fetch error", a.Name, a.RepoState, a.Error)
		}
		if strings.Contains(a.Error, auth.Password) {
			t.Errorf("app %s: error shows the password", a.Name)
		}
		if a.Name == "exact" && a.Revision != "1.0.0" {
			t.Errorf("exact: revision %q, want 1.0.0 served from the chart cache", a.Revision)
		}
	}
}

// TestPinnedChartVersion: `flotilla rollback --to` on an app whose chart comes from a Helm
// repository pins a cluster to an earlier chart version: the hub fetches that version through
// the real fetcher and renders it for the pinned cluster only; the other cluster keeps the
// app's version; with the repository down the pinned version is served from the chart cache.
func TestPinnedChartVersion(t *testing.T) {
	auth := chartstest.Auth{Username: "fleet", Password: "pin-pass"}
	helmRepo := chartstest.NewHelmRepo(t, auth)
	for _, v := range []string{"1.0.0", "2.0.0"} {
		helmRepo.Publish(t, chartstest.PackageChart(t, chartstest.Chart{Name: "mon", Version: v}))
	}
	fetcher := realFetcher(t, auth, helmRepo.CertPool(), helmRepo.URL)
	appsDir := t.TempDir()
	writeApp(t, appsDir, "mon", fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: mon}
spec:
  source: {repoURL: %s, chart: mon, targetRevision: 2.0.0}
  destination: {clusterSelector: {matchExpressions: [{key: env, operator: Exists}]}, namespace: monitoring}
`, helmRepo.URL))
	ctx := context.Background()
	f, r := chartReconciler(ctx, t, appsDir, fetcher)
	version := func(cluster string) string {
		v, _, _ := unstructured.NestedString(objectsOf(t, f, cluster, "mon")["ConfigMap/mon-mon"].Object, "data", "version")
		return v
	}
	f.SetPins(map[string]map[string]string{"mon": {"production": "1.0.0"}})
	for _, down := range []bool{false, true} {
		if down {
			helmRepo.Stop()
		}
		r.Round(ctx)
		d := f.Snapshot("production")["mon"]
		if got := version("production"); got != "1.0.0" || d.Revision != "1.0.0" || !d.Pinned {
			t.Errorf("repository down %t: production renders %s at revision %s (pinned %t), want the pinned 1.0.0", down, got, d.Revision, d.Pinned)
		}
		if got := version("staging"); got != "2.0.0" {
			t.Errorf("repository down %t: staging renders %s, want the app's 2.0.0", down, got)
		}
		for _, a := range f.Apps() {
			if a.ChartVersion != "2.0.0" {
				t.Errorf("repository down %t: flotilla apps shows chart version %q, want the app's 2.0.0, not a pin's", down, a.ChartVersion)
			}
		}
		for _, row := range f.Rows() {
			if row.App == "mon" && row.Cluster == "production" && row.Sync == SyncRenderFailed {
				t.Errorf("repository down %t: production %+v", down, row)
			}
		}
	}
}

// TestChartKustomizePatches: a chart's rendered output post-rendered with the source's
// kustomize.patches: the patched object is in the bundle; a patch that selects nothing fails
// the app's render with an error naming the app, the chart and the patch, and the last good
// state stays.
func TestChartKustomizePatches(t *testing.T) {
	auth := chartstest.Auth{Token: "patch-token"}
	oci := chartstest.NewOCIRegistry(t, auth)
	oci.Push(t, chartstest.PackageChart(t, chartstest.Chart{Name: "mon", Version: "1.0.0"}))
	fetcher := realFetcher(t, auth, oci.CertPool(), oci.URL)
	appsDir := t.TempDir()
	app := func(target string) string {
		return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: mon}
spec:
  source:
    repoURL: %s
    chart: mon
    targetRevision: 1.0.0
    kustomize:
      patches:
      - patch: |
          apiVersion: v1
          kind: ConfigMap
          metadata: {name: mon-mon, labels: {team: platform}}
          data: {extra: "{{ not a template }}"}
      - target: {kind: %s}
        patch: '[{"op": "add", "path": "/metadata/annotations", "value": {"patched": "json6902"}}]'
  destination: {clusterSelector: {matchExpressions: [{key: env, operator: Exists}]}, namespace: monitoring}
`, oci.URL, target)
	}
	writeApp(t, appsDir, "mon", app("ConfigMap"))
	ctx := context.Background()
	f, r := chartReconciler(ctx, t, appsDir, fetcher)
	cm := objectsOf(t, f, "staging", "mon")["ConfigMap/mon-mon"]
	if cm == nil || cm.GetLabels()["team"] != "platform" || cm.GetAnnotations()["patched"] != "json6902" {
		t.Fatalf("ConfigMap not patched: %v", cm)
	}
	if d, _, _ := unstructured.NestedStringMap(cm.Object, "data"); d["version"] != "1.0.0" || d["extra"] != "{{ not a template }}" {
		t.Errorf("data %v, want the chart's version and the patch's extra, as written", d)
	}
	good := f.Snapshot("staging")["mon"].Bundle.Digest

	writeApp(t, appsDir, "mon", app("Secret"))
	r.Round(ctx)
	want := `application "mon": chart mon: kustomize.patches[1] (kind=Secret): selects no object the chart rendered`
	if errs := appErrors(f); !strings.Contains(errs, want) {
		t.Errorf("app errors %q, want %q", errs, want)
	}
	if got := f.Snapshot("staging")["mon"].Bundle.Digest; got != good {
		t.Error("the last good state was replaced by a failed patch")
	}

}

// realFetcher is the hub's chart fetcher trusting roots, with auth for each URL prefix, its
// index asked for again on every fetch.
func realFetcher(t *testing.T, auth chartstest.Auth, roots *x509.CertPool, urlPrefixes ...string) *charts.Fetcher {
	t.Helper()
	creds, err := source.LoadCredentials(chartstest.WriteCredentials(t, auth, urlPrefixes...))
	if err != nil {
		t.Fatal(err)
	}
	fetcher, err := charts.New(charts.Config{
		Dir: filepath.Join(t.TempDir(), "charts"), Credentials: creds, RootCAs: roots, IndexTTL: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return fetcher
}

// chartReconciler is a reconciler of twoClusters over appsDir with fetcher for charts, after
// a first round that must leave no app in error.
func chartReconciler(ctx context.Context, t *testing.T, appsDir string, fetcher *charts.Fetcher) (*Fleet, *Reconciler) {
	t.Helper()
	f, r := newTestReconciler(t, appsDir, twoClusters)
	r.cfg.Charts = fetcher
	r.Round(ctx)
	if errs := appErrors(f); errs != "" {
		t.Fatal(errs)
	}
	return f, r
}
