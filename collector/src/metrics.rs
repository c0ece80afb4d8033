//! Prometheus metrics and the health state behind `/readyz`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use azlog_config::report::Component;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the collector exports. Names follow Prometheus conventions: `_total` counters,
/// base units (seconds, bytes).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub events_received: IntCounterVec,
    pub events_duplicate: IntCounter,
    pub dedup_forgotten_early: IntCounter,
    pub events_dead_lettered: IntCounterVec,
    pub events_delivered: IntCounterVec,
    pub events_skipped_recovered: IntCounterVec,
    pub events_truncated: IntCounterVec,
    pub output_retries: IntCounterVec,
    output_up: IntGaugeVec,
    pub delivery_latency: HistogramVec,
    pub source_errors: IntCounterVec,
    pub source_fetch_duration: Histogram,
    pub in_flight_events: IntGauge,
    pub source_queries_in_flight: IntGauge,
    pub source_partitions: IntGauge,
    pub checkpoint_commits: IntCounter,
    pub checkpoint_errors: IntCounter,
    pub checkpoint_ids_lost: IntCounter,
    pub checkpoint_age: Gauge,
    pub last_event_timestamp: Gauge,
    pub lag_seconds: GaugeVec,
    pub files_finished: IntCounterVec,
    pub files_deleted: IntCounterVec,
    pub azure_requests: IntCounterVec,
    pub azure_throttled: IntCounterVec,
    pub azure_remaining_reads: IntGaugeVec,
    health: Mutex<Health>,
}

/// What is failing right now, per part of the pipeline. Each part sets its own entry after every
/// attempt, so an entry clears itself once the part works again.
#[derive(Debug, Default)]
struct Health {
    source: Option<Failure>,
    outputs: BTreeMap<String, Option<Failure>>,
    checkpoint: Option<Failure>,
    /// When the source's fetch now under way began.
    fetching_since: Option<std::time::Instant>,
}

/// A fetch that has not returned for this long is stuck (every Azure request times out after two
/// minutes, so this is a hang, not a slow service): `/healthz` fails and the kubelet restarts the
/// collector, which resumes from its checkpoint.
pub const STUCK_FETCH: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Debug, Clone)]
struct Failure {
    message: String,
    since: chrono::DateTime<chrono::Utc>,
}

/// Keeps the start of a failure that goes on (its message may change between attempts).
/// Every error a part reports passes here on its way to `/readyz` and the LogSource status (and
/// so its conditions and Events): the place no credential may get past.
fn update(slot: &mut Option<Failure>, error: Option<String>) {
    *slot = error.map(|message| Failure {
        since: slot.as_ref().map_or_else(chrono::Utc::now, |f| f.since),
        message: crate::redact::redact(&message).into_owned(),
    });
}

/// The part of the pipeline that is failing, and why: what `/readyz` answers and what the
/// LogSource status shows as `lastError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub component: Component,
    /// The failing output's name, for `output`.
    pub output: Option<String>,
    pub message: String,
    pub since: chrono::DateTime<chrono::Utc>,
}

/// Registers a metric built from constant definitions; failing is a programming error that every test
/// would catch, so it panics with prometheus's description of what is wrong.
fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.unwrap_or_else(|e| panic!("invalid metric definition: {e}"));
    registry
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|e| panic!("metric registered twice: {e}"));
    metric
}

