package render

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// monitoringChart is a small chart: a ConfigMap from values, a ServiceMonitor only where the
// API is served, a CRD in crds/, a test hook, a pre-install hook and NOTES.txt.
func monitoringChart() map[string][]byte {
	return map[string][]byte{
		"Chart.yaml":             []byte("apiVersion: v2\nname: monitoring\nversion: 1.0.0\n"),
		"values.yaml":            []byte("greeting: hello\nreplicas: 1\nnested:\n  a: chart\n  b: chart\n"),
		"templates/_helpers.tpl": []byte(`{{- define "monitoring.name" -}}{{ .Release.Name }}-mon{{- end -}}`),
		"templates/configmap.yaml": []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "monitoring.name" . }}
  namespace: {{ .Release.Namespace }}
data:
  greeting: {{ .Values.greeting | quote }}
  replicas: {{ .Values.replicas | quote }}
  a: {{ .Values.nested.a | quote }}
  b: {{ .Values.nested.b | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
`),
		"templates/servicemonitor.yaml": []byte(`{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ .Release.Name }}
{{- end }}
`),
		"templates/tests/test.yaml": []byte(`apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations:
    helm.sh/hook: test
`),
		"templates/hook.yaml": []byte(`apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
`),
		"templates/NOTES.txt": []byte("Thanks for installing {{ .Release.Name }}\n"),
		"crds/widget.yaml": []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
`),
	}
}

func names(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

func TestRenderChart(t *testing.T) {
	r := New(Options{})
	ctx := context.Background()
	rel := Release{Name: "mon", Namespace: "monitoring", Values: map[string]any{"greeting": "hi"}}
	objs, err := r.RenderChart(ctx, ChartSource{Name: "platform/monitoring", Files: monitoringChart()}, rel)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CustomResourceDefinition/widgets.example.com", "ConfigMap/mon-mon", "Job/mon-migrate"}
	if got := names(objs); !reflect.DeepEqual(got, want) {
		t.Errorf("objects %v, want %v (no test hook, no ServiceMonitor with default capabilities)", got, want)
	}
	data, _, _ := unstructured.NestedStringMap(objs[1].Object, "data")
	if data["greeting"] != "hi" || data["replicas"] != "1" || objs[1].GetNamespace() != "monitoring" {
		t.Errorf("configmap %v ns %q", data, objs[1].GetNamespace())
	}

	// The cluster's capabilities: the API served, its version.
	rel.Capabilities = Capabilities{KubeVersion: "v1.31.4", APIVersions: []string{"v1", "apps/v1", "monitoring.coreos.com/v1"}}
	rel.SkipCRDs = true
	objs, err = r.RenderChart(ctx, ChartSource{Name: "platform/monitoring", Files: monitoringChart()}, rel)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"ConfigMap/mon-mon", "Job/mon-migrate", "ServiceMonitor/mon"}
	if got := names(objs); !reflect.DeepEqual(got, want) {
		t.Errorf("objects %v, want %v", got, want)
	}
	if kube, _, _ := unstructured.NestedString(objs[0].Object, "data", "kube"); kube != "v1.31.4" {
		t.Errorf("kube version %q", kube)
	}
}

