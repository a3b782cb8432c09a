{{/* Chart name, overridable. */}}
{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: <release>-<chart> unless the release already names the chart. */}}
{{- define "switchboard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The headless Service app servers link through (name kept within 63 characters). */}}
{{- define "switchboard.upstreamName" -}}
{{- printf "%s-upstream" (include "switchboard.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "switchboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "switchboard.labels" -}}
helm.sh/chart: {{ include "switchboard.chart" . }}
{{ include "switchboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: proxy
{{- end }}

{{- define "switchboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchboard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the access keys, and the key inside it. */}}
{{- define "switchboard.secretName" -}}
{{- default (include "switchboard.fullname" .) .Values.auth.existingSecret }}
{{- end }}
{{- define "switchboard.secretKey" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretKey }}{{ else }}access-keys{{ end }}
{{- end }}

{{/* host:port for a listener; IPv6 bind addresses need brackets. */}}
{{- define "switchboard.bind" -}}
{{- $host := .root.Values.config.bindAddress }}
{{- if contains ":" $host }}{{ printf "[%s]:%v" $host .port }}{{ else }}{{ printf "%s:%v" $host .port }}{{ end }}
{{- end }}

{{/* The URL clients reach the proxy at. */}}
{{- define "switchboard.publicUrl" -}}
{{- if .Values.config.publicUrl }}
{{- .Values.config.publicUrl | trimSuffix "/" }}
{{- else }}
{{- $host := printf "%s.%s.svc.cluster.local" (include "switchboard.fullname" .) .Release.Namespace }}
{{- if eq (int .Values.service.port) 80 }}{{ printf "http://%s" $host }}{{ else }}{{ printf "http://%s:%v" $host .Values.service.port }}{{ end }}
{{- end }}
{{- end }}

{{/* The gRPC address app servers put in ServerEndpoint. */}}
{{- define "switchboard.serverEndpoint" -}}
{{- printf "http://%s.%s.svc.cluster.local:%v" (include "switchboard.upstreamName" .) .Release.Namespace .Values.ports.upstream }}
{{- end }}

{{/* preStop sleep + shutdown timeout: the least the grace period must exceed. */}}
{{- define "switchboard.drainSeconds" -}}
{{- add (int .Values.preStopSleepSeconds) (int .Values.config.shutdownTimeoutSeconds) }}
{{- end }}

{{- define "switchboard.terminationGracePeriodSeconds" -}}
{{- $drain := int (include "switchboard.drainSeconds" .) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $drain 10 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) $drain }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + config.shutdownTimeoutSeconds (%v), or the proxy is killed before clients are told to reconnect" .Values.terminationGracePeriodSeconds $drain) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}
