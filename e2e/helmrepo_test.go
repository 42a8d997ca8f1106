package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/shared/chartstest"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// remoteChart packages the chart "mon" at version: a ConfigMap with the chart version and
// .Values.env; before 2.0.0 also a legacy ConfigMap that 2.0.0 drops; padding adds a file of
// that many incompressible bytes (a chart over the hub's size bound).
func remoteChart(t *testing.T, version string, padding int) []byte {
	files := map[string][]byte{
		"values.yaml": []byte("env: none\n"),
		"templates/config.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-config}\n" +
			"data: {version: {{ .Chart.Version | quote }}, env: {{ .Values.env | quote }}}\n"),
	}
	if version < "2.0.0" {
		files["templates/legacy.yaml"] = []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-legacy}\n")
	}
	if padding > 0 {
		blob := make([]byte, padding)
		_, _ = rand.Read(blob)
		files["files/padding"] = []byte(base64.StdEncoding.EncodeToString(blob))
	}
	return chartstest.PackageChart(t, chartstest.Chart{Name: "mon", Version: version, Files: files})
}

// argoChartApp is an Argo CD multi-source Application as Argo CD takes it: the chart from a
// Helm repository, its values from the Git repository through `ref: values`.
func argoChartApp(cluster, helmURL, gitURL string) string {
	return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: mon-%[1]s, namespace: argocd}
spec:
  project: default
  sources:
  - repoURL: %[2]s
    chart: mon
    targetRevision: 1.0.0
    helm:
      releaseName: mon
      valueFiles: [$values/fleet-values/mon/%[1]s.yaml]
  - repoURL: %[3]s
    targetRevision: main
    ref: values
  destination: {name: %[1]s, namespace: mon-repo}
  syncPolicy:
    automated: {prune: true}
    syncOptions: [CreateNamespace=true]
`, cluster, helmURL, gitURL)
}

// ociChartApp is a Flotilla Application of the chart mon from an OCI registry at version, on
// both clusters, with a label as a value, its ConfigMap labelled by a kustomize patch.
func ociChartApp(registryURL, version string) string {
	return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: mon-oci}
spec:
  source:
    repoURL: %s
    chart: mon
    targetRevision: %s
    helm:
      releaseName: oci
      valuesObject: {env: "{{ .labels.env }}"}
    kustomize:
      patches:
      - patch: |
          apiVersion: v1
          kind: ConfigMap
          metadata: {name: oci-config, labels: {patched-by: kustomize}}
  destination:
    clusterSelector: {matchExpressions: [{key: env, operator: In, values: [staging, production]}]}
    namespace: mon-oci
  syncPolicy:
    automated: {prune: true}
    syncOptions: [CreateNamespace=true]
`, registryURL, version)
}

// appEntry is the part of a `flotilla apps -o json` item this file reads.
type appEntry struct {
	Name, RepoState, Error, Chart, ChartVersion string
}

// appsJSON returns `flotilla apps -o json`, raw and decoded by name.
func appsJSON(ctx context.Context, e *env) (string, map[string]appEntry, error) {
	out, err := e.fleet.CLI(ctx, "apps", "-o", "json")
	if err != nil {
		return "", nil, err
	}
	var resp struct{ Items []appEntry }
	if err := json.Unmarshal(out, &resp); err != nil {
		return "", nil, err
	}
	byName := map[string]appEntry{}
	for _, a := range resp.Items {
		byName[a.Name] = a
	}
	return string(out), byName, nil
}

// configData waits until ConfigMap name in ns on each cluster has data for which want holds.
func configData(t *testing.T, ctx context.Context, cs map[string]kubernetes.Interface, ns, name string, want func(cluster string, data map[string]string) bool) {
	t.Helper()
	testwait.For(t, 4*time.Minute, fmt.Sprintf("ConfigMap %s/%s as wanted on every cluster", ns, name), func(ctx context.Context) (bool, error) {
		for cluster, c := range cs {
			cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			if !want(cluster, cm.Data) {
				return false, nil
			}
		}
		return true, nil
	})
}

