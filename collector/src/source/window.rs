//! Time windows for APIs that filter on event time (Activity Log, Entra audit logs), which index
//! events minutes after they happen.
//!
//! Each window is read twice at most: once fresh, up to now, so events arrive promptly; and once
//! more after `lateArrival` has passed, when Azure has indexed everything that belongs in it. The
//! second read catches late events; dedup hides the ones already delivered. Re-reading the whole
//! late-arrival span on every poll would cost `lateArrival / pollInterval` reads of every event
//! instead of two.
//!
//! How much time one query covers adapts to what the stream holds. A window that comes back in one
//! page lets the next cover twice the time, up to 30 days, so an empty backfill of 90 days costs a
//! dozen queries, not 2,160. These APIs page newest first and their page links expire, so a window
//! is only ever delivered whole, and after a crash it is read again whole: a window wider than an
//! hour whose first page is not its last is therefore never delivered but cut to a quarter and
//! asked again. Only windows of an hour or less are read across pages, as every window once was.
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::listing::Query;
use crate::config::StartAt;

/// How far a stream has read, kept in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// Everything before this was read after it had `lateArrival` to settle.
    pub settled: DateTime<Utc>,
    /// Everything before this was read at least once.
    pub fresh: DateTime<Utc>,
    /// The most time the next window may cover, in seconds (checkpoints written before windows
    /// adapted have none: an hour).
    #[serde(default = "base_span_seconds")]
    span_seconds: i64,
}

fn base_span_seconds() -> i64 {
    BASE_WINDOW.num_seconds()
}

impl Position {
    fn span(&self) -> TimeDelta {
        TimeDelta::seconds(
            self.span_seconds
                .clamp(BASE_WINDOW.num_seconds(), MAX_WINDOW.num_seconds()),
        )
    }

    fn with_span(self, span: TimeDelta) -> Position {
        Position {
            span_seconds: span.clamp(BASE_WINDOW, MAX_WINDOW).num_seconds(),
            ..self
        }
    }
}

/// One query's time range, both ends inclusive (the APIs filter with `ge` and `le`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The position once every record of the window is delivered.
    pub then: Position,
    /// The position instead when the window came back in one page: the next may cover more.
    pub then_if_one_page: Position,
    /// For a window wider than an hour: the position to plan from instead when its first page is
    /// not its last, so that a narrower window is asked before anything of this one is delivered.
    pub narrower: Option<Position>,
}

#[derive(Debug, Clone, Copy)]
pub struct Windows {
    pub late_arrival: TimeDelta,
    pub poll_interval: TimeDelta,
    /// How far back the API keeps events.
    pub retention: TimeDelta,
}

/// The widest window read across pages. A crash re-reads the window in progress, and dedup must
/// remember all of it: an hour keeps that small. Wider windows hold one page at most.
pub const BASE_WINDOW: TimeDelta = TimeDelta::hours(1);

/// The widest window of all. Wider windows would save few queries, and each quarter step down from
/// one that meets a busy stretch costs a query.
pub const MAX_WINDOW: TimeDelta = TimeDelta::days(30);

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
            span_seconds: base_span_seconds(),
        }
    }

    /// The next window to read, or None when nothing is due yet.
    pub fn next(&self, position: &Position, now: DateTime<Utc>) -> Option<Window> {
        let now = now.trunc_subsecs(0);
        // Events older than the API keeps cannot be asked for; the API would refuse the query.
        let oldest = now - self.retention;
        let settled = position.settled.max(oldest);
        let fresh = position.fresh.max(settled);
        let span = position.span();
        let settle_limit = now - self.late_arrival;
        let (start, end, then) = if settle_limit - settled >= self.settle_step() {
            let end = (settled + span).min(settle_limit);
            let then = Position {
                settled: end,
                fresh: fresh.max(end),
                span_seconds: position.span_seconds,
            };
            (settled, end, then)
        } else if now - fresh >= self.poll_interval {
            let end = (fresh + span).min(now);
            let then = Position {
                settled,
                fresh: end,
                span_seconds: position.span_seconds,
            };
            (fresh, end, then)
        } else {
            return None;
        };
        let width = end - start;
        Some(Window {
            start,
            end,
            then,
            // Only a window that used its whole span says the span was too small.
            then_if_one_page: if width == span {
                then.with_span(span * 2)
            } else {
                then
            },
            narrower: (width > BASE_WINDOW).then(|| position.with_span(width / 4)),
        })
    }
}