impl Metrics {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("azlog".into()), None)
            .unwrap_or_else(|e| panic!("registry: {e}"));
        let r = &registry;
        let counters = |name: &str, help: &str, labels: &[&str]| {
            register(r, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let events_received = counters(
            "events_received_total",
            "Records fetched from the source, by event kind.",
            &["kind"],
        );
        let events_dead_lettered = counters(
            "events_dead_lettered_total",
            "Records written to the dead-letter file, by reason.",
            &["reason"],
        );
        let events_delivered = counters(
            "events_delivered_total",
            "Events an output delivered.",
            &["output"],
        );
        let events_skipped_recovered = counters(
            "events_recovered_skipped_total",
            "Events an output found already written before a crash and did not write again.",
            &["output"],
        );
        let events_truncated = counters(
            "events_truncated_total",
            "Events cut to the output's maximum message size.",
            &["output"],
        );
        let output_retries = counters(
            "output_retries_total",
            "Failed delivery attempts that will be retried, by error category.",
            &["output", "category"],
        );
        let source_errors = counters(
            "source_errors_total",
            "Failed source fetches, by error category.",
            &["category"],
        );
        let files_finished = counters(
            "files_finished_total",
            "Files the file output finished (renamed to their final name).",
            &["output"],
        );
        let files_deleted = counters(
            "files_deleted_total",
            "Finished files the retention policy deleted, by output and reason (size, age).",
            &["output", "reason"],
        );
        let azure_requests = counters(
            "azure_requests_total",
            "Requests to Azure APIs, by API and HTTP status (\"error\" when no response came).",
            &["api", "status"],
        );
        let azure_throttled = counters(
            "azure_throttled_total",
            "Azure API requests answered with throttling (429, or 503 with Retry-After).",
            &["api"],
        );
        let azure_remaining_reads = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "azure_remaining_reads",
                    "ARM's remaining read budget for the subscription, from its last answer.",
                ),
                &["api"],
            ),
        );
        let events_duplicate = register(
            r,
            IntCounter::new(
                "events_duplicate_total",
                "Events recognised as already delivered and not sent again.",
            ),
        );
        let output_up = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "output_up",
                    "1 when the output's last delivery attempt succeeded.",
                ),
                &["output"],
            ),
        );
        let delivery_latency = register(
            r,
            HistogramVec::new(
                HistogramOpts::new("delivery_latency_seconds", "Time from dispatching a batch to the output reporting it delivered, retries included.")
                    .buckets(vec![0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0]),
                &["output"],
            ),
        );
        let source_fetch_duration = register(
            r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "source_fetch_duration_seconds",
                    "Time one source fetch took.",
                )
                .buckets(vec![0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
            ),
        );
        let in_flight_events = register(
            r,
            IntGauge::new(
                "in_flight_events",
                "Events dispatched to outputs and not yet checkpointed (the queue depth).",
            ),
        );
        let source_queries_in_flight = register(
            r,
            IntGauge::new(
                "source_queries_in_flight",
                "Slices of a backlog the source is reading at once (above 1 while it reads ahead in parallel).",
            ),
        );
        let source_partitions = register(
            r,
            IntGauge::new(
                "source_partitions",
                "Event hub partitions this collector has a receiver on (its share when collectors share the hub).",
            ),
        );
        let checkpoint_commits = register(
            r,
            IntCounter::new("checkpoint_commits_total", "Checkpoints written."),
        );
        let checkpoint_errors = register(
            r,
            IntCounter::new(
                "checkpoint_errors_total",
                "Checkpoint writes that failed (retried at the next commit).",
            ),
        );
        let dedup_forgotten_early = register(
            r,
            IntCounter::new(
                "dedup_forgotten_early_total",
                "Event ids forgotten because checkpoint.dedupCapacity was reached while the source could still read their events again; such a re-read is delivered twice.",
            ),
        );
        let checkpoint_ids_lost = register(
            r,
            IntCounter::new(
                "checkpoint_ids_lost_total",
                "Starts that found the checkpoint but not its recent ids (a new pod on a new volume): what the source reads again may be delivered twice.",
            ),
        );
        let checkpoint_age = register(
            r,
            Gauge::new(
                "checkpoint_age_seconds",
                "Seconds since the checkpoint was last written.",
            ),
        );
        let last_event_timestamp = register(
            r,
            Gauge::new(
                "last_event_timestamp_seconds",
                "Event time of the newest delivered and checkpointed event, as a Unix time.",
            ),
        );
        let lag_seconds = register(
            r,
            GaugeVec::new(
                Opts::new(
                    "lag_seconds",
                    "Now minus the event time of the newest checkpointed event.",
                ),
                &["source"],
            ),
        );
        Metrics {
            registry,
            events_received,
            events_duplicate,
            events_dead_lettered,
            events_delivered,
            events_skipped_recovered,
            events_truncated,
            output_retries,
            output_up,
            delivery_latency,
            source_errors,
            source_fetch_duration,
            in_flight_events,
            source_queries_in_flight,
            source_partitions,
            checkpoint_commits,
            checkpoint_errors,
            checkpoint_ids_lost,
            dedup_forgotten_early,
            checkpoint_age,
            last_event_timestamp,
            lag_seconds,
            files_finished,
            files_deleted,
            azure_requests,
            azure_throttled,
            azure_remaining_reads,
            health: Mutex::new(Health::default()),
        }
    }

    /// Records the outcome of an output's last delivery attempt: None when it worked, else why it
    /// failed (the `output_up` gauge and `/readyz`).
    pub fn set_output_error(&self, output: &str, error: Option<String>) {
        self.output_up
            .with_label_values(&[output])
            .set(i64::from(error.is_none()));
        if let Ok(mut health) = self.health.lock() {
            update(health.outputs.entry(output.to_owned()).or_default(), error);
        }
    }

    /// Records the outcome of the source's last fetch: None when it worked, else why it failed.
    pub fn set_source_error(&self, error: Option<String>) {
        if let Ok(mut health) = self.health.lock() {
            update(&mut health.source, error);
        }
    }

    /// Records the outcome of the last checkpoint commit: None when it worked, else why it failed.
    pub fn set_checkpoint_error(&self, error: Option<String>) {
        if let Ok(mut health) = self.health.lock() {
            update(&mut health.checkpoint, error);
        }
    }

    /// The first failing part, in pipeline order (source, outputs by name, checkpoint).
    pub fn problem(&self) -> Option<Problem> {
        let Ok(health) = self.health.lock() else {
            return Some(Problem {
                component: Component::Collector,
                output: None,
                message: "the health state is unavailable".into(),
                since: chrono::Utc::now(),
            });
        };
        let problem = |component, output: Option<&String>, f: &Failure| Problem {
            component,
            output: output.cloned(),
            message: f.message.clone(),
            since: f.since,
        };
        health
            .source
            .as_ref()
            .map(|f| problem(Component::Source, None, f))
            .or_else(|| {
                health.outputs.iter().find_map(|(name, f)| {
                    f.as_ref()
                        .map(|f| problem(Component::Output, Some(name), f))
                })
            })
            .or_else(|| {
                health
                    .checkpoint
                    .as_ref()
                    .map(|f| problem(Component::Checkpoint, None, f))
            })
    }

    /// A fetch of the source begins.
    pub fn fetch_started(&self) {
        if let Ok(mut health) = self.health.lock() {
            health.fetching_since = Some(std::time::Instant::now());
        }
    }

    /// The fetch under way returned, with events or an error: the source is not stuck.
    pub fn fetch_finished(&self) {
        if let Ok(mut health) = self.health.lock() {
            health.fetching_since = None;
        }
    }

    /// What `/healthz` answers: an error once a fetch has hung for [`STUCK_FETCH`].
    pub fn alive(&self) -> Result<(), String> {
        self.alive_at(std::time::Instant::now())
    }

    fn alive_at(&self, now: std::time::Instant) -> Result<(), String> {
        let since = self.health.lock().ok().and_then(|h| h.fetching_since);
        match since.map(|since| now.saturating_duration_since(since)) {
            Some(waited) if waited >= STUCK_FETCH => Err(format!(
                "the source has waited {} for one fetch to return; restart the collector (it resumes from its checkpoint)",
                humantime::format_duration(std::time::Duration::from_secs(waited.as_secs()))
            )),
            _ => Ok(()),
        }
    }

    /// Ready means: the source's last fetch worked, no output is failing and the last checkpoint
    /// commit worked.
    pub fn ready(&self) -> Result<(), String> {
        match self.problem() {
            None => Ok(()),
            Some(p) => Err(match p.output {
                Some(output) => format!("output {output} is failing: {}", p.message),
                None => format!("the {} is failing: {}", p.component.as_str(), p.message),
            }),
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            return format!("# failed to encode metrics: {e}\n");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_that_never_returns_fails_healthz_and_one_that_returns_clears_it() {
        let metrics = Metrics::new();
        let now = std::time::Instant::now();
        assert_eq!(metrics.alive_at(now + STUCK_FETCH * 2), Ok(()));
        metrics.fetch_started();
        assert_eq!(metrics.alive(), Ok(()));
        let stuck = metrics.alive_at(now + STUCK_FETCH + std::time::Duration::from_secs(5));
        assert!(stuck.is_err_and(|why| why.contains("has waited 10m")));
        metrics.fetch_finished();
        assert_eq!(metrics.alive_at(now + STUCK_FETCH * 2), Ok(()));
    }
}
