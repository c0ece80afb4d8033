//! The Helm chart without a node: `helm lint`, what it renders accepted by a real API server in both
//! RBAC modes, its values schema refusing typos and wrong types, and `deploy/operator.yaml` rendered
//! from it. (`node.rs` installs it on a node.)
// Runs Linux processes (receivers, signals, Kubernetes); the Windows build has its own smoke test.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use azlog_e2e::kube_cluster::{ADMIN_TOKEN, Cluster, OperatorProcess};
use azlog_e2e::log_source;
use azlog_operator::crd::LogSource;
use azlog_test_support::collector::workspace_binary;
use azlog_test_support::wait::eventually;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};

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
        ("watchNamespaces={Team_A}", "watchNamespaces"),
        ("watchNamespace=team-a", "watchNamespace"),
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
    cluster.kubectl(&["create", "namespace", "team-b"]);
    let kubectl = PathBuf::from("kubectl");
    for (mode, values) in [
        ("cluster-wide", vec![]),
        (
            "namespaced",
            vec![
                "watchNamespaces={team-a,team-b}",
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
                assert!(
                    manifest.contains("namespace: team-a")
                        && manifest.contains("namespace: team-b"),
                    "a Role in each watched namespace: {manifest}"
                );
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

#[tokio::test]
async fn in_namespaced_mode_the_operator_works_with_roles_only_and_leaves_other_namespaces_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path()).await;
    let kubeconfig = cluster.kubeconfig("admin", ADMIN_TOKEN);
    for namespace in ["azlog-system", "team-a", "team-b", "team-c"] {
        cluster.kubectl(&["create", "namespace", namespace]);
    }
    let rendered = template(&["watchNamespaces={team-a,team-b}", "replicas=1"]);
    assert!(rendered.status.success(), "{}", text(&rendered));
    let applied = run(
        &PathBuf::from("kubectl"),
        &["apply", "-f", "-"],
        Some(&rendered.stdout),
        &[("KUBECONFIG", &kubeconfig)],
    );
    assert!(applied.status.success(), "{}", text(&applied));
    let operator_user = "system:serviceaccount:azlog-system:azlog-operator";
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        all.extend(["--as", operator_user]);
        let out = run(
            &PathBuf::from("kubectl"),
            &all,
            None,
            &[("KUBECONFIG", &kubeconfig)],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(can(&["create", "deployments", "-n", "team-a"]), "yes");
    for refused in [
        vec!["list", "deployments", "--all-namespaces"],
        vec!["get", "secrets", "-n", "team-c"],
        // Secrets are read one by one by name, never listed: a listing holds every value.
        vec!["list", "secrets", "-n", "team-a"],
        vec!["create", "deployments", "-n", "team-c"],
        vec!["list", "logsources", "-n", "kube-system"],
    ] {
        assert_eq!(can(&refused), "no", "{refused:?}");
    }

    // The operator with exactly those rights.
    let token = cluster
        .service_account_token("azlog-system", "azlog-operator")
        .await;
    let _operator = OperatorProcess::start(
        &cluster,
        &workspace_binary("azlog-operator"),
        dir.path(),
        &token,
        &[
            "--collector-image",
            "azlog/collector:test",
            "--namespace",
            "team-a,team-b",
            "--lease-namespace",
            "azlog-system",
        ],
    );
    let admin = cluster.client(ADMIN_TOKEN);
    let spec =
        serde_json::json!({"simulate": {}, "outputs": [{"syslog": {"address": "siem:514"}}]});
    for namespace in ["team-a", "team-b", "team-c"] {
        Api::<LogSource>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &log_source("audit", spec.clone()))
            .await
            .expect("create a LogSource");
    }
    for namespace in ["team-a", "team-b"] {
        let deployments: Api<Deployment> = Api::namespaced(admin.clone(), namespace);
        eventually(
            &format!("the LogSource in {namespace} gets its collector"),
            Duration::from_secs(60),
            || async { deployments.get_opt("azlog-audit").await.ok().flatten() },
        )
        .await;
    }
    let unwatched = Api::<LogSource>::namespaced(admin.clone(), "team-c");
    assert!(
        unwatched
            .get("audit")
            .await
            .expect("the LogSource")
            .status
            .is_none(),
        "a LogSource outside the watched namespaces is not touched"
    );
    assert!(
        Api::<Deployment>::namespaced(admin, "team-c")
            .get_opt("azlog-audit")
            .await
            .expect("get")
            .is_none()
    );
    let log = std::fs::read_to_string(dir.path().join("operator.log")).unwrap_or_default();
    assert!(
        !log.contains("403"),
        "the operator needed a right it lacks: {log}"
    );
}
