//! `kubectl azlog` against a real kube-apiserver: each verb, `--dry-run` output applied back equal
//! to what the verb applies, keys kept in Secrets, and mistakes refused before any request.
// Runs Kubernetes processes; the Windows build has its own smoke test.
#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Output};

use azlog_e2e::kube_cluster::{ADMIN_TOKEN, Cluster};
use azlog_operator::crd::{LogSource, SubscriptionAuthorization};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c";
const ADMIN: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const S1: &str = "11111111-0000-4000-8000-000000000001";
const S2: &str = "11111111-0000-4000-8000-000000000002";

/// Runs the plugin with `kubeconfig`; answers its output.
fn plugin(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-azlog"))
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl-azlog")
}

/// The same, with the arguments written as one line (no argument holds a space).
fn plugin_line(kubeconfig: &Path, line: &str) -> Output {
    plugin(kubeconfig, &line.split_whitespace().collect::<Vec<_>>())
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "kubectl azlog failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "kubectl azlog should fail: {output:?}"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn cluster() -> (tempfile::TempDir, Cluster, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path()).await;
    let kubeconfig = cluster.kubeconfig("admin", ADMIN_TOKEN);
    (dir, cluster, kubeconfig)
}

#[tokio::test]
async fn source_add_applies_exactly_what_dry_run_prints_and_keeps_keys_in_secrets() {
    let (dir, cluster, kubeconfig) = cluster().await;
    let sources: Api<LogSource> = Api::namespaced(cluster.client(ADMIN_TOKEN), "default");
    let args = [
        "source",
        "add",
        "web",
        "wad",
        "contosodiag",
        "--key-secret",
        "diag/key1",
        "--table",
        "WADLogsTable",
        "--syslog",
        "siem.example:6514",
        "--tls",
        "--body",
        "cef",
        "--files",
        "--format",
        "jsonld",
    ];
    let printed = ok(&plugin(&kubeconfig, &[&args[..], &["--dry-run"]].concat()));
    let manifest = dir.path().join("web.yaml");
    std::fs::write(&manifest, &printed).expect("write");
    cluster.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    let from_manifest = sources
        .get("web")
        .await
        .expect("applied from the dry run")
        .spec;
    cluster.kubectl(&["delete", "logsource", "web"]);
    let said = ok(&plugin(&kubeconfig, &args));
    assert!(
        said.contains("logsource.azlog.io/web applied in namespace default"),
        "{said}"
    );
    let applied = sources.get("web").await.expect("applied by the verb").spec;
    assert_eq!(
        serde_json::to_value(&applied).expect("json"),
        serde_json::to_value(&from_manifest).expect("json"),
        "the dry run prints what the verb applies"
    );
    assert_eq!(
        applied.wad.as_ref().map(|w| w.account.as_str()),
        Some("contosodiag")
    );

    // A key on the command line goes to a Secret the LogSource owns, never into the LogSource.
    ok(&plugin_line(
        &kubeconfig,
        "source add vm wad contosodiag --key c2VjcmV0LWtleQ== --files",
    ));
    let source = sources.get("vm").await.expect("vm");
    let text = serde_json::to_string(&source).expect("json");
    assert!(
        !text.contains("c2VjcmV0LWtleQ=="),
        "the key is not in the LogSource: {text}"
    );
    let secret = Api::<Secret>::namespaced(cluster.client(ADMIN_TOKEN), "default")
        .get("azlog-vm-storage")
        .await
        .expect("the key's Secret");
    assert_eq!(
        secret.data.as_ref().expect("data")["accountKey"].0,
        b"c2VjcmV0LWtleQ=="
    );
    assert!(
        secret
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "LogSource" && o.name == "vm")
    );
    let label = secret.labels().get("azlog.io/logsource-access");
    assert_eq!(label.map(String::as_str), Some("true"));
    let refused = failed(&plugin_line(
        &kubeconfig,
        "source add vm wad contosodiag --key k --files --dry-run",
    ));
    assert!(refused.contains("--key-secret"), "{refused}");

    // -n puts it elsewhere; --context picks another context of the kubeconfig.
    cluster.kubectl(&["create", "namespace", "team"]);
    ok(&plugin(
        &kubeconfig,
        &["-n", "team", "source", "add", "sim", "simulate", "--files"],
    ));
    let team: Api<LogSource> = Api::namespaced(cluster.client(ADMIN_TOKEN), "team");
    assert!(team.get_opt("sim").await.expect("get").is_some());
    let two_contexts = dir.path().join("two-contexts");
    let text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig").replace(
        "current-context: test",
        "- name: team\n  context: {cluster: test, user: test, namespace: team}\ncurrent-context: test",
    );
    std::fs::write(&two_contexts, text).expect("write");
    let listed = ok(&plugin(
        &two_contexts,
        &["--context", "team", "source", "list"],
    ));
    assert!(
        listed.contains("sim") && !listed.contains("web"),
        "{listed}"
    );
}

