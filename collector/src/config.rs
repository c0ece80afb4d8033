//! The collector's configuration file.
//!
//! The same YAML is written by hand for a standalone collector and rendered by the operator into a
//! ConfigMap in a cluster. Loading reports the exact field path of every mistake and what is allowed
//! there; unknown fields are errors, because a misspelt option silently ignored is a security hole
//! in a log shipper.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A whole collector: one source, several outputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Friendly source name carried into every event (azlog's `<name>` in `<name>.<subscriptionId>`).
    pub name: String,
    /// The Azure subscription the source reads, carried into events that do not name their own.
    #[serde(default)]
    pub subscription_id: Option<String>,
    pub source: SourceConfig,
    /// How to reach Azure: cloud, endpoints and credential. Required by the activityLog,
    /// securityAlerts and entraAudit sources.
    #[serde(default)]
    pub azure: Option<AzureConfig>,
    pub outputs: Vec<OutputConfig>,
    /// Directory for the checkpoint and the dead-letter file.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub health: HealthConfig,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("azlog-state")
}

/// Exactly one source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum SourceConfig {
    /// Realistic simulated Azure records; needs no Azure account.
    Simulate(SimulateConfig),
    /// Activity Log events (the ARM control plane) of one or more subscriptions.
    ActivityLog(ActivityLogConfig),
    /// Microsoft Defender for Cloud security alerts of one or more subscriptions.
    SecurityAlerts(SecurityAlertsConfig),
    /// Entra ID (Azure AD) audit logs of the tenant: directoryAudits and signIns.
    EntraAudit(EntraAuditConfig),
    /// Rows of a VM diagnostics table (WAD / LAD) in a storage account.
    Wad(WadConfig),
    /// Resource logs that diagnostic settings archive to a storage account (PT1H.json blobs).
    DiagnosticLogs(DiagnosticLogsConfig),
}

impl SourceConfig {
    /// Whether the source needs an Entra ID credential (the storage sources can use keys instead).
    pub fn needs_credential(&self) -> bool {
        matches!(
            self,
            SourceConfig::ActivityLog(_)
                | SourceConfig::SecurityAlerts(_)
                | SourceConfig::EntraAudit(_)
        )
    }

    /// The key under `source:`, for field paths in messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceConfig::Simulate(_) => "simulate",
            SourceConfig::ActivityLog(_) => "activityLog",
            SourceConfig::SecurityAlerts(_) => "securityAlerts",
            SourceConfig::EntraAudit(_) => "entraAudit",
            SourceConfig::Wad(_) => "wad",
            SourceConfig::DiagnosticLogs(_) => "diagnosticLogs",
        }
    }
}

fn default_wad_table() -> String {
    "WADWindowsEventLogsTable".to_owned()
}

fn default_wad_late_arrival() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WadConfig {
    /// The storage account the diagnostics extension writes to.
    pub account: String,
    /// WADWindowsEventLogsTable (default), WADLogsTable, WADPerformanceCountersTable,
    /// WADDiagnosticInfrastructureLogsTable, or a Linux diagnostics table by name.
    #[serde(default = "default_wad_table")]
    pub table: String,
    /// Table endpoint; absent means https://<account>.table.<the cloud's storage suffix>. Plain http
    /// is accepted for an emulator on loopback only.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// File holding the account key (a mounted Secret).
    #[serde(default)]
    pub account_key_file: Option<PathBuf>,
    /// File holding a SAS token with read and list permission on the table.
    #[serde(default)]
    pub sas_token_file: Option<PathBuf>,
    #[serde(default)]
    pub start_at: StartAt,
    /// How far behind the storage server's clock a read window ends, so writes still in flight
    /// land in a window not yet read. Rows are windowed by the time the server stored them, so a
    /// row the agent uploads late into an old minute's partition is still read, once.
    #[serde(default = "default_wad_late_arrival", with = "humantime_serde")]
    pub late_arrival: Duration,
    /// A backlog window (more than two poll intervals behind) is cut into this many slices of
    /// server time, read at once and delivered in order: one table partition serves only about
    /// 2,000 entities a second. 1 reads one query at a time.
    #[serde(default = "default_parallel_queries")]
    pub parallel_queries: usize,
}

fn default_parallel_queries() -> usize {
    4
}

/// Most slices a wad backlog is read in at once; each holds up to two pages in memory.
pub const MAX_PARALLEL_QUERIES: usize = 8;

fn default_blob_late_arrival() -> Duration {
    Duration::from_secs(2 * 3600)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiagnosticLogsConfig {
    /// The storage account diagnostic settings archive to.
    pub account: String,
    /// Blob endpoint; absent means https://<account>.blob.<the cloud's storage suffix>. Plain http
    /// is accepted for an emulator on loopback only.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// File holding the account key (a mounted Secret).
    #[serde(default)]
    pub account_key_file: Option<PathBuf>,
    /// File holding a SAS token with read and list permission on the containers.
    #[serde(default)]
    pub sas_token_file: Option<PathBuf>,
    /// Log categories to read (AuditEvent, SignInLogs, …: the `insights-logs-<category>`
    /// containers); empty means every insights-logs-* container.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Also read the Activity Log archive (the insights-activity-logs container).
    #[serde(default)]
    pub activity_logs: bool,
    /// Only blobs of these subscriptions; empty means all.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// Only blobs of these resource groups (needs subscriptions); empty means all.
    #[serde(default)]
    pub resource_groups: Vec<String>,
    #[serde(default)]
    pub start_at: StartAt,
    /// How long after its hour ends an hour's blob may still grow. Blobs are read again, from
    /// where they were left, until then.
    #[serde(default = "default_blob_late_arrival", with = "humantime_serde")]
    pub late_arrival: Duration,
}

/// Where a source starts reading when it has no checkpoint yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StartAt {
    /// Only events from the first start onwards.
    #[default]
    Now,
    /// Everything the API still holds (90 days of Activity Log, 30 days of Entra audit logs).
    Earliest,
    /// Events from this time onwards.
    Time(chrono::DateTime<chrono::Utc>),
}

impl TryFrom<String> for StartAt {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "Now" => Ok(StartAt::Now),
            "Earliest" => Ok(StartAt::Earliest),
            other => chrono::DateTime::parse_from_rfc3339(other)
                .map(|t| StartAt::Time(t.with_timezone(&chrono::Utc)))
                .map_err(|_| {
                    format!("expected Now, Earliest or an RFC 3339 time such as 2026-01-31T00:00:00Z, got {other:?}")
                }),
        }
    }
}

