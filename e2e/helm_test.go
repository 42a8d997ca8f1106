package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// serviceMonitorCRD is a ServiceMonitor-like CRD of monitoring.coreos.com/v1.
const serviceMonitorCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`

var (
	crdGVR            = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	serviceMonitorGVR = schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "servicemonitors"}
)

// monitoringChartFiles is the platform/monitoring chart at version: a Deployment, a ConfigMap
// from values, a ServiceMonitor only where monitoring.coreos.com/v1 is served, per-environment
// value files, and before 2.0.0 a ConfigMap that 2.0.0 drops.
func monitoringChartFiles(version string) map[string]string {
	files := map[string]string{
		"platform/monitoring/Chart.yaml":  "apiVersion: v2\nname: monitoring\nversion: " + version + "\n",
		"platform/monitoring/values.yaml": "env: none\nretention: 1d\n",
		"platform/monitoring/templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}-agent}
spec:
  replicas: 1
  selector: {matchLabels: {app: monitoring}}
  template:
    metadata: {labels: {app: monitoring}}
    spec: {containers: [{name: agent, image: "registry.example/monitoring:{{ .Chart.Version }}"}]}
`,
		"platform/monitoring/templates/config.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: {{ .Release.Name }}-config}
data: {env: {{ .Values.env | quote }}, retention: {{ .Values.retention | quote }}}
`,
		"platform/monitoring/templates/servicemonitor.yaml": `{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: {{ .Release.Name }}, namespace: {{ .Release.Namespace }}}
spec: {selector: {matchLabels: {app: monitoring}}}
{{- end }}
`,
		"platform/monitoring/templates/tests/test-connection.yaml": `apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations: {helm.sh/hook: test}
spec: {containers: [{name: t, image: registry.example/test:1}]}
`,
		"platform/monitoring/templates/NOTES.txt":    "monitoring {{ .Chart.Version }} installed\n",
		"platform/monitoring/values/staging.yaml":    "env: staging\n",
		"platform/monitoring/values/production.yaml": "env: production\nretention: 30d\n",
	}
	if version < "2.0.0" {
		files["platform/monitoring/templates/legacy.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-legacy}\n"
	} else {
		files["platform/monitoring/templates/legacy.yaml"] = "" // deleted
	}
	return files
}

// monitoringApp is the platform-monitoring Application: the chart in Git, label-driven value
// files, on both clusters.
func monitoringApp(repoURL string) string {
	return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: platform-monitoring}
spec:
  source:
    repoURL: %s
    targetRevision: main
    path: platform/monitoring
    helm:
      releaseName: monitoring
      valueFiles: ["values/{{ .labels.env }}.yaml"]
  destination:
    clusterSelector: {matchExpressions: [{key: env, operator: In, values: [staging, production]}]}
    namespace: monitoring
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
`, repoURL)
}

