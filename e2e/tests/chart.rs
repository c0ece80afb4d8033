//! The Helm chart without a node: `helm lint`, what it renders accepted by a real API server in both
//! RBAC modes, its values schema refusing typos and wrong types, and `deploy/operator.yaml` rendered
//! from it. (`node.rs` installs it on a node.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use azlog_e2e::kube_cluster::{ADMIN_TOKEN, Cluster};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(program: &Path, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run {}: {e}", program.display()));
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

fn template(values: &[&str]) -> Output {
    let mut args = vec![
        "template",
        "azlog",
        "charts/azlog",
        "--namespace",
        "azlog-system",
        "--kube-version",
        "1.20.2",
    ];
    for value in values {
        args.extend(["--set", value]);
    }
    run(&azlog_e2e::helm(), &args, None, &[])
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_chart_passes_helm_lint() {
    let out = run(
        &azlog_e2e::helm(),
        &["lint", "--strict", "charts/azlog"],
        None,
        &[],
    );
    assert!(out.status.success(), "helm lint: {}", text(&out));
}

#[test]
fn the_values_schema_refuses_misspelt_keys_and_wrong_types() {
    for (value, expected) in [
        ("image.tagg=1.0", "tagg"),
        ("replicas=two", "replicas"),
        ("leaderElection=maybe", "leaderElection"),
        ("watchNamespace=Team_A", "watchNamespace"),
        ("metrics.port=70000", "port"),
        ("collectorImage.pullPolicy=Sometimes", "pullPolicy"),
        (
            "policy.forwarderImages=fluent/fluent-bit:3.1",
            "forwarderImages",
        ),
        ("policy.endpointHost={10.0.0.1}", "endpointHost"),
    ] {
        let out = template(&[value]);
        let said = text(&out);
        assert!(!out.status.success(), "--set {value} was accepted");
        assert!(
            said.contains("values don't meet the specifications of the schema")
                && said.contains(expected),
            "--set {value}: the error should name {expected}: {said}"
        );
    }
    assert!(template(&[]).status.success(), "the defaults are valid");
}

#[test]
fn deploy_operator_yaml_is_rendered_from_the_chart() {
    let out = run(
        &root().join("deploy/render"),
        &["--check"],
        None,
        &[("HELM", &azlog_e2e::helm())],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn the_api_server_accepts_what_the_chart_renders_in_both_rbac_modes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path()).await;
    let kubeconfig = cluster.kubeconfig("admin", ADMIN_TOKEN);
    cluster.kubectl(&["create", "namespace", "azlog-system"]);
    cluster.kubectl(&["create", "namespace", "team-a"]);
    let kubectl = PathBuf::from("kubectl");
    for (mode, values) in [
        ("cluster-wide", vec![]),
        (
            "namespaced",
            vec![
                "watchNamespace=team-a",
                "replicas=1",
                "metrics.service.enabled=false",
            ],
        ),
    ] {
        let rendered = template(&values);
        assert!(rendered.status.success(), "{mode}: {}", text(&rendered));
        let manifest = String::from_utf8_lossy(&rendered.stdout).into_owned();
        let applied = run(
            &kubectl,
            &["apply", "--dry-run=server", "-f", "-"],
            Some(manifest.as_bytes()),
            &[("KUBECONFIG", &kubeconfig)],
        );
        let said = text(&applied);
        assert!(applied.status.success(), "{mode}: {said}");
        match mode {
            "namespaced" => {
                assert!(
                    said.contains("role.rbac.authorization.k8s.io/azlog-operator created")
                        && !said.contains("clusterrole"),
                    "namespaced mode holds Roles only: {said}"
                );
                assert!(manifest.contains("namespace: team-a"), "{manifest}");
            }
            _ => assert!(
                said.contains("clusterrole.rbac.authorization.k8s.io/azlog-operator created")
                    && said.contains("poddisruptionbudget.policy/azlog-operator created"),
                "{said}"
            ),
        }
    }
}

#[test]
fn the_argo_cd_health_check_reads_every_state_of_a_logsource() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let script = std::fs::read_to_string(root().join("deploy/argocd-health.lua")).expect("lua");
    for line in script.lines().filter(|l| !l.starts_with("--")) {
        assert!(
            readme.contains(&format!("  {line}")),
            "the README's copy of deploy/argocd-health.lua lacks: {line}"
        );
    }
    let condition = |type_: &str, status: &str, reason: &str| {
        serde_json::json!({"type": type_, "status": status, "reason": reason,
            "message": format!("{type_} {reason}"), "lastTransitionTime": "2026-12-01T00:00:00Z"})
    };
    let source = |generation: i64, conditions: Vec<serde_json::Value>| {
        serde_json::json!({
            "apiVersion": "azlog.io/v1alpha1", "kind": "LogSource",
            "metadata": {"name": "web-vms", "generation": generation},
            "spec": {"simulate": {}, "outputs": [{"syslog": {"address": "siem:514"}}]},
            "status": {"observedGeneration": 2, "conditions": conditions},
        })
    };
    let running = vec![
        condition("Ready", "True", "CollectorRunning"),
        condition("Reconciling", "False", "Reconciled"),
        condition("Stalled", "False", "Progressing"),
        condition("Degraded", "False", "NoErrors"),
    ];
    let cases = [
        (
            serde_json::json!({"apiVersion": "azlog.io/v1alpha1", "kind": "LogSource", "metadata": {"name": "new", "generation": 1}}),
            "Progressing",
            "waiting for the azlog operator",
        ),
        (
            source(3, running.clone()),
            "Progressing",
            "waiting for the azlog operator",
        ),
        (source(2, running), "Healthy", "Ready CollectorRunning"),
        (
            source(
                2,
                vec![
                    condition("Ready", "False", "CollectorNotAvailable"),
                    condition("Reconciling", "True", "CollectorNotAvailable"),
                    condition("Stalled", "False", "Progressing"),
                ],
            ),
            "Progressing",
            "Ready CollectorNotAvailable",
        ),
        (
            source(
                2,
                vec![
                    condition("Ready", "False", "InvalidSpec"),
                    condition("Reconciling", "False", "InvalidSpec"),
                    condition("Stalled", "True", "InvalidSpec"),
                ],
            ),
            "Degraded",
            "Stalled InvalidSpec",
        ),
        (
            source(
                2,
                vec![
                    condition("Ready", "True", "CollectorRunning"),
                    condition("Degraded", "True", "OutputFailing"),
                ],
            ),
            "Degraded",
            "Degraded OutputFailing",
        ),
    ];
    for (object, status, message) in cases {
        let (got_status, got_message) = azlog_e2e::argocd_health(&object);
        assert_eq!(
            (got_status.as_str(), got_message.as_str()),
            (status, message),
            "{object}"
        );
    }
}
