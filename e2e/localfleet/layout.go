package localfleet

import (
	"fmt"
	"os"
	"path/filepath"
)

// DemoManifests is the seed layout: bases for api and worker, and staging/production overlays
// (staging: api 1 replica; production: api 5 replicas with higher limits), and the platform/
// layer: a Helm chart of our own (platform/ingress, DemoPlatformManifests). apiTag is the api
// image tag set in base/api with kustomize's images.
func DemoManifests(apiTag string) map[string]string {
	files := demoApps(apiTag)
	for p, content := range DemoPlatformManifests() {
		files[p] = content
	}
	return files
}

// DemoPlatformManifests is the platform/ layer of the seed: platform/ingress, a small Helm
// chart (an ingress controller Deployment and Service, its settings in a ConfigMap from
// values) with a values file per environment (values/staging.yaml, values/production.yaml).
func DemoPlatformManifests() map[string]string {
	return map[string]string{
		"platform/ingress/Chart.yaml": "apiVersion: v2\nname: ingress\ndescription: The demo's ingress controller\nversion: 0.1.0\nappVersion: \"1.0.0\"\n",
		"platform/ingress/values.yaml": `replicas: 1
image: registry.example/ingress-controller
logLevel: info
`,
		"platform/ingress/values/staging.yaml":    "logLevel: debug\n",
		"platform/ingress/values/production.yaml": "replicas: 2\n",
		"platform/ingress/templates/_helpers.tpl": `{{- define "ingress.labels" -}}
app: {{ .Release.Name }}
{{- end -}}
`,
		"platform/ingress/templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-controller
  labels: {{- include "ingress.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicas }}
  progressDeadlineSeconds: 60
  selector:
    matchLabels: {{- include "ingress.labels" . | nindent 6 }}
  template:
    metadata:
      labels: {{- include "ingress.labels" . | nindent 8 }}
    spec:
      containers:
      - name: controller
        image: {{ .Values.image }}:{{ .Chart.AppVersion }}
        envFrom:
        - configMapRef: {name: {{ .Release.Name }}-settings}
        ports:
        - containerPort: 8080
`,
		"platform/ingress/templates/service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector: {{- include "ingress.labels" . | nindent 4 }}
  ports:
  - port: 80
    targetPort: 8080
`,
		"platform/ingress/templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  LOG_LEVEL: {{ .Values.logLevel | quote }}
  CLUSTER: {{ .Values.cluster | default "unknown" | quote }}
`,
	}
}

// demoApps is the api and worker part of the seed.
func demoApps(apiTag string) map[string]string {
	return map[string]string{
		"base/api/kustomization.yaml": BaseAPIKustomization(apiTag),
		"base/api/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels: {app: api}
spec:
  replicas: 1
  progressDeadlineSeconds: 60
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: registry.example/api:latest
        ports:
        - containerPort: 8080
        resources:
          requests: {cpu: 100m, memory: 128Mi}
          limits: {cpu: 250m, memory: 256Mi}
`,
		"base/api/service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  selector: {app: api}
  ports:
  - port: 80
    targetPort: 8080
`,
		"base/api/hpa.yaml": `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: api
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 80}
`,
		"base/worker/kustomization.yaml": "resources:\n- deployment.yaml\n- configmap.yaml\n",
		"base/worker/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker
  labels: {app: worker}
spec:
  replicas: 1
  progressDeadlineSeconds: 60
  selector:
    matchLabels: {app: worker}
  template:
    metadata:
      labels: {app: worker}
    spec:
      containers:
      - name: worker
        image: registry.example/worker:2.3.0
        envFrom:
        - configMapRef: {name: worker-config}
`,
		"base/worker/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: worker-config
data:
  QUEUE: jobs
  CONCURRENCY: "2"
`,
		"environments/staging/api/kustomization.yaml": `resources:
- ../../../base/api
patches:
- target: {kind: Deployment, name: api}
  patch: |
    - op: replace
      path: /spec/replicas
      value: 1
`,
		"environments/production/api/kustomization.yaml": `resources:
- ../../../base/api
patches:
- target: {kind: Deployment, name: api}
  patch: |
    - op: replace
      path: /spec/replicas
      value: 5
    - op: replace
      path: /spec/template/spec/containers/0/resources/limits
      value: {cpu: "1", memory: 1Gi}
- target: {kind: HorizontalPodAutoscaler, name: api}
  patch: |
    - op: replace
      path: /spec/minReplicas
      value: 5
    - op: replace
      path: /spec/maxReplicas
      value: 20
`,
		"environments/staging/worker/kustomization.yaml": "resources:\n- ../../../base/worker\n",
		"environments/production/worker/kustomization.yaml": `resources:
- ../../../base/worker
patches:
- target: {kind: Deployment, name: worker}
  patch: |
    - op: replace
      path: /spec/replicas
      value: 3
- target: {kind: ConfigMap, name: worker-config}
  patch: |
    - op: replace
      path: /data/CONCURRENCY
      value: "8"
`,
	}
}

// BaseAPIKustomization is base/api/kustomization.yaml with the api image at tag.
func BaseAPIKustomization(tag string) string {
	return fmt.Sprintf(`resources:
- deployment.yaml
- service.yaml
- hpa.yaml
images:
- name: registry.example/api
  newTag: %q
`, tag)
}

// DemoApplications are the Application manifests for the demo layout: api and worker go to
// every cluster with an env label, each to its env's overlay.
func DemoApplications(repoURL string) map[string]string {
	app := func(name string) string {
		return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata:
  name: %[1]s
spec:
  source:
    repoURL: %[2]s
    targetRevision: main
    path: environments/{{ .labels.env }}/%[1]s
  destination:
    clusterSelector:
      matchExpressions:
      - {key: env, operator: In, values: [staging, production]}
    namespace: %[1]s
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
    retry: {limit: 3, backoff: {duration: 2s, factor: 2, maxDuration: 30s}}
`, name, repoURL)
	}
	return map[string]string{"api.yaml": app("api"), "worker.yaml": app("worker")}
}

// DemoPlatformApplications are the Application manifests of the platform/ layer: the
// platform/ingress chart to every cluster with an env label, with its env's values file and
// the cluster's name in its values.
func DemoPlatformApplications(repoURL string) map[string]string {
	return map[string]string{"platform-ingress.yaml": fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata:
  name: platform-ingress
spec:
  source:
    repoURL: %s
    targetRevision: main
    path: platform/ingress
    helm:
      releaseName: ingress
      valueFiles: ["values/{{ .labels.env }}.yaml"]
      valuesObject: {cluster: "{{ .name }}"}
  destination:
    clusterSelector:
      matchExpressions:
      - {key: env, operator: In, values: [staging, production]}
    namespace: platform-ingress
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
`, repoURL)}
}

// WriteFiles writes files (path → content) under dir.
func WriteFiles(dir string, files map[string]string) error {
	for path, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
