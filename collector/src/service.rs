//! A whole collector process: metrics, health endpoints, the configured source and the pipeline.

use std::sync::Arc;

use tokio::sync::watch;

use crate::checkpoint::FileStore;
use crate::config::{Config, SourceConfig};
use crate::health;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineError, RunSummary};
use crate::source::simulate::Simulate;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "failed to serve health endpoints on {address}: {source}; set health.listen to a free address or null"
    )]
    Health {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Runs the collector described by `config` until its source ends or `shutdown` turns true.
pub async fn run(
    config: Config,
    shutdown: watch::Receiver<bool>,
) -> Result<RunSummary, ServiceError> {
    let metrics = Arc::new(Metrics::new());
    if let Some(address) = config.health.listen {
        let bound = health::serve(address, metrics.clone())
            .await
            .map_err(|source| ServiceError::Health { address, source })?;
        tracing::info!(address = %bound, "serving /metrics, /healthz and /readyz");
    }
    let store = FileStore::new(config.state_dir.join("checkpoint.json"));
    tracing::info!(
        source = %config.name,
        checkpoint = %store.path().display(),
        outputs = config.outputs.len(),
        "collector starting"
    );
    for (i, output) in config.outputs.iter().enumerate() {
        tracing::info!(output = %output.name(i), target = %output.target(), "output configured");
    }
    let batch_size = config.pipeline.batch_size;
    let source_config = config.source.clone();
    let pipeline = Pipeline::new(config, store, metrics);
    let summary = match source_config {
        SourceConfig::Simulate(sim) => {
            pipeline
                .run(|cursor| Simulate::new(sim, batch_size, cursor), shutdown)
                .await?
        }
    };
    Ok(summary)
}
