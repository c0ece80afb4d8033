//! The `diagnosticLogs` source against Azurite, with blobs written by Microsoft's Python SDK: hourly
//! append blobs that keep growing, restarts, paged listings, bad lines and the old format.
// Runs Linux processes (receivers, signals, Kubernetes); the Windows build has its own smoke test.
#![cfg(unix)]

mod storage;

use std::collections::HashSet;

use azlog_e2e::azurite::ACCOUNT;
use azlog_test_support::metrics::metric;
use azlog_test_support::wait::wait_until;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::json;
use storage::{Setup, WAIT, setup};

const SUB: &str = "3F2C8A1E-5B7D-4C9A-8E6F-1A2B3C4D5E6F";
const AUDIT: &str = "insights-logs-auditevent";

/// The blob Azure Monitor appends a vault's records of `hour` to.
fn blob_name(vault: &str, hour: DateTime<Utc>) -> String {
    format!(
        "resourceId=/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/SECURITY/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/{vault}/y={}/m={}/d={}/h={}/m=00/PT1H.json",
        hour.format("%Y"),
        hour.format("%m"),
        hour.format("%d"),
        hour.format("%H")
    )
}

fn hour(hours_ago: i64) -> DateTime<Utc> {
    (Utc::now() - TimeDelta::hours(hours_ago))
        .duration_trunc(TimeDelta::hours(1))
        .expect("hour")
}

/// A Key Vault AuditEvent record as one JSON line.
fn record(vault: &str, n: usize, at: DateTime<Utc>) -> String {
    let line = json!({
        "time": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "resourceId": format!("/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/SECURITY/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/{vault}"),
        "operationName": "SecretGet", "operationVersion": "7.4", "category": "AuditEvent",
        "resultType": "Success", "resultSignature": "OK", "durationMs": "12",
        "callerIpAddress": "203.0.113.7", "correlationId": format!("{vault}-{n}"),
        "identity": {"claim": {"upn": "alice@contoso.com"}},
        "properties": {"id": format!("https://{vault}.vault.azure.net/secrets/db"), "httpStatusCode": 200}
    });
    format!("{line}\n")
}

/// Appended bytes and the ids azlog gives their lines (blob and byte offset).
struct Lines {
    data: String,
    ids: Vec<String>,
}

fn lines(container: &str, blob: &str, offset: usize, records: &[String]) -> Lines {
    let mut data = String::new();
    let mut ids = Vec::new();
    for r in records {
        ids.push(format!("{container}/{blob}@{}", offset + data.len()));
        data.push_str(r);
    }
    Lines { data, ids }
}

impl Setup {
    fn config(&self, extra: &str) -> String {
        let dir = self.path().display();
        format!(
            "name: vaults\nsource:\n  diagnosticLogs:\n    account: {ACCOUNT}\n    endpoint: {endpoint}\n    accountKeyFile: {dir}/account-key\n    startAt: Earliest\n{extra}outputs:\n  - file:\n      directory: {dir}/out\n      maxFileAge: 1s\nstateDir: {dir}/state\npipeline:\n  pollInterval: 300ms\n  batchSize: 200\n  maxInFlightEvents: 800\ncheckpoint:\n  commitInterval: 100ms\nhealth:\n  listen: 127.0.0.1:{health}\n",
            endpoint = self.azurite.blob_endpoint(),
            health = self.health,
        )
    }
}

