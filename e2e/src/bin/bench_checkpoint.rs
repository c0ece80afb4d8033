//! What one LogSource's collector costs the API server: writes and bytes per minute to its
//! checkpoint ConfigMap, its Lease and its LogSource status, at idle (a WAD table in Azurite with no
//! rows), at 100 and at 2,000 events/s. Measured from the API server's side: a watch on each object
//! sees every revision etcd stores, and its size as the API server serves it.
//!
//!   e2e/scripts/bench-checkpoint [seconds]        (default 60 per rate)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use azlog_e2e::azurite::{ACCOUNT, Azurite, KEY};
use azlog_e2e::host_collector::{PodOnHost, syslog_counter};
use azlog_e2e::kube_cluster::{ADMIN_TOKEN, Cluster, OperatorProcess};
use azlog_e2e::log_source;
use azlog_operator::crd::LogSource;
use azlog_test_support::ports::free_port;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

const TABLE: &str = "WADWindowsEventLogsTable";

/// Revisions of one object seen during the measurement.
#[derive(Debug, Default, Clone, Copy)]
struct Writes {
    count: u64,
    bytes: u64,
    largest: u64,
}

/// Counts the revisions of object `name` until `until`.
async fn watch<K>(api: Api<K>, name: String, until: Instant) -> Writes
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    K: Send + 'static,
{
    let mut writes = Writes::default();
    let version = api
        .get(&name)
        .await
        .ok()
        .and_then(|o| o.meta().resource_version.clone())
        .unwrap_or_else(|| "0".into());
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    let Ok(stream) = api.watch(&params, &version).await else {
        return writes;
    };
    let mut stream = std::pin::pin!(stream);
    let deadline = tokio::time::Instant::from_std(until);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, stream.next()).await {
        if let Ok(WatchEvent::Modified(object) | WatchEvent::Added(object)) = event {
            let size = serde_json::to_vec(&object).map_or(0, |b| b.len() as u64);
            writes.count += 1;
            writes.bytes += size;
            writes.largest = writes.largest.max(size);
        }
    }
    writes
}

fn report(what: &str, writes: Writes, seconds: f64) {
    let per_minute = 60.0 / seconds;
    println!(
        "    {what:<10} {:>7.1} writes/min  {:>9.1} KiB/min  {:>7.2} KiB/s  largest {:>7.1} KiB",
        writes.count as f64 * per_minute,
        writes.bytes as f64 * per_minute / 1024.0,
        writes.bytes as f64 / seconds / 1024.0,
        writes.largest as f64 / 1024.0,
    );
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60);
    let binary = |var: &str| {
        PathBuf::from(std::env::var(var).unwrap_or_else(|_| panic!("{var}: the binary to run")))
    };
    let (operator_bin, collector_bin) =
        (binary("AZLOG_OPERATOR_BIN"), binary("AZLOG_COLLECTOR_BIN"));
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path()).await;
    let admin = cluster.client(ADMIN_TOKEN);
    let token = cluster.operator_token().await;
    let _operator = OperatorProcess::start(
        &cluster,
        &operator_bin,
        dir.path(),
        &token,
        &[
            "--collector-image",
            "azlog/collector:bench",
            "--leader-election=false",
        ],
    );
    let azurite = Azurite::start(dir.path());
    azurite.create_table(TABLE);
    let key_file = dir.path().join("account-key");
    std::fs::write(&key_file, KEY).expect("key");
    let port = free_port();
    let received = syslog_counter(port).await;
    let sources: Api<LogSource> = Api::namespaced(admin.clone(), "default");
    println!("one LogSource's writes to the API server, measured over {seconds}s per rate:");
    for (i, rate) in [None, Some(100.0), Some(2000.0)].into_iter().enumerate() {
        let name = format!("bench-{i}");
        let spec = json!({
            "simulate": {"rate": rate.unwrap_or(1.0), "seed": 1},
            "outputs": [{"syslog": {"address": format!("127.0.0.1:{port}"), "framing": "newline"}}],
        });
        sources
            .create(&PostParams::default(), &log_source(&name, spec))
            .await
            .expect("create the LogSource");
        let home = dir.path().join(&name);
        std::fs::create_dir_all(&home).expect("mkdir");
        let pod = PodOnHost::prepare(&cluster, &home, &name, |config| {
            if rate.is_none() {
                config["source"] = json!({"wad": {
                    "account": ACCOUNT, "table": TABLE, "endpoint": azurite.table_endpoint(),
                    "accountKeyFile": key_file.display().to_string(),
                }});
            }
        })
        .await;
        let mut collector = pod.run(&collector_bin);
        // Past the start: the Lease taken, the first commits and reports written.
        tokio::time::sleep(Duration::from_secs(15)).await;
        let before = received.load(std::sync::atomic::Ordering::SeqCst);
        let until = Instant::now() + Duration::from_secs(seconds);
        let child = format!("azlog-{name}");
        let (checkpoint, lease, status) = tokio::join!(
            watch(
                Api::<ConfigMap>::namespaced(admin.clone(), "default"),
                format!("{child}-checkpoint"),
                until
            ),
            watch(
                Api::<Lease>::namespaced(admin.clone(), "default"),
                child.clone(),
                until
            ),
            watch(sources.clone(), name.clone(), until),
        );
        let delivered = received.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert!(
            collector.try_wait().expect("wait").is_none(),
            "the collector exited; see {}",
            pod.log.display()
        );
        let _ = collector.kill();
        let _ = collector.wait();
        println!(
            "  {}: {:.0} events/s delivered",
            rate.map_or("idle".to_owned(), |r| format!("{r} events/s")),
            delivered as f64 / seconds as f64
        );
        report("checkpoint", checkpoint, seconds as f64);
        report("Lease", lease, seconds as f64);
        report("LogSource", status, seconds as f64);
        sources
            .delete(&name, &DeleteParams::default())
            .await
            .expect("delete");
    }
}
