//! A real node for the end-to-end suites: containerd, runc and the kubelet beside a control plane
//! started with [`Cluster::start_for_node`], so pods really run — from images built here, as the
//! users they name, with their volumes, probes and restarts.
//!
//! Everything runs inside `e2e/scripts/node-sandbox` (a network, mount and PID namespace of the
//! test's own, no route out): [`run_in_sandbox`] runs a test again in there. The node's address is
//! [`NODE_IP`]; pods reach servers a test starts on it, and the API server through the kubernetes
//! Service. There is no kube-proxy and no cluster DNS.
//!
//! containerd, runc and the CNI plugins come from `e2e/scripts/install-node`; a missing install
//! fails loudly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::Api;

use crate::kube_cluster::{ADMIN_TOKEN, Cluster};

/// The node's address: the kubelet's, and the one pods reach servers of the test on.
pub const NODE_IP: &str = "10.200.0.1";
/// The kubernetes Service's address (the first of the service range), put on the node by the
/// sandbox because there is no kube-proxy to translate it.
pub const SERVICE_IP: &str = "10.200.2.1";
/// The node's name.
pub const NODE_NAME: &str = "azlog-node";
/// The image the kubelet runs as every pod's sandbox.
const PAUSE_IMAGE: &str = "localhost/azlog/pause:1";
/// The test forwarder sidecar image that `install-node` builds.
pub const TEST_FORWARDER_IMAGE: &str = "localhost/azlog/test-forwarder:1";

/// Whether this process runs inside `e2e/scripts/node-sandbox`.
pub fn in_sandbox() -> bool {
    std::env::var("AZLOG_NODE_SANDBOX").as_deref() == Ok("inside")
}

/// Runs the test `name` of this test binary again inside the node sandbox, its output prefixed
/// with `node|`, and fails when it fails. Answers false when already inside: the caller then runs
/// the test's body.
pub fn run_in_sandbox(name: &str) -> bool {
    if in_sandbox() {
        return false;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/node-sandbox");
    let dir = tempfile::Builder::new()
        .prefix("azlog-node-")
        .tempdir()
        .expect("a directory for the node");
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(&script)
        .arg(dir.path())
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {}: {e}", script.display()));
    // Prefixed, so the inner run's own "test result" line is not counted as a second result.
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("node| {line}");
        }
    }
    let status = child.wait().expect("wait for the node sandbox");
    if !status.success() {
        let kept = dir.keep();
        panic!(
            "{name} failed inside the node sandbox ({status}); the cluster's logs and the node's \
             /var/log are kept in {}",
            kept.display()
        );
    }
    true
}

/// A directory for the cluster of a test running in the sandbox: below the sandbox's own, which
/// [`run_in_sandbox`] keeps when the test fails.
pub fn cluster_dir() -> PathBuf {
    let base = std::env::var_os("AZLOG_NODE_DIR")
        .map(PathBuf::from)
        .expect("inside the node sandbox, which sets AZLOG_NODE_DIR");
    let dir = base.join("cluster");
    std::fs::create_dir_all(&dir).expect("the cluster directory");
    dir
}

/// Where `e2e/scripts/install-node` put containerd, runc, the CNI plugins and the test images.
pub fn root() -> PathBuf {
    azlog_test_support::install::installed(
        "AZLOG_NODE_ROOT",
        "node",
        "the node's runtime is",
        "install-node",
    )
}

