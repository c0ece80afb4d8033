//! The operator against a real kube-apiserver, etcd and kube-controller-manager: LogSources
//! created, changed, broken, deleted; children edited behind its back; the operator killed.
// Runs Linux processes (receivers, signals, Kubernetes); the Windows build has its own smoke test.
#![cfg(unix)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use azlog_collector::config::report::Component;
use azlog_e2e::host_collector::{PodOnHost, syslog_counter};
use azlog_e2e::kube_cluster::{ADMIN_TOKEN, Cluster, OperatorProcess};
use azlog_e2e::log_source;
use azlog_operator::crd::LogSource;
use azlog_test_support::collector::{collector_binary, file_output_ids, workspace_binary};
use azlog_test_support::http::http_get;
use azlog_test_support::metrics::metric;
use azlog_test_support::ports::free_port;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(60);

fn simulate_to(address: &str) -> Value {
    json!({"simulate": {"rate": 5.0}, "outputs": [{"syslog": {"address": address}}]})
}

/// A control plane in a fresh directory, which holds its data and logs until the test ends.
async fn start_cluster() -> (tempfile::TempDir, Cluster) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path()).await;
    (dir, cluster)
}

/// Polls `check` until it answers Some, or fails the test saying what did not happen.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    check: impl FnMut() -> F,
) -> T {
    azlog_test_support::wait::eventually(what, WAIT, check).await
}

/// The operator binary, run on the host against the test cluster with the RBAC of
/// `deploy/operator.yaml`.
async fn start_operator(cluster: &Cluster, dir: &Path) -> OperatorProcess {
    start_operator_with(cluster, dir, &[]).await
}

/// The same, with `policy` flags added: what a cluster admin sets through the chart.
async fn start_operator_with(cluster: &Cluster, dir: &Path, policy: &[&str]) -> OperatorProcess {
    let binary = workspace_binary("azlog-operator");
    let token = cluster.operator_token().await;
    let mut args = vec![
        "--collector-image",
        "azlog/collector:test",
        "--log-level",
        "azlog_operator=debug,info",
    ];
    args.extend_from_slice(policy);
    OperatorProcess::start(cluster, &binary, dir, &token, &args)
}

/// The reasons of the Events about LogSource `name`.
fn event_reasons(cluster: &Cluster, name: &str) -> String {
    cluster.kubectl(&[
        "get",
        "events",
        "-n",
        NS,
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "-o",
        "jsonpath={.items[*].reason}",
    ])
}

