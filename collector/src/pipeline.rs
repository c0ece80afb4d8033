//! The pipeline: source → bounded channel → normalise → dedup → fan-out → in-order ack → checkpoint.
//!
//! Invariants, each relied on elsewhere:
//! - The checkpoint never runs ahead of delivery: a batch's cursor is committed only after every
//!   output delivered that batch and every batch before it.
//! - At most `maxInFlightEvents` (plus one batch) are dispatched and not yet committed. That bounds
//!   memory whatever the backlog, and bounds what a crash can leave written-but-uncommitted, which is
//!   how far the file output reads back at start to stay exactly-once.
//! - Nothing is dropped silently: a record that cannot be normalised goes to the dead-letter file
//!   (fsynced) before the checkpoint can pass it.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::backoff::Backoff;
use crate::checkpoint::{CHECKPOINT_VERSION, Checkpoint, CheckpointError, CheckpointStore};
use crate::config::Config;
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::dedup::{self, DedupSet, IdHasher};
use crate::event::EventKind;
use crate::metrics::Metrics;
use crate::normalise::{NormaliseContext, Rejected, normalise};
use crate::output::{AnyOutput, Dispatch, Output, OutputContext, SetupError};
use crate::source::{Batch, Fetch, Source, SourceError};

mod ledger;

use ledger::{Dispatched, Ledger, Totals};

/// How many fetched batches may wait between the source and the dispatcher.
const SOURCE_QUEUE: usize = 2;
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(
        "the checkpoint was written by the {found} source but this collector runs the {expected} source; use a new stateDir for a different source"
    )]
    WrongSource { found: String, expected: String },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Output(#[from] SetupError),
    /// A bug: a task panicked. What was delivered before is committed; the rest is read again at
    /// the next start, so a restart loses nothing.
    #[error("the {part} crashed ({message}); the collector stops so that it restarts")]
    Crashed { part: String, message: String },
}

impl PipelineError {
    pub fn category(&self) -> &'static str {
        match self {
            PipelineError::Checkpoint(e) => e.category(),
            PipelineError::WrongSource { .. } => "wrong_source",
            PipelineError::Source(e) => e.category(),
            PipelineError::Output(_) => "output_setup",
            PipelineError::Crashed { .. } => "crashed",
        }
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Events every output delivered and the checkpoint recorded, over the checkpoint's lifetime.
    pub events_committed: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
    /// True when the run stopped with events still undelivered (they are re-read on the next start).
    pub undelivered: bool,
}

/// What an output task reports: a batch delivered, or its own crash.
#[derive(Debug)]
enum Ack {
    Delivered { seq: u64 },
    Crashed { output: String, message: String },
}

pub struct Pipeline<C: CheckpointStore> {
    config: Config,
    store: C,
    metrics: Arc<Metrics>,
    dead_letters: DeadLetters,
}

impl<C: CheckpointStore> std::fmt::Debug for Pipeline<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// The cursor a source resumes from: the stored one, with the offsets kept beside it put back in
/// its `offsets` (see [`Batch::offsets`]); those stored beside it win over any an older
/// collector left in the cursor itself.
fn resume_cursor(checkpoint: &Checkpoint) -> serde_json::Value {
    let mut cursor = checkpoint.cursor.clone();
    if let Some(fields) = cursor.as_object_mut()
        && !checkpoint.offsets.is_empty()
    {
        let offsets = fields
            .entry("offsets")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if let Some(offsets) = offsets.as_object_mut() {
            for (key, offset) in &checkpoint.offsets {
                if let Some(offset) = offset {
                    offsets.insert(key.clone(), (*offset).into());
                }
            }
        }
    }
    cursor
}

