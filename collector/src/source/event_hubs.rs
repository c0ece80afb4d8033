//! `eventHubs`: the records diagnostic settings and Entra ID stream to an event hub.
//!
//! A reader task holds one AMQP connection with a receiver on every partition and hands events to
//! the source through a bounded channel; the receivers' credit (`prefetch`) and that channel bound
//! what is held in memory. The source turns events into records in the order each partition
//! delivered them, and each batch's cursor holds every partition's last sequence number handed
//! over, so the pipeline's checkpoint commits a partition's position only after all of its events
//! before it were delivered. A restart resumes every partition just after that sequence number;
//! records of an event read again keep their ids (partition, sequence number, index), so the file
//! output's recovery and dedup recognise them.

mod link;
mod reader;
mod records;
pub mod sharing;
mod token;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::azure::{ApiError, AzureClient};
use crate::config::{EventHubsConfig, StartAt, TlsConfig};
use crate::source::{Batch, Fetch, Source, SourceError};
use link::{Address, Received, Start};
use reader::{Command, Reader};
use sharing::{Reading, Sharing};
use token::{ConnectionString, Credential};

/// Events handed over by the reader and not yet taken into a batch.
const QUEUED_EVENTS: usize = 32;
/// The AMQPS port.
const AMQPS_PORT: u16 = 5671;

/// Where the source is, as the checkpoint keeps it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cursor {
    /// Where a partition with no position yet starts: fixed at the first start, so that a partition
    /// whose first event comes while the collector is down is still read from then.
    from: Unread,
    /// The last sequence number handed over, per partition id.
    partitions: BTreeMap<String, i64>,
}

/// Where a partition this collector never read starts.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
enum Unread {
    #[default]
    Earliest,
    Enqueued(DateTime<Utc>),
}

impl Cursor {
    fn start_of(&self, partition: &str) -> Start {
        match (self.partitions.get(partition), self.from) {
            (Some(sequence), _) => Start::After(*sequence),
            (None, Unread::Earliest) => Start::Earliest,
            (None, Unread::Enqueued(t)) => Start::Enqueued(t),
        }
    }
}

/// What the reader hands the source.
#[derive(Debug)]
enum Delivery {
    Event(Received),
    /// The connection failed; the reader retries it after a backoff. Reported so the pipeline
    /// counts and shows it.
    Failed(ApiError),
}

#[derive(Debug)]
pub struct EventHubs {
    deliveries: mpsc::Receiver<Delivery>,
    cursor: Cursor,
    /// True until the first batch: it stores where a new checkpoint starts.
    unsaved_start: bool,
    /// A connection failure that came after a batch's events, reported by the next fetch.
    failure: Option<ApiError>,
    batch_size: usize,
    poll_interval: Duration,
    reader: tokio::task::JoinHandle<()>,
    /// Keeps the reader's command channel open while the source lives.
    _commands: mpsc::UnboundedSender<Command>,
}

impl Drop for EventHubs {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl EventHubs {
    pub fn new(
        config: &EventHubsConfig,
        client: Arc<AzureClient>,
        tls: Option<&std::path::Path>,
        batch_size: usize,
        poll_interval: Duration,
        sharing: Option<&Sharing>,
        cursor: Option<serde_json::Value>,
    ) -> Result<EventHubs, SourceError> {
        let (cursor, unsaved_start) = match cursor {
            Some(value) => (
                serde_json::from_value(value)
                    .map_err(|e| SourceError::Cursor(format!("eventHubs cursor: {e}")))?,
                false,
            ),
            None => {
                let from = match config.start_at {
                    StartAt::Earliest => Unread::Earliest,
                    StartAt::Now => Unread::Enqueued(Utc::now()),
                    StartAt::Time(t) => Unread::Enqueued(t),
                };
                let cursor = Cursor {
                    from,
                    partitions: BTreeMap::new(),
                };
                (cursor, true)
            }
        };
        let metrics = client.metrics().clone();
        let (address, credential) = connect_to(config, client)?;
        let tls = crate::tls::client_config(Some(&TlsConfig {
            ca_file: tls.map(std::path::Path::to_path_buf),
            ..TlsConfig::default()
        }))
        .map_err(SourceError::Setup)?;
        tracing::info!(host = %address.host, hub = %address.hub, consumer_group = %address.consumer_group, "reading an event hub");
        // Events, not records: one may hold hundreds of records and up to 1 MiB, so the queue is
        // short; the receivers' prefetch keeps it filled.
        let (sender, deliveries) = mpsc::channel(QUEUED_EVENTS);
        let positions = Arc::new(Mutex::new(cursor.clone()));
        let (commands, command_queue) = mpsc::unbounded_channel();
        let (partition_ids, partitions) = watch::channel(Vec::new());
        let reader = Reader {
            address,
            tls,
            credential,
            prefetch: config.prefetch,
            // Later readers win: a restarted collector takes its partitions from a stale one.
            epoch: Utc::now().timestamp_millis(),
            epochs: Default::default(),
            positions: positions.clone(),
            owned: sharing.map(|_| Default::default()),
            commands: command_queue,
            partition_ids,
            sender,
            metrics,
        };
        if let Some(sharing) = sharing {
            sharing.start(Reading {
                partition_ids: partitions,
                commands: commands.clone(),
                positions,
            });
        }
        Ok(EventHubs {
            deliveries,
            cursor,
            unsaved_start,
            failure: None,
            batch_size,
            poll_interval,
            reader: tokio::spawn(reader.run()),
            _commands: commands,
        })
    }

