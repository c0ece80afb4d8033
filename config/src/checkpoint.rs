//! `checkpoint`: how often progress is committed, how many ids dedup remembers, and where the
//! checkpoint lives.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::path::{At, Problems};
use crate::pipeline::PipelineConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// How often delivered progress is written. Every commit is also forced once half of
    /// `pipeline.maxInFlightEvents` is waiting for one.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// The most event ids remembered to hide re-reads (about 50 bytes of memory each, 16 on disk
    /// in `stateDir`). An id is remembered for as long as the source may read its event again
    /// (its re-read span, e.g. `lateArrival` and a poll); should that hold more ids than this, the
    /// oldest are forgotten early and counted in `azlog_dedup_forgotten_early_total`.
    pub dedup_capacity: usize,
    /// Keep the checkpoint in a Kubernetes ConfigMap instead of `stateDir`, so the collector pod
    /// holds no state and can be rescheduled anywhere. The operator sets this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesCheckpointConfig>,
}

/// A checkpoint kept in a ConfigMap, and progress reported to the LogSource's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesCheckpointConfig {
    pub namespace: String,
    /// The ConfigMap holding the checkpoint; it must exist (the operator creates it).
    pub config_map: String,
    /// The LogSource whose status shows the collector's progress; absent means none is reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_source: Option<String>,
    /// A coordination.k8s.io Lease the collector must hold to read and write the checkpoint: a
    /// second collector on the same checkpoint (a drifted replica count, a debug run) waits
    /// instead of delivering the same events and taking turns with the cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// Progress is written to the LogSource status at most this often.
    #[serde(default = "default_status_interval", with = "humantime_serde")]
    pub status_interval: Duration,
}

fn default_status_interval() -> Duration {
    Duration::from_secs(30)
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            commit_interval: Duration::from_secs(5),
            dedup_capacity: 500_000,
            kubernetes: None,
        }
    }
}

impl KubernetesCheckpointConfig {
    /// The checkpoint in ConfigMap `config_map` of `namespace`, with no Lease and no LogSource.
    pub fn new(namespace: String, config_map: String) -> KubernetesCheckpointConfig {
        KubernetesCheckpointConfig {
            namespace,
            config_map,
            log_source: None,
            lease: None,
            status_interval: default_status_interval(),
        }
    }
}

impl CheckpointConfig {
    pub(crate) fn validate(&self, at: &At, pipeline: &PipelineConfig, problems: &mut Problems) {
        if self.dedup_capacity < pipeline.max_in_flight_events {
            problems.add(
                at,
                "dedupCapacity",
                format!(
                    "must be at least pipeline.maxInFlightEvents ({}) so a restart recognises everything it re-reads, got {}",
                    pipeline.max_in_flight_events, self.dedup_capacity
                ),
            );
        }
        if self.commit_interval < Duration::from_millis(10) {
            problems.add(at, "commitInterval", "must be at least 10ms");
        }
    }
}
