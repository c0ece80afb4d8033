//! The operator's Prometheus metrics, served on `/metrics`.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    /// Reconciles by result (ok, error, waiting_for_caches).
    pub reconciles: IntCounterVec,
    /// Failed reconciles by category (apply, secret_lookup, status).
    pub reconcile_errors: IntCounterVec,
    pub reconcile_duration: Histogram,
    /// Writes to the API server by kind; zero at steady state.
    pub writes: IntCounterVec,
    /// Calls to Entra ID, ARM and Graph by service and HTTP status (`transport` when unanswered).
    pub azure_requests: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "azlog_operator_reconciles_total",
                "LogSource reconciles by result",
            ),
            &["result"],
        )?;
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "azlog_operator_reconcile_errors_total",
                "Failed LogSource reconciles by category",
            ),
            &["category"],
        )?;
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "azlog_operator_reconcile_duration_seconds",
                "Time spent in one LogSource reconcile",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
        )?;
        let writes = IntCounterVec::new(
            Opts::new(
                "azlog_operator_api_writes_total",
                "Objects written to the API server, by kind",
            ),
            &["kind"],
        )?;
        let azure_requests = IntCounterVec::new(
            Opts::new(
                "azlog_operator_azure_requests_total",
                "Calls to Entra ID, Azure Resource Manager and Microsoft Graph by SubscriptionAuthorizations, by service and HTTP status",
            ),
            &["service", "status"],
        )?;
        registry.register(Box::new(azure_requests.clone()))?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(reconcile_errors.clone()))?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        Ok(Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            writes,
            azure_requests,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "failed to encode metrics");
        }
        out
    }
}
