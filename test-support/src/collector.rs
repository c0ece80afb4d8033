//! The collector binary as a process, and what it leaves behind: its log, checkpoint and file
//! output. The collector's integration tests and the end-to-end suites drive it the same way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::wait::wait_until;

/// The `azlog-collector` binary. Cargo names it for the collector's own tests; other workspace crates
/// find it beside their test binary, where `cargo test --workspace` builds it.
pub fn collector_binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_azlog-collector") {
        Some(path) => PathBuf::from(path),
        None => workspace_binary("azlog-collector"),
    }
}

/// A binary of the workspace, beside the test binary's directory (target/<profile>/).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .join(name);
    assert!(
        path.exists(),
        "{} does not exist: build it with cargo build --workspace (cargo test --workspace does)",
        path.display()
    );
    path
}

/// The collector binary, run as a user would run it.
#[derive(Debug)]
pub struct Collector {
    child: Option<Child>,
    pub dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
}

impl Collector {
    /// Writes `yaml` to `dir/collector.yaml` and starts `azlog-collector run` on it.
    pub fn start(dir: &Path, yaml: &str) -> Collector {
        Collector::start_with_env(dir, yaml, &[])
    }

    /// As [`Collector::start`], with these environment variables set (again at every spawn).
    pub fn start_with_env(dir: &Path, yaml: &str, env: &[(&str, &str)]) -> Collector {
        let config = dir.join("collector.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let mut collector = Collector {
            child: None,
            dir: dir.to_owned(),
            config,
            log: dir.join("collector.log"),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        collector.spawn();
        collector
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let child = Command::new(collector_binary())
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start azlog-collector");
        self.child = Some(child);
    }

    /// Sends `signal` (15 for SIGTERM, 9 for SIGKILL). Windows has no signals; its collector is
    /// stopped by the console events Wine cannot send, so its smoke test lets the source run out.
    #[cfg(unix)]
    pub fn signal(&mut self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on a pid this test spawned and has not yet reaped.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    /// Waits for the process to exit; fails the test with its log after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("collector was started");
        let log = self.log.clone();
        let status = wait_until(timeout, "the collector to exit", || {
            child.try_wait().expect("try_wait")
        });
        self.child = None;
        if !status.success() && status.code().is_some() {
            eprintln!(
                "collector log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        status
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The committed checkpoint, if one was written.
    pub fn checkpoint(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.dir.join("state/checkpoint.json")).ok()?;
        Some(serde_json::from_str(&text).expect("checkpoint is JSON"))
    }

    /// The simulate cursor's next record number in the committed checkpoint (0 without one).
    pub fn committed(&self) -> u64 {
        self.checkpoint()
            .and_then(|c| c["cursor"]["next"].as_u64())
            .unwrap_or(0)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every event id in a file output directory, finished and in-progress files alike, in file order.
/// The collector renames files while we read; a file that vanished mid-scan means start again.
pub fn file_output_ids(dir: &Path) -> Vec<String> {
    loop {
        if let Some(ids) = scan_output(dir) {
            return ids;
        }
    }
}

fn scan_output(dir: &Path) -> Option<Vec<String>> {
    let mut ids = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        // Files are named for when they were started (an in-progress one with a leading dot):
        // read in that order, the ids come in the order they were written.
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort_by_key(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.trim_start_matches('.').to_owned()
        });
        for path in paths {
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                Err(e) => panic!("cannot read {}: {e}", path.display()),
            };
            // In a file still being written, a line without its newline is being written now; the
            // next scan sees it whole. A finished file must hold whole lines only.
            let in_progress = path.extension().is_some_and(|e| e == "partial");
            let complete = match text.rfind('\n') {
                Some(end) if in_progress => &text[..end],
                None if in_progress => "",
                _ => text.as_str(),
            };
            for line in complete.lines().filter(|l| !l.is_empty()) {
                let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!(
                        "{} holds a line that is not JSON ({e}): {line}",
                        path.display()
                    )
                });
                ids.push(value["azlog"]["id"].as_str().expect("azlog.id").to_owned());
            }
        }
    }
    Some(ids)
}

/// Waits until the file output below `out` holds exactly the events `expected`, failing the test at
/// once if any event appears twice or an unexpected one appears.
pub fn wait_for_exactly(
    out: &Path,
    expected: &std::collections::HashSet<String>,
    timeout: Duration,
    what: &str,
) {
    wait_until(timeout, what, || {
        let ids = file_output_ids(out);
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            assert!(seen.insert(id), "{id} was delivered twice");
        }
        let unexpected: Vec<&&String> = seen
            .iter()
            .filter(|id| !expected.contains(**id))
            .take(5)
            .collect();
        assert!(unexpected.is_empty(), "unexpected events: {unexpected:?}");
        (seen.len() == expected.len()).then_some(())
    });
}

/// The ids of simulated records `0..count`, as the collector will compute them.
pub fn simulated_ids(config: &azlog_collector::config::SimulateConfig, count: u64) -> Vec<String> {
    use azlog_collector::normalise::{NormaliseContext, normalise};
    let sim = azlog_collector::source::simulate::Simulate::new(config.clone(), 100, None)
        .expect("simulate");
    let ctx = NormaliseContext {
        source_name: std::sync::Arc::from("test"),
        subscription_id: None,
    };
    (0..count)
        .map(|n| {
            normalise(sim.record(n), &ctx)
                .expect("simulated records normalise")
                .id
        })
        .collect()
}
