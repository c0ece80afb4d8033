//! A real Kubernetes control plane for the operator's tests: etcd, kube-apiserver and
//! kube-controller-manager (garbage collection, Deployments → ReplicaSets, ServiceAccount tokens).
//!
//! On loopback ([`Cluster::start`]) there is no scheduler and no kubelet, so pods stay Pending; tests
//! run the collector on the host instead, with a token of its ServiceAccount. Inside the node sandbox
//! ([`Cluster::start_for_node`], see `crate::kube_node`) the API server is reachable from pods and a
//! scheduler runs, so a kubelet can join.
//!
//! The binaries come from `e2e/scripts/install-kube`; a missing install fails loudly.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};

use azlog_test_support::install::installed;
use azlog_test_support::metrics;
use azlog_test_support::ports::free_port;

/// The static token of the cluster's administrator (group system:masters).
pub const ADMIN_TOKEN: &str = "azlog-test-admin-token";
/// Flags of the controller manager and the scheduler: the only instance, serving nothing.
const ALONE: [&str; 5] = ["--leader-elect=false", "--port", "0", "--secure-port", "0"];
/// Where `deploy/operator.yaml` installs the operator, and so where its Lease lives.
pub const OPERATOR_NAMESPACE: &str = "azlog-system";

/// Where the install script put the control plane binaries.
pub fn binaries() -> PathBuf {
    installed("AZLOG_KUBE_ROOT", "kube", "Kubernetes is", "install-kube").join("bin")
}

/// A running control plane; every process is stopped when dropped.
#[derive(Debug)]
pub struct Cluster {
    children: Vec<(&'static str, Child)>,
    /// https://127.0.0.1:<port> of the API server.
    pub url: String,
    dir: PathBuf,
}

/// Where the API server listens and what it serves as.
#[derive(Debug)]
struct Network {
    bind: &'static str,
    advertise: &'static str,
    port: u16,
    service_range: &'static str,
    /// The serving certificate and the CA pods trust; None: the API server's own self-signed one.
    tls: Option<crate::fake_azure::tls::Certificates>,
    /// A kubelet will join: its lifecycle controller runs (it lifts the not-ready taint nodes
    /// register with), and the CRDs are left to whoever installs azlog (the chart).
    node: bool,
}

impl Cluster {
    /// Starts etcd and the API server on loopback, installs the azlog CRDs, then starts the
    /// controller manager (garbage collection of new kinds lags ~30 s when CRDs arrive after it).
    pub async fn start(dir: &Path) -> Cluster {
        let network = Network {
            bind: "127.0.0.1",
            advertise: "127.0.0.1",
            port: free_port(),
            service_range: "10.0.0.0/24",
            tls: None,
            node: false,
        };
        Cluster::start_on(dir, network).await
    }

    /// The control plane of a node, inside `e2e/scripts/node-sandbox`: the API server on port 443
    /// of every address, advertised at the node's, and so reachable from pods through the
    /// kubernetes Service address (which the sandbox puts on the node) with a certificate for it
    /// signed by a CA that pods are given; and a scheduler. No CRDs: installing azlog brings them.
    pub async fn start_for_node(dir: &Path) -> Cluster {
        use crate::kube_node::{NODE_IP, SERVICE_IP};
        let addresses = [NODE_IP, SERVICE_IP, "127.0.0.1"].map(|a| a.parse().expect("an address"));
        let names = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost",
        ];
        let tls = crate::fake_azure::tls::certificates_for(&names, &addresses)
            .expect("the API server's certificate");
        let network = Network {
            bind: "0.0.0.0",
            advertise: NODE_IP,
            port: 443,
            service_range: "10.200.2.0/24",
            tls: Some(tls),
            node: true,
        };
        let mut cluster = Cluster::start_on(dir, network).await;
        let kubeconfig = cluster.kubeconfig("admin", ADMIN_TOKEN);
        cluster.spawn(
            "kube-scheduler",
            Command::new(binaries().join("kube-scheduler"))
                .args(["--kubeconfig", &kubeconfig.display().to_string()])
                .args(ALONE),
        );
        cluster
    }