impl From<StartAt> for String {
    fn from(start: StartAt) -> String {
        match start {
            StartAt::Now => "Now".into(),
            StartAt::Earliest => "Earliest".into(),
            StartAt::Time(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        }
    }
}

fn default_late_arrival() -> Duration {
    Duration::from_secs(20 * 60)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivityLogConfig {
    /// Subscription ids to read; each keeps its own position in the checkpoint. Empty means the
    /// top-level subscriptionId.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// Read only these resource groups (one query each); empty means the whole subscription.
    #[serde(default)]
    pub resource_groups: Vec<String>,
    /// Deliver only these categories (Administrative, Security, Policy, …); empty means all.
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub start_at: StartAt,
    /// How late Azure may index an event after its time (3 to 20 minutes for the Activity Log).
    /// Every window is read once more after this, so late events are delivered, once.
    #[serde(default = "default_late_arrival", with = "humantime_serde")]
    pub late_arrival: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityAlertsConfig {
    /// Subscription ids to read; empty means the top-level subscriptionId.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// Alerts generated before this are not delivered (the API cannot filter; azlog filters).
    #[serde(default)]
    pub start_at: StartAt,
}

/// An Entra ID audit log.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EntraLog {
    /// Directory changes: users, groups, apps, roles (Graph auditLogs/directoryAudits).
    DirectoryAudits,
    /// Interactive and non-interactive sign-ins (Graph auditLogs/signIns; needs Entra ID P1).
    SignIns,
}

impl EntraLog {
    pub fn as_str(self) -> &'static str {
        match self {
            EntraLog::DirectoryAudits => "directoryAudits",
            EntraLog::SignIns => "signIns",
        }
    }
}

fn default_entra_logs() -> Vec<EntraLog> {
    vec![EntraLog::DirectoryAudits]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntraAuditConfig {
    /// Which logs to read; each keeps its own position in the checkpoint.
    #[serde(default = "default_entra_logs")]
    pub logs: Vec<EntraLog>,
    #[serde(default)]
    pub start_at: StartAt,
    /// How late Graph may index a record after its activity time (usually minutes).
    #[serde(default = "default_late_arrival", with = "humantime_serde")]
    pub late_arrival: Duration,
}

/// Where Azure is and who the collector is there.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureConfig {
    #[serde(default)]
    pub cloud: Cloud,
    /// Endpoints that replace the cloud's (private clouds, proxies, test services).
    #[serde(default)]
    pub endpoints: EndpointOverrides,
    /// PEM file of the CA(s) to trust for these endpoints instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Required by the ARM and Graph sources; storage sources may use a key or SAS instead.
    #[serde(default)]
    pub credential: Option<CredentialConfig>,
}

/// A national cloud: it picks the login, ARM and Graph endpoints and the token scopes.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Cloud {
    #[default]
    AzureCloud,
    AzureUSGovernment,
    AzureChinaCloud,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointOverrides {
    /// Entra ID token authority, e.g. https://login.microsoftonline.com.
    #[serde(default)]
    pub authority_host: Option<String>,
    /// Azure Resource Manager, e.g. https://management.azure.com.
    #[serde(default)]
    pub resource_manager: Option<String>,
    /// Microsoft Graph, e.g. https://graph.microsoft.com.
    #[serde(default)]
    pub graph: Option<String>,
}

/// How the collector gets its Entra ID tokens. Secrets are read from files (mounted Secrets), never
/// written in this file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum CredentialConfig {
    /// A service principal with a client secret.
    ClientSecret(ClientSecretCredentialConfig),
    /// Workload identity federation: a Kubernetes service account token exchanged for an Entra
    /// token. Unset fields come from AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE,
    /// which the workload identity webhook sets.
    WorkloadIdentity(WorkloadIdentityCredentialConfig),
    /// The managed identity of the node or pod (system-assigned, or user-assigned by client id).
    ManagedIdentity(ManagedIdentityCredentialConfig),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientSecretCredentialConfig {
    pub tenant_id: String,
    pub client_id: String,
    /// File holding the client secret (trailing whitespace is ignored).
    pub secret_file: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadIdentityCredentialConfig {
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    /// The projected service account token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedIdentityCredentialConfig {
    /// Client id of a user-assigned identity; absent means the system-assigned identity.
    #[serde(default)]
    pub client_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulateConfig {
    /// Events per second; absent means as fast as the outputs take them.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Stop after this many events; absent means run forever.
    #[serde(default)]
    pub count: Option<u64>,
    /// The same seed always yields the same events.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Event time of the first record; later ones follow at the configured rate. Absent means the
    /// time of the first start (kept in the checkpoint). Fix it for reproducible output.
    #[serde(default)]
    pub start_time: Option<chrono::DateTime<chrono::Utc>>,
    /// The subscription id written into simulated records.
    #[serde(default = "default_sim_subscription")]
    pub subscription_id: String,
    #[serde(default)]
    pub mix: SimulateMix,
}

fn default_seed() -> u64 {
    1
}

fn default_sim_subscription() -> String {
    "3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f".to_owned()
}

/// Relative weights of the simulated record kinds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulateMix {
    #[serde(default)]
    pub wad: u32,
    #[serde(default)]
    pub activity_log: u32,
    #[serde(default)]
    pub security_alert: u32,
    #[serde(default)]
    pub directory_audit: u32,
    #[serde(default)]
    pub diagnostic_log: u32,
    #[serde(default)]
    pub sign_in: u32,
}

impl Default for SimulateMix {
    fn default() -> Self {
        SimulateMix {
            wad: 4,
            activity_log: 3,
            security_alert: 1,
            directory_audit: 2,
            diagnostic_log: 2,
            sign_in: 0,
        }
    }
}

/// One output. Several of the same type may be listed; give them distinct `name`s.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum OutputConfig {
    File(FileOutputConfig),
    Syslog(SyslogOutputConfig),
    Stdout(StdoutOutputConfig),
    WindowsEventLog(WindowsEventLogOutputConfig),
}

impl OutputConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            OutputConfig::File(_) => "file",
            OutputConfig::Syslog(_) => "syslog",
            OutputConfig::Stdout(_) => "stdout",
            OutputConfig::WindowsEventLog(_) => "windowsEventLog",
        }
    }

    /// Where the output sends events, in words for logs and `validate`.
    pub fn target(&self) -> String {
        let format = |f: JsonFormat| match f {
            JsonFormat::Ndjson => "NDJSON",
            JsonFormat::Jsonld => "JSON-LD",
        };
        match self {
            OutputConfig::File(c) => {
                format!("{} files below {}", format(c.format), c.directory.display())
            }
            OutputConfig::Syslog(c) => format!(
                "{} over {} to {}, {} bodies",
                match c.protocol {
                    SyslogProtocol::Rfc5424 => "RFC 5424",
                    SyslogProtocol::Rfc3164 => "RFC 3164",
                },
                match c.transport {
                    Transport::Udp => "UDP",
                    Transport::Tcp => "TCP",
                    Transport::Tls => "TLS",
                },
                c.address,
                match c.body {
                    SyslogBody::Json => "JSON",
                    SyslogBody::Message => "plain-text",
                    SyslogBody::Cef => "CEF",
                    SyslogBody::Leef => "LEEF",
                    SyslogBody::EventXml => "Windows event XML",
                }
            ),
            OutputConfig::Stdout(c) => format!("{} lines on stdout", format(c.format)),
            OutputConfig::WindowsEventLog(c) => format!(
                "the Windows event log under the source {}, {} bodies",
                c.source,
                match c.body {
                    WindowsEventBody::EventXml => "Windows event XML",
                    WindowsEventBody::Json => "JSON",
                    WindowsEventBody::Message => "plain-text",
                }
            ),
        }
    }

    /// The name used in metrics and logs: the configured one, or `<type>-<index>`.
    pub fn name(&self, index: usize) -> String {
        let configured = match self {
            OutputConfig::File(c) => &c.name,
            OutputConfig::Syslog(c) => &c.name,
            OutputConfig::Stdout(c) => &c.name,
            OutputConfig::WindowsEventLog(c) => &c.name,
        };
        configured
            .clone()
            .unwrap_or_else(|| format!("{}-{index}", self.type_name()))
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JsonFormat {
    /// One JSON object per line: the Azure record with an `azlog` member added.
    Ndjson,
    /// One JSON-LD node per line, with an inline `@context`.
    Jsonld,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileOutputConfig {
    #[serde(default)]
    pub name: Option<String>,
    /// Root directory; events land in per-kind folders below it (AzureResourceManagerJson, …).
    pub directory: PathBuf,
    #[serde(default = "default_json_format")]
    pub format: JsonFormat,
    /// Finish a file once it reaches this many bytes.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Finish a file once it is this old, so forwarders see quiet sources too.
    #[serde(default = "default_max_file_age", with = "humantime_serde")]
    pub max_file_age: Duration,
    /// fsync before reporting events delivered, so they survive a power cut and not only a crash.
    /// Batches that arrive together share one fsync.
    #[serde(default = "yes")]
    pub fsync: bool,
    /// Deletes finished files, oldest first, so the volume never fills; absent keeps every file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// How long finished files are kept. The newest finished file of each folder is always kept: the
/// output reads its last lines back after a crash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retention {
    /// Delete the oldest finished files while all of them together hold more bytes than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Delete finished files older than this.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub max_age: Option<Duration>,
}

fn default_json_format() -> JsonFormat {
    JsonFormat::Ndjson
}

fn default_max_file_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_max_file_age() -> Duration {
    Duration::from_secs(300)
}

fn yes() -> bool {
    true
}

/// Events written to the Windows event log of the machine the collector runs on, where Windows
/// Event Forwarding, WinCollect or a Splunk/ArcSight agent already picks them up. Windows only: on
/// Kubernetes the operator runs such a collector as a HostProcess container on a Windows node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowsEventLogOutputConfig {
    #[serde(default)]
    pub name: Option<String>,
    /// The event source the events are reported under. They go to the log the source is registered
    /// in (register it with `New-EventLog -LogName <log> -Source <source>`), else to Application.
    #[serde(default = "default_event_source")]
    pub source: String,
    /// What each event's text holds.
    #[serde(default)]
    pub body: WindowsEventBody,
}

fn default_event_source() -> String {
    "azlog".into()
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WindowsEventBody {
    /// Windows event XML as in the Forwarded Events log (WAD rows keep their RawXml).
    #[default]
    EventXml,
    /// The Azure record as one line of JSON.
    Json,
    /// The human-readable message.
    Message,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StdoutOutputConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_json_format")]
    pub format: JsonFormat,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SyslogProtocol {
    Rfc5424,
    Rfc3164,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Framing {
    /// RFC 6587 octet counting: `LEN SP MSG`. Messages may contain newlines.
    OctetCounting,
    /// One message per line; newlines inside a message are escaped as `\n`.
    Newline,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SyslogBody {
    /// The Azure record as one line of JSON.
    Json,
    /// The human-readable message.
    Message,
    /// ArcSight Common Event Format.
    Cef,
    /// QRadar Log Event Extended Format 2.0.
    Leef,
    /// Windows event XML as in the Forwarded Events log (WAD rows keep their RawXml).
    EventXml,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    pub fn code(self) -> u8 {
        match self {
            Facility::Kern => 0,
            Facility::User => 1,
            Facility::Mail => 2,
            Facility::Daemon => 3,
            Facility::Auth => 4,
            Facility::Syslog => 5,
            Facility::Lpr => 6,
            Facility::News => 7,
            Facility::Uucp => 8,
            Facility::Cron => 9,
            Facility::Authpriv => 10,
            Facility::Ftp => 11,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyslogOutputConfig {
    #[serde(default)]
    pub name: Option<String>,
    /// `host:port` of the receiver.
    pub address: String,
    #[serde(default = "default_transport")]
    pub transport: Transport,
    #[serde(default = "default_protocol")]
    pub protocol: SyslogProtocol,
    /// Stream framing (TCP and TLS); UDP sends one message per datagram.
    #[serde(default = "default_framing")]
    pub framing: Framing,
    #[serde(default = "default_body")]
    pub body: SyslogBody,
    #[serde(default = "default_facility")]
    pub facility: Facility,
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// A fixed HOSTNAME; by default the event's own host (VM, resource) or this machine's name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// SD-ID of the structured-data element carrying the Azure fields (RFC 5424 only).
    #[serde(default = "default_sd_id")]
    pub structured_data_id: String,
    /// Longer messages are truncated (at a UTF-8 boundary) and counted. Defaults: 8192 over UDP,
    /// 1 MiB over streams.
    #[serde(default)]
    pub max_message_bytes: Option<usize>,
    /// How long to wait for the receiver's TCP stack to acknowledge a batch before reconnecting.
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_transport() -> Transport {
    Transport::Tcp
}
fn default_protocol() -> SyslogProtocol {
    SyslogProtocol::Rfc5424
}
fn default_framing() -> Framing {
    Framing::OctetCounting
}
fn default_body() -> SyslogBody {
    SyslogBody::Json
}
fn default_facility() -> Facility {
    Facility::Local0
}
fn default_app_name() -> String {
    "azlog".to_owned()
}
fn default_sd_id() -> String {
    "azlog@32473".to_owned()
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

/// UDP payloads cannot exceed 65,535 bytes less the IPv4 and UDP headers.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

impl SyslogOutputConfig {
    pub fn effective_max_message_bytes(&self) -> usize {
        self.max_message_bytes.unwrap_or(match self.transport {
            Transport::Udp => 8192,
            Transport::Tcp | Transport::Tls => 1024 * 1024,
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA(s) that sign the receiver's certificate; absent means the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for receivers that require mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `certFile`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Name to verify the receiver's certificate against; defaults to the host in `address`.
    #[serde(default)]
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckpointConfig {
    /// How often delivered progress is written. Every commit is also forced once half of
    /// `pipeline.maxInFlightEvents` is waiting for one.
    #[serde(default = "default_commit_interval", with = "humantime_serde")]
    pub commit_interval: Duration,
    /// The most event ids remembered to hide re-reads (about 50 bytes of memory each, 16 on disk
    /// in `stateDir`). An id is remembered for as long as the source may read its event again
    /// (its re-read span, e.g. `lateArrival` and a poll); should that hold more ids than this, the
    /// oldest are forgotten early and counted in `azlog_dedup_forgotten_early_total`.
    #[serde(default = "default_dedup_capacity")]
    pub dedup_capacity: usize,
    /// Keep the checkpoint in a Kubernetes ConfigMap instead of `stateDir`, so the collector pod
    /// holds no state and can be rescheduled anywhere. The operator sets this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesCheckpointConfig>,
}

/// A checkpoint kept in a ConfigMap, and progress reported to the LogSource's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesCheckpointConfig {
    pub namespace: String,
    /// The ConfigMap holding the checkpoint; it must exist (the operator creates it).
    pub config_map: String,
    /// The LogSource whose status shows the collector's progress; absent means none is reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_source: Option<String>,
    /// A coordination.k8s.io Lease the collector must hold to read and write the checkpoint: a
    /// second collector on the same checkpoint (a drifted replica count, a debug run) waits
    /// instead of delivering the same events and taking turns with the cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// Progress is written to the LogSource status at most this often.
    #[serde(default = "default_status_interval", with = "humantime_serde")]
    pub status_interval: Duration,
}

fn default_status_interval() -> Duration {
    Duration::from_secs(30)
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            commit_interval: default_commit_interval(),
            dedup_capacity: default_dedup_capacity(),
            kubernetes: None,
        }
    }
}

fn default_commit_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_dedup_capacity() -> usize {
    500_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineConfig {
    /// Largest number of records a source fetches at once.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Events dispatched but not yet checkpointed; the source waits beyond this. Bounds memory and
    /// how much is re-read after a crash.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight_events: usize,
    /// How long to wait when the source has nothing new.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// On SIGTERM, how long to wait for in-flight events to be delivered before exiting.
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_size: default_batch_size(),
            max_in_flight_events: default_max_in_flight(),
            poll_interval: default_poll_interval(),
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

fn default_batch_size() -> usize {
    500
}
fn default_max_in_flight() -> usize {
    10_000
}
/// The bounds of `pipeline.pollInterval`.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(86_400);

fn default_poll_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthConfig {
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoints; `null` turns them off.
    #[serde(default = "default_health_listen")]
    pub listen: Option<SocketAddr>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            listen: default_health_listen(),
        }
    }
}

fn default_health_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
}

/// One mistake in a configuration: where, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {origin}{}", location.map(|(l, c)| format!(" (line {l}, column {c})")).unwrap_or_default())]
    Parse {
        origin: String,
        location: Option<(usize, usize)>,
        error: FieldError,
    },
    #[error("invalid config {origin}: {} problem(s)", errors.len())]
    Invalid {
        origin: String,
        errors: Vec<FieldError>,
    },
}

impl ConfigError {
    /// Every field error, for printing one per line.
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            ConfigError::Read { .. } => Vec::new(),
            ConfigError::Parse { error, .. } => vec![error.clone()],
            ConfigError::Invalid { errors, .. } => errors.clone(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates YAML. `origin` names the text in messages (a file path, a ConfigMap).
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        // YAML is read into a JSON value first: serde_yaml only accepts `!tag` syntax for enums, while
        // users, and the LogSource CRD this mirrors, write one-of choices as single-key maps.
        let value: serde_json::Value =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
                origin: origin.to_owned(),
                location: e.location().map(|l| (l.line(), l.column())),
                error: FieldError {
                    path: "(document)".to_owned(),
                    message: format!("YAML syntax error: {}", explain_serde(&e.to_string())),
                },
            })?;
        let config: Config = serde_path_to_error::deserialize(value).map_err(|err| {
            let path = match err.path().to_string() {
                p if p == "." => "(top level)".to_owned(),
                p => p,
            };
            ConfigError::Parse {
                origin: origin.to_owned(),
                location: None,
                error: FieldError {
                    path,
                    message: explain_serde(&err.into_inner().to_string()),
                },
            }
        })?;
        let errors = config.validate();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                errors,
            })
        }
    }

    /// Checks what the types cannot: ranges, consistency, files that must exist.
    pub fn validate(&self) -> Vec<FieldError> {
        self.check(Files::MustExist)
    }

    /// Everything [`Config::validate`] checks except that the files named exist: the operator
    /// renders configs for pods where those files are Secrets mounted later.
    pub fn validate_settings(&self) -> Vec<FieldError> {
        self.check(Files::Elsewhere)
    }

    fn check(&self, files: Files) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut err = |path: String, message: String| errors.push(FieldError { path, message });
        if self.name.trim().is_empty() {
            err(
                "name".into(),
                "must not be empty: it names the source in every event".into(),
            );
        }
        match &self.source {
            SourceConfig::Simulate(sim) => validate_simulate(sim, &mut err),
            SourceConfig::ActivityLog(c) => {
                let base = "source.activityLog";
                self.validate_subscriptions(&c.subscriptions, base, &mut err);
                for (i, group) in c.resource_groups.iter().enumerate() {
                    if group.is_empty() || group.contains(['\'', '/']) {
                        err(
                            format!("{base}.resourceGroups[{i}]"),
                            format!("{group:?} is not a resource group name"),
                        );
                    }
                }
                validate_window(c.start_at, c.late_arrival, base, &mut err);
            }
            SourceConfig::SecurityAlerts(c) => {
                let base = "source.securityAlerts";
                self.validate_subscriptions(&c.subscriptions, base, &mut err);
                validate_window(c.start_at, Duration::ZERO, base, &mut err);
            }
            SourceConfig::Wad(c) => validate_wad(c, self.azure.as_ref(), files, &mut err),
            SourceConfig::DiagnosticLogs(c) => {
                validate_diagnostic_logs(c, self.azure.as_ref(), files, &mut err)
            }
            SourceConfig::EntraAudit(c) => {
                let base = "source.entraAudit";
                if c.logs.is_empty() {
                    err(
                        format!("{base}.logs"),
                        "list at least one of directoryAudits, signIns".into(),
                    );
                }
                validate_window(c.start_at, c.late_arrival, base, &mut err);
            }
        }
        if let Some(azure) = &self.azure {
            validate_azure(azure, files, &mut err);
        }
        let has_credential = self.azure.as_ref().is_some_and(|a| a.credential.is_some());
        if self.source.needs_credential() && !has_credential {
            err(
                "azure.credential".into(),
                format!(
                    "the {} source reads Azure's APIs: add an azure block with a credential (clientSecret, workloadIdentity or managedIdentity)",
                    self.source.type_name()
                ),
            );
        }
        if self.outputs.is_empty() {
            err(
                "outputs".into(),
                "list at least one output (file, syslog or stdout)".into(),
            );
        }
        let mut names = std::collections::HashMap::new();
        let mut directories = std::collections::HashMap::new();
        for (i, output) in self.outputs.iter().enumerate() {
            let name = output.name(i);
            let base = format!("outputs[{i}].{}", output.type_name());
            if let Some(first) = names.insert(name.clone(), i) {
                err(
                    format!("{base}.name"),
                    format!(
                        "{name:?} is already the name of outputs[{first}]; output names must be unique"
                    ),
                );
            }
            match output {
                OutputConfig::File(file) => {
                    if let Some(first) =
                        directories.insert((file.directory.clone(), file.format), i)
                    {
                        err(
                            format!("{base}.directory"),
                            format!(
                                "outputs[{first}] already writes {} to {}",
                                format_name(file.format),
                                file.directory.display()
                            ),
                        );
                    }
                    if file.max_file_bytes < 4096 {
                        err(
                            format!("{base}.maxFileBytes"),
                            format!("must be at least 4096, got {}", file.max_file_bytes),
                        );
                    }
                    if file.max_file_age < Duration::from_secs(1) {
                        err(format!("{base}.maxFileAge"), "must be at least 1s".into());
                    }
                    let retention = file.retention.clone().unwrap_or_default();
                    if let Some(max) = retention.max_bytes
                        && max < 2 * file.max_file_bytes
                    {
                        err(
                            format!("{base}.retention.maxBytes"),
                            format!(
                                "must be at least twice maxFileBytes ({}), got {max}: the files being written and the newest finished ones must fit",
                                2 * file.max_file_bytes
                            ),
                        );
                    }
                    if retention.max_age.is_some_and(|age| age < file.max_file_age) {
                        err(
                            format!("{base}.retention.maxAge"),
                            "must be at least maxFileAge: a file would be deleted as soon as it is finished".into(),
                        );
                    }
                }
                OutputConfig::Syslog(syslog) => validate_syslog(syslog, &base, files, &mut err),
                OutputConfig::Stdout(_) => {}
                OutputConfig::WindowsEventLog(w) => {
                    if w.source.is_empty() || w.source.len() > 200 || w.source.contains('\\') {
                        err(
                            format!("{base}.source"),
                            format!(
                                "must be 1 to 200 characters without a backslash, got {:?}",
                                w.source
                            ),
                        );
                    }
                }
            }
        }
        let p = &self.pipeline;
        // Zero would poll Azure in a tight loop; a huge value overflows the timer.
        if p.poll_interval < MIN_POLL_INTERVAL || p.poll_interval > MAX_POLL_INTERVAL {
            err(
                "pipeline.pollInterval".into(),
                format!(
                    "must be between {} and {}, got {}",
                    humantime::format_duration(MIN_POLL_INTERVAL),
                    humantime::format_duration(MAX_POLL_INTERVAL),
                    humantime::format_duration(p.poll_interval)
                ),
            );
        }
        if p.batch_size == 0 || p.batch_size > 100_000 {
            err(
                "pipeline.batchSize".into(),
                format!("must be between 1 and 100000, got {}", p.batch_size),
            );
        }
        if p.max_in_flight_events < p.batch_size {
            err(
                "pipeline.maxInFlightEvents".into(),
                format!(
                    "must be at least pipeline.batchSize ({}), got {}",
                    p.batch_size, p.max_in_flight_events
                ),
            );
        }
        if self.checkpoint.dedup_capacity < p.max_in_flight_events {
            err(
                "checkpoint.dedupCapacity".into(),
                format!(
                    "must be at least pipeline.maxInFlightEvents ({}) so a restart recognises everything it re-reads, got {}",
                    p.max_in_flight_events, self.checkpoint.dedup_capacity
                ),
            );
        }
        if self.checkpoint.commit_interval < Duration::from_millis(10) {
            err(
                "checkpoint.commitInterval".into(),
                "must be at least 10ms".into(),
            );
        }
        errors
    }
}

impl Config {
    fn validate_subscriptions(
        &self,
        subscriptions: &[String],
        base: &str,
        err: &mut impl FnMut(String, String),
    ) {
        if subscriptions.is_empty() && self.subscription_id.is_none() {
            err(
                format!("{base}.subscriptions"),
                "list the subscription ids to read, or set the top-level subscriptionId".into(),
            );
        }
        for (i, id) in subscriptions.iter().enumerate() {
            if !is_guid(id) {
                err(
                    format!("{base}.subscriptions[{i}]"),
                    format!(
                        "{id:?} is not a subscription id (a GUID such as 3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f)"
                    ),
                );
            }
        }
        if let Some(id) = &self.subscription_id
            && !is_guid(id)
        {
            err(
                "subscriptionId".into(),
                format!("{id:?} is not a subscription id (a GUID)"),
            );
        }
    }

    /// The subscriptions a per-subscription source reads.
    pub fn subscriptions<'a>(&'a self, listed: &'a [String]) -> Vec<String> {
        if listed.is_empty() {
            self.subscription_id.iter().cloned().collect()
        } else {
            listed.to_vec()
        }
    }
}

/// `8-4-4-4-12` hexadecimal digits, the form of every Azure subscription, tenant and client id.
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn validate_simulate(sim: &SimulateConfig, err: &mut impl FnMut(String, String)) {
    if let Some(rate) = sim.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        err(
            "source.simulate.rate".into(),
            format!(
                "must be a positive number of events per second, got {rate}; omit it for no limit"
            ),
        );
    }
    let mix = &sim.mix;
    if mix.wad
        + mix.activity_log
        + mix.security_alert
        + mix.directory_audit
        + mix.diagnostic_log
        + mix.sign_in
        == 0
    {
        err(
            "source.simulate.mix".into(),
            "at least one weight must be above 0".into(),
        );
    }
}

fn validate_window(
    start_at: StartAt,
    late_arrival: Duration,
    base: &str,
    err: &mut impl FnMut(String, String),
) {
    if let StartAt::Time(t) = start_at
        && t > chrono::Utc::now()
    {
        err(
            format!("{base}.startAt"),
            format!(
                "{} is in the future; use Now to start from the first run",
                String::from(start_at)
            ),
        );
    }
    if late_arrival > Duration::from_secs(86_400) {
        err(
            format!("{base}.lateArrival"),
            "must be at most 24h; Azure indexes events within minutes".into(),
        );
    }
}

/// The storage account, endpoint and key or SAS every storage source names.
struct StorageFields<'a> {
    base: &'a str,
    account: &'a str,
    endpoint: Option<&'a str>,
    key_file: Option<&'a Path>,
    sas_file: Option<&'a Path>,
}

