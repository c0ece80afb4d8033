//! `health`: where the collector serves `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The port of the health endpoints, on the collector's own machine and in its pod alike.
pub const HEALTH_PORT: u16 = 9464;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoints; `null` turns them off.
    pub listen: Option<SocketAddr>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], HEALTH_PORT))),
        }
    }
}
