//! Real syslog receivers (rsyslog, syslog-ng), and a test CA for their TLS listeners.
//!
//! Receivers run from the private root that `e2e/scripts/install-syslog-receivers` fills; a missing
//! install is a loud failure, never a skip. Every receiver writes what it parsed (hostname, app-name,
//! MSGID, structured data, message) as JSON lines, so tests assert on the receiver's own parse.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::install::installed;
use crate::ports::free_port;
use crate::wait::wait_until;

/// The private root rsyslog and syslog-ng were installed in.
pub fn syslog_root() -> PathBuf {
    installed(
        "AZLOG_SYSLOG_ROOT",
        "syslog-root",
        "rsyslog and syslog-ng are",
        "install-syslog-receivers",
    )
}

/// A test CA and a server certificate for 127.0.0.1 / localhost signed by it. rustls refuses a
/// self-signed CA used directly as the server certificate, so the chain is a real two-level one.
#[derive(Debug)]
pub struct TestCa {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// A client certificate signed by the same CA, for mutual TLS.
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
}

pub fn make_ca(dir: &Path) -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::new()).expect("ca params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "azlog test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let server_key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server = params
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("client key");
    let mut client_params =
        CertificateParams::new(vec!["azlog-collector".to_owned()]).expect("params");
    client_params
        .distinguished_name
        .push(DnType::CommonName, "azlog-collector");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client cert");
    let files = TestCa {
        ca_file: dir.join("ca.pem"),
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server-key.pem"),
        client_cert_file: dir.join("client.pem"),
        client_key_file: dir.join("client-key.pem"),
    };
    std::fs::write(&files.ca_file, ca.pem()).expect("write ca");
    std::fs::write(&files.cert_file, server.pem()).expect("write cert");
    std::fs::write(&files.key_file, server_key.serialize_pem()).expect("write key");
    std::fs::write(&files.client_cert_file, client.pem()).expect("write client cert");
    std::fs::write(&files.client_key_file, client_key.serialize_pem()).expect("write client key");
    files
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rsyslog,
    SyslogNg,
}

#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Octet-counted (and, for rsyslog, newline-framed) TCP.
    pub tcp: u16,
    /// Newline-framed TCP.
    pub tcp_newline: u16,
    pub udp: u16,
    pub tls: u16,
    /// TLS that requires a client certificate from the test CA (syslog-ng only).
    pub mtls: u16,
}

/// One message as the receiver parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub hostname: String,
    pub app_name: String,
    pub msgid: String,
    pub facility: String,
    pub severity: String,
    pub sd: BTreeMap<String, BTreeMap<String, String>>,
    pub msg: String,
}

impl Received {
    /// The value of an azlog structured-data parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.sd
            .get("azlog@32473")
            .and_then(|p| p.get(name))
            .map(String::as_str)
    }
}

