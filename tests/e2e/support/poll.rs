//! Bounded polling: the one way the tests wait for what happens in the
//! background (a poll's auto-release, a counter, a process that listens).
//! Every wait has a deadline and says what it waited for when it passes;
//! there are no fixed sleeps.
//!
//! Shared by the integration tests of several packages (included with
//! `#[path]`): std and tokio only.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked again.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Waits until `check` holds, for at most `timeout`; panics naming `what`.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Waits until the async `check` gives a value, for at most `timeout`, and
/// returns it; panics naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// [`wait_until`] for code that runs outside the async runtime.
pub fn wait_until_blocking(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL_EVERY);
    }
}