// TestHelmRemoteSources: charts from a TLS Helm repository (basic auth) and a TLS OCI
// registry (token), the hub trusting them through --chart-ca-file and authenticating through
// --repo-credentials: Argo CD multi-source Applications applied unchanged (chart from the
// repository, $values from Git) reach both clusters; an OCI chart at an exact version reaches
// both, post-rendered by a kustomize patch, and a bump prunes what the new version dropped;
// `flotilla rollback --to` pins a cluster to an earlier chart version until cleared; a chart
// over --chart-max-size is refused naming the chart while the last good state stays;
// with both repositories down the last good state stays applied and `flotilla apps` shows
// them Stale, without a credential.
func TestHelmRemoteSources(t *testing.T) {
	t.Parallel()
	basic := chartstest.Auth{Username: "fleet", Password: "repo-pass-e2e"}
	token := chartstest.Auth{Token: "registry-token-e2e"}
	helmRepo := chartstest.NewHelmRepo(t, basic)
	oci := chartstest.NewOCIRegistry(t, token)
	helmRepo.Publish(t, remoteChart(t, "1.0.0", 0))
	oci.Push(t, remoteChart(t, "1.0.0", 0))
	oci.Push(t, remoteChart(t, "2.0.0", 0))
	oci.Push(t, remoteChart(t, "3.0.0", 256<<10))

	caFile := filepath.Join(t.TempDir(), "chart-ca.pem")
	var ca []byte
	for _, f := range []string{helmRepo.WriteCAFile(t), oci.WriteCAFile(t)} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ca = append(ca, b...)
	}
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	creds := chartstest.WriteCredentialsFile(t,
		chartstest.Credential{URLPrefix: helmRepo.URL, Auth: basic},
		chartstest.Credential{URLPrefix: oci.URL, Auth: token})
	e := newEnv(t, envOptions{pollInterval: time.Second, hubArgs: []string{
		"--chart-ca-file", caFile, "--repo-credentials", creds, "--chart-max-size", "64Ki",
	}})
	t.Cleanup(func() {
		e.fleet.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, c := range kubeClients(t, e.clusters) {
			for _, ns := range []string{"mon-repo", "mon-oci"} {
				if err := c.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					t.Errorf("delete namespace %s: %v", ns, err)
				}
			}
		}
	})
	clients := map[string]kubernetes.Interface{}
	for _, c := range e.clusters {
		clients[c.Name] = kubeClient(t, c)
	}
	envOf := map[string]string{e.clusters[0].Name: "staging", e.clusters[1].Name: "production"}

	// a. Argo CD multi-source Applications, unchanged: the chart from the Helm repository,
	// values from Git.
	gitURL := e.git.URL(e.repo.Dir)
	if _, err := e.repo.Commit("fleet values for mon", map[string]string{
		"fleet-values/mon/" + e.clusters[0].Name + ".yaml": "env: staging-from-git\n",
		"fleet-values/mon/" + e.clusters[1].Name + ".yaml": "env: production-from-git\n",
	}); err != nil {
		t.Fatal(err)
	}
	appFiles := map[string]string{}
	for _, c := range e.clusters {
		appFiles["mon-"+c.Name+".yaml"] = argoChartApp(c.Name, helmRepo.URL, gitURL)
	}
	appFiles["mon-oci.yaml"] = ociChartApp(oci.URL, "1.0.0")
	if err := localfleet.WriteFiles(e.appsDir, appFiles); err != nil {
		t.Fatal(err)
	}
	configData(t, e.ctx, clients, "mon-repo", "mon-config", func(cluster string, d map[string]string) bool {
		return d["version"] == "1.0.0" && d["env"] == envOf[cluster]+"-from-git"
	})

	// b. The OCI chart at an exact version, post-rendered by a kustomize patch, then bumped: the
	// legacy ConfigMap is pruned.
	configData(t, e.ctx, clients, "mon-oci", "oci-config", func(cluster string, d map[string]string) bool {
		return d["version"] == "1.0.0" && d["env"] == envOf[cluster]
	})
	for cluster, c := range clients {
		cm, err := c.CoreV1().ConfigMaps("mon-oci").Get(e.ctx, "oci-config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.Labels["patched-by"] != "kustomize" {
			t.Errorf("%s: oci-config labels %v, want the kustomize patch's", cluster, cm.Labels)
		}
	}
	waitConfigMaps(t, e.ctx, kubeClients(t, e.clusters), "mon-oci", true, "oci-legacy")
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"mon-oci.yaml": ociChartApp(oci.URL, "2.0.0")}); err != nil {
		t.Fatal(err)
	}
	configData(t, e.ctx, clients, "mon-oci", "oci-config", func(_ string, d map[string]string) bool { return d["version"] == "2.0.0" })
	waitConfigMaps(t, e.ctx, kubeClients(t, e.clusters), "mon-oci", false, "oci-legacy")
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, appliedEverywhere("mon-oci", "2.0.0")); err != nil {
		t.Fatal(err)
	}

	// A rollback pins production to the chart version 1.0.0; staging keeps 2.0.0; cleared,
	// production follows the app again.
	staging, production := e.clusters[0].Name, e.clusters[1].Name
	if _, err := e.fleet.CLI(e.ctx, "rollback", "mon-oci", "--cluster", production, "--to", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	configData(t, e.ctx, map[string]kubernetes.Interface{production: clients[production]}, "mon-oci", "oci-config",
		func(_ string, d map[string]string) bool { return d["version"] == "1.0.0" })
	if cm, err := clients[staging].CoreV1().ConfigMaps("mon-oci").Get(e.ctx, "oci-config", metav1.GetOptions{}); err != nil || cm.Data["version"] != "2.0.0" {
		t.Errorf("staging while production is pinned: %v %v, want 2.0.0", cm.Data, err)
	}
	if _, err := e.fleet.CLI(e.ctx, "rollback", "mon-oci", "--clear"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, appliedEverywhere("mon-oci", "2.0.0")); err != nil {
		t.Fatal(err)
	}
	waitConfigMaps(t, e.ctx, kubeClients(t, e.clusters), "mon-oci", false, "oci-legacy")

	// d. 3.0.0 is over --chart-max-size: refused, naming the chart; 2.0.0 stays.
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"mon-oci.yaml": ociChartApp(oci.URL, "3.0.0")}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 3*time.Minute, "mon-oci 3.0.0 refused as too large", func(ctx context.Context) (bool, error) {
		_, apps, err := appsJSON(ctx, e)
		if err != nil {
			return false, nil
		}
		msg := apps["mon-oci"].Error
		return strings.Contains(msg, `chart "mon" version "3.0.0"`) && strings.Contains(msg, "too large"), nil
	})
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, appliedEverywhere("mon-oci", "2.0.0")); err != nil {
		t.Fatal(err)
	}
	configData(t, e.ctx, clients, "mon-oci", "oci-config", func(_ string, d map[string]string) bool { return d["version"] == "2.0.0" })
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"mon-oci.yaml": ociChartApp(oci.URL, "2.0.0")}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 3*time.Minute, "mon-oci back on 2.0.0 without an error", func(ctx context.Context) (bool, error) {
		_, apps, err := appsJSON(ctx, e)
		return err == nil && apps["mon-oci"].Error == "" && apps["mon-oci"].ChartVersion == "2.0.0", nil
	})

	// c. Both repositories down: the last good state stays applied, and both show Stale with
	// the fetch error and no credential.
	versions := map[string]string{}
	for cluster, c := range clients {
		for _, key := range []string{"mon-repo/mon-config", "mon-oci/oci-config"} {
			ns, name, _ := strings.Cut(key, "/")
			cm, err := c.CoreV1().ConfigMaps(ns).Get(e.ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			versions[cluster+"/"+key] = cm.ResourceVersion
		}
	}
	helmRepo.Stop()
	oci.Stop()
	var stale string
	testwait.For(t, 3*time.Minute, "both chart repositories Stale", func(ctx context.Context) (bool, error) {
		out, apps, err := appsJSON(ctx, e)
		if err != nil {
			return false, nil
		}
		for _, name := range []string{"mon-oci", "mon-" + e.clusters[0].Name, "mon-" + e.clusters[1].Name} {
			if a := apps[name]; a.RepoState != "Stale" || !strings.Contains(a.Error, "fetch") {
				return false, nil
			}
		}
		stale = out
		return true, nil
	})
	for _, secret := range []string{basic.Password, token.Token} {
		if strings.Contains(stale, secret) {
			t.Errorf("flotilla apps shows a credential:\n%s", stale)
		}
	}
	testwait.Holds(t, 10*time.Second, "the last good state stays applied, unchanged", func(ctx context.Context) error {
		for key, rv := range versions {
			cluster, rest, _ := strings.Cut(key, "/")
			ns, name, _ := strings.Cut(rest, "/")
			cm, err := clients[cluster].CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cm.ResourceVersion != rv {
				return fmt.Errorf("%s changed (resourceVersion %s, was %s)", key, cm.ResourceVersion, rv)
			}
		}
		return nil
	})
	items, err := e.fleet.Status(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if strings.HasPrefix(it.App, "mon-") && it.Sync != "Synced" {
			t.Errorf("%s on %s: %s %s, want Synced with the last good state", it.App, it.Cluster, it.Sync, it.Message)
		}
	}
}
