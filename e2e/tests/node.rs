//! azlog as a user installs it: the images of `images/build` loaded into a real node (kubelet,
//! containerd, runc), the Helm chart from `charts/azlog`, and a LogSource whose collector pod runs
//! there and delivers to a real rsyslog and, through a forwarder sidecar whose files and collector
//! state are on PersistentVolumeClaims, to a file shipper — through
//! a spec change, a collector killed and a pod deleted mid-stream, a `helm upgrade` and a `helm
//! uninstall` — and a WAD LogSource reading Azurite with its key from a Secret.
//!
//! The test runs itself again inside `e2e/scripts/node-sandbox` (network, mount and PID namespaces
//! of its own), where the node may do what a node does.
// Runs Linux processes (receivers, signals, Kubernetes); the Windows build has its own smoke test.
#![cfg(unix)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azlog_e2e::azurite::{ACCOUNT, Azurite};
use azlog_e2e::kube_cluster::{ADMIN_TOKEN, Cluster};
use azlog_e2e::kube_node::{self, NODE_IP, TEST_FORWARDER_IMAGE};
use azlog_e2e::{log_source, wad_rows};
use azlog_operator::crd::LogSource;
use azlog_test_support::collector::file_output_ids;
use azlog_test_support::syslog::{Kind, Receiver, make_ca};
use azlog_test_support::wait::eventually;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const SYSTEM: &str = "azlog-system";
const NS: &str = "default";
/// Events the simulated source sends in all, and how fast: long enough for a roll and a kill.
const EVENTS: usize = 3000;
const RATE: f64 = 40.0;
/// What the collector may send twice to syslog after a crash: its in-flight bound (README,
/// "Syslog receives at most the in-flight window twice"), the default `maxInFlightEvents`.
const IN_FLIGHT: usize = 10_000;
const POD_WAIT: Duration = Duration::from_secs(180);
/// Rows of the WAD table the second LogSource reads from Azurite.
const WAD_ROWS: u64 = 200;
const WAD_TABLE: &str = "WADWindowsEventLogsTable";

#[test]
fn the_chart_runs_azlog_on_a_real_node_and_no_pod_change_loses_an_event() {
    if kube_node::run_in_sandbox(
        "the_chart_runs_azlog_on_a_real_node_and_no_pod_change_loses_an_event",
    ) {
        return;
    }
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(chart_on_a_node());
}

