//! The collector's configuration, and its report to Kubernetes.
//!
//! The same YAML is written by hand for a standalone collector and built by the operator, as typed
//! values, from a LogSource. Loading reports the exact field path of every mistake and what is
//! allowed there; unknown fields are errors, because a misspelt option silently ignored is a
//! security hole in a log shipper.
//!
//! This crate has no network or Azure dependency: the operator links it to render configs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod azure;
pub mod checkpoint;
pub mod health;
pub mod output;
pub mod path;
pub mod pipeline;
pub mod report;
pub mod sharing;
pub mod source;
pub mod text;

pub use azure::{
    AzureConfig, ClientSecretCredentialConfig, Cloud, CredentialConfig, EndpointOverrides,
    ManagedIdentityCredentialConfig, WorkloadIdentityCredentialConfig,
};
pub use checkpoint::{CheckpointConfig, KubernetesCheckpointConfig};
pub use health::HealthConfig;
pub use output::file::{FileOutputConfig, Retention};
pub use output::syslog::{
    Facility, Framing, MAX_UDP_PAYLOAD, SyslogBody, SyslogOutputConfig, SyslogProtocol, TlsConfig,
    Transport,
};
pub use output::windows_event_log::{WindowsEventBody, WindowsEventLogOutputConfig};
pub use output::{JsonFormat, OutputConfig, StdoutFormat, StdoutOutputConfig};
pub use path::{AsWritten, At, FieldError, Files, Layout};
pub use pipeline::PipelineConfig;
pub use sharing::SharingConfig;
pub use source::activity_log::ActivityLogConfig;
pub use source::diagnostic_logs::DiagnosticLogsConfig;
pub use source::entra_audit::{EntraAuditConfig, EntraLog};
pub use source::event_hubs::EventHubsConfig;
pub use source::security_alerts::{AlertChanges, SecurityAlertsConfig};
pub use source::simulate::{SimulateConfig, SimulateMix};
pub use source::wad::{MAX_PARALLEL_QUERIES, WadConfig};
pub use source::{SourceConfig, StartAt};
pub use text::{is_guid, parse_duration, split_host_port};

use path::Problems;

/// A whole collector: one source, several outputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Friendly source name carried into every event (azlog's `<name>` in `<name>.<subscriptionId>`).
    pub name: String,
    /// The Azure subscription the source reads, carried into events that do not name their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    pub source: SourceConfig,
    /// How to reach Azure: cloud, endpoints and credential. Required by the activityLog,
    /// securityAlerts and entraAudit sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureConfig>,
    pub outputs: Vec<OutputConfig>,
    /// Directory for the checkpoint and the dead-letter file.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub health: HealthConfig,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("azlog-state")
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {origin}{}", location.map(|(l, c)| format!(" (line {l}, column {c})")).unwrap_or_default())]
    Parse {
        origin: String,
        location: Option<(usize, usize)>,
        error: FieldError,
    },
    #[error("invalid config {origin}: {} problem(s)", errors.len())]
    Invalid {
        origin: String,
        errors: Vec<FieldError>,
    },
}

impl ConfigError {
    /// Every field error, for printing one per line.
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            ConfigError::Read { .. } => Vec::new(),
            ConfigError::Parse { error, .. } => vec![error.clone()],
            ConfigError::Invalid { errors, .. } => errors.clone(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates YAML. `origin` names the text in messages (a file path, a ConfigMap).
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        // YAML is read into a JSON value first: serde_yaml only accepts `!tag` syntax for enums, while
        // users, and the LogSource CRD this mirrors, write one-of choices as single-key maps.
        let value: serde_json::Value =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
                origin: origin.to_owned(),
                location: e.location().map(|l| (l.line(), l.column())),
                error: FieldError {
                    path: "(document)".to_owned(),
                    message: format!("YAML syntax error: {}", explain_serde(&e.to_string())),
                },
            })?;
        let config: Config = serde_path_to_error::deserialize(value).map_err(|err| {
            let path = match err.path().to_string() {
                p if p == "." => "(top level)".to_owned(),
                p => p,
            };
            ConfigError::Parse {
                origin: origin.to_owned(),
                location: None,
                error: FieldError {
                    path,
                    message: explain_serde(&err.into_inner().to_string()),
                },
            }
        })?;
        let errors = config.validate();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                errors,
            })
        }
    }

    /// Checks what the types cannot: ranges, consistency, files that must exist.
    pub fn validate(&self) -> Vec<FieldError> {
        self.check(Files::MustExist, &AsWritten)
    }

    /// Everything [`Config::validate`] checks except that the files named exist, each mistake
    /// reported where `layout` says its part was written.
    pub fn validate_settings(&self, layout: &impl Layout) -> Vec<FieldError> {
        self.check(Files::Elsewhere, layout)
    }

    fn check(&self, files: Files, layout: &impl Layout) -> Vec<FieldError> {
        let mut problems = Problems::default();
        let top = layout.top();
        if self.name.trim().is_empty() {
            problems.add(
                &top,
                "name",
                "must not be empty: it names the source in every event",
            );
        }
        let azure = layout.azure();
        let has_credential = self.azure.as_ref().is_some_and(|a| a.credential.is_some());
        let context = source::Context {
            subscription_id: self.subscription_id.as_deref(),
            top: &top,
            has_credential,
            files,
        };
        let kind = self.source.type_name();
        self.source
            .validate(&layout.source(kind), &context, &mut problems);
        if let Some(config) = &self.azure {
            config.validate(&azure, files, &mut problems);
        }
        if self.source.needs_credential() && !has_credential {
            problems.add(
                &azure,
                "credential",
                format!(
                    "the {kind} source reads Azure's APIs: add an azure block with a credential (clientSecret, workloadIdentity or managedIdentity)"
                ),
            );
        }
        if self.outputs.is_empty() {
            problems.add(
                &top,
                "outputs",
                "list at least one output (file, syslog or stdout)",
            );
        }
        output::validate_all(&self.outputs, layout, files, &mut problems);
        self.pipeline.validate(&layout.pipeline(), &mut problems);
        self.checkpoint
            .validate(&layout.checkpoint(), &self.pipeline, &mut problems);
        problems.into_vec()
    }

    /// The subscriptions a per-subscription source reads.
    pub fn subscriptions<'a>(&'a self, listed: &'a [String]) -> Vec<String> {
        if listed.is_empty() {
            self.subscription_id.iter().cloned().collect()
        } else {
            listed.to_vec()
        }
    }
}

impl Config {
    /// The configuration with every default filled in, as YAML in the same shape users write.
    pub fn effective_yaml(&self) -> Result<String, String> {
        // Through a JSON value, so one-of choices come out as single-key maps rather than YAML tags.
        let value = serde_json::to_value(self).map_err(|e| e.to_string())?;
        serde_yaml::to_string(&value).map_err(|e| e.to_string())
    }
}

/// Reads any config fragment from YAML, with one-of choices written as single-key maps.
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let value: serde_json::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(value).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

/// serde's messages are accurate but terse; add what to do where we can.
fn explain_serde(message: &str) -> String {
    // serde_yaml appends " at line L column C"; the location is reported separately.
    let message = match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    if message.starts_with("unknown field") {
        format!("{message}; remove it or fix its spelling")
    } else if message.starts_with("unknown variant") {
        format!("{message}; pick one of those")
    } else if message.starts_with("missing field") {
        format!("{message}; it is required here")
    } else {
        message.to_owned()
    }
}

#[cfg(test)]
mod tests;
