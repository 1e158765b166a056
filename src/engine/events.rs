//! Typed job events, and the job handle that sends them.
//!
//! Every piece of long work is a [`Job`]: an id, its parent, the operation, the
//! target, region and point it works on, and a cancellation token. Jobs publish
//! [`JobEvent`]s on the engine's [`EventBus`], a broadcast channel any number of
//! consumers subscribe to (the CLI's progress display, a JSON Lines event log,
//! later the dashboard, the drill recorder, metrics). Sending never waits: a
//! consumer that falls behind loses the oldest events and is told how many, so a
//! slow consumer never blocks a backup. Byte and item progress is coalesced to at
//! most one event per [`PROGRESS_EVERY`] per job.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::report::{Operation, Outcome};
use crate::error::{Error, ErrorClass};

/// Progress events of one job are at least this far apart.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Events kept for a consumer that falls behind.
const BUS_CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

/// One thing that happened to a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    pub job: JobId,
    pub parent: Option<JobId>,
    pub operation: Operation,
    pub target: Option<String>,
    pub region: Option<String>,
    pub point: Option<String>,
    /// The job's current phase ("streaming", "writing manifest", ...).
    pub phase: Option<String>,
    /// Milliseconds since the engine started, on a monotonic clock: use it for
    /// durations. `at` is the wall time, for people and logs.
    pub mono_ms: u64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    Started {
        total_bytes: Option<u64>,
    },
    /// The phase changed (see the event's `phase`).
    Phase,
    /// Coalesced progress: bytes and items done so far.
    Progress {
        bytes: u64,
        total_bytes: Option<u64>,
        items: u64,
        total_items: Option<u64>,
    },
    /// One item of the job failed (a Kubernetes object, ...); the job goes on.
    ItemFailed {
        item: String,
        error: String,
    },
    Warning {
        message: String,
    },
    Finished {
        outcome: Outcome,
        message: String,
        error_class: Option<ErrorClass>,
        duration_ms: u64,
    },
}

impl Job {
    /// A job nobody watches: for checks no front end follows (drill probes).
    pub fn unobserved(operation: Operation) -> Job {
        EventBus::new().start(JobSpec::new(operation), None)
    }
}

/// Where jobs publish their events.
pub struct EventBus {
    tx: broadcast::Sender<JobEvent>,
    epoch: Instant,
    next_id: AtomicU64,
    /// Stamps and sends one event at a time, so the order on the bus is the
    /// order of the monotonic stamps.
    sending: Mutex<()>,
}

impl EventBus {
    pub fn new() -> Arc<EventBus> {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        Arc::new(EventBus {
            tx,
            epoch: Instant::now(),
            next_id: AtomicU64::new(1),
            sending: Mutex::new(()),
        })
    }

    fn publish(&self, mut event: JobEvent) {
        let _one_at_a_time = self.sending.lock();
        event.mono_ms = self.epoch.elapsed().as_millis() as u64;
        event.at = Utc::now();
        // No subscriber is not an error: nobody is watching.
        let _ = self.tx.send(event);
    }

    /// A new consumer; it sees every event sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.tx.subscribe()
    }

    /// Starts a job (a root job when `parent` is none).
    pub fn start(self: &Arc<Self>, spec: JobSpec, parent: Option<&Job>) -> Job {
        let (parent_id, cancel) = match parent {
            Some(p) => (Some(p.id()), p.0.cancel.child_token()),
            None => (None, spec.cancel.clone().unwrap_or_default()),
        };
        let job = Job(Arc::new(JobState {
            bus: self.clone(),
            id: JobId(self.next_id.fetch_add(1, Ordering::Relaxed)),
            parent: parent_id,
            operation: spec.operation,
            target: spec.target,
            region: spec.region,
            point: Mutex::new(spec.point),
            phase: Mutex::new(None),
            progress: Mutex::new(Tally {
                total_bytes: spec.total_bytes,
                ..Tally::default()
            }),
            cancel,
            started: Instant::now(),
            finished: AtomicBool::new(false),
        }));
        job.send(EventKind::Started {
            total_bytes: spec.total_bytes,
        });
        job
    }
}

