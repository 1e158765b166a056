//! Ctrl-C, SIGTERM and SIGHUP: the first one cancels the engine's token, so
//! uploads are aborted, temporary files removed, drills rolled back and child
//! processes stopped before drtool exits with 130 (SIGINT), 143 (SIGTERM) or
//! 129 (SIGHUP: the terminal went away); a second one exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio_util::sync::CancellationToken;

use crate::exit::Signal;

/// How a signal is kept in the watch's atomic (0: none yet).
fn number(s: Signal) -> u8 {
    match s {
        Signal::Interrupt => 1,
        Signal::Terminate => 2,
        Signal::Hangup => 3,
    }
}

/// Which signal (if any) cancelled the run.
pub struct SignalWatch {
    got: Arc<AtomicU8>,
}

impl SignalWatch {
    pub fn received(&self) -> Option<Signal> {
        match self.got.load(Ordering::SeqCst) {
            1 => Some(Signal::Interrupt),
            2 => Some(Signal::Terminate),
            3 => Some(Signal::Hangup),
            _ => None,
        }
    }
}

/// Starts watching for SIGINT, SIGTERM and (unless `hangup` is false: the
/// daemon reloads on it) SIGHUP; the first cancels `cancel`.
pub fn watch(cancel: CancellationToken, as_log: bool, hangup: bool) -> SignalWatch {
    let got = Arc::new(AtomicU8::new(0));
    let seen = got.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!("cannot watch SIGINT/SIGTERM: a signal ends drtool without clean-up");
            return;
        };
        let mut hup = if hangup {
            signal(SignalKind::hangup()).ok()
        } else {
            None
        };
        loop {
            let s = tokio::select! {
                _ = int.recv() => Signal::Interrupt,
                _ = term.recv() => Signal::Terminate,
                Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => Signal::Hangup,
            };
            let code = number(s);
            if seen
                .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                errln!(
                    "drtool: {} again: exiting at once; an upload in progress may stay open until `drtool prune` or the bucket's lifecycle rule removes it",
                    s.name()
                );
                std::process::exit(i32::from(s.code()));
            }
            if as_log {
                tracing::info!(
                    "{}: stopping; uploads are aborted and nothing half-done is kept",
                    s.name()
                );
            } else {
                errln!(
                    "drtool: {}: cancelling; uploads are aborted and nothing half-done is kept (press Ctrl-C again to exit at once)",
                    s.name()
                );
            }
            cancel.cancel();
        }
    });
    SignalWatch { got }
}
