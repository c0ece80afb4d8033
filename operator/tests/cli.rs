//! The `azlog-operator` command's own flags, without a cluster.
// The operator runs on Linux; the Windows type-check builds no binary to run.
#![cfg(unix)]

use std::process::Command;

#[test]
fn log_format_json_gives_one_json_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No cluster to reach: the operator logs why and exits.
    let out = Command::new(env!("CARGO_BIN_EXE_azlog-operator"))
        .args(["--log-format", "json", "--metrics-listen", "127.0.0.1:0"])
        .env("KUBECONFIG", dir.path().join("missing"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", dir.path())
        .output()
        .expect("run the operator");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "it says why it stopped");
    for line in lines {
        let record: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            record["level"].is_string() && record["fields"].is_object(),
            "{line}"
        );
    }
    assert!(
        stderr.contains("failed to connect to the Kubernetes API"),
        "{stderr}"
    );
}
