//! The `securityAlerts` source reading only what changed. The alerts API cannot filter, and an alert
//! carries no time of its last change, so a plain poll lists every alert Azure keeps (90 days of
//! them) to find the few that are new or changed status. Here, after one whole listing of every
//! subscription (at each start, since what changed while the collector was down is only known by
//! looking), each poll asks Azure Resource Graph for every alert's id and status in one request per
//! 1,000 alerts, and reads in full, by id, only the alerts whose status is not the one last seen.
//! Many changes at once, or Resource Graph refusing, go back to a whole listing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::resource_graph::{self, Row};
use super::{API, API_VERSION, SecurityAlerts};
use crate::azure::{ApiError, AzureClient};
use crate::checkpoint::Offsets;
use crate::config::SecurityAlertsConfig;
use crate::json::RawJson;
use crate::normalise::RawRecord;
use crate::source::listing::{Listed, Listing};
use crate::source::{Batch, Fetch, Source, SourceError};

/// Beyond this many alerts changed since the last poll, one listing of every subscription costs
/// fewer requests than reading each by id.
const MOST_READ_BY_ID: usize = 50;

/// Alert ids as keys: Azure does not keep their case consistent between APIs.
type Statuses = HashMap<String, String>;

#[derive(Debug)]
enum Mode {
    /// Every subscription is being listed; the statuses seen so far.
    Listing(Statuses),
    /// Polling Resource Graph for changes against the statuses last seen.
    Changes { known: Statuses, next_poll: Instant },
}

pub struct ChangedAlerts {
    listed: Listed<SecurityAlerts>,
    config: SecurityAlertsConfig,
    client: Arc<AzureClient>,
    subscriptions: Vec<String>,
    batch_size: usize,
    poll_interval: Duration,
    mode: Mode,
    /// Alerts read by id, not yet handed over.
    pending: VecDeque<RawRecord>,
}

