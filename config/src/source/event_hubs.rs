//! `source.eventHubs`: records that diagnostic settings and Entra ID stream to an event hub.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Context, StartAt, validate_start};
use crate::path::{At, Problems};
use crate::sharing::SharingConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventHubsConfig {
    /// The Event Hubs namespace, `contoso` or `contoso.servicebus.windows.net`; the cloud gives the
    /// host suffix of a bare name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The namespace's AMQP endpoint instead, `amqps://host[:port]` (private endpoints, sovereign
    /// clouds, test services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The event hub the diagnostic settings stream to.
    pub hub: String,
    /// A consumer group of the hub kept for azlog: two readers of one group steal partitions from
    /// each other.
    #[serde(default = "default_consumer_group")]
    pub consumer_group: String,
    /// Where a partition is first read from: Now (only what arrives from the first start), Earliest
    /// (all the hub retains) or an RFC 3339 time (by enqueued time).
    #[serde(default)]
    pub start_at: StartAt,
    /// File holding a connection string of a shared access policy with Listen (a mounted Secret).
    /// Absent: the collector signs in with the `azure` credential (role Azure Event Hubs Data
    /// Receiver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string_file: Option<PathBuf>,
    /// Events each partition may have sent ahead of delivery. Memory holds at most this many per
    /// partition, and 32 more (an event is at most 1 MiB, usually a few KiB).
    #[serde(default = "default_prefetch")]
    pub prefetch: u32,
    /// Share the hub's partitions with the other collectors of a group through Kubernetes
    /// Leases; absent, this collector reads every partition. The operator sets it for a LogSource
    /// with more than one replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing: Option<SharingConfig>,
}

fn default_consumer_group() -> String {
    "$Default".to_owned()
}

fn default_prefetch() -> u32 {
    100
}

/// Event Hubs caps a namespace, event hub and consumer group name at these lengths.
const MAX_NAMESPACE: usize = 50;
const MAX_NAME: usize = 256;

impl EventHubsConfig {
    /// `hub`, read by the `$Default` consumer group from now on; the caller sets `namespace` or
    /// `endpoint`.
    pub fn new(hub: String) -> EventHubsConfig {
        EventHubsConfig {
            namespace: None,
            endpoint: None,
            hub,
            consumer_group: default_consumer_group(),
            start_at: StartAt::default(),
            connection_string_file: None,
            prefetch: default_prefetch(),
            sharing: None,
        }
    }

    pub(crate) fn validate(&self, at: &At, context: &Context<'_>, problems: &mut Problems) {
        match (&self.namespace, &self.endpoint) {
            (Some(_), Some(_)) => problems.add(
                at,
                "endpoint",
                "set namespace or endpoint, not both: the endpoint replaces the namespace's host",
            ),
            (None, None) => problems.add(
                at,
                "namespace",
                "name the Event Hubs namespace (contoso or contoso.servicebus.windows.net), or set endpoint",
            ),
            (Some(namespace), None) => {
                let name = namespace.split('.').next().unwrap_or_default();
                let valid = (6..=MAX_NAMESPACE).contains(&name.len())
                    && name.starts_with(|c: char| c.is_ascii_alphabetic())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && namespace.chars().all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
                if !valid {
                    problems.add(
                        at,
                        "namespace",
                        format!(
                            "{namespace:?} is not an Event Hubs namespace: 6 to 50 letters, digits and hyphens, starting with a letter"
                        ),
                    );
                }
            }
            (None, Some(endpoint)) => match url::Url::parse(endpoint) {
                Ok(url) if url.scheme() == "amqps" && url.host().is_some() => {
                    if !url.path().trim_matches('/').is_empty() {
                        problems.add(
                            at,
                            "endpoint",
                            format!(
                                "{endpoint:?} has a path; name the hub in hub, not in the endpoint"
                            ),
                        );
                    }
                }
                Ok(_) => problems.add(
                    at,
                    "endpoint",
                    format!(
                        "{endpoint:?} must be an amqps:// URL: tokens are never sent in clear text"
                    ),
                ),
                Err(e) => problems.add(at, "endpoint", format!("{endpoint:?} is not a URL: {e}")),
            },
        }
        for (field, name) in [("hub", &self.hub), ("consumerGroup", &self.consumer_group)] {
            if name.is_empty()
                || name.len() > MAX_NAME
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._$".contains(c))
            {
                problems.add(
                    at,
                    field,
                    format!("{name:?} is not an event hub name: letters, digits, '-', '.', '_'"),
                );
            }
        }
        validate_start(self.start_at, at, problems);
        if let Some(sharing) = &self.sharing {
            sharing.validate(&at.child("sharing"), problems);
        }
        if !(1..=10_000).contains(&self.prefetch) {
            problems.add(at, "prefetch", "must be between 1 and 10000");
        }
        match &self.connection_string_file {
            Some(file) if context.files.missing(file) => problems.add(
                at,
                "connectionStringFile",
                format!("{} does not exist", file.display()),
            ),
            Some(_) => {}
            None if !context.has_credential => problems.add(
                at,
                "connectionStringFile",
                "set a connection string file, or an azure credential with the Azure Event Hubs Data Receiver role",
            ),
            None => {}
        }
    }
}
