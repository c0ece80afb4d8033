//! The Windows collector as a Windows user runs it, here under Wine: `azlog-collector.exe`, built
//! by e2e/scripts/windows-build, validates a config and runs a simulate source into NDJSON files,
//! a real rsyslog over TCP and the Windows event log, then exits on its own when the source is done
//! (Wine cannot deliver a console stop). Wine's event log records each ReportEventW call in its
//! debug channel, which is where the events are counted; Event Viewer itself is not there to see
//! (the README says what a Windows host shows).
// Wine runs on Linux.
#![cfg(unix)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use azlog_collector::config::SimulateConfig;
use azlog_test_support::collector::{file_output_ids, simulated_ids};
use azlog_test_support::install::cache_dir;
use azlog_test_support::syslog::{Kind, Receiver, make_ca};
use azlog_test_support::wait::wait_until;

const WINE: &str = "/usr/lib/wine/wine64";
const EVENTS: u64 = 300;
const SEED: u64 = 7;
/// Fixed, so the ids (some hold the event time) are known in advance.
const START: &str = "2026-11-01T00:00:00Z";

/// The .exe and the Wine prefix e2e/scripts/windows-build made; a test without them fails.
fn built() -> (PathBuf, PathBuf) {
    let exe = std::env::var_os("AZLOG_WINDOWS_COLLECTOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            cache_dir().join("windows-target/x86_64-pc-windows-gnu/debug/azlog-collector.exe")
        });
    let prefix = std::env::var_os("AZLOG_WINE_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("wine-prefix"));
    assert!(
        exe.is_file() && prefix.join(".complete").exists() && Path::new(WINE).exists(),
        "the Windows collector ({}) or its Wine prefix ({}) is missing: run e2e/scripts/windows-build (the README's test command does)",
        exe.display(),
        prefix.display()
    );
    (exe, prefix)
}

/// `azlog-collector.exe ARGS` under Wine, with Wine's event log channel on stderr.
fn collector(args: &[&str]) -> Command {
    let (exe, prefix) = built();
    let mut command = Command::new(WINE);
    command
        .arg(exe)
        .args(args)
        .env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all,+eventlog")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .stdin(Stdio::null());
    command
}

/// Runs to the end, failing the test after `timeout`.
fn finish(mut command: Command, timeout: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wine");
    let status = wait_until(timeout, "the Windows collector to exit", || {
        child.try_wait().expect("try_wait")
    });
    let mut output = child.wait_with_output().expect("its output");
    output.status = status;
    output
}

fn config(dir: &Path, syslog_port: u16) -> PathBuf {
    let path = dir.join("collector.yaml");
    let yaml = format!(
        "name: windows\nsource:\n  simulate: {{count: {EVENTS}, seed: {SEED}, startTime: {START}}}\noutputs:\n  - file: {{directory: {out}}}\n  - syslog: {{address: '127.0.0.1:{syslog_port}'}}\n  - windowsEventLog: {{body: message}}\nstateDir: {state}\nhealth:\n  listen: null\n",
        out = dir.join("out").display(),
        state = dir.join("state").display(),
    );
    std::fs::write(&path, yaml).expect("write config");
    path
}

#[test]
fn the_exe_validates_a_config_naming_each_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = config(dir.path(), 514);
    let output = finish(
        collector(&["validate", "--config", &path.display().to_string()]),
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "valid",
        "NDJSON files below",
        "RFC 5424 over TCP to 127.0.0.1:514",
        "the Windows event log under the source azlog",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
}

#[test]
fn the_exe_delivers_every_event_to_files_rsyslog_and_the_event_log_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca(dir.path());
    let receiver = Receiver::start(Kind::Rsyslog, dir.path(), &ca);
    let path = config(dir.path(), receiver.ports.tcp);
    let output = finish(
        collector(&["run", "--config", &path.display().to_string()]),
        Duration::from_secs(180),
    );
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains(&format!("events_delivered={EVENTS}")),
        "the collector says it delivered them all:\n{log}"
    );

    let expected: HashSet<String> = simulated_ids(
        &SimulateConfig {
            count: Some(EVENTS),
            seed: SEED,
            start_time: Some(START.parse().expect("a time")),
            ..SimulateConfig::default()
        },
        EVENTS,
    )
    .into_iter()
    .collect();
    let in_files = file_output_ids(&dir.path().join("out"));
    assert_eq!(in_files.len() as u64, EVENTS, "no event twice in the files");
    assert_eq!(in_files.into_iter().collect::<HashSet<_>>(), expected);

    let received = receiver.wait_for(EVENTS as usize, Duration::from_secs(30));
    let ids: HashSet<&str> = received.iter().filter_map(|m| m.param("id")).collect();
    assert_eq!(received.len() as u64, EVENTS, "rsyslog got each event once");
    assert_eq!(ids.len() as u64, EVENTS);

    // One ReportEventW call per event, at the level its severity maps to.
    let reported: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(":eventlog:ReportEventW "))
        .collect();
    assert_eq!(reported.len() as u64, EVENTS, "{log}");
    assert!(reported.iter().any(|line| line.contains(":err:eventlog:")));
    assert!(
        reported
            .iter()
            .any(|line| line.contains(":trace:eventlog:"))
    );
}
