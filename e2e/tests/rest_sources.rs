//! The REST sources (activityLog, securityAlerts, entraAudit) run as the real collector binary
//! against the fake Azure: paging, restarts, kill -9, late events, throttling, lost access and bad
//! pages. Every test asserts on what the file output holds.
// Runs Linux processes (receivers, signals, Kubernetes); the Windows build has its own smoke test.
#![cfg(unix)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use azlog_e2e::fake_azure::{Api, FakeAzure, Fault};
use azlog_test_support::collector::{Collector, file_output_ids};
use azlog_test_support::examples::first_record;
use azlog_test_support::http::{healthy, http_get};
use azlog_test_support::metrics::metric;
use azlog_test_support::ports::free_port;
use azlog_test_support::wait::wait_until;
use base64::Engine;
use chrono::{SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c";
const SECRET: &str = "not-a-real-secret";
const SUB_A: &str = "089bd33f-d4ec-47fe-8ba5-0753aa5c5b33";
const SUB_B: &str = "5a1e3c2d-0b9f-4e8d-a7c6-3b2a1f0e9d8c";
const WAIT: Duration = Duration::from_secs(60);

/// A fake Azure on its own runtime, and a scratch directory with its CA and the client secret.
struct Setup {
    azure: FakeAzure,
    dir: tempfile::TempDir,
    health: u16,
    _runtime: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    azlog_collector::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let azure = runtime.block_on(FakeAzure::start()).expect("fake Azure");
    azure.add_client_secret(TENANT, CLIENT, SECRET);
    for sub in [SUB_A, SUB_B] {
        azure.add_subscription(sub, TENANT);
        azure.grant_reader(CLIENT, sub);
    }
    azure.grant_directory_reader(CLIENT);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), azure.ca_pem()).expect("ca");
    std::fs::write(dir.path().join("client-secret"), format!("{SECRET}\n")).expect("secret");
    Setup {
        azure,
        dir,
        health: free_port(),
        _runtime: runtime,
    }
}

impl Setup {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn out(&self) -> PathBuf {
        self.path().join("out")
    }

    /// A collector config for `source` (YAML under `source:`) with `credential` (YAML under
    /// `azure.credential:`), writing NDJSON files.
    fn config_with(&self, source: &str, credential: &str) -> String {
        let url = self.azure.url();
        let dir = self.path().display();
        format!(
            "name: e2e\nsource:\n{source}\nazure:\n  endpoints:\n    authorityHost: {url}\n    resourceManager: {url}\n    graph: {url}\n  caFile: {dir}/ca.pem\n  credential:\n{credential}\noutputs:\n  - file:\n      directory: {dir}/out\n      maxFileAge: 1s\nstateDir: {dir}/state\npipeline:\n  pollInterval: 200ms\n  batchSize: 50\n  maxInFlightEvents: 200\ncheckpoint:\n  commitInterval: 100ms\nhealth:\n  listen: 127.0.0.1:{health}\n",
            health = self.health,
        )
    }

    fn config(&self, source: &str) -> String {
        let dir = self.path().display();
        self.config_with(
            source,
            &format!("    clientSecret:\n      tenantId: {TENANT}\n      clientId: {CLIENT}\n      secretFile: {dir}/client-secret"),
        )
    }

    fn start(&self, yaml: &str) -> Collector {
        let collector = Collector::start(self.path(), yaml);
        wait_until(WAIT, "the collector's health endpoint", || {
            healthy(self.health).then_some(())
        });
        collector
    }

    fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric(self.health, name, labels)
    }
}

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An Activity Log event shaped like the public example, with its own id and time.
fn activity(sub: &str, id: &str, time: chrono::DateTime<Utc>) -> Value {
    let mut event = first_record("activitylog_GetActivityLogsFiltered.json");
    event["eventDataId"] = json!(id);
    event["eventTimestamp"] = json!(iso(time));
    event["submissionTimestamp"] = json!(iso(time + TimeDelta::seconds(40)));
    event["subscriptionId"] = json!(sub);
    event["id"] = json!(format!(
        "/subscriptions/{sub}/resourceGroups/MSSupportGroup/providers/microsoft.support/supporttickets/1/events/{id}/ticks/1"
    ));
    event
}

