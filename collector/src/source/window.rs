//! Time windows for APIs that filter on event time (Activity Log, Entra audit logs), which index
//! events minutes after they happen.
//!
//! Each window is read twice at most: once fresh, up to now, so events arrive promptly; and once
//! more after `lateArrival` has passed, when Azure has indexed everything that belongs in it. The
//! second read catches late events; dedup hides the ones already delivered. Re-reading the whole
//! late-arrival span on every poll would cost `lateArrival / pollInterval` reads of every event
//! instead of two.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::config::StartAt;

/// How far a stream has read, kept in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// Everything before this was read after it had `lateArrival` to settle.
    pub settled: DateTime<Utc>,
    /// Everything before this was read at least once.
    pub fresh: DateTime<Utc>,
}

/// One query's time range, both ends inclusive (the APIs filter with `ge` and `le`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The position once every record of the window is delivered.
    pub then: Position,
}

#[derive(Debug, Clone, Copy)]
pub struct Windows {
    pub late_arrival: TimeDelta,
    pub poll_interval: TimeDelta,
    /// How far back the API keeps events.
    pub retention: TimeDelta,
}

/// The longest window one query covers. A crash re-reads at most the window in progress, and dedup
/// must remember all of it; an hour keeps that small while catching up needs 24 queries a day.
pub const MAX_WINDOW: TimeDelta = TimeDelta::hours(1);

impl Windows {
    pub fn new(
        late_arrival: std::time::Duration,
        poll_interval: std::time::Duration,
        retention: TimeDelta,
    ) -> Windows {
        Windows {
            late_arrival: TimeDelta::from_std(late_arrival).unwrap_or(TimeDelta::MAX),
            poll_interval: TimeDelta::from_std(poll_interval).unwrap_or(TimeDelta::MAX),
            retention,
        }
    }

    /// How long after an event is first read its window may be read again: once it has settled
    /// (`lateArrival`), at the next settle step, at the next poll.
    pub fn reread_span(&self) -> std::time::Duration {
        (self.late_arrival + self.settle_step() + self.poll_interval)
            .to_std()
            .unwrap_or(std::time::Duration::MAX)
    }

    /// Settled windows are read in steps of a quarter of the late-arrival time: late events wait
    /// at most 25% longer, and a quiet subscription costs one extra query per step, not per poll.
    fn settle_step(&self) -> TimeDelta {
        self.poll_interval.max(self.late_arrival / 4)
    }

    /// Where a stream with no checkpoint begins.
    pub fn start(&self, start_at: StartAt, now: DateTime<Utc>) -> Position {
        let oldest = now - self.retention;
        let t = match start_at {
            StartAt::Now => now,
            StartAt::Earliest => oldest,
            StartAt::Time(t) => t.max(oldest),
        }
        .trunc_subsecs(0);
        Position {
            settled: t,
            fresh: t,
        }
    }

    /// The next window to read, or None when nothing is due yet.
    pub fn next(&self, position: &Position, now: DateTime<Utc>) -> Option<Window> {
        let now = now.trunc_subsecs(0);
        // Events older than the API keeps cannot be asked for; the API would refuse the query.
        let oldest = now - self.retention;
        let settled = position.settled.max(oldest);
        let fresh = position.fresh.max(settled);
        let settle_limit = now - self.late_arrival;
        if settle_limit - settled >= self.settle_step() {
            let end = (settled + MAX_WINDOW).min(settle_limit);
            return Some(Window {
                start: settled,
                end,
                then: Position {
                    settled: end,
                    fresh: fresh.max(end),
                },
            });
        }
        if now - fresh >= self.poll_interval {
            let end = (fresh + MAX_WINDOW).min(now);
            return Some(Window {
                start: fresh,
                end,
                then: Position {
                    settled,
                    fresh: end,
                },
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn windows() -> Windows {
        Windows {
            late_arrival: TimeDelta::minutes(20),
            poll_interval: TimeDelta::seconds(30),
            retention: TimeDelta::days(90),
        }
    }

    /// Drives the planner through `minutes` of wall time, polling every 30 s, and returns how many
    /// times each 10 s of event time was covered by a query.
    fn coverage(start: Position, from: DateTime<Utc>, minutes: i64) -> Vec<u32> {
        let w = windows();
        let mut position = start;
        let mut covered = vec![0u32; minutes as usize * 6];
        let mut now = from;
        while now < from + TimeDelta::minutes(minutes) {
            while let Some(window) = w.next(&position, now) {
                for (i, count) in covered.iter_mut().enumerate() {
                    let slice = from + TimeDelta::seconds(i as i64 * 10);
                    if slice >= window.start && slice + TimeDelta::seconds(9) <= window.end {
                        *count += 1;
                    }
                }
                position = window.then;
            }
            now += TimeDelta::seconds(30);
        }
        covered
    }

    #[test]
    fn every_moment_is_read_fresh_and_once_more_after_it_settled() {
        let from = t("2026-11-22T10:00:00Z");
        let start = windows().start(StartAt::Now, from);
        let covered = coverage(start, from, 120);
        // Time old enough to have settled was read exactly twice; none was read more.
        assert!(covered[..90 * 6].iter().all(|&c| c == 2), "{covered:?}");
        assert!(covered.iter().all(|&c| c <= 2));
    }

    #[test]
    fn a_backlog_is_read_once_in_hour_windows() {
        let w = windows();
        let now = t("2026-11-22T12:00:00Z");
        let mut position = w.start(StartAt::Time(t("2026-11-22T00:00:00Z")), now);
        let mut windows_read = Vec::new();
        while let Some(window) = w.next(&position, now) {
            windows_read.push(window);
            position = window.then;
        }
        // 11h40m of settled backlog in 12 queries, then the fresh 20 minutes in one.
        assert_eq!(windows_read.len(), 13);
        assert!(windows_read.iter().all(|w| w.end - w.start <= MAX_WINDOW));
        assert_eq!(windows_read[11].end, now - TimeDelta::minutes(20));
        assert_eq!(windows_read[12].start, now - TimeDelta::minutes(20));
        assert_eq!(position.fresh, now);
    }

    #[test]
    fn nothing_is_due_until_a_poll_interval_has_passed() {
        let w = windows();
        let now = t("2026-11-22T12:00:00Z");
        let position = w.start(StartAt::Now, now);
        assert_eq!(w.next(&position, now + TimeDelta::seconds(10)), None);
        assert!(w.next(&position, now + TimeDelta::seconds(30)).is_some());
    }

    #[test]
    fn a_position_older_than_retention_resumes_at_the_oldest_event_kept() {
        let w = windows();
        let now = t("2026-11-22T12:00:00Z");
        let ancient = Position {
            settled: t("2025-01-01T00:00:00Z"),
            fresh: t("2025-01-01T00:00:00Z"),
        };
        let window = w.next(&ancient, now).expect("due");
        assert_eq!(window.start, now - TimeDelta::days(90));
        let earliest = w.start(StartAt::Earliest, now);
        assert_eq!(earliest.settled, now - TimeDelta::days(90));
    }
}
