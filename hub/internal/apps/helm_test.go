package apps

import (
	"reflect"
	"strings"
	"testing"
)

func TestArgoCDHelmSource(t *testing.T) {
	doc := `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: cert-manager}
spec:
  source:
    repoURL: https://charts.jetstack.io
    chart: cert-manager
    targetRevision: 1.16.*
    helm:
      releaseName: cm
      namespace: cert-manager
      valueFiles: ["values-{{ .labels.env }}.yaml"]
      values: |
        clusterName: {{ .name }}
      valuesObject: {installCRDs: true, cluster: {name: "{{ .name }}"}}
      parameters: [{name: replicaCount, value: "2"}, {name: tag, value: "1.0", forceString: true}]
      skipCrds: true
      ignoreMissingValueFiles: true
      passCredentials: false
      version: v3
      kubeVersion: v1.30.0
      apiVersions: [monitoring.coreos.com/v1]
      fileParameters: [{name: x, path: y}]
  destination: {name: prod, namespace: cert-manager}
`
	list, errs := Parse("cm.yaml", []byte(doc))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	a := list[0]
	if !a.Source.IsChart() || a.Source.Chart != "cert-manager" || a.Source.TargetRevision != "1.16.*" {
		t.Errorf("source %+v", a.Source)
	}
	if !reflect.DeepEqual(a.Warnings, []string{"spec.source.helm.fileParameters is not supported and is ignored"}) {
		t.Errorf("warnings %q", a.Warnings)
	}
	h, err := a.HelmFor(a.Source, ClusterVars{Name: "prod-eu", Labels: map[string]string{"env": "prod"}})
	if err != nil {
		t.Fatal(err)
	}
	if h.ReleaseName != "cm" || h.Namespace != "cert-manager" || !h.SkipCRDs || !h.IgnoreMissingValueFiles ||
		h.KubeVersion != "v1.30.0" || !reflect.DeepEqual(h.APIVersions, []string{"monitoring.coreos.com/v1"}) {
		t.Errorf("helm %+v", h)
	}
	if !reflect.DeepEqual(h.ValueFiles, []string{"values-prod.yaml"}) || h.Values != "clusterName: prod-eu\n" {
		t.Errorf("valueFiles %q values %q", h.ValueFiles, h.Values)
	}
	if got := h.ValuesObject["cluster"].(map[string]any)["name"]; got != "prod-eu" {
		t.Errorf("valuesObject cluster.name %v", got)
	}
	if a.Source.Helm.ValueFiles[0] != "values-{{ .labels.env }}.yaml" {
		t.Error("HelmFor changed the application's own helm block")
	}
	if _, err := a.HelmFor(a.Source, ClusterVars{Name: "x"}); err == nil || !strings.Contains(err.Error(), `helm.valueFiles[0]: "values-{{ .labels.env }}.yaml": cluster "x" has no label "env"`) {
		t.Errorf("missing label: %v", err)
	}
}

func TestMultiSource(t *testing.T) {
	doc := `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: monitoring}
spec:
  sources:
  - repoURL: https://prometheus-community.github.io/helm-charts
    chart: kube-prometheus-stack
    targetRevision: 65.1.0
    helm:
      valueFiles: ["$values/values/{{ .labels.env }}.yaml"]
  - repoURL: https://git.example.com/fleet.git
    targetRevision: main
    ref: values
  destination: {name: prod, namespace: monitoring}
`
	list, errs := Parse("m.yaml", []byte(doc))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	a := list[0]
	if a.Source.Chart != "kube-prometheus-stack" || len(a.Sources) != 2 || a.Sources[1].Ref != "values" || a.Sources[1].TargetRevision != "main" {
		t.Errorf("source %+v sources %+v", a.Source, a.Sources)
	}
	ref, p, ok := SplitRef("$values/values/prod.yaml")
	if !ok || ref != "values" || p != "values/prod.yaml" {
		t.Errorf("SplitRef: %q %q %v", ref, p, ok)
	}
	bad := strings.Replace(doc, "ref: values", "ref: other", 1)
	if _, errs := Parse("m.yaml", []byte(bad)); len(errs) != 1 || !strings.Contains(errs[0].Error(), `spec.sources[0].helm.valueFiles[0]: "$values/values/{{ .labels.env }}.yaml": no source has ref "values"`) {
		t.Errorf("unknown ref: %v", errs)
	}
}

