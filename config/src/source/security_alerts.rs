//! `source.securityAlerts`: Microsoft Defender for Cloud alerts of one or more subscriptions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Context, StartAt, validate_window};
use crate::path::{At, Problems};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SecurityAlertsConfig {
    /// Subscription ids to read; empty means the top-level subscriptionId.
    pub subscriptions: Vec<String>,
    /// Alerts generated before this are not delivered (the API cannot filter; azlog filters).
    pub start_at: StartAt,
    /// How alerts that are new or changed status are found between polls.
    pub changes: AlertChanges,
}

/// How the `securityAlerts` source finds what changed since its last poll. The alerts API cannot
/// filter, and an alert has no time of its last change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertChanges {
    /// Azure Resource Graph lists every alert's id and status across all the subscriptions (one
    /// request per 1,000 alerts); only alerts new or changed are read in full, by id. After a
    /// start, and whenever Resource Graph refuses, every subscription is listed once instead.
    #[default]
    ResourceGraph,
    /// Every poll lists every alert of every subscription; dedup hides what was delivered.
    Relist,
}

impl SecurityAlertsConfig {
    pub(crate) fn validate(&self, at: &At, context: &Context<'_>, problems: &mut Problems) {
        context.check_subscriptions(&self.subscriptions, at, problems);
        validate_window(self.start_at, Duration::ZERO, at, problems);
    }
}
