//! Prometheus metrics and the health state behind `/readyz`.

use std::collections::BTreeMap;
use std::sync::Mutex;

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
    pub checkpoint_commits: IntCounter,
    pub checkpoint_errors: IntCounter,
    pub checkpoint_age: Gauge,
    pub last_event_timestamp: Gauge,
    pub lag_seconds: GaugeVec,
    pub files_finished: IntCounterVec,
    pub azure_requests: IntCounterVec,
    pub azure_throttled: IntCounterVec,
    pub azure_remaining_reads: IntGaugeVec,
    source_error: Mutex<Option<String>>,
    outputs_ok: Mutex<BTreeMap<String, bool>>,
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
            checkpoint_commits,
            checkpoint_errors,
            checkpoint_age,
            last_event_timestamp,
            lag_seconds,
            files_finished,
            azure_requests,
            azure_throttled,
            azure_remaining_reads,
            source_error: Mutex::new(None),
            outputs_ok: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records whether an output's last delivery attempt worked (the `output_up` gauge and `/readyz`).
    pub fn set_output_up(&self, output: &str, ok: bool) {
        self.output_up
            .with_label_values(&[output])
            .set(i64::from(ok));
        if let Ok(mut outputs) = self.outputs_ok.lock() {
            outputs.insert(output.to_owned(), ok);
        }
    }

    /// Records the outcome of the source's last fetch: None when it worked, else why it failed.
    pub fn set_source_error(&self, error: Option<String>) {
        if let Ok(mut current) = self.source_error.lock() {
            *current = error;
        }
    }

    /// Ready means: the source's last fetch worked and no output is failing.
    pub fn ready(&self) -> Result<(), String> {
        match self.source_error.lock() {
            Ok(error) => {
                if let Some(error) = error.as_deref() {
                    return Err(format!("the source's last fetch failed: {error}"));
                }
            }
            Err(_) => return Err("(health state unavailable)".into()),
        }
        let failing: Vec<String> = match self.outputs_ok.lock() {
            Ok(outputs) => outputs
                .iter()
                .filter(|(_, ok)| !**ok)
                .map(|(name, _)| name.clone())
                .collect(),
            Err(_) => vec!["(health state unavailable)".into()],
        };
        if failing.is_empty() {
            Ok(())
        } else {
            Err(format!("outputs failing: {}", failing.join(", ")))
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