async fn chart_on_a_node() {
    let dir = kube_node::cluster_dir();
    let mut cluster = Cluster::start_for_node(&dir).await;
    kube_node::start(&mut cluster).await;
    let tag = kube_node::import_azlog_images(&cluster);
    let client = cluster.client(ADMIN_TOKEN);
    let ca = make_ca(&dir);
    let mut rsyslog = Receiver::new_on(Kind::Rsyslog, &dir, &ca, NODE_IP);
    rsyslog.spawn();
    let shipped = FileSink::start().await;

    // helm install, as the README says.
    let helm = Helm::new(&cluster);
    let image_values = [
        format!("image.tag={tag}"),
        format!("collectorImage.tag={tag}"),
        "image.pullPolicy=Never".to_owned(),
        "collectorImage.pullPolicy=Never".to_owned(),
        // The admin's policy: the test forwarder, and endpoints on the node (Azurite).
        format!("policy.forwarderImages={{{TEST_FORWARDER_IMAGE}}}"),
        format!("policy.endpointHosts={{{NODE_IP}}}"),
    ];
    let mut install = vec![
        "install",
        "azlog",
        "--namespace",
        SYSTEM,
        "--create-namespace",
    ];
    for value in &image_values {
        install.extend(["--set", value]);
    }
    let notes = helm.run(&with_chart(&install));
    assert!(
        notes.contains("kubectl get logsources"),
        "the NOTES say what to do next: {notes}"
    );
    let operators = operator_pods(&client, 2).await;
    let holder = leader(&client, &operators).await;
    println!("operator pods {operators:?}, leader {holder}");

    // A LogSource: syslog to rsyslog on the node, and a forwarder sidecar that ships finished files,
    // its files and the collector's state on claims, so no pod change loses a file.
    let files = persistent_volume(&client, &dir, "demo-files").await;
    persistent_volume(&client, &dir, "demo-state").await;
    let sources: Api<LogSource> = Api::namespaced(client.clone(), NS);
    let spec = json!({
        "simulate": {"rate": RATE, "count": EVENTS, "seed": 7},
        "outputs": [
            {"syslog": {"address": format!("{NODE_IP}:{}", rsyslog.ports.tcp), "transport": "tcp"}},
            {"forwarder": {
                "image": TEST_FORWARDER_IMAGE,
                "args": ["-c", &forwarder_script(shipped.port)],
                "volume": {"persistentVolumeClaim": "demo-files"},
            }},
        ],
        "collector": {"stateVolume": {"persistentVolumeClaim": "demo-state"}},
    });
    sources
        .create(&PostParams::default(), &log_source("demo", spec))
        .await
        .expect("create the LogSource");
    let first = collector_pod(&client, None).await;
    let processes = eventually(
        "the collector process runs on the node",
        POD_WAIT,
        || async {
            let found = collector_processes();
            (!found.is_empty()).then_some(found)
        },
    )
    .await;
    for process in &processes {
        println!(
            "collector pid {} on the node: uid {}, read-only root {}",
            process.pid, process.uid, process.read_only_root
        );
        assert_eq!(
            process.uid, 65532,
            "the collector runs as uid 65532: {process:?}"
        );
        assert!(
            process.read_only_root,
            "the collector's root filesystem is read-only: {process:?}"
        );
    }

    // A spec change rolls the pod: the old one drains and commits, the new one goes on.
    wait_for_ids(&rsyslog, 600).await;
    sources
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"collector": {"logLevel": "debug"}}})),
        )
        .await
        .expect("change the spec");
    let second = collector_pod(&client, Some(&first)).await;
    let after_roll = ids(&rsyslog);
    assert_eq!(
        after_roll.total,
        after_roll.distinct.len(),
        "a graceful roll delivers nothing twice"
    );

    // The collector killed mid-stream (SIGKILL from the node): the kubelet restarts it in place.
    wait_for_ids(&rsyslog, 1000).await;
    let crashed = collector_processes();
    assert_eq!(crashed.len(), 1, "one collector runs: {crashed:?}");
    // SAFETY: kill(2) on a process of this sandbox's node, found in /proc just now.
    let killed = unsafe { libc::kill(crashed[0].pid as i32, libc::SIGKILL) };
    assert_eq!(killed, 0, "SIGKILL the collector");
    eventually(
        "the kubelet restarts the killed collector",
        POD_WAIT,
        || async {
            collector_processes()
                .iter()
                .any(|p| p.pid != crashed[0].pid)
                .then_some(())
        },
    )
    .await;

    // The pod deleted mid-stream with no grace; the Deployment replaces it.
    wait_for_ids(&rsyslog, 1800).await;
    cluster.kubectl(&[
        "delete",
        "pod",
        &second,
        "-n",
        NS,
        "--grace-period=0",
        "--force",
        "--wait=false",
    ]);
    let third = collector_pod(&client, Some(&second)).await;
    // While it streams: what `kubectl get logsources` and GitOps tools read.
    let status = eventually(
        "the LogSource reports Ready and Collecting",
        POD_WAIT,
        || async {
            let status = sources.get("demo").await.ok()?.status?;
            let is_true = |t: &str| {
                status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == t && c.status == "True")
            };
            (is_true("Ready") && is_true("Collecting")).then_some(status)
        },
    )
    .await;
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "False"),
        "kstatus reads a running LogSource as current: {:?}",
        status.conditions
    );
    eventually(
        "Argo CD's health check reads the LogSource as Healthy",
        POD_WAIT,
        || async {
            let live = serde_json::to_value(sources.get("demo").await.ok()?).ok()?;
            (azlog_e2e::argocd_health(&live).0 == "Healthy").then_some(())
        },
    )
    .await;

    let delivered = eventually(
        "every simulated event reached rsyslog",
        Duration::from_secs(240),
        || async {
            let seen = ids(&rsyslog);
            (seen.distinct.len() >= EVENTS).then_some(seen)
        },
    )
    .await;
    let doubled = delivered.total - delivered.distinct.len();
    println!(
        "rsyslog: {} events, {} distinct, {doubled} doubled by the kill",
        delivered.total,
        delivered.distinct.len()
    );
    assert_eq!(
        delivered.distinct.len(),
        EVENTS,
        "nothing beyond the simulated events"
    );
    assert!(
        doubled <= IN_FLIGHT,
        "{doubled} doubled, more than the in-flight window"
    );

    // The claim holds the files of all three pods: a roll, a kill and a forced delete lost none
    // and doubled none.
    let in_volume = eventually("the claim holds every event", POD_WAIT, || async {
        // The folders of the file output; the forwarder keeps what it shipped beside them.
        let ids: Vec<String> = std::fs::read_dir(&files)
            .ok()?
            .flatten()
            .filter(|entry| entry.path().is_dir())
            .flat_map(|folder| file_output_ids(&folder.path()))
            .collect();
        (ids.len() >= EVENTS).then_some(ids)
    })
    .await;
    assert_unique_and_delivered(&in_volume, &delivered.distinct, "the file volume");
    assert_eq!(
        in_volume.len(),
        EVENTS,
        "every event in the files of {third} and its predecessors"
    );
    let forwarded = shipped.ids();
    assert!(
        !forwarded.is_empty(),
        "the forwarder shipped the file the first pod finished when it was rolled"
    );
    assert_unique_and_delivered(&forwarded, &delivered.distinct, "the forwarder's shipment");
    // A WAD LogSource reading Azurite on the node over HTTPS, with the account key and the CA from
    // Secrets.
    let azurite = Azurite::start_tls_on(&dir, NODE_IP);
    let minute = chrono::Utc::now() - chrono::TimeDelta::minutes(10);
    let rows: Vec<Value> = (0..WAD_ROWS).map(|n| wad_rows::row(minute, n)).collect();
    azurite.put_rows(WAD_TABLE, &rows, &["EventTickCount"]);
    cluster.kubectl(&[
        "create",
        "secret",
        "generic",
        "diagstore-key",
        "-n",
        NS,
        "--from-literal",
        &format!("key1={}", azlog_e2e::azurite::KEY),
    ]);
    let ca = azurite
        .ca_file()
        .expect("Azurite's CA")
        .display()
        .to_string();
    cluster.kubectl(&[
        "create",
        "secret",
        "generic",
        "azurite-ca",
        "-n",
        NS,
        "--from-file",
        &format!("ca.crt={ca}"),
    ]);
    // Both are meant for azlog: they opt in.
    cluster.kubectl(&[
        "label",
        "secret",
        "diagstore-key",
        "azurite-ca",
        "-n",
        NS,
        &format!("{}=true", azlog_operator::policy::SECRET_ACCESS_LABEL),
    ]);
    let wad = json!({
        "wad": {"account": ACCOUNT, "endpoint": azurite.table_endpoint(), "accountKey": {"name": "diagstore-key", "key": "key1"}},
        "endpoints": {"ca": {"name": "azurite-ca", "key": "ca.crt"}},
        "startAt": "Earliest",
        "outputs": [{"syslog": {"address": format!("{NODE_IP}:{}", rsyslog.ports.tcp), "transport": "tcp"}}],
    });
    sources
        .create(&PostParams::default(), &log_source("vms", wad))
        .await
        .expect("create the WAD LogSource");
    ready(&sources, "vms").await;
    let expected: HashSet<String> = rows.iter().map(wad_rows::id).collect();
    eventually(
        "every WAD row reached rsyslog from the pod",
        POD_WAIT,
        || async {
            let seen = ids(&rsyslog).distinct;
            expected.iter().all(|id| seen.contains(id)).then_some(())
        },
    )
    .await;
    let secret_mounted = eventually("the WAD collector pod runs", POD_WAIT, || async {
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let list = pods
            .list(&ListParams::default().labels("azlog.io/logsource=vms"))
            .await
            .ok()?;
        let pod = list.items.into_iter().find(is_ready)?;
        let volumes = pod.spec?.volumes?;
        Some(volumes.iter().any(|v| {
            v.secret
                .as_ref()
                .is_some_and(|s| s.secret_name.as_deref() == Some("diagstore-key"))
        }))
    })
    .await;
    assert!(secret_mounted, "the account key is mounted from its Secret");

    // helm upgrade with a changed value rolls the operator; the new leader reconciles.
    let mut upgrade = vec!["upgrade", "azlog", "--namespace", SYSTEM, "--reuse-values"];
    upgrade.extend(["--set", "logLevel=debug"]);
    helm.run(&with_chart(&upgrade));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), SYSTEM);
    let log_level = env_of(
        &deployments.get("azlog-operator").await.expect("operator"),
        "AZLOG_LOG",
    );
    assert_eq!(log_level.as_deref(), Some("debug"));
    let upgraded = eventually("the operator pods are replaced", POD_WAIT, || async {
        let pods = running_operator_pods(&client).await;
        (pods.len() == 2 && pods.iter().all(|p| !operators.contains(p))).then_some(pods)
    })
    .await;
    leader(&client, &upgraded).await;
    let late = json!({"simulate": {"rate": 50.0, "count": 20}, "outputs": [{"syslog": {"address": format!("{NODE_IP}:{}", rsyslog.ports.tcp), "transport": "tcp"}}]});
    sources
        .create(&PostParams::default(), &log_source("after-upgrade", late))
        .await
        .expect("create a LogSource after the upgrade");
    let deployments_ns: Api<Deployment> = Api::namespaced(client.clone(), NS);
    eventually(
        "the upgraded operator reconciles a new LogSource",
        POD_WAIT,
        || async { deployments_ns.get_opt("azlog-after-upgrade").await.ok()? },
    )
    .await;

    // helm uninstall removes the operator and keeps the CRDs (and so the LogSources).
    helm.run(&["uninstall", "azlog", "--namespace", SYSTEM, "--wait"]);
    for (kind, name) in [
        ("deployment", "azlog-operator"),
        ("serviceaccount", "azlog-operator"),
        ("service", "azlog-operator-metrics"),
        ("role", "azlog-operator-leader-election"),
        ("rolebinding", "azlog-operator-leader-election"),
    ] {
        let left = cluster.kubectl(&[
            "get",
            kind,
            name,
            "-n",
            SYSTEM,
            "--ignore-not-found",
            "-o",
            "name",
        ]);
        assert!(left.trim().is_empty(), "helm uninstall left {kind}/{name}");
    }
    for (kind, name) in [
        ("clusterrole", "azlog-operator"),
        ("clusterrolebinding", "azlog-operator"),
    ] {
        let left = cluster.kubectl(&["get", kind, name, "--ignore-not-found", "-o", "name"]);
        assert!(left.trim().is_empty(), "helm uninstall left {kind}/{name}");
    }
    let crds = cluster.kubectl(&["get", "crd", "-o", "name"]);
    assert!(
        crds.contains("logsources.azlog.io")
            && crds.contains("subscriptionauthorizations.azlog.io"),
        "the CRDs stay after helm uninstall: {crds}"
    );
    assert!(
        cluster
            .kubectl(&["get", "logsources", "-n", NS, "-o", "name"])
            .contains("demo"),
        "the LogSources stay with their CRD"
    );
}

