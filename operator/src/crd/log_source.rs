//! The `LogSource` custom resource: one Azure log source and where its events go.

use std::collections::BTreeMap;

use azlog_config::report::CollectorReport;
use azlog_config::{
    Cloud, EntraLog, Facility, Framing, JsonFormat, SyslogBody, SyslogProtocol, Transport,
    WindowsEventBody,
};
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A LogSource reads one Azure log source and delivers its events to the outputs listed. The
/// operator runs one collector pod for it (or `replicas` of them, for an event hub); set exactly
/// one of `wad`, `diagnosticLogs`, `eventHubs`, `activityLog`, `securityAlerts`, `entraAudit` or
/// `simulate`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "azlog.io",
    version = "v1alpha1",
    kind = "LogSource",
    namespaced,
    status = "LogSourceStatus",
    shortname = "ls",
    shortname = "logsrc",
    category = "azlog",
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".status.source"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Last Event","type":"date","jsonPath":".status.lastEventTime"}"#,
    printcolumn = r#"{"name":"Lag","type":"integer","jsonPath":".status.lagSeconds","description":"Seconds between now and the newest event delivered"}"#,
    printcolumn = r#"{"name":"Delivered","type":"integer","jsonPath":".status.eventsDelivered","priority":1}"#,
    printcolumn = r#"{"name":"Dead Letters","type":"integer","jsonPath":".status.deadLettered","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LogSourceSpec {
    /// Rows of a VM diagnostics table (WADWindowsEventLogsTable and friends) in a storage account:
    /// azlog's original `azlog source add <name> WAD <account> <key>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wad: Option<WadSource>,
    /// Resource logs that diagnostic settings archive to a storage account (PT1H.json append blobs in
    /// `insights-logs-<category>` containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic_logs: Option<DiagnosticLogsSource>,
    /// Records that diagnostic settings and Entra ID stream to an event hub: the Activity Log,
    /// resource logs, all kinds of sign-ins and audit logs, within seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_hubs: Option<EventHubsSource>,
    /// Activity Log events (the Azure Resource Manager control plane) of one or more subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_log: Option<ActivityLogSource>,
    /// Microsoft Defender for Cloud security alerts of one or more subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_alerts: Option<SecurityAlertsSource>,
    /// Entra ID (Azure AD) audit logs of the tenant: directory audits and sign-ins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra_audit: Option<EntraAuditSource>,
    /// Realistic simulated Azure records, for trying azlog out without an Azure account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulate: Option<SimulateSource>,

    /// The Azure subscription this source belongs to. It is carried into every event that does not
    /// name its own (azlog's `<name>.<subscriptionId>`), and is the subscription read when a source's
    /// own `subscriptions` list is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// The Azure cloud: AzureCloud (default), AzureUSGovernment or AzureChinaCloud. It picks the
    /// login, Resource Manager, Graph and storage endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,
    /// Endpoints that replace the cloud's own (private clouds, proxies, test services). Must be https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// Where reading starts the first time, before any checkpoint exists: `Now` (default),
    /// `Earliest` (everything Azure still holds), or an RFC 3339 time such as 2026-01-31T00:00:00Z.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// How often the source asks Azure for new records once it has caught up, as a duration such as
    /// 30s or 2m. Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<String>,
    /// How late Azure may make a record available after its time, as a duration such as 20m. Every
    /// time window is read once more after this, so late records are delivered, once. Defaults per
    /// source: 60s for wad, 2h for diagnosticLogs, 20m for activityLog and entraAudit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_arrival: Option<String>,
    /// How the collector signs in to Entra ID. Required by activityLog, securityAlerts and
    /// entraAudit; the storage sources may use an account key or SAS token instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Credential>,
    /// The SubscriptionAuthorization, in this namespace, that grants this source's identity its
    /// Azure access. The collector starts only once it is Ready; the LogSource's `Authorized`
    /// condition follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_ref: Option<LocalObjectReference>,
    /// Where events go. At least one output.
    pub outputs: Vec<Output>,
    /// How many collector pods read the source (default 1). Only an eventHubs source can be read
    /// by more than one: its pods divide the hub's partitions between them through Leases, and
    /// move them without losing or doubling an event when pods come and go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32))]
    pub replicas: Option<i32>,
    /// The collector pod: image, resources and placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<CollectorSpec>,
}

