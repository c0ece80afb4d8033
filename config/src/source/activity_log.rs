//! `source.activityLog`: Activity Log events (the ARM control plane) of one or more subscriptions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Context, DEFAULT_LATE_ARRIVAL, StartAt, validate_window};
use crate::path::{At, Problems};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ActivityLogConfig {
    /// Subscription ids to read; each keeps its own position in the checkpoint. Empty means the
    /// top-level subscriptionId.
    pub subscriptions: Vec<String>,
    /// Read only these resource groups (one query each); empty means the whole subscription.
    pub resource_groups: Vec<String>,
    /// Deliver only these categories (Administrative, Security, Policy, …); empty means all.
    pub categories: Vec<String>,
    pub start_at: StartAt,
    /// How late Azure may index an event after its time (3 to 20 minutes for the Activity Log).
    /// Every window is read once more after this, so late events are delivered, once.
    #[serde(with = "humantime_serde")]
    pub late_arrival: Duration,
}

impl Default for ActivityLogConfig {
    fn default() -> Self {
        ActivityLogConfig {
            subscriptions: Vec::new(),
            resource_groups: Vec::new(),
            categories: Vec::new(),
            start_at: StartAt::default(),
            late_arrival: DEFAULT_LATE_ARRIVAL,
        }
    }
}

impl ActivityLogConfig {
    pub(crate) fn validate(&self, at: &At, context: &Context<'_>, problems: &mut Problems) {
        context.check_subscriptions(&self.subscriptions, at, problems);
        for (i, group) in self.resource_groups.iter().enumerate() {
            if group.is_empty() || group.contains(['\'', '/']) {
                problems.add(
                    at,
                    &format!("resourceGroups[{i}]"),
                    format!("{group:?} is not a resource group name"),
                );
            }
        }
        validate_window(self.start_at, self.late_arrival, at, problems);
    }
}
