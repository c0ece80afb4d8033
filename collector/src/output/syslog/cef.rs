//! ArcSight Common Event Format bodies.
//!
//! `CEF:0|Microsoft|<product>|1.0|<signature>|<name>|<severity>|<extensions>`. Header fields escape
//! `\` and `|`; extension values escape `\`, `=` and line breaks, per the CEF implementation standard.
//! Field mapping (README, "CEF and LEEF"): rt = event time in epoch milliseconds, cat = category,
//! suser = actor, src = client IP (only when it is an IP address), dvchost = host, act = name,
//! outcome, externalId = the azlog event id, cs1..cs3 = subscription, resource id, azlog source name,
//! msg = message.

use std::net::IpAddr;

use crate::event::Event;

pub fn push(out: &mut Vec<u8>, event: &Event) {
    out.extend_from_slice(b"CEF:0|Microsoft|");
    push_header(out, event.kind.product());
    out.extend_from_slice(b"|1.0|");
    push_header(out, &event.name);
    out.push(b'|');
    push_header(out, &event.title);
    out.push(b'|');
    out.extend_from_slice(event.severity.siem_score().to_string().as_bytes());
    out.push(b'|');
    out.extend_from_slice(format!("rt={}", event.time.timestamp_millis()).as_bytes());
    let src = event
        .client_ip
        .as_deref()
        .filter(|ip| ip.parse::<IpAddr>().is_ok());
    let fields: [(&str, Option<&str>); 13] = [
        ("cat", event.category.as_deref()),
        ("suser", event.actor.as_deref()),
        ("src", src),
        ("dvchost", event.host.as_deref()),
        ("act", Some(&event.name)),
        ("outcome", event.outcome.as_deref()),
        ("externalId", Some(&event.id)),
        (
            "cs1Label",
            event.subscription_id.as_ref().map(|_| "subscriptionId"),
        ),
        ("cs1", event.subscription_id.as_deref()),
        ("cs2Label", event.resource_id.as_ref().map(|_| "resourceId")),
        ("cs2", event.resource_id.as_deref()),
        ("cs3Label", Some("azlogSource")),
        ("cs3", Some(&event.source_name)),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            out.push(b' ');
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            push_extension(out, value);
        }
    }
    // msg goes last: it is the longest value and the one receivers truncate.
    out.extend_from_slice(b" msg=");
    push_extension(out, &event.message());
}

fn push_header(out: &mut Vec<u8>, value: &str) {
    for &b in value.as_bytes() {
        match b {
            b'\\' | b'|' => out.extend_from_slice(&[b'\\', b]),
            b'\r' | b'\n' => out.push(b' '),
            _ => out.push(b),
        }
    }
}

fn push_extension(out: &mut Vec<u8>, value: &str) {
    for &b in value.as_bytes() {
        match b {
            b'\\' | b'=' => out.extend_from_slice(&[b'\\', b]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::line::tests::event;

    #[test]
    fn cef_escapes_headers_and_extensions() {
        let mut e = event("id=1", "{}");
        e.title = "a|b\\c".into();
        e.message = "x=y\nz".into();
        let mut out = Vec::new();
        push(&mut out, &e);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("CEF:0|Microsoft|Azure Activity Log|1.0|Microsoft.Compute/virtualMachines/write|a\\|b\\\\c|6|rt=1700000000123 "), "{text}");
        assert!(text.contains(" externalId=id\\=1 "), "{text}");
        assert!(text.contains(" src=10.1.2.3 "), "{text}");
        assert!(text.ends_with(" msg=x\\=y\\nz"), "{text}");
    }

    #[test]
    fn a_client_ip_that_is_not_an_address_is_left_out() {
        let mut e = event("1", "{}");
        e.client_ip = Some("not-an-ip".into());
        let mut out = Vec::new();
        push(&mut out, &e);
        assert!(!String::from_utf8(out).expect("utf8").contains("src="));
    }
}
