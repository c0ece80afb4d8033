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
}

impl SecurityAlertsConfig {
    pub(crate) fn validate(&self, at: &At, context: &Context<'_>, problems: &mut Problems) {
        context.check_subscriptions(&self.subscriptions, at, problems);
        validate_window(self.start_at, Duration::ZERO, at, problems);
    }
}
