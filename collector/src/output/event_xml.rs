//! Windows event XML, as the Forwarded Events log holds it, for receivers that parse Windows events
//! (WinCollect, ArcSight's Windows connectors, Splunk's `XmlWinEventLog`) — what azlog.exe handed
//! them. A WAD row's own `RawXml` is kept as the agent captured it, with a `RenderingInfo` block
//! added from its `Description` when it has none, as forwarded events carry; other events are
//! rendered into the same schema, their fields as `EventData`.

use std::borrow::Cow;

use serde::Deserialize;

use crate::event::{Event, EventKind, Severity};
use crate::json::push_time;

const NAMESPACE: &str = "http://schemas.microsoft.com/win/2004/08/events/event";

/// Appends `event` as one `<Event>` element.
pub fn push(out: &mut Vec<u8>, event: &Event) {
    if event.kind == EventKind::Wad
        && let Some(xml) = raw_xml(event)
        && xml.trim_start().starts_with("<Event")
    {
        let xml = xml.trim();
        match xml.rfind("</Event>") {
            Some(end) if !xml.contains("<RenderingInfo") => {
                out.extend_from_slice(&xml.as_bytes()[..end]);
                push_rendering(out, event);
                out.extend_from_slice(&xml.as_bytes()[end..]);
            }
            _ => out.extend_from_slice(xml.as_bytes()),
        }
        return;
    }
    out.extend_from_slice(b"<Event xmlns='");
    out.extend_from_slice(NAMESPACE.as_bytes());
    out.extend_from_slice(b"'><System><Provider Name='");
    push_escaped(out, event.kind.product());
    out.extend_from_slice(b"'/><EventID>0</EventID><Level>");
    out.extend_from_slice(level(event.severity).0.as_bytes());
    out.extend_from_slice(b"</Level><TimeCreated SystemTime='");
    push_time(out, event.time);
    out.extend_from_slice(b"'/><Channel>");
    push_escaped(out, event.category.as_deref().unwrap_or(event.kind.msgid()));
    out.extend_from_slice(b"</Channel><Computer>");
    push_escaped(out, event.host.as_deref().unwrap_or("-"));
    out.extend_from_slice(b"</Computer></System><EventData>");
    let fields = [
        ("id", Some(event.id.as_str())),
        ("kind", Some(event.kind.as_str())),
        ("source", Some(&*event.source_name)),
        ("name", Some(event.name.as_str())),
        ("title", Some(event.title.as_str())),
        ("subscriptionId", event.subscription_id.as_deref()),
        ("resourceId", event.resource_id.as_deref()),
        ("actor", event.actor.as_deref()),
        ("clientIp", event.client_ip.as_deref()),
        ("outcome", event.outcome.as_deref()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            out.extend_from_slice(b"<Data Name='");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"'>");
            push_escaped(out, value);
            out.extend_from_slice(b"</Data>");
        }
    }
    out.extend_from_slice(b"</EventData>");
    push_rendering(out, event);
    out.extend_from_slice(b"</Event>");
}

fn raw_xml(event: &Event) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Row<'a> {
        #[serde(borrow, rename = "RawXml")]
        raw_xml: Option<Cow<'a, str>>,
    }
    serde_json::from_str::<Row>(event.raw.get()).ok()?.raw_xml
}

/// Windows' level number and name for a severity.
fn level(severity: Severity) -> (&'static str, &'static str) {
    match severity {
        Severity::Critical => ("1", "Critical"),
        Severity::Error => ("2", "Error"),
        Severity::Warning => ("3", "Warning"),
        Severity::Notice | Severity::Informational => ("4", "Information"),
        Severity::Verbose => ("5", "Verbose"),
    }
}

fn push_rendering(out: &mut Vec<u8>, event: &Event) {
    out.extend_from_slice(b"<RenderingInfo Culture='en-US'><Message>");
    push_escaped(out, &event.text());
    out.extend_from_slice(b"</Message><Level>");
    out.extend_from_slice(level(event.severity).1.as_bytes());
    out.extend_from_slice(b"</Level></RenderingInfo>");
}

