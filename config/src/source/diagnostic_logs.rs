//! `source.diagnosticLogs`: resource logs that diagnostic settings archive to a storage account.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::storage::StorageFields;
use super::{Context, StartAt, validate_window};
use crate::path::{At, Problems};
use crate::text::is_guid;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiagnosticLogsConfig {
    /// The storage account diagnostic settings archive to.
    pub account: String,
    /// Blob endpoint; absent means https://<account>.blob.<the cloud's storage suffix>. Plain http
    /// is accepted for an emulator on loopback only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// File holding the account key (a mounted Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key_file: Option<PathBuf>,
    /// File holding a SAS token with read and list permission on the containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default = "default_late_arrival", with = "humantime_serde")]
    pub late_arrival: Duration,
}

fn default_late_arrival() -> Duration {
    Duration::from_secs(2 * 3600)
}

impl DiagnosticLogsConfig {
    /// Every category of `account`, with no key or SAS.
    pub fn new(account: String) -> DiagnosticLogsConfig {
        DiagnosticLogsConfig {
            account,
            endpoint: None,
            account_key_file: None,
            sas_token_file: None,
            categories: Vec::new(),
            activity_logs: false,
            subscriptions: Vec::new(),
            resource_groups: Vec::new(),
            start_at: StartAt::default(),
            late_arrival: default_late_arrival(),
        }
    }

    pub(crate) fn validate(&self, at: &At, context: &Context<'_>, problems: &mut Problems) {
        StorageFields {
            account: &self.account,
            endpoint: self.endpoint.as_deref(),
            key_file: self.account_key_file.as_deref(),
            sas_file: self.sas_token_file.as_deref(),
        }
        .validate(at, context, problems);
        for (i, category) in self.categories.iter().enumerate() {
            if category.is_empty()
                || !category
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                problems.add(
                    at,
                    &format!("categories[{i}]"),
                    format!("{category:?} is not a log category name (AuditEvent, SignInLogs, …)"),
                );
            }
        }
        for (i, id) in self.subscriptions.iter().enumerate() {
            if !is_guid(id) {
                problems.add(
                    at,
                    &format!("subscriptions[{i}]"),
                    format!("{id:?} is not a subscription id (a GUID)"),
                );
            }
        }
        if !self.resource_groups.is_empty() && self.subscriptions.is_empty() {
            problems.add(
                at,
                "resourceGroups",
                "list the subscriptions too: blob names start with the subscription",
            );
        }
        if self.late_arrival > Duration::from_secs(7 * 86_400) {
            problems.add(
                at,
                "lateArrival",
                "must be at most 7d; Azure appends to an hour's blob for a few hours at most",
            );
        }
        validate_window(self.start_at, Duration::ZERO, at, problems);
    }
}
