//! Progress for the CLI, from the engine's job events: indicatif bars when
//! stderr is a terminal, plain log lines (throttled) otherwise, so cron mail and
//! CI logs stay readable.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::consumers::Handler;
use crate::engine::{EventKind, JobEvent, JobId, Operation, Outcome};

const LOG_EVERY: Duration = Duration::from_secs(5);

struct Shown {
    bar: Option<ProgressBar>,
    title: String,
    started: Instant,
    last_log: Instant,
}

/// The CLI's progress display: one bar (or log) per running job.
pub struct Display {
    tty: bool,
    bars: MultiProgress,
    jobs: HashMap<JobId, Shown>,
}

impl Display {
    pub fn new() -> Display {
        Display {
            tty: std::io::stderr().is_terminal(),
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            jobs: HashMap::new(),
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
        let bar = self.bars.add(bar);
        bar.set_message(title.to_string());
        Some(bar)
    }

    /// A line that must not be torn by a bar being drawn.
    fn line(&self, text: &str) {
        if self.tty {
            let _ = self.bars.println(text);
        } else {
            errln!("{text}");
        }
    }
}

/// What a job is, in a few words.
fn title(e: &JobEvent) -> String {
    let target = e.target.as_deref().unwrap_or("*");
    let region = e.region.as_deref().unwrap_or("-");
    let point = e
        .point
        .as_deref()
        .map(|p| format!(" {p}"))
        .unwrap_or_default();
    match e.operation {
        Operation::Backup => format!("backup {target} -> {region}"),
        Operation::Copy => format!("copy {target}{point} -> {region}"),
        Operation::Verify => format!("verify {target}{point} in {region}"),
        Operation::Plan => format!("plan: restore of {target} in {region}"),
        Operation::Restore => format!("restore {target}{point} in {region}"),
        Operation::Delete => format!("delete {target}{point} in {region}"),
        Operation::Gc => format!("gc {target} in {region}"),
        Operation::Fault => format!("fault: {target} in {region}"),
        Operation::Cleanup => format!("cleanup {target}{point} in {region}"),
        Operation::RestoreTest => format!("restore test {target}{point} in {region}"),
        Operation::Reach => format!("reach {target} in {region}"),
        Operation::Retain => format!("retain {target}{point} in {region}"),
        Operation::Stream => format!("stream {target}{point}"),
        Operation::List => format!("list {target}{point} in {region}"),
    }
}

fn mib(n: u64) -> f64 {
    n as f64 / (1024.0 * 1024.0)
}

impl Handler for Display {
    fn event(&mut self, event: Result<&JobEvent, u64>) {
        let Ok(e) = event else {
            return; // fell behind: the next progress event catches up
        };
        match &e.kind {
            EventKind::Started { total_bytes } => {
                let title = title(e);
                let bar = self.bar(&title, *total_bytes);
                if bar.is_none() {
                    errln!("==> {title}");
                }
                let now = Instant::now();
                self.jobs.insert(
                    e.job,
                    Shown {
                        bar,
                        title,
                        started: now,
                        last_log: now,
                    },
                );
            }
            EventKind::Phase => {
                let phase = e.phase.clone().unwrap_or_default();
                if let Some(s) = self.jobs.get(&e.job) {
                    match &s.bar {
                        Some(b) => b.set_message(format!("{} ({phase})", s.title)),
                        None => errln!("    {phase}"),
                    }
                }
            }
            EventKind::Progress {
                bytes,
                total_bytes,
                items,
                ..
            } => {
                if let Some(s) = self.jobs.get_mut(&e.job) {
                    match &s.bar {
                        Some(b) => {
                            if let Some(t) = total_bytes {
                                b.set_length(*t);
                            }
                            b.set_position(*bytes);
                        }
                        None if s.last_log.elapsed() >= LOG_EVERY => {
                            s.last_log = Instant::now();
                            let secs = s.started.elapsed().as_secs_f64().max(0.001);
                            let of = total_bytes
                                .map(|t| format!(" of {:.1} MiB", mib(t)))
                                .unwrap_or_default();
                            let objects = if *items > 0 {
                                format!(", {items} items")
                            } else {
                                String::new()
                            };
                            errln!(
                                "    {:.1} MiB{of} at {:.1} MiB/s{objects}",
                                mib(*bytes),
                                mib(*bytes) / secs
                            );
                        }
                        None => {}
                    }
                }
            }
            EventKind::ItemFailed { item, error } => {
                self.line(&format!("    failed: {item}: {error}"));
            }
            EventKind::Warning { message } => {
                self.line(&format!("    warning: {message}"));
            }
            EventKind::Finished {
                outcome, message, ..
            } => {
                let Some(s) = self.jobs.remove(&e.job) else {
                    return;
                };
                let secs = s.started.elapsed().as_secs_f64();
                let failed = matches!(outcome, Outcome::Failed | Outcome::Cancelled);
                match (s.bar, failed) {
                    (Some(b), false) => {
                        b.finish_and_clear();
                        self.line(&format!("done: {} in {secs:.1}s", s.title));
                    }
                    (Some(b), true) => {
                        b.abandon_with_message(format!("{} {}", s.title, outcome_word(*outcome)));
                        self.line(&format!("    {}: {message}", outcome_word(*outcome)));
                    }
                    (None, false) => errln!("    done in {secs:.1}s: {message}"),
                    (None, true) => errln!("    {}: {message}", outcome_word(*outcome)),
                }
            }
        }
    }

    fn end(&mut self) {
        for (_, s) in self.jobs.drain() {
            if let Some(b) = s.bar {
                b.finish_and_clear();
            }
        }
    }
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Cancelled => "cancelled",
        _ => "failed",
    }
}