/// What a new job works on.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub operation: Operation,
    pub target: Option<String>,
    pub region: Option<String>,
    pub point: Option<String>,
    pub total_bytes: Option<u64>,
    /// The token of a root job (children derive theirs from the parent).
    pub cancel: Option<CancellationToken>,
}

impl JobSpec {
    pub fn new(operation: Operation) -> JobSpec {
        JobSpec {
            operation,
            target: None,
            region: None,
            point: None,
            total_bytes: None,
            cancel: None,
        }
    }

    pub fn target(mut self, target: &str) -> Self {
        self.target = Some(target.to_string());
        self
    }

    pub fn region(mut self, region: &str) -> Self {
        self.region = Some(region.to_string());
        self
    }

    pub fn point(mut self, point: impl Into<Option<String>>) -> Self {
        self.point = point.into();
        self
    }

    pub fn total_bytes(mut self, total: Option<u64>) -> Self {
        self.total_bytes = total;
        self
    }

    pub fn cancel(mut self, token: &CancellationToken) -> Self {
        self.cancel = Some(token.clone());
        self
    }
}

#[derive(Debug, Default)]
struct Tally {
    bytes: u64,
    total_bytes: Option<u64>,
    items: u64,
    total_items: Option<u64>,
    last_sent: Option<Instant>,
    /// Progress changed since the last progress event.
    unsent: bool,
}

struct JobState {
    bus: Arc<EventBus>,
    id: JobId,
    parent: Option<JobId>,
    operation: Operation,
    target: Option<String>,
    region: Option<String>,
    point: Mutex<Option<String>>,
    phase: Mutex<Option<String>>,
    progress: Mutex<Tally>,
    cancel: CancellationToken,
    started: Instant,
    finished: AtomicBool,
}

/// A running job's handle; clones share the job.
#[derive(Clone)]
pub struct Job(Arc<JobState>);

impl Job {
    pub fn id(&self) -> JobId {
        self.0.id
    }

    pub fn operation(&self) -> Operation {
        self.0.operation
    }

    /// A sub-job (a copy after a backup, a member restore): same bus, cancelled
    /// with this one.
    pub fn child(&self, spec: JobSpec) -> Job {
        self.0.bus.start(spec, Some(self))
    }

    fn send(&self, kind: EventKind) {
        let s = &self.0;
        let event = JobEvent {
            job: s.id,
            parent: s.parent,
            operation: s.operation,
            target: s.target.clone(),
            region: s.region.clone(),
            point: s.point.lock().map(|p| p.clone()).unwrap_or_default(),
            phase: s.phase.lock().map(|p| p.clone()).unwrap_or_default(),
            mono_ms: 0,
            at: Utc::now(),
            kind,
        };
        s.bus.publish(event);
    }

    pub fn phase(&self, phase: impl Into<String>) {
        if let Ok(mut p) = self.0.phase.lock() {
            *p = Some(phase.into());
        }
        self.send(EventKind::Phase);
    }

    /// Records the point once it is known (a backup learns its id as it starts).
    pub fn set_point(&self, point: &str) {
        if let Ok(mut p) = self.0.point.lock() {
            *p = Some(point.to_string());
        }
    }

    fn update(&self, change: impl FnOnce(&mut Tally)) {
        let event = {
            let Ok(mut t) = self.0.progress.lock() else {
                return;
            };
            change(&mut t);
            t.unsent = true;
            let due = t.last_sent.is_none_or(|l| l.elapsed() >= PROGRESS_EVERY);
            if !due {
                return;
            }
            t.last_sent = Some(Instant::now());
            t.unsent = false;
            progress_event(&t)
        };
        self.send(event);
    }

    /// Bytes done so far (coalesced).
    pub fn bytes(&self, done: u64) {
        self.update(|t| t.bytes = done);
    }

    pub fn set_total_bytes(&self, total: u64) {
        self.update(|t| t.total_bytes = Some(total));
    }

    /// Items done so far, and the total when known (coalesced).
    pub fn items(&self, done: u64, total: Option<u64>) {
        self.update(|t| {
            t.items = done;
            if total.is_some() {
                t.total_items = total;
            }
        });
    }

