//! The operator against a real kube-apiserver, etcd and kube-controller-manager.

use azlog_e2e::kube_cluster::{ADMIN_TOKEN, Cluster};
use azlog_operator::crd::LogSource;
use kube::api::{Api, PostParams};

fn log_source(name: &str, spec: serde_json::Value) -> LogSource {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "azlog.io/v1alpha1",
        "kind": "LogSource",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a LogSource")
}

#[tokio::test]
async fn the_crds_are_accepted_and_the_api_server_checks_their_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path()).await;
    let api: Api<LogSource> = Api::namespaced(cluster.client(ADMIN_TOKEN), "default");
    let good = log_source(
        "demo",
        serde_json::json!({"simulate": {"rate": 5.0}, "outputs": [{"syslog": {"address": "siem:514", "transport": "tcp"}}]}),
    );
    api.create(&PostParams::default(), &good)
        .await
        .expect("a valid LogSource is stored");
    let bad = serde_json::json!({
        "apiVersion": "azlog.io/v1alpha1", "kind": "LogSource", "metadata": {"name": "bad"},
        "spec": {"simulate": {}, "outputs": [{"syslog": {"address": "siem:514", "transport": "carrier-pigeon"}}]},
    });
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        cluster.client(ADMIN_TOKEN),
        "default",
        &kube::discovery::ApiResource::erase::<LogSource>(&()),
    );
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
}
