//! The pipeline's books: batches dispatched and not yet committed, which outputs acknowledged
//! them, and what the next checkpoint may record. The heart of "nothing lost, nothing doubled": a
//! batch's cursor may be committed only once it and every batch before it were delivered by
//! every output, and its events count against the in-flight bound until then.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use crate::checkpoint::Offsets;

/// What the checkpoint has recorded over its lifetime.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub events: u64,
    pub dead_lettered: u64,
}

/// A batch handed to the outputs.
#[derive(Debug, Clone)]
pub struct Dispatched {
    pub cursor: serde_json::Value,
    /// The per-key positions it moves (see [`crate::source::Batch::offsets`]).
    pub offsets: Offsets,
    /// Events sent to the outputs (duplicates left out): each added its id to the dedup set, which
    /// must not be persisted before the batch is delivered.
    pub events: usize,
    pub dead_lettered: u64,
    pub newest: Option<DateTime<Utc>>,
}

/// A dispatched batch waiting for its outputs.
#[derive(Debug)]
struct Pending {
    seq: u64,
    remaining: usize,
    batch: Dispatched,
    /// What it holds against the in-flight bound: its events, at least one (even an
    /// all-duplicate batch carries a cursor and must pass through in order).
    weight: usize,
}

/// Progress every output delivered but no checkpoint has recorded yet.
#[derive(Debug, Default)]
struct Acked {
    cursor: Option<serde_json::Value>,
    /// The newest position for each key of the acknowledged batches.
    offsets: Offsets,
    batches: usize,
    weight: usize,
    events: u64,
    dead_lettered: u64,
}

/// What the next commit writes.
#[derive(Debug, PartialEq)]
pub struct Due<'a> {
    pub cursor: &'a serde_json::Value,
    pub offsets: &'a Offsets,
    /// Totals including what this commit records.
    pub totals: Totals,
    /// Time of the newest event delivered.
    pub newest: Option<DateTime<Utc>>,
    /// How many of the newest dedup ids belong to batches not yet delivered everywhere.
    pub undelivered_ids: usize,
}

#[derive(Debug)]
pub struct Ledger {
    outputs: usize,
    seq: u64,
    pending: VecDeque<Pending>,
    acked: Acked,
    committed: Totals,
    in_flight: usize,
    newest: Option<DateTime<Utc>>,
    last_commit: tokio::time::Instant,
}

impl Ledger {
    /// The books of a pipeline with `outputs` outputs, resuming from `committed`.
    pub fn new(outputs: usize, committed: Totals) -> Ledger {
        Ledger {
            outputs,
            seq: 0,
            pending: VecDeque::new(),
            acked: Acked::default(),
            committed,
            in_flight: 0,
            newest: None,
            last_commit: tokio::time::Instant::now(),
        }
    }

    /// Since the last checkpoint was written (or the books were opened).
    pub fn since_commit(&self) -> std::time::Duration {
        self.last_commit.elapsed()
    }

    /// Records a batch handed to every output; answers its sequence number.
    pub fn dispatch(&mut self, batch: Dispatched) -> u64 {
        self.seq += 1;
        let weight = batch.events.max(1);
        self.in_flight += weight;
        self.pending.push_back(Pending {
            seq: self.seq,
            remaining: self.outputs,
            batch,
            weight,
        });
        self.seq
    }

    /// One output delivered batch `seq`. Batches every output delivered move, in order, to what
    /// the next commit records; one delivered out of order waits for those before it.
    pub fn delivered(&mut self, seq: u64) {
        if let Some(p) = self.pending.iter_mut().find(|p| p.seq == seq) {
            p.remaining = p.remaining.saturating_sub(1);
        }
        while self.pending.front().is_some_and(|p| p.remaining == 0) {
            let Some(done) = self.pending.pop_front() else {
                break;
            };
            let acked = &mut self.acked;
            acked.cursor = Some(done.batch.cursor);
            acked.offsets.extend(done.batch.offsets);
            acked.batches += 1;
            acked.weight += done.weight;
            acked.events += done.batch.events as u64;
            acked.dead_lettered += done.batch.dead_lettered;
            self.newest = self.newest.max(done.batch.newest);
        }
    }

    /// Events dispatched and not yet committed.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Delivered events waiting for a commit.
    pub fn acked_weight(&self) -> usize {
        self.acked.weight
    }

    /// Whether a batch still waits for an output.
    pub fn awaiting_delivery(&self) -> usize {
        self.pending.len()
    }

    /// Whether anything dispatched is not yet in a checkpoint.
    pub fn uncommitted(&self) -> bool {
        !self.pending.is_empty() || self.acked.batches > 0
    }

    pub fn committed(&self) -> Totals {
        self.committed
    }

