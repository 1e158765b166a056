//! Progress for the CLI: indicatif bars when stderr is a terminal, plain log
//! lines (throttled) otherwise, so cron mail and CI logs stay readable.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::{JobEvent, JobEventKind, JobId, Progress};

const LOG_EVERY: Duration = Duration::from_secs(5);

struct LogState {
    title: String,
    started: Instant,
    last: Instant,
    total: Option<u64>,
    done: u64,
}

/// The CLI runs one job at a time, so one bar at a time is enough; finished
/// bars are replaced by a one-line summary.
pub struct CliProgress {
    tty: bool,
    jobs: Mutex<HashMap<JobId, (Option<ProgressBar>, LogState)>>,
}

impl CliProgress {
    pub fn new() -> CliProgress {
        CliProgress {
            tty: std::io::stderr().is_terminal(),
            jobs: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, title: &str, total: Option<u64>) -> Option<ProgressBar> {
        if !self.tty {
            return None;
        }
        let bar = match total {
            Some(t) => {
                let bar = ProgressBar::new(t);
                let style = ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style.progress_chars("=> "));
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                let style = ProgressStyle::with_template(
                    "{spinner} {msg} {bytes} {binary_bytes_per_sec} {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            }
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_message(title.to_string());
        Some(bar)
    }
}

fn mib(n: u64) -> f64 {
    n as f64 / (1024.0 * 1024.0)
}

impl Progress for CliProgress {
    fn event(&self, e: JobEvent) {
        let Ok(mut jobs) = self.jobs.lock() else {
            return;
        };
        match e.kind {
            JobEventKind::Started { title, total } => {
                let bar = self.bar(&title, total);
                if bar.is_none() {
                    eprintln!("==> {title}");
                }
                let now = Instant::now();
                jobs.insert(
                    e.job,
                    (
                        bar,
                        LogState {
                            title,
                            started: now,
                            last: now,
                            total,
                            done: 0,
                        },
                    ),
                );
            }
            JobEventKind::Phase(phase) => {
                if let Some((bar, state)) = jobs.get(&e.job) {
                    match bar {
                        Some(b) => b.set_message(format!("{} ({phase})", state.title)),
                        None => eprintln!("    {phase}"),
                    }
                }
            }
            JobEventKind::Bytes(done) => {
                if let Some((bar, state)) = jobs.get_mut(&e.job) {
                    state.done = done;
                    match bar {
                        Some(b) => b.set_position(done),
                        None if state.last.elapsed() >= LOG_EVERY => {
                            state.last = Instant::now();
                            let secs = state.started.elapsed().as_secs_f64().max(0.001);
                            let of = state
                                .total
                                .map(|t| format!(" of {:.1} MiB", mib(t)))
                                .unwrap_or_default();
                            eprintln!(
                                "    {:.1} MiB{of} at {:.1} MiB/s",
                                mib(done),
                                mib(done) / secs
                            );
                        }
                        None => {}
                    }
                }
            }
            JobEventKind::Finished { summary } => {
                if let Some((bar, state)) = jobs.remove(&e.job) {
                    let secs = state.started.elapsed().as_secs_f64();
                    match bar {
                        Some(b) => {
                            b.finish_and_clear();
                            eprintln!("done: {} in {secs:.1}s", state.title);
                        }
                        None => eprintln!("    done in {secs:.1}s: {summary}"),
                    }
                }
            }
            JobEventKind::Failed { error } => {
                if let Some((bar, state)) = jobs.remove(&e.job) {
                    if let Some(b) = bar {
                        b.abandon_with_message(format!("{} FAILED", state.title));
                    }
                    eprintln!("    failed: {error}");
                }
            }
        }
    }
}
