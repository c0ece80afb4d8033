//! Syslog message encoding: RFC 5424 and RFC 3164 headers, structured data, framing, size caps.
//!
//! Header fields come partly from Azure data (hostnames, names), so each is sanitised to the RFC's
//! character set and capped at its length; structured-data values are escaped (`"`, `\`, `]`) rather
//! than altered. Truncation never splits a UTF-8 sequence.

use std::ops::Range;

use chrono::{Datelike, Timelike};

use super::{cef, leef};
use crate::config::{
    Framing, JsonFormat, SyslogBody, SyslogOutputConfig, SyslogProtocol, Transport,
};
use crate::event::Event;
use crate::json::push_time;
use crate::output::line;

/// RFC 5424 section 6: header field limits.
const MAX_HOSTNAME: usize = 255;
const MAX_APP_NAME: usize = 48;
/// Structured-data values are metadata (the whole record is in the body); a cap keeps one absurd
/// resource id from pushing the body out of a size-limited message.
const MAX_SD_VALUE: usize = 2048;

#[derive(Debug, Clone)]
pub struct Encoder {
    protocol: SyslogProtocol,
    body: SyslogBody,
    framing: Option<Framing>,
    facility: u8,
    app_name: String,
    fixed_hostname: Option<String>,
    local_hostname: String,
    sd_id: String,
    max_message: usize,
}

/// A batch encoded for the wire, with each message's range (UDP sends them one by one).
#[derive(Debug, Default)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub messages: Vec<Range<usize>>,
    pub truncated: usize,
    /// Digits of the last octet count: the room left for the next one (see [`Encoder::encode`]).
    count_width: usize,
}

impl Encoded {
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.messages.clear();
        self.truncated = 0;
    }
}

impl Encoder {
    pub fn new(config: &SyslogOutputConfig, local_hostname: &str) -> Self {
        Encoder {
            protocol: config.protocol,
            body: config.body,
            framing: (config.transport != Transport::Udp).then_some(config.framing),
            facility: config.facility.code(),
            app_name: header_field(&config.app_name, MAX_APP_NAME),
            fixed_hostname: config
                .hostname
                .as_deref()
                .map(|h| header_field(h, MAX_HOSTNAME)),
            local_hostname: header_field(local_hostname, MAX_HOSTNAME),
            sd_id: config.structured_data_id.clone(),
            max_message: config.effective_max_message_bytes(),
        }
    }

    /// Appends one framed message for `event`.
    pub fn encode(&self, event: &Event, out: &mut Encoded) {
        let start = out.bytes.len();
        // The message is written in place. An octet count goes before it but is only known after
        // it, so room is left for as many digits as the last one had (messages of a source are
        // alike in size); only a count of another width moves the message.
        let counted = self.framing == Some(Framing::OctetCounting);
        let room = if counted { out.count_width + 1 } else { 0 };
        out.bytes.resize(start + room, b' ');
        let msg = start + room;
        let body_start = match self.protocol {
            SyslogProtocol::Rfc5424 => self.header_5424(event, &mut out.bytes, msg),
            SyslogProtocol::Rfc3164 => self.header_3164(event, &mut out.bytes),
        } - msg;
        self.push_body(event, &mut out.bytes);
        if out.bytes.len() - msg > self.max_message {
            let cut = utf8_floor(&out.bytes[msg..], self.max_message.max(body_start));
            out.bytes.truncate(msg + cut);
            out.truncated += 1;
        }
        if self.framing == Some(Framing::Newline) {
            escape_line_breaks(&mut out.bytes, msg);
            out.bytes.push(b'\n');
        }
        if counted {
            let mut digits = itoa::Buffer::new();
            let count = digits.format(out.bytes.len() - msg).as_bytes();
            if count.len() + 1 == room {
                out.bytes[start..start + count.len()].copy_from_slice(count);
            } else {
                let prefix = count.iter().chain(b" ").copied();
                out.bytes.splice(start..msg, prefix);
            }
            out.count_width = count.len();
        }
        out.messages.push(start..out.bytes.len());
    }

    fn pri(&self, event: &Event) -> u8 {
        self.facility * 8 + event.severity.syslog_code()
    }

