//! Azurite, Microsoft's Azure Storage emulator, run as processes for tests; and Microsoft's Python
//! SDKs (`e2e/scripts/azure-storage.py`) to write rows and blobs into it the way real clients do.
//!
//! Both come from `e2e/scripts/install-azure-storage-tools`; a missing install fails loudly.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use azlog_test_support::install::installed;
use azlog_test_support::ports::free_port;

/// Azurite's well-known development account and its published key.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Where the install script put Azurite and the Python SDK.
pub fn tools_root() -> PathBuf {
    installed(
        "AZLOG_STORAGE_TOOLS",
        "azure-storage-tools",
        "Azurite and the Azure Python SDK are",
        "install-azure-storage-tools",
    )
}

/// Running Azurite Table and Blob services with in-memory storage; stopped when dropped.
#[derive(Debug)]
pub struct Azurite {
    children: Vec<Child>,
    /// The local address it listens on.
    host: String,
    pub table_port: u16,
    pub blob_port: u16,
    log: PathBuf,
    /// With HTTPS and Entra ID (OAuth) authentication: the CA file clients must trust.
    ca_file: Option<PathBuf>,
}

impl Azurite {
    pub fn start(dir: &Path) -> Azurite {
        Azurite::launch(dir, false, "127.0.0.1")
    }

    /// Azurite over HTTPS (see [`Azurite::start_with_oauth`]) on another local address: the
    /// node's, for pods of a test node, which may use plain http only on their own loopback.
    pub fn start_tls_on(dir: &Path, host: &str) -> Azurite {
        Azurite::launch(dir, true, host)
    }

    /// Azurite over HTTPS accepting Entra ID bearer tokens (`--oauth basic`: it checks a token's
    /// issuer, audience and expiry, not its signature) besides the account key.
    pub fn start_with_oauth(dir: &Path) -> Azurite {
        Azurite::launch(dir, true, "127.0.0.1")
    }

    fn launch(dir: &Path, oauth: bool, host: &str) -> Azurite {
        let root = tools_root();
        let (table_port, blob_port) = (free_port(), free_port());
        let log = dir.join(format!("azurite-{table_port}.log"));
        let log_file = std::fs::File::create(&log).expect("azurite log");
        let mut tls_args = Vec::new();
        let mut ca_file = None;
        if oauth {
            let address = host.parse().expect("Azurite's host is an IP address");
            let certs = crate::fake_azure::tls::certificates_for(&["localhost"], &[address])
                .expect("test certificates");
            let (cert, key, ca) = (
                dir.join("azurite-cert.pem"),
                dir.join("azurite-key.pem"),
                dir.join("azurite-ca.pem"),
            );
            std::fs::write(&cert, &certs.server_cert_pem).expect("cert");
            std::fs::write(&key, &certs.server_key_pem).expect("key");
            std::fs::write(&ca, &certs.ca_pem).expect("ca");
            tls_args = vec![
                "--oauth".into(),
                "basic".into(),
                "--cert".into(),
                cert.display().to_string(),
                "--key".into(),
                key.display().to_string(),
            ];
            ca_file = Some(ca);
        }
        let mut azurite = Azurite {
            children: Vec::new(),
            host: host.to_owned(),
            table_port,
            blob_port,
            log,
            ca_file,
        };
        for (service, port) in [("table", table_port), ("blob", blob_port)] {
            let child =
                Command::new(root.join(format!("node/node_modules/.bin/azurite-{service}")))
                    .arg(format!("--{service}Host"))
                    .arg(host)
                    .arg(format!("--{service}Port"))
                    .arg(port.to_string())
                    .args([
                        "--inMemoryPersistence",
                        "--disableTelemetry",
                        "--skipApiVersionCheck",
                        "--loose",
                    ])
                    .args(&tls_args)
                    .stdin(Stdio::null())
                    .stdout(log_file.try_clone().expect("log"))
                    .stderr(log_file.try_clone().expect("log"))
                    .spawn()
                    .expect("start azurite");
            azurite.children.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [table_port, blob_port] {
            while TcpStream::connect((host, port)).is_err() {
                for child in &mut azurite.children {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("Azurite exited ({status}): {}", azurite.log_text());
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "Azurite did not listen on {port} within 30s: {}",
                    azurite.log_text()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        azurite
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn scheme(&self) -> &'static str {
        if self.ca_file.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The CA to trust when Azurite serves HTTPS.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The path-style blob endpoint: `http(s)://<host>:<port>/devstoreaccount1`.
    pub fn blob_endpoint(&self) -> String {
        format!(
            "{}://{}:{}/{ACCOUNT}",
            self.scheme(),
            self.host,
            self.blob_port
        )
    }

    /// The path-style table endpoint: `http(s)://<host>:<port>/devstoreaccount1`.
    pub fn table_endpoint(&self) -> String {
        format!(
            "{}://{}:{}/{ACCOUNT}",
            self.scheme(),
            self.host,
            self.table_port
        )
    }

    fn sdk(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/azure-storage.py");
        let mut child = Command::new(tools_root().join("python/bin/python"))
            .arg(script)
            .args(["--endpoint", &self.table_endpoint()])
            .args(["--blob-endpoint", &self.blob_endpoint()])
            .args(["--account", ACCOUNT, "--key", KEY])
            .args(
                self.ca_file
                    .iter()
                    .flat_map(|ca| ["--ca-file".into(), ca.display().to_string()]),
            )
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the Azure Python SDK");
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(stdin.unwrap_or_default())
                .expect("write rows");
        }
        let out = child.wait_with_output().expect("SDK output");
        assert!(
            out.status.success(),
            "azure-storage.py {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Upserts `rows` (objects with PartitionKey and RowKey) with the SDK, in per-partition
    /// transactions; columns named in `int64` are written as Edm.Int64.
    pub fn put_rows(&self, table: &str, rows: &[Value], int64: &[&str]) {
        let mut input = Vec::new();
        for row in rows {
            serde_json::to_writer(&mut input, row).expect("row JSON");
            input.push(b'\n');
        }
        let mut args = vec!["put-rows", table, "--int64"];
        args.extend_from_slice(int64);
        let written = self.sdk(&args, Some(&input));
        assert_eq!(written, rows.len().to_string(), "rows written");
    }

    pub fn create_table(&self, table: &str) {
        self.sdk(&["create-table", table], None);
    }

    /// Appends `bytes` to an append blob (created with its container when missing), as Azure
    /// Monitor appends to an hour's PT1H.json.
    pub fn append_blob(&self, container: &str, blob: &str, bytes: &[u8]) {
        self.sdk(&["append", container, blob], Some(bytes));
    }

    /// Appends to many append blobs in one SDK session: (container, blob, bytes) each.
    pub fn append_blobs(&self, appends: &[(String, String, String)]) {
        let mut input = Vec::new();
        for (container, blob, data) in appends {
            let line = serde_json::json!({"container": container, "blob": blob, "data": data});
            serde_json::to_writer(&mut input, &line).expect("append JSON");
            input.push(b'\n');
        }
        self.sdk(&["append-many"], Some(&input));
    }

    /// Writes a whole block blob.
    pub fn put_blob(&self, container: &str, blob: &str, bytes: &[u8]) {
        self.sdk(&["put-blob", container, blob], Some(bytes));
    }

    /// A read-only SAS token for `table`, valid for an hour.
    pub fn sas(&self, table: &str) -> String {
        self.sdk(&["sas", table], None)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
