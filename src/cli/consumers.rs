//! Consumers of the engine's job events: the progress display and the JSON
//! Lines event log (`--events FILE`). Each runs as its own task on its own
//! subscription; the command can wait until a consumer has shown everything
//! sent so far (before it prints or asks), and stops it at the end after it has
//! drained what is left.

use std::io::Write;
use std::path::Path;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::engine::JobEvent;
use crate::engine::events::json_line;
use crate::error::Error;

/// What a consumer does with events: `Err(n)` means it fell behind and lost n.
pub trait Handler: Send + 'static {
    fn event(&mut self, event: Result<&JobEvent, u64>);
    fn end(&mut self);
}

enum Ctl {
    Sync(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

pub struct Consumer {
    ctl: mpsc::Sender<Ctl>,
    task: JoinHandle<()>,
}

impl Consumer {
    pub fn start<H: Handler>(mut rx: broadcast::Receiver<JobEvent>, mut handler: H) -> Consumer {
        let (ctl, mut ctl_rx) = mpsc::channel::<Ctl>(4);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    ctl = ctl_rx.recv() => {
                        drain(&mut rx, &mut handler);
                        match ctl {
                            Some(Ctl::Sync(done)) => {
                                let _ = done.send(());
                            }
                            Some(Ctl::Stop(done)) => {
                                handler.end();
                                let _ = done.send(());
                                return;
                            }
                            None => {
                                handler.end();
                                return;
                            }
                        }
                    }
                    event = rx.recv() => match event {
                        Ok(e) => handler.event(Ok(&e)),
                        Err(RecvError::Lagged(n)) => handler.event(Err(n)),
                        Err(RecvError::Closed) => {
                            handler.end();
                            return;
                        }
                    },
                }
            }
        });
        Consumer { ctl, task }
    }

    /// Returns once every event sent before the call has been handled.
    pub async fn sync(&self) {
        let (done, wait) = oneshot::channel();
        if self.ctl.send(Ctl::Sync(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Handles what is left, ends the consumer and waits for it.
    pub async fn stop(self) {
        let (done, wait) = oneshot::channel();
        if self.ctl.send(Ctl::Stop(done)).await.is_ok() {
            let _ = wait.await;
        }
        let _ = self.task.await;
    }
}

fn drain<H: Handler>(rx: &mut broadcast::Receiver<JobEvent>, handler: &mut H) {
    loop {
        match rx.try_recv() {
            Ok(e) => handler.event(Ok(&e)),
            Err(TryRecvError::Lagged(n)) => handler.event(Err(n)),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

/// The `--events FILE` log: one JSON object per line, flushed per event so it
/// can be followed while the run goes on.
struct EventsFile {
    out: std::io::BufWriter<std::fs::File>,
    path: String,
    failed: bool,
}

impl Handler for EventsFile {
    fn event(&mut self, event: Result<&JobEvent, u64>) {
        if self.failed {
            return;
        }
        let written = self
            .out
            .write_all(&json_line(event))
            .and_then(|()| self.out.flush());
        if let Err(e) = written {
            // Losing the log must not stop a backup: say so once and go on.
            errln!(
                "drtool: cannot write the events file {}: {e}; events are no longer logged",
                self.path
            );
            self.failed = true;
        }
    }

    fn end(&mut self) {
        let _ = self.out.flush();
    }
}

/// Starts logging events into `path` (created or truncated).
pub async fn events_file(
    path: &Path,
    rx: broadcast::Receiver<JobEvent>,
) -> Result<Consumer, Error> {
    let file = std::fs::File::create(path).map_err(|e| {
        Error::input(format!(
            "cannot create the events file {}: {e}",
            path.display()
        ))
    })?;
    Ok(Consumer::start(
        rx,
        EventsFile {
            out: std::io::BufWriter::new(file),
            path: path.display().to_string(),
            failed: false,
        },
    ))
}

/// `--quiet`: no progress at all (errors come from the command's result).
pub struct Silent;

impl Handler for Silent {
    fn event(&mut self, _: Result<&JobEvent, u64>) {}
    fn end(&mut self) {}
}

/// The daemon's log lines: warnings, failed items, and each job's result as
/// it finishes.
pub struct LogLines;

impl Handler for LogLines {
    fn event(&mut self, event: Result<&JobEvent, u64>) {
        use crate::engine::EventKind;
        let Ok(e) = event else { return };
        let target = e.target.as_deref().unwrap_or("-");
        let region = e.region.as_deref().unwrap_or("-");
        match &e.kind {
            EventKind::Warning { message } => {
                tracing::warn!(operation = %e.operation, target, region, "{message}");
            }
            EventKind::ItemFailed { item, error } => {
                tracing::warn!(operation = %e.operation, target, region, item = %item, "{error}");
            }
            EventKind::Phase => {
                tracing::debug!(operation = %e.operation, target, region, phase = ?e.phase, "phase");
            }
            // Each target's result as it finishes, not only at the run's end.
            EventKind::Finished {
                outcome,
                message,
                duration_ms,
                ..
            } => {
                let point = e.point.as_deref().unwrap_or("-");
                match outcome {
                    crate::engine::Outcome::Failed => tracing::error!(
                        operation = %e.operation, target, region, point, duration_ms, "{message}"
                    ),
                    crate::engine::Outcome::Warning => tracing::warn!(
                        operation = %e.operation, target, region, point, duration_ms, "{message}"
                    ),
                    _ => tracing::info!(
                        operation = %e.operation, target, region, point, duration_ms, "{message}"
                    ),
                }
            }
            _ => {}
        }
    }

    fn end(&mut self) {}
}