#[test]
fn mistakes_are_refused_before_any_request() {
    // A cluster that does not answer: any request would fail with a connection error instead.
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("nowhere");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster: {server: 'https://127.0.0.1:9'}\nusers:\n- name: x\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: x, user: x}\ncurrent-context: x\n",
    )
    .expect("write");
    let account = failed(&plugin(
        &kubeconfig,
        &[
            "source",
            "add",
            "web",
            "wad",
            "Not_An_Account",
            "--key-secret",
            "k",
            "--files",
        ],
    ));
    assert!(account.contains("spec.wad.account"), "{account}");
    let subscription = failed(&plugin(
        &kubeconfig,
        &[
            "source",
            "add",
            "act",
            "activity-log",
            "12345",
            "--files",
            "--workload-identity",
            &format!("{TENANT}/{CLIENT}"),
        ],
    ));
    assert!(
        subscription.contains("spec.activityLog.subscriptions[0]"),
        "{subscription}"
    );
    let authorize = failed(&plugin(
        &kubeconfig,
        &[
            "authorize",
            "not-a-subscription",
            "--tenant",
            TENANT,
            "--client-id",
            CLIENT,
        ],
    ));
    assert!(
        authorize.contains("spec.subscriptionIds[0]: 'not-a-subscription' is not a GUID"),
        "{authorize}"
    );
    for text in [&account, &subscription, &authorize] {
        assert!(!text.contains("127.0.0.1:9"), "no request was made: {text}");
    }
    let role = failed(&plugin(
        &kubeconfig,
        &[
            "authorize",
            S1,
            "--tenant",
            TENANT,
            "--client-id",
            CLIENT,
            "--role",
            "Reeder",
        ],
    ));
    assert!(
        role.contains("spec.role: 'Reeder' is not a built-in role"),
        "{role}"
    );
}

