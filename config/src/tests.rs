//! The whole config: parsing, defaults and every check, as a user meets them.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;

fn errors_of(yaml: &str) -> Vec<FieldError> {
    match Config::parse(yaml, "test.yaml") {
        Ok(_) => panic!("config should be rejected:\n{yaml}"),
        Err(e) => e.field_errors(),
    }
}

const MINIMAL: &str = "name: demo\nsource:\n  simulate: {}\noutputs:\n  - stdout: {}\n";

#[test]
fn a_minimal_config_gets_safe_defaults() {
    let config = Config::parse(MINIMAL, "t").expect("valid");
    assert_eq!(config.pipeline.batch_size, 500);
    assert_eq!(config.checkpoint.commit_interval, Duration::from_secs(5));
    assert_eq!(
        config.health.listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
    );
}

#[test]
fn a_misspelt_field_is_rejected_with_its_path() {
    let yaml = "name: demo\nsource:\n  simulate: {}\noutputs:\n  - syslog:\n      address: h:514\n      trasnport: tcp\n";
    let errors = errors_of(yaml);
    assert_eq!(errors[0].path, "outputs[0].syslog.trasnport");
    assert!(
        errors[0].message.contains("unknown field `trasnport`"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0].message.contains("expected one of"),
        "lists allowed fields: {}",
        errors[0].message
    );
}

#[test]
fn a_wrong_enum_value_lists_the_allowed_ones() {
    let yaml = "name: demo\nsource:\n  simulate: {}\noutputs:\n  - syslog:\n      address: h:514\n      transport: tcpp\n";
    let errors = errors_of(yaml);
    assert_eq!(errors[0].path, "outputs[0].syslog.transport");
    assert!(
        errors[0].message.contains("`udp`, `tcp`, `tls`"),
        "{}",
        errors[0].message
    );
}

#[test]
fn an_unknown_source_type_is_rejected() {
    let errors = errors_of("name: demo\nsource:\n  eventhub: {}\noutputs:\n  - stdout: {}\n");
    assert_eq!(errors[0].path, "source");
    assert!(
        errors[0].message.contains("simulate"),
        "{}",
        errors[0].message
    );
}

#[test]
fn a_missing_required_field_is_named() {
    let errors = errors_of("name: demo\nsource:\n  simulate: {}\noutputs:\n  - file: {}\n");
    assert_eq!(errors[0].path, "outputs[0].file");
    assert!(
        errors[0].message.contains("missing field `directory`"),
        "{}",
        errors[0].message
    );
}

#[test]
fn a_wrong_type_is_named() {
    let errors =
        errors_of("name: demo\nsource:\n  simulate:\n    count: lots\noutputs:\n  - stdout: {}\n");
    assert_eq!(errors[0].path, "source.simulate.count");
    assert!(
        errors[0].message.contains("invalid type"),
        "{}",
        errors[0].message
    );
}

#[test]
fn a_bad_duration_is_named() {
    let errors = errors_of(
        "name: demo\nsource:\n  simulate: {}\noutputs:\n  - stdout: {}\ncheckpoint:\n  commitInterval: soon\n",
    );
    assert_eq!(errors[0].path, "checkpoint.commitInterval");
}

#[test]
fn an_address_without_a_port_is_explained() {
    let errors = errors_of(
        "name: demo\nsource:\n  simulate: {}\noutputs:\n  - syslog:\n      address: siem.example.com\n",
    );
    assert_eq!(errors[0].path, "outputs[0].syslog.address");
    assert!(
        errors[0].message.contains("has no port"),
        "{}",
        errors[0].message
    );
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let yaml = "name: ''\nsource:\n  simulate:\n    rate: -5\noutputs:\n  - syslog:\n      address: h:514\n      transport: udp\n      maxMessageBytes: 70000\n      appName: 'has space'\n      tls: {}\n  - stdout: {name: syslog-0}\npipeline:\n  batchSize: 0\n";
    let errors = errors_of(yaml);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "name",
        "source.simulate.rate",
        "outputs[0].syslog.appName",
        "outputs[0].syslog.maxMessageBytes",
        "outputs[0].syslog.tls",
        "outputs[1].stdout.name",
        "pipeline.batchSize",
    ] {
        assert!(paths.contains(&expected), "missing {expected} in {paths:?}");
    }
}

#[test]
fn a_poll_interval_that_would_spin_or_overflow_is_refused() {
    for (interval, refused) in [
        ("0s", true),
        ("50ms", true),
        ("100ms", false),
        ("24h", false),
        ("25h", true),
        ("500000000years", true),
    ] {
        let yaml = format!(
            "name: demo\nsource:\n  simulate: {{}}\noutputs:\n  - stdout: {{}}\npipeline:\n  pollInterval: {interval}\n"
        );
        let errors = match Config::parse(&yaml, "t") {
            Ok(_) => Vec::new(),
            Err(e) => e.field_errors(),
        };
        assert_eq!(
            errors.iter().any(|e| e.path == "pipeline.pollInterval"),
            refused,
            "{interval}: {errors:?}"
        );
    }
}

