//! `pipeline`: batch sizes, memory bounds and pacing of the collector's pipeline.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::path::{At, Problems};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Most records handed to the outputs at once. Not the page size asked of Azure: sources ask
    /// for the largest page each API allows and hand it over in batches of this size.
    pub batch_size: usize,
    /// Events dispatched but not yet checkpointed; the source waits beyond this. Bounds memory and
    /// how much is re-read after a crash.
    pub max_in_flight_events: usize,
    /// How long to wait when the source has nothing new.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// On SIGTERM, how long to wait for in-flight events to be delivered before exiting.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_size: 500,
            max_in_flight_events: 10_000,
            poll_interval: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// The bounds of `pipeline.pollInterval`: zero would poll Azure in a tight loop; a huge value
/// overflows the timer.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(86_400);

impl PipelineConfig {
    pub(crate) fn validate(&self, at: &At, problems: &mut Problems) {
        if self.poll_interval < MIN_POLL_INTERVAL || self.poll_interval > MAX_POLL_INTERVAL {
            problems.add(
                at,
                "pollInterval",
                format!(
                    "must be between {} and {}, got {}",
                    humantime::format_duration(MIN_POLL_INTERVAL),
                    humantime::format_duration(MAX_POLL_INTERVAL),
                    humantime::format_duration(self.poll_interval)
                ),
            );
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            problems.add(
                at,
                "batchSize",
                format!("must be between 1 and 100000, got {}", self.batch_size),
            );
        }
        if self.max_in_flight_events < self.batch_size {
            problems.add(
                at,
                "maxInFlightEvents",
                format!(
                    "must be at least pipeline.batchSize ({}), got {}",
                    self.batch_size, self.max_in_flight_events
                ),
            );
        }
    }
}