/// XML text and attribute escaping; characters XML 1.0 cannot hold at all become U+FFFD.
fn push_escaped(out: &mut Vec<u8>, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            '\'' => out.extend_from_slice(b"&apos;"),
            '"' => out.extend_from_slice(b"&quot;"),
            '\t' | '\n' | '\r' => out.push(c as u8),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                out.extend_from_slice("\u{FFFD}".as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalise::{NormaliseContext, RawRecord, normalise};

    fn event(kind: EventKind, json: &str) -> Event {
        let ctx = NormaliseContext {
            source_name: std::sync::Arc::from("web"),
            subscription_id: Some("sub-1".into()),
        };
        let record = RawRecord {
            kind,
            raw: crate::json::RawJson::parse(json.to_owned()).expect("json"),
            id_hint: None,
            wad_columns: None,
            schema: crate::normalise::Schema::Api,
        };
        normalise(record, &ctx).expect("normalises")
    }

    fn text(event: &Event) -> String {
        let mut out = Vec::new();
        push(&mut out, event);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_wad_row_keeps_its_raw_xml_and_gains_the_rendered_message() {
        let e = event(
            EventKind::Wad,
            r#"{"PartitionKey":"0637","RowKey":"r","TIMESTAMP":"2026-11-22T06:00:00Z","EventId":4625,"Level":4,"Description":"An account failed to log on.\r\n\tAccount Name:\t<admin> & co","RawXml":"<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><EventID>4625</EventID></System><EventData><Data Name='TargetUserName'>admin</Data></EventData></Event>"}"#,
        );
        let xml = text(&e);
        assert!(xml.starts_with("<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><EventID>4625</EventID></System><EventData><Data Name='TargetUserName'>admin</Data></EventData><RenderingInfo Culture='en-US'><Message>An account failed to log on.\r\n\tAccount Name:\t&lt;admin&gt; &amp; co</Message><Level>Information</Level></RenderingInfo></Event>"), "{xml}");
        // It parses as XML.
        let mut reader = quick_xml::Reader::from_str(&xml);
        while !matches!(
            reader.read_event().expect("well-formed"),
            quick_xml::events::Event::Eof
        ) {}
    }

    #[test]
    fn other_events_are_rendered_into_the_same_schema() {
        let e = event(
            EventKind::DirectoryAudit,
            r#"{"id":"a-1","activityDateTime":"2026-11-22T06:00:00Z","activityDisplayName":"Add member to group","category":"GroupManagement","result":"failure","resultReason":"Insufficient privileges","loggedByService":"Core Directory","initiatedBy":{"user":{"userPrincipalName":"alice@contoso.com","ipAddress":"203.0.113.7"}}}"#,
        );
        let xml = text(&e);
        assert!(
            xml.contains("<Provider Name='Microsoft Entra ID'/>"),
            "{xml}"
        );
        assert!(xml.contains("<Level>3</Level>"), "{xml}");
        assert!(
            xml.contains("<TimeCreated SystemTime='2026-11-22T06:00:00"),
            "{xml}"
        );
        assert!(
            xml.contains("<Data Name='actor'>alice@contoso.com</Data>"),
            "{xml}"
        );
        assert!(
            xml.contains("<Message>Add member to group: Insufficient privileges</Message>"),
            "{xml}"
        );
        let mut reader = quick_xml::Reader::from_str(&xml);
        while !matches!(
            reader.read_event().expect("well-formed"),
            quick_xml::events::Event::Eof
        ) {}
    }

    #[test]
    fn control_characters_cannot_break_the_xml() {
        let mut out = Vec::new();
        push_escaped(&mut out, "a\u{1}b'\"");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "a\u{FFFD}b&apos;&quot;"
        );
    }
}