    async fn start_on(dir: &Path, network: Network) -> Cluster {
        // kube and the Azure crates bring two rustls providers; the process must pick one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bin = binaries();
        let (etcd_port, peer_port) = (free_port(), free_port());
        let mut cluster = Cluster {
            children: Vec::new(),
            url: format!("https://{}:{}", network.advertise, network.port),
            dir: dir.to_owned(),
        };
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        cluster.spawn(
            "etcd",
            Command::new(bin.join("etcd")).args([
                "--data-dir",
                &dir.join("etcd").display().to_string(),
                "--listen-client-urls",
                &etcd_url,
                "--advertise-client-urls",
                &etcd_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("default={peer_url}"),
                "--log-level",
                "warn",
            ]),
        );

        let key = rcgen::KeyPair::generate().expect("service account key");
        let (sa_key, sa_pub) = (dir.join("sa-key.pem"), dir.join("sa.pem"));
        std::fs::write(&sa_key, key.serialize_pem()).expect("write sa key");
        std::fs::write(&sa_pub, key.public_key_pem()).expect("write sa public key");
        let tokens = dir.join("tokens.csv");
        std::fs::write(
            &tokens,
            format!("{ADMIN_TOKEN},azlog-admin,azlog-admin,\"system:masters\"\n"),
        )
        .expect("write token file");
        let path = |p: &Path| p.display().to_string();
        let mut serving = Vec::new();
        let mut controller_tls = Vec::new();
        if let Some(tls) = &network.tls {
            let (cert, key, ca) = (
                dir.join("apiserver.pem"),
                dir.join("apiserver-key.pem"),
                dir.join("ca.pem"),
            );
            std::fs::write(&cert, &tls.server_cert_pem).expect("write the serving certificate");
            std::fs::write(&key, &tls.server_key_pem).expect("write the serving key");
            std::fs::write(&ca, &tls.ca_pem).expect("write the CA");
            serving = vec![
                "--tls-cert-file".to_owned(),
                path(&cert),
                "--tls-private-key-file".to_owned(),
                path(&key),
            ];
            // What the ServiceAccount token Secrets carry as ca.crt, so pods trust the API server.
            controller_tls = vec!["--root-ca-file".to_owned(), path(&ca)];
        }
        cluster.spawn(
            "kube-apiserver",
            Command::new(bin.join("kube-apiserver"))
                .args(serving)
                .args([
                    "--etcd-servers",
                    &etcd_url,
                    "--bind-address",
                    network.bind,
                    "--advertise-address",
                    network.advertise,
                    "--secure-port",
                    &network.port.to_string(),
                    "--insecure-port",
                    "0",
                    "--cert-dir",
                    &path(&dir.join("certs")),
                    "--token-auth-file",
                    &path(&tokens),
                    "--authorization-mode",
                    "RBAC",
                    "--service-account-issuer",
                    "https://kubernetes.default.svc",
                    "--service-account-key-file",
                    &path(&sa_pub),
                    "--service-account-signing-key-file",
                    &path(&sa_key),
                    "--api-audiences",
                    "https://kubernetes.default.svc",
                    "--service-cluster-ip-range",
                    network.service_range,
                    "--allow-privileged",
                    // kubectl logs and exec reach the kubelet by its address: there is no DNS.
                    "--kubelet-preferred-address-types",
                    "InternalIP",
                    "--enable-priority-and-fairness=false",
                ]),
        );
        cluster.wait_ready().await;
        if !network.node {
            cluster.install_crds().await;
        }

        let kubeconfig = cluster.kubeconfig("admin", ADMIN_TOKEN);
        // With a node, its lifecycle controller lifts the not-ready taint the kubelet registers with,
        // and the volume binder binds the claims of its pods.
        let controllers = format!(
            "*,-nodeipam,{}-cloud-node-lifecycle,-attachdetach,-service,-route",
            if network.node {
                ""
            } else {
                "-nodelifecycle,-persistentvolume-binder,"
            }
        );
        cluster.spawn(
            "kube-controller-manager",
            Command::new(bin.join("kube-controller-manager"))
                .args(controller_tls)
                .args([
                    "--kubeconfig",
                    &path(&kubeconfig),
                    "--controllers",
                    &controllers,
                    "--service-account-private-key-file",
                    &path(&sa_key),
                ])
                .args(ALONE),
        );
        cluster
    }

    /// Starts a process of the cluster; it logs to `<dir>/<name>.log` and is stopped when the
    /// cluster is dropped, the last started first.
    pub fn spawn(&mut self, name: &'static str, command: &mut Command) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {name}: {e}"));
        self.children.push((name, child));
    }

