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

{{/* The client port's scheme: https when the proxy serves TLS on it. */}}
{{- define "switchboard.clientScheme" -}}
{{- if .Values.tls.existingSecret }}https{{ else }}http{{ end }}
{{- end }}

{{/* The client Service's port: service.port, else the scheme's default. */}}
{{- define "switchboard.servicePort" -}}
{{- if not (kindIs "invalid" .Values.service.port) }}{{ int .Values.service.port }}
{{- else if .Values.tls.existingSecret }}443
{{- else }}80
{{- end }}
{{- end }}

{{/* The URL clients reach the proxy at. */}}
{{- define "switchboard.publicUrl" -}}
{{- if .Values.config.publicUrl }}
{{- .Values.config.publicUrl | trimSuffix "/" }}
{{- else }}
{{- $scheme := include "switchboard.clientScheme" . }}
{{- $host := printf "%s.%s.svc.cluster.local" (include "switchboard.fullname" .) .Release.Namespace }}
{{- $port := include "switchboard.servicePort" . }}
{{- $default := ternary "443" "80" (eq $scheme "https") }}
{{- if eq $port $default }}{{ printf "%s://%s" $scheme $host }}{{ else }}{{ printf "%s://%s:%s" $scheme $host $port }}{{ end }}
{{- end }}
{{- end }}

{{/* The host app servers link to: the headless upstream Service. */}}
{{- define "switchboard.upstreamHost" -}}
{{- printf "%s.%s.svc.cluster.local" (include "switchboard.upstreamName" .) .Release.Namespace }}
{{- end }}

{{/* The gRPC address app servers put in ServerEndpoint. */}}
{{- define "switchboard.serverEndpoint" -}}
{{- $scheme := ternary "https" "http" (ne .Values.upstreamTls.existingSecret "") }}
{{- printf "%s://%s:%v" $scheme (include "switchboard.upstreamHost" .) .Values.ports.upstream }}
{{- end }}

{{/*
Where the TLS Secrets are mounted: whole-Secret volumes (never subPath,
which the kubelet does not update), outside /etc/switchboard, which is the
read-only ConfigMap volume.
*/}}
{{- define "switchboard.tlsDir" -}}/etc/switchboard-tls{{- end }}

{{/*
The client CA bundle's file. When it lives in the upstream certificate's
Secret, that volume already carries it and none is added.
*/}}
{{- define "switchboard.clientCaPath" -}}
{{- $u := .Values.upstreamTls }}
{{- if eq $u.clientCaSecret $u.existingSecret }}
{{- printf "%s/upstream/%s" (include "switchboard.tlsDir" .) $u.clientCaKey }}
{{- else }}
{{- printf "%s/upstream-client-ca/%s" (include "switchboard.tlsDir" .) $u.clientCaKey }}
{{- end }}
{{- end }}

{{/* The proxy's TLS environment: file paths in the mounted Secrets. */}}
{{- define "switchboard.tlsEnv" -}}
{{- $dir := include "switchboard.tlsDir" . }}
{{- $u := .Values.upstreamTls }}
{{- if and $u.clientCaSecret (not $u.existingSecret) }}
{{- fail "upstreamTls.clientCaSecret asks app servers for client certificates on the upstream port, which needs TLS there: set upstreamTls.existingSecret too" }}
{{- end }}
{{- with .Values.tls.existingSecret }}
- name: SWITCHBOARD_TLS_CERT
  value: {{ printf "%s/client/tls.crt" $dir | quote }}
- name: SWITCHBOARD_TLS_KEY
  value: {{ printf "%s/client/tls.key" $dir | quote }}
{{- end }}
{{- if $u.existingSecret }}
- name: SWITCHBOARD_UPSTREAM_TLS_CERT
  value: {{ printf "%s/upstream/tls.crt" $dir | quote }}
- name: SWITCHBOARD_UPSTREAM_TLS_KEY
  value: {{ printf "%s/upstream/tls.key" $dir | quote }}
{{- end }}
{{- if $u.clientCaSecret }}
- name: SWITCHBOARD_UPSTREAM_CLIENT_CA
  value: {{ include "switchboard.clientCaPath" . | quote }}
{{- end }}
{{- if or .Values.tls.existingSecret $u.existingSecret }}
- name: SWITCHBOARD_TLS_RELOAD_INTERVAL
  value: {{ .Values.tls.reloadInterval | quote }}
{{- end }}
{{- end }}

