//! `source.wad`: rows of a VM diagnostics table (WAD / LAD) in a storage account.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::storage::StorageFields;
use super::{Context, StartAt, validate_window};
use crate::path::{At, Problems};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WadConfig {
    /// The storage account the diagnostics extension writes to.
    pub account: String,
    /// WADWindowsEventLogsTable (default), WADLogsTable, WADPerformanceCountersTable,
    /// WADDiagnosticInfrastructureLogsTable, or a Linux diagnostics table by name.
    #[serde(default = "default_table")]
    pub table: String,
    /// Table endpoint; absent means https://<account>.table.<the cloud's storage suffix>. Plain http
    /// is accepted for an emulator on loopback only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// File holding the account key (a mounted Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key_file: Option<PathBuf>,
    /// File holding a SAS token with read and list permission on the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_token_file: Option<PathBuf>,
    #[serde(default)]
    pub start_at: StartAt,
    /// How far behind the storage server's clock a read window ends, so writes still in flight
    /// land in a window not yet read. Rows are windowed by the time the server stored them, so a
    /// row the agent uploads late into an old minute's partition is still read, once.
    #[serde(default = "default_late_arrival", with = "humantime_serde")]
    pub late_arrival: Duration,
    /// A backlog window (more than two poll intervals behind) is cut into this many slices of
    /// server time, read at once and delivered in order: one table partition serves only about
    /// 2,000 entities a second. 1 reads one query at a time.
    #[serde(default = "default_parallel_queries")]
    pub parallel_queries: usize,
}

fn default_table() -> String {
    "WADWindowsEventLogsTable".to_owned()
}

fn default_late_arrival() -> Duration {
    Duration::from_secs(60)
}

fn default_parallel_queries() -> usize {
    4
}

/// Most slices a wad backlog is read in at once; each holds up to two pages in memory.
pub const MAX_PARALLEL_QUERIES: usize = 8;

impl WadConfig {
    /// The default table of `account`, with no key or SAS.
    pub fn new(account: String) -> WadConfig {
        WadConfig {
            account,
            table: default_table(),
            endpoint: None,
            account_key_file: None,
            sas_token_file: None,
            start_at: StartAt::default(),
            late_arrival: default_late_arrival(),
            parallel_queries: default_parallel_queries(),
        }
    }

    pub(crate) fn validate(&self, at: &At, context: &Context<'_>, problems: &mut Problems) {
        StorageFields {
            account: &self.account,
            endpoint: self.endpoint.as_deref(),
            key_file: self.account_key_file.as_deref(),
            sas_file: self.sas_token_file.as_deref(),
        }
        .validate(at, context, problems);
        let table = &self.table;
        let valid_table = (3..=63).contains(&table.len())
            && table.bytes().all(|b| b.is_ascii_alphanumeric())
            && table
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic());
        if !valid_table {
            problems.add(
                at,
                "table",
                format!(
                    "{table:?} is not a table name (3 to 63 letters and digits, starting with a letter)"
                ),
            );
        }
        validate_window(self.start_at, self.late_arrival, at, problems);
        if !(1..=MAX_PARALLEL_QUERIES).contains(&self.parallel_queries) {
            problems.add(
                at,
                "parallelQueries",
                format!(
                    "must be between 1 and {MAX_PARALLEL_QUERIES}, got {}",
                    self.parallel_queries
                ),
            );
        }
    }
}
