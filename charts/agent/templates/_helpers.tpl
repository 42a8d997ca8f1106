{{/* Chart name, truncated to a DNS label. */}}
{{- define "flotilla-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name, with the chart name unless the release name contains it. */}}
{{- define "flotilla-agent.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "flotilla-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flotilla-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flotilla-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "flotilla-agent.labels" -}}
helm.sh/chart: {{ include "flotilla-agent.chart" . }}
{{ include "flotilla-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: flotilla
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.clusterName }}
flotilla.dev/cluster: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "flotilla-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flotilla-agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "flotilla-agent.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Secret and key the join token is read from; empty name when there is no token. */}}
{{- define "flotilla-agent.joinTokenSecretName" -}}
{{- if .Values.joinTokenSecret -}}
{{- .Values.joinTokenSecret -}}
{{- else if .Values.joinToken -}}
{{- printf "%s-join-token" (include "flotilla-agent.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "flotilla-agent.joinTokenSecretKey" -}}
{{- if .Values.joinTokenSecret -}}
{{- .Values.joinTokenSecretKey -}}
{{- else -}}
joinToken
{{- end -}}
{{- end -}}

{{/*
Fails on values with which the agent could not start: it needs a hub to dial. Checked here and
not in values.schema.json, so that the chart's defaults lint (helm lint reports a failed
required as information only).
*/}}
{{- define "flotilla-agent.validate" -}}
{{- if not (include "flotilla-agent.hubs" . | fromJsonArray) -}}
{{- required "hub.address is required: set hub.address=HOST:PORT, the hub's gRPC address (or list several in hub.addresses)" "" -}}
{{- end -}}
{{- end -}}

{{/* Every hub address, hub.address first, without duplicates, as a JSON list. */}}
{{- define "flotilla-agent.hubs" -}}
{{- $hubs := list -}}
{{- with .Values.hub.address -}}
{{- $hubs = append $hubs . -}}
{{- end -}}
{{- range .Values.hub.addresses -}}
{{- $hubs = append $hubs . -}}
{{- end -}}
{{- toJson (uniq $hubs) -}}
{{- end -}}

{{/*
Namespaced rules the agent itself needs wherever it applies apps: pods and events to judge
health, and events to record what it did.
*/}}
{{- define "flotilla-agent.coreRules" -}}
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [get, list, watch, create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [get, list, watch, create, patch]
{{- end -}}