fn alert(sub: &str, name: &str, time: chrono::DateTime<Utc>, status: &str) -> Value {
    let mut alert = first_record("security_GetAlertsSubscription_example.json");
    alert["name"] = json!(name);
    alert["id"] = json!(format!(
        "/subscriptions/{sub}/resourceGroups/myRg1/providers/Microsoft.Security/locations/westeurope/alerts/{name}"
    ));
    alert["properties"]["timeGeneratedUtc"] = json!(iso(time));
    alert["properties"]["startTimeUtc"] = json!(iso(time));
    alert["properties"]["status"] = json!(status);
    alert
}

fn directory_audit(id: &str, time: chrono::DateTime<Utc>) -> Value {
    let mut audit = first_record("graph_directoryAudits_list_example1.json");
    audit["id"] = json!(id);
    audit["activityDateTime"] = json!(iso(time));
    audit
}

fn sign_in(id: &str, time: chrono::DateTime<Utc>) -> Value {
    json!({
        "id": id, "createdDateTime": iso(time), "userPrincipalName": "alice@contoso.com",
        "appDisplayName": "Azure Portal", "ipAddress": "203.0.113.7", "clientAppUsed": "Browser",
        "riskLevelDuringSignIn": "none", "conditionalAccessStatus": "notApplied",
        "status": {"errorCode": 50126, "failureReason": "Invalid username or password."},
        "location": {"city": "Redmond", "countryOrRegion": "US"}
    })
}

fn wait_for_exactly(out: &Path, expected: &HashSet<String>, what: &str) {
    azlog_test_support::collector::wait_for_exactly(out, expected, WAIT, what);
}

