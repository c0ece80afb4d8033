//! `source.eventHubs.sharing`: several collectors dividing one source's parts (an event hub's
//! partitions) between them through Kubernetes Leases.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::path::{At, Problems};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SharingConfig {
    /// The namespace the Leases live in.
    pub namespace: String,
    /// Names the group: its Leases are `<group>-<partition>` and `<group>-member-<collector>`.
    /// Collectors of one group share the source; the operator uses the LogSource's name.
    pub group: String,
    /// How long a collector's Leases stand without renewal before the others take its partitions
    /// over. It renews them every third of this.
    #[serde(default = "default_lease_duration", with = "humantime_serde")]
    pub lease_duration: Duration,
}

fn default_lease_duration() -> Duration {
    Duration::from_secs(15)
}

impl SharingConfig {
    pub fn new(namespace: String, group: String) -> SharingConfig {
        SharingConfig {
            namespace,
            group,
            lease_duration: default_lease_duration(),
        }
    }

    pub(crate) fn validate(&self, at: &At, problems: &mut Problems) {
        let dns_label = |name: &str| {
            !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !name.starts_with('-')
                && !name.ends_with('-')
        };
        if !dns_label(&self.namespace) {
            problems.add(
                at,
                "namespace",
                format!("{:?} is not a namespace name", self.namespace),
            );
        }
        if !dns_label(&self.group) || self.group.len() > 40 {
            problems.add(
                at,
                "group",
                format!(
                    "{:?} must be at most 40 lowercase letters, digits and '-': it prefixes Lease names",
                    self.group
                ),
            );
        }
        if !(Duration::from_secs(3)..=Duration::from_secs(300)).contains(&self.lease_duration) {
            problems.add(at, "leaseDuration", "must be between 3s and 5m");
        }
    }
}