    /// The directory that holds the cluster's data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Panics with the process's log when one of them has exited.
    pub fn assert_running(&mut self) {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join(format!("{name}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "{name} exited with {status}; the end of its log:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }

    async fn wait_ready(&mut self) {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .expect("http client");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            self.assert_running();
            let ready = http
                .get(format!("{}/readyz", self.url))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the API server was not ready within 90 s; see {}",
                self.dir.join("kube-apiserver.log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn install_crds(&self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client(ADMIN_TOKEN));
        for (_, crd) in azlog_operator::crd::all() {
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("create CRD");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for (_, crd) in azlog_operator::crd::all() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            loop {
                let established = crds
                    .get(&name)
                    .await
                    .ok()
                    .and_then(|c| c.status)
                    .is_some_and(|s| {
                        s.conditions
                            .unwrap_or_default()
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    });
                if established {
                    break;
                }
                assert!(Instant::now() < deadline, "CRD {name} was not established");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// A client authenticated with `token`.
    pub fn client(&self, token: &str) -> kube::Client {
        let mut config = kube::Config::new(self.url.parse().expect("api server url"));
        config.accept_invalid_certs = true;
        config.auth_info.token = Some(token.to_owned().into());
        kube::Client::try_from(config).expect("kube client")
    }

    /// A token of ServiceAccount `namespace/name`, as a kubelet would mount it (TokenRequest).
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> String {
        self.token_request(namespace, name, Vec::new()).await
    }

    /// A token of ServiceAccount `namespace/name` for `audience`, as the workload identity
    /// webhook has the kubelet project it for Entra ID.
    pub async fn service_account_token_for(
        &self,
        namespace: &str,
        name: &str,
        audience: &str,
    ) -> String {
        self.token_request(namespace, name, vec![audience.to_owned()])
            .await
    }

    async fn token_request(&self, namespace: &str, name: &str, audiences: Vec<String>) -> String {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        use k8s_openapi::api::core::v1::ServiceAccount;
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(ADMIN_TOKEN), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences,
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("a token for {namespace}/{name}: {e}"))
            .status
            .expect("a token")
            .token
    }

    /// Runs kubectl as the administrator and answers what it printed; failing fails the test.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .env("KUBECONFIG", self.kubeconfig("admin", ADMIN_TOKEN))
            .args(args)
            .output()
            .expect("kubectl is installed (the machine has it; see the README)");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Applies `deploy/operator.yaml` as a user would (its Deployment stays Pending: there is no
    /// kubelet) and answers a token of its ServiceAccount, so that the operator run on the host
    /// has exactly the RBAC that file grants.
    pub async fn operator_token(&self) -> String {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/operator.yaml");
        self.kubectl(&["apply", "-f", &manifest.display().to_string()]);
        self.service_account_token(OPERATOR_NAMESPACE, "azlog-operator")
            .await
    }

    /// A kubeconfig file for `token`, for processes started by tests (the operator, kubectl).
    pub fn kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let path = self.dir.join(format!("kubeconfig-{name}"));
        let mut text = String::new();
        let _ = write!(
            text,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    insecure-skip-tls-verify: true\nusers:\n- name: test\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context: {{cluster: test, user: test, namespace: default}}\ncurrent-context: test\n",
            self.url
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The controller manager first, etcd last, so nothing logs a storm of connection errors.
        for (_, child) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `azlog-operator` binary run on the host against a [`Cluster`], with the token it is given;
/// stopped when dropped.
#[derive(Debug)]
pub struct OperatorProcess {
    child: Child,
    metrics_port: u16,
}

impl OperatorProcess {
    /// Starts `binary` with `args` added to the ones every run needs; it logs to
    /// `<dir>/operator.log`.
    pub fn start(
        cluster: &Cluster,
        binary: &Path,
        dir: &Path,
        token: &str,
        args: &[&str],
    ) -> OperatorProcess {
        OperatorProcess::start_with_env(cluster, binary, dir, token, args, &[])
    }

    /// The same, with `env` set (a workload identity, as the webhook would give the pod).
    pub fn start_with_env(
        cluster: &Cluster,
        binary: &Path,
        dir: &Path,
        token: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> OperatorProcess {
        let metrics_port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("operator.log"))
            .expect("operator log");
        let child = Command::new(binary)
            .env("KUBECONFIG", cluster.kubeconfig("operator", token))
            .envs(env.iter().copied())
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start the operator");
        OperatorProcess {
            child,
            metrics_port,
        }
    }

    /// Its /metrics text; None while it is not serving.
    pub async fn metrics(&self) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        reqwest::get(url).await.ok()?.text().await.ok()
    }

    /// The sum of the series of metric `name` with every label of `labels`; None while the
    /// operator is not serving.
    pub async fn metric(&self, name: &str, labels: &[&str]) -> Option<f64> {
        Some(metrics::sum(&self.metrics().await?, name, labels))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it at once (SIGKILL), as a crash would.
    pub fn kill(self) {}
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