/// Whether files a config names must exist where it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Files {
    MustExist,
    /// Checked where the config is rendered, not where it runs.
    Elsewhere,
}

impl Files {
    fn missing(self, path: &Path) -> bool {
        self == Files::MustExist && !path.is_file()
    }
}

fn validate_storage(
    f: StorageFields<'_>,
    azure: Option<&AzureConfig>,
    files: Files,
    err: &mut impl FnMut(String, String),
) {
    let base = f.base;
    let valid_account = (3..=24).contains(&f.account.len())
        && f.account
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !valid_account {
        err(
            format!("{base}.account"),
            format!(
                "{:?} is not a storage account name (3 to 24 lowercase letters and digits)",
                f.account
            ),
        );
    }
    if let Some(endpoint) = f.endpoint {
        match reqwest::Url::parse(endpoint) {
            Ok(url) if url.scheme() == "https" => {}
            Ok(url)
                if url.scheme() == "http"
                    && matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) => {}
            Ok(_) => err(
                format!("{base}.endpoint"),
                format!(
                    "{endpoint:?} must be https:// (plain http only for an emulator on loopback)"
                ),
            ),
            Err(e) => err(
                format!("{base}.endpoint"),
                format!("{endpoint:?} is not a URL: {e}"),
            ),
        }
    }
    let has_credential = azure.is_some_and(|a| a.credential.is_some());
    match (f.key_file, f.sas_file) {
        (Some(_), Some(_)) => err(
            format!("{base}.sasTokenFile"),
            "set accountKeyFile or sasTokenFile, not both".into(),
        ),
        (None, None) if !has_credential => err(
            format!("{base}.accountKeyFile"),
            "set accountKeyFile or sasTokenFile, or an azure.credential with a Storage Data Reader role on the account".into(),
        ),
        _ => {}
    }
    for (field, file) in [("accountKeyFile", f.key_file), ("sasTokenFile", f.sas_file)] {
        if let Some(file) = file
            && files.missing(file)
        {
            err(
                format!("{base}.{field}"),
                format!(
                    "{} does not exist; mount the Secret holding it there",
                    file.display()
                ),
            );
        }
    }
}

