//! `outputs[].windowsEventLog`: events written to the Windows event log of the collector's machine.

use serde::{Deserialize, Serialize};

use crate::path::{At, Problems};

/// Events written to the Windows event log of the machine the collector runs on, where Windows
/// Event Forwarding, WinCollect or a Splunk/ArcSight agent already picks them up. Windows only: on
/// Kubernetes the operator runs such a collector as a HostProcess container on a Windows node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WindowsEventLogOutputConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The event source the events are reported under. They go to the log the source is registered
    /// in (register it with `New-EventLog -LogName <log> -Source <source>`), else to Application.
    pub source: String,
    /// What each event's text holds.
    pub body: WindowsEventBody,
}

impl Default for WindowsEventLogOutputConfig {
    fn default() -> Self {
        WindowsEventLogOutputConfig {
            name: None,
            source: "azlog".into(),
            body: WindowsEventBody::default(),
        }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WindowsEventBody {
    /// Windows event XML as in the Forwarded Events log (WAD rows keep their RawXml).
    #[default]
    EventXml,
    /// The Azure record as one line of JSON.
    Json,
    /// The human-readable message.
    Message,
}

impl WindowsEventLogOutputConfig {
    pub(crate) fn validate(&self, at: &At, problems: &mut Problems) {
        let source = &self.source;
        if source.is_empty() || source.len() > 200 || source.contains('\\') {
            problems.add(
                at,
                "source",
                format!("must be 1 to 200 characters without a backslash, got {source:?}"),
            );
        }
    }
}
