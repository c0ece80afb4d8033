//! Reconcile cost at scale: N LogSources (500 by default) against the real control plane.
//!
//! 1. The operator creates every collector; wall time, reconciles and writes are reported.
//! 2. Every checkpoint ConfigMap is filled as a busy collector fills it (`checkpoint-bytes` of
//!    ids, 800,000 by default: the 50,000 ids collectors kept there before they moved to the
//!    state directory).
//! 3. A second operator starts on the converged cluster (what a restart or a leader change does):
//!    the API requests it causes, per LogSource, by verb, are read from the API server's own
//!    metrics, and its writes must be zero; its peak memory is reported.
//!
//!   e2e/scripts/bench-operator [count] [checkpoint-bytes]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use azlog_e2e::kube_cluster::{ADMIN_TOKEN, Cluster, OperatorProcess};
use azlog_operator::crd::LogSource;
use azlog_test_support::metrics;
use kube::api::{Api, ListParams, PostParams};

/// Reconciles that did their work (not those waiting for the watch caches).
const RECONCILES: &str = "azlog_operator_reconciles_total";
const OK: &[&str] = &["result=\"ok\""];

/// The operator with the RBAC of deploy/operator.yaml, as it runs in a cluster.
async fn start_operator(cluster: &Cluster, binary: &Path, dir: &Path) -> OperatorProcess {
    let token = cluster.operator_token().await;
    let args = [
        "--collector-image",
        "azlog/collector:bench",
        "--leader-election=false",
        "--log-level",
        "warn",
    ];
    OperatorProcess::start(cluster, binary, dir, &token, &args)
}

/// The API server's own /metrics.
async fn api_server_metrics(cluster: &Cluster) -> String {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let request = http
        .get(format!("{}/metrics", cluster.url))
        .bearer_auth(ADMIN_TOKEN);
    match request.send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Sums of the series of `name` whose labels match `filter`, keyed by `key_label`'s value.
fn series(
    body: &str,
    name: &str,
    key_label: &str,
    filter: impl Fn(&str) -> bool,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for sample in metrics::samples(body).filter(|s| s.name == name && filter(s.labels)) {
        let key = sample.label(key_label).unwrap_or("").to_owned();
        *out.entry(key).or_default() += sample.value;
    }
    out
}

/// Requests the API server served for the operator's resources, by verb (watches excluded).
async fn api_requests(cluster: &Cluster) -> BTreeMap<String, f64> {
    let body = api_server_metrics(cluster).await;
    let resources = [
        "logsources",
        "configmaps",
        "serviceaccounts",
        "deployments",
        "roles",
        "rolebindings",
        "secrets",
        "events",
    ];
    series(&body, "apiserver_request_total", "verb", |labels| {
        resources
            .iter()
            .any(|r| labels.contains(&format!("resource=\"{r}\"")))
            && !labels.contains("verb=\"WATCH\"")
    })
}

/// Writes `bytes` of ids into every checkpoint ConfigMap, as a collector that kept them there did.
async fn fill_checkpoints(client: &kube::Client, count: usize, bytes: usize) {
    if bytes == 0 {
        return;
    }
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    // Ids are hashes: incompressible.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let ids: Vec<u8> = (0..bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    for i in 0..count {
        let name = format!("azlog-source-{i}-checkpoint");
        let mut object = config_maps.get(&name).await.expect("checkpoint ConfigMap");
        object.binary_data = Some(BTreeMap::from([(
            "recent-ids".to_owned(),
            k8s_openapi::ByteString(ids.clone()),
        )]));
        config_maps
            .replace(&name, &PostParams::default(), &object)
            .await
            .expect("fill the checkpoint");
    }
    println!(
        "filled {count} checkpoint ConfigMaps with {bytes} bytes of ids each in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let checkpoint_bytes: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(800_000);
    let binary = PathBuf::from(
        std::env::var("AZLOG_OPERATOR_BIN").expect("AZLOG_OPERATOR_BIN: the operator binary"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path()).await;
    let client = cluster.client(ADMIN_TOKEN);
    let sources: Api<LogSource> = Api::namespaced(client.clone(), "default");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "default");

    let operator = start_operator(&cluster, &binary, dir.path()).await;
    let started = Instant::now();
    for i in 0..count {
        let source: LogSource = serde_json::from_value(serde_json::json!({
            "apiVersion": "azlog.io/v1alpha1", "kind": "LogSource",
            "metadata": {"name": format!("source-{i}")},
            "spec": {"simulate": {"rate": 1.0}, "outputs": [{"syslog": {"address": format!("siem-{}:514", i % 7)}}]},
        }))
        .expect("LogSource");
        sources
            .create(&PostParams::default(), &source)
            .await
            .expect("create");
    }
    let created = started.elapsed();
    loop {
        let with_status = sources
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter(|s| s.status.as_ref().is_some_and(|s| !s.conditions.is_empty()))
                    .count()
            })
            .unwrap_or(0);
        let deployed = deployments
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        if with_status == count && deployed == count {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "not converged after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let converged = started.elapsed();
    let body = operator.metrics().await.unwrap_or_default();
    let reconciles = metrics::sum(&body, RECONCILES, OK);
    let seconds = metrics::sum(&body, "azlog_operator_reconcile_duration_seconds_sum", &[]);
    let writes = series(&body, "azlog_operator_api_writes_total", "kind", |_| true);
    println!(
        "creating {count} LogSources: created in {:.1}s, all collectors and statuses in {:.1}s",
        created.as_secs_f64(),
        converged.as_secs_f64()
    );
    println!(
        "  {reconciles} reconciles, {:.2} ms each on average",
        seconds / reconciles.max(1.0) * 1000.0
    );
    println!("  writes by kind: {writes:?}");
    drop(operator);
    fill_checkpoints(&client, count, checkpoint_bytes).await;

    // Steady state: a fresh operator on the converged cluster reconciles everything once.
    let before = api_requests(&cluster).await;
    let operator = start_operator(&cluster, &binary, dir.path()).await;
    let started = Instant::now();
    let body = loop {
        let body = operator.metrics().await.unwrap_or_default();
        if metrics::sum(&body, RECONCILES, OK) >= count as f64 {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the restarted operator did not reconcile everything"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Let requests in flight land in the API server's counters.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = api_requests(&cluster).await;
    let reconciles = metrics::sum(&body, RECONCILES, OK);
    let seconds = metrics::sum(&body, "azlog_operator_reconcile_duration_seconds_sum", &[]);
    // A sum over no series starts at -0.0.
    let writes = metrics::sum(&body, "azlog_operator_api_writes_total", &[]) as u64;
    println!("steady state ({count} converged LogSources, a restarted operator):");
    println!(
        "  {reconciles} reconciles in {:.1}s, {:.2} ms each on average, {writes} writes",
        started.elapsed().as_secs_f64(),
        seconds / reconciles.max(1.0) * 1000.0
    );
    let mut total = 0.0;
    for (verb, n) in &after {
        let delta = n - before.get(verb).copied().unwrap_or(0.0);
        if delta > 0.0 {
            total += delta;
            println!(
                "  API {verb}: {delta} ({:.2} per LogSource)",
                delta / count as f64
            );
        }
    }
    println!(
        "  API requests per LogSource (watches excluded): {:.2}",
        total / count as f64
    );
    println!(
        "  operator peak RSS: {:.1} MiB",
        azlog_e2e::process_stats::peak_rss_mib(operator.pid())
    );
}