func TestRenderChartArchive(t *testing.T) {
	r := New(Options{})
	arch := packageChart(t, monitoringChart())
	objs, err := r.RenderChart(context.Background(), ChartSource{Name: "monitoring", Archive: arch}, Release{Name: "x", Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 {
		t.Errorf("objects %v", names(objs))
	}
	small := New(Options{MaxChartBytes: 100})
	if _, err := small.RenderChart(context.Background(), ChartSource{Name: "monitoring", Archive: arch}, Release{Name: "x"}); err == nil || !strings.Contains(err.Error(), "chart monitoring: packaged chart of") {
		t.Errorf("oversized archive: %v", err)
	}
	tight := New(Options{MaxChartExpandedBytes: 200})
	if _, err := tight.RenderChart(context.Background(), ChartSource{Name: "monitoring", Archive: arch}, Release{Name: "x"}); err == nil || !strings.Contains(err.Error(), "more than 200") {
		t.Errorf("oversized expanded chart: %v", err)
	}
	out := New(Options{MaxOutputBytes: 100})
	if _, err := out.RenderChart(context.Background(), ChartSource{Name: "monitoring", Archive: arch}, Release{Name: "x"}); err == nil || !strings.Contains(err.Error(), "templates rendered") {
		t.Errorf("oversized output: %v", err)
	}
}

// packageChart packages files as `helm package` does and returns the .tgz.
func packageChart(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	ch, err := New(Options{}).LoadChart(ChartSource{Name: "test", Files: files})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := chartutil.Save(ch, dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Clean(p))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRenderChartRefusesLookup(t *testing.T) {
	files := monitoringChart()
	files["templates/secret.yaml"] = []byte(`{{- $s := (lookup "v1" "Secret" .Release.Namespace "x") }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: y
`)
	_, err := New(Options{}).RenderChart(context.Background(), ChartSource{Name: "platform/monitoring", Files: files}, Release{Name: "m"})
	if !errors.Is(err, ErrLookup) || !strings.Contains(err.Error(), "chart platform/monitoring: template monitoring/templates/secret.yaml") {
		t.Errorf("err = %v", err)
	}
}

func TestRenderChartErrorsNameTemplate(t *testing.T) {
	files := monitoringChart()
	files["templates/bad.yaml"] = []byte("{{ required \"set .Values.must\" .Values.must }}\n")
	_, err := New(Options{}).RenderChart(context.Background(), ChartSource{Name: "mon", Files: files}, Release{Name: "m"})
	if err == nil || !strings.Contains(err.Error(), "chart mon:") || !strings.Contains(err.Error(), "templates/bad.yaml") || !strings.Contains(err.Error(), "set .Values.must") {
		t.Errorf("err = %v", err)
	}
}

func TestMergeValuesOrder(t *testing.T) {
	got, err := MergeValues(Values{
		Files: []ValueFile{
			{Name: "a.yaml", Data: []byte("a: file1\nb: file1\nc: file1\nd: file1\ne: file1\nm: {p: 1, q: 1}\n")},
			{Name: "b.yaml", Data: []byte("b: file2\nm: {q: 2}\n")},
		},
		Values:     "c: string\nd: string\n",
		Object:     map[string]any{"d": "object", "e": "object"},
		Parameters: []Parameter{{Name: "e", Value: "param"}, {Name: "n", Value: "1,2"}, {Name: "s", Value: "10", ForceString: true}, {Name: "i", Value: "10"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": "file1", "b": "file2", "c": "string", "d": "object", "e": "param",
		"m": map[string]any{"p": float64(1), "q": float64(2)}, "n": "1,2", "s": "10", "i": int64(10)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
	if _, err := MergeValues(Values{Files: []ValueFile{{Name: "values/bad.yaml", Data: []byte("a: [")}}}); err == nil || !strings.Contains(err.Error(), "values/bad.yaml") {
		t.Errorf("bad file: %v", err)
	}
}

func TestChartCacheKey(t *testing.T) {
	a := Release{Name: "r", Namespace: "n", Capabilities: Capabilities{KubeVersion: "v1.30.0", APIVersions: []string{"v1", "apps/v1"}}}
	b := a
	b.Capabilities.APIVersions = []string{"apps/v1", "v1"}
	if ChartCacheKey("c", "v", a) != ChartCacheKey("c", "v", b) {
		t.Error("API version order changes the key")
	}
	b.Capabilities.APIVersions = append(b.Capabilities.APIVersions, "monitoring.coreos.com/v1")
	if ChartCacheKey("c", "v", a) == ChartCacheKey("c", "v", b) {
		t.Error("another API does not change the key")
	}
	d1, _ := ValuesDigest(map[string]any{"a": 1, "b": map[string]any{"c": 2}})
	d2, _ := ValuesDigest(map[string]any{"b": map[string]any{"c": 2}, "a": 1})
	if d1 != d2 {
		t.Error("values digest depends on key order")
	}
}
