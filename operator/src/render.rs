//! A LogSource rendered into the collector's own configuration, plus what the pod needs around it
//! (Secrets to mount, file volumes, forwarder sidecars). Pure: nothing here talks to the cluster.
//!
//! The collector config is built as JSON and read by the collector's own types, so its defaults and
//! checks apply unchanged; every problem is reported at the LogSource field a user has to change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use azlog_collector::config::{Config, FieldError};
use serde_json::{Map, Value, json};

use crate::crd::LogSource;
use crate::crd::log_source::{
    Credential, FileRetention, FileVolume, ForwarderOutput, LogSourceSpec, Output, SecretKeyRef,
    WorkloadIdentity,
};

/// Where the collector container finds its config file.
pub const CONFIG_DIR: &str = "/etc/azlog";
/// The config file's name in the ConfigMap and in `CONFIG_DIR`.
pub const CONFIG_FILE: &str = "collector.yaml";
/// The collector's state directory (checkpoint, dead letters).
pub const STATE_DIR: &str = "/var/lib/azlog";
/// Secrets are mounted below this, one directory per Secret.
pub const SECRETS_DIR: &str = "/var/run/secrets/azlog";
/// File outputs write below this, one directory per output.
pub const FILES_DIR: &str = "/var/log/azlog";
/// The projected ServiceAccount token workload identity exchanges for an Entra token.
pub const FEDERATED_TOKEN_DIR: &str = "/var/run/secrets/azure/tokens";
pub const FEDERATED_TOKEN_FILE: &str = "azure-identity-token";
/// The collector's /metrics, /healthz and /readyz port.
pub const HEALTH_PORT: u16 = 9464;

/// A path in the collector's pod as the collector's config names it. A Windows HostProcess
/// container sees its volumes below its sandbox directory, which is also its working directory, so
/// its paths are relative; elsewhere they are the absolute mount paths.
pub fn pod_path(windows: bool, path: &str) -> String {
    if windows {
        path.trim_start_matches('/').to_owned()
    } else {
        path.to_owned()
    }
}

/// The name of a LogSource's children (config ConfigMap, ServiceAccount, Role, RoleBinding,
/// Lease, Deployment); the config names the Lease by it too.
pub fn children_name(log_source: &str) -> String {
    format!("azlog-{log_source}")
}

/// The ConfigMap a LogSource's collector keeps its checkpoint in.
pub fn checkpoint_config_map(log_source: &str) -> String {
    format!("{}{CHECKPOINT_SUFFIX}", children_name(log_source))
}

/// A LogSource's collector, ready to be turned into Kubernetes objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The collector config file.
    pub config_yaml: String,
    /// The source's kind (wad, activityLog, …).
    pub source: &'static str,
    /// Secrets to mount, each with the keys used.
    pub secrets: BTreeMap<String, BTreeSet<String>>,
    /// Volumes of the file and forwarder outputs.
    pub file_volumes: Vec<FileVolumeMount>,
    /// Forwarder sidecars.
    pub forwarders: Vec<Forwarder>,
    /// Set when the collector signs in with workload identity.
    pub workload_identity: Option<WorkloadIdentity>,
    /// The collector must run on a Windows node, as a HostProcess container.
    pub windows: bool,
    /// The port of its health endpoints.
    pub health_port: u16,
}

/// The volume of one file output, mounted in the collector and in any forwarder reading it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileVolumeMount {
    pub volume_name: String,
    pub directory: String,
    pub volume: FileVolume,
}

/// A forwarder sidecar and the file volume it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Forwarder {
    pub name: String,
    pub volume_name: String,
    pub spec: ForwarderOutput,
}

/// Why a LogSource cannot be rendered: every problem, at its LogSource field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub Vec<FieldError>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problems: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&problems.join("; "))
    }
}

impl std::error::Error for Invalid {}

