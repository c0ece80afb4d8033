//! The `security_alerts` source: Microsoft Defender for Cloud alerts per subscription.
//!
//! The alerts API has no `$filter`: every poll lists all alerts and azlog filters by time itself.
//! Each alert's id for dedup is its name and status, so a status change (Active → Resolved) is
//! delivered as a new event while a re-list of the same status is not.

pub mod changes;
pub mod record;
mod resource_graph;

use crate::json::RawJson;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::listing::{Listing, Query};
use crate::azure::Audience;
use crate::azure::client::Api;
use crate::config::{SecurityAlertsConfig, StartAt};
use crate::event::EventKind;
use crate::normalise::RawRecord;

pub(crate) const API_VERSION: &str = "2022-01-01";

pub(crate) const API: Api = Api {
    name: "securityAlerts",
    audience: Audience::ResourceManager,
    forbidden_hint: "give the collector's identity the Reader (or Security Reader) role on the subscription (a SubscriptionAuthorization grants it; its status names what is missing)",
};

/// Where a subscription's alert listing stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertsPosition {
    /// Alerts generated before this are not delivered; None delivers every alert listed.
    since: Option<DateTime<Utc>>,
    /// When the last complete listing started.
    listed: Option<DateTime<Utc>>,
}

impl AlertsPosition {
    /// Whether an alert generated at `time` is delivered.
    pub fn delivers(&self, time: DateTime<Utc>) -> bool {
        self.since.is_none_or(|since| time >= since)
    }
}

#[derive(Debug)]
pub struct SecurityAlerts {
    resource_manager: String,
    start_at: StartAt,
    poll_interval: TimeDelta,
}

impl SecurityAlerts {
    pub fn new(
        config: &SecurityAlertsConfig,
        resource_manager: &str,
        poll_interval: std::time::Duration,
    ) -> SecurityAlerts {
        SecurityAlerts {
            resource_manager: resource_manager.to_owned(),
            start_at: config.start_at,
            poll_interval: TimeDelta::from_std(poll_interval).unwrap_or(TimeDelta::MAX),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertTimes<'a> {
    #[serde(borrow)]
    properties: Option<Times<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Times<'a> {
    #[serde(borrow)]
    time_generated_utc: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    start_time_utc: Option<std::borrow::Cow<'a, str>>,
}

/// The time an alert was generated, when it can be read.
fn generated(raw: &RawJson) -> Option<DateTime<Utc>> {
    let alert: AlertTimes = serde_json::from_str(raw.get()).ok()?;
    let times = alert.properties?;
    let text = times.time_generated_utc.or(times.start_time_utc)?;
    DateTime::parse_from_rfc3339(&text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Listing for SecurityAlerts {
    const KIND: &'static str = "securityAlerts";
    type Position = AlertsPosition;

    /// Every poll lists every alert Azure keeps: their ids are needed for as long as they are
    /// listed.
    fn reread_span(&self) -> Option<std::time::Duration> {
        None
    }

    fn api(&self, _stream: &str) -> Api {
        API
    }

    fn start(&self, _stream: &str, now: DateTime<Utc>) -> AlertsPosition {
        AlertsPosition {
            since: match self.start_at {
                StartAt::Now => Some(now),
                StartAt::Earliest => None,
                StartAt::Time(t) => Some(t),
            },
            listed: None,
        }
    }

    fn plan(
        &self,
        stream: &str,
        position: &AlertsPosition,
        now: DateTime<Utc>,
    ) -> Option<Query<AlertsPosition>> {
        if position
            .listed
            .is_some_and(|listed| now - listed < self.poll_interval)
        {
            return None;
        }
        let url = format!(
            "{}/subscriptions/{stream}/providers/Microsoft.Security/alerts?api-version={API_VERSION}",
            self.resource_manager
        );
        Some(Query::new(
            url,
            AlertsPosition {
                since: position.since,
                listed: Some(now),
            },
        ))
    }

    fn record(&self, _stream: &str, position: &AlertsPosition, raw: RawJson) -> Option<RawRecord> {
        if generated(&raw).is_some_and(|time| !position.delivers(time)) {
            return None;
        }
        // Alerts whose time cannot be read are kept: the normaliser dead-letters them.
        Some(RawRecord {
            kind: EventKind::SecurityAlert,
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
    fn alerts_older_than_the_start_are_filtered_here_because_the_api_cannot() {
        let config: SecurityAlertsConfig =
            crate::config::from_yaml("startAt: 2026-11-01T00:00:00Z\n").expect("config");
        let s = SecurityAlerts::new(&config, "https://arm", std::time::Duration::from_secs(60));
        let now = Utc::now();
        let p = s.start("sub", now);
        let alert = |t: &str| {
            RawJson::parse(format!(
                r#"{{"name":"a","properties":{{"timeGeneratedUtc":"{t}","status":"Active"}}}}"#
            ))
            .expect("json")
        };
        assert!(s.record("sub", &p, alert("2026-10-31T23:59:59Z")).is_none());
        assert!(s.record("sub", &p, alert("2026-11-01T00:00:00Z")).is_some());
        let broken = RawJson::parse(r#"{"name":"b"}"#.into()).expect("json");
        assert!(s.record("sub", &p, broken).is_some());
    }

    #[test]
    fn a_subscription_is_listed_once_per_poll_interval() {
        let config: SecurityAlertsConfig = crate::config::from_yaml("{}").expect("config");
        let s = SecurityAlerts::new(&config, "https://arm", std::time::Duration::from_secs(60));
        let now = Utc::now();
        let query = s.plan("sub-1", &s.start("sub-1", now), now).expect("due");
        let (url, listed) = (query.url, query.then);
        assert_eq!(
            url,
            "https://arm/subscriptions/sub-1/providers/Microsoft.Security/alerts?api-version=2022-01-01"
        );
        assert!(
            s.plan("sub-1", &listed, now + TimeDelta::seconds(30))
                .is_none()
        );
        assert!(
            s.plan("sub-1", &listed, now + TimeDelta::seconds(60))
                .is_some()
        );
    }
}
