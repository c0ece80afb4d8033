//! The normalised event every output consumes.
//!
//! An [`Event`] keeps the original Azure record byte-for-byte (compacted to one line) so JSON outputs
//! hand the SIEM exactly what Azure produced, and lifts out the handful of fields that line-oriented
//! formats (syslog headers, CEF, LEEF) need.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::json::RawJson;

/// Which Azure log family an event comes from. It picks the file output folder, the syslog MSGID and
/// the CEF/LEEF product name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    /// A row of a VM diagnostics (WAD) table, e.g. WADWindowsEventLogsTable.
    Wad,
    /// An Activity Log (ARM control plane) event.
    ActivityLog,
    /// A Microsoft Defender for Cloud security alert.
    SecurityAlert,
    /// An Entra ID (Azure AD) directory audit record.
    DirectoryAudit,
    /// A resource log record archived by a diagnostic setting.
    DiagnosticLog,
    /// An Entra ID sign-in record.
    SignIn,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Wad,
        EventKind::ActivityLog,
        EventKind::SecurityAlert,
        EventKind::DirectoryAudit,
        EventKind::DiagnosticLog,
        EventKind::SignIn,
    ];

    /// Position in [`EventKind::ALL`], for per-kind arrays.
    pub fn index(self) -> usize {
        // ALL lists the variants in declaration order; a test keeps the two in step.
        self as usize
    }

    /// The camelCase name used in configs, metrics and the `azlog.kind` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Wad => "wad",
            EventKind::ActivityLog => "activityLog",
            EventKind::SecurityAlert => "securityAlert",
            EventKind::DirectoryAudit => "directoryAudit",
            EventKind::DiagnosticLog => "diagnosticLog",
            EventKind::SignIn => "signIn",
        }
    }

    /// The syslog MSGID. These are the table names Microsoft Sentinel uses for the same data, so
    /// receiver-side routing rules read naturally.
    pub fn msgid(self) -> &'static str {
        match self {
            EventKind::Wad => "WindowsEvent",
            EventKind::ActivityLog => "AzureActivity",
            EventKind::SecurityAlert => "SecurityAlert",
            EventKind::DirectoryAudit => "AuditLogs",
            EventKind::DiagnosticLog => "AzureDiagnostics",
            EventKind::SignIn => "SigninLogs",
        }
    }

    /// The product name in CEF and LEEF headers.
    pub fn product(self) -> &'static str {
        match self {
            EventKind::Wad => "Azure VM Diagnostics",
            EventKind::ActivityLog => "Azure Activity Log",
            EventKind::SecurityAlert => "Microsoft Defender for Cloud",
            EventKind::DirectoryAudit => "Microsoft Entra ID",
            EventKind::DiagnosticLog => "Azure Resource Logs",
            EventKind::SignIn => "Microsoft Entra ID",
        }
    }

    /// The file output folder, named as azlog.exe named them where it had one.
    pub fn folder(self, json_ld: bool) -> &'static str {
        match (self, json_ld) {
            (EventKind::Wad, false) => "AzureVmDiagnosticsJson",
            (EventKind::Wad, true) => "AzureVmDiagnosticsJsonLD",
            (EventKind::ActivityLog, false) => "AzureResourceManagerJson",
            (EventKind::ActivityLog, true) => "AzureResourceManagerJsonLD",
            (EventKind::SecurityAlert, false) => "AzureSecurityCenterJson",
            (EventKind::SecurityAlert, true) => "AzureSecurityCenterJsonLD",
            (EventKind::DirectoryAudit, false) => "AzureActiveDirectoryJson",
            (EventKind::DirectoryAudit, true) => "AzureActiveDirectoryJsonLD",
            (EventKind::DiagnosticLog, false) => "AzureDiagnosticLogsJson",
            (EventKind::DiagnosticLog, true) => "AzureDiagnosticLogsJsonLD",
            // azlog.exe never read sign-ins; they get a folder of their own next to the audit logs.
            (EventKind::SignIn, false) => "AzureActiveDirectorySignInsJson",
            (EventKind::SignIn, true) => "AzureActiveDirectorySignInsJsonLD",
        }
    }

    /// The JSON-LD `@type` of an event of this kind.
    pub fn json_ld_type(self) -> &'static str {
        match self {
            EventKind::Wad => "WindowsEvent",
            EventKind::ActivityLog => "ActivityLogEvent",
            EventKind::SecurityAlert => "SecurityAlert",
            EventKind::DirectoryAudit => "DirectoryAudit",
            EventKind::DiagnosticLog => "ResourceLogRecord",
            EventKind::SignIn => "SignIn",
        }
    }
}

