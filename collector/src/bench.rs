//! `azlog-collector bench`: events per CPU-second and peak memory, measured, not timed in tests.
//!
//! Each scenario runs in a fresh child process so its peak RSS is its own. CPU is the process's user +
//! system time (getrusage); the loopback syslog sink runs on its own thread and its CPU time is
//! subtracted, so the figure is the collector's alone.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::checkpoint::FileStore;
use crate::config::{Config, OutputConfig, SimulateConfig, SimulateMix, SourceConfig};
use crate::dedup::IdHasher;
use crate::metrics::Metrics;
use crate::normalise::{NormaliseContext, normalise};
use crate::output::{AnyOutput, Dispatch, Output, OutputContext};
use crate::pipeline::Pipeline;
use crate::platform;
use crate::source::simulate::Simulate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Encode and write pre-built events to NDJSON files (fsync per batch, as by default).
    EncodeFile,
    /// Encode pre-built events as RFC 5424 and send them over TCP to a loopback sink.
    EncodeSyslogTcp,
    /// The whole pipeline: simulate → normalise → dedup → NDJSON files → checkpoints.
    PipelineFile,
    /// The whole pipeline: simulate → normalise → dedup → RFC 5424 over TCP → checkpoints.
    PipelineSyslogTcp,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::EncodeFile,
        Scenario::EncodeSyslogTcp,
        Scenario::PipelineFile,
        Scenario::PipelineSyslogTcp,
    ];
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResult {
    pub scenario: Scenario,
    pub events: u64,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub events_per_cpu_second: f64,
    pub peak_rss_mib: f64,
    pub bytes_out: u64,
}

/// A loopback receiver that counts octet-counted frames, on its own thread.
struct Sink {
    address: String,
    /// How many frames to wait for; set once the run knows (dedup may drop a few).
    expected: Arc<AtomicU64>,
    done: std::sync::mpsc::Receiver<(u64, u64, f64)>,
}

impl Sink {
    fn start() -> std::io::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?.to_string();
        let expected = Arc::new(AtomicU64::new(u64::MAX));
        let (tx, done) = std::sync::mpsc::channel();
        let target = expected.clone();
        std::thread::spawn(move || {
            let mut frames = 0u64;
            let mut bytes = 0u64;
            let mut buf = vec![0u8; 1 << 18];
            let mut pending: Vec<u8> = Vec::new();
            while frames < target.load(Ordering::Acquire) {
                let Ok((mut conn, _)) = listener.accept() else {
                    break;
                };
                loop {
                    let n = match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    bytes += n as u64;
                    pending.extend_from_slice(&buf[..n]);
                    let mut at = 0;
                    while let Some(space) = pending[at..].iter().position(|&b| b == b' ') {
                        let Some(len) = std::str::from_utf8(&pending[at..at + space])
                            .ok()
                            .and_then(|s| s.parse::<usize>().ok())
                        else {
                            break;
                        };
                        if pending.len() < at + space + 1 + len {
                            break;
                        }
                        at += space + 1 + len;
                        frames += 1;
                    }
                    pending.drain(..at);
                }
            }
            let _ = tx.send((frames, bytes, platform::thread_cpu_seconds()));
        });
        Ok(Sink {
            address,
            expected,
            done,
        })
    }

    /// Tells the sink how many frames were sent and waits for it to have them all.
    fn finish(self, sent: u64) -> Result<(u64, f64), String> {
        self.expected.store(sent, Ordering::Release);
        // Wakes a sink blocked in accept() so it sees the count.
        let _ = std::net::TcpStream::connect(&self.address);
        let (frames, bytes, cpu) = self
            .done
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| "the sink did not finish".to_string())?;
        if frames != sent {
            return Err(format!("the sink received {frames} of {sent} messages"));
        }
        Ok((bytes, cpu))
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn simulate_config(count: Option<u64>) -> SimulateConfig {
    SimulateConfig {
        rate: None,
        count,
        seed: 42,
        start_time: None,
        subscription_id: "3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f".into(),
        mix: SimulateMix::default(),
    }
}

fn output_config(
    scenario: Scenario,
    dir: &Path,
    sink: Option<&Sink>,
) -> Result<OutputConfig, String> {
    let yaml = match (scenario, sink) {
        (Scenario::EncodeFile | Scenario::PipelineFile, _) => {
            format!("file:\n  directory: {}\n", dir.join("out").display())
        }
        (_, Some(sink)) => format!("syslog:\n  address: {}\n  transport: tcp\n", sink.address),
        (_, None) => return Err("syslog scenario without a sink".into()),
    };
    crate::config::from_yaml(&yaml).map_err(|e| format!("bench output config: {e}"))
}