fn ready(source: &LogSource) -> Option<(String, String, String)> {
    source
        .condition("Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits for the collector Deployment `name`, saying `why` it should come, and answers it.
async fn collector_appears(deployments: &Api<Deployment>, name: &str, why: &str) -> Deployment {
    eventually(why, || async {
        deployments.get_opt(name).await.ok().flatten()
    })
    .await
}

/// Fails the test when LogSource `name`'s collector Deployment exists.
async fn assert_no_collector(deployments: &Api<Deployment>, name: &str, why: &str) {
    let found = deployments.get_opt(name).await.expect("get the Deployment");
    assert!(found.is_none(), "{name}: {why}");
}

fn config_hash(deployment: &Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("azlog.io/config-hash").cloned())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_crds_are_accepted_and_the_api_server_checks_their_schema() {
    let (_dir, cluster) = start_cluster().await;
    let api: Api<LogSource> = Api::namespaced(cluster.client(ADMIN_TOKEN), NS);
    api.create(
        &PostParams::default(),
        &log_source("demo", simulate_to("siem:514")),
    )
    .await
    .expect("a valid LogSource is stored");
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        cluster.client(ADMIN_TOKEN),
        NS,
        &kube::discovery::ApiResource::erase::<LogSource>(&()),
    );
    let bad = json!({
        "apiVersion": "azlog.io/v1alpha1", "kind": "LogSource", "metadata": {"name": "bad"},
        "spec": {"simulate": {}, "outputs": [{"syslog": {"address": "siem:514", "transport": "carrier-pigeon"}}]},
    });
    let refused = raw
        .create(
            &PostParams::default(),
            &serde_json::from_value(bad).expect("object"),
        )
        .await
        .expect_err("an unknown transport is refused");
    let text = refused.to_string();
    assert!(
        text.contains("spec.outputs.syslog.transport") && text.contains("carrier-pigeon"),
        "{text}"
    );

    // What a user sees through kubectl.
    let kubectl = |args: &[&str]| cluster.kubectl(args);
    let table = kubectl(&["get", "logsources"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "SOURCE", "READY", "LAST", "EVENT", "LAG", "AGE"],
        "{table}"
    );
    assert!(
        kubectl(&["get", "ls"]).contains("demo"),
        "the short name works"
    );
    // The API server publishes a new CRD's schema to its OpenAPI document a few seconds after
    // the CRD is established.
    let deadline = Instant::now() + WAIT;
    while !Command::new("kubectl")
        .env("KUBECONFIG", cluster.kubeconfig("kubectl", ADMIN_TOKEN))
        .args(["explain", "logsource"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(
            Instant::now() < deadline,
            "kubectl explain never found LogSource"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let explained = kubectl(&["explain", "logsource.spec.wad"]);
    assert!(
        explained.contains("azlog source add") && explained.contains("accountKey\t<Object>"),
        "{explained}"
    );
    let explained = kubectl(&["explain", "logsource.spec.outputs.syslog.body"]);
    assert!(
        explained.contains("cef (ArcSight), leef (QRadar)"),
        "{explained}"
    );
}

#[tokio::test]
async fn a_logsource_gets_its_collector_which_rolls_on_change_heals_drift_and_goes_with_it() {
    let (dir, cluster) = start_cluster().await;
    let client = cluster.client(ADMIN_TOKEN);
    let _operator = start_operator(&cluster, dir.path()).await;
    let sources: Api<LogSource> = Api::namespaced(client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);

    sources
        .create(
            &PostParams::default(),
            &log_source("audit", simulate_to("siem-a:514")),
        )
        .await
        .expect("create");
    let first = collector_appears(
        &deployments,
        "azlog-audit",
        "the collector Deployment exists",
    )
    .await;
    let owner = &first.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("LogSource", "audit")
    );
    let config = config_maps.get("azlog-audit").await.expect("the ConfigMap");
    assert!(config.data.unwrap_or_default()["collector.yaml"].contains("siem-a:514"));
    accounts
        .get("azlog-audit")
        .await
        .expect("the ServiceAccount");
    let status = eventually("the status says why the collector is not ready", || async {
        let s = sources.get("audit").await.ok()?;
        let ready = ready(&s)?;
        (ready.1 == "CollectorNotAvailable").then_some(s)
    })
    .await;
    let status = status.status.expect("status");
    assert_eq!(status.source.as_deref(), Some("simulate"));
    assert_eq!(status.observed_generation, Some(1));

    // A spec change rewrites the config and rolls the pod template.
    sources
        .patch(
            "audit",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"outputs": [{"syslog": {"address": "siem-b:514"}}]}})),
        )
        .await
        .expect("update");
    let rolled = eventually("the pod template carries the new config hash", || async {
        let d = deployments.get("azlog-audit").await.ok()?;
        (config_hash(&d) != config_hash(&first)).then_some(d)
    })
    .await;
    let config = config_maps.get("azlog-audit").await.expect("the ConfigMap");
    assert!(config.data.unwrap_or_default()["collector.yaml"].contains("siem-b:514"));

    // Someone scales the collector and swaps its image: both are put back.
    deployments
        .patch(
            "azlog-audit",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "collector", "image": "evil/collector:latest"}]}}}})),
        )
        .await
        .expect("drift");
    eventually("the operator repairs the drift", || async {
        let d = deployments.get("azlog-audit").await.ok()?;
        let spec = d.spec.as_ref()?;
        let image = spec.template.spec.as_ref()?.containers[0].image.clone()?;
        (spec.replicas == Some(1) && image == "azlog/collector:test").then_some(())
    })
    .await;
    assert_eq!(config_hash(&rolled), {
        let d = deployments.get("azlog-audit").await.expect("deployment");
        config_hash(&d)
    });

    // Deleting the LogSource takes its children with it (the garbage collector follows owners).
    sources
        .delete("audit", &DeleteParams::foreground())
        .await
        .expect("delete");
    eventually("the children are garbage-collected", || async {
        let gone = deployments.get_opt("azlog-audit").await.ok()?.is_none()
            && config_maps.get_opt("azlog-audit").await.ok()?.is_none()
            && accounts.get_opt("azlog-audit").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
}

#[tokio::test]
async fn invalid_specs_and_missing_secrets_get_a_status_that_says_what_to_fix_and_recover() {
    let (dir, cluster) = start_cluster().await;
    let client = cluster.client(ADMIN_TOKEN);
    let _operator = start_operator(&cluster, dir.path()).await;
    let sources: Api<LogSource> = Api::namespaced(client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);

    // Two sources in one LogSource, and a lateArrival that is not a duration.
    sources
        .create(
            &PostParams::default(),
            &log_source(
                "confused",
                json!({"simulate": {}, "activityLog": {}, "outputs": [{"syslog": {"address": "s:514"}}]}),
            ),
        )
        .await
        .expect("create");
    let (status, reason, message) = eventually("the invalid spec is reported", || async {
        ready(&sources.get("confused").await.ok()?)
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(
        message.contains("activityLog and simulate are set"),
        "{message}"
    );
    sources
        .patch(
            "confused",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"simulate": null, "subscriptionId": "00000000-0000-0000-0000-000000000001",
                "lateArrival": "a while", "credential": {"managedIdentity": {}}}})),
        )
        .await
        .expect("update");
    let message = eventually("the bad duration is reported at its field", || async {
        let (_, reason, message) = ready(&sources.get("confused").await.ok()?)?;
        (reason == "InvalidSpec" && message.contains("spec.lateArrival")).then_some(message)
    })
    .await;
    assert!(message.contains("a while"), "{message}");
    assert_no_collector(
        &deployments,
        "azlog-confused",
        "no collector for an invalid spec",
    )
    .await;

    // A storage account key in a Secret that does not exist yet.
    sources
        .create(
            &PostParams::default(),
            &log_source(
                "wad",
                json!({"wad": {"account": "diagstore", "accountKey": {"name": "diagstore-key", "key": "key1"}},
                       "outputs": [{"file": {}}]}),
            ),
        )
        .await
        .expect("create");
    let message = eventually("the missing Secret is reported", || async {
        let (_, reason, message) = ready(&sources.get("wad").await.ok()?)?;
        (reason == "SecretNotFound").then_some(message)
    })
    .await;
    assert!(
        message.contains("Secret diagstore-key does not exist") && message.contains("key1"),
        "{message}"
    );
    assert_no_collector(&deployments, "azlog-wad", "no collector yet").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "diagstore-key"},
        "stringData": {"key1": "c2VjcmV0"},
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the Secret");
    // The Secret exists but is not meant for LogSources: nothing mounts it.
    let message = eventually("the Secret without the opt-in label is refused", || async {
        let (_, reason, message) = ready(&sources.get("wad").await.ok()?)?;
        (reason == "SecretNotAllowed").then_some(message)
    })
    .await;
    assert!(
        message.contains(&format!(
            "kubectl label secret diagstore-key -n {NS} {}=true",
            azlog_operator::policy::SECRET_ACCESS_LABEL
        )),
        "{message}"
    );
    assert_no_collector(
        &deployments,
        "azlog-wad",
        "no pod mounts a Secret that did not opt in",
    )
    .await;
    secrets
        .patch(
            "diagstore-key",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {azlog_operator::policy::SECRET_ACCESS_LABEL: "true"}}})),
        )
        .await
        .expect("label the Secret");
    let deployment = collector_appears(
        &deployments,
        "azlog-wad",
        "the collector starts once the Secret opts in",
    )
    .await;
    let volumes = deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.volumes)
        .unwrap_or_default();
    assert!(
        volumes
            .iter()
            .any(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref())
                == Some("diagstore-key")),
        "the Secret is mounted, by reference"
    );
    let config = Api::<ConfigMap>::namespaced(client, NS)
        .get("azlog-wad")
        .await
        .expect("ConfigMap");
    assert!(
        !config.data.unwrap_or_default()["collector.yaml"].contains("c2VjcmV0"),
        "the Secret's value is never copied into the ConfigMap"
    );
}

