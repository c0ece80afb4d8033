//! The syslog output against real rsyslog and syslog-ng: every header field, structured-data param
//! and message body arrives as sent, over UDP, TCP (octet counting and newline framing) and TLS.
// Runs Linux processes (receivers, signals, Kubernetes); the Windows build has its own smoke test.
#![cfg(unix)]

use std::sync::Arc;
use std::time::Duration;

use azlog_collector::config::{OutputConfig, from_yaml};
use azlog_collector::dedup::IdHasher;
use azlog_collector::event::{Event, EventKind, Severity};
use azlog_collector::json::RawJson;
use azlog_collector::metrics::Metrics;
use azlog_collector::output::{
    AnyOutput, Delivered, DeliveryError, Dispatch, Output, OutputContext,
};
use azlog_test_support::syslog::{Kind, Received, Receiver, TestCa, make_ca};

const HUGE: usize = 64 * 1024;

fn tricky_messages(include_huge: bool) -> Vec<(&'static str, String)> {
    let mut messages = vec![
        ("plain", "An account failed to log on.".to_owned()),
        (
            "newlines",
            "Subject:\n\tSecurity ID: S-1-0-0\r\nLogon Type: 3\nend".to_owned(),
        ),
        ("quotes", r#"she said "stop" and 'left'"#.to_owned()),
        (
            "brackets",
            r"C:\Windows\System32\cmd.exe [x] ]] \] \\ end".to_owned(),
        ),
        (
            "unicode",
            "Zoë logged on from Zürich — 山田太郎 ✓ 🚨".to_owned(),
        ),
    ];
    if include_huge {
        // 64 KiB of text with a multi-byte character at every 1000th position.
        let huge: String = (0..HUGE)
            .map(|i| {
                if i % 1000 == 999 {
                    'é'
                } else {
                    (b'a' + (i % 26) as u8) as char
                }
            })
            .collect();
        messages.push(("huge", huge));
    }
    messages
}

fn event(id: &str, message: &str) -> Event {
    let raw = format!(
        r#"{{"name":{id:?},"properties":{{"description":{}}}}}"#,
        serde_json::to_string(message).expect("json")
    );
    Event {
        id: id.to_owned(),
        kind: EventKind::SecurityAlert,
        time: chrono::Utc::now(),
        severity: Severity::Warning,
        host: Some("web-01".into()),
        resource_id: Some("/subscriptions/5f1c/resourceGroups/prod-ü/providers/Microsoft.Compute/virtualMachines/web-01".into()),
        subscription_id: Some("5f1c".into()),
        category: Some(r#"Credential]Access"x"#.into()),
        name: "VM_RDPBruteForce".into(),
        title: "Suspicious RDP brute force".into(),
        message: message.into(),
        actor: Some(r#"zoë "admin" [x]\y"#.into()),
        client_ip: Some("203.0.113.7".into()),
        outcome: Some("Active".into()),
        source_name: Arc::from("prod"),
        raw: RawJson::parse(raw).expect("raw"),
    }
}

struct Case {
    transport: &'static str,
    framing: &'static str,
    body: &'static str,
}

async fn send(
    receiver: &Receiver,
    case: &Case,
    ca_file: &std::path::Path,
    events: Vec<Event>,
) -> usize {
    let port = match (case.transport, case.framing) {
        ("udp", _) => receiver.ports.udp,
        ("tls", _) => receiver.ports.tls,
        (_, "newline") => receiver.ports.tcp_newline,
        _ => receiver.ports.tcp,
    };
    let mut yaml = format!(
        "syslog:\n  address: 127.0.0.1:{port}\n  transport: {}\n  body: {}\n",
        case.transport, case.body
    );
    if case.transport != "udp" {
        yaml.push_str(&format!("  framing: {}\n", case.framing));
    }
    if case.transport == "tls" {
        yaml.push_str(&format!(
            "  tls:\n    caFile: {}\n    serverName: localhost\n",
            ca_file.display()
        ));
    }
    deliver_once(&yaml, events)
        .await
        .expect("delivered")
        .truncated
}

/// Builds the output `yaml` describes, delivers one batch with it, and closes it.
async fn deliver_once(yaml: &str, events: Vec<Event>) -> Result<Delivered, DeliveryError> {
    let config: OutputConfig = from_yaml(yaml).expect("output config");
    let ctx = OutputContext {
        hasher: IdHasher::new(1),
        recovery_window: 0,
        metrics: Arc::new(Metrics::new()),
    };
    let mut output = AnyOutput::build(&config, 0, &ctx).expect("syslog output");
    let batch = Dispatch {
        seq: 1,
        events,
        dispatched_at: tokio::time::Instant::now(),
    };
    let result = output.deliver(&batch).await;
    output.close().await;
    result
}

fn assert_fields(kind: Kind, got: &Received, sent: &Event) {
    let ctx = format!("{kind:?}, event {}", sent.id);
    assert_eq!(got.msgid, "SecurityAlert", "{ctx}");
    assert_eq!(got.app_name, "azlog", "{ctx}");
    assert_eq!(got.hostname, "web-01", "{ctx}");
    assert_eq!(got.facility, "local0", "{ctx}");
    assert_eq!(got.severity, "warning", "{ctx}");
    for (param, expected) in [
        ("id", Some(sent.id.as_str())),
        ("kind", Some("securityAlert")),
        ("source", Some("prod")),
        ("subscriptionId", sent.subscription_id.as_deref()),
        ("resourceId", sent.resource_id.as_deref()),
        ("category", sent.category.as_deref()),
        ("name", Some(sent.name.as_str())),
        ("actor", sent.actor.as_deref()),
        ("clientIp", sent.client_ip.as_deref()),
        ("outcome", sent.outcome.as_deref()),
        ("severity", Some("warning")),
    ] {
        assert_eq!(
            got.param(param),
            expected,
            "{ctx}: structured-data param {param}; all: {:?}",
            got.sd
        );
    }
}

async fn round_trip(
    kind: Kind,
    transport: &'static str,
    framing: &'static str,
    body: &'static str,
) {
    let case = Case {
        transport,
        framing,
        body,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca(dir.path());
    let receiver = Receiver::start(kind, dir.path(), &ca);
    let udp = case.transport == "udp";
    let messages = tricky_messages(!udp);
    let events: Vec<Event> = messages.iter().map(|(id, msg)| event(id, msg)).collect();
    let truncated = send(&receiver, &case, &ca.ca_file, events.clone()).await;
    assert_eq!(truncated, 0, "nothing needed truncating");
    let received = receiver.wait_for(events.len(), Duration::from_secs(20));
    assert_eq!(
        received.len(),
        events.len(),
        "{kind:?}: exactly one message per event"
    );
    for sent in &events {
        let got = received
            .iter()
            .find(|r| r.param("id") == Some(sent.id.as_str()))
            .unwrap_or_else(|| panic!("{kind:?} did not receive {}", sent.id));
        assert_fields(kind, got, sent);
        match case.body {
            "message" if case.framing == "newline" => {
                let escaped = sent.message().replace('\n', "\\n").replace('\r', "\\r");
                assert_eq!(
                    got.msg, escaped,
                    "{kind:?}: newline framing escapes line breaks in {}",
                    sent.id
                );
            }
            "message" => assert_eq!(
                got.msg,
                sent.message(),
                "{kind:?}: message body of {}",
                sent.id
            ),
            "json" => {
                let body: serde_json::Value = serde_json::from_str(&got.msg).unwrap_or_else(|e| {
                    panic!("{kind:?}: JSON body of {} does not parse: {e}", sent.id)
                });
                assert_eq!(
                    body["properties"]["description"],
                    &*sent.message(),
                    "{kind:?}: record of {}",
                    sent.id
                );
                assert_eq!(body["azlog"]["id"], sent.id.as_str());
            }
            other => panic!("no assertion for body {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rsyslog_parses_every_field_over_tcp_with_octet_counting() {
    round_trip(Kind::Rsyslog, "tcp", "octetCounting", "message").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn syslog_ng_parses_every_field_over_tcp_with_octet_counting() {
    round_trip(Kind::SyslogNg, "tcp", "octetCounting", "message").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rsyslog_parses_every_field_over_tls() {
    round_trip(Kind::Rsyslog, "tls", "octetCounting", "message").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn syslog_ng_parses_every_field_over_tls() {
    round_trip(Kind::SyslogNg, "tls", "octetCounting", "message").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rsyslog_parses_every_field_over_udp() {
    round_trip(Kind::Rsyslog, "udp", "", "message").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn syslog_ng_parses_every_field_over_udp() {
    round_trip(Kind::SyslogNg, "udp", "", "message").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rsyslog_parses_newline_framed_tcp_with_escaped_line_breaks() {
    round_trip(Kind::Rsyslog, "tcp", "newline", "message").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn syslog_ng_parses_newline_framed_tcp_with_escaped_line_breaks() {
    round_trip(Kind::SyslogNg, "tcp", "newline", "message").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_bodies_reach_rsyslog_as_parseable_records() {
    round_trip(Kind::Rsyslog, "tls", "octetCounting", "json").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_bodies_reach_syslog_ng_as_parseable_records() {
    round_trip(Kind::SyslogNg, "tcp", "octetCounting", "json").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_64_kib_message_over_udp_arrives_cut_at_the_datagram_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca(dir.path());
    let receiver = Receiver::start(Kind::Rsyslog, dir.path(), &ca);
    let huge = tricky_messages(true).pop().expect("huge").1;
    let case = Case {
        transport: "udp",
        framing: "",
        body: "message",
    };
    let truncated = send(&receiver, &case, &ca.ca_file, vec![event("huge", &huge)]).await;
    assert_eq!(truncated, 1);
    let got = receiver.wait_for(1, Duration::from_secs(20)).remove(0);
    assert_eq!(
        got.param("id"),
        Some("huge"),
        "the header and structured data survive the cut"
    );
    assert!(
        huge.starts_with(&got.msg),
        "the message is a prefix of the original"
    );
    assert!(
        got.msg.len() > 6000 && got.msg.len() < 8192,
        "cut near the 8192-byte default: {}",
        got.msg.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cef_and_leef_bodies_reach_the_receiver_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca(dir.path());
    let receiver = Receiver::start(Kind::SyslogNg, dir.path(), &ca);
    for body in ["cef", "leef"] {
        let case = Case {
            transport: "tcp",
            framing: "octetCounting",
            body,
        };
        send(
            &receiver,
            &case,
            &ca.ca_file,
            vec![event(body, "multi\nline = value")],
        )
        .await;
    }
    let received = receiver.wait_for(2, Duration::from_secs(20));
    let cef = received
        .iter()
        .find(|r| r.param("id") == Some("cef"))
        .expect("cef");
    assert!(cef.msg.starts_with("CEF:0|Microsoft|Microsoft Defender for Cloud|1.0|VM_RDPBruteForce|Suspicious RDP brute force|6|"), "{}", cef.msg);
    assert!(
        cef.msg.ends_with(r"msg=multi\nline \= value"),
        "{}",
        cef.msg
    );
    let leef = received
        .iter()
        .find(|r| r.param("id") == Some("leef"))
        .expect("leef");
    assert!(
        leef.msg.starts_with(
            "LEEF:2.0|Microsoft|Microsoft Defender for Cloud|1.0|VM_RDPBruteForce|x09|"
        ),
        "{}",
        leef.msg
    );
    assert!(
        leef.msg.contains("\tusrName=zoë \"admin\" [x]\\y\t"),
        "{}",
        leef.msg
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_event_xml_bodies_reach_rsyslog_well_formed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca(dir.path());
    let receiver = Receiver::start(Kind::Rsyslog, dir.path(), &ca);
    let row = r#"{"PartitionKey":"0637","RowKey":"r1","TIMESTAMP":"2026-11-22T06:00:00Z","EventId":4625,"Level":4,"Description":"An account failed to log on.\r\n\tAccount Name:\tadmin","RawXml":"<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><EventID>4625</EventID><Computer>web-01</Computer></System><EventData><Data Name='TargetUserName'>admin</Data></EventData></Event>"}"#;
    let ctx = azlog_collector::normalise::NormaliseContext {
        source_name: Arc::from("web"),
        subscription_id: None,
    };
    let record = azlog_collector::normalise::RawRecord {
        kind: EventKind::Wad,
        raw: RawJson::parse(row.to_owned()).expect("raw"),
        id_hint: None,
        wad_columns: None,
        schema: azlog_collector::normalise::Schema::Api,
    };
    let wad = azlog_collector::normalise::normalise(record, &ctx).expect("normalises");
    for (framing, e) in [
        ("octetCounting", wad.clone()),
        ("newline", event("alert", "line one\nline two")),
    ] {
        let case = Case {
            transport: "tcp",
            framing,
            body: "eventXml",
        };
        send(&receiver, &case, &ca.ca_file, vec![e]).await;
    }
    let received = receiver.wait_for(2, Duration::from_secs(20));
    let wad_msg = &received
        .iter()
        .find(|r| r.param("id") == Some("0637|r1"))
        .expect("the WAD event")
        .msg;
    assert!(
        wad_msg.starts_with("<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><EventID>4625</EventID>"),
        "{wad_msg}"
    );
    assert!(
        wad_msg.ends_with("<RenderingInfo Culture='en-US'><Message>An account failed to log on.\r\n\tAccount Name:\tadmin</Message><Level>Information</Level></RenderingInfo></Event>"),
        "{wad_msg}"
    );
    let alert = &received
        .iter()
        .find(|r| r.param("id") == Some("alert"))
        .expect("the alert")
        .msg;
    assert!(
        alert.contains("<Provider Name='Microsoft Defender for Cloud'/>"),
        "{alert}"
    );
    assert!(
        alert.contains(r"<Message>line one\nline two</Message>"),
        "{alert}"
    );
}

async fn send_mtls(port: u16, ca: &TestCa, with_client_cert: bool) -> Result<(), String> {
    let mut yaml = format!(
        "syslog:\n  address: 127.0.0.1:{port}\n  transport: tls\n  body: message\n  connectTimeout: 3s\n  ackTimeout: 3s\n  tls:\n    caFile: {}\n    serverName: localhost\n",
        ca.ca_file.display()
    );
    if with_client_cert {
        yaml.push_str(&format!(
            "    certFile: {}\n    keyFile: {}\n",
            ca.client_cert_file.display(),
            ca.client_key_file.display()
        ));
    }
    let id = if with_client_cert {
        "with-cert"
    } else {
        "without-cert"
    };
    deliver_once(&yaml, vec![event(id, "mutual TLS")])
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_requires_client_certificates_accepts_ours_and_refuses_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca(dir.path());
    let receiver = Receiver::start(Kind::SyslogNg, dir.path(), &ca);
    send_mtls(receiver.ports.mtls, &ca, true)
        .await
        .expect("delivered with a client certificate");
    let got = receiver.wait_for(1, Duration::from_secs(20)).remove(0);
    assert_eq!(got.param("id"), Some("with-cert"));
    assert_eq!(got.msg, "mutual TLS");
    // The refusal must surface when connecting, before any batch is written: TLS 1.3 finishes the
    // client's handshake first, so a batch sent at once could be taken as delivered.
    let refused = send_mtls(receiver.ports.mtls, &ca, false)
        .await
        .expect_err("a receiver requiring client certificates must refuse a client without one");
    assert!(
        refused.contains("cannot connect") && refused.contains("TLS"),
        "refused at connect time, naming TLS: {refused}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        receiver
            .messages()
            .iter()
            .all(|m| m.param("id") != Some("without-cert"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rsyslog_parses_rfc3164_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca(dir.path());
    let receiver = Receiver::start(Kind::Rsyslog, dir.path(), &ca);
    let yaml = format!(
        "syslog:\n  address: 127.0.0.1:{}\n  transport: tcp\n  protocol: rfc3164\n  body: message\n  facility: auth\n",
        receiver.ports.tcp
    );
    let sent = event("bsd", "Zoë failed to log on from 203.0.113.7");
    deliver_once(&yaml, vec![sent.clone()])
        .await
        .expect("delivered");
    let got = receiver.wait_for(1, Duration::from_secs(20)).remove(0);
    assert_eq!(got.hostname, "web-01");
    assert_eq!(
        got.app_name, "azlog",
        "the TAG is parsed as the program name"
    );
    assert_eq!(got.facility, "auth");
    assert_eq!(got.severity, "warning");
    assert_eq!(got.msg.trim_start(), sent.message());
}