/// Severity on one scale for every source; each output maps it to its own scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Verbose,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Informational => "informational",
            Severity::Verbose => "verbose",
        }
    }

    /// RFC 5424 section 6.2.1 severity code.
    pub fn syslog_code(self) -> u8 {
        match self {
            Severity::Critical => 2,
            Severity::Error => 3,
            Severity::Warning => 4,
            Severity::Notice => 5,
            Severity::Informational => 6,
            Severity::Verbose => 7,
        }
    }

    /// CEF and LEEF severity, 0 (lowest) to 10.
    pub fn siem_score(self) -> u8 {
        match self {
            Severity::Critical => 10,
            Severity::Error => 8,
            Severity::Warning => 6,
            Severity::Notice => 4,
            Severity::Informational => 3,
            Severity::Verbose => 1,
        }
    }
}

/// One Azure log record, normalised.
#[derive(Debug, Clone)]
pub struct Event {
    /// The source's natural id (see DESIGN.md: WAD PartitionKey+RowKey, activity `eventDataId`, …).
    /// Dedup and the file output's crash recovery key on it.
    pub id: String,
    pub kind: EventKind,
    /// When the event happened, as Azure reports it.
    pub time: DateTime<Utc>,
    pub severity: Severity,
    /// The machine or service that produced the event (VM role instance, resource name, service).
    pub host: Option<String>,
    pub resource_id: Option<String>,
    pub subscription_id: Option<String>,
    /// Category as Azure names it (channel, Activity Log category, alert intent, audit category).
    pub category: Option<String>,
    /// A stable, short identifier of what happened: Windows EventID, operation name, alert type,
    /// audit activity. CEF signature id and LEEF event id.
    pub name: String,
    /// One-line human title (CEF name).
    pub title: String,
    /// Longer human description; read it with [`Event::message`].
    pub message: Message,
    /// Who did it (UPN, caller, account).
    pub actor: Option<String>,
    /// Where they did it from.
    pub client_ip: Option<String>,
    /// Success, Failure, …, as the source reports it.
    pub outcome: Option<String>,
    /// The friendly source name (azlog's `<name>` in `<name>.<subscriptionId>`).
    pub source_name: Arc<str>,
    /// The original record as one line of JSON, always an object.
    pub raw: RawJson,
}

/// Where an event's longer description is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    /// The content of a JSON string in the event's own `raw` record, escapes and all. Most outputs
    /// send the record itself and never show the description, so it is decoded only for one that
    /// does.
    InRaw(Range<usize>),
}

impl Default for Message {
    fn default() -> Self {
        Message::Text(String::new())
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::Text(text.to_owned())
    }
}

impl Event {
    /// The longer human description; may contain newlines. An escape in the record that names no
    /// character (a lone UTF-16 surrogate) shows as U+FFFD: the record itself keeps it as sent.
    pub fn message(&self) -> Cow<'_, str> {
        match &self.message {
            Message::Text(text) => Cow::Borrowed(text),
            Message::InRaw(range) => crate::json::unescape_lossy(&self.raw.get()[range.clone()]),
        }
    }

    /// What an output that carries only text shows: the description, or the title without one.
    pub fn text(&self) -> Cow<'_, str> {
        match self.message() {
            message if message.is_empty() => Cow::Borrowed(&self.title),
            message => message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_sits_at_its_own_index() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::ALL[kind.index()], kind);
        }
    }

    #[test]
    fn every_msgid_is_a_valid_rfc5424_msgid() {
        for kind in EventKind::ALL {
            let msgid = kind.msgid();
            assert!(!msgid.is_empty() && msgid.len() <= 32, "{msgid}");
            assert!(msgid.bytes().all(|b| (33..=126).contains(&b)), "{msgid}");
        }
    }
}