#[tokio::test]
async fn the_operators_policy_refuses_images_host_processes_and_endpoints_it_does_not_allow() {
    let (dir, cluster) = start_cluster().await;
    let client = cluster.client(ADMIN_TOKEN);
    let _operator = start_operator_with(
        &cluster,
        dir.path(),
        &["--allow-forwarder-image", "registry.example/fluent-bit:*"],
    )
    .await;
    let sources: Api<LogSource> = Api::namespaced(client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let refused = [
        (
            "own-image",
            json!({"simulate": {}, "collector": {"image": "attacker/miner:1"}, "outputs": [{"syslog": {"address": "s:514"}}]}),
            "spec.collector.image",
        ),
        (
            "sidecar",
            json!({"simulate": {}, "outputs": [{"forwarder": {"image": "attacker/shell:1", "args": ["-c", "cat /var/run/secrets/*"]}}]}),
            "spec.outputs[0].forwarder.image",
        ),
        (
            "host-process",
            json!({"simulate": {}, "outputs": [{"windowsEventLog": {}}]}),
            "spec.outputs[0].windowsEventLog",
        ),
        (
            "token-thief",
            json!({"activityLog": {}, "subscriptionId": "00000000-0000-0000-0000-000000000001",
                   "credential": {"managedIdentity": {}},
                   "endpoints": {"resourceManager": "https://arm.attacker.example"},
                   "outputs": [{"syslog": {"address": "s:514"}}]}),
            "spec.endpoints.resourceManager",
        ),
    ];
    for (name, spec, _) in &refused {
        sources
            .create(&PostParams::default(), &log_source(name, spec.clone()))
            .await
            .expect("create");
    }
    for (name, _, field) in &refused {
        let (status, reason, message) = eventually("the policy refusal is reported", || async {
            let ready = ready(&sources.get(name).await.ok()?)?;
            (ready.1 == "PolicyRefused").then_some(ready)
        })
        .await;
        assert_eq!(status, "False");
        assert!(
            message.contains(field) && message.contains("policy."),
            "{name}: the refusal names {field} and the setting: {reason}: {message}"
        );
        assert_no_collector(
            &deployments,
            &format!("azlog-{name}"),
            "no collector runs what the policy refuses",
        )
        .await;
        let events = event_reasons(&cluster, name);
        assert!(
            events.contains("PolicyRefused"),
            "{name}: a Warning Event: {events}"
        );
    }
    // What the policy names is allowed.
    sources
        .create(
            &PostParams::default(),
            &log_source(
                "allowed",
                json!({"simulate": {}, "outputs": [{"forwarder": {"image": "registry.example/fluent-bit:3.1"}}]}),
            ),
        )
        .await
        .expect("create");
    collector_appears(
        &deployments,
        "azlog-allowed",
        "an allowed forwarder gets its collector",
    )
    .await;
}

#[tokio::test]
async fn children_never_collide_take_over_an_object_or_fail_without_a_condition() {
    let (dir, cluster) = start_cluster().await;
    let client = cluster.client(ADMIN_TOKEN);
    let _operator = start_operator(&cluster, dir.path()).await;
    let sources: Api<LogSource> = Api::namespaced(client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    // Somebody's ConfigMap under the name a LogSource's config would take.
    let theirs: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "azlog-squatter"},
        "data": {"owner": "the payments team"},
    }))
    .expect("configmap");
    config_maps
        .create(&PostParams::default(), &theirs)
        .await
        .expect("create their ConfigMap");
    let long = "l".repeat(64);
    let cases = [
        (
            "squatter",
            json!({}),
            "NameConflict",
            "ConfigMap azlog-squatter exists and does not belong to this LogSource",
        ),
        (
            "demo-checkpoint",
            json!({}),
            "InvalidSpec",
            "metadata.name: \"demo-checkpoint\" ends with \"-checkpoint\"",
        ),
        (long.as_str(), json!({}), "InvalidSpec", "metadata.name"),
        (
            "greedy",
            json!({"collector": {"resources": {"limits": {"memory": "lots"}}}}),
            "ApplyFailed",
            "the API server refused Deployment azlog-greedy (",
        ),
    ];
    for (name, extra, _, _) in &cases {
        let mut spec = simulate_to("siem:514");
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        sources
            .create(&PostParams::default(), &log_source(name, spec))
            .await
            .expect("create");
    }
    for (name, _, expected, words) in &cases {
        let what = format!("{name}: {expected} is reported");
        let (status, reason, message) = eventually(&what, || async {
            let ready = ready(&sources.get(name).await.ok()?)?;
            (ready.1 == *expected).then_some(ready)
        })
        .await;
        assert_eq!(status, "False");
        assert!(message.contains(words), "{name}: {reason}: {message}");
    }
    let kept = config_maps
        .get("azlog-squatter")
        .await
        .expect("their ConfigMap");
    assert_eq!(
        kept.data
            .unwrap_or_default()
            .get("owner")
            .map(String::as_str),
        Some("the payments team"),
        "their ConfigMap is left as it was"
    );
    assert!(kept.metadata.owner_references.is_none(), "and not adopted");
    assert_no_collector(
        &deployments,
        "azlog-squatter",
        "no collector over a name conflict",
    )
    .await;
    // Their ConfigMap gone, the LogSource gets its collector.
    config_maps
        .delete("azlog-squatter", &DeleteParams::default())
        .await
        .expect("delete their ConfigMap");
    collector_appears(
        &deployments,
        "azlog-squatter",
        "the collector starts once the name is free",
    )
    .await;
}

