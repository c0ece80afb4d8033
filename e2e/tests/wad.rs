//! The `wad` source against Azurite, with rows written by Microsoft's Python SDK: late rows in old
//! partitions, a 100k-row table through kill -9, SAS tokens, and bad credentials, tables and rows.
// Runs Linux processes (receivers, signals, Kubernetes); the Windows build has its own smoke test.
#![cfg(unix)]

mod storage;

use std::collections::{BTreeMap, HashSet};

use azlog_e2e::azurite::{ACCOUNT, Azurite};
use azlog_e2e::wad_rows::{bucketed_partition, id, partition, row, row_in};
use azlog_test_support::collector::file_output_ids;
use azlog_test_support::http::http_get;
use azlog_test_support::metrics::metric;
use azlog_test_support::ports::free_port;
use azlog_test_support::wait::wait_until;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use storage::{Setup, WAIT, setup};

const TABLE: &str = "WADWindowsEventLogsTable";

impl Setup {
    /// A collector reading `table` with `auth` (YAML lines under `source.wad`).
    fn config(&self, table: &str, auth: &str, batch: usize) -> String {
        let dir = self.path().display();
        format!(
            "name: web\nsubscriptionId: 3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f\nsource:\n  wad:\n    account: {ACCOUNT}\n    table: {table}\n    endpoint: {endpoint}\n{auth}\n    startAt: Earliest\n    lateArrival: 1s\noutputs:\n  - file:\n      directory: {dir}/out\n      maxFileAge: 1s\nstateDir: {dir}/state\npipeline:\n  pollInterval: 200ms\n  batchSize: {batch}\n  maxInFlightEvents: {inflight}\ncheckpoint:\n  commitInterval: 100ms\nhealth:\n  listen: 127.0.0.1:{health}\n",
            endpoint = self.azurite.table_endpoint(),
            inflight = batch * 4,
            health = self.health,
        )
    }

    fn key_auth(&self) -> String {
        format!("    accountKeyFile: {}/account-key", self.path().display())
    }

    fn delivered(&self) -> Vec<String> {
        file_output_ids(&self.path().join("out"))
    }

    /// Every partition's rows were delivered in RowKey order, as the table holds them.
    fn assert_in_order_per_partition(&self) {
        let mut last: BTreeMap<String, String> = BTreeMap::new();
        for id in self.delivered() {
            let (pk, rk) = id.split_once('|').expect("pk|rk");
            if let Some(previous) = last.insert(pk.to_owned(), rk.to_owned()) {
                assert!(previous.as_str() < rk, "{pk}: {previous} came before {rk}");
            }
        }
    }

    fn readyz_failure(&self) -> String {
        wait_until(WAIT, "readyz to report the failure", || {
            let (status, body) = http_get(self.health, "/readyz");
            (status == 503).then_some(body)
        })
    }
}

#[test]
fn late_rows_in_an_old_partition_are_delivered_once() {
    late_rows_are_delivered_once(|minute, _| partition(minute));
}

#[test]
fn bucketed_partitions_of_one_minute_and_their_late_rows_are_delivered_once() {
    let s = late_rows_are_delivered_once(bucketed_partition);
    let delivered = s.delivered();
    for bucket in 0..4 {
        let prefix = format!("{bucket:019}___0");
        assert_eq!(
            delivered
                .iter()
                .filter(|id| id.starts_with(&prefix))
                .count(),
            if bucket < 2 { 18 } else { 17 },
            "rows of bucket {bucket}"
        );
    }
}

/// Rows of one old minute, then more rows of that minute uploaded after the collector passed it,
/// then one row uploaded twice: each delivered once. Answers the setup for further checks.
fn late_rows_are_delivered_once(partition_of: fn(DateTime<Utc>, u64) -> String) -> Setup {
    let s = setup();
    let minute = Utc::now() - TimeDelta::minutes(10);
    let row = |minute, n| row_in(partition_of(minute, n), minute, n);
    let first: Vec<Value> = (0..50).map(|n| row(minute, n)).collect();
    s.azurite.put_rows(TABLE, &first, &["EventTickCount"]);
    let mut expected: HashSet<String> = first.iter().map(id).collect();
    let collector = s.start(&s.config(TABLE, &s.key_auth(), 100));
    s.wait_for_exactly(&expected, "the first 50 rows");

    // The agent uploads more rows of that old minute after the collector has read past it.
    let passed = Utc::now();
    wait_until(WAIT, "the read position to pass the first upload", || {
        let cp = collector.checkpoint()?;
        let from = DateTime::parse_from_rfc3339(cp["cursor"]["from"].as_str()?).ok()?;
        (from > passed).then_some(())
    });
    let late: Vec<Value> = (50..70).map(|n| row(minute, n)).collect();
    s.azurite.put_rows(TABLE, &late, &["EventTickCount"]);
    expected.extend(late.iter().map(id));
    // A row uploaded twice (an agent retry) gets a new server Timestamp and is read again.
    s.azurite.put_rows(TABLE, &first[..1], &["EventTickCount"]);
    s.wait_for_exactly(&expected, "the late rows, once");
    wait_until(WAIT, "the re-uploaded row to be recognised", || {
        (metric(s.health, "azlog_events_duplicate_total", &[]) >= 1.0).then_some(())
    });
    // Every row carries the friendly name and subscription, and Int64 columns are numbers.
    let out = std::fs::read_dir(s.path().join("out/AzureVmDiagnosticsJson"))
        .expect("WAD folder")
        .flatten()
        .next()
        .expect("a file");
    let text = std::fs::read_to_string(out.path()).expect("read");
    let line: Value = serde_json::from_str(text.lines().next().expect("a line")).expect("JSON");
    assert_eq!(line["azlog"]["source"], "web");
    assert_eq!(
        line["azlog"]["subscriptionId"],
        "3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f"
    );
    assert!(line["EventTickCount"].is_i64(), "{line}");
    assert!(
        line["RawXml"]
            .as_str()
            .expect("RawXml")
            .starts_with("<Event")
    );
    drop(collector);
    s
}