fn validate_wad(
    c: &WadConfig,
    azure: Option<&AzureConfig>,
    files: Files,
    err: &mut impl FnMut(String, String),
) {
    let base = "source.wad";
    validate_storage(
        StorageFields {
            base,
            account: &c.account,
            endpoint: c.endpoint.as_deref(),
            key_file: c.account_key_file.as_deref(),
            sas_file: c.sas_token_file.as_deref(),
        },
        azure,
        files,
        err,
    );
    let valid_table = (3..=63).contains(&c.table.len())
        && c.table.bytes().all(|b| b.is_ascii_alphanumeric())
        && c.table
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic());
    if !valid_table {
        err(
            format!("{base}.table"),
            format!(
                "{:?} is not a table name (3 to 63 letters and digits, starting with a letter)",
                c.table
            ),
        );
    }
    validate_window(c.start_at, c.late_arrival, base, err);
    if !(1..=MAX_PARALLEL_QUERIES).contains(&c.parallel_queries) {
        err(
            format!("{base}.parallelQueries"),
            format!(
                "must be between 1 and {MAX_PARALLEL_QUERIES}, got {}",
                c.parallel_queries
            ),
        );
    }
}

fn validate_diagnostic_logs(
    c: &DiagnosticLogsConfig,
    azure: Option<&AzureConfig>,
    files: Files,
    err: &mut impl FnMut(String, String),
) {
    let base = "source.diagnosticLogs";
    validate_storage(
        StorageFields {
            base,
            account: &c.account,
            endpoint: c.endpoint.as_deref(),
            key_file: c.account_key_file.as_deref(),
            sas_file: c.sas_token_file.as_deref(),
        },
        azure,
        files,
        err,
    );
    for (i, category) in c.categories.iter().enumerate() {
        if category.is_empty()
            || !category
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            err(
                format!("{base}.categories[{i}]"),
                format!("{category:?} is not a log category name (AuditEvent, SignInLogs, …)"),
            );
        }
    }
    for (i, id) in c.subscriptions.iter().enumerate() {
        if !is_guid(id) {
            err(
                format!("{base}.subscriptions[{i}]"),
                format!("{id:?} is not a subscription id (a GUID)"),
            );
        }
    }
    if !c.resource_groups.is_empty() && c.subscriptions.is_empty() {
        err(
            format!("{base}.resourceGroups"),
            "list the subscriptions too: blob names start with the subscription".into(),
        );
    }
    if c.late_arrival > Duration::from_secs(7 * 86_400) {
        err(
            format!("{base}.lateArrival"),
            "must be at most 7d; Azure appends to an hour's blob for a few hours at most".into(),
        );
    }
    validate_window(c.start_at, Duration::ZERO, base, err);
}