#[tokio::test]
async fn an_operator_killed_mid_reconcile_converges_after_restart_and_then_writes_nothing() {
    let (dir, cluster) = start_cluster().await;
    let client = cluster.client(ADMIN_TOKEN);
    let sources: Api<LogSource> = Api::namespaced(client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let count = 30;
    let operator = start_operator(&cluster, dir.path()).await;
    for i in 0..count {
        sources
            .create(
                &PostParams::default(),
                &log_source(&format!("src-{i}"), simulate_to(&format!("siem-{i}:514"))),
            )
            .await
            .expect("create");
    }
    // Killed as soon as it has written something, with most sources still to do.
    eventually("the operator has started writing", || async {
        let n = deployments
            .list(&Default::default())
            .await
            .ok()?
            .items
            .len();
        (n > 0).then_some(())
    })
    .await;
    operator.kill();
    let done_before = deployments
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .len();

    let operator = start_operator(&cluster, dir.path()).await;
    eventually("every LogSource has its collector and a status", || async {
        let listed = sources.list(&Default::default()).await.ok()?;
        let with_status = listed.items.iter().filter(|s| ready(s).is_some()).count();
        let deployed = deployments
            .list(&Default::default())
            .await
            .ok()?
            .items
            .len();
        (with_status == count && deployed == count).then_some(())
    })
    .await;
    assert!(
        done_before < count,
        "the kill came before the work was done ({done_before} of {count})"
    );

    // A third operator finds everything as it should be: it reconciles every LogSource and writes
    // nothing.
    operator.kill();
    let operator = start_operator(&cluster, dir.path()).await;
    eventually(
        "the new operator has reconciled every LogSource",
        || async {
            let ok = operator
                .metric("azlog_operator_reconciles_total", &["result=\"ok\""])
                .await?;
            (ok >= count as f64).then_some(())
        },
    )
    .await;
    let writes = operator
        .metric("azlog_operator_api_writes_total", &[])
        .await
        .unwrap_or(-1.0);
    assert_eq!(writes, 0.0, "a converged LogSource costs no write");
}

#[tokio::test]
async fn a_sas_never_appears_in_logs_status_events_readyz_or_dead_letters() {
    let (dir, cluster) = start_cluster().await;
    let admin = cluster.client(ADMIN_TOKEN);
    let _operator = start_operator_with(
        &cluster,
        dir.path(),
        &["--allow-endpoint-host", "127.0.0.1"],
    )
    .await;
    const SIG: &str = "Zm9yZ2VkLXNhcy1zaWduYXR1cmU%3D";
    let sas =
        format!("?sv=2022-11-02&ss=t&srt=sco&sp=rl&se=2030-01-01T00:00:00Z&spr=https&sig={SIG}");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "diag-sas", "labels": {azlog_operator::policy::SECRET_ACCESS_LABEL: "true"}},
        "stringData": {"sas": sas},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the Secret");
    // Nothing listens on the storage endpoint: every request fails in transport, whose errors
    // quote the URL, SAS and all.
    let closed = free_port();
    let sources: Api<LogSource> = Api::namespaced(admin.clone(), NS);
    sources
        .create(
            &PostParams::default(),
            &log_source(
                "leaky",
                json!({"wad": {"account": "diagstore", "endpoint": format!("https://127.0.0.1:{closed}/diagstore"),
                               "sasToken": {"name": "diag-sas", "key": "sas"}},
                       "startAt": "Earliest",
                       "outputs": [{"syslog": {"address": format!("127.0.0.1:{}", free_port())}}]}),
            ),
        )
        .await
        .expect("create");
    let sas_file = dir.path().join("sas");
    std::fs::write(&sas_file, &sas).expect("write the SAS");
    let pod = PodOnHost::prepare(&cluster, dir.path(), "leaky", |config| {
        config["source"]["wad"]["sasTokenFile"] = sas_file.display().to_string().into();
    })
    .await;
    let mut collector = pod.run(&collector_binary());
    let degraded = eventually(
        "the source's failure reaches the Degraded condition",
        || async {
            let source = sources.get("leaky").await.ok()?;
            source
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Degraded" && c.status == "True")
        },
    )
    .await;
    assert_eq!(degraded.reason, "SourceFailing", "{degraded:?}");
    assert!(
        degraded.message.contains(&format!("127.0.0.1:{closed}")),
        "the message still says where: {}",
        degraded.message
    );
    let readyz = http_get(pod.health, "/readyz").1;
    let _ = collector.kill();
    let _ = collector.wait();
    let places = [
        ("/readyz", readyz),
        ("the Degraded condition", degraded.message.clone()),
        (
            "the LogSource",
            cluster.kubectl(&["get", "logsource", "leaky", "-n", NS, "-o", "json"]),
        ),
        (
            "the Events",
            cluster.kubectl(&["get", "events", "-n", NS, "-o", "json"]),
        ),
        (
            "the collector's log",
            std::fs::read_to_string(&pod.log).expect("collector log"),
        ),
        (
            "the operator's log",
            std::fs::read_to_string(dir.path().join("operator.log")).expect("operator log"),
        ),
        (
            "the dead letters",
            std::fs::read_to_string(dir.path().join("state/dead-letter.ndjson"))
                .unwrap_or_default(),
        ),
    ];
    assert!(
        places[4].1.contains("sig=REDACTED"),
        "the collector logged the failing URL, redacted: {}",
        places[4].1
    );
    for (place, text) in places {
        assert!(
            !text.contains(SIG),
            "the SAS signature is in {place}: {text}"
        );
        assert!(
            !text.contains("se=2030"),
            "the SAS expiry is in {place}: {text}"
        );
    }
}

