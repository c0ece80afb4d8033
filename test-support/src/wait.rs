//! Waiting for something to happen, with a deadline that fails the test saying what did not.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it answers Some, or fails the test with `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` every 200 ms until it answers Some, or fails the test after `timeout` saying what
/// did not happen.
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    check: impl FnMut() -> F,
) -> T {
    eventually_or_none(timeout, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting until {what}"))
}

/// Polls `check` every 200 ms until it answers Some; None after `timeout`, for a caller that
/// says more about what did not happen.
pub async fn eventually_or_none<T, F: Future<Output = Option<T>>>(
    timeout: Duration,
    mut check: impl FnMut() -> F,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