#[derive(Debug)]
pub struct Receiver {
    pub kind: Kind,
    pub ports: Ports,
    /// The local address it listens on.
    pub address: String,
    dir: PathBuf,
    out: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Receiver {
    pub fn start(kind: Kind, dir: &Path, ca: &TestCa) -> Receiver {
        let mut receiver = Receiver::new(kind, dir, ca);
        receiver.spawn();
        receiver
    }

    /// A receiver with its ports chosen and config written, not yet running, on loopback.
    pub fn new(kind: Kind, dir: &Path, ca: &TestCa) -> Receiver {
        Receiver::new_on(kind, dir, ca, "127.0.0.1")
    }

    /// The same on another local address (the node's, for pods of a test node).
    pub fn new_on(kind: Kind, dir: &Path, ca: &TestCa, address: &str) -> Receiver {
        let ports = Ports {
            tcp: free_port(),
            tcp_newline: free_port(),
            udp: free_port(),
            tls: free_port(),
            mtls: free_port(),
        };
        let dir = dir.join(match kind {
            Kind::Rsyslog => "rsyslog",
            Kind::SyslogNg => "syslog-ng",
        });
        std::fs::create_dir_all(&dir).expect("receiver dir");
        let out = dir.join("received.jsonl");
        let conf = match kind {
            Kind::Rsyslog => rsyslog_conf(&dir, &out, address, ports, ca),
            Kind::SyslogNg => syslog_ng_conf(&out, address, ports, ca),
        };
        std::fs::write(dir.join("receiver.conf"), conf).expect("write conf");
        Receiver {
            kind,
            ports,
            address: address.to_owned(),
            log: dir.join("receiver.log"),
            dir,
            out,
            child: None,
        }
    }

    pub fn spawn(&mut self) {
        // A receiver killed mid-write leaves a torn last line; end it, or the restarted receiver's
        // first line would be glued to it and unreadable.
        if let Ok(content) = std::fs::read(&self.out)
            && content.last().is_some_and(|&b| b != b'\n')
        {
            let mut out = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.out)
                .expect("receiver output");
            std::io::Write::write_all(&mut out, b"\n").expect("end torn line");
        }
        let root = syslog_root();
        let libs = [
            root.join("usr/lib/x86_64-linux-gnu"),
            root.join("lib/x86_64-linux-gnu"),
            root.join("usr/lib/syslog-ng"),
        ]
        .map(|p| p.display().to_string())
        .join(":");
        let conf = self.dir.join("receiver.conf");
        let mut cmd = match self.kind {
            Kind::Rsyslog => {
                let mut c = Command::new(root.join("usr/sbin/rsyslogd"));
                c.arg("-n")
                    .arg("-f")
                    .arg(&conf)
                    .arg("-i")
                    .arg(self.dir.join("pid"));
                c.arg("-M")
                    .arg(root.join("usr/lib/x86_64-linux-gnu/rsyslog"));
                c
            }
            Kind::SyslogNg => {
                let mut c = Command::new(root.join("usr/sbin/syslog-ng"));
                c.arg("-F").arg("-f").arg(&conf);
                c.arg(format!(
                    "--module-path={}",
                    root.join("usr/lib/syslog-ng/3.38").display()
                ));
                c.arg(format!(
                    "--persist-file={}",
                    self.dir.join("persist").display()
                ));
                c.arg(format!("--pidfile={}", self.dir.join("pid").display()));
                c.arg(format!("--control={}", self.dir.join("ctl").display()));
                c.arg("--no-caps");
                c
            }
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        cmd.env("LD_LIBRARY_PATH", libs)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.kind)),
        );
        let ports = [self.ports.tcp, self.ports.tls];
        let address = self.address.clone();
        let log = self.log.clone();
        let child = self.child.as_mut().expect("child");
        wait_until(Duration::from_secs(15), "the receiver to listen", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "receiver exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            ports
                .iter()
                .all(|p| TcpStream::connect((address.as_str(), *p)).is_ok())
                .then_some(())
        });
    }

    /// Kills the receiver with `signal` (9 for SIGKILL, 15 for SIGTERM) and waits for it to exit.
    pub fn stop(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on a pid this test spawned and has not yet reaped.
            unsafe { libc::kill(child.id() as i32, signal) };
            let _ = child.wait();
        }
    }

    /// What the receiver stored. A receiver killed with SIGKILL can leave a torn line behind (its
    /// own loss, which no syslog sender can see); such lines are left out.
    pub fn messages(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| parse_line(self.kind, l))
            .collect()
    }

    /// Waits until at least `count` messages arrived.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let mut last = 0;
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            last = messages.len().max(last);
            assert!(
                Instant::now() < deadline,
                "{:?} received {last} of {count} messages within {timeout:?}; its log: {}",
                self.kind,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop(9);
    }
}

