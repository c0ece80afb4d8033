//! `outputs[].file`: NDJSON or JSON-LD files in azlog's folder layout, for file forwarders.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::JsonFormat;
use crate::path::{At, Problems};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileOutputConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Root directory; events land in per-kind folders below it (AzureResourceManagerJson, …).
    pub directory: PathBuf,
    #[serde(default)]
    pub format: JsonFormat,
    /// Finish a file once it reaches this many bytes.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Finish a file once it is this old, so forwarders see quiet sources too.
    #[serde(default = "default_max_file_age", with = "humantime_serde")]
    pub max_file_age: Duration,
    /// fsync before reporting events delivered, so they survive a power cut and not only a crash.
    /// Batches that arrive together share one fsync.
    #[serde(default = "yes")]
    pub fsync: bool,
    /// Deletes finished files, oldest first, so the volume never fills; absent keeps every file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// How long finished files are kept. The newest finished file of each folder is always kept: the
/// output reads its last lines back after a crash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retention {
    /// Delete the oldest finished files while all of them together hold more bytes than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Delete finished files older than this.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub max_age: Option<Duration>,
}

fn default_max_file_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_max_file_age() -> Duration {
    Duration::from_secs(300)
}

fn yes() -> bool {
    true
}

impl FileOutputConfig {
    /// NDJSON files below `directory`, finished at the default size and age, kept forever.
    pub fn new(directory: PathBuf) -> FileOutputConfig {
        FileOutputConfig {
            name: None,
            directory,
            format: JsonFormat::default(),
            max_file_bytes: default_max_file_bytes(),
            max_file_age: default_max_file_age(),
            fsync: yes(),
            retention: None,
        }
    }

    pub(crate) fn validate(&self, at: &At, problems: &mut Problems) {
        if self.max_file_bytes < 4096 {
            problems.add(
                at,
                "maxFileBytes",
                format!("must be at least 4096, got {}", self.max_file_bytes),
            );
        }
        if self.max_file_age < Duration::from_secs(1) {
            problems.add(at, "maxFileAge", "must be at least 1s");
        }
        let retention = self.retention.clone().unwrap_or_default();
        if let Some(max) = retention.max_bytes
            && max < 2 * self.max_file_bytes
        {
            problems.add(
                at,
                "retention.maxBytes",
                format!(
                    "must be at least twice maxFileBytes ({}), got {max}: the files being written and the newest finished ones must fit",
                    2 * self.max_file_bytes
                ),
            );
        }
        if retention.max_age.is_some_and(|age| age < self.max_file_age) {
            problems.add(
                at,
                "retention.maxAge",
                "must be at least maxFileAge: a file would be deleted as soon as it is finished",
            );
        }
    }
}
