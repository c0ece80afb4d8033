//! Sharing a hub's partitions with the other collectors of a group (`source.eventHubs.sharing`):
//! the balancing task takes and gives up partitions through the group's Leases
//! ([`crate::lease::shares`]) and tells the reader which to read.
//!
//! A partition changes hands without loss or doubling: the collector giving it up stops its
//! receiver, waits until every event it handed over from it is delivered and committed, and only
//! then releases its Lease with that position; the next holder starts just after it. While held,
//! a partition's Lease records the committed position at every renewal, so a collector that dies
//! leaves a position at most one renewal old.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::Cursor;
use super::link::Start;
use super::reader::Command;
use crate::checkpoint::lock;
use crate::config::SharingConfig;
use crate::lease::shares::Shares;

/// What the service keeps to end the sharing when the pipeline has stopped.
#[derive(Debug)]
pub struct Sharing {
    /// Taken by the source when it starts balancing.
    inner: Mutex<Option<Balance>>,
    finished: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The balancing task's state until the source starts it.
#[derive(Debug)]
struct Balance {
    shares: Shares,
    every: Duration,
    committed: watch::Receiver<serde_json::Value>,
    /// The position each held partition was taken at. Until this collector commits past it, its
    /// own checkpoint may hold an older position of the partition (from an earlier turn), which
    /// must never be handed on.
    taken_at: BTreeMap<String, i64>,
}

/// A partition being given up: stopped, waiting for its last events to be committed.
#[derive(Debug)]
struct Release {
    partition: String,
    closed: oneshot::Receiver<()>,
    /// The last sequence number handed over, once the receiver has stopped.
    until: Option<Option<i64>>,
}

/// What the source hands the balancing task.
#[derive(Debug)]
pub(super) struct Reading {
    pub partition_ids: watch::Receiver<Vec<String>>,
    pub commands: mpsc::UnboundedSender<Command>,
    pub positions: Arc<Mutex<Cursor>>,
}

impl Sharing {
    /// Sharing for `config` with this collector as `identity`; `committed` is the pipeline's
    /// committed cursor.
    pub fn new(
        client: kube::Client,
        config: &SharingConfig,
        identity: &str,
        committed: watch::Receiver<serde_json::Value>,
    ) -> Sharing {
        let shares = Shares::new(
            client,
            &config.namespace,
            &config.group,
            identity,
            config.lease_duration,
        );
        Sharing {
            inner: Mutex::new(Some(Balance {
                shares,
                every: config.lease_duration / 3,
                committed,
                taken_at: BTreeMap::new(),
            })),
            finished: watch::Sender::new(false),
            task: Mutex::default(),
        }
    }

    /// Starts balancing; the source calls this once it has a reader.
    pub(super) fn start(&self, reading: Reading) {
        let Some(balance) = lock(&self.inner).take() else {
            return;
        };
        let finished = self.finished.subscribe();
        *lock(&self.task) = Some(tokio::spawn(balance.run(reading, finished)));
    }

    /// After the pipeline stopped with everything delivered committed: releases every partition
    /// at its committed position and leaves the group, so the others take over at once.
    pub async fn finish(&self) {
        self.finished.send_replace(true);
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// The committed sequence number of each partition.
fn committed_positions(cursor: &serde_json::Value) -> BTreeMap<String, i64> {
    serde_json::from_value::<Cursor>(cursor.clone())
        .map(|c| c.partitions)
        .unwrap_or_default()
}

impl Balance {
    async fn run(mut self, reading: Reading, mut finished: watch::Receiver<bool>) {
        let mut releasing: Option<Release> = None;
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = finished.wait_for(|done| *done) => break,
            }
            let committed = committed_positions(&self.committed.borrow());
            if let Some(release) = releasing.as_mut()
                && self.try_release(release, &committed, &reading).await
            {
                releasing = None;
            }
            let items = reading.partition_ids.borrow().clone();
            let recorded = self
                .shares
                .held()
                .iter()
                .filter_map(|p| Some((p.clone(), self.done(&committed, p)?.to_string())))
                .collect();
            let plan = match self.shares.round(&items, &recorded).await {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::warn!(error = %e, "failed to read or renew the partition Leases; retrying");
                    continue;
                }
            };
            for partition in plan.lost {
                self.taken_at.remove(&partition);
                tracing::warn!(partition = %partition, "another collector took the partition over; stopping it");
                let (closed, _) = oneshot::channel();
                let _ = reading.commands.send(Command::Close(partition, closed));
            }
            for taken in plan.taken {
                let (partition, recorded) = (taken.item, taken.position);
                let start = {
                    let mut positions = lock(&reading.positions);
                    let last = recorded
                        .and_then(|p| p.parse::<i64>().ok())
                        .max(positions.partitions.get(&partition).copied());
                    match last {
                        Some(sequence) => {
                            // A reconnect resumes the partition from here too.
                            positions.partitions.insert(partition.clone(), sequence);
                            self.taken_at.insert(partition.clone(), sequence);
                            Start::After(sequence)
                        }
                        None => positions.start_of(&partition),
                    }
                };
                tracing::info!(partition = %partition, ?start, "took the partition");
                let _ = reading
                    .commands
                    .send(Command::Open(partition, start, taken.generation));
            }
            if releasing.is_none()
                && let Some(partition) = plan.give_up
            {
                tracing::info!(partition = %partition, "giving the partition up to balance the group");
                let (closed, answer) = oneshot::channel();
                let _ = reading
                    .commands
                    .send(Command::Close(partition.clone(), closed));
                releasing = Some(Release {
                    partition,
                    closed: answer,
                    until: None,
                });
            }
        }
        // The pipeline has stopped: what it committed is all this collector delivered.
        let committed = committed_positions(&self.committed.borrow());
        let held: Vec<String> = self.shares.held().iter().cloned().collect();
        for partition in held {
            let position = self.done(&committed, &partition).map(|p| p.to_string());
            if let Err(e) = self.shares.release(&partition, position).await {
                tracing::warn!(partition = %partition, error = %e, "failed to release the partition; it expires by itself");
            }
        }
        self.shares.leave().await;
        tracing::info!("released every partition and left the group");
    }

    /// How far a held partition is delivered: what this collector committed of it, and never
    /// less than where it took it.
    fn done(&self, committed: &BTreeMap<String, i64>, partition: &str) -> Option<i64> {
        committed
            .get(partition)
            .copied()
            .max(self.taken_at.get(partition).copied())
    }

    /// Releases a partition being given up once its receiver stopped and all it handed over is
    /// committed; answers whether it is done.
    async fn try_release(
        &mut self,
        release: &mut Release,
        committed: &BTreeMap<String, i64>,
        reading: &Reading,
    ) -> bool {
        if release.until.is_none() && release.closed.try_recv().is_ok() {
            release.until = Some(
                lock(&reading.positions)
                    .partitions
                    .get(&release.partition)
                    .copied(),
            );
        }
        let Some(until) = release.until else {
            return false;
        };
        let done = self.done(committed, &release.partition);
        if until.is_some() && done < until {
            return false;
        }
        match self
            .shares
            .release(&release.partition, done.map(|d| d.to_string()))
            .await
        {
            Ok(()) => {
                tracing::info!(partition = %release.partition, position = ?done, "released the partition");
                self.taken_at.remove(&release.partition);
                true
            }
            Err(e) => {
                tracing::warn!(partition = %release.partition, error = %e, "failed to release the partition; retrying");
                false
            }
        }
    }
}