impl std::fmt::Debug for ChangedAlerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangedAlerts")
            .field("listed", &self.listed)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl ChangedAlerts {
    pub fn new(
        config: &SecurityAlertsConfig,
        client: Arc<AzureClient>,
        subscriptions: Vec<String>,
        batch_size: usize,
        poll_interval: Duration,
        cursor: Option<serde_json::Value>,
    ) -> Result<ChangedAlerts, SourceError> {
        Ok(ChangedAlerts {
            listed: listing(
                config,
                &client,
                &subscriptions,
                batch_size,
                poll_interval,
                cursor.map(listed_long_ago),
            )?,
            config: config.clone(),
            client,
            subscriptions,
            batch_size: batch_size.max(1),
            poll_interval,
            mode: Mode::Listing(Statuses::new()),
            pending: VecDeque::new(),
        })
    }

    /// Lists every subscription once more, now, from where the cursor stands.
    fn list_everything(&mut self) -> Result<(), SourceError> {
        let cursor = listed_long_ago(self.listed.cursor()?);
        self.listed = listing(
            &self.config,
            &self.client,
            &self.subscriptions,
            self.batch_size,
            self.poll_interval,
            Some(cursor),
        )?;
        self.mode = Mode::Listing(Statuses::new());
        Ok(())
    }

    async fn next(&mut self) -> Result<Fetch, SourceError> {
        loop {
            if !self.pending.is_empty() {
                let take = self.pending.len().min(self.batch_size);
                return Ok(Fetch::Batch(Batch {
                    records: self.pending.drain(..take).collect(),
                    malformed: Vec::new(),
                    cursor: self.listed.cursor()?,
                    offsets: Offsets::new(),
                }));
            }
            match &mut self.mode {
                Mode::Listing(seen) => {
                    let fetched = self.listed.fetch().await?;
                    match &fetched {
                        Fetch::Batch(batch) => {
                            seen.extend(batch.records.iter().filter_map(|r| id_and_status(&r.raw)))
                        }
                        Fetch::CaughtUp => {
                            tracing::info!(
                                alerts = seen.len(),
                                "every subscription listed; from now on Resource Graph says which alerts changed"
                            );
                            self.mode = Mode::Changes {
                                known: std::mem::take(seen),
                                next_poll: Instant::now() + self.poll_interval,
                            };
                        }
                        Fetch::Exhausted => {}
                    }
                    return Ok(fetched);
                }
                Mode::Changes { next_poll, .. } if Instant::now() < *next_poll => {
                    return Ok(Fetch::CaughtUp);
                }
                Mode::Changes { .. } => {
                    if !self.read_changes().await? {
                        self.list_everything()?;
                    }
                }
            }
        }
    }

    /// Reads the alerts that changed into `pending`; false when a whole listing is due instead.
    async fn read_changes(&mut self) -> Result<bool, SourceError> {
        let rows = match resource_graph::alert_statuses(&self.client, &self.subscriptions).await {
            Ok(rows) => rows,
            // Refused outright (not throttled, not failing): listing works without it.
            Err(e) if refused(&e) => {
                tracing::warn!(error = %e, "Resource Graph refused; listing every subscription instead");
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        // Alerts older than `startAt` are never delivered, nor are their changes.
        let listed: HashMap<String, Row> = rows
            .into_iter()
            .filter(|row| self.delivers(row))
            .map(|row| (row.id.to_ascii_lowercase(), row))
            .collect();
        let Some(known) = self.known() else {
            return Ok(true);
        };
        // Alerts Azure no longer keeps are forgotten.
        known.retain(|id, _| listed.contains_key(id));
        let changed: Vec<String> = listed
            .iter()
            .filter(|(id, row)| known.get(*id) != Some(&row.status))
            .map(|(_, row)| row.id.clone())
            .collect();
        if changed.len() > MOST_READ_BY_ID {
            tracing::info!(
                changed = changed.len(),
                "many alerts changed; listing every subscription"
            );
            return Ok(false);
        }
        for id in changed {
            // Statuses are noted as alerts are read, so that after an error part way the next
            // call reads only the rest.
            let alert = self.alert(&id).await?;
            let record = alert.as_ref().and_then(id_and_status);
            let Some(known) = self.known() else {
                return Ok(true);
            };
            match record {
                Some((id, status)) => {
                    known.insert(id, status);
                }
                None => {
                    known.remove(&id.to_ascii_lowercase());
                }
            }
            if let Some(record) = alert.and_then(|raw| self.record(&id, raw)) {
                self.pending.push_back(record);
            }
        }
        if let Mode::Changes { next_poll, .. } = &mut self.mode {
            *next_poll = Instant::now() + self.poll_interval;
        }
        Ok(true)
    }

    /// Whether the alert of `row` is delivered at all: those older than `startAt` are not, and
    /// neither are their changes. One whose time cannot be read is (the normaliser reports it).
    fn delivers(&self, row: &Row) -> bool {
        let Some(position) = subscription_of(&row.id).and_then(|s| self.listed.position(s)) else {
            return false;
        };
        chrono::DateTime::parse_from_rfc3339(&row.generated).map_or(true, |time| {
            position.delivers(time.with_timezone(&chrono::Utc))
        })
    }

    /// The statuses last seen, while polling for changes.
    fn known(&mut self) -> Option<&mut Statuses> {
        match &mut self.mode {
            Mode::Changes { known, .. } => Some(known),
            Mode::Listing(_) => None,
        }
    }

    /// One alert, by its id; None when Azure no longer has it.
    async fn alert(&self, id: &str) -> Result<Option<RawJson>, ApiError> {
        let url = format!(
            "{}{id}?api-version={API_VERSION}",
            self.client.endpoints().resource_manager
        );
        let token = self.client.bearer(API).await?;
        let request = self
            .client
            .http()
            .get(&url)
            .bearer_auth(token.secret())
            .header("accept", "application/json");
        let answer = self.client.execute(request, API).await?;
        match answer.status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.client.failure(answer, API)),
        }
        let text = String::from_utf8(answer.body)
            .map_err(|e| malformed(&url, e.to_string(), String::new()))?;
        RawJson::parse(text.clone())
            .map(Some)
            .map_err(|e| malformed(&url, e.to_string(), text))
    }

    /// Alert `id` as a record of its subscription's stream, unless it is older than `startAt`.
    fn record(&self, id: &str, raw: RawJson) -> Option<RawRecord> {
        let stream = subscription_of(id)?;
        let position = self.listed.position(stream)?;
        self.listed.listing().record(stream, position, raw)
    }
}

