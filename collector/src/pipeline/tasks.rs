//! The pipeline's tasks: one fetching from the source, one per output delivering and syncing.
//! Each reports back over a channel; a panic in one becomes a report, never a silent stall.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::output::{AnyOutput, Dispatch, Output};
use crate::source::{Batch, Fetch, Source};

/// What an output task reports: a batch delivered, or its own crash.
#[derive(Debug)]
pub enum Ack {
    Delivered { seq: u64 },
    Crashed { output: String, message: String },
}

/// How many fetched batches may wait between the source and the dispatcher.
const SOURCE_QUEUE: usize = 2;

/// The tasks of one pipeline run, and the channels to and from them.
#[derive(Debug)]
pub struct Tasks {
    /// Fetched batches, each with the source's re-read span after fetching it.
    pub batches: mpsc::Receiver<(Batch, Option<Duration>)>,
    /// Every output's acknowledgements.
    pub acks: mpsc::UnboundedReceiver<Ack>,
    outputs: Vec<mpsc::UnboundedSender<Arc<Dispatch>>>,
    source: JoinHandle<()>,
    output_tasks: Vec<JoinHandle<()>>,
    abort: watch::Sender<bool>,
}

impl Tasks {
    /// Starts fetching from `source` and one task per output.
    pub fn spawn<S: Source>(
        source: S,
        outputs: Vec<AnyOutput>,
        poll_interval: Duration,
        metrics: &Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Tasks {
        let (source_tx, batches) = mpsc::channel(SOURCE_QUEUE);
        let (abort, abort_rx) = watch::channel(false);
        let source = tokio::spawn(run_source(
            source,
            source_tx,
            poll_interval,
            metrics.clone(),
            shutdown,
        ));
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let mut senders = Vec::new();
        let mut output_tasks = Vec::new();
        for output in outputs {
            let (tx, rx) = mpsc::unbounded_channel();
            metrics.set_output_error(output.name(), None);
            senders.push(tx);
            let name = output.name().to_owned();
            let task = run_output(
                output,
                rx,
                ack_tx.clone(),
                metrics.clone(),
                abort_rx.clone(),
            );
            output_tasks.push(tokio::spawn(report_crash(
                name,
                task,
                ack_tx.clone(),
                metrics.clone(),
            )));
        }
        Tasks {
            batches,
            acks,
            outputs: senders,
            source,
            output_tasks,
            abort,
        }
    }

    /// Hands a batch to every output.
    pub fn send(&self, dispatch: Arc<Dispatch>) {
        for tx in &self.outputs {
            // A closed channel means the output task ended, which happens only on abort.
            let _ = tx.send(dispatch.clone());
        }
    }

    /// After the source closed its channel: the message it panicked with, if it crashed rather
    /// than ran out of events.
    pub async fn source_crash(&mut self) -> Option<String> {
        match (&mut self.source).await {
            Err(e) if e.is_panic() => Some(panic_message(e.into_panic())),
            _ => None,
        }
    }

    /// Stops every task. Outputs finish the batch at hand and close; with events `undelivered`
    /// they abort their retries instead, since those events are read again at the next start.
    pub async fn stop(self, undelivered: bool) {
        self.source.abort();
        drop(self.outputs);
        if undelivered {
            let _ = self.abort.send(true);
        }
        for task in self.output_tasks {
            // A crash was reported as an Ack.
            let _ = task.await;
        }
    }
}

/// Fetches from `source` until it is exhausted or `shutdown`, sending each batch with the source's
/// re-read span as it stands after fetching it; retries failures with backoff.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
