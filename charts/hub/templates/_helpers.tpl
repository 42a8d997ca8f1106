{{/* Chart name, truncated to a DNS label. */}}
{{- define "flotilla-hub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name: the release name, with the chart name unless the release name contains it. Kept to
50 characters so that suffixed names (-peers, -gossip, StatefulSet pod names) stay valid.
*/}}
{{- define "flotilla-hub.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "flotilla-hub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flotilla-hub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flotilla-hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "flotilla-hub.labels" -}}
helm.sh/chart: {{ include "flotilla-hub.chart" . }}
{{ include "flotilla-hub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: hub
app.kubernetes.io/part-of: flotilla
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "flotilla-hub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flotilla-hub.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "flotilla-hub.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "flotilla-hub.peersService" -}}
{{- printf "%s-peers" (include "flotilla-hub.fullname" .) -}}
{{- end -}}

{{- define "flotilla-hub.httpService" -}}
{{- printf "%s-http" (include "flotilla-hub.fullname" .) -}}
{{- end -}}

{{/* host:port agents and the CLI dial: advertiseAddress, else the gRPC Service. */}}
{{- define "flotilla-hub.advertiseAddress" -}}
{{- if .Values.advertiseAddress -}}
{{- .Values.advertiseAddress -}}
{{- else -}}
{{- printf "%s.%s.svc:%v" (include "flotilla-hub.fullname" .) .Release.Namespace .Values.service.port -}}
{{- end -}}
{{- end -}}

{{/* Names of the serving certificate: the gRPC Service's, then tlsSANs, as a JSON list. */}}
{{- define "flotilla-hub.tlsSANs" -}}
{{- $svc := include "flotilla-hub.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $sans := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) -}}
{{- range .Values.tlsSANs -}}
{{- $sans = append $sans . -}}
{{- end -}}
{{- toJson (uniq $sans) -}}
{{- end -}}

{{- define "flotilla-hub.gossipSecretName" -}}
{{- .Values.gossip.existingSecret | default (printf "%s-gossip" (include "flotilla-hub.fullname" .)) -}}
{{- end -}}

{{- define "flotilla-hub.gossipSecretKey" -}}
{{- if .Values.gossip.existingSecret -}}{{ .Values.gossip.existingSecretKey }}{{- else -}}key{{- end -}}
{{- end -}}

{{- define "flotilla-hub.webhookSecretName" -}}
{{- .Values.webhook.existingSecret | default (printf "%s-webhook" (include "flotilla-hub.fullname" .)) -}}
{{- end -}}

{{- define "flotilla-hub.webhookSecretKey" -}}
{{- if .Values.webhook.existingSecret -}}{{ .Values.webhook.existingSecretKey }}{{- else -}}secret{{- end -}}
{{- end -}}

{{/*
A generated secret value that survives upgrades: the value in the release's existing Secret
when there is one (lookup), else a new one. Args: dict "ctx" . "name" secretName "key" dataKey
"new" freshValue.
*/}}
{{- define "flotilla-hub.keepSecret" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- .new -}}
{{- end -}}
{{- end -}}