fn activity_source(start: chrono::DateTime<Utc>, late: &str) -> String {
    format!(
        "  activityLog:\n    subscriptions: [{SUB_A}, {SUB_B}]\n    startAt: {}\n    lateArrival: {late}",
        start.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// Kills the collector with SIGKILL once more than `delivered` events are in the files, and starts
/// it again.
fn kill_once_some_are_delivered(s: &Setup, collector: &mut Collector, delivered: usize) {
    wait_until(WAIT, "some events delivered", || {
        (file_output_ids(&s.out()).len() > delivered).then_some(())
    });
    collector.signal(libc::SIGKILL);
    collector.wait(WAIT);
    collector.spawn();
}

/// Once `sub` was read fresh up to now, Azure indexes an event of two seconds ago: the settled
/// read of its window must deliver it, once.
fn deliver_late_event(s: &Setup, collector: &Collector, sub: &str, expected: &mut HashSet<String>) {
    wait_until(WAIT, "the fresh pass to reach now", || {
        let cp = collector.checkpoint()?;
        let fresh = cp["cursor"]["streams"][sub]["fresh"].as_str()?.to_owned();
        (chrono::DateTime::parse_from_rfc3339(&fresh).ok()? > Utc::now() - TimeDelta::seconds(1))
            .then_some(())
    });
    let id = format!("late-{sub}");
    s.azure
        .push_activity(sub, activity(sub, &id, Utc::now() - TimeDelta::seconds(2)));
    expected.insert(id);
    wait_for_exactly(&s.out(), expected, "the late event");
}

#[test]
fn activity_log_events_arrive_once_across_pages_subscriptions_and_kill_9() {
    let s = setup();
    s.azure.set_page_size(7);
    s.azure.set_duplicate_page_boundaries(true);
    let now = Utc::now();
    let mut expected = HashSet::new();
    for (i, sub) in [SUB_A, SUB_B].into_iter().enumerate() {
        for n in 0..400 {
            let id = format!("{i}-{n:04}");
            // Spread over the last 100 minutes: two one-hour windows of backlog per subscription.
            let time = now - TimeDelta::seconds(6000) + TimeDelta::seconds(n * 15);
            s.azure.push_activity(sub, activity(sub, &id, time));
            expected.insert(id);
        }
    }
    // Before the start: never delivered.
    s.azure
        .push_activity(SUB_A, activity(SUB_A, "too-old", now - TimeDelta::hours(3)));
    let yaml = s.config(&activity_source(now - TimeDelta::hours(2), "4s"));
    let mut collector = s.start(&yaml);
    for _ in 0..2 {
        kill_once_some_are_delivered(&s, &mut collector, 100);
    }
    wait_for_exactly(&s.out(), &expected, "all 800 events, once each");
    // Indexed after the collector read past its time: still delivered, once.
    deliver_late_event(&s, &collector, SUB_A, &mut expected);
    assert!(
        s.metric("azlog_events_duplicate_total", &[]) > 0.0,
        "re-reads were recognised"
    );

    let cp = collector.checkpoint().expect("checkpoint");
    let streams = cp["cursor"]["streams"].as_object().expect("streams");
    assert_eq!(streams.len(), 2, "one position per subscription: {cp}");
    collector.signal(libc::SIGTERM);
    assert!(collector.wait(WAIT).success());
}

#[test]
fn a_90_day_backfill_asks_few_queries_and_delivers_a_sparse_history_once_through_kill_9() {
    let s = setup();
    s.azure.set_page_size(20);
    let now = Utc::now();
    let mut expected = HashSet::new();
    for (i, sub) in [SUB_A, SUB_B].into_iter().enumerate() {
        // Far apart over 90 days, then a busy last 2 hours: 12 pages of 20 an hour.
        let old = [88, 61, 30, 9, 2].map(|days| now - TimeDelta::days(days));
        let recent = (0..480).map(|n| now - TimeDelta::seconds(7200 - n * 15));
        for (n, time) in old.into_iter().chain(recent).enumerate() {
            let id = format!("{i}-{n:04}");
            s.azure.push_activity(sub, activity(sub, &id, time));
            expected.insert(id);
        }
    }
    let source = format!(
        "  activityLog:\n    subscriptions: [{SUB_A}, {SUB_B}]\n    startAt: Earliest\n    lateArrival: 4s"
    );
    let mut collector = s.start(&s.config(&source));
    kill_once_some_are_delivered(&s, &mut collector, 300);
    wait_for_exactly(&s.out(), &expected, "the whole history, once");
    // Indexed late: delivered once by the settled read of its window.
    deliver_late_event(&s, &collector, SUB_B, &mut expected);

    // The backfill's requests: those for windows that began before the last 10 minutes (after
    // that, the count grows with every poll). Hour windows would have asked 2,160 queries a
    // subscription for 90 days. Wide windows cost one each, cutting one down to an hour costs a
    // few, each busy hour costs its 12 pages, and the kill -9 a re-read of the window it
    // interrupted.
    let backfill_start = (now - TimeDelta::minutes(10)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let backfill: Vec<_> = s
        .azure
        .served()
        .into_iter()
        .filter(|served| served.api == Api::ActivityLog)
        .filter(|served| {
            served
                .query
                .split_once("eventTimestamp ge '")
                .is_some_and(|(_, rest)| rest[..20] < *backfill_start)
        })
        .collect();
    // 59 a subscription when measured; 80 leaves room for where the kill lands.
    assert!(
        backfill.len() <= 2 * 80,
        "{} requests for 2 subscriptions",
        backfill.len()
    );
    collector.signal(libc::SIGTERM);
    assert!(collector.wait(WAIT).success());
}

#[test]
fn subscriptions_are_read_at_once_but_never_two_queries_of_one_subscription() {
    let s = setup();
    let subs: Vec<String> = (0..6)
        .map(|n| format!("00000000-0000-4000-8000-{n:012}"))
        .collect();
    for sub in &subs {
        s.azure.add_subscription(sub, TENANT);
        s.azure.grant_reader(CLIENT, sub);
    }
    // Answers take as long as over the internet, so requests overlap if they are sent together.
    s.azure.set_latency(Duration::from_millis(100));
    let source = format!(
        "  activityLog:\n    subscriptions: [{}]\n    resourceGroups: [web, data]\n    startAt: Earliest",
        subs.join(", ")
    );
    let _collector = s.start(&s.config(&source));
    wait_until(WAIT, "every subscription's backfill under way", || {
        let reached: HashSet<String> = s
            .azure
            .served()
            .into_iter()
            .filter_map(|served| served.subscription)
            .collect();
        (reached.len() == subs.len()).then_some(())
    });
    let (of_one, in_all) = s.azure.most_listings_in_flight();
    assert_eq!(of_one, 1, "two queries of one subscription at once");
    assert!(in_all >= 2, "subscriptions were read one at a time");
}

#[test]
fn throttling_and_server_errors_are_retried_honouring_retry_after() {
    let s = setup();
    s.azure.set_page_size(20);
    let now = Utc::now();
    let mut expected = HashSet::new();
    for n in 0..100 {
        let id = format!("t-{n}");
        s.azure.push_activity(
            SUB_A,
            activity(SUB_A, &id, now - TimeDelta::seconds(600 - n * 5)),
        );
        expected.insert(id);
    }
    for _ in 0..3 {
        s.azure.inject(
            Api::ActivityLog,
            Fault::Status {
                status: 429,
                retry_after: Some(2),
            },
        );
    }
    for status in [500, 502, 503] {
        s.azure.inject(
            Api::ActivityLog,
            Fault::Status {
                status,
                retry_after: None,
            },
        );
    }
    s.azure
        .inject(Api::ActivityLog, Fault::Delay(Duration::from_secs(2)));
    let yaml = s.config(&format!(
        "  activityLog:\n    subscriptions: [{SUB_A}]\n    startAt: {}\n    lateArrival: 1m",
        (now - TimeDelta::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true)
    ));
    let _collector = s.start(&yaml);
    wait_for_exactly(&s.out(), &expected, "every event despite 429s and 5xx");
    assert_eq!(
        s.metric("azlog_azure_throttled_total", &["api=\"activityLog\""]),
        3.0
    );
    assert_eq!(
        s.metric("azlog_source_errors_total", &["category=\"server_error\""]),
        3.0
    );
    // Retry-After: 2 was honoured: no request came sooner after a 429.
    let served: Vec<_> = s
        .azure
        .served()
        .into_iter()
        .filter(|r| r.api == Api::ActivityLog)
        .collect();
    for pair in served.windows(2) {
        if pair[0].status == 429 {
            let gap = pair[1].at - pair[0].at;
            assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
        }
    }
}

#[test]
fn lost_access_surfaces_as_an_error_and_a_metric_and_collection_resumes_when_it_returns() {
    let s = setup();
    let now = Utc::now();
    s.azure.push_activity(
        SUB_A,
        activity(SUB_A, "before", now - TimeDelta::seconds(30)),
    );
    let yaml = s.config(&format!(
        "  activityLog:\n    subscriptions: [{SUB_A}]\n    startAt: {}\n    lateArrival: 1m",
        (now - TimeDelta::minutes(5)).to_rfc3339_opts(SecondsFormat::Secs, true)
    ));
    let _collector = s.start(&yaml);
    let mut expected: HashSet<String> = ["before".to_owned()].into();
    wait_for_exactly(&s.out(), &expected, "the first event");

    // The role is removed: 403, named in /readyz with what to do, counted in a metric.
    s.azure.revoke_reader(CLIENT, SUB_A);
    let body = wait_until(WAIT, "readyz to report the 403", || {
        let (status, body) = http_get(s.health, "/readyz");
        (status == 503).then_some(body)
    });
    assert!(body.contains("403 AuthorizationFailed"), "{body}");
    assert!(body.contains("Reader role"), "{body}");
    assert!(s.metric("azlog_source_errors_total", &["category=\"forbidden\""]) >= 1.0);
    s.azure
        .push_activity(SUB_A, activity(SUB_A, "during", Utc::now()));
    s.azure.grant_reader(CLIENT, SUB_A);
    expected.insert("during".into());
    wait_for_exactly(
        &s.out(),
        &expected,
        "the event written while access was missing",
    );
    wait_until(WAIT, "readyz to recover", || {
        (http_get(s.health, "/readyz").0 == 200).then_some(())
    });

    // Every token is revoked: 401, and the collector fetches a new one by itself.
    s.azure.revoke_tokens();
    s.azure
        .push_activity(SUB_A, activity(SUB_A, "after", Utc::now()));
    expected.insert("after".into());
    wait_for_exactly(&s.out(), &expected, "the event after the token was revoked");
    assert!(s.metric("azlog_source_errors_total", &["category=\"unauthorized\""]) >= 1.0);
}

/// 31 alerts in two subscriptions read by a collector whose `securityAlerts` has `extra` (YAML
/// lines), until every one is delivered once.
fn alerts_delivered(extra: &str) -> (Setup, Collector, HashSet<String>) {
    let s = setup();
    let now = Utc::now();
    for n in 0..30 {
        s.azure.push_alert(
            SUB_A,
            alert(
                SUB_A,
                &format!("alert-{n}"),
                now - TimeDelta::minutes(n),
                "Active",
            ),
        );
    }
    s.azure
        .push_alert(SUB_B, alert(SUB_B, "b-alert", now, "Active"));
    s.azure.push_alert(
        SUB_A,
        alert(SUB_A, "ancient", now - TimeDelta::days(3), "Active"),
    );
    s.azure.set_page_size(8);
    let yaml = s.config(&format!(
        "  securityAlerts:\n    subscriptions: [{SUB_A}, {SUB_B}]\n    startAt: {}{extra}",
        (now - TimeDelta::days(1)).to_rfc3339_opts(SecondsFormat::Secs, true)
    ));
    let collector = s.start(&yaml);
    let expected: HashSet<String> = (0..30)
        .map(|n| format!("alert-{n}|Active"))
        .chain(["b-alert|Active".to_owned()])
        .collect();
    wait_for_exactly(&s.out(), &expected, "every alert once");
    (s, collector, expected)
}

#[test]
fn security_alert_status_changes_are_delivered_but_relists_are_not() {
    let (s, _collector, mut expected) = alerts_delivered("\n    changes: Relist");
    let lists = s.azure.calls(Api::SecurityAlerts);
    wait_until(WAIT, "several more listings", || {
        (s.azure.calls(Api::SecurityAlerts) > lists + 8).then_some(())
    });
    assert_eq!(s.azure.calls(Api::ResourceGraph), 0);
    s.azure.set_alert_status(SUB_A, "alert-3", "Resolved");
    expected.insert("alert-3|Resolved".into());
    wait_for_exactly(
        &s.out(),
        &expected,
        "the resolved alert as a new event, nothing else",
    );
}

#[test]
fn resource_graph_finds_alert_changes_and_only_changed_alerts_are_read_again() {
    let (s, mut collector, mut expected) = alerts_delivered("");
    // The first listing took 4 pages of 8 in one subscription and 1 in the other.
    let listed = s.azure.calls(Api::SecurityAlerts);
    wait_until(WAIT, "several polls of Resource Graph", || {
        (s.azure.calls(Api::ResourceGraph) >= 5).then_some(())
    });
    assert_eq!(
        s.azure.calls(Api::SecurityAlerts),
        listed,
        "alerts were listed again though none changed"
    );
    s.azure.set_alert_status(SUB_A, "alert-3", "Resolved");
    s.azure
        .push_alert(SUB_B, alert(SUB_B, "b-new", Utc::now(), "Active"));
    expected.extend(["alert-3|Resolved".to_owned(), "b-new|Active".to_owned()]);
    wait_for_exactly(&s.out(), &expected, "the change and the new alert, once");
    let polls = s.azure.calls(Api::ResourceGraph);
    wait_until(WAIT, "more polls", || {
        (s.azure.calls(Api::ResourceGraph) >= polls + 3).then_some(())
    });
    assert_eq!(
        s.azure.calls(Api::SecurityAlerts),
        listed + 2,
        "only the two changed alerts were read again"
    );

    // After a restart every subscription is listed once, in case something changed meanwhile.
    collector.signal(libc::SIGKILL);
    collector.wait(WAIT);
    s.azure.set_alert_status(SUB_A, "alert-7", "Dismissed");
    expected.insert("alert-7|Dismissed".into());
    collector.spawn();
    wait_for_exactly(
        &s.out(),
        &expected,
        "the change made while it was down, once",
    );

    // Resource Graph refusing (a cloud without it, a policy) goes back to listing.
    s.azure.inject(
        Api::ResourceGraph,
        Fault::Status {
            status: 400,
            retry_after: None,
        },
    );
    let lists = s.azure.calls(Api::SecurityAlerts);
    wait_until(WAIT, "a whole listing instead", || {
        (s.azure.calls(Api::SecurityAlerts) >= lists + 5).then_some(())
    });
    s.azure.set_alert_status(SUB_B, "b-alert", "Resolved");
    expected.insert("b-alert|Resolved".into());
    wait_for_exactly(&s.out(), &expected, "changes still delivered once");
}

#[test]
fn entra_audit_logs_and_sign_ins_arrive_once_with_workload_identity() {
    let s = setup();
    let subject = "system:serviceaccount:azlog:collector";
    let workload_client = "3c9d5e1f-7a2b-4c8d-9e0f-1a2b3c4d5e6f";
    s.azure
        .add_federated_identity(TENANT, workload_client, subject);
    s.azure.grant_directory_reader(workload_client);
    let claims = json!({"aud": ["api://AzureADTokenExchange"], "sub": subject, "iss": "https://kubernetes.default.svc"});
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!(
        "{}.{}.signature",
        b64(&json!({"alg": "RS256"})),
        b64(&claims)
    );
    std::fs::write(s.path().join("sa-token"), token).expect("token");
    s.azure.set_page_size(9);
    let now = Utc::now();
    let mut expected = HashSet::new();
    for n in 0..60 {
        let id = format!("audit-{n}");
        s.azure.push_directory_audit(directory_audit(
            &id,
            now - TimeDelta::seconds(3000 - n * 40),
        ));
        expected.insert(id);
        let id = format!("signin-{n}");
        s.azure
            .push_sign_in(sign_in(&id, now - TimeDelta::seconds(3000 - n * 40)));
        expected.insert(id);
    }
    // Graph throttles too: its Retry-After is honoured the same way.
    s.azure.inject(
        Api::SignIns,
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
    );
    let dir = s.path().display();
    let yaml = s.config_with(
        &format!(
            "  entraAudit:\n    logs: [directoryAudits, signIns]\n    startAt: {}\n    lateArrival: 3s",
            (now - TimeDelta::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        &format!("    workloadIdentity:\n      tenantId: {TENANT}\n      clientId: {workload_client}\n      tokenFile: {dir}/sa-token"),
    );
    let _collector = s.start(&yaml);
    wait_for_exactly(&s.out(), &expected, "every audit record and sign-in once");
    let sign_ins = file_output_ids(&s.out().join("AzureActiveDirectorySignInsJson"));
    assert_eq!(sign_ins.len(), 60, "sign-ins have their own folder");
    let audits = file_output_ids(&s.out().join("AzureActiveDirectoryJson"));
    assert_eq!(audits.len(), 60);
    assert_eq!(
        s.metric("azlog_azure_throttled_total", &["api=\"signIns\""]),
        1.0
    );
    // A late audit record is still delivered once.
    let late = "audit-late";
    s.azure
        .push_directory_audit(directory_audit(late, Utc::now() - TimeDelta::seconds(2)));
    expected.insert(late.into());
    wait_for_exactly(&s.out(), &expected, "the late audit record");
}

#[test]
fn malformed_pages_and_records_are_dead_lettered_and_nothing_is_lost() {
    let s = setup();
    let now = Utc::now();
    let mut expected = HashSet::new();
    // A huge page: 3000 events in one answer.
    s.azure.set_page_size(5000);
    for n in 0..3000 {
        let id = format!("h-{n}");
        s.azure.push_activity(
            SUB_A,
            activity(
                SUB_A,
                &id,
                now - TimeDelta::seconds(500) + TimeDelta::milliseconds(n * 100),
            ),
        );
        expected.insert(id);
    }
    // Records with missing fields and unexpected values.
    let mut no_id = activity(SUB_A, "x", now - TimeDelta::seconds(100));
    no_id.as_object_mut().expect("object").remove("eventDataId");
    s.azure.push_activity(SUB_A, no_id);
    let mut odd_level = activity(SUB_A, "odd-level", now - TimeDelta::seconds(90));
    odd_level["level"] = json!("Catastrophic");
    odd_level["status"] = json!({"value": "SomethingNew"});
    s.azure.push_activity(SUB_A, odd_level);
    expected.insert("odd-level".into());
    let mut numeric_id = activity(SUB_A, "numeric", now - TimeDelta::seconds(80));
    numeric_id["eventDataId"] = json!(1234567);
    s.azure.push_activity(SUB_A, numeric_id);
    // The first answer is not JSON three times in a row: dead-lettered once and asked for again
    // until it is.
    for _ in 0..3 {
        s.azure.inject(
            Api::ActivityLog,
            Fault::Body("{\"value\": [{\"eventDataId\": \"trunc".into()),
        );
    }
    let yaml = s.config(&format!(
        "  activityLog:\n    subscriptions: [{SUB_A}]\n    startAt: {}\n    lateArrival: 5s",
        (now - TimeDelta::minutes(10)).to_rfc3339_opts(SecondsFormat::Secs, true)
    ));
    let mut collector = s.start(&yaml);
    wait_for_exactly(&s.out(), &expected, "every well-formed event");
    let dead =
        std::fs::read_to_string(s.path().join("state/dead-letter.ndjson")).expect("dead letters");
    let lines: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letter JSON"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.to_string().contains("eventtypes/management/values")
                && l.to_string().contains("trunc")),
        "the malformed page is kept with its URL: {dead}"
    );
    assert!(
        lines.iter().any(|l| l.to_string().contains("eventDataId")),
        "{dead}"
    );
    assert!(
        lines.iter().any(|l| l.to_string().contains("1234567")),
        "{dead}"
    );
    wait_until(WAIT, "the dead letters counted", || {
        (s.metric("azlog_events_dead_lettered_total", &[]) >= 3.0).then_some(())
    });
    assert_eq!(
        s.metric(
            "azlog_source_errors_total",
            &["category=\"malformed_page\""]
        ),
        2.0
    );
    collector.signal(libc::SIGTERM);
    assert!(collector.wait(WAIT).success(), "{}", collector.log());
}

#[test]
fn a_wrong_secret_is_a_clear_error_naming_entra_s_reason() {
    let s = setup();
    std::fs::write(s.path().join("client-secret"), "wrong-secret-7d1f").expect("secret");
    let yaml = s.config(&format!("  activityLog:\n    subscriptions: [{SUB_A}]"));
    let collector = s.start(&yaml);
    let body = wait_until(WAIT, "readyz to report the credential error", || {
        let (status, body) = http_get(s.health, "/readyz");
        (status == 503).then_some(body)
    });
    assert!(body.contains("AADSTS7000215"), "{body}");
    assert!(s.metric("azlog_source_errors_total", &["category=\"credential\""]) >= 1.0);
    assert!(
        !collector.log().contains("wrong-secret-7d1f"),
        "the secret never reaches the log"
    );
}

#[test]
fn a_next_link_to_another_host_is_never_followed_and_the_listing_starts_over() {
    let s = setup();
    // Another server on this machine, as someone who could alter a page would name it.
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    other.set_nonblocking(true).expect("nonblocking");
    let port = other.local_addr().expect("address").port();
    let now = Utc::now();
    let mut expected = HashSet::new();
    for n in 0..20 {
        let id = format!("link-{n}");
        s.azure.push_activity(
            SUB_A,
            activity(
                SUB_A,
                &id,
                now - TimeDelta::seconds(300) + TimeDelta::seconds(n),
            ),
        );
        expected.insert(id);
    }
    let foreign = format!(
        "https://127.0.0.1:{port}/subscriptions/{SUB_A}/providers/microsoft.insights/eventtypes/management/values?api-version=2015-04-01&sig=leaked-sig-7c1e&$skiptoken=1"
    );
    for _ in 0..2 {
        s.azure.inject(
            Api::ActivityLog,
            Fault::Body(json!({"value": [], "nextLink": foreign}).to_string()),
        );
    }
    let yaml = s.config(&format!(
        "  activityLog:\n    subscriptions: [{SUB_A}]\n    startAt: {}\n    lateArrival: 5s",
        (now - TimeDelta::minutes(10)).to_rfc3339_opts(SecondsFormat::Secs, true)
    ));
    let mut collector = s.start(&yaml);
    let refused = wait_until(WAIT, "readyz to report the refused link", || {
        let (status, body) = http_get(s.health, "/readyz");
        (status == 503 && body.contains("nextLink")).then_some(body)
    });
    assert!(
        refused.contains(&format!("127.0.0.1:{port}")) && !refused.contains("leaked-sig-7c1e"),
        "/readyz names the link, redacted: {refused}"
    );
    wait_for_exactly(&s.out(), &expected, "every event, the listing started over");
    assert!(
        matches!(other.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the other host received a connection"
    );
    let dead =
        std::fs::read_to_string(s.path().join("state/dead-letter.ndjson")).expect("dead letters");
    assert!(
        dead.contains(&format!("127.0.0.1:{port}"))
            && dead.contains("sig=REDACTED")
            && !dead.contains("leaked-sig-7c1e"),
        "the refused link is dead-lettered once, redacted: {dead}"
    );
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(s.metric("azlog_source_errors_total", &["category=\"foreign_link\""]) >= 2.0);
    collector.signal(libc::SIGTERM);
    assert!(collector.wait(WAIT).success(), "{}", collector.log());
    assert!(
        !collector.log().contains("leaked-sig-7c1e"),
        "{}",
        collector.log()
    );
}
