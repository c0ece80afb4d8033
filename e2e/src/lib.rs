//! Test components for azlog: a fake Azure service that speaks the public Entra ID, ARM and
//! Microsoft Graph shapes with scriptable faults, and Azurite (the real storage emulator) with
//! Microsoft's own SDK to write to it; and a real Kubernetes control plane for the operator.

pub mod azurite;
pub mod event_hub_records;
pub mod fake_azure;
pub mod fake_event_hubs;
pub mod fault_proxy;
pub mod host_collector;
pub mod kube_cluster;
pub mod kube_node;
pub mod process_stats;
pub mod wad_rows;

use std::path::PathBuf;

use azlog_test_support::install::cache_dir;

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
