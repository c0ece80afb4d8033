//! A LogSource rendered into the collector's own configuration, plus what the pod needs around it
//! (Secrets to mount, file volumes, forwarder sidecars). Pure: nothing here talks to the cluster.
//!
//! The collector config is built as the collector's own typed values, so its defaults and checks
//! apply unchanged; every problem is reported at the LogSource field a user has to change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use azlog_config::health::HEALTH_PORT;
use azlog_config::{
    ActivityLogConfig, At, AzureConfig, CheckpointConfig, ClientSecretCredentialConfig, Config,
    CredentialConfig, DiagnosticLogsConfig, EndpointOverrides, EntraAuditConfig, EventHubsConfig,
    FieldError, FileOutputConfig, HealthConfig, KubernetesCheckpointConfig, Layout,
    ManagedIdentityCredentialConfig, OutputConfig, PipelineConfig, Retention, SecurityAlertsConfig,
    SharingConfig, SimulateConfig, SourceConfig, StartAt, SyslogOutputConfig, TlsConfig, WadConfig,
    WindowsEventLogOutputConfig, WorkloadIdentityCredentialConfig, parse_duration,
};

use crate::crd::LogSource;
use crate::crd::log_source::{
    Credential, FileRetention, FileVolume, ForwarderOutput, LogSourceSpec, Output, SecretKeyRef,
    SyslogOutput, WorkloadIdentity,
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
    /// How many collector pods run; more than one share the source through Leases.
    pub replicas: i32,
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

/// Renders `source`, or says every field to fix.
pub fn render(source: &LogSource) -> Result<Rendered, Invalid> {
    let spec = &source.spec;
    let name = source.metadata.name.clone().unwrap_or_default();
    let namespace = source.metadata.namespace.clone().unwrap_or_default();
    let mut errors = Errors::default();
    check_name(&name, &mut errors);
    let windows = spec.outputs.iter().any(|o| o.windows_event_log.is_some());
    let mut secrets = SecretFiles {
        windows,
        used: BTreeMap::new(),
    };
    let Some(mut source_config) = source_config(spec, &mut secrets, &mut errors) else {
        return Err(Invalid(errors.0));
    };
    let replicas = spec.replicas.unwrap_or(1);
    match &mut source_config {
        _ if replicas < 1 => errors.add("spec.replicas", "must be at least 1"),
        SourceConfig::EventHubs(hub) if replicas > 1 => {
            hub.sharing = Some(SharingConfig::new(namespace.clone(), children_name(&name)));
        }
        other if replicas > 1 => errors.add(
            "spec.replicas",
            format!(
                "only an eventHubs source is read by several collectors; the {} source has one reader, remove replicas",
                other.type_name()
            ),
        ),
        _ => {}
    }
    let mut workload_identity = None;
    let azure = azure_config(spec, &mut secrets, &mut workload_identity, &mut errors);

    let mut outputs = Vec::new();
    let mut file_volumes = Vec::new();
    let mut forwarders = Vec::new();
    if spec.outputs.is_empty() {
        errors.add("spec.outputs", "list at least one output");
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
            errors.add(
                &path,
                "set exactly one of file, syslog, forwarder or windowsEventLog in each output",
            );
            continue;
        }
        if let Some(file) = file {
            let out_name = file.name.clone().unwrap_or_else(|| format!("file-{i}"));
            let mount = file_volume(i, &out_name, file.volume.clone().unwrap_or_default());
            let mut config = FileOutputConfig::new(pod_path(windows, &mount.directory).into());
            config.name = file.name.clone();
            config.format = file.format.unwrap_or(config.format);
            config.max_file_bytes = file.max_file_bytes.unwrap_or(config.max_file_bytes);
            if let Some(age) = &file.max_file_age {
                let path = format!("{path}.file.maxFileAge");
                config.max_file_age = errors
                    .check(&path, parse_duration(age))
                    .unwrap_or(config.max_file_age);
            }
            config.retention = Some(retention(
                file.retention.as_ref(),
                &format!("{path}.file.retention"),
                &mut errors,
            ));
            file_volumes.push(mount);
            outputs.push(OutputConfig::File(config));
        } else if let Some(syslog) = syslog {
            outputs.push(OutputConfig::Syslog(syslog_config(syslog, &mut secrets)));
        } else if let Some(forwarder) = forwarder {
            let path = format!("{path}.forwarder");
            let out_name = forwarder_name(forwarder, i, windows, &path, &mut errors);
            let mount = file_volume(i, &out_name, forwarder.volume.clone().unwrap_or_default());
            let mut config = FileOutputConfig::new(mount.directory.clone().into());
            config.name = Some(out_name.clone());
            config.format = forwarder.format.unwrap_or(config.format);
            config.retention = Some(retention(
                forwarder.retention.as_ref(),
                &format!("{path}.retention"),
                &mut errors,
            ));
            forwarders.push(Forwarder {
                name: out_name,
                volume_name: mount.volume_name.clone(),
                spec: forwarder.clone(),
            });
            file_volumes.push(mount);
            outputs.push(OutputConfig::File(config));
        } else if let Some(event_log) = windows_event_log {
            let mut config = WindowsEventLogOutputConfig::default();
            config.name = event_log.name.clone();
            config.source = event_log.source.clone().unwrap_or(config.source);
            config.body = event_log.body.unwrap_or(config.body);
            outputs.push(OutputConfig::WindowsEventLog(config));
        }
    }

    // The cursor lives in the cluster, so a pod rescheduled anywhere resumes; the recent ids stay
    // in the state directory (see the collector's checkpoint::configmap).
    let mut kubernetes = KubernetesCheckpointConfig::new(namespace, checkpoint_config_map(&name));
    kubernetes.lease = Some(children_name(&name));
    kubernetes.log_source = Some(name.clone());
    // Collectors sharing a hub keep their own checkpoints in their state directories (an
    // emptyDir outlives a restart of the container); the partitions' Leases carry positions from
    // one to the next.
    let mut checkpoint = CheckpointConfig {
        kubernetes: (replicas == 1).then_some(kubernetes),
        ..CheckpointConfig::default()
    };
    let collector = spec.collector.clone().unwrap_or_default();
    if let Some(capacity) = collector.dedup_capacity {
        checkpoint.dedup_capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
    }
    let health_port = collector.health_port.unwrap_or(HEALTH_PORT);
    let mut pipeline = PipelineConfig::default();
    if let Some(poll) = &spec.poll_interval {
        pipeline.poll_interval = errors
            .check("spec.pollInterval", parse_duration(poll))
            .unwrap_or(pipeline.poll_interval);
    }
    if !errors.0.is_empty() {
        return Err(Invalid(errors.0));
    }
    let kind = source_config.type_name();
    let config = Config {
        name,
        subscription_id: spec.subscription_id.clone(),
        source: source_config,
        azure,
        outputs,
        state_dir: pod_path(windows, STATE_DIR).into(),
        checkpoint,
        pipeline,
        health: HealthConfig {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], health_port))),
        },
    };
    let problems = config.validate_settings(&SpecLayout { spec });
    if !problems.is_empty() {
        return Err(Invalid(problems));
    }
    let config_yaml = config.effective_yaml().map_err(|e| {
        Invalid(vec![FieldError {
            path: "spec".into(),
            message: format!("failed to write the collector config: {e}"),
        }])
    })?;
    Ok(Rendered {
        config_yaml,
        source: kind,
        secrets: secrets.used,
        file_volumes,
        forwarders,
        workload_identity,
        windows,
        health_port,
        replicas,
    })
}