const SOURCES: [&str; 6] = [
    "wad",
    "diagnosticLogs",
    "activityLog",
    "securityAlerts",
    "entraAudit",
    "simulate",
];

/// Renders `source`, or says every field to fix.
pub fn render(source: &LogSource) -> Result<Rendered, Invalid> {
    let spec = &source.spec;
    let name = source.metadata.name.clone().unwrap_or_default();
    let namespace = source.metadata.namespace.clone().unwrap_or_default();
    let mut errors = Vec::new();
    let mut err = |path: &str, message: String| {
        errors.push(FieldError {
            path: path.to_owned(),
            message,
        })
    };
    check_name(&name, &mut err);
    let windows = spec.outputs.iter().any(|o| o.windows_event_log.is_some());
    let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut secret_file = |r: &SecretKeyRef| {
        secrets
            .entry(r.name.clone())
            .or_default()
            .insert(r.key.clone());
        pod_path(windows, &format!("{SECRETS_DIR}/{}/{}", r.name, r.key))
    };

    let spec_value = serde_json::to_value(spec).unwrap_or_default();
    let chosen: Vec<&str> = SOURCES
        .into_iter()
        .filter(|s| spec_value.get(*s).is_some())
        .collect();
    let kind = match chosen.as_slice() {
        [one] => *one,
        [] => {
            err(
                "spec",
                format!("set one source: one of {}", SOURCES.join(", ")),
            );
            return Err(Invalid(errors));
        }
        many => {
            err(
                &format!("spec.{}", many[1]),
                format!(
                    "a LogSource reads one source, but {} are set; make one LogSource per source",
                    many.join(" and ")
                ),
            );
            return Err(Invalid(errors));
        }
    };

    let mut block = spec_value.get(kind).cloned().unwrap_or_else(|| json!({}));
    if let Value::Object(map) = &mut block {
        for (secret_field, file_field) in [
            ("accountKey", "accountKeyFile"),
            ("sasToken", "sasTokenFile"),
        ] {
            if let Some(r) = map.remove(secret_field) {
                let r: SecretKeyRef = serde_json::from_value(r).unwrap_or_default();
                map.insert(file_field.into(), secret_file(&r).into());
            }
        }
        if let Some(start) = &spec.start_at {
            map.insert("startAt".into(), start.clone().into());
        }
        if let Some(late) = &spec.late_arrival {
            map.insert("lateArrival".into(), late.clone().into());
        }
    }

    let mut config = Map::new();
    config.insert("name".into(), name.clone().into());
    if let Some(sub) = &spec.subscription_id {
        config.insert("subscriptionId".into(), sub.clone().into());
    }
    config.insert("source".into(), json!({ kind: block }));
    let mut workload_identity = None;
    if let Some(azure) = azure_block(
        spec,
        windows,
        &mut secret_file,
        &mut workload_identity,
        &mut err,
    ) {
        config.insert("azure".into(), azure);
    }

    let mut outputs = Vec::new();
    let mut file_volumes = Vec::new();
    let mut forwarders = Vec::new();
    if spec.outputs.is_empty() {
        err("spec.outputs", "list at least one output".into());
    }
    for (i, output) in spec.outputs.iter().enumerate() {
        let path = format!("spec.outputs[{i}]");
        let Output {
            file,
            syslog,
            forwarder,
            windows_event_log,
        } = output;
        let chosen = [
            file.is_some(),
            syslog.is_some(),
            forwarder.is_some(),
            windows_event_log.is_some(),
        ];
        if chosen.into_iter().filter(|set| *set).count() != 1 {
            err(
                &path,
                "set exactly one of file, syslog, forwarder or windowsEventLog in each output"
                    .into(),
            );
            outputs.push(Value::Null);
            continue;
        }
        if let Some(file) = file {
            let out_name = file.name.clone().unwrap_or_else(|| format!("file-{i}"));
            let volume = file.volume.clone().unwrap_or_default();
            let mount = file_volume(i, &out_name, volume);
            let mut value = json!({
                "directory": pod_path(windows, &mount.directory),
                "retention": retention(file.retention.as_ref()),
            });
            copy_set(
                &mut value,
                &serde_json::to_value(file).unwrap_or_default(),
                &["name", "format", "maxFileBytes", "maxFileAge"],
            );
            file_volumes.push(mount);
            outputs.push(json!({ "file": value }));
        } else if let Some(syslog) = syslog {
            let mut value = serde_json::to_value(syslog).unwrap_or_default();
            if let Some(tls) = &syslog.tls {
                let mut t = Map::new();
                if let Some(ca) = &tls.ca {
                    t.insert("caFile".into(), secret_file(ca).into());
                }
                if let Some(secret) = &tls.client_certificate_secret {
                    for (field, key) in [("certFile", "tls.crt"), ("keyFile", "tls.key")] {
                        let r = SecretKeyRef {
                            name: secret.clone(),
                            key: key.into(),
                        };
                        t.insert(field.into(), secret_file(&r).into());
                    }
                }
                if let Some(server) = &tls.server_name {
                    t.insert("serverName".into(), server.clone().into());
                }
                value["tls"] = Value::Object(t);
            }
            outputs.push(json!({ "syslog": value }));
        } else if let Some(forwarder) = forwarder {
            if windows {
                err(
                    &format!("{path}.forwarder"),
                    "a forwarder sidecar cannot run beside a windowsEventLog output: that \
                     collector runs in a Windows pod; make a separate LogSource for the forwarder"
                        .into(),
                );
            }
            let out_name = forwarder
                .name
                .clone()
                .unwrap_or_else(|| format!("forwarder-{i}"));
            if !is_dns_label(&out_name) || out_name == "collector" {
                err(
                    &format!("{path}.forwarder.name"),
                    format!(
                        "{out_name:?} names the sidecar container: use at most 63 lowercase letters, \
                         digits and '-', starting and ending with a letter or digit, other than \
                         \"collector\""
                    ),
                );
            }
            if let Some(config) = &forwarder.config {
                let at = config.mount_path.as_deref().unwrap_or("/");
                if config.config_map.is_empty() || !at.starts_with('/') {
                    err(
                        &format!("{path}.forwarder.config"),
                        "name the ConfigMap in configMap, and give mountPath as an absolute path"
                            .into(),
                    );
                }
            }
            let volume = forwarder.volume.clone().unwrap_or_default();
            let mount = file_volume(i, &out_name, volume);
            let mut value = json!({
                "name": out_name,
                "directory": mount.directory,
                "retention": retention(forwarder.retention.as_ref()),
            });
            if let Some(format) = forwarder.format {
                value["format"] = serde_json::to_value(format).unwrap_or_default();
            }
            forwarders.push(Forwarder {
                name: out_name,
                volume_name: mount.volume_name.clone(),
                spec: forwarder.clone(),
            });
            file_volumes.push(mount);
            outputs.push(json!({ "file": value }));
        } else if let Some(event_log) = windows_event_log {
            outputs.push(json!({
                "windowsEventLog": serde_json::to_value(event_log).unwrap_or_default()
            }));
        }
    }
    config.insert("outputs".into(), Value::Array(outputs));
    config.insert("stateDir".into(), pod_path(windows, STATE_DIR).into());
    // The cursor lives in the cluster, so a pod rescheduled anywhere resumes; the recent ids stay
    // in the state directory (see the collector's checkpoint::configmap).
    let mut checkpoint = json!({
        "kubernetes": {
            "namespace": namespace,
            "configMap": checkpoint_config_map(&name),
            "lease": children_name(&name),
            "logSource": name,
        },
    });
    if let Some(capacity) = spec.collector.as_ref().and_then(|c| c.dedup_capacity) {
        checkpoint["dedupCapacity"] = capacity.into();
    }
    config.insert("checkpoint".into(), checkpoint);
    let health_port = spec
        .collector
        .as_ref()
        .and_then(|c| c.health_port)
        .unwrap_or(HEALTH_PORT);
    config.insert(
        "health".into(),
        json!({ "listen": format!("0.0.0.0:{health_port}") }),
    );
    if let Some(poll) = &spec.poll_interval {
        config.insert("pipeline".into(), json!({ "pollInterval": poll }));
    }
    if !errors.is_empty() {
        return Err(Invalid(errors));
    }

    let config: Config = serde_path_to_error::deserialize(Value::Object(config)).map_err(|e| {
        Invalid(vec![FieldError {
            path: spec_path(&e.path().to_string(), spec),
            message: e.into_inner().to_string(),
        }])
    })?;
    let problems = config.validate_settings();
    if !problems.is_empty() {
        return Err(Invalid(
            problems
                .into_iter()
                .map(|p| FieldError {
                    path: spec_path(&p.path, spec),
                    message: p.message,
                })
                .collect(),
        ));
    }
    // Through a JSON value: serde_yaml would write the one-of choices as `!tags`, which the
    // collector (like kubectl users) does not read.
    let config_yaml = serde_json::to_value(&config)
        .map_err(|e| e.to_string())
        .and_then(|v| serde_yaml::to_string(&v).map_err(|e| e.to_string()))
        .map_err(|e| {
            Invalid(vec![FieldError {
                path: "spec".into(),
                message: format!("failed to write the collector config: {e}"),
            }])
        })?;
    Ok(Rendered {
        config_yaml,
        source: kind,
        secrets,
        file_volumes,
        forwarders,
        workload_identity,
        windows,
        health_port,
    })
}