/// A key of a Secret in the LogSource's namespace. The Secret is mounted into the collector pod;
/// its value is never copied anywhere else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// An object in the LogSource's namespace, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    /// Name of the object.
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WadSource {
    /// The storage account the diagnostics extension writes to.
    pub account: String,
    /// WADWindowsEventLogsTable (default), WADLogsTable, WADPerformanceCountersTable,
    /// WADDiagnosticInfrastructureLogsTable, or a Linux diagnostics table by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Table endpoint; by default https://<account>.table.<the cloud's storage suffix>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The storage account key. Give this, `sasToken`, or a `credential` with read access to the
    /// table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key: Option<SecretKeyRef>,
    /// A SAS token with read and list permission on the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_token: Option<SecretKeyRef>,
    /// A backlog is cut into this many slices of server time, read at once and delivered in
    /// order (default 4; 1 to 8; 1 reads one query at a time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_queries: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticLogsSource {
    /// The storage account diagnostic settings archive to.
    pub account: String,
    /// Blob endpoint; by default https://<account>.blob.<the cloud's storage suffix>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The storage account key. Give this, `sasToken`, or a `credential` with Storage Blob Data
    /// Reader on the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key: Option<SecretKeyRef>,
    /// A SAS token with read and list permission on the containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_token: Option<SecretKeyRef>,
    /// Log categories to read (the `<category>` of `insights-logs-<category>` containers, such as
    /// `auditevent`); empty means every category.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Also read the `insights-activity-logs` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_logs: Option<bool>,
    /// Read only blobs of these subscriptions; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<String>,
    /// Read only blobs of these resource groups; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_groups: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventHubsSource {
    /// The Event Hubs namespace, `contoso-logs` or `contoso-logs.servicebus.windows.net`; the
    /// cloud gives the host suffix of a bare name. Give this or `endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The namespace's AMQP endpoint instead, `amqps://host[:port]` (private endpoints, test
    /// services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The event hub the diagnostic settings stream to.
    pub hub: String,
    /// The consumer group to read as (default `$Default`). Give azlog its own: two readers of
    /// one group take partitions from each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
    /// A connection string of a shared access policy with Listen on the hub. Without it the
    /// collector signs in with `credential`, which needs the Azure Event Hubs Data Receiver role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<SecretKeyRef>,
    /// Events each partition may send ahead of delivery (default 100); memory holds at most this
    /// many per partition, each up to 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetch: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityLogSource {
    /// Subscription ids to read, each keeping its own position; empty means `subscriptionId`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<String>,
    /// Read only these resource groups; empty means the whole subscription.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_groups: Vec<String>,
    /// Deliver only these categories (Administrative, Security, Policy, …); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityAlertsSource {
    /// Subscription ids to read; empty means `subscriptionId`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntraAuditSource {
    /// Which logs to read: directoryAudits (default) and/or signIns (needs Entra ID P1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<EntraLog>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimulateSource {
    /// Events per second; absent means as fast as the outputs take them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Stop after this many events; absent means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Seed of the simulated records, so runs can be repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Endpoints that replace the cloud's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Entra ID token authority, such as https://login.microsoftonline.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_host: Option<String>,
    /// Azure Resource Manager, such as https://management.azure.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_manager: Option<String>,
    /// Microsoft Graph, such as https://graph.microsoft.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<String>,
    /// PEM bundle of the CA certificates to trust for these endpoints instead of the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretKeyRef>,
}

