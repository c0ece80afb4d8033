//! The collector's report to its LogSource: progress, and the failure it keeps retrying. The
//! collector writes it into the LogSource's status; the operator embeds the same type in the status
//! it declares, and reads it to set the `Collecting` and `Degraded` conditions.

use serde::{Deserialize, Serialize};

/// The API group of the LogSource resource.
pub const GROUP: &str = "azlog.io";
/// The version of the LogSource resource the collector reports to.
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "LogSource";
pub const PLURAL: &str = "logsources";

/// The status fields the collector owns.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectorReport {
    /// The time of the newest event delivered to every output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_time: Option<String>,
    /// Seconds between the newest event delivered and the last report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// Events delivered to every output since the source was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_delivered: Option<u64>,
    /// Records the collector could not read (malformed or unexpected Azure payloads), kept in its
    /// dead-letter file instead of delivered, since the source was created. The DeadLetters
    /// condition and a Warning Event tell when it grows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_lettered: Option<u64>,
    /// Event ids the collector forgot, since it started, before its source could read their events
    /// again (its dedup capacity is smaller than the source's re-read span needs): such a re-read
    /// is delivered twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_forgotten_early: Option<u64>,
    /// When the collector last committed its checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// What the collector is failing at right now, as it reported; absent while nothing fails. The
    /// Degraded condition repeats it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<CollectorError>,
}

/// A failure the collector keeps retrying. Nothing is lost meanwhile: the checkpoint waits.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectorError {
    /// The failing part: source (reading from Azure), output (delivering), checkpoint (saving
    /// progress) or collector (the collector itself).
    pub component: Component,
    /// The failing output's name, when the component is output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The error, as the collector logs it.
    pub message: String,
    /// When the failure began.
    pub since: String,
}

/// The part of the collector that fails.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Component {
    /// Reading from Azure.
    Source,
    /// Delivering to an output.
    Output,
    /// Saving progress.
    Checkpoint,
    /// The collector itself (it could not start its pipeline).
    Collector,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Source => "source",
            Component::Output => "output",
            Component::Checkpoint => "checkpoint",
            Component::Collector => "collector",
        }
    }
}