fn validate_azure(azure: &AzureConfig, files: Files, err: &mut impl FnMut(String, String)) {
    let endpoints = [
        ("authorityHost", &azure.endpoints.authority_host),
        ("resourceManager", &azure.endpoints.resource_manager),
        ("graph", &azure.endpoints.graph),
    ];
    for (field, value) in endpoints {
        if let Some(url) = value {
            match reqwest::Url::parse(url) {
                Ok(parsed) if parsed.scheme() == "https" && parsed.host().is_some() => {}
                Ok(_) => err(
                    format!("azure.endpoints.{field}"),
                    format!("{url:?} must be an https:// URL: tokens are never sent in clear text"),
                ),
                Err(e) => err(
                    format!("azure.endpoints.{field}"),
                    format!("{url:?} is not a URL: {e}"),
                ),
            }
        }
    }
    if let Some(ca) = &azure.ca_file
        && files.missing(ca)
    {
        err(
            "azure.caFile".into(),
            format!("{} does not exist", ca.display()),
        );
    }
    let base = "azure.credential";
    match &azure.credential {
        None => {}
        Some(CredentialConfig::ClientSecret(c)) => {
            let base = format!("{base}.clientSecret");
            if !is_guid(&c.client_id) {
                err(
                    format!("{base}.clientId"),
                    format!(
                        "{:?} is not a client (application) id (a GUID)",
                        c.client_id
                    ),
                );
            }
            if !is_tenant(&c.tenant_id) {
                err(
                    format!("{base}.tenantId"),
                    format!(
                        "{:?} is not a tenant id (a GUID or a domain such as contoso.onmicrosoft.com)",
                        c.tenant_id
                    ),
                );
            }
            if files.missing(&c.secret_file) {
                err(
                    format!("{base}.secretFile"),
                    format!(
                        "{} does not exist; mount the Secret holding the client secret there",
                        c.secret_file.display()
                    ),
                );
            }
        }
        Some(CredentialConfig::WorkloadIdentity(c)) => {
            let base = format!("{base}.workloadIdentity");
            if let Some(id) = &c.client_id
                && !is_guid(id)
            {
                err(
                    format!("{base}.clientId"),
                    format!("{id:?} is not a client id (a GUID)"),
                );
            }
            if let Some(tenant) = &c.tenant_id
                && !is_tenant(tenant)
            {
                err(
                    format!("{base}.tenantId"),
                    format!("{tenant:?} is not a tenant id"),
                );
            }
        }
        Some(CredentialConfig::ManagedIdentity(c)) => {
            if let Some(id) = &c.client_id
                && !is_guid(id)
            {
                err(
                    format!("{base}.managedIdentity.clientId"),
                    format!("{id:?} is not a client id (a GUID)"),
                );
            }
        }
    }
}

