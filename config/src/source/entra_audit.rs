//! `source.entraAudit`: the Entra ID (Azure AD) audit logs of the tenant.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DEFAULT_LATE_ARRIVAL, StartAt, validate_window};
use crate::path::{At, Problems};

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EntraAuditConfig {
    /// Which logs to read; each keeps its own position in the checkpoint.
    pub logs: Vec<EntraLog>,
    pub start_at: StartAt,
    /// How late Graph may index a record after its activity time (usually minutes).
    #[serde(with = "humantime_serde")]
    pub late_arrival: Duration,
}

impl Default for EntraAuditConfig {
    fn default() -> Self {
        EntraAuditConfig {
            logs: vec![EntraLog::DirectoryAudits],
            start_at: StartAt::default(),
            late_arrival: DEFAULT_LATE_ARRIVAL,
        }
    }
}

impl EntraAuditConfig {
    pub(crate) fn validate(&self, at: &At, problems: &mut Problems) {
        if self.logs.is_empty() {
            problems.add(at, "logs", "list at least one of directoryAudits, signIns");
        }
        validate_window(self.start_at, self.late_arrival, at, problems);
    }
}
