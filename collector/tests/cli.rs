//! The `azlog-collector` command as a user meets it: config mistakes, the demo, and the health,
//! readiness and metrics endpoints.
// Runs Linux processes (receivers, signals, Kubernetes); the Windows build has its own smoke test.
#![cfg(unix)]

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use azlog_test_support::collector::{Collector, file_output_ids};
use azlog_test_support::http::http_get;
use azlog_test_support::ports::free_port;
use azlog_test_support::syslog::{Kind, Receiver, make_ca};
use azlog_test_support::wait::wait_until;

fn collector() -> Command {
    Command::new(env!("CARGO_BIN_EXE_azlog-collector"))
}

fn validate_file(path: &std::path::Path) -> std::process::Output {
    collector()
        .arg("validate")
        .arg("--config")
        .arg(path)
        .output()
        .expect("run")
}

fn validate(yaml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, yaml).expect("write");
    let out = validate_file(&path);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_kind_of_config_mistake_exits_2_naming_the_field_and_the_fix() {
    let cases = [
        ("name: x\nsource: [\n", "line 3", "YAML syntax error"),
        (
            "name: x\nsource:\n  simulate: {}\noutputs:\n  - stdout: {}\nstatedir: /tmp\n",
            "statedir",
            "unknown field `statedir`, expected one of",
        ),
        (
            "name: x\nsource:\n  simulate: {}\noutputs:\n  - syslog:\n      address: h:514\n      protocol: rfc3165\n",
            "outputs[0].syslog.protocol",
            "expected `rfc5424` or `rfc3164`",
        ),
        (
            "name: x\nsource:\n  simulate: {}\noutputs:\n  - file:\n      format: ndjson\n",
            "outputs[0].file",
            "missing field `directory`",
        ),
        (
            "name: x\nsource:\n  simulate:\n    rate: fast\noutputs:\n  - stdout: {}\n",
            "source.simulate.rate",
            "invalid type",
        ),
        (
            "name: x\nsource:\n  simulate: {}\noutputs:\n  - syslog:\n      address: siem:99999\n",
            "outputs[0].syslog.address",
            "not a port",
        ),
        (
            "name: x\nsource:\n  simulate: {}\noutputs:\n  - syslog:\n      address: siem:6514\n      transport: tls\n      tls:\n        caFile: /missing/ca.pem\n",
            "outputs[0].syslog.tls.caFile",
            "/missing/ca.pem does not exist",
        ),
        (
            "name: x\nsource:\n  simulate: {}\noutputs: []\n",
            "outputs",
            "at least one output",
        ),
        (
            "name: x\nsource:\n  simulate: {}\noutputs:\n  - stdout: {}\npipeline:\n  batchSize: 1000\n  maxInFlightEvents: 10\n",
            "pipeline.maxInFlightEvents",
            "at least pipeline.batchSize",
        ),
    ];
    for (yaml, path, hint) in cases {
        let (code, stderr) = validate(yaml);
        assert_eq!(code, 2, "exit code for {path}: {stderr}");
        assert!(stderr.contains(path), "stderr names {path}:\n{stderr}");
        assert!(stderr.contains(hint), "stderr explains {hint:?}:\n{stderr}");
    }
}

#[test]
fn a_valid_config_is_summarised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ok.yaml");
    std::fs::write(&path, "name: prod\nsource:\n  simulate: {}\noutputs:\n  - file: {directory: /tmp/x}\n  - syslog: {name: qradar, address: 'siem:514', body: leef}\n").expect("write");
    let out = collector()
        .arg("validate")
        .arg("-c")
        .arg(&path)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("output file-0: NDJSON files below /tmp/x")
            && stdout.contains("output qradar: RFC 5424 over TCP to siem:514, LEEF bodies"),
        "{stdout}"
    );
}

#[test]
fn a_bad_config_starts_nothing_and_writes_no_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    let state = dir.path().join("state");
    std::fs::write(
        &path,
        format!(
            "name: x\nstateDir: {}\nsource:\n  simulate: {{}}\noutputs: []\n",
            state.display()
        ),
    )
    .expect("write");
    let out = collector()
        .arg("run")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(!state.exists());
}

/// Runs the demo into `dir` with `args`; answers what it printed on stdout.
fn demo(dir: &std::path::Path, args: &[&str]) -> String {
    let out = collector()
        .arg("demo")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_demo_writes_every_event_into_the_azlog_folders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stdout = demo(dir.path(), &["--count", "200", "--rate", "0", "--json"]);
    assert_eq!(
        stdout.lines().count(),
        200,
        "one JSON line per event on stdout"
    );
    for line in stdout.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("stdout lines are JSON");
        assert_eq!(value["azlog"]["source"], "demo");
    }
    for folder in [
        "AzureResourceManagerJson",
        "AzureSecurityCenterJson",
        "AzureActiveDirectoryJson",
        "AzureVmDiagnosticsJson",
        "AzureDiagnosticLogsJson",
    ] {
        let finished = std::fs::read_dir(dir.path().join("out").join(folder))
            .unwrap_or_else(|e| panic!("{folder}: {e}"))
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .count();
        assert!(finished >= 1, "{folder} has a finished file");
    }
    assert_eq!(file_output_ids(&dir.path().join("out")).len(), 200);
}

