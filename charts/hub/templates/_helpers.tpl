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

{{/* The gossip port (TCP and UDP) of every replica. */}}
{{- define "flotilla-hub.gossipPort" -}}7946{{- end -}}

{{/* "true" when the replicas form one hub (memberlist), i.e. replicas > 1; empty otherwise. */}}
{{- define "flotilla-hub.ha" -}}
{{- if gt (int .Values.replicas) 1 -}}true{{- end -}}
{{- end -}}

{{/* The DNS domain of the replicas' pods: POD.<this>, from the headless peers Service. */}}
{{- define "flotilla-hub.podDomain" -}}
{{- printf "%s.%s.svc" (include "flotilla-hub.peersService" .) .Release.Namespace -}}
{{- end -}}

{{/* --peers: the gossip address of every replica, comma-separated. */}}
{{- define "flotilla-hub.peers" -}}
{{- $fullname := include "flotilla-hub.fullname" . -}}
{{- $domain := include "flotilla-hub.podDomain" . -}}
{{- $port := include "flotilla-hub.gossipPort" . -}}
{{- $peers := list -}}
{{- range $i := until (int .Values.replicas) -}}
{{- $peers = append $peers (printf "%s-%d.%s:%s" $fullname $i $domain $port) -}}
{{- end -}}
{{- join "," $peers -}}
{{- end -}}

{{/*
host:port agents and the CLI dial this replica at (--advertise-address): advertiseAddress, else
the gRPC Service; with several replicas each pod's own name, since agents are redirected to the
replica owning their cluster.
*/}}
{{- define "flotilla-hub.advertiseAddress" -}}
{{- if .Values.advertiseAddress -}}
{{- .Values.advertiseAddress -}}
{{- else if include "flotilla-hub.ha" . -}}
{{- printf "$(POD_NAME).%s:7443" (include "flotilla-hub.podDomain" .) -}}
{{- else -}}
{{- include "flotilla-hub.serviceAddress" . -}}
{{- end -}}
{{- end -}}

{{/* host:port of the gRPC Service, which reaches any replica. */}}
{{- define "flotilla-hub.serviceAddress" -}}
{{- printf "%s.%s.svc:%v" (include "flotilla-hub.fullname" .) .Release.Namespace .Values.service.port -}}
{{- end -}}

{{/*
Names of the serving certificate: the gRPC Service's, with several replicas the pod's own names
behind the peers Service, then tlsSANs, as a JSON list.
*/}}
{{- define "flotilla-hub.tlsSANs" -}}
{{- $svc := include "flotilla-hub.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $sans := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) -}}
{{- if include "flotilla-hub.ha" . -}}
{{- $pod := printf "$(POD_NAME).%s" (include "flotilla-hub.peersService" .) -}}
{{- $sans = concat $sans (list (printf "%s.%s" $pod $ns) (printf "%s.%s.svc" $pod $ns) (printf "%s.%s.svc.%s" $pod $ns .Values.clusterDomain)) -}}
{{- end -}}
{{- range .Values.tlsSANs -}}
{{- $sans = append $sans . -}}
{{- end -}}
{{- toJson (uniq $sans) -}}
{{- end -}}

{{/*
Fails on values with which the replicas could not form one hub: they need one gossip key and
one CA, both given (a key or CA generated at render time would differ between renders), and an
address each.
*/}}
{{- define "flotilla-hub.validate" -}}
{{- if include "flotilla-hub.ha" . -}}
{{- if not (or .Values.gossip.existingSecret .Values.gossip.key) -}}
{{- fail (printf "replicas=%v: the replicas gossip with one shared key: set gossip.existingSecret to a Secret holding it (see README.md, Replicas), or gossip.key. A generated key changes with every render (helm template, GitOps tools) and replicas with different keys cannot join" (toString .Values.replicas)) -}}
{{- end -}}
{{- if not .Values.ca.existingSecret -}}
{{- fail (printf "replicas=%v: the replicas must share one CA: create a Secret with ca.crt and ca.key and set ca.existingSecret (see README.md, Replicas)" (toString .Values.replicas)) -}}
{{- end -}}
{{- if and .Values.advertiseAddress (not (contains "$(POD_NAME)" .Values.advertiseAddress)) -}}
{{- fail (printf "replicas=%v: advertiseAddress %q must contain $(POD_NAME): agents are redirected to the replica that owns their cluster, so each replica needs an address of its own, e.g. $(POD_NAME).hub.example.com:443" (toString .Values.replicas) .Values.advertiseAddress) -}}
{{- end -}}
{{- end -}}
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
