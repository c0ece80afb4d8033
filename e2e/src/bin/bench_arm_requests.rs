//! What the REST sources cost in ARM requests, against the fake Azure with ARM's read throttling (a
//! bucket of 250 reads per subscription, 25 back a second) and a latency on every answer:
//!
//! - an Activity Log backfill from `startAt: Earliest`: requests and wall time until every
//!   subscription's reads reach the present, for an empty 90-day history on 1 and on 20
//!   subscriptions; then a history that is not empty (3,000 events over the last 4 hours on 2
//!   subscriptions, and events indexed late) must arrive whole and once;
//! - 300 Defender for Cloud alerts (in 10 subscriptions) polled every 10 s while one changes status every 10 s and a new
//!   one comes every 30 s: requests and alerts listed again (hidden by dedup) per poll, and every
//!   change delivered once.
//!
//! Loopback only; every process started here is stopped here.
//!
//!   e2e/scripts/bench-arm-requests [--latency-ms 50] [--collector PATH] [--subscriptions 1,20]
//!                                  [--alert-minutes 2] [--scenarios backfill,history,alerts]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use azlog_e2e::fake_azure::{Api, FakeAzure};
use azlog_test_support::collector::{file_output_ids, wait_for_exactly};
use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use clap::Parser;
use serde_json::{Value, json};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c";
const SECRET: &str = "bench-secret";
/// The longest a scenario may take before the bench gives up on it.
const LIMIT: Duration = Duration::from_secs(1800);

#[derive(Debug, Parser)]
struct Args {
    /// How long every answer of the fake takes, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// The collector binary to measure (another build, to compare).
    #[arg(long)]
    collector: PathBuf,
    /// Subscription counts of the empty backfills.
    #[arg(long, value_delimiter = ',', default_value = "1,20")]
    subscriptions: Vec<usize>,
    /// How long alerts are polled for changes.
    #[arg(long, default_value_t = 2)]
    alert_minutes: u64,
    /// How many subscriptions the 300 alerts are spread over.
    #[arg(long, default_value_t = 10)]
    alert_subscriptions: usize,
    /// Which scenarios to run: backfill, history, alerts.
    #[arg(long, value_delimiter = ',', default_value = "backfill,history,alerts")]
    scenarios: Vec<String>,
}

/// The collector as a child process, stopped when dropped.
struct Running {
    child: Child,
    started: Instant,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// CPU seconds the collector used so far.
    fn cpu(&self) -> f64 {
        azlog_e2e::process_stats::cpu_seconds(self.child.id())
    }
}

fn subscription_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn activity(sub: &str, id: &str, time: DateTime<Utc>) -> Value {
    json!({
        "eventDataId": id,
        "eventTimestamp": iso(time),
        "submissionTimestamp": iso(time + TimeDelta::seconds(40)),
        "subscriptionId": sub,
        "id": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/events/{id}/ticks/1"),
        "operationName": {"value": "Microsoft.Compute/virtualMachines/write", "localizedValue": "Create or Update Virtual Machine"},
        "category": {"value": "Administrative", "localizedValue": "Administrative"},
        "level": "Informational",
        "caller": "admin@contoso.com",
        "resourceGroupName": "rg",
        "resourceId": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"),
        "status": {"value": "Succeeded", "localizedValue": "Succeeded"},
    })
}

/// A fake Azure with `count` subscriptions the collector's identity reads.
async fn fake(count: usize, latency: Duration) -> (FakeAzure, Vec<String>) {
    let azure = FakeAzure::start().await.expect("fake Azure");
    azure.add_client_secret(TENANT, CLIENT, SECRET);
    let subs: Vec<String> = (0..count).map(subscription_id).collect();
    for sub in &subs {
        azure.add_subscription(sub, TENANT);
        azure.grant_reader(CLIENT, sub);
    }
    azure.set_latency(latency);
    (azure, subs)
}

fn start(
    collector: &Path,
    dir: &Path,
    azure: &FakeAzure,
    subs: &[String],
    tuning: &str,
) -> Running {
    let source = format!(
        "  activityLog:\n    subscriptions: [{}]\n    startAt: Earliest\n{tuning}",
        subs.join(", ")
    );
    start_source(collector, dir, azure, &source, "{listen: null}")
}

