//! The reader task: one connection with a receiver on each partition this collector reads, handing
//! events to the source in each partition's order, reconnecting after failures.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::link::{self, Address, Link, Received, Start};
use super::token::Credential;
use super::{Cursor, Delivery};
use crate::azure::ApiError;
use crate::backoff::Backoff;
use crate::checkpoint::lock;
use crate::metrics::Metrics;

/// How often a connection puts a fresh token, well before the last one expires.
const TOKEN_REFRESH: Duration = Duration::from_secs(15 * 60);

/// What the sharing task asks of the reader.
#[derive(Debug)]
pub enum Command {
    /// Read a partition from `start`, with this epoch.
    Open(String, Start, i64),
    /// Stop reading a partition; answered once none of its events will be handed over any more.
    Close(String, oneshot::Sender<()>),
}

pub struct Reader {
    pub address: Address,
    pub tls: Arc<rustls::ClientConfig>,
    pub credential: Credential,
    pub prefetch: u32,
    /// The epoch of a partition read by this collector alone.
    pub epoch: i64,
    /// The epoch of each shared partition: its Lease's transitions, so a new holder's receiver
    /// outranks the previous holder's, whatever their clocks.
    pub epochs: HashMap<String, i64>,
    /// The last sequence number handed to the source per partition: where a new connection's
    /// receivers start, so nothing is handed over twice or skipped.
    pub positions: Arc<Mutex<Cursor>>,
    /// None: every partition of the hub. Some: only those the sharing task hands this collector.
    pub owned: Option<BTreeSet<String>>,
    pub commands: mpsc::UnboundedReceiver<Command>,
    /// The hub's partitions, once a connection has read them.
    pub partition_ids: watch::Sender<Vec<String>>,
    pub sender: mpsc::Sender<Delivery>,
    pub metrics: Arc<Metrics>,
}

/// The receivers of one connection, each a task; `azlog_source_partitions` counts them.
struct Receivers {
    tasks: HashMap<String, JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl Receivers {
    fn insert(&mut self, partition: String, task: JoinHandle<()>) {
        self.tasks.insert(partition, task);
        self.count();
    }

    fn count(&self) {
        self.metrics.source_partitions.set(self.tasks.len() as i64);
    }

    /// Stops a partition's receiver and waits until its task has ended: an event it was handing
    /// over is either handed over or not, never after this returns.
    async fn stop(&mut self, partition: &str) {
        if let Some(task) = self.tasks.remove(partition) {
            task.abort();
            let _ = task.await;
        }
        self.count();
    }

    fn stop_all(&mut self) {
        for (_, task) in self.tasks.drain() {
            task.abort();
        }
        self.count();
    }
}

impl Reader {
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        loop {
            let failure = match self.connection(&mut backoff).await {
                Ok(()) => return,
                Err(e) => e,
            };
            let delay = failure
                .retry_after()
                .unwrap_or_else(|| backoff.next_delay());
            tracing::warn!(error = %failure, retry_in = ?delay, "event hub connection failed; reconnecting");
            if self.sender.send(Delivery::Failed(failure)).await.is_err() {
                return;
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// One connection, until it fails (Err) or the source is gone (Ok).
    async fn connection(&mut self, backoff: &mut Backoff) -> Result<(), ApiError> {
        let mut link = Link::open(&self.address, self.tls.clone(), &self.credential).await?;
        let partitions = link.partitions(&self.credential).await?;
        self.partition_ids.send_replace(partitions.clone());
        // A receiver's task says how it ended: Some(error), or None when the source is gone.
        let (ended, mut endings) = mpsc::unbounded_channel();
        let mut receivers = Receivers {
            tasks: HashMap::new(),
            metrics: self.metrics.clone(),
        };
        let outcome = async {
            for partition in partitions {
                if self
                    .owned
                    .as_ref()
                    .is_none_or(|owned| owned.contains(&partition))
                {
                    let start = lock(&self.positions).start_of(&partition);
                    let epoch = self.epochs.get(&partition).copied().unwrap_or(self.epoch);
                    self.open(&mut link, &mut receivers, partition, start, epoch, &ended)
                        .await?;
                }
            }
            backoff.reset();
            let mut refresh = tokio::time::interval(TOKEN_REFRESH);
            refresh.tick().await;
            loop {
                tokio::select! {
                    ending = endings.recv() => match ending {
                        Some(Some(e)) => return Err(e),
                        Some(None) | None => return Ok(()),
                    },
                    command = self.commands.recv() => match command {
                        Some(Command::Open(partition, start, epoch)) => {
                            if let Some(owned) = self.owned.as_mut() {
                                owned.insert(partition.clone());
                            }
                            self.epochs.insert(partition.clone(), epoch);
                            receivers.stop(&partition).await;
                            self.open(&mut link, &mut receivers, partition, start, epoch, &ended).await?;
                        }
                        Some(Command::Close(partition, closed)) => {
                            if let Some(owned) = self.owned.as_mut() {
                                owned.remove(&partition);
                            }
                            receivers.stop(&partition).await;
                            tracing::info!(partition = %partition, "stopped reading the partition");
                            let _ = closed.send(());
                        }
                        None => return Ok(()),
                    },
                    _ = refresh.tick() => link.authorise(&self.credential).await?,
                }
            }
        }
        .await;
        receivers.stop_all();
        link.close().await;
        outcome
    }

    async fn open(
        &self,
        link: &mut Link,
        receivers: &mut Receivers,
        partition: String,
        start: Start,
        epoch: i64,
        ended: &mpsc::UnboundedSender<Option<ApiError>>,
    ) -> Result<(), ApiError> {
        let receiver = link
            .receiver(&partition, &start, epoch, self.prefetch)
            .await?;
        tracing::debug!(partition = %partition, ?start, "receiving");
        let forwarding = forward(
            receiver,
            Arc::from(partition.as_str()),
            self.positions.clone(),
            self.sender.clone(),
        );
        let ended = ended.clone();
        let task = tokio::spawn(async move {
            let _ = ended.send(forwarding.await.err());
        });
        receivers.insert(partition, task);
        Ok(())
    }
}

/// Hands one partition's events to the source, in order, until the link fails (Err) or the
/// source is gone (Ok).
async fn forward(
    mut receiver: fe2o3_amqp::Receiver,
    partition: Arc<str>,
    positions: Arc<Mutex<Cursor>>,
    sender: mpsc::Sender<Delivery>,
) -> Result<(), ApiError> {
    loop {
        let event: Received = link::receive(&mut receiver, &partition).await?;
        let sequence = event.sequence;
        if sender.send(Delivery::Event(event)).await.is_err() {
            return Ok(());
        }
        lock(&positions)
            .partitions
            .insert(partition.to_string(), sequence);
    }
}
