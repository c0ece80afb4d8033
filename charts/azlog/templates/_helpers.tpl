{{/* The release's full name: "azlog-operator" for a release named azlog, else "<release>-azlog-operator". */}}
{{- define "azlog.fullname" -}}
{{- if eq .Release.Name "azlog" -}}
azlog-operator
{{- else -}}
{{- printf "%s-azlog-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "azlog.serviceAccountName" -}}
{{- default (include "azlog.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "azlog.selectorLabels" -}}
app.kubernetes.io/name: azlog-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "azlog.labels" -}}
{{ include "azlog.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: azlog
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "azlog.operatorImage" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "azlog.collectorTag" -}}
{{- default .Chart.AppVersion .Values.collectorImage.tag -}}
{{- end -}}

{{/* The rules the operator needs where it reconciles LogSources: a ClusterRole's or a Role's. */}}
{{- define "azlog.operatorRules" -}}
# LogSources are watched and their status written; the finalizers subresource lets children
# carry an owner reference that blocks the LogSource's deletion until they are gone.
- apiGroups: ["azlog.io"]
  resources: ["logsources"]
  verbs: ["list", "watch"]
- apiGroups: ["azlog.io"]
  resources: ["logsources/status"]
  verbs: ["patch"]
- apiGroups: ["azlog.io"]
  resources: ["logsources/finalizers"]
  verbs: ["update"]
# SubscriptionAuthorizations are watched, their status written, and their finalizer added and
# removed (a patch), so a deletion waits until the Azure grants it made are removed. get: a
# LogSource's authorizationRef is looked up.
- apiGroups: ["azlog.io"]
  resources: ["subscriptionauthorizations"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["azlog.io"]
  resources: ["subscriptionauthorizations/status"]
  verbs: ["patch"]
# Each collector's children, applied with server-side apply and watched (label-selected) so that
# drift is repaired; get, before the first apply, to refuse taking over an object of the same
# name that the operator did not create. update on ConfigMaps is also what the operator grants
# each collector on its own checkpoint ConfigMap: a Role can only grant what its creator holds.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Each collector's Lease (one checkpoint writer at a time), an owned child like the others; get
# and update are also what the collector's Role grants on it. delete: the replicas of an eventHubs
# LogSource divide its partitions through Leases they create, renew and delete, and their Role
# grants that.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Whether a Secret a LogSource references exists: the operator reads its metadata only (a
# PartialObjectMetadata GET). The one Secret value it reads is a SubscriptionAuthorization's admin
# credential, and only from a Secret labelled azlog.io/admin-credential=true. RBAC cannot grant
# less than get.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# The one kind of Secret the operator writes: the client secret of an application a
# SubscriptionAuthorization created (create.clientSecret), owned by that resource. It never lists
# or watches Secrets.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "patch"]
# Kubernetes Events on LogSources and SubscriptionAuthorizations.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