    /// One item failed; sent at once, the job goes on.
    pub fn item_failed(&self, item: impl Into<String>, error: impl Into<String>) {
        self.send(EventKind::ItemFailed {
            item: item.into(),
            error: error.into(),
        });
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.send(EventKind::Warning {
            message: message.into(),
        });
    }

    /// A byte counter for the archive pipeline.
    pub fn on_bytes(&self) -> crate::archive::pipeline::OnBytes {
        let job = self.clone();
        Arc::new(move |n| job.bytes(n))
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.0.cancel
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancel.is_cancelled()
    }

    /// `Err(Cancelled)` once the job is cancelled: call between steps.
    pub fn check_cancelled(&self) -> Result<(), Error> {
        if self.is_cancelled() {
            Err(Error::cancelled(format!("{} cancelled", self.0.operation)))
        } else {
            Ok(())
        }
    }

    /// Runs `work` unless the job is cancelled first; then `work` is dropped.
    /// Only for work that leaves nothing behind when dropped (reads, waits).
    pub async fn cancellable<T>(
        &self,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::select! {
            biased;
            _ = self.0.cancel.cancelled() => Err(Error::cancelled(format!(
                "{} cancelled", self.0.operation
            ))),
            r = work => r,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.0.started.elapsed()
    }

    /// Ends the job; later calls do nothing.
    pub fn finish(&self, outcome: Outcome, message: impl Into<String>, class: Option<ErrorClass>) {
        if self.0.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        let pending = self
            .0
            .progress
            .lock()
            .ok()
            .filter(|t| t.unsent)
            .map(|t| progress_event(&t));
        if let Some(p) = pending {
            self.send(p);
        }
        self.send(EventKind::Finished {
            outcome,
            message: message.into(),
            error_class: class,
            duration_ms: self.elapsed().as_millis() as u64,
        });
    }

    /// Ends the job with the outcome of `result` and hands the result on.
    pub fn settle<T>(
        &self,
        result: Result<T, Error>,
        message: impl FnOnce(&T) -> String,
    ) -> Result<T, Error> {
        match &result {
            Ok(v) => self.finish(Outcome::Ok, message(v), None),
            Err(e) => self.fail(e),
        }
        result
    }

    /// Ends the job as failed, or cancelled when the error is a cancellation.
    pub fn fail(&self, e: &Error) {
        let class = e.class();
        let outcome = if class == ErrorClass::Cancelled {
            Outcome::Cancelled
        } else {
            Outcome::Failed
        };
        self.finish(outcome, e.to_string(), Some(class));
    }
}

fn progress_event(t: &Tally) -> EventKind {
    EventKind::Progress {
        bytes: t.bytes,
        total_bytes: t.total_bytes,
        items: t.items,
        total_items: t.total_items,
    }
}

impl Drop for JobState {
    /// A job dropped without a result still ends, so consumers never wait on it.
    fn drop(&mut self) {
        if self.finished.load(Ordering::SeqCst) {
            return;
        }
        let (outcome, message, class) = if self.cancel.is_cancelled() {
            (Outcome::Cancelled, "cancelled", ErrorClass::Cancelled)
        } else {
            (
                Outcome::Failed,
                "ended without a result",
                ErrorClass::Failed,
            )
        };
        let event = JobEvent {
            job: self.id,
            parent: self.parent,
            operation: self.operation,
            target: self.target.clone(),
            region: self.region.clone(),
            point: self.point.lock().map(|p| p.clone()).unwrap_or_default(),
            phase: self.phase.lock().map(|p| p.clone()).unwrap_or_default(),
            mono_ms: 0,
            at: Utc::now(),
            kind: EventKind::Finished {
                outcome,
                message: message.into(),
                error_class: Some(class),
                duration_ms: self.started.elapsed().as_millis() as u64,
            },
        };
        self.bus.publish(event);
    }
}

/// One line of a JSON Lines event log: the event, or (for a consumer that fell
/// behind) a `lagged` record with the number of events it lost.
pub fn json_line(event: Result<&JobEvent, u64>) -> Vec<u8> {
    let mut line = match event {
        Ok(e) => serde_json::to_vec(e),
        Err(missed) => {
            serde_json::to_vec(&serde_json::json!({ "event": "lagged", "missed": missed }))
        }
    }
    // Our own plain-data types always serialize.
    .unwrap_or_default();
    line.push(b'\n');
    line
}

/// Writes every event from `rx` as one JSON object per line until the bus
/// closes, so a gap left by falling behind is visible in the log.
pub async fn write_json_lines<W: AsyncWrite + Unpin>(
    mut rx: broadcast::Receiver<JobEvent>,
    mut out: W,
) -> std::io::Result<W> {
    loop {
        let line = match rx.recv().await {
            Ok(event) => json_line(Ok(&event)),
            Err(broadcast::error::RecvError::Lagged(missed)) => json_line(Err(missed)),
            Err(broadcast::error::RecvError::Closed) => break,
        };
        out.write_all(&line).await?;
    }
    out.flush().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut broadcast::Receiver<JobEvent>) -> Vec<JobEvent> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(e);
        }
        out
    }

    #[test]
    fn progress_is_coalesced_and_flushed_at_the_end() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let job = bus.start(
            JobSpec::new(Operation::Backup)
                .target("t")
                .region("r")
                .total_bytes(Some(10_000)),
            None,
        );
        for n in 1..=10_000 {
            job.bytes(n);
        }
        job.finish(Outcome::Ok, "done", None);
        let events = drain(&mut rx);
        let progress: Vec<&JobEvent> = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Progress { .. }))
            .collect();
        // The first update goes out at once, the rest within 100 ms coalesce,
        // and the last count is flushed before the job finishes.
        assert!(progress.len() <= 3, "{} progress events", progress.len());
        assert!(matches!(
            progress.last().map(|e| &e.kind),
            Some(EventKind::Progress { bytes: 10_000, .. })
        ));
        assert!(matches!(
            events[0].kind,
            EventKind::Started {
                total_bytes: Some(10_000)
            }
        ));
        assert!(matches!(
            events.last().map(|e| &e.kind),
            Some(EventKind::Finished {
                outcome: Outcome::Ok,
                ..
            })
        ));
        assert!(events.iter().all(|e| e.target.as_deref() == Some("t")));
    }

    #[test]
    fn children_link_to_their_parent_and_share_cancellation() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let root = CancellationToken::new();
        let parent = bus.start(JobSpec::new(Operation::Backup).cancel(&root), None);
        let child = parent.child(JobSpec::new(Operation::Copy).region("west"));
        assert!(!child.is_cancelled());
        root.cancel();
        assert!(parent.is_cancelled() && child.is_cancelled());
        assert!(child.check_cancelled().is_err());
        drop(child);
        let events = drain(&mut rx);
        let copy: Vec<&JobEvent> = events
            .iter()
            .filter(|e| e.operation == Operation::Copy)
            .collect();
        assert_eq!(copy[0].parent, Some(parent.id()));
        // Dropped without a result while cancelled: it still ends, as cancelled.
        assert!(matches!(
            copy.last().map(|e| &e.kind),
            Some(EventKind::Finished {
                outcome: Outcome::Cancelled,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn json_lines_carry_every_field() -> std::io::Result<()> {
        let bus = EventBus::new();
        let rx = bus.subscribe();
        let writer = tokio::spawn(write_json_lines(rx, Vec::new()));
        let job = bus.start(
            JobSpec::new(Operation::Verify)
                .target("t")
                .region("r")
                .point("p".to_string()),
            None,
        );
        job.phase("checking");
        job.item_failed("configmaps/a", "422");
        job.finish(Outcome::Warning, "done", None);
        drop(job);
        drop(bus);
        let out = writer.await.map_err(std::io::Error::other)??;
        let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out)
            .lines()
            .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
            .collect::<Result<_, _>>()?;
        let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
        assert_eq!(kinds, ["started", "phase", "item-failed", "finished"]);
        for e in &events {
            for field in [
                "job",
                "parent",
                "operation",
                "target",
                "region",
                "point",
                "phase",
                "mono_ms",
                "at",
            ] {
                assert!(e.get(field).is_some(), "{field} missing in {e}");
            }
        }
        assert_eq!(events[1]["phase"], "checking");
        assert_eq!(events[2]["item"], "configmaps/a");
        assert_eq!(events[3]["outcome"], "warning");
        Ok(())
    }
}
