//! The `entra_audit` source: Microsoft Graph `auditLogs/directoryAudits` and `auditLogs/signIns`, in
//! time windows with a late-arrival re-read; records are deduplicated on `id`.

pub mod directory_audit;
pub mod sign_in;

use crate::json::RawJson;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use super::listing::{Listing, Query};
use super::window::{Position, Windows};
use crate::azure::client::Api;
use crate::azure::{Audience, encode_query};
use crate::config::{EntraAuditConfig, EntraLog, StartAt};
use crate::event::EventKind;
use crate::normalise::RawRecord;

/// Graph keeps audit logs and sign-ins for 30 days.
const RETENTION: TimeDelta = TimeDelta::days(30);
/// Graph's largest page for audit logs.
const PAGE_SIZE: u32 = 999;

const FORBIDDEN_HINT: &str = "grant the collector's identity the AuditLog.Read.All application permission (a SubscriptionAuthorization with auditLogs: true grants it; its status says what the admin credential lacks)";

#[derive(Debug)]
pub struct EntraAudit {
    graph: String,
    windows: Windows,
    start_at: StartAt,
}

impl EntraAudit {
    pub fn new(
        config: &EntraAuditConfig,
        graph: &str,
        poll_interval: std::time::Duration,
    ) -> EntraAudit {
        EntraAudit {
            graph: graph.to_owned(),
            windows: Windows::new(config.late_arrival, poll_interval, RETENTION),
            start_at: config.start_at,
        }
    }

    pub fn streams(config: &EntraAuditConfig) -> Vec<String> {
        let mut logs = config.logs.clone();
        logs.sort();
        logs.dedup();
        logs.iter().map(|log| log.as_str().to_owned()).collect()
    }
}

fn log_of(stream: &str) -> EntraLog {
    if stream == EntraLog::SignIns.as_str() {
        EntraLog::SignIns
    } else {
        EntraLog::DirectoryAudits
    }
}

impl Listing for EntraAudit {
    const KIND: &'static str = "entraAudit";
    type Position = Position;

    fn reread_span(&self) -> Option<std::time::Duration> {
        Some(self.windows.reread_span())
    }

    fn api(&self, stream: &str) -> Api {
        Api {
            name: log_of(stream).as_str(),
            audience: Audience::Graph,
            forbidden_hint: FORBIDDEN_HINT,
        }
    }

    fn start(&self, _stream: &str, now: DateTime<Utc>) -> Position {
        self.windows.start(self.start_at, now)
    }

    fn plan(
        &self,
        stream: &str,
        position: &Position,
        now: DateTime<Utc>,
    ) -> Option<Query<Position>> {
        let window = self.windows.next(position, now)?;
        let field = match log_of(stream) {
            EntraLog::DirectoryAudits => "activityDateTime",
            EntraLog::SignIns => "createdDateTime",
        };
        // Graph compares DateTimeOffset literals unquoted.
        let filter = format!(
            "{field} ge {} and {field} le {}",
            window.start.to_rfc3339_opts(SecondsFormat::Secs, true),
            window.end.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        let url = format!(
            "{}/v1.0/auditLogs/{stream}?$filter={}&$top={PAGE_SIZE}",
            self.graph,
            encode_query(&filter)
        );
        Some(window.query(url))
    }

    fn record(&self, stream: &str, _position: &Position, raw: RawJson) -> Option<RawRecord> {
        let kind = match log_of(stream) {
            EntraLog::DirectoryAudits => EventKind::DirectoryAudit,
            EntraLog::SignIns => EventKind::SignIn,
        };
        Some(RawRecord {
            kind,
            raw,
            id_hint: None,
            wad_columns: None,
            schema: crate::normalise::Schema::Api,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_log_is_queried_on_its_own_time_field() {
        let config: EntraAuditConfig =
            crate::config::from_yaml("logs: [signIns, directoryAudits, signIns]\n")
                .expect("config");
        assert_eq!(
            EntraAudit::streams(&config),
            vec!["directoryAudits", "signIns"]
        );
        let s = EntraAudit::new(
            &config,
            "https://graph.microsoft.com",
            std::time::Duration::from_secs(30),
        );
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let p = s.start("signIns", now - TimeDelta::minutes(1));
        let url = s.plan("signIns", &p, now).expect("due").url;
        assert_eq!(
            url,
            "https://graph.microsoft.com/v1.0/auditLogs/signIns?$filter=createdDateTime%20ge%202026-11-22T11%3A59%3A00Z%20and%20createdDateTime%20le%202026-11-22T12%3A00%3A00Z&$top=999"
        );
        let url = s.plan("directoryAudits", &p, now).expect("due").url;
        assert!(url.contains("auditLogs/directoryAudits?$filter=activityDateTime%20ge%20"));
    }
}