fn is_tenant(text: &str) -> bool {
    is_guid(text)
        || (text.contains('.')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
}

fn format_name(format: JsonFormat) -> &'static str {
    match format {
        JsonFormat::Ndjson => "ndjson",
        JsonFormat::Jsonld => "jsonld",
    }
}

fn validate_syslog(
    c: &SyslogOutputConfig,
    base: &str,
    files: Files,
    err: &mut impl FnMut(String, String),
) {
    match split_host_port(&c.address) {
        Ok(_) => {}
        Err(why) => err(format!("{base}.address"), why),
    }
    if c.app_name.is_empty()
        || c.app_name.len() > 48
        || !c.app_name.bytes().all(|b| (33..=126).contains(&b))
    {
        err(
            format!("{base}.appName"),
            format!(
                "must be 1 to 48 printable ASCII characters without spaces (RFC 5424 APP-NAME), got {:?}",
                c.app_name
            ),
        );
    }
    if let Some(host) = &c.hostname
        && (host.is_empty() || host.len() > 255 || !host.bytes().all(|b| (33..=126).contains(&b)))
    {
        err(
            format!("{base}.hostname"),
            format!(
                "must be 1 to 255 printable ASCII characters without spaces (RFC 5424 HOSTNAME), got {host:?}"
            ),
        );
    }
    let sd = &c.structured_data_id;
    if sd.is_empty()
        || sd.len() > 32
        || !sd
            .bytes()
            .all(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'))
        || !sd.contains('@')
    {
        err(
            format!("{base}.structuredDataId"),
            format!(
                "must look like name@<private enterprise number>, at most 32 printable characters without = ] \" (RFC 5424 SD-ID), got {sd:?}"
            ),
        );
    }
    let max = c.effective_max_message_bytes();
    let (low, high) = match c.transport {
        Transport::Udp => (480, MAX_UDP_PAYLOAD),
        Transport::Tcp | Transport::Tls => (480, 64 * 1024 * 1024),
    };
    if !(low..=high).contains(&max) {
        err(
            format!("{base}.maxMessageBytes"),
            format!("must be between {low} and {high} for this transport, got {max}"),
        );
    }
    if c.transport == Transport::Udp && c.framing == Framing::Newline {
        err(
            format!("{base}.framing"),
            "applies to tcp and tls only; over udp every message is one datagram, remove it".into(),
        );
    }
    if c.tls.is_some() && c.transport != Transport::Tls {
        err(
            format!("{base}.tls"),
            "is set but transport is not tls; set transport: tls or remove the tls block".into(),
        );
    }
    if let Some(tls) = &c.tls {
        for (field, file) in [
            ("caFile", &tls.ca_file),
            ("certFile", &tls.cert_file),
            ("keyFile", &tls.key_file),
        ] {
            if let Some(path) = file
                && files.missing(path)
            {
                err(
                    format!("{base}.tls.{field}"),
                    format!("{} does not exist or is not a file", path.display()),
                );
            }
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            err(
                format!("{base}.tls"),
                "certFile and keyFile go together: set both for mutual TLS, or neither".into(),
            );
        }
    }
    if c.ack_timeout < Duration::from_millis(100) {
        err(
            format!("{base}.ackTimeout"),
            "must be at least 100ms".into(),
        );
    }
}

impl Config {
    /// The configuration with every default filled in, as YAML in the same shape users write.
    pub fn effective_yaml(&self) -> Result<String, String> {
        // Through a JSON value, so one-of choices come out as single-key maps rather than YAML tags.
        let value = serde_json::to_value(self).map_err(|e| e.to_string())?;
        serde_yaml::to_string(&value).map_err(|e| e.to_string())
    }
}

/// Reads any config fragment from YAML, with one-of choices written as single-key maps.
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let value: serde_json::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(value).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

/// Splits `host:port` (`[v6]:port` too) without resolving it.
pub fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let hint = "expected host:port, e.g. siem.example.com:6514 or [::1]:514";
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address:?} has no port; {hint}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{address:?} has no host; {hint}"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{port:?} is not a port between 1 and 65535; {hint}"))?;
    Ok((host.to_owned(), port))
}

