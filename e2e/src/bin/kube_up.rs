//! Starts the test cluster for trying azlog by hand, and keeps it up until Ctrl-C.
//!
//!   e2e/scripts/kube-up [directory]            etcd, kube-apiserver, kube-controller-manager on
//!                                              loopback with the azlog CRDs; no node
//!   e2e/scripts/kube-up --node [directory]     the same plus a scheduler, containerd and a
//!                                              kubelet in a sandbox of their own, with the images
//!                                              of images/build loaded; opens a shell in there

use std::path::PathBuf;

use azlog_e2e::kube_cluster::{ADMIN_TOKEN, Cluster};
use azlog_e2e::kube_node;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "kube-up")]
struct Cli {
    /// Add a node that runs pods, and open a shell beside it (kubectl and helm work there; exit
    /// the shell to stop everything).
    #[arg(long)]
    node: bool,
    /// Run this command beside the node instead of a shell, then stop.
    #[arg(long, requires = "node", value_name = "COMMAND")]
    run: Option<String>,
    /// Holds the cluster's data and logs; default a new temporary directory.
    directory: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let dir = cli
        .directory
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("azlog-kube-{}", std::process::id())));
    std::fs::create_dir_all(&dir).expect("create the cluster directory");
    if cli.node {
        return node(&cli, &dir).await;
    }
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
         KUBECONFIG (there is no node: collector pods stay Pending; kube-up --node adds one). \
         Ctrl-C stops everything."
    );
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("stopping the control plane");
    drop(cluster);
    std::process::ExitCode::SUCCESS
}

async fn node(cli: &Cli, dir: &std::path::Path) -> std::process::ExitCode {
    if !kube_node::in_sandbox() {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/node-sandbox");
        // The same command again inside, naming the directory chosen here.
        let mut inner = vec!["--node".to_owned()];
        if let Some(run) = &cli.run {
            inner.extend(["--run".to_owned(), run.clone()]);
        }
        let status = std::process::Command::new(script)
            .arg(dir.join("node"))
            .arg(std::env::current_exe().expect("this program"))
            .args(inner)
            .arg(dir)
            .status()
            .expect("start the node sandbox");
        return exit_code(status);
    }
    eprintln!(
        "starting the control plane, containerd and a kubelet in {}…",
        dir.display()
    );
    let mut cluster = Cluster::start_for_node(dir).await;
    kube_node::start(&mut cluster).await;
    let images = match std::fs::exists(kube_node::images_dir().join("tag")) {
        Ok(true) => format!(
            "images loaded: {}:{tag} and {}:{tag}",
            kube_node::COLLECTOR_REPOSITORY,
            kube_node::OPERATOR_REPOSITORY,
            tag = kube_node::import_azlog_images(&cluster)
        ),
        _ => format!(
            "no azlog images in {}: run images/build first to run azlog here",
            kube_node::images_dir().display()
        ),
    };
    let kubeconfig = cluster.kubeconfig("admin", ADMIN_TOKEN);
    eprintln!(
        "node {} is Ready at {}; {images}; API server {}",
        kube_node::NODE_NAME,
        kube_node::NODE_IP,
        cluster.url
    );
    let mut command = match &cli.run {
        Some(command) => {
            let mut c = std::process::Command::new("bash");
            c.args(["-c", command]);
            c
        }
        None => {
            eprintln!(
                "a shell beside the node: kubectl and helm talk to it, pods reach servers you start \
                 on {}. Try: helm install azlog charts/azlog -n azlog-system --create-namespace \
                 --set image.tag=<tag>. Exit the shell to stop everything.",
                kube_node::NODE_IP
            );
            std::process::Command::new(std::env::var("SHELL").unwrap_or_else(|_| "bash".into()))
        }
    };
    let status = command
        .env("KUBECONFIG", &kubeconfig)
        .status()
        .expect("start the command");
    drop(cluster);
    exit_code(status)
}

/// This program's exit code for a child's: success or failure.
fn exit_code(status: std::process::ExitStatus) -> std::process::ExitCode {
    if status.success() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