/// Starts containerd and a kubelet that joins `cluster` (made by [`Cluster::start_for_node`]),
/// loads the pause and test forwarder images, and waits until the node is Ready and pods can get
/// ServiceAccounts. They stop with the cluster.
pub async fn start(cluster: &mut Cluster) {
    assert!(
        in_sandbox(),
        "a node runs only inside e2e/scripts/node-sandbox (see run_in_sandbox)"
    );
    let root = root();
    let dir = cluster.dir().to_owned();
    let socket = dir.join("containerd.sock");
    let path = |p: &Path| p.display().to_string();
    let config = dir.join("containerd.toml");
    std::fs::create_dir_all(dir.join("cni")).expect("the CNI configuration directory");
    std::fs::write(dir.join("cni/10-azlog.conflist"), cni_config(&dir)).expect("write CNI config");
    std::fs::write(&config, containerd_config(&dir, &root, &socket))
        .expect("write containerd config");
    let search_path = format!(
        "{}:{}",
        root.join("usr/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cluster.spawn(
        "containerd",
        Command::new(root.join("usr/bin/containerd"))
            .env("PATH", &search_path)
            .args(["--config", &path(&config)]),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        cluster.assert_running();
        assert!(
            Instant::now() < deadline,
            "containerd did not open {}",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    import_image(
        &socket,
        &root.join("images/pause.oci.tar"),
        "localhost/azlog/pause",
    );
    import_image(
        &socket,
        &root.join("images/test-forwarder.oci.tar"),
        "localhost/azlog/test-forwarder",
    );

    let cgroup = std::env::var("AZLOG_NODE_CGROUP").expect("the sandbox names the node's cgroup");
    let kubeconfig = cluster.kubeconfig("kubelet", ADMIN_TOKEN);
    cluster.spawn(
        "kubelet",
        Command::new(crate::kube_cluster::binaries().join("kubelet"))
            .env("PATH", &search_path)
            .args([
                "--kubeconfig",
                &path(&kubeconfig),
                "--root-dir",
                &path(&dir.join("kubelet")),
                "--cert-dir",
                &path(&dir.join("kubelet-pki")),
                "--volume-plugin-dir",
                &path(&dir.join("kubelet-plugins")),
                "--container-runtime",
                "remote",
                "--container-runtime-endpoint",
                &format!("unix://{}", socket.display()),
                "--pod-infra-container-image",
                PAUSE_IMAGE,
                "--cgroup-driver",
                "cgroupfs",
                "--cgroup-root",
                &format!("/{cgroup}"),
                "--fail-swap-on=false",
                "--make-iptables-util-chains=false",
                "--node-ip",
                NODE_IP,
                "--address",
                NODE_IP,
                "--hostname-override",
                NODE_NAME,
                "--read-only-port",
                "0",
                "--healthz-port",
                "0",
                "--eviction-hard",
                "memory.available<100Mi,nodefs.available<1%,imagefs.available<1%",
                "--image-gc-high-threshold",
                "100",
                "--sync-frequency",
                "10s",
            ]),
    );
    wait_until_ready(cluster).await;
}

/// Loads an OCI archive into the node's containerd as `name:<its tag>`, where the kubelet finds it
/// (pods then run it with `imagePullPolicy: IfNotPresent` or `Never`: no registry is reachable).
pub fn import_image(socket: &Path, archive: &Path, name: &str) {
    let out = Command::new(root().join("usr/bin/ctr"))
        .args(["--address", &socket.display().to_string(), "-n", "k8s.io"])
        .args(["images", "import", "--base-name", name])
        .arg(archive)
        .output()
        .expect("run ctr");
    assert!(
        out.status.success(),
        "ctr images import {}: {}{}",
        archive.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The containerd socket of a node started in `cluster`.
pub fn containerd_socket(cluster: &Cluster) -> PathBuf {
    cluster.dir().join("containerd.sock")
}

async fn wait_until_ready(cluster: &mut Cluster) {
    let client = cluster.client(ADMIN_TOKEN);
    let nodes: Api<Node> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        cluster.assert_running();
        let ready = nodes
            .get_opt(NODE_NAME)
            .await
            .ok()
            .flatten()
            .is_some_and(|n| {
                n.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
        // Pods are refused until their namespace's default ServiceAccount has its token.
        let account = accounts
            .get_opt("default")
            .await
            .ok()
            .flatten()
            .is_some_and(|a| !a.secrets.unwrap_or_default().is_empty());
        if ready && account {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the node was not Ready within 120 s; see {}",
            cluster.dir().join("kubelet.log").display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn containerd_config(dir: &Path, root: &Path, socket: &Path) -> String {
    format!(
        r#"version = 2
root = "{state}/root"
state = "{state}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # root here lacks CAP_SYS_RESOURCE: without this every pod sandbox fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{runc}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"#,
        state = dir.join("containerd").display(),
        socket = socket.display(),
        pause = PAUSE_IMAGE,
        runc = root.join("usr/bin/runc").display(),
        cni_bin = root.join("usr/lib/cni").display(),
        cni_conf = dir.join("cni").display(),
    )
}

/// Pods on a bridge whose gateway is the node; no masquerading, since nothing leaves the sandbox.
fn cni_config(dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "azlog",
        "plugins": [{
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.200.1.0/24"}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": dir.join("cni-ipam").display().to_string(),
            },
        }],
    })
    .to_string()
}

/// The repository of the collector image, as the chart names it.
pub const COLLECTOR_REPOSITORY: &str = "ghcr.io/azlog-io/azlog-collector";
/// The repository of the operator image, as the chart names it.
pub const OPERATOR_REPOSITORY: &str = "ghcr.io/azlog-io/azlog-operator";

/// Where `images/build` wrote the azlog images: `$AZLOG_IMAGES_DIR`, else
/// `$CARGO_TARGET_DIR/images`, else `target/images`.
pub fn images_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AZLOG_IMAGES_DIR") {
        return PathBuf::from(dir);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("images")
}

/// Loads the collector and operator images that `images/build` wrote into the node, and answers
/// their tag.
pub fn import_azlog_images(cluster: &Cluster) -> String {
    let dir = images_dir();
    let tag = std::fs::read_to_string(dir.join("tag")).unwrap_or_else(|e| {
        panic!(
            "no azlog images in {} ({e}): run images/build (the README's test command does)",
            dir.display()
        )
    });
    let socket = containerd_socket(cluster);
    import_image(
        &socket,
        &dir.join("azlog-collector.oci.tar"),
        COLLECTOR_REPOSITORY,
    );
    import_image(
        &socket,
        &dir.join("azlog-operator.oci.tar"),
        OPERATOR_REPOSITORY,
    );
    tag.trim().to_owned()
}