/// Runs one scenario in this process.
pub fn run_scenario(scenario: Scenario, events: u64) -> Result<BenchResult, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let is_syslog = matches!(
        scenario,
        Scenario::EncodeSyslogTcp | Scenario::PipelineSyslogTcp
    );
    let sink = if is_syslog {
        Some(Sink::start().map_err(|e| format!("sink: {e}"))?)
    } else {
        None
    };
    let output = output_config(scenario, dir.path(), sink.as_ref())?;
    let metrics = Arc::new(Metrics::new());

    let before = platform::process_usage();
    let started = Instant::now();
    // How many events reached the output (the pipeline's dedup hides a few simulated re-lists).
    let sent = match scenario {
        Scenario::EncodeFile | Scenario::EncodeSyslogTcp => {
            // A fixed pool of real, normalised events, re-sent in turn: memory stays flat whatever `events`.
            let sim = Simulate::new(simulate_config(None), 500, None).map_err(|e| e.to_string())?;
            let ctx = NormaliseContext {
                source_name: Arc::from("bench"),
                subscription_id: None,
            };
            let pool: Vec<Dispatch> = (0..20u64)
                .map(|b| Dispatch {
                    seq: b,
                    events: (b * 500..(b + 1) * 500)
                        .filter_map(|n| normalise(sim.record(n), &ctx).ok())
                        .collect(),
                    dispatched_at: tokio::time::Instant::now(),
                })
                .collect();
            let out_ctx = OutputContext {
                hasher: IdHasher::new(1),
                recovery_window: 0,
                metrics: metrics.clone(),
            };
            runtime.block_on(async {
                let mut out = AnyOutput::build(&output, 0, &out_ctx).map_err(|e| e.to_string())?;
                let mut sent = 0u64;
                let mut i = 0;
                while sent < events {
                    let batch = &pool[i % pool.len()];
                    sent += out.deliver(batch).await.map_err(|e| e.to_string())?.sent as u64;
                    i += 1;
                    // As the output task does with a backlog queued: one sync per group of batches.
                    if i % crate::pipeline::SYNC_GROUP == 0 || sent >= events {
                        out.sync().await.map_err(|e| e.to_string())?;
                    }
                }
                out.close().await;
                Ok::<_, String>(sent)
            })?
        }
        Scenario::PipelineFile | Scenario::PipelineSyslogTcp => {
            let config = Config {
                name: "bench".into(),
                subscription_id: None,
                source: SourceConfig::Simulate(simulate_config(Some(events))),
                azure: None,
                outputs: vec![output],
                state_dir: dir.path().join("state"),
                checkpoint: Default::default(),
                pipeline: Default::default(),
                health: crate::config::HealthConfig { listen: None },
            };
            let batch_size = config.pipeline.batch_size;
            let store = FileStore::new(dir.path().join("state/checkpoint.json"));
            let (_tx, rx) = watch::channel(false);
            let summary = runtime
                .block_on(Pipeline::new(config, store, metrics).run(
                    |c| Simulate::new(simulate_config(Some(events)), batch_size, c),
                    rx,
                ))
                .map_err(|e| e.to_string())?;
            // The simulation re-lists a few alerts in a status they already had; dedup hides those.
            if summary.events_committed + summary.duplicates != events {
                return Err(format!(
                    "{} delivered + {} duplicates of {events} events",
                    summary.events_committed, summary.duplicates
                ));
            }
            summary.events_committed
        }
    };
    let (mut sink_cpu, mut bytes_out) = (0.0, dir_bytes(&dir.path().join("out")));
    if let Some(sink) = sink {
        (bytes_out, sink_cpu) = sink.finish(sent)?;
    }
    let wall = started.elapsed().as_secs_f64();
    let after = platform::process_usage();
    let cpu = (after.cpu_seconds - before.cpu_seconds - sink_cpu).max(1e-9);
    Ok(BenchResult {
        scenario,
        events,
        wall_seconds: wall,
        cpu_seconds: cpu,
        events_per_cpu_second: events as f64 / cpu,
        peak_rss_mib: after.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        bytes_out,
    })
}

/// Runs every scenario (or one), each in a child process, and prints a table.
pub fn run_all(events: u64, only: Option<Scenario>) -> Result<Vec<BenchResult>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let mut results = Vec::new();
    for scenario in Scenario::ALL
        .into_iter()
        .filter(|s| only.is_none_or(|o| o == *s))
    {
        let name = serde_json::to_value(scenario)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        eprintln!("running {name} with {events} events…");
        let output = std::process::Command::new(&exe)
            .args([
                "bench",
                "--child",
                "--scenario",
                &name,
                "--events",
                &events.to_string(),
            ])
            .output()
            .map_err(|e| format!("cannot run {name}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "{name} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let result: BenchResult = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("{name} printed no result: {e}"))?;
        results.push(result);
    }
    Ok(results)
}

/// The results as a table, one scenario a row.
pub fn table(results: &[BenchResult]) -> String {
    let mut out = format!(
        "{:<22} {:>10} {:>9} {:>9} {:>14} {:>13} {:>10}\n",
        "scenario", "events", "wall s", "cpu s", "events/cpu-s", "peak RSS MiB", "MiB out"
    );
    for r in results {
        let name = serde_json::to_value(r.scenario)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<22} {:>10} {:>9.2} {:>9.2} {:>14.0} {:>13.1} {:>10.1}\n",
            name,
            r.events,
            r.wall_seconds,
            r.cpu_seconds,
            r.events_per_cpu_second,
            r.peak_rss_mib,
            r.bytes_out as f64 / 1048576.0
        ));
    }
    out
}