fn parse_line(kind: Kind, line: &str) -> Option<Received> {
    let v: Value = serde_json::from_str(line).ok()?;
    let s = |key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let sd_value = match kind {
        // mmpstrucdata's result arrives as a JSON document in a string.
        Kind::Rsyslog => serde_json::from_str(&s("sd")).unwrap_or(Value::Null),
        Kind::SyslogNg => v.get("_SDATA").cloned().unwrap_or(Value::Null),
    };
    let mut sd = BTreeMap::new();
    if let Value::Object(elements) = sd_value {
        for (id, params) in elements {
            let params = params
                .as_object()
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            sd.insert(id, params);
        }
    }
    Some(match kind {
        Kind::Rsyslog => Received {
            hostname: s("hostname"),
            app_name: s("appname"),
            msgid: s("msgid"),
            facility: s("facility"),
            severity: s("severity"),
            sd,
            msg: s("msg"),
        },
        Kind::SyslogNg => Received {
            hostname: s("HOST"),
            app_name: s("PROGRAM"),
            msgid: s("MSGID"),
            facility: s("FACILITY"),
            severity: s("PRIORITY"),
            sd,
            msg: s("MESSAGE"),
        },
    })
}

fn rsyslog_conf(dir: &Path, out: &Path, address: &str, ports: Ports, ca: &TestCa) -> String {
    format!(
        r#"global(maxMessageSize="256k" workDirectory="{dir}"
  parser.escapeControlCharactersOnReceive="off"
  defaultNetstreamDriverCAFile="{ca}" defaultNetstreamDriverCertFile="{cert}" defaultNetstreamDriverKeyFile="{key}")
main_queue(queue.type="Direct")
module(load="imptcp")
module(load="imudp")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
module(load="mmpstrucdata")
input(type="imptcp" port="{tcp}" address="{address}" supportOctetCountedFraming="on")
input(type="imptcp" port="{newline}" address="{address}")
input(type="imudp" port="{udp}" address="{address}")
input(type="imtcp" port="{tls}" address="{address}")
template(name="parsed" type="list" option.jsonf="on") {{
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="appname" name="app-name" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="facility" name="syslogfacility-text" format="jsonf")
  property(outname="severity" name="syslogseverity-text" format="jsonf")
  property(outname="sd" name="$!rfc5424-sd" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}
action(type="mmpstrucdata" sd_name.lowercase="off")
action(type="omfile" file="{out}" template="parsed" asyncWriting="off" flushOnTXEnd="on")
"#,
        dir = dir.display(),
        ca = ca.ca_file.display(),
        cert = ca.cert_file.display(),
        key = ca.key_file.display(),
        tcp = ports.tcp,
        newline = ports.tcp_newline,
        address = address,
        udp = ports.udp,
        tls = ports.tls,
        out = out.display(),
    )
}

fn syslog_ng_conf(out: &Path, address: &str, ports: Ports, ca: &TestCa) -> String {
    format!(
        r#"@version: 3.38
options {{ log-msg-size(300000); keep-hostname(yes); use-dns(no); dns-cache(no); stats-freq(0); }};
source s_tcp {{ syslog(ip("{address}") port({tcp}) transport("tcp") log-msg-size(300000)); }};
source s_newline {{ network(ip("{address}") port({newline}) transport("tcp") flags(syslog-protocol) log-msg-size(300000)); }};
source s_udp {{ network(ip("{address}") port({udp}) transport("udp") flags(syslog-protocol) log-msg-size(300000)); }};
source s_tls {{ syslog(ip("{address}") port({tls}) transport("tls") log-msg-size(300000)
  tls(key-file("{key}") cert-file("{cert}") peer-verify(optional-untrusted))); }};
source s_mtls {{ syslog(ip("{address}") port({mtls}) transport("tls") log-msg-size(300000)
  tls(key-file("{key}") cert-file("{cert}") ca-file("{ca}") peer-verify(required-trusted))); }};
destination d_file {{ file("{out}" flush-lines(1) template("$(format-json --scope rfc5424 --key .SDATA.* --exclude DATE --exclude LEGACY_MSGHDR)\n")); }};
log {{ source(s_tcp); source(s_newline); source(s_udp); source(s_tls); source(s_mtls); destination(d_file); }};
"#,
        tcp = ports.tcp,
        newline = ports.tcp_newline,
        address = address,
        udp = ports.udp,
        tls = ports.tls,
        mtls = ports.mtls,
        ca = ca.ca_file.display(),
        key = ca.key_file.display(),
        cert = ca.cert_file.display(),
        out = out.display(),
    )
}