    fn push_hostname(&self, event: &Event, out: &mut Vec<u8>) {
        if let Some(fixed) = &self.fixed_hostname {
            out.extend_from_slice(fixed.as_bytes());
            return;
        }
        match event.host.as_deref().filter(|h| !h.is_empty()) {
            Some(host) => push_header_field(out, host, MAX_HOSTNAME),
            None => out.extend_from_slice(self.local_hostname.as_bytes()),
        }
    }

    fn push_pri(&self, event: &Event, out: &mut Vec<u8>) {
        out.push(b'<');
        out.extend_from_slice(itoa::Buffer::new().format(self.pri(event)).as_bytes());
        out.push(b'>');
    }

    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] `; answers where the body starts.
    /// `msg` is where the message starts in `out`.
    fn header_5424(&self, event: &Event, out: &mut Vec<u8>, msg: usize) -> usize {
        self.push_pri(event, out);
        out.extend_from_slice(b"1 ");
        push_time(out, event.time);
        out.push(b' ');
        self.push_hostname(event, out);
        out.push(b' ');
        out.extend_from_slice(self.app_name.as_bytes());
        out.extend_from_slice(b" - ");
        // MSGIDs are constants that already meet RFC 5424 (a test in `event` checks).
        out.extend_from_slice(event.kind.msgid().as_bytes());
        out.push(b' ');
        let sd_start = out.len();
        self.structured_data(event, out);
        // If metadata alone would fill the message, send none rather than a cut (invalid) element.
        if out.len() - msg + 16 > self.max_message {
            out.truncate(sd_start);
            out.push(b'-');
        }
        out.push(b' ');
        out.len()
    }

    fn structured_data(&self, event: &Event, out: &mut Vec<u8>) {
        out.push(b'[');
        out.extend_from_slice(self.sd_id.as_bytes());
        let severity = event.severity.as_str();
        let params: [(&str, Option<&str>); 12] = [
            ("id", Some(&event.id)),
            ("kind", Some(event.kind.as_str())),
            ("source", Some(&event.source_name)),
            ("subscriptionId", event.subscription_id.as_deref()),
            ("resourceId", event.resource_id.as_deref()),
            ("category", event.category.as_deref()),
            ("name", Some(&event.name)),
            ("severity", Some(severity)),
            ("actor", event.actor.as_deref()),
            ("clientIp", event.client_ip.as_deref()),
            ("outcome", event.outcome.as_deref()),
            ("host", event.host.as_deref()),
        ];
        for (name, value) in params {
            if let Some(value) = value {
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"=\"");
                push_sd_value(out, value);
                out.push(b'"');
            }
        }
        out.push(b']');
    }

    /// `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: ` (BSD syslog, times in UTC).
    fn header_3164(&self, event: &Event, out: &mut Vec<u8>) -> usize {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let t = event.time;
        self.push_pri(event, out);
        let month = MONTHS[(t.month0() as usize).min(11)];
        out.extend_from_slice(
            format!(
                "{month} {:>2} {:02}:{:02}:{:02} ",
                t.day(),
                t.hour(),
                t.minute(),
                t.second().min(59)
            )
            .as_bytes(),
        );
        self.push_hostname(event, out);
        out.push(b' ');
        // RFC 3164 section 4.1.3: the TAG is at most 32 alphanumeric characters.
        let tag: String = self
            .app_name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(32)
            .collect();
        out.extend_from_slice(if tag.is_empty() { "azlog" } else { &tag }.as_bytes());
        out.extend_from_slice(b": ");
        out.len()
    }

    fn push_body(&self, event: &Event, out: &mut Vec<u8>) {
        match self.body {
            SyslogBody::Json => line::push_json(out, event, JsonFormat::Ndjson),
            SyslogBody::Message => out.extend_from_slice(event.text().as_bytes()),
            SyslogBody::Cef => cef::push(out, event),
            SyslogBody::Leef => leef::push(out, event),
            SyslogBody::EventXml => crate::output::event_xml::push(out, event),
        }
    }
}

/// Header fields allow printable US-ASCII only (33..=126); anything else becomes `_`. Empty is `-`.
pub fn header_field(value: &str, max: usize) -> String {
    let mut out = Vec::with_capacity(value.len().min(max));
    push_header_field(&mut out, value, max);
    // Only ASCII was pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `value` as [`header_field`] makes it, without building a String per event.
fn push_header_field(out: &mut Vec<u8>, value: &str, max: usize) {
    let start = out.len();
    if value.len() <= max && value.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        out.extend_from_slice(value.as_bytes());
    } else {
        out.extend(
            value
                .chars()
                .map(|c| {
                    if ('!'..='~').contains(&c) {
                        c as u8
                    } else {
                        b'_'
                    }
                })
                .take(max),
        );
    }
    if out.len() == start {
        out.push(b'-');
    }
}

/// RFC 5424 section 6.3.3: `"`, `\` and `]` are escaped with a backslash inside PARAM-VALUE.
fn push_sd_value(out: &mut Vec<u8>, value: &str) {
    let value = &value.as_bytes()[..utf8_floor(value.as_bytes(), MAX_SD_VALUE)];
    let mut rest = value;
    while let Some(at) = memchr::memchr3(b'"', b'\\', b']', rest) {
        out.extend_from_slice(&rest[..at]);
        out.push(b'\\');
        out.push(rest[at]);
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

/// The largest index `<= max` that does not split a UTF-8 sequence.
pub fn utf8_floor(bytes: &[u8], max: usize) -> usize {
    if max >= bytes.len() {
        return bytes.len();
    }
    let mut cut = max;
    while cut > 0 && (bytes[cut] & 0b1100_0000) == 0b1000_0000 {
        cut -= 1;
    }
    cut
}

/// Newline framing cannot carry line breaks inside a message; they become the two characters `\n`.
/// The message is `out[msg..]`.
fn escape_line_breaks(out: &mut Vec<u8>, msg: usize) {
    if memchr::memchr2(b'\n', b'\r', &out[msg..]).is_none() {
        return;
    }
    let message = out.split_off(msg);
    for b in message {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Facility, Framing};
    use crate::output::line::tests::event;

    fn config(
        transport: Transport,
        protocol: SyslogProtocol,
        body: SyslogBody,
    ) -> SyslogOutputConfig {
        let yaml = format!(
            "address: 127.0.0.1:514\ntransport: {}\nprotocol: {}\nbody: {}\n",
            serde_json::to_value(transport)
                .expect("t")
                .as_str()
                .expect("s"),
            serde_json::to_value(protocol)
                .expect("p")
                .as_str()
                .expect("s"),
            serde_json::to_value(body).expect("b").as_str().expect("s"),
        );
        crate::config::from_yaml(&yaml).expect("syslog config")
    }

    fn encode_one(config: &SyslogOutputConfig, raw: &str) -> (String, usize) {
        let encoder = Encoder::new(config, "collector-host");
        let mut out = Encoded::default();
        encoder.encode(&event("ev|1", raw), &mut out);
        (String::from_utf8(out.bytes).expect("utf8"), out.truncated)
    }

    #[test]
    fn rfc5424_over_tcp_is_octet_counted_with_escaped_structured_data() {
        let c = config(Transport::Tcp, SyslogProtocol::Rfc5424, SyslogBody::Message);
        let (wire, _) = encode_one(&c, "{}");
        let (len, msg) = wire.split_once(' ').expect("octet count");
        assert_eq!(len.parse::<usize>().expect("len"), msg.len());
        // local0 (16) * 8 + warning (4) = 132
        assert!(msg.starts_with("<132>1 2023-11-14T22:13:20.123456Z vm-1 azlog - AzureActivity [azlog@32473 id=\"ev|1\" kind=\"activityLog\""), "{msg}");
        assert!(msg.ends_with("] created \"vm-1\"\nby alice"), "{msg}");
    }

    #[test]
    fn octet_counts_of_every_width_frame_a_batch_exactly() {
        let mut c = config(Transport::Tcp, SyslogProtocol::Rfc5424, SyslogBody::Json);
        c.max_message_bytes = Some(1 << 20);
        let encoder = Encoder::new(&c, "collector-host");
        let mut batch = Encoded::default();
        let mut alone = Vec::new();
        // Counts of three, four, five, three and six digits, in that order.
        for size in [0, 900, 20_000, 10, 200_000] {
            let raw = format!("{{\"text\":\"{}\"}}", "x".repeat(size));
            let event = event("ev|1", &raw);
            encoder.encode(&event, &mut batch);
            let mut one = Encoded::default();
            encoder.encode(&event, &mut one);
            alone.push(one.bytes);
        }
        let mut wire = &batch.bytes[..];
        for (n, range) in batch.messages.iter().enumerate() {
            assert_eq!(&batch.bytes[range.clone()], &alone[n][..], "message {n}");
            let (count, rest) = wire.split_at(wire.iter().position(|&b| b == b' ').expect("count"));
            let count: usize = std::str::from_utf8(count)
                .expect("digits")
                .parse()
                .expect("count");
            assert!(
                rest[1..count + 1].starts_with(b"<"),
                "message {n} starts with its PRI"
            );
            wire = &rest[count + 1..];
        }
        assert!(wire.is_empty(), "the counts cover the batch exactly");
    }

    #[test]
    fn structured_data_values_escape_quote_backslash_and_bracket() {
        let mut out = Vec::new();
        push_sd_value(&mut out, r#"a"b\c]d"#);
        assert_eq!(out, br#"a\"b\\c\]d"#);
    }

    #[test]
    fn header_fields_are_sanitised_and_capped() {
        assert_eq!(header_field("web 01\tü", 255), "web_01__");
        assert_eq!(header_field("", 48), "-");
        assert_eq!(header_field(&"x".repeat(300), MAX_HOSTNAME).len(), 255);
    }

    #[test]
    fn newline_framing_escapes_line_breaks() {
        let mut c = config(Transport::Tcp, SyslogProtocol::Rfc5424, SyslogBody::Message);
        c.framing = Framing::Newline;
        let (wire, _) = encode_one(&c, "{}");
        assert_eq!(wire.matches('\n').count(), 1);
        assert!(wire.ends_with("created \"vm-1\"\\nby alice\n"), "{wire}");
    }

    #[test]
    fn udp_messages_are_cut_at_the_limit_without_splitting_utf8() {
        let mut c = config(Transport::Udp, SyslogProtocol::Rfc5424, SyslogBody::Json);
        c.max_message_bytes = Some(1000);
        let raw = format!("{{\"text\":\"{}\"}}", "é".repeat(2000));
        let (wire, truncated) = encode_one(&c, &raw);
        assert_eq!(truncated, 1);
        assert!(wire.len() <= 1000 && wire.len() >= 998, "{}", wire.len());
        assert!(!wire.contains("1000 "), "no octet count over udp");
    }

    #[test]
    fn rfc3164_has_a_bsd_header() {
        let mut c = config(Transport::Tcp, SyslogProtocol::Rfc3164, SyslogBody::Message);
        c.facility = Facility::Auth;
        c.app_name = "az-log".into();
        let (wire, _) = encode_one(&c, "{}");
        let (_, msg) = wire.split_once(' ').expect("octet count");
        assert!(
            msg.starts_with("<36>Nov 14 22:13:20 vm-1 azlog: created"),
            "{msg}"
        );
    }

    #[test]
    fn a_fixed_hostname_overrides_the_event_host() {
        let mut c = config(Transport::Tcp, SyslogProtocol::Rfc5424, SyslogBody::Message);
        c.hostname = Some("siem-feed".into());
        let (wire, _) = encode_one(&c, "{}");
        assert!(wire.contains(" siem-feed azlog "), "{wire}");
    }

    #[test]
    fn json_bodies_carry_the_whole_record() {
        let c = config(Transport::Tcp, SyslogProtocol::Rfc5424, SyslogBody::Json);
        let (wire, _) = encode_one(&c, r#"{"deep":{"x":[1,2]}}"#);
        let body = &wire[wire.find("] {").expect("body") + 2..];
        let value: serde_json::Value = serde_json::from_str(body).expect("json body");
        assert_eq!(value["deep"]["x"][1], 2);
        assert_eq!(value["azlog"]["id"], "ev|1");
    }
}
