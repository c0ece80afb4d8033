//! The `azlog-operator` command.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use azlog_config::azure::EndpointOverrides;
use azlog_lease::LeaseLock;
use azlog_operator::authorization::controller::{AzureSettings, OperatorIdentity};
use azlog_operator::children::CollectorDefaults;
use azlog_operator::metrics::Metrics;
use azlog_operator::policy::Policy;
use clap::Parser;

/// Reconciles LogSource resources into collector Deployments, ConfigMaps and ServiceAccounts, and
/// SubscriptionAuthorization resources into Azure role assignments.
///
/// Connects with the in-cluster service account, or with $KUBECONFIG / ~/.kube/config elsewhere.
#[derive(Debug, Parser)]
#[command(name = "azlog-operator", version)]
struct Cli {
    /// The collector image LogSources run unless they name their own.
    #[arg(long, env = "AZLOG_COLLECTOR_IMAGE", default_value = concat!("ghcr.io/azlog-io/azlog-collector:", env!("CARGO_PKG_VERSION")))]
    collector_image: String,
    /// The Windows collector image, for LogSources with a windowsEventLog output.
    #[arg(long, env = "AZLOG_COLLECTOR_WINDOWS_IMAGE", default_value = concat!("ghcr.io/azlog-io/azlog-collector:", env!("CARGO_PKG_VERSION"), "-windows-ltsc2022"))]
    collector_windows_image: String,
    /// When the kubelet pulls the collector images (Always, IfNotPresent, Never); by default
    /// Kubernetes decides from the tag.
    #[arg(long, env = "AZLOG_COLLECTOR_IMAGE_PULL_POLICY", value_parser = ["Always", "IfNotPresent", "Never"])]
    collector_image_pull_policy: Option<String>,
    /// Images LogSources may run as forwarder sidecars: exact references, or prefixes ending in
    /// `*`. Repeat the flag, or separate with commas. By default none.
    #[arg(
        long = "allow-forwarder-image",
        env = "AZLOG_ALLOWED_FORWARDER_IMAGES",
        value_delimiter = ','
    )]
    forwarder_images: Vec<String>,
    /// Namespaces whose LogSources may run a Windows HostProcess collector (`*`: every one). By
    /// default none.
    #[arg(
        long = "allow-windows-namespace",
        env = "AZLOG_WINDOWS_NAMESPACES",
        value_delimiter = ','
    )]
    windows_namespaces: Vec<String>,
    /// Hosts endpoint overrides may name besides the cloud's own (exact, or `*.suffix`): the
    /// collector sends credentials there. By default none.
    #[arg(
        long = "allow-endpoint-host",
        env = "AZLOG_ALLOWED_ENDPOINT_HOSTS",
        value_delimiter = ','
    )]
    endpoint_hosts: Vec<String>,
    /// Let `spec.collector.image` replace the collector image.
    #[arg(long, env = "AZLOG_COLLECTOR_IMAGE_OVERRIDE", default_value_t = false, action = clap::ArgAction::Set)]
    allow_collector_image_override: bool,
    /// Watch only these namespaces (repeat the flag, or separate with commas), with Roles there
    /// and no cluster-wide rights; by default every namespace.
    #[arg(
        long = "namespace",
        env = "AZLOG_WATCH_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// Entra ID authority host SubscriptionAuthorizations sign in at, instead of their cloud's
    /// (a sovereign or private endpoint). The admin credentials go there.
    #[arg(long, env = "AZLOG_AZURE_AUTHORITY_HOST")]
    azure_authority_host: Option<String>,
    /// Azure Resource Manager endpoint instead of the cloud's.
    #[arg(long, env = "AZLOG_AZURE_RESOURCE_MANAGER")]
    azure_resource_manager: Option<String>,
    /// Microsoft Graph endpoint instead of the cloud's.
    #[arg(long, env = "AZLOG_AZURE_GRAPH")]
    azure_graph: Option<String>,
    /// Namespaces whose SubscriptionAuthorizations may leave out adminCredentialRef and act as
    /// the operator's own workload identity (`*`: every one). By default none.
    #[arg(
        long = "allow-operator-identity-namespace",
        env = "AZLOG_OPERATOR_IDENTITY_NAMESPACES",
        value_delimiter = ','
    )]
    operator_identity_namespaces: Vec<String>,
    /// PEM bundle of the CAs to trust for Azure's endpoints instead of the system's.
    #[arg(long, env = "AZLOG_AZURE_CA_FILE")]
    azure_ca_file: Option<std::path::PathBuf>,
    /// Address of /metrics and /healthz.
    #[arg(long, env = "AZLOG_METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    metrics_listen: SocketAddr,
    /// Elect a leader with a Lease so several replicas can run; only the leader reconciles.
    #[arg(long, env = "AZLOG_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "azlog-system")]
    lease_namespace: String,
    /// Log level or tracing filter.
    #[arg(long, env = "AZLOG_LOG", default_value = "info")]
    log_level: String,
    /// Log format on stderr: text, or json for a log pipeline.
    #[arg(long, env = "AZLOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal; a pod's log keeps plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    // kube and the Azure crates bring two rustls providers; the process must pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "failed to connect to the Kubernetes API; set KUBECONFIG or run in a cluster");
            return ExitCode::FAILURE;
        }
    };
    let http = match azlog_operator::authorization::azure::http_client(cli.azure_ca_file.as_deref())
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up calls to Azure; fix --azure-ca-file");
            return ExitCode::FAILURE;
        }
    };
    let metrics = match Metrics::new() {
        Ok(m) => Arc::new(m),
        Err(e) => {
            tracing::error!(error = %e, "failed to register metrics");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(cli.metrics_listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(address = %cli.metrics_listen, error = %e, "failed to listen for /metrics; choose another --metrics-listen");
            return ExitCode::FAILURE;
        }
    };
    tokio::spawn(serve(listener, metrics.clone()));

    let identity = azlog_lease::identity("azlog-operator");
    let lease = cli.leader_election.then(|| {
        LeaseLock::new(
            client.clone(),
            &cli.lease_namespace,
            "azlog-operator",
            &identity,
        )
    });
    if let Some(lease) = &lease {
        lease.acquire().await;
    }
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    if let Some(lease) = lease.clone() {
        tokio::spawn(async move {
            lease.hold().await;
            let _ = lost_tx.send(());
        });
    }
    let lease_lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lost_flag = lease_lost.clone();
    let shutdown = futures::FutureExt::shared(futures::FutureExt::boxed(async move {
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("shutting down"),
            Ok(()) = lost_rx => {
                lost_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::error!("lost leadership; stopping so that only the new leader reconciles");
            }
        }
    }));
    let watched = if cli.namespaces.is_empty() {
        "(all)".to_owned()
    } else {
        cli.namespaces.join(",")
    };
    tracing::info!(namespaces = %watched, image = %cli.collector_image, "reconciling LogSources and SubscriptionAuthorizations");
    let authorizations = azlog_operator::authorization::controller::run(
        client.clone(),
        cli.namespaces.clone(),
        AzureSettings {
            endpoints: EndpointOverrides {
                authority_host: cli.azure_authority_host,
                resource_manager: cli.azure_resource_manager,
                graph: cli.azure_graph,
            },
            http,
            operator_identity: OperatorIdentity::from_env(),
            operator_identity_namespaces: cli.operator_identity_namespaces,
        },
        metrics.clone(),
        shutdown.clone(),
    );
    let log_sources = azlog_operator::controller::run(
        client,
        cli.namespaces,
        CollectorDefaults {
            image: cli.collector_image,
            windows_image: cli.collector_windows_image,
            image_pull_policy: cli.collector_image_pull_policy,
        },
        Policy {
            forwarder_images: cli.forwarder_images,
            windows_namespaces: cli.windows_namespaces,
            endpoint_hosts: cli.endpoint_hosts,
            collector_image_override: cli.allow_collector_image_override,
        },
        metrics,
        shutdown,
    );
    tokio::join!(authorizations, log_sources);
    if lease_lost.load(std::sync::atomic::Ordering::SeqCst) {
        ExitCode::FAILURE
    } else {
        // A standby replica takes over now rather than when the Lease would have expired.
        if let Some(lease) = &lease {
            lease.release().await;
        }
        ExitCode::SUCCESS
    }
}

/// A request to stop: SIGTERM (what Kubernetes sends) or Ctrl-C. The operator runs on Linux; on
/// other systems (a developer's machine) Ctrl-C alone.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use axum::Router;
    use axum::routing::get;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the /metrics server stopped");
    }
}