impl Window {
    /// The query of this window, at `url`.
    pub fn query(&self, url: String) -> Query<Position> {
        Query {
            url,
            then: self.then,
            then_if_one_page: self.then_if_one_page,
            narrower: self.narrower,
        }
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
        assert!(windows_read.iter().all(|w| w.end - w.start <= BASE_WINDOW));
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
        let ancient = w.start(
            StartAt::Time(t("2025-01-01T00:00:00Z")),
            t("2025-01-01T00:00:00Z"),
        );
        let window = w.next(&ancient, now).expect("due");
        assert_eq!(window.start, now - TimeDelta::days(90));
        let earliest = w.start(StartAt::Earliest, now);
        assert_eq!(earliest.settled, now - TimeDelta::days(90));
    }

    /// Reads a backlog to `now`, each window answered in one page when `quiet` says so of its
    /// start, else cut (or, at an hour or less, read across pages). Returns the queries asked and
    /// the windows delivered.
    fn backfill(
        w: &Windows,
        mut position: Position,
        now: DateTime<Utc>,
        quiet: impl Fn(&Window) -> bool,
    ) -> (usize, Vec<Window>) {
        let (mut queries, mut delivered) = (0, Vec::new());
        while let Some(window) = w.next(&position, now) {
            queries += 1;
            if quiet(&window) {
                position = window.then_if_one_page;
            } else if let Some(narrower) = window.narrower {
                position = narrower;
                continue;
            } else {
                position = window.then;
            }
            delivered.push(window);
        }
        (queries, delivered)
    }

    #[test]
    fn an_empty_90_day_backfill_takes_a_dozen_queries_and_leaves_no_gap() {
        let w = windows();
        let now = t("2026-11-22T12:00:00Z");
        let start = w.start(StartAt::Earliest, now);
        let (queries, delivered) = backfill(&w, start, now, |_| true);
        assert!(queries <= 14, "{queries} queries");
        assert_eq!(delivered[0].start, now - TimeDelta::days(90));
        assert_eq!(delivered.last().expect("windows").end, now);
        for pair in delivered.windows(2) {
            // Settled windows follow each other end to start; the fresh one starts where settled
            // time ends.
            assert!(pair[1].start <= pair[0].end, "{pair:?}");
        }
        assert!(delivered.iter().all(|w| w.end - w.start <= MAX_WINDOW));
    }

    #[test]
    fn a_busy_stretch_is_read_only_in_windows_of_an_hour_or_less() {
        let w = windows();
        let now = t("2026-11-22T12:00:00Z");
        // 90 quiet days, then the last 4 hours too busy for one page.
        let busy = now - TimeDelta::hours(4);
        let start = w.start(StartAt::Earliest, now);
        let (queries, delivered) = backfill(&w, start, now, |window| window.end < busy);
        for window in &delivered {
            if window.end >= busy {
                assert!(window.end - window.start <= BASE_WINDOW, "{window:?}");
            }
        }
        assert_eq!(delivered.last().expect("windows").end, now);
        // Against 2,160 hour windows before windows adapted.
        assert!(queries <= 60, "{queries} queries");
    }

    #[test]
    fn only_a_window_wider_than_an_hour_is_cut_and_never_below_an_hour() {
        let w = windows();
        let now = t("2026-11-22T12:00:00Z");
        let hour = w.start(StartAt::Time(now - TimeDelta::days(2)), now);
        let window = w.next(&hour, now).expect("due");
        assert_eq!(window.end - window.start, BASE_WINDOW);
        assert_eq!(window.narrower, None);
        let wide = hour.with_span(TimeDelta::hours(10));
        let window = w.next(&wide, now).expect("due");
        assert_eq!(window.end - window.start, TimeDelta::hours(10));
        let narrower = window.narrower.expect("cut");
        assert_eq!(narrower.span(), BASE_WINDOW.max(TimeDelta::minutes(150)));
        assert_eq!(narrower.settled, wide.settled);
    }

    #[test]
    fn a_checkpoint_from_before_windows_adapted_resumes_with_hour_windows() {
        let stored: Position = serde_json::from_str(
            r#"{"settled":"2026-11-22T10:00:00Z","fresh":"2026-11-22T10:00:00Z"}"#,
        )
        .expect("position");
        assert_eq!(stored.span(), BASE_WINDOW);
    }
}
