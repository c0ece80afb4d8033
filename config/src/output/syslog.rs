//! `outputs[].syslog`: RFC 5424 / RFC 3164 messages over UDP, TCP or TLS.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::path::{At, Files, Problems};
use crate::text::split_host_port;

/// How syslog messages travel.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Transport {
    Udp,
    #[default]
    Tcp,
    Tls,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SyslogProtocol {
    #[default]
    Rfc5424,
    Rfc3164,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Framing {
    /// RFC 6587 octet counting: `LEN SP MSG`. Messages may contain newlines.
    #[default]
    OctetCounting,
    /// One message per line; newlines inside a message are escaped as `\n`.
    Newline,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SyslogBody {
    /// The Azure record as one line of JSON.
    #[default]
    Json,
    /// The human-readable message.
    Message,
    /// ArcSight Common Event Format.
    Cef,
    /// QRadar Log Event Extended Format 2.0.
    Leef,
    /// Windows event XML as in the Forwarded Events log (WAD rows keep their RawXml).
    EventXml,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    #[default]
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    pub fn code(self) -> u8 {
        match self {
            Facility::Kern => 0,
            Facility::User => 1,
            Facility::Mail => 2,
            Facility::Daemon => 3,
            Facility::Auth => 4,
            Facility::Syslog => 5,
            Facility::Lpr => 6,
            Facility::News => 7,
            Facility::Uucp => 8,
            Facility::Cron => 9,
            Facility::Authpriv => 10,
            Facility::Ftp => 11,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyslogOutputConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `host:port` of the receiver.
    pub address: String,
    #[serde(default)]
    pub transport: Transport,
    #[serde(default)]
    pub protocol: SyslogProtocol,
    /// Stream framing (TCP and TLS); UDP sends one message per datagram.
    #[serde(default)]
    pub framing: Framing,
    #[serde(default)]
    pub body: SyslogBody,
    #[serde(default)]
    pub facility: Facility,
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// A fixed HOSTNAME; by default the event's own host (VM, resource) or this machine's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// SD-ID of the structured-data element carrying the Azure fields (RFC 5424 only).
    #[serde(default = "default_sd_id")]
    pub structured_data_id: String,
    /// Longer messages are truncated (at a UTF-8 boundary) and counted. Defaults: 8192 over UDP,
    /// 1 MiB over streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<usize>,
    /// How long to wait for the receiver's TCP stack to acknowledge a batch before reconnecting.
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

fn default_app_name() -> String {
    "azlog".to_owned()
}
fn default_sd_id() -> String {
    "azlog@32473".to_owned()
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

/// UDP payloads cannot exceed 65,535 bytes less the IPv4 and UDP headers.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

impl SyslogOutputConfig {
    /// RFC 5424 JSON messages over TCP to `address`, with every other default.
    pub fn new(address: String) -> SyslogOutputConfig {
        SyslogOutputConfig {
            name: None,
            address,
            transport: Transport::default(),
            protocol: SyslogProtocol::default(),
            framing: Framing::default(),
            body: SyslogBody::default(),
            facility: Facility::default(),
            app_name: default_app_name(),
            hostname: None,
            structured_data_id: default_sd_id(),
            max_message_bytes: None,
            ack_timeout: default_ack_timeout(),
            connect_timeout: default_connect_timeout(),
            tls: None,
        }
    }

    pub fn effective_max_message_bytes(&self) -> usize {
        self.max_message_bytes.unwrap_or(match self.transport {
            Transport::Udp => 8192,
            Transport::Tcp | Transport::Tls => 1024 * 1024,
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA(s) that sign the receiver's certificate; absent means the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for receivers that require mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `certFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Name to verify the receiver's certificate against; defaults to the host in `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}
impl SyslogOutputConfig {
    pub(crate) fn validate(&self, at: &At, files: Files, problems: &mut Problems) {
        match split_host_port(&self.address) {
            Ok(_) => {}
            Err(why) => problems.add(at, "address", why),
        }
        if self.app_name.is_empty()
            || self.app_name.len() > 48
            || !self.app_name.bytes().all(|b| (33..=126).contains(&b))
        {
            problems.add(at, "appName",
            format!(
                "must be 1 to 48 printable ASCII characters without spaces (RFC 5424 APP-NAME), got {:?}",
                self.app_name
            ),
        );
        }
        if let Some(host) = &self.hostname
            && (host.is_empty()
                || host.len() > 255
                || !host.bytes().all(|b| (33..=126).contains(&b)))
        {
            problems.add(at, "hostname",
            format!(
                "must be 1 to 255 printable ASCII characters without spaces (RFC 5424 HOSTNAME), got {host:?}"
            ),
        );
        }
        let sd = &self.structured_data_id;
        if sd.is_empty()
            || sd.len() > 32
            || !sd
                .bytes()
                .all(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'))
            || !sd.contains('@')
        {
            problems.add(at, "structuredDataId",
            format!(
                "must look like name@<private enterprise number>, at most 32 printable characters without = ] \" (RFC 5424 SD-ID), got {sd:?}"
            ),
        );
        }
        let max = self.effective_max_message_bytes();
        let (low, high) = match self.transport {
            Transport::Udp => (480, MAX_UDP_PAYLOAD),
            Transport::Tcp | Transport::Tls => (480, 64 * 1024 * 1024),
        };
        if !(low..=high).contains(&max) {
            problems.add(
                at,
                "maxMessageBytes",
                format!("must be between {low} and {high} for this transport, got {max}"),
            );
        }
        if self.transport == Transport::Udp && self.framing == Framing::Newline {
            problems.add(
                at,
                "framing",
                "applies to tcp and tls only; over udp every message is one datagram, remove it",
            );
        }
        if self.tls.is_some() && self.transport != Transport::Tls {
            problems.add(
                at,
                "tls",
                "is set but transport is not tls; set transport: tls or remove the tls block",
            );
        }
        if let Some(tls) = &self.tls {
            for (field, file) in [
                ("caFile", &tls.ca_file),
                ("certFile", &tls.cert_file),
                ("keyFile", &tls.key_file),
            ] {
                if let Some(path) = file
                    && files.missing(path)
                {
                    problems.add(
                        at,
                        &format!("tls.{field}"),
                        format!("{} does not exist or is not a file", path.display()),
                    );
                }
            }
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                problems.add(
                    at,
                    "tls",
                    "certFile and keyFile go together: set both for mutual TLS, or neither",
                );
            }
        }
        if self.ack_timeout < Duration::from_millis(100) {
            problems.add(at, "ackTimeout", "must be at least 100ms");
        }
    }
}
