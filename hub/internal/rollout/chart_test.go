package rollout

import (
	"crypto/x509"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/charts"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/shared/chartstest"
)

// TestCoordinatorRollsOutAChartVersion: an app whose chart comes from a Helm repository (or an
// OCI registry, both real TLS servers requiring credentials) with a semver range is rolled out
// by the version the range resolves to: a newly published version reaches the canary first;
// the main clusters keep the version they run (fetched as a pin is: their desired state does
// not change, not even its generation) until the canary is healthy on the new one.
func TestCoordinatorRollsOutAChartVersion(t *testing.T) {
	auth := chartstest.Auth{Username: "fleet", Password: "roll-pass"}
	pkg := func(version string) []byte {
		return chartstest.PackageChart(t, chartstest.Chart{Name: "mon", Version: version, Files: map[string][]byte{
			"templates/config.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-config}\n" +
				"data: {version: {{ .Chart.Version | quote }}}\n"),
		}})
	}
	for _, tt := range []struct {
		name    string
		serve   func(t *testing.T) (url string, publish func(version string), fetcher *charts.Fetcher)
		version string
	}{
		{"helm repository", func(t *testing.T) (string, func(string), *charts.Fetcher) {
			repo := chartstest.NewHelmRepo(t, auth)
			t.Cleanup(repo.Stop)
			return repo.URL, func(v string) { repo.Publish(t, pkg(v)) }, chartFetcher(t, auth, repo.CertPool(), repo.URL)
		}, "1.*"},
		{"oci registry", func(t *testing.T) (string, func(string), *charts.Fetcher) {
			reg := chartstest.NewOCIRegistry(t, auth)
			return reg.URL, func(v string) { reg.Push(t, pkg(v)) }, chartFetcher(t, auth, reg.CertPool(), reg.URL)
		}, ">=1.0.0 <2.0.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url, publish, fetcher := tt.serve(t)
			publish("1.0.0")
			e := &editParts{hubParts: newHubParts(t, apps.FailureHalt), appsDir: t.TempDir(), charts: fetcher}
			writeFiles(t, e.appsDir, map[string]string{"api.yaml": fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: api}
spec:
  source: {repoURL: %s, chart: mon, targetRevision: %q}
  destination: {clusters: [canary, m1, m2], namespace: mon}
  syncPolicy: {automated: {}}
  rollout:
    steps:
    - clusters: {matchLabels: {ring: canary}}
    - {}
`, url, tt.version)})
			e.start(t)
			e.cycle()
			for _, c := range e.clusters {
				if v, _ := e.data(t, c.Name, "version"); v != "1.0.0" {
					t.Fatalf("%s: baseline version %s", c.Name, v)
				}
				e.applied(c.Name, healthHealthy)
			}
			_, m1Before := e.data(t, "m1", "version")

			publish("1.1.0")
			e.cycle()
			v, _ := e.coord.Get("api")
			if v.Record.State != StateRunning || v.Record.Revision != "1.1.0" || v.Record.From != "1.0.0" || v.Record.ID != "r-1.1.0" {
				t.Fatalf("after 1.1.0 was published: %+v", v.Record)
			}
			if got, _ := e.data(t, "canary", "version"); got != "1.1.0" {
				t.Errorf("canary version %s, want 1.1.0", got)
			}
			for _, m := range []string{"m1", "m2"} {
				got, d := e.data(t, m, "version")
				if got != "1.0.0" || d.Pinned {
					t.Errorf("%s version %s (pinned %v), want 1.0.0 held by the rollout", m, got, d.Pinned)
				}
				if m == "m1" && (d.Generation != m1Before.Generation || d.Digest() != m1Before.Digest()) {
					t.Errorf("m1's desired state changed: generation %d→%d", m1Before.Generation, d.Generation)
				}
			}
			for _, info := range e.fleet.Apps() {
				if info.Name == "api" && (info.ChartVersion != "1.1.0" || info.Revision != "1.1.0") {
					t.Errorf("flotilla apps shows chart version %s, revision %s; want the app's 1.1.0, not a held cluster's", info.ChartVersion, info.Revision)
				}
			}
			e.applied("canary", healthHealthy)
			e.cycle()
			for _, m := range []string{"m1", "m2"} {
				if got, _ := e.data(t, m, "version"); got != "1.1.0" {
					t.Errorf("%s version %s after the canary's step, want 1.1.0", m, got)
				}
			}
		})
	}
}

// chartFetcher is the hub's chart fetcher with credentials for url, trusting roots.
func chartFetcher(t *testing.T, auth chartstest.Auth, roots *x509.CertPool, url string) *charts.Fetcher {
	t.Helper()
	creds, err := source.LoadCredentials(chartstest.WriteCredentials(t, auth, url))
	if err != nil {
		t.Fatal(err)
	}
	f, err := charts.New(charts.Config{Dir: filepath.Join(t.TempDir(), "charts"), Credentials: creds, RootCAs: roots, IndexTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	return f
}