/// The collector's `azure` block: cloud, endpoints, CA and credential.
fn azure_block(
    spec: &LogSourceSpec,
    windows: bool,
    secret_file: &mut impl FnMut(&SecretKeyRef) -> String,
    workload_identity: &mut Option<WorkloadIdentity>,
    err: &mut impl FnMut(&str, String),
) -> Option<Value> {
    let mut azure = Map::new();
    if let Some(cloud) = spec.cloud {
        azure.insert(
            "cloud".into(),
            serde_json::to_value(cloud).unwrap_or_default(),
        );
    }
    if let Some(endpoints) = &spec.endpoints {
        let mut value = serde_json::to_value(endpoints).unwrap_or_default();
        if let Value::Object(map) = &mut value {
            map.remove("ca");
        }
        azure.insert("endpoints".into(), value);
        if let Some(ca) = &endpoints.ca {
            azure.insert("caFile".into(), secret_file(ca).into());
        }
    }
    if let Some(credential) = &spec.credential {
        let rendered = match credential {
            Credential {
                workload_identity: Some(wi),
                managed_identity: None,
                client_secret: None,
            } => {
                *workload_identity = Some(wi.clone());
                Some(json!({ "workloadIdentity": {
                    "tenantId": wi.tenant_id,
                    "clientId": wi.client_id,
                    "tokenFile": pod_path(windows, &format!("{FEDERATED_TOKEN_DIR}/{FEDERATED_TOKEN_FILE}")),
                }}))
            }
            Credential {
                workload_identity: None,
                managed_identity: Some(mi),
                client_secret: None,
            } => Some(json!({ "managedIdentity": mi })),
            Credential {
                workload_identity: None,
                managed_identity: None,
                client_secret: Some(cs),
            } => Some(json!({ "clientSecret": {
                "tenantId": cs.tenant_id,
                "clientId": cs.client_id,
                "secretFile": secret_file(&cs.secret),
            }})),
            _ => {
                err(
                    "spec.credential",
                    "set exactly one of workloadIdentity, managedIdentity or clientSecret".into(),
                );
                None
            }
        };
        if let Some(rendered) = rendered {
            azure.insert("credential".into(), rendered);
        }
    }
    (!azure.is_empty()).then_some(Value::Object(azure))
}

