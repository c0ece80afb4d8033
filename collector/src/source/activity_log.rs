//! The `activity_log` source: ARM's Activity Log (`eventtypes/management/values`) per subscription,
//! or per resource group, in time windows with a late-arrival re-read; events are deduplicated on
//! `eventDataId`.

pub mod record;

use crate::json::RawJson;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Deserialize;

use super::listing::{Listing, Query};
use super::window::{Position, Windows};
use crate::azure::client::Api;
use crate::azure::{Audience, encode_query};
use crate::config::{ActivityLogConfig, StartAt};
use crate::event::EventKind;
use crate::normalise::RawRecord;

const API_VERSION: &str = "2015-04-01";
/// The Activity Log keeps 90 days.
const RETENTION: TimeDelta = TimeDelta::days(90);

const API: Api = Api {
    name: "activityLog",
    audience: Audience::ResourceManager,
    forbidden_hint: "give the collector's identity the Reader role on the subscription (a SubscriptionAuthorization grants it; its status names what is missing)",
};

#[derive(Debug)]
pub struct ActivityLog {
    resource_manager: String,
    windows: Windows,
    start_at: StartAt,
    categories: Vec<String>,
}

impl ActivityLog {
    pub fn new(
        config: &ActivityLogConfig,
        resource_manager: &str,
        poll_interval: std::time::Duration,
    ) -> ActivityLog {
        ActivityLog {
            resource_manager: resource_manager.to_owned(),
            windows: Windows::new(config.late_arrival, poll_interval, RETENTION),
            start_at: config.start_at,
            categories: config.categories.clone(),
        }
    }

    /// One stream per subscription, or per subscription and resource group.
    pub fn streams(subscriptions: &[String], resource_groups: &[String]) -> Vec<String> {
        subscriptions
            .iter()
            .flat_map(|sub| {
                if resource_groups.is_empty() {
                    vec![sub.clone()]
                } else {
                    resource_groups
                        .iter()
                        .map(|group| format!("{sub}/resourceGroups/{group}"))
                        .collect()
                }
            })
            .collect()
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Deserialize)]
struct CategoryOnly<'a> {
    #[serde(borrow)]
    category: Option<Localized<'a>>,
}

#[derive(Deserialize)]
struct Localized<'a> {
    #[serde(borrow)]
    value: Option<std::borrow::Cow<'a, str>>,
}

impl Listing for ActivityLog {
    const KIND: &'static str = "activityLog";
    type Position = Position;

    fn reread_span(&self) -> Option<std::time::Duration> {
        Some(self.windows.reread_span())
    }

    fn api(&self, _stream: &str) -> Api {
        API
    }

    /// A subscription's resource groups share its read budget.
    fn scope<'a>(&self, stream: &'a str) -> &'a str {
        stream
            .split_once("/resourceGroups/")
            .map_or(stream, |(subscription, _)| subscription)
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
        let (subscription, group) = match stream.split_once("/resourceGroups/") {
            Some((sub, group)) => (sub, Some(group)),
            None => (stream, None),
        };
        let mut filter = format!(
            "eventTimestamp ge '{}' and eventTimestamp le '{}'",
            time(window.start),
            time(window.end)
        );
        if let Some(group) = group {
            filter.push_str(&format!(" and resourceGroupName eq '{group}'"));
        }
        let url = format!(
            "{}/subscriptions/{subscription}/providers/Microsoft.Insights/eventtypes/management/values?api-version={API_VERSION}&$filter={}",
            self.resource_manager,
            encode_query(&filter)
        );
        Some(window.query(url))
    }

    fn record(&self, _stream: &str, _position: &Position, raw: RawJson) -> Option<RawRecord> {
        if !self.categories.is_empty()
            && let Ok(CategoryOnly {
                category:
                    Some(Localized {
                        value: Some(category),
                    }),
            }) = serde_json::from_str::<CategoryOnly>(raw.get())
            && !self
                .categories
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&category))
        {
            return None;
        }
        // Records that do not parse are kept: the normaliser sends them to the dead-letter file.
        Some(RawRecord {
            kind: EventKind::ActivityLog,
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

    fn source(categories: &[&str]) -> ActivityLog {
        let config: ActivityLogConfig = crate::config::from_yaml(&format!(
            "categories: [{}]\nlateArrival: 20m\n",
            categories.join(", ")
        ))
        .expect("config");
        ActivityLog::new(
            &config,
            "https://management.azure.com",
            std::time::Duration::from_secs(30),
        )
    }

    #[test]
    fn the_query_filters_on_event_time_and_resource_group() {
        let s = source(&[]);
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let position = s.start("sub", now - TimeDelta::minutes(5));
        let url = s
            .plan("sub-1/resourceGroups/prod-web", &position, now)
            .expect("due")
            .url;
        assert_eq!(
            url,
            "https://management.azure.com/subscriptions/sub-1/providers/Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01&$filter=eventTimestamp%20ge%20%272026-11-22T11%3A55%3A00Z%27%20and%20eventTimestamp%20le%20%272026-11-22T12%3A00%3A00Z%27%20and%20resourceGroupName%20eq%20%27prod-web%27"
        );
    }

    #[test]
    fn categories_filter_records_but_never_drop_unreadable_ones() {
        let s = source(&["Security", "Administrative"]);
        let now = Utc::now();
        let p = s.start("sub", now);
        let raw = |json: &str| RawJson::parse(json.to_owned()).expect("json");
        assert!(
            s.record("sub", &p, raw(r#"{"category":{"value":"Administrative"}}"#))
                .is_some()
        );
        assert!(
            s.record("sub", &p, raw(r#"{"category":{"value":"Policy"}}"#))
                .is_none()
        );
        assert!(s.record("sub", &p, raw(r#"{"category":"odd"}"#)).is_some());
        assert_eq!(
            ActivityLog::streams(&["a".into(), "b".into()], &["g".into()]),
            vec!["a/resourceGroups/g", "b/resourceGroups/g"]
        );
    }
}