{{/* Volume mounts for the TLS Secrets. */}}
{{- define "switchboard.tlsVolumeMounts" -}}
{{- $dir := include "switchboard.tlsDir" . }}
{{- $u := .Values.upstreamTls }}
{{- if .Values.tls.existingSecret }}
- name: tls-client
  mountPath: {{ printf "%s/client" $dir }}
  readOnly: true
{{- end }}
{{- if $u.existingSecret }}
- name: tls-upstream
  mountPath: {{ printf "%s/upstream" $dir }}
  readOnly: true
{{- end }}
{{- if and $u.clientCaSecret (ne $u.clientCaSecret $u.existingSecret) }}
- name: tls-upstream-client-ca
  mountPath: {{ printf "%s/upstream-client-ca" $dir }}
  readOnly: true
{{- end }}
{{- end }}

{{/* The TLS Secrets as volumes. */}}
{{- define "switchboard.tlsVolumes" -}}
{{- $u := .Values.upstreamTls }}
{{- with .Values.tls.existingSecret }}
- name: tls-client
  secret:
    secretName: {{ . }}
{{- end }}
{{- with $u.existingSecret }}
- name: tls-upstream
  secret:
    secretName: {{ . }}
{{- end }}
{{- if and $u.clientCaSecret (ne $u.clientCaSecret $u.existingSecret) }}
- name: tls-upstream-client-ca
  secret:
    secretName: {{ $u.clientCaSecret }}
{{- end }}
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

{{/* The Redis the chart deploys with bus.redis.deploy (name within 63 characters). */}}
{{- define "switchboard.redisName" -}}
{{- printf "%s-redis" (include "switchboard.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{/* Its pods' labels: a name of their own, so the proxy's selectors never match them. */}}
{{- define "switchboard.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "switchboard.redisLabels" -}}
helm.sh/chart: {{ include "switchboard.chart" . }}
{{ include "switchboard.redisSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: bus
{{- end }}

{{- define "switchboard.clusterName" -}}
{{- default (include "switchboard.fullname" .) .Values.bus.clusterName }}
{{- end }}

{{/*
The proxy's bus environment with the Redis bus: SWITCHBOARD_BUS, from a
Secret or built from its parts. A password only ever comes from a Secret:
Kubernetes substitutes $(SWITCHBOARD_REDIS_PASSWORD) into the URL when the
container starts, so it is never in the manifests. Fails unless exactly one
Redis is named.
*/}}
{{- define "switchboard.busEnv" -}}
{{- $r := .Values.bus.redis }}
{{- $sources := list }}
{{- if $r.url }}{{ $sources = append $sources "bus.redis.url" }}{{ end }}
{{- if $r.urlSecret.name }}{{ $sources = append $sources "bus.redis.urlSecret.name" }}{{ end }}
{{- if $r.host }}{{ $sources = append $sources "bus.redis.host" }}{{ end }}
{{- if $r.deploy.enabled }}{{ $sources = append $sources "bus.redis.deploy.enabled" }}{{ end }}
{{- if ne .Values.bus.type "redis" }}
{{- if $r.deploy.enabled }}
{{- fail "bus.redis.deploy.enabled deploys a Redis for the bus: set bus.type to redis too" }}
{{- end }}
{{- else if eq (len $sources) 0 }}
{{- fail "bus.type redis needs a Redis: set bus.redis.url, bus.redis.urlSecret.name or bus.redis.host, or bus.redis.deploy.enabled" }}
{{- else if gt (len $sources) 1 }}
{{- fail (printf "name one Redis for the bus, not several: %s" (join ", " $sources)) }}
{{- else if $r.urlSecret.name }}
- name: SWITCHBOARD_BUS
  valueFrom:
    secretKeyRef:
      name: {{ $r.urlSecret.name }}
      key: {{ $r.urlSecret.key }}
{{- else }}
{{- $userinfo := "" }}
{{- if $r.passwordSecret.name }}
{{- $userinfo = printf "%s:$(SWITCHBOARD_REDIS_PASSWORD)@" $r.username }}
- name: SWITCHBOARD_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $r.passwordSecret.name }}
      key: {{ $r.passwordSecret.key }}
{{- else if $r.username }}
{{- $userinfo = printf "%s@" $r.username }}
{{- end }}
{{- $address := "" }}
{{- $scheme := "redis://" }}
{{- if hasPrefix "redis+cluster://" $r.url }}
{{- $scheme = "redis+cluster://" }}
{{- $address = trimPrefix $scheme $r.url }}
{{- else if $r.url }}
{{- $address = trimPrefix "redis://" $r.url }}
{{- else if $r.deploy.enabled }}
{{- $address = printf "%s:6379" (include "switchboard.redisName" .) }}
{{- else }}
{{- $address = printf "%s:%v/%v" $r.host (int $r.port) (int $r.database) }}
{{- end }}
- name: SWITCHBOARD_BUS
  value: {{ printf "%s%s%s" $scheme $userinfo $address | quote }}
{{- end }}
{{- end }}
