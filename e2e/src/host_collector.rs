//! A LogSource's collector run on the host against a test [`Cluster`], as its pod would run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::Value;

use crate::kube_cluster::{ADMIN_TOKEN, Cluster};
use azlog_test_support::ports::free_port;
use azlog_test_support::wait::eventually;

/// The namespace the tests run LogSources in.
const NS: &str = "default";
/// How long the operator may take to render a LogSource.
const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A LogSource's collector as its pod would run it, on the host (the test cluster has no node):
/// the config the operator rendered, with host paths for state and health, and a token of its
/// ServiceAccount as the kubelet would mount it.
#[derive(Debug)]
pub struct PodOnHost {
    pub config: PathBuf,
    pub kubeconfig: PathBuf,
    pub log: PathBuf,
    pub token: String,
    pub health: u16,
}

impl PodOnHost {
    /// Waits for the operator to render LogSource `name`, then writes its config, changed by
    /// `adjust` (the pod's paths that differ on the host).
    pub async fn prepare(
        cluster: &Cluster,
        dir: &Path,
        name: &str,
        adjust: impl FnOnce(&mut Value),
    ) -> PodOnHost {
        let admin = cluster.client(ADMIN_TOKEN);
        let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
        let child = format!("azlog-{name}");
        let rendered = eventually(
            "the collector config and its RoleBinding exist",
            WAIT,
            || async {
                let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
                    Api::namespaced(admin.clone(), NS);
                bindings.get_opt(&child).await.ok()??;
                config_maps
                    .get_opt(&format!("{child}-checkpoint"))
                    .await
                    .ok()??;
                config_maps.get_opt(&child).await.ok()?
            },
        )
        .await;
        let token = cluster.service_account_token(NS, &child).await;
        let mut config: Value =
            serde_yaml::from_str(&rendered.data.unwrap_or_default()["collector.yaml"])
                .expect("yaml");
        let health = free_port();
        config["health"]["listen"] = format!("127.0.0.1:{health}").into();
        config["stateDir"] = dir.join("state").display().to_string().into();
        adjust(&mut config);
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, serde_yaml::to_string(&config).expect("yaml")).expect("write");
        PodOnHost {
            config: path,
            kubeconfig: cluster.kubeconfig(name, &token),
            log: dir.join(format!("{name}.log")),
            token,
            health,
        }
    }

    /// Starts it; it is killed when the answer is dropped, so a failing test leaves none behind.
    pub fn run(&self, binary: &Path) -> Running {
        let child = Command::new(binary)
            .env("KUBECONFIG", &self.kubeconfig)
            // The pod's name, as the downward API gives it: a collector restarted in the same pod
            // takes its own Lease back at once.
            .env("POD_NAME", format!("pod-on-host-{}", self.health))
            .args(["run", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .expect("log"),
            )
            .spawn()
            .expect("start the collector");
        Running(child)
    }
}

/// A collector process of a test, killed when dropped.
#[derive(Debug)]
pub struct Running(pub std::process::Child);

impl std::ops::Deref for Running {
    type Target = std::process::Child;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A syslog receiver on `port` that counts newline-framed messages.
pub async fn syslog_counter(port: u16) -> Arc<AtomicUsize> {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("listen");
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let lines = buf[..n].iter().filter(|b| **b == b'\n').count();
                    counted.fetch_add(lines, Ordering::SeqCst);
                }
            });
        }
    });
    count
}