    fn take(&mut self, event: Received, batch: &mut Batch) {
        let at = records::Position {
            partition: &event.partition,
            sequence: event.sequence,
        };
        records::split(&event.body, at, &mut batch.records, &mut batch.malformed);
        self.cursor
            .partitions
            .insert(event.partition.to_string(), event.sequence);
    }

    async fn next(&mut self) -> Result<Fetch, SourceError> {
        if let Some(e) = self.failure.take() {
            return Err(SourceError::Api(e));
        }
        let mut batch = Batch {
            records: Vec::new(),
            malformed: Vec::new(),
            cursor: serde_json::Value::Null,
            offsets: Default::default(),
        };
        let first = tokio::time::timeout(self.poll_interval, self.deliveries.recv()).await;
        match first {
            Ok(Some(Delivery::Event(event))) => self.take(event, &mut batch),
            Ok(Some(Delivery::Failed(e))) => return Err(SourceError::Api(e)),
            Ok(None) => return Err(SourceError::Setup("the event hub reader stopped".into())),
            Err(_) if self.unsaved_start => {}
            Err(_) => return Ok(Fetch::CaughtUp),
        }
        while batch.records.len() < self.batch_size {
            match self.deliveries.try_recv() {
                Ok(Delivery::Event(event)) => self.take(event, &mut batch),
                Ok(Delivery::Failed(e)) => {
                    self.failure = Some(e);
                    break;
                }
                Err(_) => break,
            }
        }
        self.unsaved_start = false;
        batch.cursor = serde_json::to_value(&self.cursor)
            .map_err(|e| SourceError::Cursor(format!("eventHubs cursor: {e}")))?;
        Ok(Fetch::Batch(batch))
    }
}

impl Source for EventHubs {
    const KIND: &'static str = "eventHubs";

    fn fetch(&mut self) -> impl std::future::Future<Output = Result<Fetch, SourceError>> + Send {
        self.next()
    }
}

/// The namespace's address and the credential, from the config and the connection string.
fn connect_to(
    config: &EventHubsConfig,
    client: Arc<AzureClient>,
) -> Result<(Address, Credential), SourceError> {
    let connection_string = match &config.connection_string_file {
        Some(file) => Some(ConnectionString::read(file).map_err(SourceError::Setup)?),
        None => None,
    };
    if let Some(path) = connection_string
        .as_ref()
        .and_then(|c| c.entity_path.as_deref())
        && path != config.hub
    {
        return Err(SourceError::Setup(format!(
            "the connection string is for event hub {path:?} but hub is {:?}",
            config.hub
        )));
    }
    let (host, port) = match (&config.endpoint, &config.namespace) {
        (Some(endpoint), _) => {
            let url = url::Url::parse(endpoint)
                .map_err(|e| SourceError::Setup(format!("endpoint {endpoint:?}: {e}")))?;
            let host = url.host_str().unwrap_or_default().to_owned();
            (host, url.port().unwrap_or(AMQPS_PORT))
        }
        (None, Some(namespace)) if namespace.contains('.') => (namespace.clone(), AMQPS_PORT),
        (None, Some(namespace)) => (
            format!("{namespace}.{}", client.endpoints().event_hubs_suffix),
            AMQPS_PORT,
        ),
        (None, None) => match &connection_string {
            Some(c) => (c.host.clone(), AMQPS_PORT),
            None => return Err(SourceError::Setup("set namespace or endpoint".into())),
        },
    };
    let credential = match connection_string {
        Some(c) => c.credential,
        None => Credential::Entra(client),
    };
    let address = Address {
        host,
        port,
        hub: config.hub.clone(),
        consumer_group: config.consumer_group.clone(),
    };
    Ok((address, credential))
}
