//! One event as one line of JSON: the Azure record with an `azlog` member in front.
//!
//! The record's own members follow unchanged, so anything that parses the Azure schema (Splunk
//! add-ons, Sentinel-style parsers) still works; `azlog` carries what azlog.exe put in file names and
//! event names (source name, subscription) plus the dedup id.

use serde::Deserialize;

use crate::config::JsonFormat;
use crate::event::Event;
use crate::json::{push_str, push_time};

/// The JSON-LD context every JSON-LD line carries: azlog's own terms under `azlog:`, Azure's record
/// members under a vocabulary, and the time members typed as dates.
pub const JSON_LD_CONTEXT: &str = concat!(
    r#"{"@vocab":"https://schema.azlog.io/azure/v1#","azlog":"https://schema.azlog.io/azlog/v1#","#,
    r#""xsd":"http://www.w3.org/2001/XMLSchema#","time":{"@type":"xsd:dateTime"},"#,
    r#""eventTimestamp":{"@type":"xsd:dateTime"},"activityDateTime":{"@type":"xsd:dateTime"},"#,
    r#""TIMESTAMP":{"@type":"xsd:dateTime"},"timeGeneratedUtc":{"@type":"xsd:dateTime"}}"#
);

/// Appends the `azlog` metadata object.
pub fn push_meta(out: &mut Vec<u8>, event: &Event) {
    out.extend_from_slice(b"{\"id\":");
    push_str(out, &event.id);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(event.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"source\":");
    push_str(out, &event.source_name);
    if let Some(sub) = &event.subscription_id {
        out.extend_from_slice(b",\"subscriptionId\":");
        push_str(out, sub);
    }
    out.extend_from_slice(b",\"time\":\"");
    push_time(out, event.time);
    out.extend_from_slice(b"\",\"severity\":\"");
    out.extend_from_slice(event.severity.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
}

/// Appends the event as one JSON object, without the trailing newline.
pub fn push_json(out: &mut Vec<u8>, event: &Event, format: JsonFormat) {
    out.push(b'{');
    if format == JsonFormat::Jsonld {
        out.extend_from_slice(b"\"@context\":");
        out.extend_from_slice(JSON_LD_CONTEXT.as_bytes());
        out.extend_from_slice(b",\"@id\":\"urn:azlog:");
        out.extend_from_slice(event.kind.as_str().as_bytes());
        out.push(b':');
        push_percent_encoded(out, &event.id);
        out.extend_from_slice(b"\",\"@type\":\"");
        out.extend_from_slice(event.kind.json_ld_type().as_bytes());
        out.extend_from_slice(b"\",");
    }
    out.extend_from_slice(b"\"azlog\":");
    push_meta(out, event);
    // The record is a compacted object: `{` then members then `}`; splice its members in after ours.
    let members = &event.raw.get()[1..];
    if members.starts_with('}') {
        out.push(b'}');
    } else {
        out.push(b',');
        out.extend_from_slice(members.as_bytes());
    }
}

/// Appends the event as one line.
pub fn push_line(out: &mut Vec<u8>, event: &Event, format: JsonFormat) {
    push_json(out, event, format);
    out.push(b'\n');
}

/// RFC 3986 percent-encoding of everything but unreserved characters, so any id makes a valid IRI.
fn push_percent_encoded(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
}

/// Reads the event id back from a line written by [`push_line`] (crash recovery).
pub fn id_of_line(line: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Head {
        azlog: Meta,
    }
    #[derive(Deserialize)]
    struct Meta {
        id: String,
    }
    serde_json::from_slice::<Head>(line)
        .ok()
        .map(|h| h.azlog.id)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::{EventKind, Severity};
    use std::sync::Arc;

    pub fn event(id: &str, raw: &str) -> Event {
        Event {
            id: id.into(),
            kind: EventKind::ActivityLog,
            time: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("time"),
            severity: Severity::Warning,
            host: Some("vm-1".into()),
            resource_id: Some("/subscriptions/s/resourceGroups/g/providers/p/vm-1".into()),
            subscription_id: Some("s".into()),
            category: Some("Administrative".into()),
            name: "Microsoft.Compute/virtualMachines/write".into(),
            title: "Create or Update Virtual Machine".into(),
            message: "created \"vm-1\"\nby alice".into(),
            actor: Some("alice@contoso.com".into()),
            client_ip: Some("10.1.2.3".into()),
            outcome: Some("Succeeded".into()),
            source_name: Arc::from("prod"),
            raw: crate::json::RawJson::parse(raw.into()).expect("raw"),
        }
    }

    #[test]
    fn an_ndjson_line_is_the_record_plus_azlog_metadata() {
        let mut out = Vec::new();
        push_line(
            &mut out,
            &event("e|1", r#"{"a":1,"b":{"c":"d"}}"#),
            JsonFormat::Ndjson,
        );
        assert_eq!(out.last(), Some(&b'\n'));
        let value: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(value["a"], 1);
        assert_eq!(value["b"]["c"], "d");
        assert_eq!(value["azlog"]["id"], "e|1");
        assert_eq!(value["azlog"]["source"], "prod");
        assert_eq!(value["azlog"]["subscriptionId"], "s");
        assert_eq!(value["azlog"]["time"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(id_of_line(&out).as_deref(), Some("e|1"));
    }

    #[test]
    fn an_empty_record_still_makes_valid_json() {
        let mut out = Vec::new();
        push_line(&mut out, &event("x", "{}"), JsonFormat::Ndjson);
        let value: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(value["azlog"]["id"], "x");
    }

    #[test]
    fn a_json_ld_line_has_a_context_an_iri_and_a_type() {
        let mut out = Vec::new();
        push_line(
            &mut out,
            &event("a b|c/d", r#"{"a":1}"#),
            JsonFormat::Jsonld,
        );
        let value: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(value["@id"], "urn:azlog:activityLog:a%20b%7Cc%2Fd");
        assert_eq!(value["@type"], "ActivityLogEvent");
        assert_eq!(
            value["@context"]["@vocab"],
            "https://schema.azlog.io/azure/v1#"
        );
        assert_eq!(value["a"], 1);
        assert_eq!(id_of_line(&out).as_deref(), Some("a b|c/d"));
    }
}
