//! Progress as typed job events. The front end supplies the sink: a progress bar
//! on a terminal, log lines otherwise, channel events for the dashboard.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobId(pub u64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEventKind {
    /// A job began; `total` is its size in bytes when known.
    Started {
        title: String,
        total: Option<u64>,
    },
    /// A new step of the job (e.g. "verifying", "uploading").
    Phase(String),
    /// Bytes processed so far.
    Bytes(u64),
    Finished {
        summary: String,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub job: JobId,
    pub kind: JobEventKind,
}

/// Where job events go. Implementations must be cheap: `Bytes` events are frequent.
pub trait Progress: Send + Sync {
    fn event(&self, event: JobEvent);
}

/// Discards events (library callers that do not care).
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: JobEvent) {}
}

/// Hands out job ids and sends their events to one sink.
#[derive(Clone)]
pub struct Jobs {
    next: Arc<AtomicU64>,
    sink: Arc<dyn Progress>,
}

impl Jobs {
    pub fn new(sink: Arc<dyn Progress>) -> Jobs {
        Jobs {
            next: Arc::new(AtomicU64::new(1)),
            sink,
        }
    }

    pub fn start(&self, title: impl Into<String>, total: Option<u64>) -> Job {
        let id = JobId(self.next.fetch_add(1, Ordering::Relaxed));
        let job = Job {
            id,
            sink: self.sink.clone(),
        };
        job.send(JobEventKind::Started {
            title: title.into(),
            total,
        });
        job
    }
}

/// One running job's handle.
#[derive(Clone)]
pub struct Job {
    id: JobId,
    sink: Arc<dyn Progress>,
}

impl Job {
    fn send(&self, kind: JobEventKind) {
        self.sink.event(JobEvent { job: self.id, kind });
    }

    pub fn phase(&self, phase: impl Into<String>) {
        self.send(JobEventKind::Phase(phase.into()));
    }

    pub fn bytes(&self, done: u64) {
        self.send(JobEventKind::Bytes(done));
    }

    pub fn finish(&self, summary: impl Into<String>) {
        self.send(JobEventKind::Finished {
            summary: summary.into(),
        });
    }

    pub fn fail(&self, error: impl Into<String>) {
        self.send(JobEventKind::Failed {
            error: error.into(),
        });
    }

    /// A byte counter callback for the archive pipeline.
    pub fn on_bytes(&self) -> crate::archive::pipeline::OnBytes {
        let job = self.clone();
        Arc::new(move |n| job.bytes(n))
    }
}