#[test]
fn readiness_and_metrics_report_an_unreachable_receiver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let health = free_port();
    let dead = free_port();
    let yaml = format!(
        "name: health-test\nsource:\n  simulate: {{rate: 200}}\noutputs:\n  - file: {{directory: {out}}}\n  - syslog: {{name: siem, address: '127.0.0.1:{dead}', connectTimeout: 1s}}\nstateDir: {state}\nhealth:\n  listen: 127.0.0.1:{health}\npipeline:\n  shutdownTimeout: 1s\n",
        out = dir.path().join("out").display(),
        state = dir.path().join("state").display(),
    );
    let mut collector = Collector::start(dir.path(), &yaml);
    wait_until(Duration::from_secs(10), "health endpoint", || {
        TcpStream::connect(("127.0.0.1", health)).ok()
    });
    assert_eq!(http_get(health, "/healthz").0, 200);
    let (status, body) = wait_until(Duration::from_secs(10), "readiness to fail", || {
        let (status, body) = http_get(health, "/readyz");
        (status == 503).then_some((status, body))
    });
    assert_eq!(status, 503);
    assert!(
        body.contains("siem"),
        "readyz names the failing output: {body}"
    );
    let (_, metrics) = http_get(health, "/metrics");
    for expected in [
        "azlog_output_up{output=\"siem\"} 0",
        "azlog_output_up{output=\"file-0\"} 1",
        "azlog_output_retries_total{category=\"connect\",output=\"siem\"}",
        "azlog_events_delivered_total{output=\"file-0\"}",
        "azlog_in_flight_events",
        "azlog_checkpoint_age_seconds",
    ] {
        assert!(
            metrics.contains(expected),
            "metrics lack {expected}:\n{metrics}"
        );
    }
    collector.signal(15);
    let status = collector.wait(Duration::from_secs(20));
    assert_eq!(
        status.code(),
        Some(3),
        "exit 3 says events were left undelivered (they are re-read next start)"
    );
    assert_eq!(
        collector.committed(),
        0,
        "nothing committed while one output never delivered"
    );
}

#[test]
fn readiness_returns_once_the_receiver_is_back_and_delivery_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca(dir.path());
    let mut receiver = Receiver::new(Kind::SyslogNg, dir.path(), &ca);
    let health = free_port();
    let yaml = format!(
        "name: recovery-test\nsource:\n  simulate: {{rate: 200}}\noutputs:\n  - syslog: {{name: siem, address: '127.0.0.1:{port}', connectTimeout: 1s}}\nstateDir: {state}\nhealth:\n  listen: 127.0.0.1:{health}\ncheckpoint:\n  commitInterval: 200ms\n",
        port = receiver.ports.tcp,
        state = dir.path().join("state").display(),
    );
    let mut collector = Collector::start(dir.path(), &yaml);
    wait_until(
        Duration::from_secs(10),
        "readiness to fail while the receiver is down",
        || {
            TcpStream::connect(("127.0.0.1", health)).ok()?;
            (http_get(health, "/readyz").0 == 503).then_some(())
        },
    );
    receiver.spawn();
    wait_until(Duration::from_secs(30), "readiness to return", || {
        (http_get(health, "/readyz").0 == 200).then_some(())
    });
    wait_until(
        Duration::from_secs(10),
        "checkpoints to advance again",
        || (collector.committed() > 0).then_some(()),
    );
    assert!(
        !receiver.messages().is_empty(),
        "the receiver got events after it came back"
    );
    collector.signal(15);
    let status = collector.wait(Duration::from_secs(20));
    assert!(
        status.success(),
        "a clean stop after recovery exits 0: {status}\n{}",
        collector.log()
    );
}

#[test]
fn the_example_configs_in_the_repository_are_valid() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples)
        .expect("examples folder")
        .flatten()
    {
        let path = entry.path();
        // Kubernetes resources (LogSources, SubscriptionAuthorizations) are the operator's tests'
        // to check.
        let is_resource = std::fs::read_to_string(&path)
            .is_ok_and(|text| text.lines().any(|l| l.starts_with("apiVersion:")));
        if path.extension().is_some_and(|e| e == "yaml") && !is_resource {
            let out = validate_file(&path);
            assert!(
                out.status.success(),
                "{} is invalid:\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 1,
        "no example configs found in {}",
        examples.display()
    );
}

/// A pipe whose reader is already gone, as `| head` leaves it once it has read enough.
fn closed_pipe() -> std::process::Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer.into()
}

#[test]
fn the_demo_shows_one_short_readable_line_per_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stdout = demo(dir.path(), &["--count", "40", "--rate", "0"]);
    assert_eq!(stdout.lines().count(), 40, "{stdout}");
    for line in stdout.lines() {
        assert!(!line.starts_with('{'), "a summary, not JSON: {line}");
        assert!(line.len() < 240, "short: {line}");
        let time = line.split_whitespace().next().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(time).is_ok(),
            "starts with the event's time: {line}"
        );
    }
    assert!(
        ["activityLog", "securityAlert", "directoryAudit", "wad"]
            .iter()
            .all(|k| stdout.contains(k)),
        "names the kind of each event: {stdout}"
    );
}

#[test]
fn commands_whose_reader_goes_away_end_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("collector.yaml");
    std::fs::write(&config, format!(
        "name: demo\nsource:\n  simulate: {{count: 10}}\noutputs:\n  - file: {{directory: {}}}\nstateDir: {}\n",
        dir.path().join("out").display(),
        dir.path().join("state").display()
    ))
    .expect("write");
    for args in [
        &["validate", "--config"][..],
        &["validate", "--effective", "--config"][..],
    ] {
        let out = collector()
            .args(args)
            .arg(&config)
            .stdout(closed_pipe())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }

    // The stdout output: the collector stops by itself, without a panic, and says why.
    let started = std::time::Instant::now();
    let out = collector()
        .args(["demo", "--count", "0", "--rate", "0"])
        .arg("--dir")
        .arg(dir.path().join("demo"))
        .stdout(closed_pipe())
        .output()
        .expect("run demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "it stopped by itself"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("stdout was closed by its reader"),
        "{stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "stopped with events undelivered: {stderr}"
    );
}