/// serde's messages are accurate but terse; add what to do where we can.
fn explain_serde(message: &str) -> String {
    // serde_yaml appends " at line L column C"; the location is reported separately.
    let message = match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    if message.starts_with("unknown field") {
        format!("{message}; remove it or fix its spelling")
    } else if message.starts_with("unknown variant") {
        format!("{message}; pick one of those")
    } else if message.starts_with("missing field") {
        format!("{message}; it is required here")
    } else {
        message.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(yaml: &str) -> Vec<FieldError> {
        match Config::parse(yaml, "test.yaml") {
            Ok(_) => panic!("config should be rejected:\n{yaml}"),
            Err(e) => e.field_errors(),
        }
    }

    const MINIMAL: &str = "name: demo\nsource:\n  simulate: {}\noutputs:\n  - stdout: {}\n";

    #[test]
    fn a_minimal_config_gets_safe_defaults() {
        let config = Config::parse(MINIMAL, "t").expect("valid");
        assert_eq!(config.pipeline.batch_size, 500);
        assert_eq!(config.checkpoint.commit_interval, Duration::from_secs(5));
        assert_eq!(
            config.health.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
    }

    #[test]
    fn a_misspelt_field_is_rejected_with_its_path() {
        let yaml = "name: demo\nsource:\n  simulate: {}\noutputs:\n  - syslog:\n      address: h:514\n      trasnport: tcp\n";
        let errors = errors_of(yaml);
        assert_eq!(errors[0].path, "outputs[0].syslog.trasnport");
        assert!(
            errors[0].message.contains("unknown field `trasnport`"),
            "{}",
            errors[0].message
        );
        assert!(
            errors[0].message.contains("expected one of"),
            "lists allowed fields: {}",
            errors[0].message
        );
    }

    #[test]
    fn a_wrong_enum_value_lists_the_allowed_ones() {
        let yaml = "name: demo\nsource:\n  simulate: {}\noutputs:\n  - syslog:\n      address: h:514\n      transport: tcpp\n";
        let errors = errors_of(yaml);
        assert_eq!(errors[0].path, "outputs[0].syslog.transport");
        assert!(
            errors[0].message.contains("`udp`, `tcp`, `tls`"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn an_unknown_source_type_is_rejected() {
        let errors = errors_of("name: demo\nsource:\n  eventhub: {}\noutputs:\n  - stdout: {}\n");
        assert_eq!(errors[0].path, "source");
        assert!(
            errors[0].message.contains("simulate"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let errors = errors_of("name: demo\nsource:\n  simulate: {}\noutputs:\n  - file: {}\n");
        assert_eq!(errors[0].path, "outputs[0].file");
        assert!(
            errors[0].message.contains("missing field `directory`"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn a_wrong_type_is_named() {
        let errors = errors_of(
            "name: demo\nsource:\n  simulate:\n    count: lots\noutputs:\n  - stdout: {}\n",
        );
        assert_eq!(errors[0].path, "source.simulate.count");
        assert!(
            errors[0].message.contains("invalid type"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn a_bad_duration_is_named() {
        let errors = errors_of(
            "name: demo\nsource:\n  simulate: {}\noutputs:\n  - stdout: {}\ncheckpoint:\n  commitInterval: soon\n",
        );
        assert_eq!(errors[0].path, "checkpoint.commitInterval");
    }

    #[test]
    fn an_address_without_a_port_is_explained() {
        let errors = errors_of(
            "name: demo\nsource:\n  simulate: {}\noutputs:\n  - syslog:\n      address: siem.example.com\n",
        );
        assert_eq!(errors[0].path, "outputs[0].syslog.address");
        assert!(
            errors[0].message.contains("has no port"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let yaml = "name: ''\nsource:\n  simulate:\n    rate: -5\noutputs:\n  - syslog:\n      address: h:514\n      transport: udp\n      maxMessageBytes: 70000\n      appName: 'has space'\n      tls: {}\n  - stdout: {name: syslog-0}\npipeline:\n  batchSize: 0\n";
        let errors = errors_of(yaml);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "name",
            "source.simulate.rate",
            "outputs[0].syslog.appName",
            "outputs[0].syslog.maxMessageBytes",
            "outputs[0].syslog.tls",
            "outputs[1].stdout.name",
            "pipeline.batchSize",
        ] {
            assert!(paths.contains(&expected), "missing {expected} in {paths:?}");
        }
    }

    #[test]
    fn a_poll_interval_that_would_spin_or_overflow_is_refused() {
        for (interval, refused) in [
            ("0s", true),
            ("50ms", true),
            ("100ms", false),
            ("24h", false),
            ("25h", true),
            ("500000000years", true),
        ] {
            let yaml = format!(
                "name: demo\nsource:\n  simulate: {{}}\noutputs:\n  - stdout: {{}}\npipeline:\n  pollInterval: {interval}\n"
            );
            let errors = match Config::parse(&yaml, "t") {
                Ok(_) => Vec::new(),
                Err(e) => e.field_errors(),
            };
            assert_eq!(
                errors.iter().any(|e| e.path == "pipeline.pollInterval"),
                refused,
                "{interval}: {errors:?}"
            );
        }
    }

    #[test]
    fn tls_files_that_do_not_exist_are_named() {
        let yaml = "name: demo\nsource:\n  simulate: {}\noutputs:\n  - syslog:\n      address: h:6514\n      transport: tls\n      tls:\n        caFile: /nonexistent/ca.pem\n        certFile: /nonexistent/c.pem\n";
        let errors = errors_of(yaml);
        assert!(
            errors
                .iter()
                .any(|e| e.path == "outputs[0].syslog.tls.caFile"
                    && e.message.contains("/nonexistent/ca.pem"))
        );
        assert!(
            errors
                .iter()
                .any(|e| e.path == "outputs[0].syslog.tls" && e.message.contains("go together"))
        );
    }

    #[test]
    fn the_effective_config_parses_back_to_the_same_config() {
        let config = Config::parse(MINIMAL, "t").expect("valid");
        let yaml = config.effective_yaml().expect("yaml");
        assert!(
            yaml.contains("simulate:") && yaml.contains("commitInterval: 5s"),
            "{yaml}"
        );
        let again = Config::parse(&yaml, "effective").expect("the effective config is valid");
        assert_eq!(again.effective_yaml().expect("yaml"), yaml);
    }

    #[test]
    fn rest_sources_need_an_azure_block_and_real_ids() {
        let errors = errors_of(
            "name: demo\nsource:\n  activityLog:\n    subscriptions: [prod]\n    startAt: yesterday\noutputs:\n  - stdout: {}\n",
        );
        assert_eq!(errors[0].path, "source.activityLog.startAt");
        assert!(
            errors[0]
                .message
                .contains("Now, Earliest or an RFC 3339 time")
        );
        let errors = errors_of(
            "name: demo\nsource:\n  activityLog:\n    subscriptions: [prod]\noutputs:\n  - stdout: {}\n",
        );
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["source.activityLog.subscriptions[0]", "azure.credential"]
        );
        assert!(errors[1].message.contains("add an azure block"));
    }

    #[test]
    fn azure_endpoints_must_be_https_and_secrets_must_be_files() {
        let yaml = "name: demo\nsource:\n  securityAlerts: {}\nsubscriptionId: 089bd33f-d4ec-47fe-8ba5-0753aa5c5b33\nazure:\n  endpoints:\n    resourceManager: http://arm.example.com\n  credential:\n    clientSecret:\n      tenantId: contoso.onmicrosoft.com\n      clientId: not-a-guid\n      secretFile: /nonexistent/secret\noutputs:\n  - stdout: {}\n";
        let errors = errors_of(yaml);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "azure.endpoints.resourceManager",
                "azure.credential.clientSecret.clientId",
                "azure.credential.clientSecret.secretFile",
            ]
        );
        assert!(errors[0].message.contains("never sent in clear text"));
        assert!(errors[2].message.contains("mount the Secret"));
    }

    #[test]
    fn a_secret_written_inline_is_an_unknown_field() {
        let errors = errors_of(
            "name: demo\nsource:\n  entraAudit: {}\nazure:\n  credential:\n    clientSecret:\n      tenantId: contoso.onmicrosoft.com\n      clientId: 089bd33f-d4ec-47fe-8ba5-0753aa5c5b33\n      secret: hunter2\noutputs:\n  - stdout: {}\n",
        );
        assert_eq!(errors[0].path, "azure.credential.clientSecret.secret");
        assert!(!errors[0].message.contains("hunter2"));
    }

    #[test]
    fn an_empty_output_list_is_rejected() {
        let errors = errors_of("name: demo\nsource:\n  simulate: {}\noutputs: []\n");
        assert_eq!(errors[0].path, "outputs");
    }

    #[test]
    fn yaml_syntax_errors_carry_a_location() {
        match Config::parse("name: demo\nsource: [\n", "t") {
            Err(ConfigError::Parse {
                location: Some((line, _)),
                ..
            }) => assert!(line >= 2),
            other => panic!("expected a located parse error, got {other:?}"),
        }
    }
}