#[test]
fn a_growing_hourly_blob_delivers_only_its_new_lines_across_kill_9() {
    let s = setup();
    let now_blob = blob_name("KV-PROD", hour(0));
    let old_blob = blob_name("KV-PROD", hour(5));
    let records = |from: usize, to: usize, at: DateTime<Utc>| -> Vec<String> {
        (from..to).map(|n| record("kv-prod", n, at)).collect()
    };
    let first = lines(AUDIT, &now_blob, 0, &records(0, 50, hour(0)));
    let old = lines(AUDIT, &old_blob, 0, &records(1000, 1040, hour(5)));
    let activity = lines(
        "insights-activity-logs",
        &format!("resourceId=/SUBSCRIPTIONS/{SUB}/y=2026/m=01/d=01/h=00/m=00/PT1H.json"),
        0,
        &[format!(
            "{}\n",
            json!({"time": "2026-01-01T00:10:00Z", "resourceId": format!("/SUBSCRIPTIONS/{SUB}"), "operationName": "MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE", "category": "Administrative", "resultType": "Success"})
        )],
    );
    s.azurite
        .append_blob(AUDIT, &now_blob, first.data.as_bytes());
    s.azurite.append_blob(AUDIT, &old_blob, old.data.as_bytes());
    s.azurite.append_blob(
        "insights-activity-logs",
        &format!("resourceId=/SUBSCRIPTIONS/{SUB}/y=2026/m=01/d=01/h=00/m=00/PT1H.json"),
        activity.data.as_bytes(),
    );
    let mut collector = s.start(&s.config("    activityLogs: true\n"));
    let mut expected: HashSet<String> = first
        .ids
        .iter()
        .chain(&old.ids)
        .chain(&activity.ids)
        .cloned()
        .collect();
    s.wait_for_exactly(&expected, "every line of every blob");

    // The hour's blob grows: only the new lines arrive.
    let second = lines(
        AUDIT,
        &now_blob,
        first.data.len(),
        &records(50, 80, hour(0)),
    );
    s.azurite
        .append_blob(AUDIT, &now_blob, second.data.as_bytes());
    expected.extend(second.ids.iter().cloned());
    s.wait_for_exactly(&expected, "the appended lines only");

    // Killed, and the blob grows while the collector is down.
    collector.signal(libc::SIGKILL);
    collector.wait(WAIT);
    let offset = first.data.len() + second.data.len();
    let third = lines(AUDIT, &now_blob, offset, &records(80, 100, hour(0)));
    s.azurite
        .append_blob(AUDIT, &now_blob, third.data.as_bytes());
    expected.extend(third.ids.iter().cloned());
    collector.spawn();
    s.wait_for_exactly(
        &expected,
        "the lines appended while the collector was down, once",
    );
    let offsets = stored_offsets(&s);
    assert!(
        offsets.keys().any(|k| k.contains(&now_blob)),
        "the open blob's offset is kept: {offsets:?}"
    );
    assert!(
        offsets.keys().all(|k| !k.contains(&old_blob)),
        "a final blob's offset is not kept: {offsets:?}"
    );
}

/// The offsets kept beside the checkpoint (`state/checkpoint.offsets`: JSON lines, the last for a
/// key winning, null forgetting it).
fn stored_offsets(s: &Setup) -> std::collections::BTreeMap<String, u64> {
    let text = std::fs::read_to_string(s.path().join("state/checkpoint.offsets")).expect("offsets");
    let mut live = std::collections::BTreeMap::new();
    for line in text.lines() {
        let (key, offset): (String, Option<u64>) = serde_json::from_str(line).expect("offset line");
        match offset {
            Some(offset) => live.insert(key, offset),
            None => live.remove(&key),
        };
    }
    live
}

#[test]
fn five_thousand_open_blobs_keep_the_checkpoint_small_and_a_restart_delivers_nothing_twice() {
    const BLOBS: usize = 5_000;
    let s = setup();
    let now = hour(0);
    let mut appends = Vec::new();
    let mut expected = HashSet::new();
    for i in 0..BLOBS {
        let blob = blob_name(&format!("KV-{i:04}"), now);
        let first = lines(AUDIT, &blob, 0, &[record(&format!("kv-{i:04}"), 0, now)]);
        expected.extend(first.ids);
        appends.push((AUDIT.to_owned(), blob, first.data));
    }
    s.azurite.append_blobs(&appends);
    let config = s.config("").replace("batchSize: 200", "batchSize: 500");
    let mut collector = s.start(&config);
    s.wait_for_exactly(&expected, "a line from each of 5,000 open blobs");
    wait_until(WAIT, "every offset committed", || {
        (stored_offsets(&s).len() == BLOBS).then_some(())
    });
    // What goes to the API server on Kubernetes: the cursor, not 5,000 offsets.
    let json = std::fs::read(s.path().join("state/checkpoint.json")).expect("checkpoint");
    assert!(json.len() < 2048, "{} bytes", json.len());

    // Killed, and a tenth of the blobs grow meanwhile: only their new lines come, once.
    collector.signal(libc::SIGKILL);
    collector.wait(WAIT);
    let mut grown = Vec::new();
    for (i, (container, blob, data)) in appends.iter().enumerate().step_by(10) {
        let more = lines(
            container,
            blob,
            data.len(),
            &[record(&format!("kv-{i:04}"), 1, now)],
        );
        expected.extend(more.ids);
        grown.push((container.clone(), blob.clone(), more.data));
    }
    s.azurite.append_blobs(&grown);
    collector.spawn();
    s.wait_for_exactly(&expected, "the 500 new lines, and nothing read again");
    assert_eq!(metric(s.health, "azlog_events_duplicate_total", &[]), 0.0);
}

