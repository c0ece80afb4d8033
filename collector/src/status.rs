//! The collector's report to its LogSource's status: progress (last event time, lag, events
//! delivered, last commit) and the error it is stuck on, if any. The operator turns these into the
//! `Collecting` and `Degraded` conditions.
//!
//! One task writes every report, with a merge patch of only these fields, so the operator's own
//! fields are never overwritten. It is cheap for the API server: progress at most every
//! `statusInterval`, a change of error at most every [`ERROR_REPORT_GAP`], nothing when nothing
//! changed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use azlog_config::report::{self, CollectorError, CollectorReport};
use chrono::{DateTime, SecondsFormat, Utc};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::{Metrics, Problem};

/// How often the health state is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A new or cleared error is reported this soon, but no more often: an error whose message
/// changes at every retry must not turn into a write per retry.
pub const ERROR_REPORT_GAP: Duration = Duration::from_secs(5);

/// What the last checkpoint commit recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub last_event_time: Option<DateTime<Utc>>,
    pub events_delivered: u64,
    pub dead_lettered: u64,
    /// Ids dedup forgot before their span ended, since the collector started.
    pub dedup_forgotten_early: u64,
    pub committed_at: DateTime<Utc>,
}

/// Starts the reporter for LogSource `name` of `namespace`. Progress is handed to it through the
/// answered sender; dropping the sender makes it write what it has not yet written and end, which
/// the answered handle waits for.
pub fn spawn(
    client: &kube::Client,
    namespace: &str,
    name: String,
    interval: Duration,
    metrics: Arc<Metrics>,
) -> (watch::Sender<Option<Progress>>, JoinHandle<()>) {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(report::GROUP, report::VERSION, report::KIND),
        report::PLURAL,
    );
    let api = Api::namespaced_with(client.clone(), namespace, &resource);
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(report_loop(api, name, interval, metrics, rx));
    (tx, task)
}

/// The parts of a problem that, when they change, are worth a write.
type ProblemKey = Option<(report::Component, Option<String>, String)>;

fn key(problem: &Option<Problem>) -> ProblemKey {
    problem
        .as_ref()
        .map(|p| (p.component, p.output.clone(), p.message.clone()))
}

async fn report_loop(
    api: Api<DynamicObject>,
    name: String,
    interval: Duration,
    metrics: Arc<Metrics>,
    mut progress: watch::Receiver<Option<Progress>>,
) {
    // Unknown at start: the first look always writes, which clears an error a previous run left.
    let mut reported: Option<ProblemKey> = None;
    let mut reported_progress: Option<Progress> = None;
    let mut last_write: Option<Instant> = None;
    let mut last_progress_write: Option<Instant> = None;
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let closed = tokio::select! {
            _ = tick.tick() => false,
            changed = progress.changed() => changed.is_err(),
        };
        let current = progress.borrow_and_update().clone();
        let problem = metrics.problem();
        // At the end, whatever is unwritten is written at once.
        let error_due = reported.as_ref() != Some(&key(&problem))
            && (closed || last_write.is_none_or(|at| at.elapsed() >= ERROR_REPORT_GAP));
        let progress_due = current != reported_progress
            && (closed || last_progress_write.is_none_or(|at| at.elapsed() >= interval));
        if error_due || progress_due {
            let patch = json!({ "status": status(current.as_ref(), problem.as_ref()) });
            last_write = Some(Instant::now());
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {
                    reported = Some(key(&problem));
                    if current.is_some() {
                        last_progress_write = last_write;
                    }
                    reported_progress = current;
                }
                // The status is for people; the checkpoint is what matters. Tried again later.
                Err(e) => {
                    tracing::warn!(logsource = %name, error = %e, "failed to report to the LogSource status")
                }
            }
        }
        if closed {
            return;
        }
    }
}

/// The status fields the collector owns, as a merge patch. `lastError` is written as null when
/// nothing fails, which a merge patch takes as "remove".
fn status(progress: Option<&Progress>, problem: Option<&Problem>) -> Value {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut report = CollectorReport {
        last_error: problem.map(|p| CollectorError {
            component: p.component,
            output: p.output.clone(),
            message: p.message.clone(),
            since: time(p.since),
        }),
        ..CollectorReport::default()
    };
    if let Some(p) = progress {
        report.last_event_time = p.last_event_time.map(time);
        report.lag_seconds = p
            .last_event_time
            .map(|t| (Utc::now() - t).num_seconds().max(0));
        report.events_delivered = Some(p.events_delivered);
        report.dead_lettered = Some(p.dead_lettered);
        report.dedup_forgotten_early = Some(p.dedup_forgotten_early);
        report.checkpoint = Some(time(p.committed_at));
    }
    let mut status = json!(report);
    if report.last_error.is_none() {
        status["lastError"] = Value::Null;
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_carries_progress_and_clears_or_sets_the_error() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let progress = Progress {
            last_event_time: Some(at),
            events_delivered: 42,
            dead_lettered: 2,
            dedup_forgotten_early: 0,
            committed_at: at,
        };
        let healthy = status(Some(&progress), None);
        assert_eq!(healthy["lastError"], Value::Null);
        assert_eq!(healthy["eventsDelivered"], 42);
        assert_eq!(healthy["deadLettered"], 2);
        assert_eq!(healthy["lastEventTime"], "2026-11-22T10:00:00Z");
        let failing = status(
            None,
            Some(&Problem {
                component: report::Component::Output,
                output: Some("syslog-0".into()),
                message: "connection refused".into(),
                since: at,
            }),
        );
        assert_eq!(failing["lastError"]["output"], "syslog-0");
        assert_eq!(failing["lastError"]["since"], "2026-11-22T10:00:00Z");
        assert!(failing.get("eventsDelivered").is_none());
    }
}