fn random_seed() -> u64 {
    // RandomState is keyed from the operating system's randomness; hashing nothing yields a fresh,
    // unpredictable u64 without another dependency.
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

impl<C: CheckpointStore> Pipeline<C> {
    pub fn new(config: Config, store: C, metrics: Arc<Metrics>) -> Self {
        let dead_letters = DeadLetters::new(config.state_dir.join("dead-letter.ndjson"));
        Pipeline {
            config,
            store,
            metrics,
            dead_letters,
        }
    }

    /// Runs until the source is exhausted or `shutdown` turns true. `make_source` receives the stored
    /// cursor (None on a first start).
    pub async fn run<S: Source>(
        mut self,
        make_source: impl FnOnce(Option<serde_json::Value>) -> Result<S, SourceError>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<RunSummary, PipelineError> {
        let stored = self.store.load().await?;
        let (seed, ids, committed) = match &stored {
            Some(cp) => (
                cp.id_seed,
                cp.decode_ids()?,
                Totals {
                    events: cp.events_delivered,
                    dead_lettered: cp.dead_lettered,
                },
            ),
            None => (random_seed(), Vec::new(), Totals::default()),
        };
        let source_kind = S::KIND;
        if let Some(cp) = &stored
            && cp.source != source_kind
        {
            return Err(PipelineError::WrongSource {
                found: cp.source.clone(),
                expected: source_kind.to_owned(),
            });
        }
        let source = make_source(stored.as_ref().map(resume_cursor))?;
        match &stored {
            Some(cp) => {
                tracing::info!(committed_at = %cp.committed_at, events_delivered = cp.events_delivered, "resuming from checkpoint")
            }
            None => {
                tracing::info!("no checkpoint yet; starting from the source's configured start")
            }
        }
        let pipeline_cfg = self.config.pipeline.clone();
        let hasher = IdHasher::new(seed);
        let window = dedup::Window {
            capacity: self.config.checkpoint.dedup_capacity,
            // What a crash can make the source read again: everything not yet committed.
            floor: pipeline_cfg.max_in_flight_events + pipeline_cfg.batch_size,
            span: source.reread_span(),
        };
        let mut dedup = DedupSet::from_hashes(window, ids);
        let output_ctx = OutputContext {
            hasher,
            recovery_window: pipeline_cfg.max_in_flight_events + pipeline_cfg.batch_size,
            metrics: self.metrics.clone(),
        };
        let mut outputs = Vec::new();
        for (i, output_config) in self.config.outputs.iter().enumerate() {
            outputs.push(AnyOutput::build(output_config, i, &output_ctx)?);
        }

        // Each batch with the source's re-read span as it stands after fetching it.
        let (source_tx, mut source_rx) = mpsc::channel::<(Batch, Option<Duration>)>(SOURCE_QUEUE);
        let (abort_tx, abort_rx) = watch::channel(false);
        let mut source_task = tokio::spawn(run_source(
            source,
            source_tx,
            pipeline_cfg.poll_interval,
            self.metrics.clone(),
            shutdown.clone(),
        ));
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Ack>();
        let mut output_txs = Vec::new();
        let mut output_tasks: Vec<JoinHandle<()>> = Vec::new();
        for output in outputs {
            let (tx, rx) = mpsc::unbounded_channel::<Arc<Dispatch>>();
            self.metrics.set_output_error(output.name(), None);
            output_txs.push(tx);
            let name = output.name().to_owned();
            let task = run_output(
                output,
                rx,
                ack_tx.clone(),
                self.metrics.clone(),
                abort_rx.clone(),
            );
            output_tasks.push(tokio::spawn(report_crash(
                name,
                task,
                ack_tx.clone(),
                self.metrics.clone(),
            )));
        }
        drop(ack_tx);

        let ctx = NormaliseContext {
            source_name: Arc::from(self.config.name.as_str()),
            subscription_id: self.config.subscription_id.clone(),
        };
        let max_in_flight = pipeline_cfg.max_in_flight_events;
        let mut ledger = Ledger::new(output_txs.len(), committed);
        let mut source_done = false;
        let mut shutdown = shutdown;
        let mut drain_deadline: Option<Instant> = None;
        let mut summary = RunSummary::default();
        let mut commit_tick = tokio::time::interval(self.config.checkpoint.commit_interval);
        commit_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut progress = Progress::new(ledger.committed().events);
        let mut crashed: Option<PipelineError> = None;

        loop {
            if ledger.awaiting_delivery() == 0 && (source_done || drain_deadline.is_some()) {
                break;
            }
            // Another collector owns the checkpoint now: it delivers from there, so this one
            // stops at once instead of delivering the same events.
            if let Some(why) = self.store.ownership_lost() {
                tracing::error!(reason = %why, "stopping: the checkpoint belongs to another collector");
                crashed = Some(PipelineError::Checkpoint(CheckpointError::Lost(why)));
                break;
            }
            let deadline =
                drain_deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
            tokio::select! {
                batch = source_rx.recv(), if !source_done && drain_deadline.is_none() && ledger.in_flight() < max_in_flight => {
                    let Some((batch, reread_span)) = batch else {
                        // The source ends by dropping its sender: exhausted, or crashed.
                        if let Err(e) = (&mut source_task).await
                            && e.is_panic()
                        {
                            let message = panic_message(e.into_panic());
                            self.metrics.set_source_error(Some(format!("the source crashed: {message}")));
                            crashed = Some(PipelineError::Crashed { part: "source".into(), message });
                        }
                        source_done = true;
                        continue;
                    };
                    dedup.set_span(reread_span);
                    let (dispatch, dispatched) = self.dispatch(batch, &ctx, &hasher, &mut dedup, &mut summary, source_kind).await;
                    let seq = ledger.dispatch(dispatched);
                    let dispatch = Arc::new(Dispatch { seq, ..dispatch });
                    for tx in &output_txs {
                        // A closed channel means the output task ended, which happens only on abort.
                        let _ = tx.send(dispatch.clone());
                    }
                    self.metrics.in_flight_events.set(ledger.in_flight() as i64);
                }
                ack = ack_rx.recv() => {
                    let seq = match ack {
                        Some(Ack::Delivered { seq }) => seq,
                        Some(Ack::Crashed { output, message }) => {
                            // Its batches will never be acknowledged: stop, commit what every
                            // output delivered, and leave the rest to the next start.
                            crashed = Some(PipelineError::Crashed { part: format!("output {output}"), message });
                            break;
                        }
                        // Every output task ended: only after an abort.
                        None => break,
                    };
                    ledger.delivered(seq);
                    let finishing = ledger.awaiting_delivery() == 0 && (source_done || drain_deadline.is_some());
                    if ledger.acked_weight() >= max_in_flight / 2 || finishing {
                        self.commit(&mut ledger, &dedup, source_kind, seed).await;
                    }
                }
                _ = commit_tick.tick() => {
                    self.commit(&mut ledger, &dedup, source_kind, seed).await;
                    self.metrics.checkpoint_age.set(ledger.since_commit().as_secs_f64());
                    progress.report(ledger.committed().events, ledger.in_flight());
                }
                changed = shutdown.changed(), if drain_deadline.is_none() => {
                    if changed.is_err() || *shutdown.borrow() {
                        tracing::info!(in_flight = ledger.in_flight(), timeout = ?pipeline_cfg.shutdown_timeout, "shutting down: delivering what is in flight");
                        drain_deadline = Some(Instant::now() + pipeline_cfg.shutdown_timeout);
                    }
                }
                _ = tokio::time::sleep_until(deadline), if drain_deadline.is_some() => {
                    tracing::warn!(undelivered_batches = ledger.awaiting_delivery(), "shutdown timeout reached with events undelivered; they will be read again at the next start");
                    break;
                }
            }
        }
        self.commit(&mut ledger, &dedup, source_kind, seed).await;
        self.store.finish().await;
        summary.events_committed = ledger.committed().events;
        summary.undelivered = ledger.uncommitted();
        source_task.abort();
        drop(output_txs);
        if summary.undelivered {
            let _ = abort_tx.send(true);
        }
        for task in output_tasks {
            // Output tasks finish their current batch and close; a crash was reported as an Ack.
            let _ = task.await;
        }
        match crashed {
            Some(crash) => Err(crash),
            None => Ok(summary),
        }
    }

    /// Normalises, dead-letters and deduplicates one fetched batch. Answers the batch for the outputs,
    /// and what the ledger keeps of it until it is committed.
    async fn dispatch(
        &mut self,
        batch: Batch,
        ctx: &NormaliseContext,
        hasher: &IdHasher,
        dedup: &mut DedupSet,
        summary: &mut RunSummary,
        source_kind: &str,
    ) -> (Dispatch, Dispatched) {
        let mut events = Vec::with_capacity(batch.records.len());
        let mut rejected: Vec<(String, &'static str, String, String)> = Vec::new();
        // Counted per kind locally and added once per batch: a labelled counter lookup per event
        // would sit on the hot path.
        let mut received = [0u64; EventKind::ALL.len()];
        for record in batch.records {
            let kind = record.kind;
            received[kind.index()] += 1;
            // Where the record came from, when the source knows (a blob and byte offset).
            let position = record.id_hint.clone();
            match normalise(record, ctx) {
                Ok(event) => events.push(event),
                Err(Rejected { error, payload }) => rejected.push((
                    position.unwrap_or_else(|| {
                        format!("{} record from the {source_kind} source", kind.as_str())
                    }),
                    error.category(),
                    error.to_string(),
                    payload.get().to_owned(),
                )),
            }
        }
        for (kind, count) in EventKind::ALL.iter().zip(received) {
            if count > 0 {
                self.metrics
                    .events_received
                    .with_label_values(&[kind.as_str()])
                    .inc_by(count);
            }
        }
        for bad in &batch.malformed {
            rejected.push((
                bad.origin.clone(),
                "malformed",
                bad.reason.clone(),
                bad.payload.clone(),
            ));
        }
        if !rejected.is_empty() {
            let letters: Vec<DeadLetter> = rejected
                .iter()
                .map(|(origin, category, reason, payload)| DeadLetter {
                    source: &self.config.name,
                    origin,
                    category,
                    reason,
                    payload,
                })
                .collect();
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
            while let Err(e) = self.dead_letters.append(&letters) {
                tracing::error!(path = %self.dead_letters.path().display(), error = %e, "failed to write the dead-letter file; the pipeline waits until it can (check disk space and permissions)");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            for (_, category, reason, _) in &rejected {
                self.metrics
                    .events_dead_lettered
                    .with_label_values(&[category])
                    .inc();
                tracing::warn!(category, reason = %reason, path = %self.dead_letters.path().display(), "record dead-lettered");
            }
            summary.dead_lettered += rejected.len() as u64;
        }
        let before = events.len();
        let forgotten = dedup.forgotten_early();
        events.retain(|event| dedup.insert(hasher.hash(&event.id)));
        let newly_forgotten = dedup.forgotten_early() - forgotten;
        if newly_forgotten > 0 {
            if forgotten == 0 {
                tracing::warn!(
                    capacity = self.config.checkpoint.dedup_capacity,
                    "the source may read events again for longer than checkpoint.dedupCapacity ids last: some re-read events will be delivered twice; raise dedupCapacity (about 50 bytes of memory each)"
                );
            }
            self.metrics.dedup_forgotten_early.inc_by(newly_forgotten);
        }
        let duplicates = before - events.len();
        if duplicates > 0 {
            self.metrics.events_duplicate.inc_by(duplicates as u64);
            summary.duplicates += duplicates as u64;
        }
        let dispatched = Dispatched {
            cursor: batch.cursor,
            offsets: batch.offsets,
            events: events.len(),
            dead_lettered: rejected.len() as u64,
            newest: events.iter().map(|e| e.time).max(),
        };
        let dispatch = Dispatch {
            seq: 0,
            events,
            dispatched_at: Instant::now(),
        };
        (dispatch, dispatched)
    }

    /// Writes what every output delivered and no checkpoint recorded yet, if anything; a failed
    /// write is reported and left for the next commit.
    async fn commit(
        &mut self,
        ledger: &mut Ledger,
        dedup: &DedupSet,
        source_kind: &str,
        seed: u64,
    ) {
        let Some(due) = ledger.due() else {
            return;
        };
        let checkpoint = Checkpoint {
            version: CHECKPOINT_VERSION,
            source: source_kind.to_owned(),
            cursor: due.cursor.clone(),
            id_seed: seed,
            recent_ids: Checkpoint::encode_ids(dedup.oldest_first(due.undelivered_ids)),
            committed_at: Utc::now(),
            events_delivered: due.totals.events,
            dead_lettered: due.totals.dead_lettered,
            offsets: due.offsets.clone(),
            last_event_time: due.newest,
        };
        match self.store.commit(&checkpoint).await {
            Ok(()) => {
                ledger.commit_written();
                self.metrics.set_checkpoint_error(None);
                self.metrics.in_flight_events.set(ledger.in_flight() as i64);
                self.metrics.checkpoint_commits.inc();
                if let Some(newest) = checkpoint.last_event_time {
                    self.metrics
                        .last_event_timestamp
                        .set(newest.timestamp_millis() as f64 / 1000.0);
                    let lag = (Utc::now() - newest).num_milliseconds() as f64 / 1000.0;
                    self.metrics
                        .lag_seconds
                        .with_label_values(&[source_kind])
                        .set(lag.max(0.0));
                }
                self.metrics.checkpoint_age.set(0.0);
            }
            Err(e) => {
                self.metrics.set_checkpoint_error(Some(e.to_string()));
                self.metrics.checkpoint_errors.inc();
                tracing::error!(error = %e, "checkpoint not written; delivered progress is kept in memory and written at the next commit");
            }
        }
    }
}

async fn run_source<S: Source>(
    mut source: S,
    tx: mpsc::Sender<(Batch, Option<Duration>)>,
    poll_interval: Duration,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        if *shutdown.borrow() {
            return;
        }
        let started = Instant::now();
        metrics.fetch_started();
        let fetched = tokio::select! {
            fetched = source.fetch() => fetched,
            _ = shutdown.changed() => return,
        };
        metrics.fetch_finished();
        metrics
            .source_fetch_duration
            .observe(started.elapsed().as_secs_f64());
        match fetched {
            Ok(Fetch::Batch(batch)) => {
                backoff.reset();
                metrics.set_source_error(None);
                tokio::select! {
                    sent = tx.send((batch, source.reread_span())) => if sent.is_err() { return },
                    _ = shutdown.changed() => return,
                }
            }
            Ok(Fetch::CaughtUp) => {
                metrics.set_source_error(None);
                tokio::select! {
                    _ = tokio::time::sleep(poll_interval) => {}
                    _ = shutdown.changed() => return,
                }
            }
            Ok(Fetch::Exhausted) => {
                tracing::info!(source = S::KIND, "the source has no more events");
                return;
            }
            Err(e) => {
                metrics.set_source_error(Some(e.to_string()));
                metrics
                    .source_errors
                    .with_label_values(&[e.category()])
                    .inc();
                // The service said when to come back; sooner would only be throttled again. Its
                // pacing replaces ours, so throttling alone does not stretch later backoffs.
                let delay = e.retry_after().unwrap_or_else(|| backoff.next_delay());
                tracing::warn!(source = S::KIND, error = %e, retry_in = ?delay, attempt = backoff.attempts(), "source fetch failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// Runs an output task; a panic in it becomes an [`Ack::Crashed`] the pipeline acts on, and the
/// output's health error, instead of a silent stall with every later batch unacknowledged.
async fn report_crash(
    output: String,
    task: impl std::future::Future<Output = ()>,
    acks: mpsc::UnboundedSender<Ack>,
    metrics: Arc<Metrics>,
) {
    use futures::FutureExt;
    if let Err(panic) = std::panic::AssertUnwindSafe(task).catch_unwind().await {
        let message = panic_message(panic);
        tracing::error!(output = %output, error = %message, "the output task crashed");
        metrics.set_output_error(&output, Some(format!("the output task crashed: {message}")));
        let _ = acks.send(Ack::Crashed { output, message });
    }
}

/// The text a panic was raised with.
fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Most batches one sync covers. Bounds how long acknowledgements wait under a backlog.
pub const SYNC_GROUP: usize = 16;

async fn run_output(
    mut output: AnyOutput,
    mut rx: mpsc::UnboundedReceiver<Arc<Dispatch>>,
    acks: mpsc::UnboundedSender<Ack>,
    metrics: Arc<Metrics>,
    mut abort: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    'batches: loop {
        tokio::select! {
            batch = rx.recv() => {
                let Some(first) = batch else { break };
                // Whatever else is already queued joins this group, so one sync covers it all.
                let mut group = vec![first];
                while group.len() < SYNC_GROUP {
                    match rx.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                for batch in &group {
                    if !attempt(&mut output, Step::Deliver(batch), &metrics, &mut abort).await {
                        break 'batches;
                    }
                }
                if !attempt(&mut output, Step::Sync, &metrics, &mut abort).await {
                    break;
                }
                for batch in &group {
                    if acks.send(Ack::Delivered { seq: batch.seq }).is_err() {
                        break 'batches;
                    }
                }
            }
            _ = tick.tick() => {
                if let Err(e) = output.tick().await {
                    tracing::warn!(output = output.name(), error = %e, "housekeeping failed; retried next second");
                }
            }
            _ = abort.changed() => break,
        }
    }
    output.close().await;
}

/// One thing an output task does, retried until it works.
enum Step<'a> {
    Deliver(&'a Dispatch),
    Sync,
}

/// Runs `step`, retrying with backoff until it works; false if aborted first.
async fn attempt(
    output: &mut AnyOutput,
    step: Step<'_>,
    metrics: &Metrics,
    abort: &mut watch::Receiver<bool>,
) -> bool {
    let name = output.name().to_owned();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        let result = tokio::select! {
            result = async {
                match &step {
                    Step::Deliver(batch) => output.deliver(batch).await.map(Some),
                    Step::Sync => output.sync().await.map(|()| None),
                }
            } => result,
            _ = abort.changed() => return false,
        };
        match result {
            Ok(delivered) => {
                if backoff.attempts() > 0 {
                    tracing::info!(output = %name, attempts = backoff.attempts() + 1, "delivering again after failures");
                }
                metrics.set_output_error(&name, None);
                if let (Some(delivered), Step::Deliver(batch)) = (delivered, &step) {
                    metrics
                        .events_delivered
                        .with_label_values(&[&name])
                        .inc_by(delivered.sent as u64);
                    if delivered.skipped > 0 {
                        metrics
                            .events_skipped_recovered
                            .with_label_values(&[&name])
                            .inc_by(delivered.skipped as u64);
                    }
                    metrics
                        .delivery_latency
                        .with_label_values(&[&name])
                        .observe(batch.dispatched_at.elapsed().as_secs_f64());
                }
                return true;
            }
            Err(e) => {
                metrics.set_output_error(&name, Some(e.to_string()));
                metrics
                    .output_retries
                    .with_label_values(&[&name, e.category])
                    .inc();
                let delay = backoff.next_delay();
                // Every failure is logged while few; then every tenth, so a long outage stays readable.
                if backoff.attempts() <= 5 || backoff.attempts().is_multiple_of(10) {
                    tracing::warn!(output = %name, error = %e, retry_in = ?delay, attempt = backoff.attempts(), "delivery failed; the batch is held and retried, the checkpoint waits");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = abort.changed() => return false,
                }
            }
        }
    }
}

/// Periodic progress lines, so a long backfill shows it is moving.
#[derive(Debug)]
struct Progress {
    last_at: Instant,
    last_events: u64,
}

impl Progress {
    fn new(events: u64) -> Self {
        Progress {
            last_at: Instant::now(),
            last_events: events,
        }
    }

    fn report(&mut self, events: u64, in_flight: usize) {
        let elapsed = self.last_at.elapsed();
        if elapsed < PROGRESS_EVERY {
            return;
        }
        let rate = (events - self.last_events) as f64 / elapsed.as_secs_f64();
        tracing::info!(
            events_delivered = events,
            rate_per_sec = format!("{rate:.0}"),
            in_flight,
            "progress"
        );
        self.last_at = Instant::now();
        self.last_events = events;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::FileStore;
    use crate::event::EventKind;
    use crate::normalise::RawRecord;
    use crate::raw_json::RawJson;
    use crate::source::Malformed;
    use std::collections::VecDeque;
    use std::path::Path;

    /// A source that hands out prepared batches, then ends.
    struct Scripted(VecDeque<Batch>);

    impl Source for Scripted {
        const KIND: &'static str = "scripted";

        async fn fetch(&mut self) -> Result<Fetch, SourceError> {
            Ok(self.0.pop_front().map_or(Fetch::Exhausted, Fetch::Batch))
        }
    }

    fn activity(id: &str) -> RawRecord {
        RawRecord {
            kind: EventKind::ActivityLog,
            raw: RawJson::parse(format!(
                r#"{{"eventDataId":"{id}","eventTimestamp":"2026-01-01T00:00:00Z","operationName":{{"value":"op"}}}}"#
            ))
            .expect("json"),
            id_hint: None,
            wad_columns: None,
        }
    }

    fn batch(n: u64, records: Vec<RawRecord>, malformed: Vec<Malformed>) -> Batch {
        Batch {
            records,
            malformed,
            cursor: serde_json::json!({ "n": n }),
            offsets: crate::checkpoint::Offsets::new(),
        }
    }

    fn config(dir: &Path) -> Config {
        let yaml = format!(
            "name: unit\nsource:\n  simulate: {{}}\noutputs:\n  - file: {{directory: {}, fsync: false}}\nstateDir: {}\nhealth: {{listen: null}}\n",
            dir.join("out").display(),
            dir.join("state").display()
        );
        Config::parse(&yaml, "test").expect("config")
    }

    async fn run(dir: &Path, batches: Vec<Batch>) -> RunSummary {
        let config = config(dir);
        let store = FileStore::new(dir.join("state/checkpoint.json"));
        let (_tx, rx) = watch::channel(false);
        Pipeline::new(config, store, Arc::new(Metrics::new()))
            .run(|_| Ok(Scripted(batches.into())), rx)
            .await
            .expect("run")
    }

    fn written_ids(dir: &Path) -> Vec<String> {
        let folder = dir.join("out/AzureResourceManagerJson");
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(folder).expect("folder").flatten() {
            for line in std::fs::read_to_string(entry.path()).expect("read").lines() {
                ids.push(crate::output::line::id_of_line(line.as_bytes()).expect("id"));
            }
        }
        ids.sort();
        ids
    }

    /// A source that hands out prepared batches, then panics.
    struct Panicking(VecDeque<Batch>);

    impl Source for Panicking {
        const KIND: &'static str = "scripted";

        async fn fetch(&mut self) -> Result<Fetch, SourceError> {
            match self.0.pop_front() {
                Some(batch) => Ok(Fetch::Batch(batch)),
                None => panic!("the source's bug"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_crashed_source_fails_the_run_after_committing_what_was_delivered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Arc::new(Metrics::new());
        let (_tx, rx) = watch::channel(false);
        let batches = vec![
            batch(1, vec![activity("a")], vec![]),
            batch(2, vec![activity("b")], vec![]),
        ];
        let result = Pipeline::new(
            config(dir.path()),
            FileStore::new(dir.path().join("state/checkpoint.json")),
            metrics.clone(),
        )
        .run(|_| Ok(Panicking(batches.into())), rx)
        .await;
        match result {
            Err(PipelineError::Crashed { part, message }) => {
                assert_eq!(
                    (part.as_str(), message.as_str()),
                    ("source", "the source's bug")
                );
            }
            other => panic!("the run should fail with the crash: {other:?}"),
        }
        assert_eq!(written_ids(dir.path()), vec!["a", "b"]);
        let checkpoint = FileStore::new(dir.path().join("state/checkpoint.json"))
            .load()
            .await
            .expect("load")
            .expect("a checkpoint");
        assert_eq!(checkpoint.cursor, serde_json::json!({"n": 2}));
        assert!(
            metrics
                .ready()
                .is_err_and(|why| why.contains("the source crashed: the source's bug")),
            "/readyz says so"
        );
    }

    #[tokio::test]
    async fn a_crashed_output_task_is_reported_not_left_to_stall_the_pipeline() {
        let metrics = Arc::new(Metrics::new());
        let (acks, mut received) = mpsc::unbounded_channel();
        report_crash(
            "syslog-0".into(),
            async { panic!("the output's bug") },
            acks,
            metrics.clone(),
        )
        .await;
        match received.recv().await {
            Some(Ack::Crashed { output, message }) => {
                assert_eq!(
                    (output.as_str(), message.as_str()),
                    ("syslog-0", "the output's bug")
                );
            }
            other => panic!("expected the crash: {other:?}"),
        }
        assert!(
            metrics
                .ready()
                .is_err_and(|why| why.contains("the output task crashed: the output's bug"))
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn bad_records_are_dead_lettered_and_the_stream_moves_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let malformed = Malformed {
            origin: "insights-logs-auditevent/PT1H.json@1024".into(),
            reason: "expected value at line 1 column 2".into(),
            payload: "{'single': 'quotes'}".into(),
        };
        let missing_id = RawRecord {
            kind: EventKind::ActivityLog,
            raw: RawJson::parse(r#"{"eventTimestamp":"2026-01-01T00:00:00Z"}"#.into())
                .expect("json"),
            id_hint: None,
            wad_columns: None,
        };
        let summary = run(
            dir.path(),
            vec![
                batch(1, vec![activity("a"), activity("b")], vec![]),
                batch(2, vec![activity("c"), missing_id], vec![malformed]),
                batch(3, vec![activity("d")], vec![]),
            ],
        )
        .await;
        assert_eq!(summary.dead_lettered, 2);
        assert_eq!(summary.events_committed, 4);
        assert_eq!(written_ids(dir.path()), vec!["a", "b", "c", "d"]);
        let letters: Vec<serde_json::Value> =
            std::fs::read_to_string(dir.path().join("state/dead-letter.ndjson"))
                .expect("dead-letter file")
                .lines()
                .map(|l| serde_json::from_str(l).expect("json line"))
                .collect();
        assert_eq!(letters.len(), 2);
        assert_eq!(letters[0]["category"], "shape");
        assert!(
            letters[0]["reason"]
                .as_str()
                .expect("reason")
                .contains("eventDataId")
        );
        assert_eq!(
            letters[1]["origin"],
            "insights-logs-auditevent/PT1H.json@1024"
        );
        assert_eq!(letters[1]["payload"], "{'single': 'quotes'}");
        let checkpoint = FileStore::new(dir.path().join("state/checkpoint.json"))
            .load()
            .await
            .expect("load")
            .expect("checkpoint");
        assert_eq!(checkpoint.cursor, serde_json::json!({"n": 3}));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn events_read_again_after_a_restart_are_not_delivered_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = run(
            dir.path(),
            vec![batch(
                1,
                vec![activity("a"), activity("b"), activity("c")],
                vec![],
            )],
        )
        .await;
        assert_eq!(first.duplicates, 0);
        // An overlap window re-reads b and c after the restart.
        let second = run(
            dir.path(),
            vec![batch(
                2,
                vec![activity("b"), activity("c"), activity("d")],
                vec![],
            )],
        )
        .await;
        assert_eq!(second.duplicates, 2);
        assert_eq!(second.events_committed, 4);
        assert_eq!(written_ids(dir.path()), vec!["a", "b", "c", "d"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_checkpoint_from_another_source_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        run(dir.path(), vec![batch(1, vec![activity("a")], vec![])]).await;
        let config = config(dir.path());
        let store = FileStore::new(dir.path().join("state/checkpoint.json"));
        let (_tx, rx) = watch::channel(false);
        let sim = config.source.clone();
        let crate::config::SourceConfig::Simulate(sim) = sim else {
            panic!("the unit config uses the simulate source")
        };
        let err = Pipeline::new(config, store, Arc::new(Metrics::new()))
            .run(|c| crate::source::simulate::Simulate::new(sim, 10, c), rx)
            .await
            .expect_err("refused");
        assert!(
            err.to_string().contains("written by the scripted source"),
            "{err}"
        );
    }
}