#[tokio::test]
async fn two_collectors_on_one_checkpoint_take_turns_without_regressing_or_doubling_anything() {
    let (dir, cluster) = start_cluster().await;
    let admin = cluster.client(ADMIN_TOKEN);
    let _operator = start_operator(&cluster, dir.path()).await;
    let events = 600;
    Api::<LogSource>::namespaced(admin.clone(), NS)
        .create(
            &PostParams::default(),
            &log_source(
                "pair",
                json!({"simulate": {"rate": 30.0, "count": events, "seed": 9},
                       "outputs": [{"file": {}}]}),
            ),
        )
        .await
        .expect("create");
    // Two copies of the collector pod, each with its own files (a drifted replica, a debug run).
    let mut pods = Vec::new();
    for instance in ["first", "second"] {
        let home = dir.path().join(instance);
        std::fs::create_dir_all(&home).expect("dir");
        let out = home.join("out");
        pods.push(
            PodOnHost::prepare(&cluster, &home, "pair", |config| {
                config["outputs"][0]["file"]["directory"] = out.display().to_string().into();
            })
            .await,
        );
    }
    let out = |instance: &str| dir.path().join(instance).join("out");
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    let delivered = || async {
        let cm = config_maps.get("azlog-pair-checkpoint").await.ok()?;
        let text = cm.data?.get("checkpoint.json")?.clone();
        serde_json::from_str::<Value>(&text).ok()?["eventsDelivered"].as_u64()
    };
    // Every value the checkpoint takes, to show it never goes back.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let watcher = {
        let (seen, config_maps) = (seen.clone(), config_maps.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(cm) = config_maps.get("azlog-pair-checkpoint").await
                    && let Some(n) = cm
                        .data
                        .and_then(|d| d.get("checkpoint.json").cloned())
                        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                        .and_then(|v| v["eventsDelivered"].as_u64())
                {
                    seen.lock().expect("seen").push(n);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let mut first = pods[0].run(&collector_binary());
    eventually("the first collector delivers", || async {
        (delivered().await? >= 100).then_some(())
    })
    .await;
    let mut second = pods[1].run(&collector_binary());
    let standby = eventually("the second one reports that it stands by", || async {
        std::net::TcpStream::connect(("127.0.0.1", pods[1].health)).ok()?;
        let (status, body) = http_get(pods[1].health, "/readyz");
        (status == 503 && body.contains("standby")).then_some(body)
    })
    .await;
    assert!(standby.contains("Lease azlog-pair"), "{standby}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        file_output_ids(&out("second")).is_empty(),
        "the standby delivers nothing"
    );
    // The first stops (a rolled pod): it commits, gives up the Lease, and the second goes on.
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    assert!(
        first.wait().expect("wait").success(),
        "the first stops cleanly"
    );
    eventually("the second collector delivers the rest", || async {
        (delivered().await? == events).then_some(())
    })
    .await;
    watcher.abort();
    let _ = second.kill();
    let _ = second.wait();
    let values = seen.lock().expect("seen").clone();
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "the checkpoint went back: {values:?}"
    );
    let mut all = file_output_ids(&out("first"));
    let from_second = file_output_ids(&out("second"));
    assert!(!from_second.is_empty(), "the second took over");
    all.extend(from_second);
    let distinct: std::collections::HashSet<&String> = all.iter().collect();
    assert_eq!(
        (all.len(), distinct.len()),
        (events as usize, events as usize),
        "every event once across both collectors' files"
    );
}

#[tokio::test]
async fn the_collector_keeps_its_checkpoint_and_status_in_the_cluster_with_only_its_own_rbac() {
    use std::sync::atomic::Ordering;

    let (dir, cluster) = start_cluster().await;
    let admin = cluster.client(ADMIN_TOKEN);
    let _operator = start_operator(&cluster, dir.path()).await;
    // The receiver starts only once the collector has reported that it cannot reach it.
    let port = free_port();
    let sources: Api<LogSource> = Api::namespaced(admin.clone(), NS);
    let events = 300;
    for name in ["rbac", "neighbour"] {
        sources
            .create(
                &PostParams::default(),
                &log_source(
                    name,
                    json!({"simulate": {"rate": 200.0, "count": events, "seed": 3},
                           "outputs": [{"syslog": {"address": format!("127.0.0.1:{port}"), "framing": "newline"}}]}),
                ),
            )
            .await
            .expect("create");
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    let pod = PodOnHost::prepare(&cluster, dir.path(), "rbac", |_| {}).await;
    let token = pod.token.clone();
    let mut collector = pod.run(&collector_binary());
    let condition = |type_: &'static str| {
        let sources = sources.clone();
        async move {
            sources
                .get("rbac")
                .await
                .ok()?
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == type_)
        }
    };
    let degraded = eventually(
        "the collector reports its failing output and the operator sets Degraded",
        || async { condition("Degraded").await.filter(|c| c.status == "True") },
    )
    .await;
    assert_eq!(degraded.reason, "OutputFailing", "{degraded:?}");
    assert!(
        degraded.message.contains("syslog-0")
            && degraded
                .message
                .contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "the message names the output and the error: {}",
        degraded.message
    );
    let reported = sources
        .get("rbac")
        .await
        .expect("get")
        .status
        .expect("status");
    let last_error = reported.collector.last_error.expect("lastError");
    assert_eq!(
        (last_error.component, last_error.output.as_deref()),
        (Component::Output, Some("syslog-0"))
    );

    let received = syslog_counter(port).await;
    let checkpoint_events = || async {
        let cm = config_maps.get("azlog-rbac-checkpoint").await.ok()?;
        let text = cm.data?.get("checkpoint.json")?.clone();
        serde_json::from_str::<Value>(&text).ok()?["eventsDelivered"].as_u64()
    };
    eventually(
        "every event is delivered and checkpointed in the ConfigMap",
        || async { (checkpoint_events().await? == events).then_some(()) },
    )
    .await;
    assert_eq!(received.load(Ordering::SeqCst), events as usize);
    let status = eventually(
        "the collector reported its progress to the LogSource",
        || async {
            sources
                .get("rbac")
                .await
                .ok()?
                .status
                .filter(|s| s.collector.events_delivered.is_some())
        },
    )
    .await;
    assert!(
        status.collector.checkpoint.is_some() && status.collector.last_event_time.is_some(),
        "{status:?}"
    );
    eventually(
        "the operator turns the progress into Collecting=True",
        || async {
            let source = sources.get("rbac").await.ok()?;
            let collecting = source
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Collecting")?;
            (collecting.status == "True" && collecting.reason == "Delivering").then_some(())
        },
    )
    .await;
    eventually(
        "the collector reports the recovery and Degraded turns False",
        || async {
            let cleared = condition("Degraded").await?;
            (cleared.status == "False" && cleared.reason == "NoErrors").then_some(())
        },
    )
    .await;
    assert_eq!(
        sources
            .get("rbac")
            .await
            .expect("get")
            .status
            .expect("status")
            .collector
            .last_error,
        None
    );

    // Killed and started again (a rescheduled pod with no local state): it resumes from the
    // ConfigMap and delivers nothing twice.
    let _ = collector.kill();
    let _ = collector.wait();
    std::fs::remove_dir_all(dir.path().join("state")).ok();
    let mut collector = pod.run(&collector_binary());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(checkpoint_events().await, Some(events));
    assert_eq!(
        received.load(Ordering::SeqCst),
        events as usize,
        "nothing is delivered twice"
    );
    let _ = collector.kill();
    let _ = collector.wait();

    // The collector's identity can do its own work and nothing else.
    let as_collector = cluster.client(&token);
    let own: Api<ConfigMap> = Api::namespaced(as_collector.clone(), NS);
    own.get("azlog-rbac-checkpoint")
        .await
        .expect("its own checkpoint is readable");
    let forbidden =
        |r: Result<(), kube::Error>| matches!(r, Err(kube::Error::Api(s)) if s.code == 403);
    assert!(
        forbidden(own.get("azlog-neighbour-checkpoint").await.map(drop)),
        "another collector's checkpoint"
    );
    assert!(
        forbidden(own.get("azlog-rbac").await.map(drop)),
        "its config (mounted, not read)"
    );
    assert!(
        forbidden(own.list(&Default::default()).await.map(drop)),
        "listing ConfigMaps"
    );
    assert!(
        forbidden(
            Api::<Secret>::namespaced(as_collector.clone(), NS)
                .get("anything")
                .await
                .map(drop)
        ),
        "Secrets"
    );
    let other_status = Api::<LogSource>::namespaced(as_collector, NS)
        .patch_status(
            "neighbour",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"eventsDelivered": 1}})),
        )
        .await
        .map(drop);
    assert!(forbidden(other_status), "another LogSource's status");
}