/// Starts the collector on `source` (YAML under `source:`, and what follows it) with `health`.
fn start_source(
    collector: &Path,
    dir: &Path,
    azure: &FakeAzure,
    source: &str,
    health: &str,
) -> Running {
    std::fs::write(dir.join("ca.pem"), azure.ca_pem()).expect("ca");
    std::fs::write(dir.join("secret"), SECRET).expect("secret");
    let url = azure.url();
    let d = dir.display();
    let yaml = format!(
        "name: bench\nsource:\n{source}azure:\n  endpoints: {{authorityHost: \"{url}\", resourceManager: \"{url}\"}}\n  caFile: {d}/ca.pem\n  credential:\n    clientSecret: {{tenantId: {TENANT}, clientId: {CLIENT}, secretFile: {d}/secret}}\noutputs:\n  - file: {{directory: {d}/out, maxFileAge: 1s}}\nstateDir: {d}/state\nhealth: {health}\n"
    );
    let config = dir.join("collector.yaml");
    std::fs::write(&config, yaml).expect("config");
    let log = std::fs::File::create(dir.join("collector.log")).expect("log");
    let child = Command::new(collector)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--log-level")
        .arg("warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the collector");
    Running {
        child,
        started: Instant::now(),
        log: dir.join("collector.log"),
    }
}

