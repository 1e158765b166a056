//! Waiting for RDS resources to reach a state: polls, reports each new state,
//! fails fast on terminal failure states and gives up after a timeout.

use std::future::Future;
use std::time::{Duration, Instant};

use super::RdsError;
use crate::error::SourceError;

/// What to wait for and how.
#[derive(Debug, Clone)]
pub struct WaitSpec<'a> {
    /// For messages, e.g. "snapshot drtool-db-... in us-west-2".
    pub what: &'a str,
    pub done: &'a [&'a str],
    pub failed: &'a [&'a str],
    pub timeout: Duration,
    pub interval: Duration,
}

/// Polls `state` until it returns one of `spec.done`; returns how long it took.
/// `on_state` sees every state change (for progress).
pub async fn wait_until<F, Fut>(
    spec: &WaitSpec<'_>,
    mut state: F,
    on_state: &(dyn Fn(&str) + Send + Sync),
) -> Result<Duration, SourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<String, SourceError>>,
{
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let now = state().await?;
        if now != last {
            on_state(&now);
            last.clone_from(&now);
        }
        if spec.done.contains(&now.as_str()) {
            return Ok(started.elapsed());
        }
        if spec.failed.contains(&now.as_str()) {
            return Err(RdsError::StateFailed {
                what: spec.what.to_string(),
                state: now,
                after_secs: started.elapsed().as_secs(),
                wanted: spec.done.join("/"),
            }
            .into());
        }
        if started.elapsed() >= spec.timeout {
            return Err(RdsError::StillWaiting {
                what: spec.what.to_string(),
                state: now,
                timeout_secs: spec.timeout.as_secs(),
                wanted: spec.done.join("/"),
            }
            .into());
        }
        tokio::time::sleep(spec.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::*;

    fn spec(timeout_ms: u64) -> WaitSpec<'static> {
        WaitSpec {
            what: "snapshot s1 in us-east-1",
            done: &["available"],
            failed: &["failed", "incompatible-restore"],
            timeout: Duration::from_millis(timeout_ms),
            interval: Duration::from_millis(1),
        }
    }

    /// A scripted sequence of states; the last one repeats.
    fn script(states: &[&str]) -> impl FnMut() -> std::future::Ready<Result<String, SourceError>> {
        let mut q: VecDeque<String> = states.iter().map(|s| s.to_string()).collect();
        move || {
            let s = if q.len() > 1 {
                q.pop_front()
            } else {
                q.front().cloned()
            };
            std::future::ready(Ok(s.unwrap_or_default()))
        }
    }

    #[tokio::test]
    async fn reports_each_state_once_until_done() -> Result<(), SourceError> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let on = move |s: &str| log.lock().map(|mut v| v.push(s.to_string())).unwrap_or(());
        wait_until(
            &spec(5_000),
            script(&["creating", "creating", "backing-up", "available"]),
            &on,
        )
        .await?;
        let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(seen, ["creating", "backing-up", "available"]);
        Ok(())
    }

    #[tokio::test]
    async fn a_failed_snapshot_is_reported_as_such() {
        let err = wait_until(&spec(5_000), script(&["creating", "failed"]), &|_| {})
            .await
            .err();
        assert!(
            matches!(
                err.as_ref().and_then(SourceError::kind_error::<RdsError>),
                Some(RdsError::StateFailed { what, state, wanted, .. })
                    if what == "snapshot s1 in us-east-1" && state == "failed" && wanted == "available"
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_stuck_state_times_out_with_the_state_named() {
        let err = wait_until(&spec(20), script(&["creating"]), &|_| {})
            .await
            .err();
        assert!(
            matches!(
                err.as_ref().and_then(SourceError::kind_error::<RdsError>),
                Some(RdsError::StillWaiting { state, .. }) if state == "creating"
            ),
            "{err:?}"
        );
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("raise the timeout"), "{text}");
    }
}
