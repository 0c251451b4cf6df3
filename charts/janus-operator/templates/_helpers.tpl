{{- define "janus.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "janus.namespace" -}}{{ default .Release.Namespace .Values.watchNamespace }}{{- end -}}
{{- define "janus.serviceAccount" -}}{{ default (include "janus.fullname" .) .Values.serviceAccount.name }}{{- end -}}
{{- define "janus.labels" -}}
app.kubernetes.io/name: janus-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "janus.selector" -}}
app.kubernetes.io/name: janus-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "janus.decision.name" -}}{{ include "janus.fullname" . | trunc 54 | trimSuffix "-" }}-decision{{- end -}}
{{- define "janus.decision.selector" -}}
app.kubernetes.io/name: janus-decision
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "janus.decision.labels" -}}
{{ include "janus.decision.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- /* The PromotionRequest the decision service follows. At most 55 characters
(crate::crd::MAX_PROMOTION_REQUEST_NAME): its runtime ConfigMap `<name>-runtime` must fit a
63-character name unshortened, so the chart and the operator derive the same name; the operator
refuses longer names too. */ -}}
{{- define "janus.decision.promotionRequest" -}}
{{- $name := required "decisionService.promotionRequest names the PromotionRequest to serve" .Values.decisionService.promotionRequest -}}
{{- if gt (len $name) 55 -}}
{{- fail (printf "decisionService.promotionRequest %q is %d characters long; at most 55, so that its runtime ConfigMap %q fits 63" $name (len $name) (printf "%s-runtime" $name)) -}}
{{- end -}}
{{- $name -}}
{{- end -}}
{{- define "janus.decision.runtimeConfigMap" -}}
{{- include "janus.decision.promotionRequest" . }}-runtime
{{- end -}}
{{- /* One webhook entry's common fields: the Service, CA bundle, path, failure policy. */ -}}
{{- define "janus.webhook.common" -}}
admissionReviewVersions: ["v1"]
sideEffects: NoneOnDryRun
timeoutSeconds: {{ .timeout }}
failurePolicy: {{ .failurePolicy }}
matchPolicy: Equivalent
clientConfig:
  service: {name: {{ .service }}, namespace: {{ .ns }}, path: {{ .path }}, port: 443}
  {{- if .caBundle }}
  caBundle: {{ .caBundle }}
  {{- end }}
{{- end -}}
{{- define "janus.stepServiceAccount" -}}{{ include "janus.fullname" . | trunc 58 | trimSuffix "-" }}-step{{- end -}}
{{- define "janus.policyNamespace" -}}{{ default (printf "%s-policy" (include "janus.namespace" .)) .Values.policy.namespace }}{{- end -}}
{{- define "janus.statsKeySecret" -}}{{ default (printf "%s-stats-key" (include "janus.fullname" .)) .Values.statsKey.existingSecret }}{{- end -}}