/// How the collector gets its Entra ID tokens. Set exactly one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    /// Workload identity federation (recommended on AKS): the collector's ServiceAccount token is
    /// exchanged for an Entra token. The operator annotates the ServiceAccount with the client id and
    /// labels the pod for the workload identity webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
    /// The managed identity of the node pool (system-assigned, or user-assigned by client id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_identity: Option<ManagedIdentity>,
    /// A service principal and its client secret, kept in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecret>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentity {
    /// Directory (tenant) id of the federated identity.
    pub tenant_id: String,
    /// Application (client) id of the federated identity.
    pub client_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedIdentity {
    /// Client id of a user-assigned identity; absent means the system-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecret {
    /// Directory (tenant) id of the service principal.
    pub tenant_id: String,
    /// Application (client) id of the service principal.
    pub client_id: String,
    /// The client secret.
    pub secret: SecretKeyRef,
}

/// One output. Set exactly one of `file`, `syslog`, `forwarder` or `windowsEventLog`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// NDJSON or JSON-LD files in azlog's folders (AzureResourceManagerJson, …), for a file
    /// forwarder to pick up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileOutput>,
    /// Syslog to a SIEM or relay: RFC 5424 or 3164 over UDP, TCP or TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<SyslogOutput>,
    /// Files read by a forwarder sidecar (Splunk Universal Forwarder, Fluent Bit, …) that runs in
    /// the collector pod and shares the files' volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarder: Option<ForwarderOutput>,
    /// The Windows event log of the node, where Windows Event Forwarding, WinCollect or a SIEM
    /// agent on the node picks events up. The collector then runs on a Windows node
    /// (kubernetes.io/os=windows) as a HostProcess container, the only kind that reaches the
    /// node's event log, with the operator's Windows collector image. Such a LogSource cannot
    /// also have a forwarder: a Windows pod cannot run the Linux sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_event_log: Option<WindowsEventLogOutput>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowsEventLogOutput {
    /// Name of the output in metrics and logs; defaults to windowsEventLog-<index>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The event source events are reported under (default azlog). They go to the log the source
    /// is registered in on the node (`New-EventLog -LogName <log> -Source <source>`), else to
    /// Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Each event's text: eventXml (default; Forwarded Events XML, WAD rows keep their RawXml),
    /// json or message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<WindowsEventBody>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileOutput {
    /// Name of the output in metrics and logs; defaults to file-<index>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ndjson (default) or jsonld.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<JsonFormat>,
    /// Finish a file once it reaches this many bytes (default 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_bytes: Option<u64>,
    /// Finish a file once it is this old, as a duration such as 5m (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_age: Option<String>,
    /// The volume the files are written to: an emptyDir (default) or a PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<FileVolume>,
    /// Which finished files are deleted, oldest first, so the volume never fills. Default: keep at
    /// most 1 GiB of finished files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<FileRetention>,
}

/// How many finished files are kept. The newest finished file of each folder is always kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileRetention {
    /// Delete the oldest finished files while all of them together hold more bytes than this
    /// (default 1073741824, 1 GiB; at least twice maxFileBytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Delete finished files older than this, as a duration such as 7d; default no age limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

/// A ConfigMap of the LogSource's namespace mounted read-only into a forwarder sidecar, for its
/// own configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForwarderConfig {
    /// Name of the ConfigMap.
    pub config_map: String,
    /// Where the forwarder sees its keys, one file each (default /etc/azlog-forwarder). Mounting
    /// over the image's own configuration directory hides the files the image ships there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
}

