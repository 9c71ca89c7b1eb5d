{{/* Chart name, at most 63 characters. */}}
{{- define "signet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name, at most 63 characters. */}}
{{- define "signet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "signet.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "signet.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "signet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "signet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "signet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "signet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "signet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "signet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "signet.configMapName" -}}
{{- default (include "signet.fullname" .) .Values.existingConfigMap -}}
{{- end -}}

{{- define "signet.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else if .Values.secret.create -}}
{{- include "signet.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* Pod spec parts shared by the receiver and worker Deployments. */}}
{{- define "signet.podCommon" -}}
serviceAccountName: {{ include "signet.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
volumes:
  - name: config
    configMap:
      name: {{ include "signet.configMapName" . }}
  {{- if .Values.keysSecret }}
  - name: keys
    secret:
      secretName: {{ .Values.keysSecret }}
      defaultMode: 256 # 0400 (0440 with fsGroup); signet refuses key files other users can read
  {{- end }}
  - name: tmp
    emptyDir: {}
{{- end -}}

{{- define "signet.containerCommon" -}}
image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
env:
  - name: SIGNET_CONFIG
    value: /etc/signet/signet.yaml
{{- if include "signet.secretName" . }}
envFrom:
  - secretRef:
      name: {{ include "signet.secretName" . }}
{{- end }}
volumeMounts:
  - name: config
    mountPath: /etc/signet/signet.yaml
    subPath: signet.yaml
    readOnly: true
  {{- if .Values.keysSecret }}
  - name: keys
    mountPath: /etc/signet/keys
    readOnly: true
  {{- end }}
  - name: tmp
    mountPath: /tmp
{{- end -}}
