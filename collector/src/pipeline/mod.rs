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
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::checkpoint::{CHECKPOINT_VERSION, Checkpoint, CheckpointError, CheckpointStore};
use crate::config::Config;
use crate::dead_letter::DeadLetters;
use crate::dedup::{self, DedupSet, IdHasher};
use crate::metrics::Metrics;
use crate::normalise::NormaliseContext;
use crate::output::{AnyOutput, Dispatch, OutputContext, SetupError};
use crate::source::{Source, SourceError};

mod intake;
mod ledger;
mod tasks;

use intake::Intake;
use ledger::{Ledger, Totals};
pub use tasks::SYNC_GROUP;
use tasks::{Ack, Tasks};

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

pub struct Pipeline<C: CheckpointStore> {
    config: Config,
    store: C,
    metrics: Arc<Metrics>,
    /// The cursor the checkpoint holds, after each commit.
    committed: watch::Sender<serde_json::Value>,
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
        Pipeline {
            config,
            store,
            metrics,
            committed: watch::Sender::new(serde_json::Value::Null),
        }
    }

    /// The cursor the checkpoint holds, updated after each commit (null before the first): what a
    /// source sharing its parts with other collectors may hand on.
    pub fn committed(&self) -> watch::Receiver<serde_json::Value> {
        self.committed.subscribe()
    }

    /// Runs until the source is exhausted or `shutdown` turns true. `make_source` receives the stored
    /// cursor (None on a first start).
    pub async fn run<S: Source>(
        mut self,
        make_source: impl FnOnce(Option<serde_json::Value>) -> Result<S, SourceError>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<RunSummary, PipelineError> {
        let (source, intake, committed) = self.resume(make_source).await?;
        let outputs = self.build_outputs(intake.hasher)?;
        let mut run = Run {
            ledger: Ledger::new(outputs.len(), committed),
            intake,
            summary: RunSummary::default(),
            source_done: false,
            drain_deadline: None,
            crashed: None,
            progress: Progress::new(committed.events),
        };
        let mut tasks = Tasks::spawn(
            source,
            outputs,
            self.config.pipeline.poll_interval,
            &self.metrics,
            shutdown.clone(),
        );
        let max_in_flight = self.config.pipeline.max_in_flight_events;
        let mut commit_tick = tokio::time::interval(self.config.checkpoint.commit_interval);
        commit_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while !run.finished() {
            // Another collector owns the checkpoint now: it delivers from there, so this one
            // stops at once instead of delivering the same events.
            if let Some(why) = self.store.ownership_lost() {
                tracing::error!(reason = %why, "stopping: the checkpoint belongs to another collector");
                run.crashed = Some(PipelineError::Checkpoint(CheckpointError::Lost(why)));
                break;
            }
            let deadline = run
                .drain_deadline
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
            tokio::select! {
                batch = tasks.batches.recv(), if run.takes_batches(max_in_flight) => match batch {
                    Some((batch, reread_span)) => {
                        let (dispatch, dispatched) = run.intake.take(batch, reread_span, &mut run.summary).await;
                        let seq = run.ledger.dispatch(dispatched);
                        tasks.send(Arc::new(Dispatch { seq, ..dispatch }));
                        self.metrics.in_flight_events.set(run.ledger.in_flight() as i64);
                    }
                    // The source ends by dropping its sender: exhausted, or crashed.
                    None => {
                        if let Some(message) = tasks.source_crash().await {
                            self.metrics.set_source_error(Some(format!("the source crashed: {message}")));
                            run.crashed = Some(PipelineError::Crashed { part: "source".into(), message });
                        }
                        run.source_done = true;
                    }
                },
                ack = tasks.acks.recv() => match ack {
                    Some(Ack::Delivered { seq }) => {
                        run.ledger.delivered(seq);
                        if run.ledger.acked_weight() >= max_in_flight / 2 || run.finished() {
                            self.commit(&mut run).await;
                        }
                    }
                    // Its batches will never be acknowledged: stop, commit what every output
                    // delivered, and leave the rest to the next start.
                    Some(Ack::Crashed { output, message }) => {
                        run.crashed = Some(PipelineError::Crashed { part: format!("output {output}"), message });
                        break;
                    }
                    // Every output task ended: only after an abort.
                    None => break,
                },
                _ = commit_tick.tick() => {
                    self.commit(&mut run).await;
                    self.metrics.checkpoint_age.set(run.ledger.since_commit().as_secs_f64());
                    run.progress.report(run.ledger.committed().events, run.ledger.in_flight());
                }
                changed = shutdown.changed(), if run.drain_deadline.is_none() => {
                    if changed.is_err() || *shutdown.borrow() {
                        let timeout = self.config.pipeline.shutdown_timeout;
                        tracing::info!(in_flight = run.ledger.in_flight(), ?timeout, "shutting down: delivering what is in flight");
                        run.drain_deadline = Some(Instant::now() + timeout);
                    }
                }
                _ = tokio::time::sleep_until(deadline), if run.drain_deadline.is_some() => {
                    tracing::warn!(undelivered_batches = run.ledger.awaiting_delivery(), "shutdown timeout reached with events undelivered; they will be read again at the next start");
                    break;
                }
            }
        }
        self.commit(&mut run).await;
        self.store.finish().await;
        run.summary.events_committed = run.ledger.committed().events;
        run.summary.undelivered = run.ledger.uncommitted();
        tasks.stop(run.summary.undelivered).await;
        match run.crashed {
            Some(crash) => Err(crash),
            None => Ok(run.summary),
        }
    }

    /// Loads the checkpoint and makes the source from its cursor; answers it with the intake
    /// (dedup restored) and the totals the checkpoint recorded.
    async fn resume<S: Source>(
        &mut self,
        make_source: impl FnOnce(Option<serde_json::Value>) -> Result<S, SourceError>,
    ) -> Result<(S, Intake, Totals), PipelineError> {
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
        if let Some(cp) = &stored
            && cp.source != S::KIND
        {
            return Err(PipelineError::WrongSource {
                found: cp.source.clone(),
                expected: S::KIND.to_owned(),
            });
        }
        if let Some(cp) = &stored {
            self.committed.send_replace(cp.cursor.clone());
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
        let window = dedup::Window {
            capacity: self.config.checkpoint.dedup_capacity,
            // What a crash can make the source read again: everything not yet committed.
            floor: self.recovery_window(),
            span: source.reread_span(),
        };
        let intake = Intake {
            normalise: NormaliseContext {
                source_name: Arc::from(self.config.name.as_str()),
                subscription_id: self.config.subscription_id.clone(),
            },
            source_kind: S::KIND,
            hasher: IdHasher::new(seed),
            dedup: DedupSet::from_hashes(window, ids),
            dead_letters: DeadLetters::new(self.config.state_dir.join("dead-letter.ndjson")),
            metrics: self.metrics.clone(),
        };
        Ok((source, intake, committed))
    }

    /// What a crash can leave dispatched but not committed, which a restart reads again.
    fn recovery_window(&self) -> usize {
        self.config.pipeline.max_in_flight_events + self.config.pipeline.batch_size
    }

    fn build_outputs(&self, hasher: IdHasher) -> Result<Vec<AnyOutput>, PipelineError> {
        let context = OutputContext {
            hasher,
            recovery_window: self.recovery_window(),
            metrics: self.metrics.clone(),
        };
        let outputs = self.config.outputs.iter().enumerate();
        Ok(outputs
            .map(|(i, config)| AnyOutput::build(config, i, &context))
            .collect::<Result<_, _>>()?)
    }

    /// Writes what every output delivered and no checkpoint recorded yet, if anything; a failed
    /// write is reported and left for the next commit.
    async fn commit(&mut self, run: &mut Run) {
        let Some(due) = run.ledger.due() else {
            return;
        };
        let source_kind = run.intake.source_kind;
        let checkpoint = Checkpoint {
            version: CHECKPOINT_VERSION,
            source: source_kind.to_owned(),
            cursor: due.cursor.clone(),
            id_seed: run.intake.hasher.seed(),
            recent_ids: Checkpoint::encode_ids(run.intake.dedup.oldest_first(due.undelivered_ids)),
            committed_at: Utc::now(),
            events_delivered: due.totals.events,
            dead_lettered: due.totals.dead_lettered,
            offsets: due.offsets.clone(),
            last_event_time: due.newest,
        };
        let ledger = &mut run.ledger;
        match self.store.commit(&checkpoint).await {
            Ok(()) => {
                ledger.commit_written();
                self.committed.send_replace(checkpoint.cursor);
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

/// One run's state besides its tasks: the books, the intake, and how it ends.
#[derive(Debug)]
struct Run {
    ledger: Ledger,
    intake: Intake,
    summary: RunSummary,
    source_done: bool,
    /// Set once a shutdown began: batches in flight are delivered until then.
    drain_deadline: Option<Instant>,
    crashed: Option<PipelineError>,
    progress: Progress,
}

impl Run {
    /// Everything dispatched was delivered, and nothing more will be taken.
    fn finished(&self) -> bool {
        self.ledger.awaiting_delivery() == 0 && (self.source_done || self.drain_deadline.is_some())
    }

    /// Whether another batch may be taken from the source: not after it ended or a shutdown
    /// began, nor while `max_in_flight` events wait for their commit.
    fn takes_batches(&self, max_in_flight: usize) -> bool {
        !self.source_done
            && self.drain_deadline.is_none()
            && self.ledger.in_flight() < max_in_flight
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
    use crate::json::RawJson;
    use crate::normalise::RawRecord;
    use crate::source::{Batch, Fetch, Malformed};
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
            schema: crate::normalise::Schema::Api,
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
            schema: crate::normalise::Schema::Api,
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