/// Where files are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileVolume {
    /// A PersistentVolumeClaim in the LogSource's namespace, by name; it must exist. Files then
    /// survive the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<String>,
    /// Size limit of the emptyDir used when no claim is named, such as 1Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyslogOutput {
    /// Name of the output in metrics and logs; defaults to syslog-<index>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// host:port of the receiver.
    pub address: String,
    /// udp, tcp (default) or tls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// rfc5424 (default) or rfc3164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<SyslogProtocol>,
    /// Stream framing over tcp and tls: octetCounting (default) or newline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framing: Option<Framing>,
    /// Message body: json (default), message, cef (ArcSight), leef (QRadar) or eventXml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<SyslogBody>,
    /// Syslog facility (default local0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<Facility>,
    /// APP-NAME of every message (default azlog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// TLS settings for transport tls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SyslogTls>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyslogTls {
    /// PEM bundle of the CA certificates that sign the receiver's certificate; default the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretKeyRef>,
    /// A kubernetes.io/tls Secret (tls.crt, tls.key) with the client certificate, for receivers that
    /// require mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_secret: Option<String>,
    /// The name to verify in the receiver's certificate; default the host of `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForwarderOutput {
    /// Name of the output in metrics and logs, and of the sidecar container; defaults to
    /// forwarder-<index>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The forwarder's image, such as splunk/universalforwarder:9.3 or fluent/fluent-bit:3.1.
    pub image: String,
    /// Arguments of the forwarder's container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment of the forwarder's container (use valueFrom.secretKeyRef for its credentials).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// ndjson (default) or jsonld files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<JsonFormat>,
    /// Where the forwarder sees the files (default /var/log/azlog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    /// Resources of the forwarder's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The forwarder's own configuration, from a ConfigMap (a Fluent Bit `azlog.conf`, a
    /// Universal Forwarder `inputs.conf`, …); refer to it in `args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ForwarderConfig>,
    /// The volume the files are written to: an emptyDir (default), which a replaced pod loses
    /// with the files the forwarder has not shipped yet, or a PersistentVolumeClaim, which keeps
    /// them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<FileVolume>,
    /// Which finished files are deleted, oldest first, so the volume never fills; the collector
    /// cannot know what the forwarder has shipped, so leave it time. Default: keep at most 1 GiB
    /// of finished files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<FileRetention>,
}

/// The collector pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectorSpec {
    /// The collector image; default the one the operator was installed with (its Windows image
    /// when an output is windowsEventLog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Always, IfNotPresent or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// CPU and memory of the collector container; default requests 50m / 64Mi, limit 256Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the collector pod must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the collector pod tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Port of the collector's /metrics, /healthz and /readyz (default 9464). A Windows collector
    /// shares the node's network, so two on one node need different ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_port: Option<u16>,
    /// Log level of the collector: error, warn, info (default), debug or trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// The volume of the collector's state directory: the ids of recent events, which keep what
    /// the source reads again from being delivered twice, and the dead-letter file. The default
    /// emptyDir survives a restart of the collector but not a replaced pod (a spec change, a
    /// drain, an eviction): the next pod may then deliver twice what its source reads again, and
    /// the dead letters are gone. Name a PersistentVolumeClaim (ReadWriteOnce is enough: one
    /// collector runs at a time) to keep both. The cursor itself is always kept in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_volume: Option<FileVolume>,
    /// The most event ids the collector remembers to keep what its source reads again from being
    /// delivered twice (default 500000; about 50 bytes of memory each). Ids are kept for as long
    /// as the source may read their events again; when that holds more ids than this, the
    /// DedupWindowExceeded condition says so: raise it, with the memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_capacity: Option<u64>,
}

/// What the operator and the collector last saw of this source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogSourceStatus {
    /// The generation of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The kind of source (wad, activityLog, …), for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Ready: the collector is configured and running. Collecting: events are being delivered.
    /// Degraded: something needs attention; the reason and message say what. Authorized: the
    /// referenced SubscriptionAuthorization has granted its roles. Reconciling and Stalled follow
    /// the kstatus conventions that Flux and kpt read: Reconciling=True while the collector rolls
    /// out, Stalled=True while the spec or a Secret it names must change first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// What the collector reports: progress and the failure it keeps retrying.
    #[serde(flatten)]
    pub collector: CollectorReport,
}

impl LogSource {
    /// The status condition of `type_` (Ready, Authorized, Degraded…), once the operator set it.
    pub fn condition(
        &self,
        type_: &str,
    ) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
    }
}
