{{/* Names, labels and the hardening every pod of this chart shares. */}}

{{- define "mlstack.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* "mlstack.name" takes (list $ "component") and returns <fullname>-<component>. */}}
{{- define "mlstack.name" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "mlstack.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mlstack.labels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
app.kubernetes.io/part-of: mlstack
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version }}
{{- end -}}

{{- define "mlstack.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* "mlstack.image" takes (list $ .Values.images.mlstack): repository[:tag][@digest] */}}
{{- define "mlstack.image" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- $repo := $img.repository -}}
{{- $first := first (splitList "/" $repo) -}}
{{- $hasRegistry := and (gt (len (splitList "/" $repo)) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- if and $root.Values.imageRegistry (not $hasRegistry) -}}
{{- $repo = printf "%s/%s" $root.Values.imageRegistry $repo -}}
{{- end -}}
{{- $ref := $repo -}}
{{- if $img.tag -}}{{- $ref = printf "%s:%s" $ref $img.tag -}}{{- end -}}
{{- if $img.digest -}}{{- $ref = printf "%s@%s" $ref $img.digest -}}{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* Pod Security "restricted": pod level */}}
{{- define "mlstack.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.security.runAsUser }}
runAsGroup: {{ .Values.security.runAsUser }}
fsGroup: {{ .Values.security.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod Security "restricted": container level */}}
{{- define "mlstack.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* S3 credentials and endpoint, for every container that reads or writes the object store */}}
{{- define "mlstack.s3Env" -}}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.secretName }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.secretName }}
      key: AWS_SECRET_ACCESS_KEY
- name: AWS_DEFAULT_REGION
  value: {{ .Values.s3.region | quote }}
{{- if .Values.s3.endpoint }}
- name: MLSTACK_S3_ENDPOINT_URL
  value: {{ .Values.s3.endpoint | quote }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ .Values.s3.endpoint | quote }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ .Values.s3.endpoint | quote }}
{{- end }}
{{- end -}}

{{/* The writable scratch space a read-only root filesystem needs */}}
{{- define "mlstack.tmpEnv" -}}
- name: HOME
  value: /tmp
- name: MLSTACK_HOME
  value: /tmp/mlstack
{{- end -}}

{{- define "mlstack.mlflowUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "mlstack.name" (list . "mlflow")) .Release.Namespace (int .Values.mlflow.port) -}}
{{- end -}}

{{- define "mlstack.pushgatewayUrl" -}}
{{- if .Values.pushgateway.enabled -}}
{{- printf "http://%s.%s.svc:9091" (include "mlstack.name" (list . "pushgateway")) .Release.Namespace -}}
{{- else -}}
{{- required "pushgateway.externalUrl is required when pushgateway.enabled is false" .Values.pushgateway.externalUrl -}}
{{- end -}}
{{- end -}}

{{- define "mlstack.sinkUrl" -}}
{{- printf "http://%s.%s.svc.cluster.local:%d%s" (include "mlstack.name" (list . "sink")) .Release.Namespace (int .Values.sink.port) .Values.sink.path -}}
{{- end -}}

{{/* MLflow client credentials (basic-auth) for jobs that talk to the tracking server */}}
{{- define "mlstack.mlflowClientEnv" -}}
- name: MLSTACK_TRACKING_URI
  value: {{ include "mlstack.mlflowUrl" . | quote }}
- name: MLFLOW_TRACKING_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.mlflow.auth.secretName }}
      key: admin-username
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.mlflow.auth.secretName }}
      key: admin-password
{{- end -}}

{{/* NetworkPolicy peers */}}
{{- define "mlstack.nsPeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ . }}
{{- end -}}
{{- define "mlstack.s3Egress" -}}
- to:
    {{- if .Values.networkPolicy.s3Namespace }}
    {{- include "mlstack.nsPeer" .Values.networkPolicy.s3Namespace | nindent 4 }}
    {{- else }}
    - ipBlock: {cidr: 0.0.0.0/0}
    {{- end }}
  ports:
    - {protocol: TCP, port: {{ .Values.networkPolicy.s3Port }}}
{{- end -}}
{{- define "mlstack.podPeer" -}}
{{- $root := index . 0 -}}
- podSelector:
    matchLabels:
      {{- include "mlstack.selectorLabels" (list $root (index . 1)) | nindent 6 }}
{{- end -}}