    /// What the next commit writes; None when nothing delivered waits for one.
    pub fn due(&self) -> Option<Due<'_>> {
        if self.acked.batches == 0 {
            return None;
        }
        Some(Due {
            cursor: self.acked.cursor.as_ref()?,
            offsets: &self.acked.offsets,
            totals: Totals {
                events: self.committed.events + self.acked.events,
                dead_lettered: self.committed.dead_lettered + self.acked.dead_lettered,
            },
            newest: self.newest,
            undelivered_ids: self.pending.iter().map(|p| p.batch.events).sum(),
        })
    }

    /// The commit of what [`Ledger::due`] answered was written: its events leave the in-flight
    /// count. A commit that failed is not recorded, so the next one writes it too.
    pub fn commit_written(&mut self) {
        self.committed.events += self.acked.events;
        self.committed.dead_lettered += self.acked.dead_lettered;
        self.in_flight -= self.acked.weight;
        self.acked = Acked::default();
        self.last_commit = tokio::time::Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u64, events: usize) -> Dispatched {
        Dispatched {
            cursor: serde_json::json!({ "n": n }),
            offsets: Offsets::from([(format!("blob-{n}"), Some(n * 10))]),
            events,
            dead_lettered: n % 2,
            newest: None,
        }
    }

    #[test]
    fn acks_in_any_order_commit_only_the_batches_delivered_everywhere_in_order() {
        let mut ledger = Ledger::new(2, Totals::default());
        let seqs: Vec<u64> = (1..=3).map(|n| ledger.dispatch(batch(n, 10))).collect();
        assert_eq!(ledger.in_flight(), 30);
        // Both outputs delivered the third, one the first: nothing may be committed yet.
        ledger.delivered(seqs[2]);
        ledger.delivered(seqs[2]);
        ledger.delivered(seqs[0]);
        assert_eq!(ledger.due(), None);
        // The first is delivered everywhere: its cursor is due, the others' ids are held back.
        ledger.delivered(seqs[0]);
        let due = ledger.due().expect("due");
        assert_eq!(due.cursor, &serde_json::json!({"n": 1}));
        assert_eq!(due.undelivered_ids, 20);
        assert_eq!(
            due.totals,
            Totals {
                events: 10,
                dead_lettered: 1
            }
        );
        // The second arrives: the third's cursor is due, with every offset and total.
        ledger.delivered(seqs[1]);
        ledger.delivered(seqs[1]);
        let due = ledger.due().expect("due");
        assert_eq!(due.cursor, &serde_json::json!({"n": 3}));
        assert_eq!(due.undelivered_ids, 0);
        assert_eq!(
            due.totals,
            Totals {
                events: 30,
                dead_lettered: 2
            }
        );
        assert_eq!(
            due.offsets.keys().collect::<Vec<_>>(),
            ["blob-1", "blob-2", "blob-3"]
        );
        ledger.commit_written();
        assert_eq!((ledger.in_flight(), ledger.uncommitted()), (0, false));
        assert_eq!(ledger.due(), None);
    }

    #[test]
    fn a_failed_output_holds_back_its_batch_and_everything_after_it() {
        let mut ledger = Ledger::new(2, Totals::default());
        let first = ledger.dispatch(batch(1, 5));
        let second = ledger.dispatch(batch(2, 5));
        let third = ledger.dispatch(batch(3, 5));
        ledger.delivered(first);
        ledger.delivered(first);
        // The second output keeps failing the second batch; the third is delivered by both.
        ledger.delivered(second);
        ledger.delivered(third);
        ledger.delivered(third);
        let due = ledger.due().expect("due");
        assert_eq!(due.cursor, &serde_json::json!({"n": 1}));
        assert_eq!(due.totals.events, 5);
        ledger.commit_written();
        // What stays in flight bounds what the source may fetch, and is read again after a stop.
        assert_eq!(ledger.in_flight(), 10);
        assert_eq!(ledger.awaiting_delivery(), 2);
        assert!(ledger.uncommitted());
        assert_eq!(ledger.due(), None);
    }

    #[test]
    fn a_commit_that_failed_is_written_whole_by_the_next_and_counted_once() {
        let mut ledger = Ledger::new(
            1,
            Totals {
                events: 100,
                dead_lettered: 3,
            },
        );
        let first = ledger.dispatch(batch(1, 4));
        ledger.delivered(first);
        let failed = ledger.due().expect("due").totals;
        assert_eq!(
            failed,
            Totals {
                events: 104,
                dead_lettered: 4
            }
        );
        // The store failed (or the process died before it answered): nothing is recorded, and the
        // events stay in flight.
        let second = ledger.dispatch(batch(2, 6));
        ledger.delivered(second);
        let due = ledger.due().expect("due");
        assert_eq!(due.cursor, &serde_json::json!({"n": 2}));
        assert_eq!(
            due.totals,
            Totals {
                events: 110,
                dead_lettered: 4
            }
        );
        assert_eq!(due.offsets.len(), 2, "the failed commit's offsets too");
        ledger.commit_written();
        assert_eq!(
            ledger.committed(),
            Totals {
                events: 110,
                dead_lettered: 4
            }
        );
        assert_eq!(ledger.in_flight(), 0);
    }

    #[test]
    fn an_all_duplicate_batch_still_passes_its_cursor_in_order() {
        let mut ledger = Ledger::new(1, Totals::default());
        let empty = ledger.dispatch(batch(1, 0));
        assert_eq!(ledger.in_flight(), 1, "it holds a place in flight");
        ledger.delivered(empty);
        assert_eq!(
            ledger.due().expect("due").cursor,
            &serde_json::json!({"n": 1})
        );
    }

    #[test]
    fn a_restart_in_the_window_between_delivery_and_commit_counts_what_it_reads_again_once() {
        let mut before = Ledger::new(1, Totals::default());
        let first = before.dispatch(batch(1, 4));
        before.delivered(first);
        before.commit_written();
        // The second batch is delivered, then the process dies before its commit is written.
        let second = before.dispatch(batch(2, 6));
        before.delivered(second);
        assert_eq!(before.due().expect("due").totals.events, 10);
        let written = before.committed();
        assert_eq!(
            written.events, 4,
            "the checkpoint still holds the first commit"
        );

        // The restart resumes from what was written and reads the second batch again; dedup
        // keeps its events from the outputs, and the books count them once.
        let mut after = Ledger::new(1, written);
        assert!(!after.uncommitted());
        let again = after.dispatch(batch(2, 6));
        after.delivered(again);
        let due = after.due().expect("due");
        assert_eq!(due.cursor, &serde_json::json!({"n": 2}));
        assert_eq!(
            due.totals,
            Totals {
                events: 10,
                dead_lettered: 1
            }
        );
        after.commit_written();
        assert_eq!(after.committed().events, 10);
    }
}