#[test]
fn a_100k_row_table_is_read_completely_in_order_through_kill_9() {
    let s = setup();
    let start = Utc::now() - TimeDelta::hours(2);
    let mut expected = HashSet::new();
    let rows: Vec<Value> = (0..100_000u64)
        .map(|n| row(start + TimeDelta::minutes((n / 1000) as i64), n))
        .collect();
    expected.extend(rows.iter().map(id));
    s.azurite.put_rows(TABLE, &rows, &["EventTickCount"]);
    drop(rows);
    // Batches of 300 from pages of 1000: the kills land inside pages as well as between them.
    let mut collector = s.start(&s.config(TABLE, &s.key_auth(), 300));
    for threshold in [20_000, 60_000] {
        wait_until(WAIT, "part of the table delivered", || {
            (s.delivered().len() >= threshold).then_some(())
        });
        collector.signal(libc::SIGKILL);
        collector.wait(WAIT);
        collector.spawn();
    }
    s.wait_for_exactly(&expected, "all 100k rows, once each");
    s.assert_in_order_per_partition();
    collector.signal(libc::SIGTERM);
    assert!(collector.wait(WAIT).success());
}

#[test]
fn a_backlog_is_read_in_parallel_slices_delivered_once_in_order_through_kill_9() {
    let s = setup();
    let began = Utc::now() - TimeDelta::seconds(1);
    // Four uploads a second apart: the server's Timestamps span the backlog the slices divide.
    let mut expected = HashSet::new();
    for upload in 0..4u64 {
        let minute = Utc::now() - TimeDelta::minutes(30 - upload as i64);
        let rows: Vec<Value> = (upload * 3000..(upload + 1) * 3000)
            .map(|n| row(minute, n))
            .collect();
        s.azurite.put_rows(TABLE, &rows, &["EventTickCount"]);
        expected.extend(rows.iter().map(id));
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let config = s.config(TABLE, &s.key_auth(), 500).replace(
        "startAt: Earliest",
        &format!(
            "startAt: {}
    parallelQueries: 4",
            began.to_rfc3339()
        ),
    );
    let mut collector = s.start(&config);
    // Sampled while the backlog is read: how many slice queries ran at once.
    let mut most = 0.0f64;
    wait_until(WAIT, "part of the backlog delivered", || {
        most = most.max(metric(s.health, "azlog_source_queries_in_flight", &[]));
        (s.delivered().len() >= 3000).then_some(())
    });
    assert!(
        most >= 2.0,
        "the backlog was read by {most} queries at once, not in parallel"
    );
    collector.signal(libc::SIGKILL);
    collector.wait(WAIT);
    collector.spawn();
    s.wait_for_exactly(&expected, "all 12k rows, once each");
    s.assert_in_order_per_partition();
}

#[test]
fn a_sas_token_reads_and_a_missing_table_or_wrong_key_is_named_until_fixed() {
    let s = setup();
    // The table does not exist yet: TableNotFound, named, retried.
    s.azurite.create_table("Unrelated");
    let sas = s.azurite.sas(TABLE);
    std::fs::write(s.path().join("sas"), &sas).expect("sas");
    let auth = format!("    sasTokenFile: {}/sas", s.path().display());
    let _collector = s.start(&s.config(TABLE, &auth, 100));
    let body = s.readyz_failure();
    assert!(body.contains("TableNotFound"), "{body}");
    let rows: Vec<Value> = (0..30).map(|n| row(Utc::now(), n)).collect();
    s.azurite.put_rows(TABLE, &rows, &["EventTickCount"]);
    s.wait_for_exactly(&rows.iter().map(id).collect(), "rows once the table exists");

    // A wrong key is refused with the storage service's reason and what to check.
    let other = tempfile::tempdir().expect("tempdir");
    let bad = Setup {
        azurite: Azurite::start(other.path()),
        dir: other,
        health: free_port(),
    };
    bad.azurite.put_rows(TABLE, &rows, &["EventTickCount"]);
    std::fs::write(
        bad.path().join("account-key"),
        "bm90IHRoZSBrZXkgbm90IHRoZSBrZXkgbm90IHRoZSBrZXk=",
    )
    .expect("key");
    let collector = bad.start(&bad.config(TABLE, &bad.key_auth(), 100));
    let body = bad.readyz_failure();
    assert!(body.contains("403"), "{body}");
    assert!(body.contains("check the account key"), "{body}");
    assert!(
        metric(
            bad.health,
            "azlog_source_errors_total",
            &["category=\"forbidden\""]
        ) >= 1.0
    );
    assert!(bad.delivered().is_empty());
    assert!(
        !collector.log().contains("bm90IHRoZSBrZXk"),
        "the key never reaches the log"
    );
}

#[test]
fn rows_with_unexpected_types_are_dead_lettered_and_the_rest_delivered() {
    let s = setup();
    let minute = Utc::now() - TimeDelta::minutes(1);
    let mut rows: Vec<Value> = (0..20).map(|n| row(minute, n)).collect();
    rows[5]["EventId"] = json!("four thousand");
    rows[9]["PreciseTimeStamp"] = json!("not a time");
    rows[9].as_object_mut().expect("row").remove("TIMESTAMP");
    s.azurite.put_rows(TABLE, &rows, &["EventTickCount"]);
    let _collector = s.start(&s.config(TABLE, &s.key_auth(), 100));
    let expected: HashSet<String> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5 && *i != 9)
        .map(|(_, r)| id(r))
        .collect();
    s.wait_for_exactly(&expected, "the 18 well-formed rows");
    let dead = wait_until(WAIT, "two dead letters", || {
        let text = std::fs::read_to_string(s.path().join("state/dead-letter.ndjson")).ok()?;
        (text.lines().count() == 2).then_some(text)
    });
    assert!(dead.contains("four thousand"), "{dead}");
    assert!(dead.contains("not a time"), "{dead}");
}

