//! `source.simulate`: realistic simulated Azure records; needs no Azure account.

use serde::{Deserialize, Serialize};

use crate::path::{At, Problems};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SimulateConfig {
    /// Events per second; absent means as fast as the outputs take them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Stop after this many events; absent means run forever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The same seed always yields the same events.
    pub seed: u64,
    /// Event time of the first record; later ones follow at the configured rate. Absent means the
    /// time of the first start (kept in the checkpoint). Fix it for reproducible output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<chrono::DateTime<chrono::Utc>>,
    /// The subscription id written into simulated records.
    pub subscription_id: String,
    pub mix: SimulateMix,
}

impl Default for SimulateConfig {
    fn default() -> Self {
        SimulateConfig {
            rate: None,
            count: None,
            seed: 1,
            start_time: None,
            subscription_id: "3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f".to_owned(),
            mix: SimulateMix::default(),
        }
    }
}

/// Relative weights of the simulated record kinds. A kind left out of a mix that is written has
/// weight 0; a config without a mix gets the default one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulateMix {
    #[serde(default)]
    pub wad: u32,
    #[serde(default)]
    pub activity_log: u32,
    #[serde(default)]
    pub security_alert: u32,
    #[serde(default)]
    pub directory_audit: u32,
    #[serde(default)]
    pub diagnostic_log: u32,
    #[serde(default)]
    pub sign_in: u32,
}

impl Default for SimulateMix {
    fn default() -> Self {
        SimulateMix {
            wad: 4,
            activity_log: 3,
            security_alert: 1,
            directory_audit: 2,
            diagnostic_log: 2,
            sign_in: 0,
        }
    }
}

impl SimulateConfig {
    pub(crate) fn validate(&self, at: &At, problems: &mut Problems) {
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            problems.add(
                at,
                "rate",
                format!(
                    "must be a positive number of events per second, got {rate}; omit it for no limit"
                ),
            );
        }
        let mix = &self.mix;
        if mix.wad
            + mix.activity_log
            + mix.security_alert
            + mix.directory_audit
            + mix.diagnostic_log
            + mix.sign_in
            == 0
        {
            problems.add(at, "mix", "at least one weight must be above 0");
        }
    }
}