#[tokio::test]
async fn list_status_and_delete_show_what_azlog_exe_showed_and_more() {
    let (_dir, cluster, kubeconfig) = cluster().await;
    let empty = plugin(&kubeconfig, &["source", "list"]);
    ok(&empty);
    assert!(String::from_utf8_lossy(&empty.stderr).contains("No LogSources in namespace default"));
    ok(&plugin(
        &kubeconfig,
        &["source", "add", "sim", "simulate", "--syslog", "siem:514"],
    ));
    let waiting = ok(&plugin(&kubeconfig, &["source", "status", "sim"]));
    assert!(
        waiting.contains("is the azlog operator running?"),
        "{waiting}"
    );
    // What the operator and the collector would report.
    let sources: Api<LogSource> = Api::namespaced(cluster.client(ADMIN_TOKEN), "default");
    sources
        .patch_status("sim", &PatchParams::default(), &Patch::Merge(json!({"status": {
            "conditions": [{"type": "Ready", "status": "False", "reason": "OutputFailing", "message": "delivering to output syslog-0 fails; check that the receiver is reachable",
                            "lastTransitionTime": "2026-12-01T10:00:00Z"}],
            "lastEventTime": "2026-12-01T09:59:00Z", "lagSeconds": 42, "eventsDelivered": 1234,
            "lastError": {"component": "output", "output": "syslog-0", "message": "connection refused", "since": "2026-12-01T09:58:00Z"},
        }})))
        .await
        .expect("status");
    let listed = ok(&plugin(&kubeconfig, &["source", "list"]));
    let row = listed
        .lines()
        .find(|l| l.starts_with("sim"))
        .expect("a row for sim");
    for cell in [
        "simulate",
        "False",
        "OutputFailing",
        "2026-12-01T09:59:00Z",
        "42s",
        "1234",
    ] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    assert!(listed.starts_with("NAME"), "{listed}");
    let status = ok(&plugin(&kubeconfig, &["source", "status", "sim"]));
    for part in [
        "Ready",
        "OutputFailing",
        "connection refused",
        "What to do (OutputFailing)",
        "check that the receiver is reachable",
    ] {
        assert!(status.contains(part), "{part} in {status}");
    }
    let deleted = ok(&plugin(&kubeconfig, &["source", "delete", "sim"]));
    assert!(deleted.contains("deleted"), "{deleted}");
    let gone = failed(&plugin(&kubeconfig, &["source", "status", "sim"]));
    assert!(gone.contains("not found") && gone.contains("-n"), "{gone}");
    // A reader that goes away early is not an error.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-azlog"))
        .env("KUBECONFIG", &kubeconfig)
        .args(["source", "add", "x", "simulate", "--files", "--dry-run"])
        .stdout(closed_pipe())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read");
    assert!(
        status.success() && !stderr.contains("panicked"),
        "{status:?} {stderr}"
    );
}

/// A pipe whose reader is already gone.
fn closed_pipe() -> std::process::Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer.into()
}

#[tokio::test]
async fn authorize_and_createazureid_write_subscription_authorizations() {
    let (_dir, cluster, kubeconfig) = cluster().await;
    let said = ok(&plugin(
        &kubeconfig,
        &[
            "authorize",
            S1,
            S2,
            "--tenant",
            TENANT,
            "--client-id",
            CLIENT,
            "--role",
            "Security Reader",
            "--audit-logs",
            "--admin-client-id",
            ADMIN,
            "--admin-secret",
            "azure-admin",
            "--name",
            "collector",
        ],
    ));
    assert!(said.contains("kubectl get subauth collector"), "{said}");
    let api: Api<SubscriptionAuthorization> =
        Api::namespaced(cluster.client(ADMIN_TOKEN), "default");
    let spec = api.get("collector").await.expect("created").spec;
    assert_eq!(spec.subscription_ids, [S1, S2]);
    assert_eq!(spec.principal.client_id.as_deref(), Some(CLIENT));
    assert_eq!(spec.role.as_deref(), Some("Security Reader"));
    assert_eq!(spec.audit_logs, Some(true));
    let admin = spec.admin_credential_ref.expect("admin credential");
    assert_eq!(
        (
            admin.client_id.as_str(),
            admin.client_secret.name.as_str(),
            admin.client_secret.key.as_str()
        ),
        (ADMIN, "azure-admin", "clientSecret")
    );

    let printed = ok(&plugin(
        &kubeconfig,
        &[
            "createazureid",
            S1,
            "--tenant",
            TENANT,
            "--service-account",
            "azlog-activity",
            "--issuer",
            "https://oidc.example/cluster",
            "--dry-run",
        ],
    ));
    let resource: SubscriptionAuthorization =
        serde_yaml::from_str(printed.trim_start_matches("---\n")).expect("YAML");
    let create = resource.spec.principal.create.expect("create");
    let federated = create.federated_credential.expect("federated credential");
    assert_eq!(
        (
            federated.issuer.as_str(),
            federated.service_account.as_str()
        ),
        ("https://oidc.example/cluster", "azlog-activity")
    );
    assert!(
        api.get_opt("azlog-collector").await.expect("get").is_none(),
        "a dry run applies nothing"
    );
}
