{{/*
Combinations of values that values.schema.json cannot express; each fails `helm template` with
a message that says what to change.
*/}}
{{- define "digits.validate" -}}
{{- $v := .Values -}}
{{- if gt (int $v.recorder.config.replicationFactor) (int $v.cassandra.replicaCount) -}}
{{- fail (printf "recorder.config.replicationFactor (%d) cannot exceed cassandra.replicaCount (%d): Cassandra could never place that many replicas, and every QUORUM write would fail" (int $v.recorder.config.replicationFactor) (int $v.cassandra.replicaCount)) -}}
{{- end -}}
{{- if gt (int $v.cassandra.seedCount) (int $v.cassandra.replicaCount) -}}
{{- fail (printf "cassandra.seedCount (%d) cannot exceed cassandra.replicaCount (%d)" (int $v.cassandra.seedCount) (int $v.cassandra.replicaCount)) -}}
{{- end -}}
{{- if and (eq $v.cassandra.antiAffinity "hard") (lt (int $v.cassandra.replicaCount) 1) -}}
{{- fail "cassandra.replicaCount must be at least 1" -}}
{{- end -}}
{{- range $name := list "gateway" "recognizer" "recorder" -}}
{{- $svc := index $v $name -}}
{{- if ge (int $svc.preStopDelaySeconds) (int $svc.terminationGracePeriodSeconds) -}}
{{- fail (printf "%s.preStopDelaySeconds (%d) must be shorter than %s.terminationGracePeriodSeconds (%d), or no time is left to drain" $name (int $svc.preStopDelaySeconds) $name (int $svc.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- if and (hasKey $svc "autoscaling") $svc.autoscaling.enabled (gt (int $svc.autoscaling.minReplicas) (int $svc.autoscaling.maxReplicas)) -}}
{{- fail (printf "%s.autoscaling.minReplicas (%d) exceeds maxReplicas (%d)" $name (int $svc.autoscaling.minReplicas) (int $svc.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- end -}}
{{- range $name := list "gateway" "recognizer" "recorder" -}}
{{- $ports := index $v $name "containerPorts" -}}
{{- $serving := $ports.grpc | default $ports.http -}}
{{- if eq (int $serving) (int $ports.metrics) -}}
{{- fail (printf "%s.containerPorts: the metrics port (%d) must differ from the serving port" $name (int $ports.metrics)) -}}
{{- end -}}
{{- end -}}
{{- if lt (include "digits.cassandra.heapMiB" . | int) 256 -}}
{{- fail "the Cassandra heap would be below 256 MiB: raise cassandra.resources.limits.memory or cassandra.heapPercent" -}}
{{- end -}}
{{- end -}}