/// A table in Azurite and a LogSource whose collector, run on the host, reads it with startAt:
/// Earliest and lateArrival 30s into files below `<dir>/out`: the rows stored just before it
/// starts are delivered by its first read of the whole table, and once lateArrival has passed,
/// the first time window reads every one of them again.
struct WadOnHost {
    dir: tempfile::TempDir,
    cluster: Cluster,
    _operator: OperatorProcess,
    azurite: azlog_e2e::azurite::Azurite,
}

const WAD_TABLE: &str = "WADWindowsEventLogsTable";

impl WadOnHost {
    async fn start() -> WadOnHost {
        let (dir, cluster) = start_cluster().await;
        let operator = start_operator(&cluster, dir.path()).await;
        let azurite = azlog_e2e::azurite::Azurite::start(dir.path());
        azurite.create_table(WAD_TABLE);
        WadOnHost {
            dir,
            cluster,
            _operator: operator,
            azurite,
        }
    }

    fn out(&self) -> std::path::PathBuf {
        self.dir.path().join("out")
    }

    /// Creates LogSource `name` and its collector's config, changed by `adjust`.
    async fn log_source(&self, name: &str, adjust: impl FnOnce(&mut Value)) -> PodOnHost {
        use azlog_e2e::azurite::{ACCOUNT, KEY};
        Api::<LogSource>::namespaced(self.cluster.client(ADMIN_TOKEN), NS)
            .create(
                &PostParams::default(),
                &log_source(name, json!({"simulate": {}, "outputs": [{"file": {}}]})),
            )
            .await
            .expect("create");
        let key_file = self.dir.path().join("account-key");
        std::fs::write(&key_file, KEY).expect("key");
        PodOnHost::prepare(&self.cluster, self.dir.path(), name, |config| {
            config["source"] = json!({"wad": {
                "account": ACCOUNT, "table": WAD_TABLE, "endpoint": self.azurite.table_endpoint(),
                "accountKeyFile": key_file.display().to_string(),
                "startAt": "Earliest", "lateArrival": "30s",
            }});
            config["pipeline"] = json!({"pollInterval": "1s", "batchSize": 500});
            config["checkpoint"]["commitInterval"] = "200ms".into();
            config["outputs"][0]["file"]["directory"] = self.out().display().to_string().into();
            config["outputs"][0]["file"]["maxFileAge"] = "1s".into();
            adjust(config);
        })
        .await
    }
}