/// The problems found while rendering, each at its LogSource field.
#[derive(Debug, Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// What was read from the field at `path`, or None once its problem is recorded.
    fn check<T>(&mut self, path: &str, read: Result<T, String>) -> Option<T> {
        read.map_err(|why| self.add(path, why)).ok()
    }
}

/// The Secrets a collector reads, and where in its pod it finds each key.
#[derive(Debug)]
struct SecretFiles {
    windows: bool,
    used: BTreeMap<String, BTreeSet<String>>,
}

impl SecretFiles {
    /// The file in the pod holding key `r`; its Secret is mounted.
    fn file(&mut self, r: &SecretKeyRef) -> PathBuf {
        self.used
            .entry(r.name.clone())
            .or_default()
            .insert(r.key.clone());
        pod_path(self.windows, &format!("{SECRETS_DIR}/{}/{}", r.name, r.key)).into()
    }
}

/// Where each part of a rendered config came from in the LogSource, so a mistake the collector's
/// checks find is reported at the field a user changes.
#[derive(Debug)]
struct SpecLayout<'a> {
    spec: &'a LogSourceSpec,
}

impl Layout for SpecLayout<'_> {
    fn top(&self) -> At {
        At::new("spec").moved("name", "metadata.name")
    }
    fn source(&self, kind: &str) -> At {
        At::new(format!("spec.{kind}"))
            .moved("startAt", "spec.startAt")
            .moved("lateArrival", "spec.lateArrival")
            .moved("accountKeyFile", format!("spec.{kind}.accountKey"))
            .moved("sasTokenFile", format!("spec.{kind}.sasToken"))
            .moved(
                "connectionStringFile",
                format!("spec.{kind}.connectionString"),
            )
            .moved("sharing", "spec.replicas")
    }
    fn azure(&self) -> At {
        At::new("spec").moved("caFile", "spec.endpoints.ca").moved(
            "credential.clientSecret.secretFile",
            "spec.credential.clientSecret.secret",
        )
    }
    fn output(&self, index: usize, kind: &str) -> At {
        let written = self.spec.outputs.get(index);
        let kind = if written.is_some_and(|o| o.forwarder.is_some()) {
            "forwarder"
        } else {
            kind
        };
        let base = format!("spec.outputs[{index}].{kind}");
        At::new(base.clone())
            .moved("tls.caFile", format!("{base}.tls.ca"))
            .moved(
                "tls.certFile",
                format!("{base}.tls.clientCertificateSecret"),
            )
            .moved("tls.keyFile", format!("{base}.tls.clientCertificateSecret"))
            .moved("directory", format!("{base}.volume"))
    }
    fn pipeline(&self) -> At {
        // Of the pipeline, a LogSource sets only pollInterval, at the top of its spec.
        At::new("spec")
    }
    fn checkpoint(&self) -> At {
        At::new("spec.collector")
    }
}

