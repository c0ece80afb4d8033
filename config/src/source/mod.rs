//! The one source a collector reads, each kind in its own module.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::path::{At, Files, Problems};
use crate::text::is_guid;

pub mod activity_log;
pub mod diagnostic_logs;
pub mod entra_audit;
pub mod event_hubs;
pub mod security_alerts;
pub mod simulate;
pub mod storage;
pub mod wad;

use activity_log::ActivityLogConfig;
use diagnostic_logs::DiagnosticLogsConfig;
use entra_audit::EntraAuditConfig;
use event_hubs::EventHubsConfig;
use security_alerts::SecurityAlertsConfig;
use simulate::SimulateConfig;
use wad::WadConfig;

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
    /// Records that diagnostic settings and Entra ID stream to an event hub (Activity Log, resource
    /// logs, sign-ins, audit logs).
    EventHubs(EventHubsConfig),
}

impl SourceConfig {
    /// The kinds of source, as the config and the LogSource name them.
    pub const KINDS: [&str; 7] = [
        "wad",
        "diagnosticLogs",
        "eventHubs",
        "activityLog",
        "securityAlerts",
        "entraAudit",
        "simulate",
    ];

    /// Whether the source needs an Entra ID credential (the storage sources can use keys instead).
    pub fn needs_credential(&self) -> bool {
        matches!(
            self,
            SourceConfig::ActivityLog(_)
                | SourceConfig::SecurityAlerts(_)
                | SourceConfig::EntraAudit(_)
        )
    }

    /// The key under `source:`, one of [`SourceConfig::KINDS`].
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceConfig::Simulate(_) => "simulate",
            SourceConfig::ActivityLog(_) => "activityLog",
            SourceConfig::SecurityAlerts(_) => "securityAlerts",
            SourceConfig::EntraAudit(_) => "entraAudit",
            SourceConfig::Wad(_) => "wad",
            SourceConfig::DiagnosticLogs(_) => "diagnosticLogs",
            SourceConfig::EventHubs(_) => "eventHubs",
        }
    }

    pub(crate) fn validate(&self, at: &At, context: &Context<'_>, problems: &mut Problems) {
        match self {
            SourceConfig::Simulate(c) => c.validate(at, problems),
            SourceConfig::ActivityLog(c) => c.validate(at, context, problems),
            SourceConfig::SecurityAlerts(c) => c.validate(at, context, problems),
            SourceConfig::EntraAudit(c) => c.validate(at, problems),
            SourceConfig::Wad(c) => c.validate(at, context, problems),
            SourceConfig::DiagnosticLogs(c) => c.validate(at, context, problems),
            SourceConfig::EventHubs(c) => c.validate(at, context, problems),
        }
    }
}

/// What a source's checks need from the rest of the config.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    /// The top-level `subscriptionId`.
    pub subscription_id: Option<&'a str>,
    /// Where the top-level fields were written.
    pub top: &'a At,
    /// Whether the azure block has a credential.
    pub has_credential: bool,
    pub files: Files,
}

impl Context<'_> {
    /// Checks the subscriptions a per-subscription source reads: its own list, or the top-level
    /// `subscriptionId`.
    pub fn check_subscriptions(&self, listed: &[String], at: &At, problems: &mut Problems) {
        if listed.is_empty() && self.subscription_id.is_none() {
            problems.add(
                at,
                "subscriptions",
                "list the subscription ids to read, or set the top-level subscriptionId",
            );
        }
        for (i, id) in listed.iter().enumerate() {
            if !is_guid(id) {
                problems.add(
                    at,
                    &format!("subscriptions[{i}]"),
                    format!(
                        "{id:?} is not a subscription id (a GUID such as 3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f)"
                    ),
                );
            }
        }
        if let Some(id) = self.subscription_id
            && !is_guid(id)
        {
            problems.add(
                self.top,
                "subscriptionId",
                format!("{id:?} is not a subscription id (a GUID)"),
            );
        }
    }
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

/// How late Azure makes a record available, when a source does not say: 20 minutes.
const DEFAULT_LATE_ARRIVAL: Duration = Duration::from_secs(20 * 60);

/// Checks where a source starts and how late it waits for records.
fn validate_window(start_at: StartAt, late_arrival: Duration, at: &At, problems: &mut Problems) {
    validate_start(start_at, at, problems);
    if late_arrival > Duration::from_secs(86_400) {
        problems.add(
            at,
            "lateArrival",
            "must be at most 24h; Azure indexes events within minutes",
        );
    }
}

/// Checks where a source starts: not in the future.
fn validate_start(start_at: StartAt, at: &At, problems: &mut Problems) {
    if let StartAt::Time(t) = start_at
        && t > chrono::Utc::now()
    {
        problems.add(
            at,
            "startAt",
            format!(
                "{} is in the future; use Now to start from the first run",
                String::from(start_at)
            ),
        );
    }
}