/// The suffix of a collector's checkpoint ConfigMap; no LogSource name may end with it, so no
/// LogSource's config ConfigMap (`azlog-<name>`) can be another's checkpoint.
const CHECKPOINT_SUFFIX: &str = "-checkpoint";

/// A LogSource's name becomes its children's names and the value of the label its pods carry:
/// it must fit a label value (63 characters) and not end like a checkpoint's name.
fn check_name(name: &str, err: &mut impl FnMut(&str, String)) {
    if name.len() > 63 {
        err(
            "metadata.name",
            format!(
                "{name:?} is {} characters; a LogSource name labels its collector's pods, so at \
                 most 63",
                name.len()
            ),
        );
    }
    if name.ends_with(CHECKPOINT_SUFFIX) {
        err(
            "metadata.name",
            format!(
                "{name:?} ends with {CHECKPOINT_SUFFIX:?}, which names another LogSource's \
                 checkpoint ConfigMap; choose another name"
            ),
        );
    }
}

/// A DNS-1123 label: what a container name must be.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Finished files kept when a LogSource does not say: 1 GiB, so a forwarder that falls behind
/// or a file output nobody collects never fills the volume and gets the pod evicted.
const DEFAULT_RETAINED_BYTES: u64 = 1 << 30;

/// The collector's retention settings for a file output.
fn retention(spec: Option<&FileRetention>) -> Value {
    let spec = spec.cloned().unwrap_or_default();
    let mut value = json!({ "maxBytes": spec.max_bytes.unwrap_or(DEFAULT_RETAINED_BYTES) });
    if let Some(age) = spec.max_age {
        value["maxAge"] = age.into();
    }
    value
}