/// Where reading starts and how late records may come, as the spec says them for every source.
#[derive(Debug, Clone, Copy)]
struct Window {
    start_at: Option<StartAt>,
    late_arrival: Option<Duration>,
}

impl Window {
    /// Refuses a `startAt` or `lateArrival` the source has no use for.
    fn unused(&self, kind: &str, start_at: bool, late_arrival: bool, errors: &mut Errors) {
        if !start_at && self.start_at.is_some() {
            errors.add(
                "spec.startAt",
                format!("the {kind} source has no start time; remove startAt"),
            );
        }
        if !late_arrival && self.late_arrival.is_some() {
            errors.add(
                "spec.lateArrival",
                format!("the {kind} source does not wait for late records; remove lateArrival"),
            );
        }
    }
}

/// The one source the spec sets, as the collector's config.
fn source_config(
    spec: &LogSourceSpec,
    secrets: &mut SecretFiles,
    errors: &mut Errors,
) -> Option<SourceConfig> {
    let window = Window {
        start_at: spec
            .start_at
            .as_ref()
            .and_then(|text| errors.check("spec.startAt", StartAt::try_from(text.clone()))),
        late_arrival: spec
            .late_arrival
            .as_ref()
            .and_then(|text| errors.check("spec.lateArrival", parse_duration(text))),
    };
    let start_at = window.start_at.unwrap_or_default();
    let late_arrival = |default: Duration| window.late_arrival.unwrap_or(default);
    // In the order of SourceConfig::KINDS, so that messages name them in that order.
    let mut set: Vec<SourceConfig> = [
        spec.wad.as_ref().map(|wad| {
            let mut c = WadConfig::new(wad.account.clone());
            c.table = wad.table.clone().unwrap_or(c.table);
            c.endpoint = wad.endpoint.clone();
            c.account_key_file = wad.account_key.as_ref().map(|r| secrets.file(r));
            c.sas_token_file = wad.sas_token.as_ref().map(|r| secrets.file(r));
            c.start_at = start_at;
            c.late_arrival = late_arrival(c.late_arrival);
            c.parallel_queries = wad.parallel_queries.map_or(c.parallel_queries, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            });
            SourceConfig::Wad(c)
        }),
        spec.diagnostic_logs.as_ref().map(|logs| {
            let mut c = DiagnosticLogsConfig::new(logs.account.clone());
            c.endpoint = logs.endpoint.clone();
            c.account_key_file = logs.account_key.as_ref().map(|r| secrets.file(r));
            c.sas_token_file = logs.sas_token.as_ref().map(|r| secrets.file(r));
            c.categories = logs.categories.clone();
            c.activity_logs = logs.activity_logs.unwrap_or(false);
            c.subscriptions = logs.subscriptions.clone();
            c.resource_groups = logs.resource_groups.clone();
            c.start_at = start_at;
            c.late_arrival = late_arrival(c.late_arrival);
            SourceConfig::DiagnosticLogs(c)
        }),
        spec.event_hubs.as_ref().map(|hub| {
            window.unused("eventHubs", true, false, errors);
            let mut c = EventHubsConfig::new(hub.hub.clone());
            c.namespace = hub.namespace.clone();
            c.endpoint = hub.endpoint.clone();
            c.consumer_group = hub.consumer_group.clone().unwrap_or(c.consumer_group);
            c.connection_string_file = hub.connection_string.as_ref().map(|r| secrets.file(r));
            c.prefetch = hub.prefetch.unwrap_or(c.prefetch);
            c.start_at = start_at;
            SourceConfig::EventHubs(c)
        }),
        spec.activity_log.as_ref().map(|activity| {
            let mut c = ActivityLogConfig::default();
            c.subscriptions = activity.subscriptions.clone();
            c.resource_groups = activity.resource_groups.clone();
            c.categories = activity.categories.clone();
            c.start_at = start_at;
            c.late_arrival = late_arrival(c.late_arrival);
            SourceConfig::ActivityLog(c)
        }),
        spec.security_alerts.as_ref().map(|alerts| {
            window.unused("securityAlerts", true, false, errors);
            SourceConfig::SecurityAlerts(SecurityAlertsConfig {
                subscriptions: alerts.subscriptions.clone(),
                start_at,
                ..SecurityAlertsConfig::default()
            })
        }),
        spec.entra_audit.as_ref().map(|entra| {
            let mut c = EntraAuditConfig::default();
            if !entra.logs.is_empty() {
                c.logs = entra.logs.clone();
            }
            c.start_at = start_at;
            c.late_arrival = late_arrival(c.late_arrival);
            SourceConfig::EntraAudit(c)
        }),
        spec.simulate.as_ref().map(|simulate| {
            window.unused("simulate", false, false, errors);
            let mut c = SimulateConfig::default();
            c.rate = simulate.rate;
            c.count = simulate.count;
            c.seed = simulate.seed.unwrap_or(c.seed);
            SourceConfig::Simulate(c)
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    if set.len() > 1 {
        let kinds: Vec<&str> = set.iter().map(SourceConfig::type_name).collect();
        errors.add(
            &format!("spec.{}", kinds[1]),
            format!(
                "a LogSource reads one source, but {} are set; make one LogSource per source",
                kinds.join(" and ")
            ),
        );
        return None;
    }
    let source = set.pop();
    if source.is_none() {
        errors.add(
            "spec",
            format!("set one source: one of {}", SourceConfig::KINDS.join(", ")),
        );
    }
    source
}

/// The collector's `azure` block: cloud, endpoints, CA and credential; `None` when the spec sets
/// none of them.
fn azure_config(
    spec: &LogSourceSpec,
    secrets: &mut SecretFiles,
    workload_identity: &mut Option<WorkloadIdentity>,
    errors: &mut Errors,
) -> Option<AzureConfig> {
    if spec.cloud.is_none() && spec.endpoints.is_none() && spec.credential.is_none() {
        return None;
    }
    let mut azure = AzureConfig {
        cloud: spec.cloud.unwrap_or_default(),
        ..AzureConfig::default()
    };
    if let Some(endpoints) = &spec.endpoints {
        azure.endpoints = EndpointOverrides {
            authority_host: endpoints.authority_host.clone(),
            resource_manager: endpoints.resource_manager.clone(),
            graph: endpoints.graph.clone(),
        };
        azure.ca_file = endpoints.ca.as_ref().map(|ca| secrets.file(ca));
    }
    azure.credential = match &spec.credential {
        None => None,
        Some(Credential {
            workload_identity: Some(wi),
            managed_identity: None,
            client_secret: None,
        }) => {
            *workload_identity = Some(wi.clone());
            Some(CredentialConfig::WorkloadIdentity(
                WorkloadIdentityCredentialConfig {
                    tenant_id: Some(wi.tenant_id.clone()),
                    client_id: Some(wi.client_id.clone()),
                    token_file: Some(
                        pod_path(
                            secrets.windows,
                            &format!("{FEDERATED_TOKEN_DIR}/{FEDERATED_TOKEN_FILE}"),
                        )
                        .into(),
                    ),
                },
            ))
        }
        Some(Credential {
            workload_identity: None,
            managed_identity: Some(mi),
            client_secret: None,
        }) => Some(CredentialConfig::ManagedIdentity(
            ManagedIdentityCredentialConfig {
                client_id: mi.client_id.clone(),
            },
        )),
        Some(Credential {
            workload_identity: None,
            managed_identity: None,
            client_secret: Some(cs),
        }) => Some(CredentialConfig::ClientSecret(
            ClientSecretCredentialConfig {
                tenant_id: cs.tenant_id.clone(),
                client_id: cs.client_id.clone(),
                secret_file: secrets.file(&cs.secret),
            },
        )),
        Some(_) => {
            errors.add(
                "spec.credential",
                "set exactly one of workloadIdentity, managedIdentity or clientSecret",
            );
            None
        }
    };
    Some(azure)
}

/// A syslog output as the collector's config, its TLS files mounted from Secrets.
fn syslog_config(syslog: &SyslogOutput, secrets: &mut SecretFiles) -> SyslogOutputConfig {
    let mut c = SyslogOutputConfig::new(syslog.address.clone());
    c.name = syslog.name.clone();
    c.transport = syslog.transport.unwrap_or(c.transport);
    c.protocol = syslog.protocol.unwrap_or(c.protocol);
    c.framing = syslog.framing.unwrap_or(c.framing);
    c.body = syslog.body.unwrap_or(c.body);
    c.facility = syslog.facility.unwrap_or(c.facility);
    c.app_name = syslog.app_name.clone().unwrap_or(c.app_name);
    c.tls = syslog.tls.as_ref().map(|tls| {
        let mut client_file = |key: &str| {
            tls.client_certificate_secret.as_ref().map(|secret| {
                secrets.file(&SecretKeyRef {
                    name: secret.clone(),
                    key: key.into(),
                })
            })
        };
        let cert_file = client_file("tls.crt");
        let key_file = client_file("tls.key");
        TlsConfig {
            ca_file: tls.ca.as_ref().map(|ca| secrets.file(ca)),
            cert_file,
            key_file,
            server_name: tls.server_name.clone(),
        }
    });
    c
}

/// The name of the `index`th output, a forwarder, which also names its sidecar container.
fn forwarder_name(
    forwarder: &ForwarderOutput,
    index: usize,
    windows: bool,
    path: &str,
    errors: &mut Errors,
) -> String {
    if windows {
        errors.add(
            path,
            "a forwarder sidecar cannot run beside a windowsEventLog output: that collector runs \
             in a Windows pod; make a separate LogSource for the forwarder",
        );
    }
    let name = forwarder
        .name
        .clone()
        .unwrap_or_else(|| format!("forwarder-{index}"));
    if !is_dns_label(&name) || name == "collector" {
        errors.add(
            &format!("{path}.name"),
            format!(
                "{name:?} names the sidecar container: use at most 63 lowercase letters, digits \
                 and '-', starting and ending with a letter or digit, other than \"collector\""
            ),
        );
    }
    if let Some(config) = &forwarder.config {
        let at = config.mount_path.as_deref().unwrap_or("/");
        if config.config_map.is_empty() || !at.starts_with('/') {
            errors.add(
                &format!("{path}.config"),
                "name the ConfigMap in configMap, and give mountPath as an absolute path",
            );
        }
    }
    name
}

/// The suffix of a collector's checkpoint ConfigMap; no LogSource name may end with it, so no
/// LogSource's config ConfigMap (`azlog-<name>`) can be another's checkpoint.
const CHECKPOINT_SUFFIX: &str = "-checkpoint";

/// A LogSource's name becomes its children's names and the value of the label its pods carry:
/// it must fit a label value (63 characters) and not end like a checkpoint's name.
fn check_name(name: &str, errors: &mut Errors) {
    if name.len() > 63 {
        errors.add(
            "metadata.name",
            format!(
                "{name:?} is {} characters; a LogSource name labels its collector's pods, so at \
                 most 63",
                name.len()
            ),
        );
    }
    if name.ends_with(CHECKPOINT_SUFFIX) {
        errors.add(
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

/// The collector's retention settings for a file output written at `path`.
fn retention(spec: Option<&FileRetention>, path: &str, errors: &mut Errors) -> Retention {
    let spec = spec.cloned().unwrap_or_default();
    Retention {
        max_bytes: Some(spec.max_bytes.unwrap_or(DEFAULT_RETAINED_BYTES)),
        max_age: spec
            .max_age
            .as_deref()
            .and_then(|age| errors.check(&format!("{path}.maxAge"), parse_duration(age))),
    }
}

/// The volume and directory the `index`th output writes its files to.
fn file_volume(index: usize, output_name: &str, volume: FileVolume) -> FileVolumeMount {
    FileVolumeMount {
        volume_name: format!("files-{index}"),
        directory: format!("{FILES_DIR}/{output_name}"),
        volume,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azlog_config::AsWritten;
    use serde_json::{Value, json};

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
        assert_eq!(config.validate_settings(&AsWritten), []);
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
        // Typed values leave out what is unset instead of writing it as null.
        assert!(!yaml.contains("null"), "{yaml}");
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
    fn an_event_hub_read_by_three_replicas_shares_its_partitions_through_leases() {
        let spec = |replicas: i32| {
            json!({
                "eventHubs": {"namespace": "contoso-logs", "hub": "insights-logs",
                              "connectionString": {"name": "hub", "key": "listen"}},
                "replicas": replicas,
                "outputs": [{"syslog": {"address": "qradar.siem:514"}}]
            })
        };
        let rendered = render(&log_source(spec(3))).expect("renders");
        assert_eq!(rendered.replicas, 3);
        let value: Value = serde_yaml::from_str(&rendered.config_yaml).expect("yaml");
        let config: Config = serde_json::from_value(value).expect("a collector config");
        let SourceConfig::EventHubs(hub) = &config.source else {
            panic!("an eventHubs source: {}", rendered.config_yaml);
        };
        assert_eq!(
            hub.sharing,
            Some(SharingConfig::new(
                "siem".into(),
                "azlog-prod-activity".into()
            ))
        );
        assert_eq!(
            hub.connection_string_file.as_deref(),
            Some(std::path::Path::new("/var/run/secrets/azlog/hub/listen"))
        );
        // Each replica keeps its own checkpoint; the Leases hand positions on.
        assert_eq!(config.checkpoint.kubernetes, None);
        let one = render(&log_source(spec(1))).expect("renders");
        assert!(!one.config_yaml.contains("sharing"), "{}", one.config_yaml);

        let mut other = spec(2);
        other["activityLog"] = json!({});
        other.as_object_mut().map(|o| o.remove("eventHubs"));
        other["subscriptionId"] = json!("00000000-0000-0000-0000-000000000001");
        assert_eq!(
            problems(other),
            [
                "spec.replicas: only an eventHubs source is read by several collectors; the activityLog source has one reader, remove replicas"
            ]
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
                "spec: set one source: one of wad, diagnosticLogs, eventHubs, activityLog, securityAlerts, entraAudit, simulate"
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