fn refused(e: &ApiError) -> bool {
    match e {
        ApiError::Forbidden { .. } => true,
        ApiError::Status { status, .. } => (400..500).contains(status),
        _ => false,
    }
}

/// `cursor` with every subscription due for a listing.
fn listed_long_ago(mut cursor: serde_json::Value) -> serde_json::Value {
    if let Some(streams) = cursor["streams"].as_object_mut() {
        for position in streams.values_mut() {
            position["listed"] = serde_json::Value::Null;
        }
    }
    cursor
}

fn listing(
    config: &SecurityAlertsConfig,
    client: &Arc<AzureClient>,
    subscriptions: &[String],
    batch_size: usize,
    poll_interval: Duration,
    cursor: Option<serde_json::Value>,
) -> Result<Listed<SecurityAlerts>, SourceError> {
    let alerts = SecurityAlerts::new(config, &client.endpoints().resource_manager, poll_interval);
    Listed::new(
        alerts,
        client.clone(),
        subscriptions.to_vec(),
        batch_size,
        cursor,
    )
}

fn malformed(url: &str, reason: String, body: String) -> ApiError {
    ApiError::Malformed {
        api: API.name,
        url: url.to_owned(),
        reason,
        body,
    }
}

#[derive(Deserialize)]
struct IdAndStatus<'a> {
    #[serde(borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    properties: Option<Status<'a>>,
}

#[derive(Deserialize)]
struct Status<'a> {
    #[serde(borrow)]
    status: Option<std::borrow::Cow<'a, str>>,
}

/// An alert's id (lower case) and status, when it has both.
fn id_and_status(raw: &RawJson) -> Option<(String, String)> {
    let alert: IdAndStatus = serde_json::from_str(raw.get()).ok()?;
    Some((
        alert.id?.to_ascii_lowercase(),
        alert.properties?.status?.into_owned(),
    ))
}

/// The subscription an alert belongs to, from its id (`/subscriptions/<id>/…`).
fn subscription_of(id: &str) -> Option<&str> {
    let (_, rest) = id.split_once("/subscriptions/")?;
    rest.split('/').next()
}

impl Source for ChangedAlerts {
    const KIND: &'static str = SecurityAlerts::KIND;

    /// As the listing's: an alert may be listed again at the next start, as long as Azure keeps it.
    fn reread_span(&self) -> Option<std::time::Duration> {
        self.listed.listing().reread_span()
    }

    fn fetch(&mut self) -> impl std::future::Future<Output = Result<Fetch, SourceError>> + Send {
        self.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_known_by_its_id_in_lower_case_and_its_status() {
        let raw = RawJson::parse(
            r#"{"id":"/subscriptions/SUB-1/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/alerts/A1","properties":{"status":"Resolved"}}"#.into(),
        )
        .expect("json");
        let (id, status) = id_and_status(&raw).expect("id and status");
        assert_eq!(
            id,
            "/subscriptions/sub-1/resourcegroups/rg/providers/microsoft.security/locations/westeurope/alerts/a1"
        );
        assert_eq!(status, "Resolved");
        assert_eq!(
            subscription_of(
                "/subscriptions/SUB-1/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/alerts/A1"
            ),
            Some("SUB-1")
        );
        let no_status = RawJson::parse(r#"{"id":"/subscriptions/s/x"}"#.into()).expect("json");
        assert_eq!(id_and_status(&no_status), None);
    }
}
