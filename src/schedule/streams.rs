//! The daemon's streams: while `drtool schedule run` runs (not with
//! `--once`), every target whose config asks for a continuous stream is
//! followed. A stream that fails is started again after 5 s, doubling up to
//! 5 min; one whose lock another process holds waits for that lock's
//! lifetime and tries again, so a second daemon takes over when the first
//! one dies. The lock keeps two daemons from writing one stream.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use crate::engine::Engine;
use crate::engine::stream::{LOCK_TTL, StreamCounters, stream_job};
use crate::error::ErrorClass;

const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Follows every streaming target until `stop`.
pub async fn supervise(
    engine: Arc<Engine>,
    stop: CancellationToken,
    metrics: Option<Arc<Metrics>>,
) {
    let targets = engine.streaming_targets();
    if targets.is_empty() {
        return;
    }
    tracing::info!(
        streams = targets.len(),
        "following the streams of {}",
        targets.join(", ")
    );
    let mut running = JoinSet::new();
    for target in targets {
        let counters = Arc::new(StreamCounters::default());
        if let Some(m) = &metrics {
            m.watch_stream(&target, counters.clone());
        }
        running.spawn(follow(engine.clone(), target, stop.clone(), counters));
    }
    while running.join_next().await.is_some() {}
}

/// Runs one target's stream again and again until `stop`.
async fn follow(
    engine: Arc<Engine>,
    target: String,
    stop: CancellationToken,
    counters: Arc<StreamCounters>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let job = stream_job(&engine, &target);
        tracing::info!(target = %target, "stream starting");
        let started = std::time::Instant::now();
        let result = engine.stream(&target, &job, &counters).await;
        // A run that lasted starts the backoff again: failures days apart
        // are not a crash loop.
        if started.elapsed() > MAX_BACKOFF {
            backoff = FIRST_BACKOFF;
        }
        if stop.is_cancelled() {
            tracing::info!(target = %target, "stream stopped: every change it received is written");
            return;
        }
        let wait = match result {
            Ok(run) => {
                tracing::warn!(target = %target, segments = run.segments, "stream ended by itself; starting it again in {}s", backoff.as_secs());
                backoff
            }
            Err(e) if e.class() == ErrorClass::Exists => {
                tracing::info!(target = %target, "{e}; trying again in {}s", LOCK_TTL.as_secs());
                LOCK_TTL
            }
            Err(e) => {
                tracing::error!(target = %target, class = e.class().name(), "stream failed: {e}; starting it again in {}s", backoff.as_secs());
                counters
                    .restarts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                backoff
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