#[test]
fn tls_files_that_do_not_exist_are_named() {
    let yaml = "name: demo\nsource:\n  simulate: {}\noutputs:\n  - syslog:\n      address: h:6514\n      transport: tls\n      tls:\n        caFile: /nonexistent/ca.pem\n        certFile: /nonexistent/c.pem\n";
    let errors = errors_of(yaml);
    assert!(
        errors
            .iter()
            .any(|e| e.path == "outputs[0].syslog.tls.caFile"
                && e.message.contains("/nonexistent/ca.pem"))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.path == "outputs[0].syslog.tls" && e.message.contains("go together"))
    );
}

#[test]
fn the_effective_config_parses_back_to_the_same_config() {
    let config = Config::parse(MINIMAL, "t").expect("valid");
    let yaml = config.effective_yaml().expect("yaml");
    assert!(
        yaml.contains("simulate:") && yaml.contains("commitInterval: 5s"),
        "{yaml}"
    );
    let again = Config::parse(&yaml, "effective").expect("the effective config is valid");
    assert_eq!(again.effective_yaml().expect("yaml"), yaml);
}

#[test]
fn rest_sources_need_an_azure_block_and_real_ids() {
    let errors = errors_of(
        "name: demo\nsource:\n  activityLog:\n    subscriptions: [prod]\n    startAt: yesterday\noutputs:\n  - stdout: {}\n",
    );
    assert_eq!(errors[0].path, "source.activityLog.startAt");
    assert!(
        errors[0]
            .message
            .contains("Now, Earliest or an RFC 3339 time")
    );
    let errors = errors_of(
        "name: demo\nsource:\n  activityLog:\n    subscriptions: [prod]\noutputs:\n  - stdout: {}\n",
    );
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["source.activityLog.subscriptions[0]", "azure.credential"]
    );
    assert!(errors[1].message.contains("add an azure block"));
}

#[test]
fn azure_endpoints_must_be_https_and_secrets_must_be_files() {
    let yaml = "name: demo\nsource:\n  securityAlerts: {}\nsubscriptionId: 089bd33f-d4ec-47fe-8ba5-0753aa5c5b33\nazure:\n  endpoints:\n    resourceManager: http://arm.example.com\n  credential:\n    clientSecret:\n      tenantId: contoso.onmicrosoft.com\n      clientId: not-a-guid\n      secretFile: /nonexistent/secret\noutputs:\n  - stdout: {}\n";
    let errors = errors_of(yaml);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "azure.endpoints.resourceManager",
            "azure.credential.clientSecret.clientId",
            "azure.credential.clientSecret.secretFile",
        ]
    );
    assert!(errors[0].message.contains("never sent in clear text"));
    assert!(errors[2].message.contains("mount the Secret"));
}

#[test]
fn a_secret_written_inline_is_an_unknown_field() {
    let errors = errors_of(
        "name: demo\nsource:\n  entraAudit: {}\nazure:\n  credential:\n    clientSecret:\n      tenantId: contoso.onmicrosoft.com\n      clientId: 089bd33f-d4ec-47fe-8ba5-0753aa5c5b33\n      secret: hunter2\noutputs:\n  - stdout: {}\n",
    );
    assert_eq!(errors[0].path, "azure.credential.clientSecret.secret");
    assert!(!errors[0].message.contains("hunter2"));
}

#[test]
fn an_empty_output_list_is_rejected() {
    let errors = errors_of("name: demo\nsource:\n  simulate: {}\noutputs: []\n");
    assert_eq!(errors[0].path, "outputs");
}

#[test]
fn yaml_syntax_errors_carry_a_location() {
    match Config::parse("name: demo\nsource: [\n", "t") {
        Err(ConfigError::Parse {
            location: Some((line, _)),
            ..
        }) => assert!(line >= 2),
        other => panic!("expected a located parse error, got {other:?}"),
    }
}

#[test]
fn an_event_hub_source_names_where_it_reads_and_how_it_signs_in() {
    let hub = |fields: &str| {
        format!("name: demo\nsource:\n  eventHubs:\n{fields}\noutputs:\n  - stdout: {{}}\n")
    };
    let paths = |yaml: &str| -> Vec<String> {
        errors_of(yaml)
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    };
    let errors = paths(&hub("    hub: insights-logs"));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("source.eventHubs.namespace: name the Event Hubs namespace"));
    assert!(errors[1].starts_with("source.eventHubs.connectionStringFile: set a connection string file, or an azure credential"));
    let errors = paths(&hub(
        "    endpoint: http://10.0.0.4:5671\n    hub: insights logs\n    prefetch: 0\n    sharing:\n      namespace: siem\n      group: Hub_Readers",
    ));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("source.eventHubs.endpoint:") && e.contains("amqps://")),
        "{errors:?}"
    );
    for field in ["hub", "prefetch", "sharing.group", "connectionStringFile"] {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("source.eventHubs.{field}:"))),
            "{field}: {errors:?}"
        );
    }
    let config = Config::parse(
        &format!(
            "{}azure:\n  credential:\n    workloadIdentity: {{}}\n",
            hub("    namespace: contoso-logs\n    hub: insights-logs")
        ),
        "t",
    )
    .expect("valid");
    let SourceConfig::EventHubs(c) = config.source else {
        panic!("an eventHubs source");
    };
    assert_eq!(c.consumer_group, "$Default");
    assert_eq!(c.prefetch, 100);
    assert_eq!(c.sharing, None);
}