/// `count` WAD rows of the last half hour.
fn wad_rows(count: u64) -> Vec<Value> {
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(30);
    (0..count)
        .map(|n| azlog_e2e::wad_rows::row(start + chrono::TimeDelta::minutes((n / 1000) as i64), n))
        .collect()
}

#[tokio::test]
async fn killed_under_load_a_collector_resumes_from_a_small_checkpoint_and_the_ids_on_its_volume() {
    use azlog_e2e::wad_rows::id;
    const ROWS: u64 = 20_000;

    let wad = WadOnHost::start().await;
    let (dir, cluster, azurite) = (&wad.dir, &wad.cluster, &wad.azurite);
    let admin = cluster.client(ADMIN_TOKEN);
    // Only the remembered ids keep the second read (in the last collector started) from
    // delivering the rows twice.
    let mut rows = wad_rows(ROWS);
    // Three rows the collector cannot read: dead-lettered, counted in the status, told in an Event.
    const BAD: [usize; 3] = [100, 7_000, 15_000];
    for n in BAD {
        rows[n]["EventId"] = json!("four thousand");
    }
    let expected: std::collections::HashSet<String> = rows
        .iter()
        .enumerate()
        .filter(|(n, _)| !BAD.contains(n))
        .map(|(_, r)| id(r))
        .collect();
    azurite.put_rows(WAD_TABLE, &rows, &["EventTickCount"]);
    drop(rows);
    let pod = wad.log_source("steady", |_| {}).await;
    let out = wad.out();
    let delivered = || file_output_ids(&out);
    let mut collector = pod.run(&collector_binary());
    for threshold in [4_000, 12_000] {
        eventually("part of the table delivered", || async {
            (delivered().len() >= threshold).then_some(())
        })
        .await;
        let _ = collector.kill();
        let _ = collector.wait();
        collector = pod.run(&collector_binary());
    }
    eventually(
        "the time window read every row again, and every one was recognised",
        || async {
            std::net::TcpStream::connect(("127.0.0.1", pod.health)).ok()?;
            let duplicates = metric(pod.health, "azlog_events_duplicate_total", &[]);
            (duplicates >= expected.len() as f64).then_some(())
        },
    )
    .await;
    let ids = delivered();
    let distinct: std::collections::HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(distinct, expected, "every row delivered");
    assert_eq!(ids.len(), expected.len(), "no row delivered twice");

    let sources = Api::<LogSource>::namespaced(admin.clone(), NS);
    let told = eventually(
        "the dead letters are in the status and the DeadLetters condition",
        || async {
            let status = sources.get("steady").await.ok()?.status?;
            let count = status
                .collector
                .dead_lettered
                .filter(|n| *n >= BAD.len() as u64)?;
            let condition = status
                .conditions
                .into_iter()
                .find(|c| c.type_ == "DeadLetters")?;
            (condition.status == "True"
                && condition.message.starts_with(&format!("{count} records")))
            .then_some(condition.message)
        },
    )
    .await;
    assert!(told.contains("dead-letter.ndjson"), "{told}");
    let events = event_reasons(cluster, "steady");
    assert!(
        events.contains("RecordsDeadLettered"),
        "a Warning Event: {events}"
    );

    // What the API server keeps: the cursor and counters, not the ids.
    let checkpoint = Api::<ConfigMap>::namespaced(admin.clone(), NS)
        .get("azlog-steady-checkpoint")
        .await
        .expect("checkpoint");
    assert_eq!(checkpoint.binary_data.unwrap_or_default().len(), 0);
    let text = checkpoint.data.unwrap_or_default()["checkpoint.json"].clone();
    assert!(text.len() < 1024, "{} bytes: {text}", text.len());
    let ids_file = std::fs::read_dir(dir.path().join("state"))
        .expect("state dir")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("recent-ids-"))
        .expect("the recent ids are in the state directory");
    assert!(ids_file.metadata().expect("stat").len() >= expected.len() as u64 * 16);

    // A new pod on a new volume (an emptyDir): the cursor is in the cluster, the ids are gone,
    // and the collector says what that means.
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    unsafe { libc::kill(collector.id() as i32, libc::SIGTERM) };
    assert!(collector.wait().expect("wait").success());
    std::fs::remove_dir_all(dir.path().join("state")).expect("rm state");
    let _collector = pod.run(&collector_binary());
    eventually("the lost ids are counted", || async {
        std::net::TcpStream::connect(("127.0.0.1", pod.health)).ok()?;
        let lost = metric(pod.health, "azlog_checkpoint_ids_lost_total", &[]);
        (lost == 1.0).then_some(())
    })
    .await;
    let log = std::fs::read_to_string(&pod.log).expect("log");
    assert!(
        log.contains("may be delivered twice") && log.contains("state volume"),
        "{log}"
    );
}