/// Waits until the LogSource `name` is Ready; a timeout shows its conditions.
async fn ready(sources: &Api<LogSource>, name: &str) {
    let last = Mutex::new(Vec::new());
    let waited = tokio::time::timeout(POD_WAIT, async {
        loop {
            if let Ok(source) = sources.get(name).await {
                let conditions = source.status.map(|s| s.conditions).unwrap_or_default();
                if conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                {
                    return;
                }
                *last.lock().expect("conditions") = conditions;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "LogSource {name} was not Ready within {POD_WAIT:?}: {:#?}",
        last.lock().expect("conditions")
    );
}

/// The test forwarder (busybox `sh`): ships every finished file at most once over TCP, claiming it
/// on the volume first, as a real forwarder keeps its position; on SIGTERM it goes on until the
/// collector has finished its open files, then ships those and exits. A claim is a directory:
/// `mkdir` is atomic, so neither a forwarder killed mid-send and started again nor the old and new
/// pod of a forced delete, both running, can ship a file twice.
fn forwarder_script(port: u16) -> String {
    format!(
        r#"claims=/var/log/azlog/.shipped
mkdir -p "$claims"
stopping=0
trap 'stopping=1' TERM
ship() {{
  for f in /var/log/azlog/*/*.json; do
    [ -f "$f" ] || continue
    mkdir "$claims/$(basename "$(dirname "$f")")-$(basename "$f")" 2>/dev/null || continue
    nc {NODE_IP} {port} < "$f"
  done
}}
while :; do
  ship
  if [ "$stopping" = 1 ] && ! ls /var/log/azlog/*/.*.partial >/dev/null 2>&1; then ship; exit 0; fi
  sleep 1
done"#
    )
}

fn with_chart<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.insert(2, concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/azlog"));
    all
}

/// The real helm, as the cluster's administrator.
struct Helm {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Helm {
    fn new(cluster: &Cluster) -> Helm {
        Helm {
            binary: azlog_e2e::helm(),
            kubeconfig: cluster.kubeconfig("admin", ADMIN_TOKEN),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.binary)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .args(["--timeout", "5m"])
            .output()
            .expect("run helm");
        assert!(
            out.status.success(),
            "helm {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

async fn running_operator_pods(client: &kube::Client) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM);
    let list = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=azlog-operator"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
        .filter_map(|p| p.metadata.name)
        .collect()
}

async fn operator_pods(client: &kube::Client, count: usize) -> Vec<String> {
    eventually(
        "the operator pods are Running and Ready",
        POD_WAIT,
        || async {
            let pods = running_operator_pods(client).await;
            (pods.len() == count).then_some(pods)
        },
    )
    .await
}

/// The pod holding the operator's Lease, which must be one of `pods`.
async fn leader(client: &kube::Client, pods: &[String]) -> String {
    let leases: Api<Lease> = Api::namespaced(client.clone(), SYSTEM);
    eventually("one operator pod holds the Lease", POD_WAIT, || async {
        let holder = leases
            .get_opt("azlog-operator")
            .await
            .ok()??
            .spec?
            .holder_identity?;
        pods.contains(&holder).then_some(holder)
    })
    .await
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The name of the demo LogSource's Running and Ready collector pod, other than `not`.
async fn collector_pod(client: &kube::Client, not: Option<&str>) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    eventually(
        "the collector pod is Running and Ready",
        POD_WAIT,
        || async {
            let list = pods
                .list(&ListParams::default().labels("azlog.io/logsource=demo"))
                .await
                .ok()?;
            list.items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
                .filter_map(|p| p.metadata.name)
                .find(|name| Some(name.as_str()) != not)
        },
    )
    .await
}

fn env_of(deployment: &Deployment, name: &str) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

/// A collector process seen from the node: its user and whether its root is mounted read-only.
#[derive(Debug)]
struct Process {
    pid: u32,
    uid: u32,
    read_only_root: bool,
}

/// The azlog-collector processes running on the node (containers share the sandbox's PID
/// namespace as their parent, so the node sees them in /proc).
fn collector_processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let proc_dir = entry.path();
            let comm = std::fs::read_to_string(proc_dir.join("comm")).ok()?;
            if comm.trim() != "azlog-collector" {
                return None;
            }
            let status = std::fs::read_to_string(proc_dir.join("status")).ok()?;
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let mounts = std::fs::read_to_string(proc_dir.join("mountinfo")).ok()?;
            let read_only_root = mounts.lines().any(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                fields.get(4) == Some(&"/")
                    && fields
                        .get(5)
                        .is_some_and(|o| o.split(',').any(|o| o == "ro"))
            });
            Some(Process {
                pid,
                uid,
                read_only_root,
            })
        })
        .collect()
}

/// Event ids rsyslog stored: how many messages in all, and the distinct ids.
struct Seen {
    total: usize,
    distinct: HashSet<String>,
}

fn ids(receiver: &Receiver) -> Seen {
    let messages = receiver.messages();
    let distinct = messages
        .iter()
        .filter_map(|m| m.param("id").map(str::to_owned))
        .collect::<HashSet<_>>();
    Seen {
        total: messages.len(),
        distinct,
    }
}

async fn wait_for_ids(receiver: &Receiver, count: usize) {
    eventually(&format!("rsyslog has {count} events"), POD_WAIT, || async {
        (ids(receiver).distinct.len() >= count).then_some(())
    })
    .await;
}

fn assert_unique_and_delivered(ids: &[String], delivered: &HashSet<String>, what: &str) {
    let mut seen = HashSet::new();
    for id in ids {
        assert!(seen.insert(id), "{id} is twice in {what}");
        assert!(
            delivered.contains(id),
            "{id} is in {what} but never reached syslog"
        );
    }
}

/// A PersistentVolume on a directory of the node, and claim `name` bound to it, as a storage
/// class would provision them; answers the directory.
async fn persistent_volume(client: &kube::Client, dir: &std::path::Path, name: &str) -> PathBuf {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("volumes").join(name);
    std::fs::create_dir_all(&path).expect("the volume's directory");
    // The pod runs as uid 65532; a hostPath volume is not given to its fsGroup.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let volume: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
            "hostPath": {"path": path.display().to_string(), "type": "Directory"},
            "claimRef": {"namespace": NS, "name": name},
        },
    }))
    .expect("PersistentVolume");
    Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &volume)
        .await
        .expect("create the PersistentVolume");
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }))
    .expect("PersistentVolumeClaim");
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &claim)
        .await
        .expect("create the PersistentVolumeClaim");
    path
}

/// What the forwarder ships: a TCP server on the node that keeps every connection's bytes.
struct FileSink {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
}

impl FileSink {
    async fn start() -> FileSink {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind((NODE_IP, 0))
            .await
            .expect("listen on the node");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut file = Vec::new();
                    if stream.read_to_end(&mut file).await.is_ok() {
                        sink.lock().expect("sink").extend_from_slice(&file);
                    }
                });
            }
        });
        FileSink { port, received }
    }

    /// The event ids of every line shipped; every line must be an event.
    fn ids(&self) -> Vec<String> {
        let bytes = self.received.lock().expect("sink").clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let event: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("the forwarder shipped a line that is not JSON ({e}): {line}")
                });
                event["azlog"]["id"].as_str().expect("azlog.id").to_owned()
            })
            .collect()
    }
}
