//! Where events go: the outputs of a collector, each kind in its own module.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::path::{Files, Layout, Problems};

pub mod file;
pub mod syslog;
pub mod windows_event_log;

use file::FileOutputConfig;
use syslog::{SyslogBody, SyslogOutputConfig, SyslogProtocol, Transport};
use windows_event_log::{WindowsEventBody, WindowsEventLogOutputConfig};

/// One output. Several of the same type may be listed; give them distinct `name`s.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum OutputConfig {
    File(FileOutputConfig),
    Syslog(SyslogOutputConfig),
    Stdout(StdoutOutputConfig),
    WindowsEventLog(WindowsEventLogOutputConfig),
}

impl OutputConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            OutputConfig::File(_) => "file",
            OutputConfig::Syslog(_) => "syslog",
            OutputConfig::Stdout(_) => "stdout",
            OutputConfig::WindowsEventLog(_) => "windowsEventLog",
        }
    }

    /// Where the output sends events, in words for logs and `validate`.
    pub fn target(&self) -> String {
        match self {
            OutputConfig::File(c) => {
                format!("{} files below {}", c.format.label(), c.directory.display())
            }
            OutputConfig::Syslog(c) => format!(
                "{} over {} to {}, {} bodies",
                match c.protocol {
                    SyslogProtocol::Rfc5424 => "RFC 5424",
                    SyslogProtocol::Rfc3164 => "RFC 3164",
                },
                match c.transport {
                    Transport::Udp => "UDP",
                    Transport::Tcp => "TCP",
                    Transport::Tls => "TLS",
                },
                c.address,
                match c.body {
                    SyslogBody::Json => "JSON",
                    SyslogBody::Message => "plain-text",
                    SyslogBody::Cef => "CEF",
                    SyslogBody::Leef => "LEEF",
                    SyslogBody::EventXml => "Windows event XML",
                }
            ),
            OutputConfig::Stdout(c) => format!("{} lines on stdout", c.format.label()),
            OutputConfig::WindowsEventLog(c) => format!(
                "the Windows event log under the source {}, {} bodies",
                c.source,
                match c.body {
                    WindowsEventBody::EventXml => "Windows event XML",
                    WindowsEventBody::Json => "JSON",
                    WindowsEventBody::Message => "plain-text",
                }
            ),
        }
    }

    /// The name used in metrics and logs: the configured one, or `<type>-<index>`.
    pub fn name(&self, index: usize) -> String {
        let configured = match self {
            OutputConfig::File(c) => &c.name,
            OutputConfig::Syslog(c) => &c.name,
            OutputConfig::Stdout(c) => &c.name,
            OutputConfig::WindowsEventLog(c) => &c.name,
        };
        configured
            .clone()
            .unwrap_or_else(|| format!("{}-{index}", self.type_name()))
    }
}

/// Checks every output, and that no two share a name or write the same files.
pub(crate) fn validate_all(
    outputs: &[OutputConfig],
    layout: &impl Layout,
    files: Files,
    problems: &mut Problems,
) {
    let mut names = HashMap::new();
    let mut directories = HashMap::new();
    for (i, output) in outputs.iter().enumerate() {
        let at = layout.output(i, output.type_name());
        let name = output.name(i);
        if let Some(first) = names.insert(name.clone(), i) {
            problems.add(
                &at,
                "name",
                format!(
                    "{name:?} is already the name of outputs[{first}]; output names must be unique"
                ),
            );
        }
        match output {
            OutputConfig::File(file) => {
                if let Some(first) = directories.insert((file.directory.clone(), file.format), i) {
                    problems.add(
                        &at,
                        "directory",
                        format!(
                            "outputs[{first}] already writes {} to {}",
                            file.format.label(),
                            file.directory.display()
                        ),
                    );
                }
                file.validate(&at, problems);
            }
            OutputConfig::Syslog(syslog) => syslog.validate(&at, files, problems),
            OutputConfig::Stdout(_) => {}
            OutputConfig::WindowsEventLog(w) => w.validate(&at, problems),
        }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JsonFormat {
    /// One JSON object per line: the Azure record with an `azlog` member added.
    #[default]
    Ndjson,
    /// One JSON-LD node per line, with an inline `@context`.
    Jsonld,
}

impl JsonFormat {
    /// The format's name, for people.
    pub fn label(self) -> &'static str {
        match self {
            JsonFormat::Ndjson => "NDJSON",
            JsonFormat::Jsonld => "JSON-LD",
        }
    }
}

/// Events written to the collector's stdout, one line each.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StdoutOutputConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub format: StdoutFormat,
}

impl StdoutFormat {
    /// The format's name, for people.
    pub fn label(self) -> &'static str {
        match self {
            StdoutFormat::Ndjson => JsonFormat::Ndjson.label(),
            StdoutFormat::Jsonld => JsonFormat::Jsonld.label(),
            StdoutFormat::Summary => "summary",
        }
    }
}

/// How the stdout output writes an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StdoutFormat {
    /// As the `ndjson` file format: the Azure record with an `azlog` member.
    #[default]
    Ndjson,
    /// As the `jsonld` file format.
    Jsonld,
    /// One short line for people: time, severity, kind, what happened, who, outcome.
    Summary,
}
