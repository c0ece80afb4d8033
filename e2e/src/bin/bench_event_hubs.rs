//! What the eventHubs source costs: records in Azure's envelopes preloaded into the fake Event
//! Hubs namespace (AMQP 1.0 over TLS on loopback), read from Earliest by the collector at its
//! default pipeline settings and delivered to NDJSON files, or as RFC 5424 over TCP to a receiver
//! that counts lines. Reports records per CPU-second of the collector and its peak RSS.
//!
//!   e2e/scripts/bench-event-hubs [--records 200000] [--per-event 20] [--partitions 4]
//!                                [--outputs file,syslog] [--collector PATH]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use azlog_e2e::event_hub_records::Records;
use azlog_e2e::fake_event_hubs::FakeEventHubs;
use azlog_e2e::host_collector::syslog_counter;
use azlog_e2e::process_stats::{cpu_seconds, peak_rss_mib};
use clap::Parser;

const LIMIT: Duration = Duration::from_secs(600);

#[derive(Debug, Parser)]
struct Args {
    /// The collector binary to measure.
    #[arg(long)]
    collector: PathBuf,
    /// Records in the hub.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Records per event (Azure batches a few to a few hundred into one).
    #[arg(long, default_value_t = 20)]
    per_event: usize,
    #[arg(long, default_value_t = 4)]
    partitions: usize,
    /// Which outputs to measure: file, syslog.
    #[arg(long, value_delimiter = ',', default_value = "file,syslog")]
    outputs: Vec<String>,
}

/// The collector as a child process, stopped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lines_below(dir: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                count += bytes.iter().filter(|b| **b == b'\n').count();
            }
        }
    }
    count
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    azlog_collector::install_crypto_provider();
    let args = Args::parse();
    let events = args.records.div_ceil(args.per_event);
    println!(
        "eventHubs: {} records in {events} events of {} on {} partitions, read from Earliest at the default pipeline settings",
        events * args.per_event,
        args.per_event,
        args.partitions
    );
    for output in &args.outputs {
        let hub = FakeEventHubs::start("bench", args.partitions)
            .await
            .expect("fake Event Hubs");
        let records = Records::new();
        let mut total = 0;
        for partition in 0..args.partitions {
            let share =
                events / args.partitions + usize::from(partition < events % args.partitions);
            total += records.send(&hub, partition, share, args.per_event).len();
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display();
        std::fs::write(dir.path().join("ca.pem"), hub.ca_pem()).expect("ca");
        std::fs::write(dir.path().join("cs"), hub.connection_string()).expect("cs");
        let syslog_port = azlog_test_support::ports::free_port();
        let (output_yaml, counter) = match output.as_str() {
            "file" => (format!("  - file:\n      directory: {root}/out\n"), None),
            "syslog" => (
                format!(
                    "  - syslog:\n      address: 127.0.0.1:{syslog_port}\n      transport: tcp\n      framing: newline\n"
                ),
                Some(syslog_counter(syslog_port).await),
            ),
            other => panic!("unknown output {other}; use file or syslog"),
        };
        let yaml = format!(
            "name: bench\nsource:\n  eventHubs:\n    endpoint: {endpoint}\n    hub: bench\n    startAt: Earliest\n    connectionStringFile: {root}/cs\nazure:\n  caFile: {root}/ca.pem\noutputs:\n{output_yaml}stateDir: {root}/state\nhealth:\n  listen: null\n",
            endpoint = hub.endpoint(),
        );
        std::fs::write(dir.path().join("c.yaml"), yaml).expect("config");
        let started = Instant::now();
        let child = Command::new(&args.collector)
            .args(["run", "--config"])
            .arg(dir.path().join("c.yaml"))
            .env("AZLOG_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the collector");
        let running = Running(child);
        let out = dir.path().join("out");
        loop {
            let delivered = match &counter {
                Some(count) => count.load(Ordering::SeqCst),
                None => lines_below(&out),
            };
            if delivered >= total {
                break;
            }
            assert!(
                started.elapsed() < LIMIT,
                "{delivered} of {total} delivered after {LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let wall = started.elapsed().as_secs_f64();
        let pid = running.0.id();
        let (cpu, rss) = (cpu_seconds(pid), peak_rss_mib(pid));
        println!(
            "  {output:<7} {total} records  wall {wall:6.2}s  cpu {cpu:6.2}s  {:8.0} records/CPU-s  {:5.2} µs CPU/record  peak RSS {rss:5.1} MiB",
            total as f64 / cpu,
            cpu / total as f64 * 1e6,
        );
        drop(running);
    }
}
