//! Test components for azlog: a fake Azure service that speaks the public Entra ID, ARM and
//! Microsoft Graph shapes with scriptable faults, and Azurite (the real storage emulator) with
//! Microsoft's own SDK to write to it; and a real Kubernetes control plane for the operator.

pub mod azurite;
pub mod fake_azure;
pub mod fault_proxy;
pub mod host_collector;
pub mod kube_cluster;
pub mod kube_node;
pub mod wad_rows;

use std::net::TcpListener;
use std::path::PathBuf;

/// Where the install scripts cache what they build: `$XDG_CACHE_HOME/azlog` or `~/.cache/azlog`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache")
        })
        .join("azlog")
}

/// The root an install script filled: `$<variable>`, else `<cache>/<name>`. A missing or
/// unfinished install fails the test, naming `what` and the script that installs it.
pub fn installed(variable: &str, name: &str, what: &str, script: &str) -> PathBuf {
    let root = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join(name));
    assert!(
        root.join(".complete").exists(),
        "{what} not installed in {}: run e2e/scripts/{script} (the README's test command does)",
        root.display()
    );
    root
}

/// A port free on loopback now, for servers that cannot report a port they chose themselves.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The sum of every series in a Prometheus text exposition whose line starts with `prefix` (a
/// metric name, or a name with some of its labels).
pub fn metric_sum(body: &str, prefix: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `check` every 200 ms until it answers Some, or fails the test after `timeout` saying what
/// did not happen.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    timeout: std::time::Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The helm binary `e2e/scripts/install-helm` installed (`$AZLOG_HELM` overrides it).
pub fn helm() -> PathBuf {
    let binary = std::env::var_os("AZLOG_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("helm/helm"));
    assert!(
        binary.exists(),
        "helm is not installed at {}: run e2e/scripts/install-helm (the README's test command does)",
        binary.display()
    );
    binary
}

/// A LogSource named `name` with this spec, as a user would write it.
pub fn log_source(name: &str, spec: serde_json::Value) -> azlog_operator::crd::LogSource {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "azlog.io/v1alpha1",
        "kind": "LogSource",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a LogSource")
}

/// What Argo CD shows for `object` (a LogSource as JSON) with the health check of
/// `deploy/argocd-health.lua`: its status and message. Argo CD runs such checks in gopher-lua, a
/// Lua 5.1, as this does.
pub fn argocd_health(object: &serde_json::Value) -> (String, String) {
    use mlua::LuaSerdeExt;
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/argocd-health.lua"),
    )
    .expect("deploy/argocd-health.lua");
    let lua = mlua::Lua::new();
    let obj = lua.to_value(object).expect("the object as a Lua table");
    lua.globals().set("obj", obj).expect("set obj");
    let health: mlua::Table = lua
        .load(&script)
        .eval()
        .unwrap_or_else(|e| panic!("the health check failed: {e}"));
    (
        health.get("status").expect("a status"),
        health.get("message").expect("a message"),
    )
}