/// The volume and directory the `index`th output writes its files to.
fn file_volume(index: usize, output_name: &str, volume: FileVolume) -> FileVolumeMount {
    FileVolumeMount {
        volume_name: format!("files-{index}"),
        directory: format!("{FILES_DIR}/{output_name}"),
        volume,
    }
}

fn copy_set(target: &mut Value, from: &Value, fields: &[&str]) {
    for field in fields {
        if let Some(v) = from.get(*field) {
            target[*field] = v.clone();
        }
    }
}

/// The LogSource field behind a field of the rendered collector config.
fn spec_path(collector_path: &str, spec: &LogSourceSpec) -> String {
    let renamed = |field: &str| -> String {
        match field {
            "accountKeyFile" => "accountKey".into(),
            "sasTokenFile" => "sasToken".into(),
            "secretFile" => "secret".into(),
            other => other.into(),
        }
    };
    let parts: Vec<&str> = collector_path.split('.').collect();
    match parts.as_slice() {
        ["name", ..] => "metadata.name".into(),
        ["source", _, "startAt", ..] => "spec.startAt".into(),
        ["source", _, "lateArrival", ..] => "spec.lateArrival".into(),
        ["source", kind, field, rest @ ..] => join("spec", &[kind, &renamed(field)], rest),
        ["pipeline", "pollInterval", ..] => "spec.pollInterval".into(),
        ["azure", "cloud", ..] => "spec.cloud".into(),
        ["azure", "caFile", ..] => "spec.endpoints.ca".into(),
        ["azure", "endpoints", rest @ ..] => join("spec.endpoints", &[], rest),
        ["azure", "credential", kind, field, rest @ ..] => {
            join("spec.credential", &[kind, &renamed(field)], rest)
        }
        ["azure", ..] => "spec.credential".into(),
        [output, kind, rest @ ..] if output.starts_with("outputs[") => {
            let index: Option<usize> = output
                .trim_start_matches("outputs[")
                .trim_end_matches(']')
                .parse()
                .ok();
            let is_forwarder = index
                .and_then(|i| spec.outputs.get(i))
                .is_some_and(|o| o.forwarder.is_some());
            let kind = if is_forwarder { "forwarder" } else { kind };
            let rest: Vec<String> = rest
                .iter()
                .map(|f| match *f {
                    "caFile" => "ca".into(),
                    "certFile" | "keyFile" => "clientCertificateSecret".into(),
                    "directory" => "volume".into(),
                    other => other.into(),
                })
                .collect();
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            join(&format!("spec.{output}"), &[kind], &rest)
        }
        _ => format!("spec.{collector_path}"),
    }
}