#[test]
fn bad_lines_are_dead_lettered_with_blob_and_offset_and_the_old_format_is_read() {
    let s = setup();
    let blob = blob_name("KV-TEST", hour(6));
    let good = record("kv-test", 1, hour(6));
    let single_quotes = "{'time': '2026-11-22T00:00:00Z', 'category': 'AuditEvent'}\n";
    let raw_newline = "{\"time\":\"2026-11-22T00:00:00Z\",\"message\":\"first\nsecond\"}\n";
    let no_time = "{\"category\":\"AuditEvent\",\"operationName\":\"SecretGet\"}\n";
    let truncated = "{\"time\":\"2026-11-22T00:00:00Z\",\"resourceId\":\"/SUBSCRIPTIONS/X";
    let text = format!("{good}{single_quotes}{raw_newline}{good}{no_time}{truncated}");
    s.azurite.append_blob(AUDIT, &blob, text.as_bytes());
    let legacy = blob_name("KV-LEGACY", hour(30));
    let records: Vec<serde_json::Value> = (0..3)
        .map(|n| serde_json::from_str(&record("kv-legacy", n, hour(30))).expect("record"))
        .collect();
    s.azurite.put_blob(
        AUDIT,
        &legacy,
        json!({ "records": records }).to_string().as_bytes(),
    );
    let collector = s.start(&s.config(""));
    let second_good = good.len() + single_quotes.len() + raw_newline.len();
    let expected: HashSet<String> = [
        format!("{AUDIT}/{blob}@0"),
        format!("{AUDIT}/{blob}@{second_good}"),
        format!("{AUDIT}/{legacy}#0"),
        format!("{AUDIT}/{legacy}#1"),
        format!("{AUDIT}/{legacy}#2"),
    ]
    .into();
    s.wait_for_exactly(&expected, "the good lines and the old-format records");
    let dead = wait_until(WAIT, "five dead letters", || {
        let text = std::fs::read_to_string(s.path().join("state/dead-letter.ndjson")).ok()?;
        (text.lines().count() >= 5).then_some(text)
    });
    // Valid JSON the normaliser refuses keeps its blob and offset too.
    let no_time_at = second_good + good.len();
    assert!(
        dead.contains(&format!("{AUDIT}/{blob}@{no_time_at}")),
        "{dead}"
    );
    assert!(
        dead.contains(&format!("{AUDIT}/{blob}@{}", good.len())),
        "{dead}"
    );
    assert!(dead.contains("{'time'"), "{dead}");
    assert!(dead.contains("second"), "{dead}");
    assert!(
        dead.contains("RESOURCEGROUPS") || dead.contains("/SUBSCRIPTIONS/X"),
        "{dead}"
    );
    // The file is written before the counter moves.
    wait_until(WAIT, "the dead letters counted", || {
        (metric(s.health, "azlog_events_dead_lettered_total", &[]) >= 5.0).then_some(())
    });
    drop(collector);
}

#[test]
fn a_listing_of_many_blobs_is_followed_page_by_page() {
    let s = setup();
    let mut appends = Vec::new();
    let mut expected = HashSet::new();
    for v in 0..1100 {
        let vault = format!("KV-{v:04}");
        let blob = blob_name(&vault, hour(3));
        let l = lines(
            AUDIT,
            &blob,
            0,
            &[record(&vault.to_lowercase(), v, hour(3))],
        );
        expected.extend(l.ids);
        appends.push((AUDIT.to_owned(), blob, l.data));
    }
    s.azurite.append_blobs(&appends);
    let _collector = s.start(&s.config(
        "    categories: [AuditEvent]\n    subscriptions: [3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f]\n",
    ));
    s.wait_for_exactly(&expected, "a record from each of 1100 blobs");
}
