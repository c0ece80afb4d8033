//! Starts the test control plane (etcd, kube-apiserver, kube-controller-manager on loopback, with
//! the azlog CRDs installed) for trying the operator by hand, and keeps it up until Ctrl-C.
//!
//!   e2e/scripts/kube-up [directory]

use std::path::PathBuf;

use azlog_e2e::kube_cluster::{ADMIN_TOKEN, Cluster};

#[tokio::main]
async fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("azlog-kube-{}", std::process::id())));
    std::fs::create_dir_all(&dir).expect("create the cluster directory");
    eprintln!(
        "starting etcd, kube-apiserver and kube-controller-manager in {}…",
        dir.display()
    );
    let cluster = Cluster::start(&dir).await;
    let kubeconfig = cluster.kubeconfig("admin", ADMIN_TOKEN);
    println!("API server: {}", cluster.url);
    println!("export KUBECONFIG={}", kubeconfig.display());
    println!(
        "then: kubectl apply -f deploy/operator.yaml; azlog-operator runs on this host with that \
         KUBECONFIG (there is no kubelet: collector pods stay Pending). Ctrl-C stops everything."
    );
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("stopping the control plane");
    drop(cluster);
}