/// The end of an Activity Log query's time range, from its `$filter`.
fn window_end(query: &str) -> Option<DateTime<Utc>> {
    let (_, rest) = query.split_once("eventTimestamp le '")?;
    let (end, _) = rest.split_once('\'')?;
    DateTime::parse_from_rfc3339(end)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Waits until every subscription was read up to `present`; answers the wall time it took and
/// the Activity Log requests and 429s until then.
fn until_present(
    azure: &FakeAzure,
    subs: &[String],
    present: DateTime<Utc>,
    running: &mut Running,
) -> (Duration, usize, usize) {
    loop {
        let served = azure.served();
        let activity: Vec<_> = served
            .iter()
            .filter(|s| s.api == Api::ActivityLog)
            .collect();
        let reached: HashSet<&str> = activity
            .iter()
            .filter(|s| s.status == 200 && window_end(&s.query).is_some_and(|end| end >= present))
            .filter_map(|s| s.subscription.as_deref())
            .collect();
        if reached.len() == subs.len() {
            let throttled = activity.iter().filter(|s| s.status == 429).count();
            return (running.started.elapsed(), activity.len(), throttled);
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            let log = std::fs::read_to_string(&running.log).unwrap_or_default();
            panic!("the collector exited with {status}:\n{log}");
        }
        assert!(
            running.started.elapsed() < LIMIT,
            "the backfill did not reach the present in {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn empty_backfill(runtime: &tokio::runtime::Runtime, args: &Args, count: usize) {
    let (azure, subs) = runtime.block_on(fake(count, Duration::from_millis(args.latency_ms)));
    let dir = tempfile::tempdir().expect("tempdir");
    // Windows end on whole seconds.
    let present = Utc::now().trunc_subsecs(0);
    let mut running = start(&args.collector, dir.path(), &azure, &subs, "");
    let (wall, requests, throttled) = until_present(&azure, &subs, present, &mut running);
    println!(
        "empty 90-day backfill, {count:>2} subscription(s): {requests:>6} requests ({:>7.1} per subscription, {throttled} answered 429), wall {:>7.1}s, collector CPU {:.2}s",
        requests as f64 / count as f64,
        wall.as_secs_f64(),
        running.cpu()
    );
}

/// 3,000 events over the last 4 hours on each of 2 subscriptions, then events indexed late: all
/// must arrive, once.
fn history(runtime: &tokio::runtime::Runtime, args: &Args) {
    let (azure, subs) = runtime.block_on(fake(2, Duration::from_millis(args.latency_ms)));
    let now = Utc::now();
    let mut expected = HashSet::new();
    for (s, sub) in subs.iter().enumerate() {
        for n in 0..3000i64 {
            let id = format!("{s}-{n:05}");
            azure.push_activity(
                sub,
                activity(sub, &id, now - TimeDelta::seconds(4 * 3600 * n / 3000 + 1)),
            );
            expected.insert(id);
        }
        // Older history, far apart.
        for days in [85, 60, 31, 7] {
            let id = format!("{s}-old-{days}");
            azure.push_activity(sub, activity(sub, &id, now - TimeDelta::days(days)));
            expected.insert(id);
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Late events settle within a minute, so the bench need not wait the default 15.
    let tuning = "    lateArrival: 1m\npipeline: {pollInterval: 5s}\n";
    let mut running = start(&args.collector, dir.path(), &azure, &subs, tuning);
    let (wall, requests, throttled) =
        until_present(&azure, &subs, now.trunc_subsecs(0), &mut running);
    let out = dir.path().join("out");
    wait_for_exactly(
        &out,
        &expected,
        Duration::from_secs(120),
        "the history, once",
    );
    // Indexed late: their times were read fresh before they were there.
    for (s, sub) in subs.iter().enumerate() {
        for n in 0..50i64 {
            let id = format!("{s}-late-{n:02}");
            azure.push_activity(
                sub,
                activity(sub, &id, Utc::now() - TimeDelta::seconds(5 + n / 2)),
            );
            expected.insert(id);
        }
    }
    wait_for_exactly(
        &out,
        &expected,
        Duration::from_secs(180),
        "the late events, once",
    );
    println!(
        "history of 2 x 3,004 events and 2 x 50 late ones: {requests} requests to reach the present ({throttled} answered 429), wall {:.1}s; {} events delivered, each once",
        wall.as_secs_f64(),
        file_output_ids(&out).len()
    );
}

fn alert(sub: &str, name: &str, time: DateTime<Utc>, status: &str) -> Value {
    json!({
        "id": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/alerts/{name}"),
        "name": name,
        "type": "Microsoft.Security/Locations/alerts",
        "properties": {
            "status": status,
            "timeGeneratedUtc": iso(time),
            "startTimeUtc": iso(time),
            "endTimeUtc": iso(time),
            "alertType": "VM_EICAR",
            "alertDisplayName": "Azure Security Center test alert (not a threat)",
            "severity": "High",
            "description": "This is a test alert.",
            "compromisedEntity": "vm1",
            "resourceIdentifiers": [{"type": "AzureResource", "azureResourceId": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1")}],
        },
    })
}

/// 300 alerts over `--alert-subscriptions`, polled every 10 s for `--alert-minutes` while one
/// alert changes status every 10 s and a new one comes every 30 s.
fn alerts(runtime: &tokio::runtime::Runtime, args: &Args) {
    let count = args.alert_subscriptions.max(1);
    let (azure, subs) = runtime.block_on(fake(count, Duration::from_millis(args.latency_ms)));
    let now = Utc::now();
    let mut expected = HashSet::new();
    for n in 0..300usize {
        let sub = &subs[n % count];
        let name = format!("alert-{n:03}");
        azure.push_alert(
            sub,
            alert(sub, &name, now - TimeDelta::minutes(n as i64 * 7), "Active"),
        );
        expected.insert(format!("{name}|Active"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let health = azlog_test_support::ports::free_port();
    let source = format!(
        "  securityAlerts:\n    subscriptions: [{}]\n    startAt: Earliest\npipeline: {{pollInterval: 10s}}\n",
        subs.join(", ")
    );
    let _running = start_source(
        &args.collector,
        dir.path(),
        &azure,
        &source,
        &format!("{{listen: \"127.0.0.1:{health}\"}}"),
    );
    let out = dir.path().join("out");
    wait_for_exactly(
        &out,
        &expected,
        Duration::from_secs(120),
        "the 300 alerts, once",
    );
    let metric =
        |name: &str, labels: &[&str]| azlog_test_support::metrics::metric(health, name, labels);
    let requests = || azure.calls(Api::SecurityAlerts) + azure.calls(Api::ResourceGraph);
    let (requests_before, relisted_before) =
        (requests(), metric("azlog_events_duplicate_total", &[]));
    let started = Instant::now();
    let mut changes = 0usize;
    while started.elapsed() < Duration::from_secs(args.alert_minutes * 60) {
        std::thread::sleep(Duration::from_secs(10));
        let n = changes * 7 % 300;
        let name = format!("alert-{n:03}");
        let status = ["Resolved", "Dismissed", "InProgress"][changes % 3];
        azure.set_alert_status(&subs[n % count], &name, status);
        expected.insert(format!("{name}|{status}"));
        if changes % 3 == 2 {
            let sub = &subs[changes % count];
            let name = format!("new-{changes:03}");
            azure.push_alert(sub, alert(sub, &name, Utc::now(), "Active"));
            expected.insert(format!("{name}|Active"));
        }
        changes += 1;
    }
    wait_for_exactly(
        &out,
        &expected,
        Duration::from_secs(60),
        "every change and new alert, once",
    );
    let polls = started.elapsed().as_secs_f64() / 10.0;
    let requests = requests() - requests_before;
    let relisted = metric("azlog_events_duplicate_total", &[]) - relisted_before;
    println!(
        "300 alerts in {count} subscriptions polled every 10 s for {} min, {changes} changes: {:.1} requests a poll ({} alerts API, {} Resource Graph in all), {:.1} alerts listed again a poll; {} events delivered, each once",
        args.alert_minutes,
        requests as f64 / polls,
        azure.calls(Api::SecurityAlerts),
        azure.calls(Api::ResourceGraph),
        relisted / polls,
        file_output_ids(&out).len()
    );
}

fn main() {
    azlog_collector::install_crypto_provider();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "fake ARM: {} ms a request, a read bucket of 250 per subscription refilled at 25/s",
        args.latency_ms
    );
    let runs = |scenario: &str| args.scenarios.iter().any(|s| s == scenario);
    if runs("backfill") {
        for &count in &args.subscriptions {
            empty_backfill(&runtime, &args, count);
        }
    }
    if runs("history") {
        history(&runtime, &args);
    }
    if runs("alerts") {
        alerts(&runtime, &args);
    }
}