fn join(base: &str, middle: &[&str], rest: &[&str]) -> String {
    let mut path = base.to_owned();
    for part in middle.iter().chain(rest) {
        path.push('.');
        path.push_str(part);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_source(spec: Value) -> LogSource {
        serde_json::from_value(json!({
            "apiVersion": "azlog.io/v1alpha1",
            "kind": "LogSource",
            "metadata": {"name": "prod-activity", "namespace": "siem"},
            "spec": spec,
        }))
        .expect("a LogSource")
    }

    fn problems(spec: Value) -> Vec<String> {
        match render(&log_source(spec)) {
            Ok(r) => panic!("expected problems, rendered:\n{}", r.config_yaml),
            Err(Invalid(errors)) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn an_activity_log_source_renders_to_a_collector_config_with_secret_files() {
        let rendered = render(&log_source(json!({
            "activityLog": {"categories": ["Administrative"]},
            "subscriptionId": "00000000-0000-0000-0000-000000000001",
            "startAt": "Earliest",
            "lateArrival": "15m",
            "pollInterval": "45s",
            "credential": {"clientSecret": {
                "tenantId": "00000000-0000-0000-0000-0000000000aa",
                "clientId": "00000000-0000-0000-0000-0000000000bb",
                "secret": {"name": "azlog-sp", "key": "clientSecret"}}},
            "outputs": [
                {"syslog": {"address": "qradar.siem:6514", "transport": "tls", "body": "leef",
                            "tls": {"ca": {"name": "siem-ca", "key": "ca.crt"}}}},
                {"forwarder": {"image": "fluent/fluent-bit:3.1"}}
            ]
        })))
        .expect("renders");
        assert_eq!(rendered.source, "activityLog");
        // The collector reads it back as is; the files it names are Secrets mounted in the pod.
        let value: Value = serde_yaml::from_str(&rendered.config_yaml).expect("yaml");
        let config: Config = serde_json::from_value(value).expect("a collector config");
        assert_eq!(config.validate_settings(), []);
        let yaml = &rendered.config_yaml;
        assert!(
            yaml.contains("secretFile: /var/run/secrets/azlog/azlog-sp/clientSecret"),
            "{yaml}"
        );
        assert!(
            yaml.contains("caFile: /var/run/secrets/azlog/siem-ca/ca.crt"),
            "{yaml}"
        );
        assert!(yaml.contains("lateArrival: 15m"), "{yaml}");
        assert!(yaml.contains("startAt: Earliest"), "{yaml}");
        assert_eq!(config.outputs.len(), 2);
        assert_eq!(
            rendered.secrets,
            BTreeMap::from([
                (
                    "azlog-sp".to_owned(),
                    BTreeSet::from(["clientSecret".to_owned()])
                ),
                ("siem-ca".to_owned(), BTreeSet::from(["ca.crt".to_owned()])),
            ])
        );
        assert_eq!(rendered.forwarders.len(), 1);
        assert_eq!(
            rendered.file_volumes[0].directory,
            "/var/log/azlog/forwarder-1"
        );
    }

    #[test]
    fn names_that_would_collide_or_overflow_a_child_are_refused() {
        let named = |name: &str, spec: Value| {
            let mut source = log_source(spec);
            source.metadata.name = Some(name.to_owned());
            match render(&source) {
                Ok(_) => Vec::new(),
                Err(Invalid(errors)) => errors.iter().map(|e| e.path.clone()).collect(),
            }
        };
        let simple = json!({"simulate": {}, "outputs": [{"syslog": {"address": "s:514"}}]});
        assert_eq!(named("x-checkpoint", simple.clone()), ["metadata.name"]);
        assert_eq!(named(&"a".repeat(64), simple.clone()), ["metadata.name"]);
        assert!(named(&"a".repeat(63), simple.clone()).is_empty());
        assert!(named("x.checkpoint-2", simple).is_empty());
        for bad in ["Ship", "collector", "a.b", "-x", &"f".repeat(64)] {
            assert_eq!(
                named(
                    "s",
                    json!({"simulate": {}, "outputs": [{"forwarder": {"image": "i", "name": bad}}]})
                ),
                ["spec.outputs[0].forwarder.name"],
                "{bad}"
            );
        }
    }

    #[test]
    fn mistakes_are_reported_at_the_logsource_field_to_change() {
        assert_eq!(
            problems(json!({"outputs": [{"syslog": {"address": "s:514"}}]})),
            [
                "spec: set one source: one of wad, diagnosticLogs, activityLog, securityAlerts, entraAudit, simulate"
            ]
        );
        let both = problems(
            json!({"simulate": {}, "activityLog": {}, "outputs": [{"syslog": {"address": "s:514"}}]}),
        );
        assert!(
            both[0]
                .contains(": a LogSource reads one source, but activityLog and simulate are set"),
            "{both:?}"
        );
        let late = problems(
            json!({"activityLog": {}, "subscriptionId": "00000000-0000-0000-0000-000000000001",
            "lateArrival": "soon", "credential": {"managedIdentity": {}},
            "outputs": [{"syslog": {"address": "s:514"}}]}),
        );
        assert!(late[0].starts_with("spec.lateArrival: "), "{late:?}");
        let no_credential = problems(
            json!({"securityAlerts": {"subscriptions": ["00000000-0000-0000-0000-000000000001"]},
            "outputs": [{"syslog": {"address": "s:514"}}]}),
        );
        assert!(
            no_credential
                .iter()
                .any(|p| p.starts_with("spec.credential")),
            "{no_credential:?}"
        );
        let two_kinds = problems(
            json!({"simulate": {}, "outputs": [{"syslog": {"address": "s:514"}, "file": {}}]}),
        );
        assert_eq!(
            two_kinds,
            [
                "spec.outputs[0]: set exactly one of file, syslog, forwarder or windowsEventLog in each output"
            ]
        );
        let linux_sidecar_on_windows = problems(json!({"simulate": {}, "outputs": [
            {"windowsEventLog": {}}, {"forwarder": {"image": "fluent/fluent-bit:3.1"}}]}));
        assert_eq!(linux_sidecar_on_windows.len(), 1);
        assert!(
            linux_sidecar_on_windows[0]
                .starts_with("spec.outputs[1].forwarder: a forwarder sidecar cannot run"),
            "{linux_sidecar_on_windows:?}"
        );
        let bad_event_source =
            problems(json!({"simulate": {}, "outputs": [{"windowsEventLog": {"source": "a\\b"}}]}));
        assert!(
            bad_event_source[0].starts_with("spec.outputs[0].windowsEventLog.source: "),
            "{bad_event_source:?}"
        );
        let bad_account = problems(
            json!({"wad": {"account": "Not_An_Account", "accountKey": {"name": "k", "key": "key"}},
            "outputs": [{"file": {}}]}),
        );
        assert!(
            bad_account[0].starts_with("spec.wad.account: "),
            "{bad_account:?}"
        );
        let no_outputs = problems(json!({"simulate": {}, "outputs": []}));
        assert!(
            no_outputs[0].starts_with("spec.outputs: "),
            "{no_outputs:?}"
        );
    }
}
