//! What happens to a fetched batch before the outputs see it: every record normalised, what cannot
//! be goes to the dead-letter file (fsynced before the checkpoint can pass it), and events already
//! delivered are left out.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::RunSummary;
use super::ledger::Dispatched;
use crate::backoff::Backoff;
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::dedup::{DedupSet, IdHasher};
use crate::event::EventKind;
use crate::metrics::Metrics;
use crate::normalise::{NormaliseContext, Rejected, normalise};
use crate::output::Dispatch;
use crate::source::Batch;

#[derive(Debug)]
pub struct Intake {
    pub normalise: NormaliseContext,
    pub source_kind: &'static str,
    pub hasher: IdHasher,
    /// The ids of events delivered recently, which the checkpoint keeps.
    pub dedup: DedupSet,
    pub dead_letters: DeadLetters,
    pub metrics: Arc<Metrics>,
}

impl Intake {
    /// Normalises, dead-letters and deduplicates one fetched batch, the source's re-read span being
    /// `reread_span` after it. Answers the batch for the outputs, and what the ledger keeps of it
    /// until it is committed.
    pub async fn take(
        &mut self,
        batch: Batch,
        reread_span: Option<Duration>,
        summary: &mut RunSummary,
    ) -> (Dispatch, Dispatched) {
        self.dedup.set_span(reread_span);
        let source_kind = self.source_kind;
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
            match normalise(record, &self.normalise) {
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
                    source: &self.normalise.source_name,
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
        let forgotten = self.dedup.forgotten_early();
        events.retain(|event| self.dedup.insert(self.hasher.hash(&event.id)));
        let newly_forgotten = self.dedup.forgotten_early() - forgotten;
        if newly_forgotten > 0 {
            if forgotten == 0 {
                tracing::warn!(
                    capacity = self.dedup.capacity(),
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
}