#[test]
fn storage_throttling_is_retried_counted_and_loses_or_doubles_nothing() {
    use azlog_e2e::fault_proxy::{FaultProxy, StorageFault};
    let s = setup();
    let rows: Vec<Value> = (0..300)
        .map(|n| row(Utc::now() - TimeDelta::minutes(3), n))
        .collect();
    s.azurite.put_rows(TABLE, &rows, &["EventTickCount"]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], s.azurite.table_port));
    let proxy = runtime
        .block_on(FaultProxy::start(upstream))
        .expect("fault proxy");
    proxy.inject(&[
        StorageFault::ServerBusy,
        StorageFault::ServerBusy,
        StorageFault::OperationTimedOut,
        StorageFault::ServerBusy,
    ]);
    let yaml = s.config(TABLE, &s.key_auth(), 100).replace(
        &s.azurite.table_endpoint(),
        &format!("http://{}/{ACCOUNT}", proxy.address()),
    );
    let _collector = s.start(&yaml);
    s.wait_for_exactly(
        &rows.iter().map(id).collect(),
        "every row despite the throttling",
    );
    assert_eq!(proxy.answered(), 4);
    // Pages are as large as the service allows, whatever the batch size they are handed over in.
    let targets = proxy.targets();
    assert!(
        targets.iter().all(|t| t.contains("$top=1000")),
        "{targets:#?}"
    );
    assert_eq!(
        metric(
            s.health,
            "azlog_azure_throttled_total",
            &["api=\"tableStorage\""]
        ),
        4.0
    );
}

#[test]
fn an_entra_id_token_reads_the_table_when_no_key_is_given() {
    use azlog_e2e::fake_azure::{Api, FakeAzure};
    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CLIENT: &str = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c";
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Setup {
        azurite: Azurite::start_with_oauth(dir.path()),
        dir,
        health: free_port(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let entra = runtime.block_on(FakeAzure::start()).expect("fake Entra ID");
    entra.add_client_secret(TENANT, CLIENT, "s3cret-for-storage");
    std::fs::write(s.path().join("client-secret"), "s3cret-for-storage").expect("secret");
    // One file trusting both the token endpoint's CA and Azurite's.
    let azurite_ca = std::fs::read_to_string(s.azurite.ca_file().expect("https")).expect("ca");
    let bundle = s.path().join("ca-bundle.pem");
    std::fs::write(&bundle, format!("{}{azurite_ca}", entra.ca_pem())).expect("bundle");
    let rows: Vec<Value> = (0..40)
        .map(|n| row(Utc::now() - TimeDelta::minutes(2), n))
        .collect();
    s.azurite.put_rows(TABLE, &rows, &["EventTickCount"]);
    let yaml = format!(
        "{}azure:\n  endpoints:\n    authorityHost: {}\n  caFile: {}\n  credential:\n    clientSecret:\n      tenantId: {TENANT}\n      clientId: {CLIENT}\n      secretFile: {}/client-secret\n",
        s.config(
            TABLE,
            "    # no key or SAS: the azure credential's token",
            100
        ),
        entra.url(),
        bundle.display(),
        s.path().display(),
    );
    let _collector = s.start(&yaml);
    s.wait_for_exactly(
        &rows.iter().map(id).collect(),
        "every row, read with a bearer token",
    );
    assert!(
        entra.calls(Api::Token) >= 1,
        "the collector asked Entra ID for a token"
    );
}
