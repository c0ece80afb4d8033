//! QRadar Log Event Extended Format 2.0 bodies.
//!
//! `LEEF:2.0|Microsoft|<product>|1.0|<event id>|x09|<attributes>` with tab-separated attributes. LEEF
//! has no escape mechanism, so tabs and line breaks inside values become spaces and `|` in header
//! fields becomes `/`. Attribute mapping (README, "CEF and LEEF"): devTime = epoch milliseconds, cat,
//! sev (1-10), usrName = actor, src = client IP (only when it is an IP address), identHostName = host,
//! resource = resource id, outcome, externalId = azlog event id, subscriptionId, azlogSource, msg.

use std::net::IpAddr;

use crate::event::Event;

pub fn push(out: &mut Vec<u8>, event: &Event) {
    out.extend_from_slice(b"LEEF:2.0|Microsoft|");
    push_header(out, event.kind.product());
    out.extend_from_slice(b"|1.0|");
    push_header(out, &event.name);
    out.extend_from_slice(b"|x09|");
    out.extend_from_slice(
        format!(
            "devTime={}\tsev={}",
            event.time.timestamp_millis(),
            event.severity.siem_score()
        )
        .as_bytes(),
    );
    let src = event
        .client_ip
        .as_deref()
        .filter(|ip| ip.parse::<IpAddr>().is_ok());
    let text = event.text();
    let fields: [(&str, Option<&str>); 10] = [
        ("cat", event.category.as_deref()),
        ("usrName", event.actor.as_deref()),
        ("src", src),
        ("identHostName", event.host.as_deref()),
        ("resource", event.resource_id.as_deref()),
        ("outcome", event.outcome.as_deref()),
        ("externalId", Some(&event.id)),
        ("subscriptionId", event.subscription_id.as_deref()),
        ("azlogSource", Some(&event.source_name)),
        ("msg", Some(&text)),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            out.push(b'\t');
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            push_value(out, value);
        }
    }
}

fn push_header(out: &mut Vec<u8>, value: &str) {
    for &b in value.as_bytes() {
        out.push(match b {
            b'|' => b'/',
            b'\t' | b'\r' | b'\n' => b' ',
            _ => b,
        });
    }
}

fn push_value(out: &mut Vec<u8>, value: &str) {
    for &b in value.as_bytes() {
        out.push(if matches!(b, b'\t' | b'\r' | b'\n') {
            b' '
        } else {
            b
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::line::tests::event;

    #[test]
    fn leef_attributes_are_tab_separated_and_never_contain_tabs() {
        let mut e = event("1", "{}");
        e.message = "line\tone\nline two".into();
        let mut out = Vec::new();
        push(&mut out, &e);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("LEEF:2.0|Microsoft|Azure Activity Log|1.0|Microsoft.Compute/virtualMachines/write|x09|devTime=1700000000123\tsev=6\t"), "{text}");
        let attrs: Vec<&str> = text
            .splitn(7, '|')
            .nth(6)
            .expect("attributes")
            .split('\t')
            .collect();
        assert!(attrs.contains(&"usrName=alice@contoso.com"), "{attrs:?}");
        assert!(attrs.contains(&"msg=line one line two"), "{attrs:?}");
        assert!(attrs.iter().all(|a| a.contains('=')));
    }
}