#[tokio::test]
async fn a_source_that_rereads_more_ids_than_dedup_remembers_says_so_in_its_status() {
    let wad = WadOnHost::start().await;
    wad.azurite
        .put_rows(WAD_TABLE, &wad_rows(2_000), &["EventTickCount"]);
    // The first read of the table is re-read within 31 s; 600 ids cannot hold its 2,000.
    let pod = wad
        .log_source("forgetful", |config| {
            config["pipeline"] =
                json!({"pollInterval": "1s", "batchSize": 100, "maxInFlightEvents": 500});
            config["checkpoint"]["dedupCapacity"] = 600.into();
            config["checkpoint"]["kubernetes"]["statusInterval"] = "1s".into();
        })
        .await;
    let _collector = pod.run(&collector_binary());
    eventually("the collector counts the ids it forgot early", || async {
        std::net::TcpStream::connect(("127.0.0.1", pod.health)).ok()?;
        let forgotten = metric(pod.health, "azlog_dedup_forgotten_early_total", &[]);
        (forgotten >= 1_000.0).then_some(())
    })
    .await;
    let sources = Api::<LogSource>::namespaced(wad.cluster.client(ADMIN_TOKEN), NS);
    let condition = eventually(
        "the status and the DedupWindowExceeded condition say so",
        || async {
            let status = sources.get("forgetful").await.ok()?.status?;
            status.collector.dedup_forgotten_early.filter(|n| *n > 0)?;
            status
                .conditions
                .into_iter()
                .find(|c| c.type_ == "DedupWindowExceeded" && c.status == "True")
        },
    )
    .await;
    assert!(
        condition.message.contains("spec.collector.dedupCapacity"),
        "says what to do: {}",
        condition.message
    );
    let events = event_reasons(&wad.cluster, "forgetful");
    assert!(
        events.contains("IdsForgottenEarly"),
        "a Warning Event: {events}"
    );
    let log = std::fs::read_to_string(&pod.log).expect("log");
    assert!(log.contains("raise dedupCapacity"), "{log}");
}

#[tokio::test]
async fn an_event_hub_read_by_three_replicas_gets_three_pods_that_may_share_its_leases() {
    let (dir, cluster) = start_cluster().await;
    let client = cluster.client(ADMIN_TOKEN);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "hub-listen", "labels": {azlog_operator::policy::SECRET_ACCESS_LABEL: "true"}},
        "stringData": {"connectionString": "Endpoint=sb://contoso-logs.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0"},
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the Secret");
    let _operator = start_operator(&cluster, dir.path()).await;
    let sources: Api<LogSource> = Api::namespaced(client.clone(), NS);
    sources
        .create(
            &PostParams::default(),
            &log_source(
                "streamed",
                json!({
                    "eventHubs": {"namespace": "contoso-logs", "hub": "insights-logs",
                                  "connectionString": {"name": "hub-listen", "key": "connectionString"}},
                    "replicas": 3,
                    "outputs": [{"syslog": {"address": "siem:514"}}],
                }),
            ),
        )
        .await
        .expect("create the LogSource");
    // The operator holds the rights it grants (a Role cannot grant more than its creator holds):
    // the Deployment comes only once the Role was created.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let deployment = collector_appears(&deployments, "azlog-streamed", "three collectors").await;
    assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(3));
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), NS);
    let role = roles
        .get("azlog-streamed")
        .await
        .expect("the collectors' Role");
    let shared = role.rules.unwrap_or_default().into_iter().any(|rule| {
        rule.resources == Some(vec!["leases".to_owned()])
            && rule.resource_names.is_none()
            && rule.verbs.contains(&"list".to_owned())
            && rule.verbs.contains(&"delete".to_owned())
    });
    assert!(shared, "the collectors may manage the group's Leases");
    let collecting = eventually("the Collecting condition", || async {
        let source = sources.get("streamed").await.ok()?;
        source
            .condition("Collecting")
            .map(|c| (c.status.clone(), c.reason.clone()))
    })
    .await;
    assert_eq!(
        collecting,
        ("Unknown".to_owned(), "SharedByReplicas".to_owned())
    );
    let configs: Api<ConfigMap> = Api::namespaced(client, NS);
    let config = configs.get("azlog-streamed").await.expect("the config");
    let yaml = config.data.unwrap_or_default()["collector.yaml"].clone();
    assert!(yaml.contains("group: azlog-streamed"), "{yaml}");
    assert!(
        !yaml.contains("c2VjcmV0"),
        "the key stays in its Secret: {yaml}"
    );
}