func TestFlotillaHelmStrict(t *testing.T) {
	head := "apiVersion: flotilla.dev/v1alpha1\nkind: Application\nmetadata: {name: mon}\n"
	ok := head + `spec:
  source: {repoURL: https://git.example.com/fleet.git, path: platform/monitoring, helm: {valueFiles: ["values/{{ .labels.env }}.yaml"], valuesObject: {a: 1}}}
  destination: {clusterSelector: {matchLabels: {tier: platform}}, namespace: monitoring}
`
	list, errs := Parse("mon.yaml", []byte(ok))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if a := list[0]; a.Source.Helm == nil || a.Source.TargetRevision != "HEAD" || a.Source.IsChart() {
		t.Errorf("source %+v", a.Source)
	}
	tests := map[string]string{
		"unknown helm field": head + "spec: {source: {repoURL: r, path: p, helm: {valuesFile: x}}, destination: {clusters: [a]}}\n",
		"chart from git":     head + "spec: {source: {repoURL: git@example.com:fleet.git, chart: c}, destination: {clusters: [a]}}\n",
		"chart and path":     head + "spec: {source: {repoURL: oci://r.example.com/charts, chart: c, path: p}, destination: {clusters: [a]}}\n",
		"helm version v2":    head + "spec: {source: {repoURL: r, path: p, helm: {version: v2}}, destination: {clusters: [a]}}\n",
	}
	want := map[string]string{
		"unknown helm field": `unknown field "spec.source.helm.valuesFile"`,
		"chart from git":     `spec.source.repoURL: "git@example.com:fleet.git": a chart comes from a Helm repository`,
		"chart and path":     `spec.source: chart and path are exclusive`,
		"helm version v2":    `spec.source.helm.version: "v2" is not supported`,
	}
	for name, doc := range tests {
		_, errs := Parse("mon.yaml", []byte(doc))
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), want[name]) {
			t.Errorf("%s: errors %v, want %q", name, errs, want[name])
		}
	}
}

// TestKustomizePatchesOnChart: a source's kustomize.patches (Argo CD's field names) are read
// for post-rendering the chart; other kustomize fields are warned about in an Argo CD
// Application; a patch without an inline patch is refused, naming the field.
func TestKustomizePatchesOnChart(t *testing.T) {
	doc := `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: ingress}
spec:
  source:
    repoURL: https://charts.example.com
    chart: ingress-nginx
    targetRevision: 4.11.3
    kustomize:
      namePrefix: x-
      patches:
      - target: {kind: Deployment, name: ingress-nginx-controller}
        patch: '[{"op": "add", "path": "/spec/replicas", "value": 3}]'
  destination: {name: prod, namespace: ingress}
`
	list, errs := Parse("ingress.yaml", []byte(doc))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	a := list[0]
	if len(a.Source.Patches) != 1 || a.Source.Patches[0].Target == nil || a.Source.Patches[0].Target.Name != "ingress-nginx-controller" {
		t.Errorf("patches %+v", a.Source.Patches)
	}
	if !reflect.DeepEqual(a.Warnings, []string{"spec.source.kustomize.namePrefix is not supported and is ignored"}) {
		t.Errorf("warnings %q", a.Warnings)
	}
	bad := strings.Replace(doc, `patch: '[{"op": "add", "path": "/spec/replicas", "value": 3}]'`, "path: patches/replicas.yaml", 1)
	if _, errs := Parse("ingress.yaml", []byte(bad)); len(errs) != 1 || !strings.Contains(errs[0].Error(), "spec.source.kustomize.patches[0].patch: required (an inline patch; path is not supported)") {
		t.Errorf("patch from a path: %v", errs)
	}
}
