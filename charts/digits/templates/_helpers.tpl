{{/*
Names, labels and the pieces every digits workload shares. Layout: one template file per digits
service (everything about the recognizer is in recognizer.yaml), one file per object for
Cassandra (templates/cassandra/), as Bitnami's Cassandra chart does.
*/}}

{{- define "digits.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "digits.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "digits.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "digits.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>"; fullname is cut at 40 so that every suffix fits in 63. */}}
{{- define "digits.component.fullname" -}}
{{- printf "%s-%s" (include "digits.fullname" .root) .component -}}
{{- end -}}

{{- define "digits.selectorLabels" -}}
app.kubernetes.io/name: {{ include "digits.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "digits.labels" -}}
{{ include "digits.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: digits
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The image of a digits service: registry/repository:tag, tag from the service, then image.tag, then appVersion. */}}
{{- define "digits.image" -}}
{{- $svc := index .root.Values .component -}}
{{- $tag := $svc.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) $svc.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $svc.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "digits.cassandra.image" -}}
{{- $img := .Values.cassandra.image -}}
{{- if $img.digest -}}
{{- printf "%s:%s@%s" $img.repository $img.tag $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository $img.tag -}}
{{- end -}}
{{- end -}}

{{/* Service DNS names, fully qualified so that they resolve the same from any namespace. */}}
{{- define "digits.svcHost" -}}
{{- printf "%s.%s.svc.%s" (include "digits.component.fullname" .) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{- define "digits.cassandra.seeds" -}}
{{- $root := . -}}
{{- $headless := include "digits.svcHost" (dict "root" . "component" "cassandra-headless") -}}
{{- $seeds := list -}}
{{- range $i := until (int (min .Values.cassandra.seedCount .Values.cassandra.replicaCount)) -}}
{{- $seeds = append $seeds (printf "%s-%d.%s:%d" (include "digits.component.fullname" (dict "root" $root "component" "cassandra")) $i $headless (int $root.Values.cassandra.ports.intra)) -}}
{{- end -}}
{{- join "," $seeds -}}
{{- end -}}

{{- define "digits.cassandra.secretName" -}}
{{- .Values.cassandra.auth.existingSecret | default (include "digits.component.fullname" (dict "root" . "component" "cassandra-auth")) -}}
{{- end -}}

{{/* Heap from the memory limit: heapPercent of it, capped at maxHeapMiB. Accepts Mi and Gi limits. */}}
{{- define "digits.cassandra.heapMiB" -}}
{{- $limit := .Values.cassandra.resources.limits.memory | toString -}}
{{- $mib := 0 -}}
{{- if hasSuffix "Gi" $limit -}}
{{- $mib = mul (trimSuffix "Gi" $limit | int) 1024 -}}
{{- else if hasSuffix "Mi" $limit -}}
{{- $mib = trimSuffix "Mi" $limit | int -}}
{{- else -}}
{{- fail (printf "cassandra.resources.limits.memory must be given in Mi or Gi (e.g. 4Gi), not %q" $limit) -}}
{{- end -}}
{{- min (div (mul $mib .Values.cassandra.heapPercent) 100) .Values.cassandra.maxHeapMiB -}}
{{- end -}}

{{/* Prometheus scrape annotations of a pod. */}}
{{- define "digits.scrapeAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* Spread a service's pods over nodes and zones unless the user gave an affinity. */}}
{{- define "digits.spread" -}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "digits.selectorLabels" . | nindent 8 }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "digits.selectorLabels" . | nindent 8 }}
{{- end -}}

{{/* Pod spec fields every digits service shares: identity, security, scheduling, drain. */}}
{{- define "digits.podCommon" -}}
{{- $svc := index .root.Values .component -}}
serviceAccountName: {{ include "digits.component.fullname" . }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds }}
{{- with .root.Values.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with $svc.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $svc.affinity }}
affinity:
  {{- toYaml $svc.affinity | nindent 2 }}
{{- else }}
{{ include "digits.spread" . }}
{{- end }}
{{- end -}}

{{/* Container fields every digits service shares. */}}
{{- define "digits.containerCommon" -}}
{{- $svc := index .root.Values .component -}}
image: {{ include "digits.image" . }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .root.Values.containerSecurityContext | nindent 2 }}
resources:
  {{- toYaml $svc.resources | nindent 2 }}
lifecycle:
  # A stopping pod keeps serving while the endpoint controllers and proxies drop it; only then
  # does SIGTERM arrive, and the service drains what is in flight.
  preStop:
    sleep:
      seconds: {{ $svc.preStopDelaySeconds }}
{{- end -}}

{{/* Writable /tmp for a read-only root filesystem. */}}
{{- define "digits.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "digits.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "digits.component.fullname" . }}
  labels:
    {{- include "digits.labels" . | nindent 4 }}
# No pod of this chart talks to the Kubernetes API.
automountServiceAccountToken: false
{{- end -}}

{{- define "digits.pdb" -}}
{{- $svc := index .root.Values .component -}}
{{- if $svc.pdb.create }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "digits.component.fullname" . }}
  labels:
    {{- include "digits.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ $svc.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "digits.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "digits.hpa" -}}
{{- $svc := index .root.Values .component -}}
{{- if $svc.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "digits.component.fullname" . }}
  labels:
    {{- include "digits.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "digits.component.fullname" . }}
  minReplicas: {{ $svc.autoscaling.minReplicas }}
  maxReplicas: {{ $svc.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $svc.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end -}}

{{/* gRPC probes against the standard health service: NOT_SERVING until the service can answer
(the model loaded, Cassandra connected), and again from the moment it starts draining. */}}
{{- define "digits.grpcProbes" -}}
startupProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: 2
  failureThreshold: 90
readinessProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 2
livenessProbe:
  grpc:
    port: {{ .port }}
    service: liveness
  periodSeconds: 10
  timeoutSeconds: 2
  failureThreshold: 3
{{- end -}}

{{/* Where the recorder (and its migration Job) find Cassandra and which keyspace they use. */}}
{{- define "digits.recorderCassandraEnv" -}}
# The client Service: the driver learns every node from it and then talks to each directly.
- name: RECORDER_CASSANDRA_HOSTS
  value: {{ include "digits.svcHost" (dict "root" . "component" "cassandra") | quote }}
- name: RECORDER_CASSANDRA_PORT
  value: {{ .Values.cassandra.ports.cql | quote }}
- name: RECORDER_LOCAL_DATACENTER
  value: {{ .Values.cassandra.datacenter | quote }}
- name: RECORDER_KEYSPACE
  value: {{ .Values.recorder.config.keyspace | quote }}
- name: RECORDER_REPLICATION_FACTOR
  value: {{ .Values.recorder.config.replicationFactor | quote }}
{{- end -}}

{{/* A generated secret value (base64, as Secret data), made once: while the Secret `name`
already holds `key`, that value is kept (lookup), so an upgrade never changes what was made
with it (Cassandra's roles, page tokens in flight). Use: (dict "root" . "name" N "key" K "length" L). */}}
{{- define "digits.generatedSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- if and $existing (hasKey ($existing.data | default dict) .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- randAlphaNum (int .length) | b64enc -}}
{{- end -}}
{{- end -}}