// TestHelmPlatformChart: a chart of our own in Git reaches both clusters with label-driven
// values; the cluster that serves monitoring.coreos.com/v1 (its CRD installed while the agent
// runs) gets the ServiceMonitor, the other does not; `flotilla apps` and `history` show the
// chart and its version; a version bump reaches both and prunes what it dropped; a chart using
// lookup is refused naming chart and template, and the last good state stays.
func TestHelmPlatformChart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{pollInterval: time.Second})
	staging, production := e.clusters[0], e.clusters[1]
	stgClient, prodClient := kubeClient(t, staging), kubeClient(t, production)
	t.Cleanup(func() {
		e.fleet.Stop() // the agents would apply the ServiceMonitor again
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := dynamicClient(t, production).Resource(crdGVR).Delete(ctx, "servicemonitors.monitoring.coreos.com", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete the ServiceMonitor CRD: %v", err)
		}
		for _, c := range kubeClients(t, e.clusters) {
			if err := c.CoreV1().Namespaces().Delete(ctx, "monitoring", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete namespace monitoring: %v", err)
			}
		}
	})

	rev1, err := e.repo.Commit("platform/monitoring 1.0.0", monitoringChartFiles("1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"platform-monitoring.yaml": monitoringApp(e.git.URL(e.repo.Dir))}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, appliedEverywhere("platform-monitoring", rev1)); err != nil {
		t.Fatal(err)
	}
	for name, client := range map[string]struct{ env, retention string }{"staging": {"staging", "1d"}, "production": {"production", "30d"}} {
		c := stgClient
		if name == "production" {
			c = prodClient
		}
		cm, err := c.CoreV1().ConfigMaps("monitoring").Get(e.ctx, "monitoring-config", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cm.Data["env"] != client.env || cm.Data["retention"] != client.retention {
			t.Errorf("%s: config %v, want env %s retention %s (values/%s.yaml over the chart's values)", name, cm.Data, client.env, client.retention, name)
		}
		if _, err := c.CoreV1().ConfigMaps("monitoring").Get(e.ctx, "monitoring-legacy", metav1.GetOptions{}); err != nil {
			t.Errorf("%s: legacy ConfigMap of 1.0.0: %v", name, err)
		}
		if _, err := c.AppsV1().Deployments("monitoring").Get(e.ctx, "monitoring-agent", metav1.GetOptions{}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := c.CoreV1().Pods("monitoring").Get(e.ctx, "monitoring-test", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s: the chart's test hook Pod was delivered (err %v)", name, err)
		}
	}

	// The CRD on production only: its agent reports the new API, the hub renders the
	// ServiceMonitor for production.
	var crd unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(serviceMonitorCRD), &crd.Object); err != nil {
		t.Fatal(err)
	}
	applyObjects(t, e.ctx, production, []*unstructured.Unstructured{&crd})
	testwait.For(t, 4*time.Minute, "the ServiceMonitor on production", func(ctx context.Context) (bool, error) {
		_, err := dynamicClient(t, production).Resource(serviceMonitorGVR).Namespace("monitoring").Get(ctx, "monitoring", metav1.GetOptions{})
		return err == nil, nil
	})
	// Staging, without the API, stays Synced (a ServiceMonitor sent there would fail to apply).
	items, err := e.fleet.WaitStatus(e.ctx, time.Minute, appliedEverywhere("platform-monitoring", rev1))
	if err != nil {
		t.Fatal(err)
	}
	if it := statusOf(items, "staging", "platform-monitoring"); it == nil || it.Sync != "Synced" {
		t.Errorf("staging %+v", it)
	}

	// flotilla apps shows the chart and its version.
	out, err := e.fleet.CLI(e.ctx, "apps", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var appsResp struct {
		Items []struct{ Name, Chart, ChartVersion, Error string }
	}
	if err := json.Unmarshal(out, &appsResp); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range appsResp.Items {
		if a.Name == "platform-monitoring" {
			found = true
			if a.Chart != "platform/monitoring" || a.ChartVersion != "1.0.0" || a.Error != "" {
				t.Errorf("flotilla apps: %+v, want chart platform/monitoring 1.0.0", a)
			}
		}
	}
	if !found {
		t.Errorf("flotilla apps: no platform-monitoring in %s", out)
	}

	// The version bump reaches both and prunes the legacy ConfigMap.
	rev2, err := e.repo.Commit("platform/monitoring 2.0.0", monitoringChartFiles("2.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, appliedEverywhere("platform-monitoring", rev2)); err != nil {
		t.Fatal(err)
	}
	waitConfigMaps(t, e.ctx, kubeClients(t, e.clusters), "monitoring", false, "monitoring-legacy")
	for _, c := range kubeClients(t, e.clusters) {
		d, err := c.AppsV1().Deployments("monitoring").Get(e.ctx, "monitoring-agent", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/monitoring:2.0.0" {
			t.Errorf("image %s after the bump", img)
		}
	}
	testwait.For(t, time.Minute, "history with the chart version and values digest", func(ctx context.Context) (bool, error) {
		out, err := e.fleet.CLI(ctx, "history", "platform-monitoring", "--cluster", "production", "-o", "json")
		if err != nil {
			return false, nil
		}
		var resp struct {
			Items []struct{ Revision, ChartVersion, ValuesDigest string }
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			return false, err
		}
		for _, it := range resp.Items {
			if it.Revision == rev2 && it.ChartVersion == "2.0.0" && strings.HasPrefix(it.ValuesDigest, "sha256:") {
				return true, nil
			}
		}
		return false, nil
	})

	// lookup: refused, named; the last good state stays.
	rev3, err := e.repo.Commit("platform/monitoring reads a Secret", map[string]string{
		"platform/monitoring/templates/secret.yaml": "{{- $s := lookup \"v1\" \"Secret\" .Release.Namespace \"creds\" }}\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-lookup}\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	items, err = e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
		n := 0
		for _, it := range items {
			if it.App == "platform-monitoring" && it.Sync == "RenderFailed" && strings.HasPrefix(it.Message, "RenderFailed at "+rev3[:12]) {
				n++
			}
		}
		return n == 2
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.App != "platform-monitoring" {
			continue
		}
		if !strings.Contains(it.Message, "chart platform/monitoring: template monitoring/templates/secret.yaml: uses lookup") || it.AppliedRevision != rev2 {
			t.Errorf("%s: %+v, want the lookup named with %s still applied", it.Cluster, it, rev2)
		}
	}
	for _, c := range kubeClients(t, e.clusters) {
		if _, err := c.CoreV1().ConfigMaps("monitoring").Get(e.ctx, "monitoring-config", metav1.GetOptions{}); err != nil {
			t.Errorf("the last good state is gone: %v", err)
		}
	}
}

// TestHelmMultiSourceValues: an Argo CD multi-source Application, unchanged — the chart from
// one source, its values from a `ref: values` source as $values/... — renders the chart with
// those values; a value file changed in Git reaches the cluster.
func TestHelmMultiSourceValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{pollInterval: time.Second})
	files := monitoringChartFiles("1.0.0")
	files["fleet-values/monitoring/staging.yaml"] = "retention: 14d\n"
	rev1, err := e.repo.Commit("monitoring chart and fleet values", files)
	if err != nil {
		t.Fatal(err)
	}
	repoURL := e.git.URL(e.repo.Dir)
	app := fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: monitoring-ms, namespace: argocd}
spec:
  project: default
  sources:
  - repoURL: %[1]s
    targetRevision: main
    path: platform/monitoring
    helm:
      releaseName: ms
      valueFiles: ["values/{{ .labels.env }}.yaml", "$values/fleet-values/monitoring/{{ .labels.env }}.yaml"]
  - repoURL: %[1]s
    targetRevision: main
    ref: values
  destination: {name: staging, namespace: monitoring-ms}
  syncPolicy:
    automated: {prune: true}
    syncOptions: [CreateNamespace=true]
`, repoURL)
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"monitoring-ms.yaml": app}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.fleet.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := kubeClient(t, e.clusters[0]).CoreV1().Namespaces().Delete(ctx, "monitoring-ms", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace monitoring-ms: %v", err)
		}
	})
	staging := kubeClient(t, e.clusters[0])
	retention := func(want string) {
		t.Helper()
		testwait.For(t, 3*time.Minute, "ms-config with retention "+want+" on staging", func(ctx context.Context) (bool, error) {
			cm, err := staging.CoreV1().ConfigMaps("monitoring-ms").Get(ctx, "ms-config", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			return cm.Data["retention"] == want && cm.Data["env"] == "staging", nil
		})
	}
	retention("14d")
	items, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		it := statusOf(items, "staging", "monitoring-ms")
		return it != nil && it.Sync == "Synced" && it.AppliedRevision == rev1
	})
	if err != nil {
		t.Fatal(err)
	}
	if it := statusOf(items, "production", "monitoring-ms"); it != nil {
		t.Errorf("the app reached production: %+v", it)
	}
	if _, err := e.repo.Commit("staging keeps metrics longer", map[string]string{"fleet-values/monitoring/staging.yaml": "retention: 60d\n"}); err != nil {
		t.Fatal(err)
	}
	retention("60d")
}
