//! A whole collector process: metrics, health endpoints, the configured source and the pipeline.

use std::sync::Arc;

use tokio::sync::watch;

use crate::azure::AzureClient;
use crate::checkpoint::{ConfigMapStore, FileStore, Store};
use crate::config::{AlertChanges, Config, SourceConfig};
use crate::health;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineError, RunSummary};
use crate::source::activity_log::ActivityLog;
use crate::source::diagnostic_logs::DiagnosticLogs;
use crate::source::entra_audit::EntraAudit;
use crate::source::event_hubs::EventHubs;
use crate::source::event_hubs::sharing::Sharing;
use crate::source::listing::{Listed, Listing};
use crate::source::security_alerts::SecurityAlerts;
use crate::source::security_alerts::changes::ChangedAlerts;
use crate::source::simulate::Simulate;
use crate::source::wad::Wad;

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
    #[error("failed to set up Azure access: {0}")]
    Azure(String),
    #[error("failed to set up the checkpoint store: {0}")]
    Checkpoint(crate::checkpoint::CheckpointError),
    #[error(
        "source.eventHubs.sharing keeps its Leases in Kubernetes, which is not reachable: {0}; run in a pod or set KUBECONFIG"
    )]
    Sharing(String),
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
    let store = match &config.checkpoint.kubernetes {
        Some(kubernetes) => Store::ConfigMap(Box::new(
            ConfigMapStore::connect(
                kubernetes,
                &config.state_dir,
                metrics.clone(),
                shutdown.clone(),
            )
            .await
            .map_err(ServiceError::Checkpoint)?,
        )),
        None => Store::File(FileStore::new(config.state_dir.join("checkpoint.json"))),
    };
    tracing::info!(
        source = %config.name,
        checkpoint = %store.describe(),
        outputs = config.outputs.len(),
        "collector starting"
    );
    for (i, output) in config.outputs.iter().enumerate() {
        tracing::info!(output = %output.name(i), target = %output.target(), "output configured");
    }
    let batch_size = config.pipeline.batch_size;
    let poll = config.pipeline.poll_interval;
    let client = match &config.source {
        SourceConfig::Simulate(_) => None,
        _ => Some(Arc::new(
            AzureClient::new(config.azure.as_ref(), metrics.clone())
                .map_err(ServiceError::Azure)?,
        )),
    };
    let source_config = config.source.clone();
    let in_cluster = config.checkpoint.kubernetes.is_some();
    let mut stop = shutdown.clone();
    let subscriptions = |listed: &[String]| config.subscriptions(listed);
    let summary = match (source_config, client) {
        (SourceConfig::Simulate(sim), _) => {
            Pipeline::new(config, store, metrics)
                .run(|cursor| Simulate::new(sim, batch_size, cursor), shutdown)
                .await?
        }
        (SourceConfig::ActivityLog(c), Some(client)) => {
            let streams =
                ActivityLog::streams(&subscriptions(&c.subscriptions), &c.resource_groups);
            let listing = ActivityLog::new(&c, &client.endpoints().resource_manager, poll);
            run_listing(config, store, metrics, listing, client, streams, shutdown).await?
        }
        (SourceConfig::SecurityAlerts(c), Some(client)) => {
            let streams = subscriptions(&c.subscriptions);
            match c.changes {
                AlertChanges::ResourceGraph => {
                    tracing::info!(source = "securityAlerts", streams = ?streams, "reading; Resource Graph finds what changed");
                    Pipeline::new(config, store, metrics)
                        .run(
                            |cursor| {
                                ChangedAlerts::new(&c, client, streams, batch_size, poll, cursor)
                            },
                            shutdown,
                        )
                        .await?
                }
                AlertChanges::Relist => {
                    let listing =
                        SecurityAlerts::new(&c, &client.endpoints().resource_manager, poll);
                    run_listing(config, store, metrics, listing, client, streams, shutdown).await?
                }
            }
        }
        (SourceConfig::EntraAudit(c), Some(client)) => {
            let streams = EntraAudit::streams(&c);
            let listing = EntraAudit::new(&c, &client.endpoints().graph, poll);
            run_listing(config, store, metrics, listing, client, streams, shutdown).await?
        }
        (SourceConfig::Wad(c), Some(client)) => {
            tracing::info!(account = %c.account, table = %c.table, "reading");
            Pipeline::new(config, store, metrics)
                .run(
                    |cursor| Wad::new(&c, client, poll, batch_size, cursor),
                    shutdown,
                )
                .await?
        }
        (SourceConfig::DiagnosticLogs(c), Some(client)) => {
            tracing::info!(account = %c.account, "reading archived resource logs");
            Pipeline::new(config, store, metrics)
                .run(|cursor| DiagnosticLogs::new(&c, client, cursor), shutdown)
                .await?
        }
        (SourceConfig::EventHubs(c), Some(client)) => {
            let ca_file = config.azure.as_ref().and_then(|a| a.ca_file.clone());
            let pipeline = Pipeline::new(config, store, metrics);
            let sharing = match &c.sharing {
                Some(sharing) => {
                    let kube = kube::Client::try_default()
                        .await
                        .map_err(|e| ServiceError::Sharing(e.to_string()))?;
                    let identity = crate::lease::identity("azlog-collector");
                    tracing::info!(group = %sharing.group, identity = %identity, "sharing the hub's partitions through Leases");
                    Some(Sharing::new(kube, sharing, &identity, pipeline.committed()))
                }
                None => None,
            };
            let summary = pipeline
                .run(
                    |cursor| {
                        let ca = ca_file.as_deref();
                        EventHubs::new(&c, client, ca, batch_size, poll, sharing.as_ref(), cursor)
                    },
                    shutdown,
                )
                .await;
            if let Some(sharing) = &sharing {
                sharing.finish().await;
            }
            summary?
        }
        (source, None) => {
            return Err(ServiceError::Azure(format!(
                "the {} source needs an azure block",
                source.type_name()
            )));
        }
    };
    // In a pod, a collector whose source is done (a simulate count) stays up: exiting would have
    // the kubelet restart it again and again, with nothing left to read, as a crash loop.
    if in_cluster && !summary.undelivered && !*stop.borrow() {
        tracing::info!("the source has no more events; idle until the pod is stopped");
        let _ = stop.wait_for(|stopping| *stopping).await;
    }
    Ok(summary)
}

async fn run_listing<L: Listing>(
    config: Config,
    store: Store,
    metrics: Arc<Metrics>,
    listing: L,
    client: Arc<AzureClient>,
    streams: Vec<String>,
    shutdown: watch::Receiver<bool>,
) -> Result<RunSummary, ServiceError> {
    tracing::info!(source = L::KIND, streams = ?streams, "reading");
    let batch_size = config.pipeline.batch_size;
    Ok(Pipeline::new(config, store, metrics)
        .run(
            |cursor| Listed::new(listing, client, streams, batch_size, cursor),
            shutdown,
        )
        .await?)
}
