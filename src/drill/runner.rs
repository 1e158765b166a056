//! Running a drill: steps in order (parallel groups at once), each with its
//! timeout and failure policy; probes polling in their phases; canaries
//! writing markers until the fault; a monotonic timeline of all of it; then
//! the measures, the cleanup (always, on a detached engine, unless `keep`)
//! and the report.
//!
//! The runner prints nothing: it publishes [`DrillEvent`]s for any front end
//! and returns the [`DrillReport`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::measure::{self, DrillVerdict, Marker, Ms, Sample, Span};
use super::probe;
use super::spec::{
    Action, Canary, Drill, Fault, OnFailure, Phase, PointPick, Probe, RestoreStep, Step,
};
use crate::archive::{Consistency, PointId};
use crate::catalog::PointChoice;
use crate::engine::exercise::{CanaryMark, KindFault};
use crate::engine::{
    BackupRequest, CopyRequest, Engine, Existing, RestoreOptions, RestorePlan, RestoreRequest,
    Scope, Verdict,
};
use crate::error::{Error, ErrorClass};
use crate::report::{
    CleanupRecord, DrillReport, FaultRecord, Objectives, Overhead, ProbeSummary, REPORT_VERSION,
    RestoreRecord, Retrospective, RpoResult, SteadyState, StepOutcome, StepRecord, TimelineEntry,
    human_ms, opt_ms,
};

/// What the operator is asked for at a `manual` step.
#[async_trait]
pub trait Operator: Send + Sync {
    /// Returns once the operator has done what `instruction` says; an error
    /// (with the reason) when they refuse or cannot be asked.
    async fn confirm(&self, step: &str, instruction: &str) -> Result<(), String>;
}

/// An operator who confirms everything at once (`--yes`).
pub struct Unattended;

#[async_trait]
impl Operator for Unattended {
    async fn confirm(&self, _step: &str, _instruction: &str) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Keep what the drill made (restored copies, canary data).
    pub keep: bool,
    /// Confirm destructive restore plans.
    pub yes: bool,
    /// Restore in this region instead of the one each restore step names.
    pub region: Option<String>,
}

/// Something that happened in a running drill.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DrillEvent {
    pub run: String,
    pub at_ms: Ms,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: DrillEventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum DrillEventKind {
    Started {
        drill: String,
        steps: usize,
    },
    StepStarted {
        step: String,
        kind: String,
    },
    StepFinished {
        step: String,
        outcome: StepOutcome,
        message: String,
        duration_ms: u64,
    },
    Manual {
        step: String,
        instruction: String,
    },
    Fault {
        description: String,
    },
    Probe {
        sample: Sample,
    },
    Canary {
        canary: String,
        written: u64,
    },
    Recovered {
        rto_ms: u64,
    },
    /// Once a second from the fault to the end: the clock a dashboard shows.
    Measures {
        since_fault_ms: u64,
        rto_ms: Option<u64>,
        markers_written: u64,
    },
    Cleanup {
        what: String,
        ok: bool,
        message: String,
    },
    Finished {
        verdict: DrillVerdict,
        rto_ms: Option<u64>,
        rpo_ms: Option<u64>,
    },
}

impl DrillEvent {
    /// The event as a log line, without its time: what `drill run` prints
    /// and the dashboard's drill log shows. Sub-events are indented. None
    /// for what is not a line of its own: probe samples (a face says when
    /// a probe changes, with [`probe_line`]), the measures tick, and canary
    /// counts after the first.
    pub fn line(&self) -> Option<String> {
        Some(match &self.kind {
            DrillEventKind::Started { drill, steps } => {
                format!("drill {drill}: {steps} steps, run {}", self.run)
            }
            DrillEventKind::StepStarted { step, kind } => format!("==> {step} ({kind})"),
            DrillEventKind::StepFinished {
                step,
                outcome,
                message,
                duration_ms,
            } => format!(
                "    {step} {} in {}: {message}",
                outcome.label(),
                crate::report::human_ms(*duration_ms)
            ),
            DrillEventKind::Manual { step, instruction } => format!("MANUAL {step}: {instruction}"),
            DrillEventKind::Fault { description } => format!("!!! FAULT: {description}"),
            DrillEventKind::Canary { canary, written: 1 } => {
                format!("    canary {canary} writing markers")
            }
            DrillEventKind::Recovered { rto_ms } => {
                format!("+++ recovered: RTO {}", crate::report::human_ms(*rto_ms))
            }
            DrillEventKind::Cleanup { what, ok, message } => format!(
                "    cleanup {what}: {}{message}",
                if *ok { "" } else { "FAILED: " }
            ),
            DrillEventKind::Finished { verdict, .. } => {
                format!("drill finished: {}", verdict.label())
            }
            DrillEventKind::Probe { .. }
            | DrillEventKind::Canary { .. }
            | DrillEventKind::Measures { .. } => return None,
        })
    }
}

/// A probe's result as a log line, for when it changes.
pub fn probe_line(sample: &Sample) -> String {
    format!(
        "    probe {} [{}] {}: {}",
        sample.probe,
        sample.phase.name(),
        if sample.ok { "passes" } else { "FAILS" },
        sample.detail
    )
}

/// What the run has recorded so far (its own state, not a front end's).
#[derive(Default)]
struct Record {
    timeline: Vec<TimelineEntry>,
    samples: Vec<Sample>,
    /// Late results: how far each probe result was behind its schedule.
    lateness: Vec<u64>,
    steps: Vec<StepRecord>,
    markers: BTreeMap<String, Vec<Marker>>,
    fault: Option<FaultRecord>,
    restores: Vec<(String, RestorePlan, bool)>,
    recovered_ms: Option<Ms>,
    errors: Vec<String>,
    steady: Option<SteadyState>,
    cleanup: Vec<CleanupRecord>,
}

struct Ctx<'a> {
    engine: &'a Engine,
    drill: &'a Drill,
    opts: RunOptions,
    operator: Arc<dyn Operator>,
    run: String,
    t0: Instant,
    started_at: DateTime<Utc>,
    record: Arc<Mutex<Record>>,
    events: broadcast::Sender<DrillEvent>,
    /// Fires when the fault is injected: canaries and `before` probes stop.
    faulted: CancellationToken,
    /// Fires when measuring ends: `during` and `after` probes stop.
    stopped: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// A run id: the start time and a random suffix, lowercase (it names
/// folders, keys and Kubernetes objects).
pub fn run_id(started: DateTime<Utc>) -> String {
    format!(
        "{}-{:08x}",
        started.format("%Y%m%dt%H%M%Sz"),
        rand::thread_rng().r#gen::<u32>()
    )
}

/// Runs `drill` on `engine` (whose cancellation aborts it); returns the report.
pub async fn run(
    engine: &Engine,
    drill: &Drill,
    opts: RunOptions,
    operator: Arc<dyn Operator>,
    events: broadcast::Sender<DrillEvent>,
) -> DrillReport {
    let started_at = Utc::now();
    let ctx = Ctx {
        engine,
        drill,
        opts,
        operator,
        run: run_id(started_at),
        t0: Instant::now(),
        started_at,
        record: Arc::new(Mutex::new(Record::default())),
        events,
        faulted: CancellationToken::new(),
        stopped: CancellationToken::new(),
        tasks: Mutex::new(Vec::new()),
    };
    ctx.publish(DrillEventKind::Started {
        drill: drill.name.clone(),
        steps: drill.steps.len(),
    });
    ctx.notify(serde_json::json!({
        "event": "started", "drill": drill.name, "run": ctx.run, "at": started_at,
        "hypothesis": drill.hypothesis,
    }))
    .await;
    let recorder = ctx.record_engine_events();
    ctx.start_canaries();
    ctx.start_probes(Phase::Before);
    let mut failed = false;
    let mut skip = false;
    for step in &drill.steps {
        if skip {
            ctx.skipped(step, None);
            continue;
        }
        let ok = ctx.step(step, None).await;
        if !ok {
            failed = true;
            skip = step.on_failure == OnFailure::Abort;
        }
        if ctx.engine.cancel_token().is_cancelled() {
            skip = true;
        }
    }
    let aborted = ctx.engine.cancel_token().is_cancelled();
    // Measuring ends; what follows runs even after an abort.
    ctx.faulted.cancel();
    ctx.stopped.cancel();
    ctx.join_tasks().await;
    let cleaner = engine.detached();
    let tallies = ctx.read_canaries(&cleaner).await;
    // The drill is over: regions it declared lost are cleaned up (and get
    // its report) like the others, as far as they answer.
    let were_lost = cleaner.lost_regions();
    for region in &were_lost {
        let _ = cleaner.regain_region(region);
        ctx.note(
            "cleanup",
            format!("region {region} is no longer treated as lost: the drill is over"),
        );
    }
    let cleanup_ok = if ctx.opts.keep {
        ctx.note("cleanup", "--keep: what the drill made was left in place");
        true
    } else {
        ctx.final_cleanup(&cleaner, &were_lost).await
    };
    recorder.abort();
    let mut report = ctx.report(aborted, failed || !cleanup_ok, tallies);
    let ended = serde_json::json!({
        "event": "finished", "drill": drill.name, "run": ctx.run, "at": report.finished_at,
        "verdict": report.verdict, "rto_ms": report.rto.rto_ms, "rpo_ms": report.rpo.judged_ms(),
        "objectives": report.objectives,
    });
    if let Some(e) = ctx.notify(ended).await {
        report.errors.push(e);
    }
    ctx.publish(DrillEventKind::Finished {
        verdict: report.verdict,
        rto_ms: report.rto.rto_ms,
        rpo_ms: report.rpo.judged_ms(),
    });
    report
}

impl Ctx<'_> {
    fn ms(&self) -> Ms {
        self.t0.elapsed().as_millis() as Ms
    }

    /// Tells the drill's webhook, if it has one; the error, if it failed.
    async fn notify(&self, body: serde_json::Value) -> Option<String> {
        let url = self.drill.webhook.as_ref()?;
        match probe::post_json(url, &body).await {
            Ok(()) => {
                self.note("notify", format!("told {url}: {}", body["event"]));
                None
            }
            Err(e) => {
                self.note("notify", e.clone());
                Some(format!("notify: {e}"))
            }
        }
    }

    fn publish(&self, kind: DrillEventKind) {
        let _ = self.events.send(DrillEvent {
            run: self.run.clone(),
            at_ms: self.ms(),
            at: Utc::now(),
            kind,
        });
    }

    fn with<T>(&self, f: impl FnOnce(&mut Record) -> T) -> Option<T> {
        self.record.lock().ok().map(|mut r| f(&mut r))
    }

    fn note(&self, kind: &str, what: impl Into<String>) {
        let entry = TimelineEntry {
            at_ms: self.ms(),
            kind: kind.into(),
            what: what.into(),
        };
        self.with(|r| r.timeline.push(entry));
    }

    /// Engine job events become timeline entries (started, phases, failures).
    fn record_engine_events(&self) -> tokio::task::JoinHandle<()> {
        let mut rx = self.engine.subscribe();
        let record = self.record.clone();
        let t0 = self.t0;
        tokio::spawn(async move {
            use crate::engine::EventKind;
            loop {
                let e = match rx.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let what = match &e.kind {
                    EventKind::Started { .. } => "started".to_string(),
                    EventKind::Phase => e.phase.clone().unwrap_or_default(),
                    EventKind::ItemFailed { item, error } => format!("{item} failed: {error}"),
                    EventKind::Warning { message } => format!("warning: {message}"),
                    EventKind::Finished {
                        outcome, message, ..
                    } => format!("{}: {message}", outcome.label()),
                    EventKind::Progress { .. } => continue,
                };
                let entry = TimelineEntry {
                    at_ms: t0.elapsed().as_millis() as Ms,
                    kind: "job".into(),
                    what: format!(
                        "{} {} {}: {what}",
                        e.operation,
                        e.target.as_deref().unwrap_or("*"),
                        e.region.as_deref().unwrap_or("-"),
                    ),
                };
                if let Ok(mut r) = record.lock() {
                    r.timeline.push(entry);
                }
            }
        })
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        if let Ok(mut t) = self.tasks.lock() {
            t.push(handle);
        }
    }

    async fn join_tasks(&self) {
        let handles: Vec<_> = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for h in handles {
            let _ = h.await;
        }
    }

    fn canary_name(c: &Canary) -> String {
        format!(
            "{}:{}",
            serde_json::to_value(c.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            c.target
        )
    }

    fn start_canaries(&self) {
        for c in &self.drill.canaries {
            let engine = self.engine.detached();
            let canary = c.clone();
            let run = self.run.clone();
            let stop = self.faulted.clone();
            let record = self.record.clone();
            let events = self.events.clone();
            let name = Self::canary_name(c);
            let t0 = self.t0;
            self.spawn(async move {
                let mut seq = 0u64;
                let mut next = tokio::time::Instant::now();
                loop {
                    if stop.is_cancelled() {
                        return;
                    }
                    let at = Utc::now();
                    let mark = CanaryMark { seq, at };
                    let written = tokio::select! {
                        w = engine.canary_write(&canary.target, &canary.write_region, &run, mark) => w,
                        _ = stop.cancelled() => return,
                    };
                    let count = match written {
                        Ok(()) => record.lock().ok().map(|mut r| {
                            let list = r.markers.entry(name.clone()).or_default();
                            list.push(Marker { seq, at });
                            list.len() as u64
                        }),
                        Err(e) => {
                            if let Ok(mut r) = record.lock() {
                                r.timeline.push(TimelineEntry {
                                    at_ms: t0.elapsed().as_millis() as Ms,
                                    kind: "canary".into(),
                                    what: format!("{name}: marker {seq} not written: {e}"),
                                });
                            }
                            None
                        }
                    };
                    if let Some(written) = count
                        && written % 10 == 1
                    {
                        let _ = events.send(DrillEvent {
                            run: run.clone(),
                            at_ms: t0.elapsed().as_millis() as Ms,
                            at: Utc::now(),
                            kind: DrillEventKind::Canary {
                                canary: name.clone(),
                                written,
                            },
                        });
                    }
                    seq += 1;
                    next += canary.interval;
                    tokio::select! {
                        _ = tokio::time::sleep_until(next) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            });
        }
    }

    /// Publishes the measures so far once a second until measuring ends.
    fn start_ticker(&self, fault_ms: Ms) {
        let record = self.record.clone();
        let events = self.events.clone();
        let run = self.run.clone();
        let t0 = self.t0;
        let stop = self.stopped.clone();
        self.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => return,
                }
                let now = t0.elapsed().as_millis() as Ms;
                let (rto_ms, markers_written) = record
                    .lock()
                    .map(|r| {
                        (
                            r.recovered_ms.map(|at| at.saturating_sub(fault_ms)),
                            r.markers.values().map(|m| m.len() as u64).sum(),
                        )
                    })
                    .unwrap_or((None, 0));
                let _ = events.send(DrillEvent {
                    run: run.clone(),
                    at_ms: now,
                    at: Utc::now(),
                    kind: DrillEventKind::Measures {
                        since_fault_ms: now.saturating_sub(fault_ms),
                        rto_ms,
                        markers_written,
                    },
                });
            }
        });
    }

    fn start_probes(&self, phase: Phase) {
        let until = match phase {
            Phase::Before => self.faulted.clone(),
            Phase::During | Phase::After => self.stopped.clone(),
        };
        for p in self.drill.probes.iter().filter(|p| p.phase == phase) {
            let engine = self.engine.detached();
            let probe = p.clone();
            let record = self.record.clone();
            let events = self.events.clone();
            let run = self.run.clone();
            let t0 = self.t0;
            let stop = until.clone();
            self.spawn(async move {
                probe_loop(engine, probe, record, events, run, t0, stop).await;
            });
        }
    }

    fn skipped(&self, step: &Step, group: Option<&str>) {
        let at = self.ms();
        self.with(|r| {
            r.steps.push(StepRecord {
                name: step.name.clone(),
                kind: step.action.kind().into(),
                group: group.map(str::to_string),
                start_ms: at,
                end_ms: at,
                outcome: StepOutcome::Skipped,
                message: "not run: the drill stopped before it".into(),
            })
        });
    }

    /// Runs one step; whether it succeeded.
    async fn step(&self, step: &Step, group: Option<&str>) -> bool {
        if let Action::Parallel { steps } = &step.action {
            return self.parallel(step, steps).await;
        }
        let start = self.ms();
        self.note(
            "step",
            format!("{} ({}) started", step.name, step.action.kind()),
        );
        self.publish(DrillEventKind::StepStarted {
            step: step.name.clone(),
            kind: step.action.kind().into(),
        });
        let cancel = self.engine.cancel_token();
        let result = tokio::select! {
            r = tokio::time::timeout(step.timeout, self.action(step)) => match r {
                Ok(Ok(message)) => (StepOutcome::Ok, message),
                Ok(Err(e)) if e.class() == ErrorClass::Cancelled => (StepOutcome::Cancelled, e.to_string()),
                Ok(Err(e)) => (StepOutcome::Failed, e.to_string()),
                Err(_) => (StepOutcome::TimedOut, format!("did not finish within {}", human_ms(step.timeout.as_millis() as u64))),
            },
            _ = cancel.cancelled() => (StepOutcome::Cancelled, "aborted: the drill was cancelled".into()),
        };
        let end = self.ms();
        let (outcome, message) = result;
        self.note(
            "step",
            format!("{} {}: {message}", step.name, outcome.label()),
        );
        if outcome != StepOutcome::Ok {
            self.with(|r| r.errors.push(format!("step {}: {message}", step.name)));
        }
        self.publish(DrillEventKind::StepFinished {
            step: step.name.clone(),
            outcome,
            message: message.clone(),
            duration_ms: end - start,
        });
        self.with(|r| {
            r.steps.push(StepRecord {
                name: step.name.clone(),
                kind: step.action.kind().into(),
                group: group.map(str::to_string),
                start_ms: start,
                end_ms: end,
                outcome,
                message,
            })
        });
        outcome == StepOutcome::Ok
    }

    async fn parallel(&self, group: &Step, steps: &[Step]) -> bool {
        let start = self.ms();
        self.note(
            "step",
            format!("{} (parallel, {} steps) started", group.name, steps.len()),
        );
        let runs = steps.iter().map(|s| self.step(s, Some(&group.name)));
        let done = tokio::time::timeout(group.timeout, futures::future::join_all(runs)).await;
        let (ok, message) = match &done {
            Ok(results) => {
                let failed: Vec<&str> = steps
                    .iter()
                    .zip(results)
                    .filter(|(s, ok)| !**ok && s.on_failure == OnFailure::Abort)
                    .map(|(s, _)| s.name.as_str())
                    .collect();
                if failed.is_empty() {
                    (true, format!("{} steps ran", steps.len()))
                } else {
                    (false, format!("failed: {}", failed.join(", ")))
                }
            }
            Err(_) => (
                false,
                format!(
                    "did not finish within {}",
                    human_ms(group.timeout.as_millis() as u64)
                ),
            ),
        };
        let end = self.ms();
        self.with(|r| {
            r.steps.push(StepRecord {
                name: group.name.clone(),
                kind: "parallel".into(),
                group: None,
                start_ms: start,
                end_ms: end,
                outcome: if ok {
                    StepOutcome::Ok
                } else {
                    StepOutcome::Failed
                },
                message: message.clone(),
            })
        });
        ok
    }

    async fn action(&self, step: &Step) -> Result<String, Error> {
        match &step.action {
            Action::Backup(b) => {
                let targets = if b.targets.is_empty() {
                    self.drill.targets.clone()
                } else {
                    b.targets.clone()
                };
                let req = BackupRequest {
                    targets,
                    schedule: None,
                    labels: BTreeMap::from([
                        ("drill".to_string(), self.drill.name.clone()),
                        ("drill-run".to_string(), self.run.clone()),
                    ]),
                    no_copy: b.no_copy,
                    copy_to: None,
                };
                let report = self.engine.backup(&req).await?;
                summarize(&report)
            }
            Action::Copy(c) => {
                let targets: Vec<Option<String>> = if c.targets.is_empty() {
                    if self.drill.targets.is_empty() {
                        vec![None]
                    } else {
                        self.drill.targets.iter().cloned().map(Some).collect()
                    }
                } else {
                    c.targets.iter().cloned().map(Some).collect()
                };
                let mut all = crate::engine::RunReport::default();
                for target in targets {
                    let req = CopyRequest {
                        target,
                        point: None,
                        from: c.from.clone(),
                        to: c.to.clone(),
                    };
                    all.extend(self.engine.copy(&req).await?);
                }
                summarize(&all)
            }
            Action::Fault(f) => self.fault(f).await,
            Action::Restore(r) => self.restore(step, r).await,
            Action::Verify(v) => self.verify(&v.probes).await,
            Action::Wait { duration } => {
                tokio::time::sleep(*duration).await;
                Ok(format!("waited {}", human_ms(duration.as_millis() as u64)))
            }
            Action::Manual(m) => {
                self.publish(DrillEventKind::Manual {
                    step: step.name.clone(),
                    instruction: m.instruction.clone(),
                });
                self.operator
                    .confirm(&step.name, &m.instruction)
                    .await
                    .map_err(Error::NotConfirmed)?;
                Ok("confirmed by the operator".into())
            }
            Action::Exec(e) => {
                probe::run_command(&e.command, e.expect_exit.unwrap_or(0), step.timeout).await
            }
            Action::Cleanup(c) => {
                let mut done = Vec::new();
                for command in &c.exec {
                    done.push(probe::run_command(command, 0, step.timeout).await?);
                }
                if !c.keep_restores && !self.opts.keep {
                    let engine = self.engine.detached();
                    let ok = self.undo_restores(&engine).await;
                    done.push(if ok {
                        "restores undone".to_string()
                    } else {
                        return Err(Error::failed("undoing a restore failed (see cleanup)"));
                    });
                }
                Ok(done.join("; "))
            }
            Action::Parallel { .. } => Ok(String::new()),
            Action::RegainRegion(r) => {
                self.engine.regain_region(&r.region)?;
                Ok(format!(
                    "region {} is back: drtool contacts it again",
                    r.region
                ))
            }
        }
    }

    /// Waits until every `before` probe holds its threshold, or refuses.
    async fn steady_state(&self) -> Result<(), Error> {
        let before: Vec<&Probe> = self
            .drill
            .probes
            .iter()
            .filter(|p| p.phase == Phase::Before)
            .collect();
        if before.is_empty() {
            self.with(|r| {
                r.steady = Some(SteadyState {
                    ok: true,
                    detail: "no before probes: the steady state was not checked".into(),
                })
            });
            return Ok(());
        }
        let patience = before
            .iter()
            .map(|p| (p.interval + p.timeout) * (p.success_threshold + 2))
            .max()
            .unwrap_or(Duration::from_secs(30));
        let deadline = Instant::now() + patience;
        loop {
            let pending: Vec<String> = self
                .with(|r| {
                    before
                        .iter()
                        .filter(|p| streak(&r.samples, &p.name) < p.success_threshold)
                        .map(|p| {
                            let last = r.samples.iter().rev().find(|s| s.probe == p.name);
                            format!(
                                "{} ({})",
                                p.name,
                                last.map_or("no result yet".to_string(), |s| s.detail.clone())
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if pending.is_empty() {
                self.with(|r| {
                    r.steady = Some(SteadyState {
                        ok: true,
                        detail: "every before probe met its threshold".into(),
                    })
                });
                return Ok(());
            }
            if Instant::now() >= deadline {
                let detail = format!(
                    "the steady state does not hold, so no fault was injected: {}",
                    pending.join("; ")
                );
                self.with(|r| {
                    r.steady = Some(SteadyState {
                        ok: false,
                        detail: detail.clone(),
                    })
                });
                return Err(Error::failed(detail));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn fault(&self, fault: &Fault) -> Result<String, Error> {
        if self.with(|r| r.fault.is_some()).unwrap_or(false) {
            // A second fault (a parallel group's): measured from the first.
            return self.inject(fault).await;
        }
        self.steady_state().await?;
        let description = fault.describe();
        // Canaries stop at the fault: what they wrote before it is what a
        // recovery should bring back.
        let at_ms = self.ms();
        let at = Utc::now();
        self.faulted.cancel();
        self.with(|r| {
            r.fault = Some(FaultRecord {
                at_ms,
                at,
                description: description.clone(),
            })
        });
        self.note("fault", description.clone());
        self.publish(DrillEventKind::Fault {
            description: description.clone(),
        });
        self.start_probes(Phase::During);
        self.start_probes(Phase::After);
        self.start_ticker(at_ms);
        self.inject(fault).await
    }

    async fn inject(&self, fault: &Fault) -> Result<String, Error> {
        let kind = match fault {
            Fault::LoseRegion { region } => {
                self.engine.lose_region(region)?;
                return Ok(format!(
                    "region {region} is lost: drtool contacts nothing in it from now on"
                ));
            }
            Fault::Exec { command } => {
                return probe::run_command(command, 0, Duration::from_secs(600)).await;
            }
            Fault::StopMember(m) => KindFault::StopMember {
                command: m.command.clone(),
                pid_file: m.pid_file.clone(),
                kill: false,
            },
            Fault::KillMember(m) => KindFault::StopMember {
                command: m.command.clone(),
                pid_file: m.pid_file.clone(),
                kill: true,
            },
            Fault::DeleteKeys(d) => KindFault::DeleteKeys {
                prefix: d.prefix.clone(),
            },
            Fault::DeleteNamespace(_) => KindFault::DeleteNamespace,
            Fault::DeleteObjects(d) => KindFault::DeleteObjects {
                resource: d.resource.clone(),
                selector: d.selector.clone(),
            },
            Fault::RebootFailover(_) => KindFault::RebootFailover,
            Fault::StopInstance(_) => KindFault::StopInstance,
            Fault::PromoteReplica(p) => KindFault::PromoteReplica {
                replica: p.replica.clone(),
            },
        };
        let (target, region) = fault
            .target()
            .ok_or_else(|| Error::failed("a kind's fault names its target"))?;
        self.engine.inject_fault(target, region, &kind).await
    }

    async fn restore(&self, step: &Step, r: &RestoreStep) -> Result<String, Error> {
        let region = self.opts.region.clone().unwrap_or_else(|| r.region.clone());
        let point = self.pick_point(r, &region).await?;
        let o = &r.options;
        let options = RestoreOptions {
            prefix: o.prefix.clone(),
            existing: o.existing.as_deref().map(|e| match e {
                "skip" => Existing::Skip,
                "fail" => Existing::Fail,
                _ => Existing::Overwrite,
            }),
            database: o.database.clone(),
            from_dump: o.from_dump,
            pitr: None,
            namespace_map: o
                .namespace_map
                .as_deref()
                .and_then(|m| m.split_once('='))
                .map(|(a, b)| (a.to_string(), b.to_string())),
            include: o.include.clone(),
            exclude: o.exclude.clone(),
        };
        let plan = self
            .engine
            .plan_restore(&RestoreRequest {
                region: region.clone(),
                target: r.target.clone(),
                point,
                options,
            })
            .await?;
        for line in plan.describe() {
            self.note("plan", line);
        }
        if plan.destructive && !self.opts.yes {
            return Err(Error::NotConfirmed(format!(
                "the restore plan of {} in {region} replaces existing data: run the drill with --yes after reading it (drill run --dry-run prints it)",
                r.target
            )));
        }
        let report = self.engine.execute(&plan).await;
        let executed = report.verdict() != Verdict::Failed(ErrorClass::BadInput);
        self.with(|rec| {
            rec.restores
                .push((step.name.clone(), plan.clone(), executed))
        });
        summarize(&report)
    }

    async fn pick_point(&self, r: &RestoreStep, region: &str) -> Result<PointChoice, Error> {
        match &r.point {
            PointPick::Latest => Ok(PointChoice::Newest),
            PointPick::Before(t) => Ok(PointChoice::Before(*t)),
            PointPick::RandomWithin(window) => {
                let listed = self
                    .engine
                    .points(&Scope {
                        region: Some(region.to_string()),
                        target: Some(r.target.clone()),
                    })
                    .await?;
                let since = self.started_at
                    - chrono::Duration::from_std(*window).unwrap_or(chrono::Duration::MAX);
                let candidates: Vec<String> = listed
                    .iter()
                    .flat_map(|rp| &rp.points)
                    .filter(|m| m.finished_at >= since)
                    .map(|m| m.point_id.clone())
                    .collect();
                if candidates.is_empty() {
                    return Err(Error::input(format!(
                        "region {region} holds no point of {} finished within {} before the drill",
                        r.target,
                        humantime::format_duration(*window)
                    )));
                }
                let pick = &candidates[rand::thread_rng().gen_range(0..candidates.len())];
                self.note(
                    "plan",
                    format!(
                        "random point {pick} of {} within the window",
                        candidates.len()
                    ),
                );
                Ok(PointChoice::Id(pick.parse::<PointId>()?))
            }
        }
    }

    /// Waits until the chosen `after` probes all meet their thresholds.
    async fn verify(&self, names: &[String]) -> Result<String, Error> {
        let probes: Vec<&Probe> = self
            .drill
            .probes
            .iter()
            .filter(|p| p.phase == Phase::After && (names.is_empty() || names.contains(&p.name)))
            .collect();
        let thresholds: BTreeMap<String, u32> = probes
            .iter()
            .map(|p| (p.name.clone(), p.success_threshold))
            .collect();
        let from = self
            .with(|r| r.fault.as_ref().map(|f| f.at_ms))
            .flatten()
            .unwrap_or(0);
        loop {
            let recovered = self
                .with(|r| measure::recovered_at(&r.samples, from, &thresholds))
                .flatten();
            if let Some(at) = recovered {
                // RTO ends at the first recovery; later verify steps (a
                // fail-back) pass or fail, but do not move it.
                let first = self
                    .with(|r| {
                        let first = r.recovered_ms.is_none();
                        r.recovered_ms.get_or_insert(at);
                        first
                    })
                    .unwrap_or(false);
                let since = human_ms(at.saturating_sub(from));
                if first {
                    self.publish(DrillEventKind::Recovered {
                        rto_ms: at.saturating_sub(from),
                    });
                    return Ok(format!(
                        "every chosen after probe met its threshold, {since} after the fault"
                    ));
                }
                return Ok(format!(
                    "every chosen after probe met its threshold, {since} after the fault (RTO was measured at the first recovery)"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn read_canaries(&self, engine: &Engine) -> Vec<measure::CanaryTally> {
        let fault = self.with(|r| r.fault.clone()).flatten();
        let Some(fault) = fault else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for c in &self.drill.canaries {
            let name = Self::canary_name(c);
            let written = self
                .with(|r| r.markers.get(&name).cloned().unwrap_or_default())
                .unwrap_or_default();
            let surviving = match engine
                .canary_read(&c.target, &c.read_region, &self.run)
                .await
            {
                Ok(marks) => marks
                    .into_iter()
                    .map(|m| Marker {
                        seq: m.seq,
                        at: m.at,
                    })
                    .collect(),
                Err(e) => {
                    self.with(|r| {
                        r.errors.push(format!(
                            "canary {name}: cannot read markers in {}: {e}",
                            c.read_region
                        ))
                    });
                    Vec::new()
                }
            };
            out.push(measure::tally(&name, &written, &surviving, fault.at));
        }
        out
    }

    /// Undoes every restore not undone yet, newest first; whether all went well.
    async fn undo_restores(&self, engine: &Engine) -> bool {
        let pending: Vec<(usize, String, RestorePlan)> = self
            .with(|r| {
                r.restores
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, _, executed))| *executed)
                    .map(|(i, (s, p, _))| (i, s.clone(), p.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut ok = true;
        for (i, step, plan) in pending.into_iter().rev() {
            let what = format!("undo restore {step} ({} in {})", plan.target, plan.region);
            let undone = engine.undo_restore(&plan).await;
            ok &= undone.is_ok();
            self.cleaned(what, undone);
            self.with(|r| {
                if let Some(entry) = r.restores.get_mut(i) {
                    entry.2 = false;
                }
            });
        }
        ok
    }

    fn cleaned(&self, what: String, result: Result<String, Error>) {
        self.cleaned_as(what, result, false);
    }

    /// Records one cleanup; `left_behind` marks what could not be removed
    /// because the drill itself took its region down.
    fn cleaned_as(&self, what: String, result: Result<String, Error>, left_behind: bool) {
        let (ok, message) = match result {
            Ok(m) => (true, m),
            Err(e) => (false, e.to_string()),
        };
        self.note("cleanup", format!("{what}: {message}"));
        self.publish(DrillEventKind::Cleanup {
            what: what.clone(),
            ok,
            message: message.clone(),
        });
        self.with(|r| {
            r.cleanup.push(CleanupRecord {
                what,
                ok,
                message,
                left_behind,
            })
        });
    }

    /// Removes canary data and undoes restores; whether everything went well.
    /// Markers in a region the drill declared lost that still does not answer
    /// (the drill took it down) are left behind and named, not a failure.
    async fn final_cleanup(&self, engine: &Engine, were_lost: &[String]) -> bool {
        let mut ok = self.undo_restores(engine).await;
        for c in &self.drill.canaries {
            let mut regions = vec![c.write_region.clone(), c.read_region.clone()];
            regions.dedup();
            for region in regions {
                let what = format!("canary {} in {region}", Self::canary_name(c));
                let cleared = engine
                    .canary_clear(&c.target, &region, &self.run)
                    .await
                    .map(|n| format!("{n} markers removed"));
                match cleared {
                    Err(e)
                        if were_lost.contains(&region) && e.class() == ErrorClass::Unreachable =>
                    {
                        self.cleaned_as(
                            what,
                            Ok(format!(
                                "left behind: the drill took {region} down and it does not answer ({e}); remove the markers of run {} once it is back",
                                self.run
                            )),
                            true,
                        );
                    }
                    cleared => {
                        ok &= cleared.is_ok();
                        self.cleaned(what, cleared);
                    }
                }
            }
        }
        ok
    }

    fn report(
        &self,
        aborted: bool,
        failed: bool,
        tallies: Vec<measure::CanaryTally>,
    ) -> DrillReport {
        let rec = self
            .record
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let finished_at = Utc::now();
        let duration_ms = self.ms();
        let fault_ms = rec.fault.as_ref().map(|f| f.at_ms);
        // Without a verify step, recovery is read from the after probes.
        let recovered = rec.recovered_ms.or_else(|| {
            let thresholds: BTreeMap<String, u32> = self
                .drill
                .probes
                .iter()
                .filter(|p| p.phase == Phase::After)
                .map(|p| (p.name.clone(), p.success_threshold))
                .collect();
            fault_ms.and_then(|f| measure::recovered_at(&rec.samples, f, &thresholds))
        });
        let detected = fault_ms.and_then(|f| measure::detected_at(&rec.samples, f));
        let spans: Vec<Span> = rec
            .steps
            .iter()
            .filter_map(|s| {
                let kind = match s.kind.as_str() {
                    "manual" => "manual",
                    "wait" => "wait",
                    "restore" => "restore",
                    _ => return None,
                };
                Some(Span {
                    kind,
                    start_ms: s.start_ms,
                    end_ms: s.end_ms,
                })
            })
            .collect();
        let rto = match fault_ms {
            Some(f) => measure::breakdown(f, recovered, detected, &spans),
            None => measure::RtoBreakdown::default(),
        };
        let lost: u64 = tallies.iter().map(|t| t.lost).sum();
        let measured = tallies.iter().filter_map(|t| t.rpo_ms).max();
        let restores: Vec<RestoreRecord> = rec
            .restores
            .iter()
            .map(|(step, plan, _)| RestoreRecord {
                step: step.clone(),
                target: plan.target.clone(),
                region: plan.region.clone(),
                point: plan.point.as_ref().map(|p| p.id.clone()),
                consistent_at: plan
                    .point
                    .as_ref()
                    .map(|p| consistency_time(&p.consistency)),
                plan: plan.describe(),
            })
            .collect();
        let nominal = rec.fault.as_ref().and_then(|f| {
            restores
                .iter()
                .filter_map(|r| r.consistent_at)
                .map(|c| (f.at - c).num_milliseconds().max(0) as u64)
                .max()
        });
        let rpo = RpoResult {
            measured_ms: measured,
            nominal_ms: nominal,
            lost_markers: lost,
            canaries: tallies,
        };
        let objectives = Objectives {
            rto_ms: self.drill.rto.as_millis() as u64,
            rpo_ms: self.drill.rpo.as_millis() as u64,
        };
        let fault_missing = rec.fault.is_none();
        let verdict = measure::verdict(
            aborted,
            failed || fault_missing,
            rto.rto_ms,
            rpo.judged_ms(),
            (objectives.rto_ms, objectives.rpo_ms),
        );
        let probes = self.probe_summaries(&rec.samples, fault_ms, recovered.unwrap_or(duration_ms));
        let step_time: u64 = rec
            .steps
            .iter()
            .filter(|s| s.group.is_none())
            .map(|s| s.end_ms.saturating_sub(s.start_ms))
            .sum();
        let overhead = Overhead {
            between_steps_ms: rec
                .steps
                .iter()
                .filter(|s| s.group.is_none())
                .map(|s| s.end_ms)
                .max()
                .unwrap_or(0)
                .saturating_sub(step_time)
                .saturating_sub(rec.steps.first().map_or(0, |s| s.start_ms)),
            probe_lateness_ms: if rec.lateness.is_empty() {
                0
            } else {
                rec.lateness.iter().sum::<u64>() / rec.lateness.len() as u64
            },
            resolution_ms: self
                .drill
                .probes
                .iter()
                .map(|p| p.interval.as_millis() as u64)
                .min()
                .unwrap_or(0),
        };
        let mut errors = rec.errors;
        if fault_missing && !aborted {
            errors.push("no fault was injected: RTO and RPO were not measured".into());
        }
        let steady = rec.steady.unwrap_or(SteadyState {
            ok: false,
            detail: "not checked: no fault step ran".into(),
        });
        let summary = summary_lines(
            self.drill,
            verdict,
            &rto,
            &rpo,
            &steady,
            rec.fault.as_ref(),
            &objectives,
        );
        DrillReport {
            report_version: REPORT_VERSION,
            run_id: self.run.clone(),
            drill: self.drill.name.clone(),
            description: self.drill.description.clone(),
            hypothesis: self.drill.hypothesis.clone(),
            file: self.drill.file.display().to_string(),
            drtool_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at,
            finished_at,
            duration_ms,
            verdict,
            summary,
            objectives,
            rto,
            rpo,
            steady_state: steady,
            fault: rec.fault,
            steps: rec.steps,
            probes,
            samples: rec.samples,
            restores,
            cleanup: rec.cleanup,
            timeline: {
                let mut t = rec.timeline;
                t.sort_by_key(|e| e.at_ms);
                t
            },
            errors,
            overhead,
            notes: Vec::new(),
            retrospective: Retrospective::default(),
            uploaded_to: Vec::new(),
            signature: None,
        }
    }

    fn probe_summaries(
        &self,
        samples: &[Sample],
        fault_ms: Option<Ms>,
        end_ms: Ms,
    ) -> Vec<ProbeSummary> {
        let availability = fault_ms.map(|f| measure::availability(samples, f, end_ms));
        self.drill
            .probes
            .iter()
            .map(|p| {
                let mine: Vec<&Sample> = samples.iter().filter(|s| s.probe == p.name).collect();
                let passes = mine.iter().filter(|s| s.ok).count() as u64;
                let met_at_ms = match (p.phase, fault_ms) {
                    (Phase::After, Some(f)) => {
                        let t = BTreeMap::from([(p.name.clone(), p.success_threshold)]);
                        measure::recovered_at(samples, f, &t).map(|at| at.saturating_sub(f))
                    }
                    _ => None,
                };
                ProbeSummary {
                    probe: p.name.clone(),
                    phase: p.phase,
                    kind: p.check.kind().into(),
                    check: p.check.describe(),
                    success_threshold: p.success_threshold,
                    interval_ms: p.interval.as_millis() as u64,
                    executed: !mine.is_empty(),
                    runs: mine.len() as u64,
                    passes,
                    failures: mine.len() as u64 - passes,
                    met_at_ms,
                    availability: match p.phase {
                        Phase::During => {
                            availability.as_ref().and_then(|a| a.get(&p.name).copied())
                        }
                        _ => None,
                    },
                    last_detail: mine.last().map(|s| s.detail.clone()),
                }
            })
            .collect()
    }
}

/// The current run of consecutive passes of a probe.
fn streak(samples: &[Sample], probe: &str) -> u32 {
    samples
        .iter()
        .rev()
        .filter(|s| s.probe == probe)
        .take_while(|s| s.ok)
        .count() as u32
}

async fn probe_loop(
    engine: Engine,
    probe: Probe,
    record: Arc<Mutex<Record>>,
    events: broadcast::Sender<DrillEvent>,
    run: String,
    t0: Instant,
    stop: CancellationToken,
) {
    let mut due = tokio::time::Instant::now();
    loop {
        if stop.is_cancelled() {
            return;
        }
        let late = tokio::time::Instant::now().saturating_duration_since(due);
        let started = Instant::now();
        let checked = tokio::select! {
            r = tokio::time::timeout(probe.timeout, probe::check(&engine, &probe.check)) => r,
            _ = stop.cancelled() => return,
        };
        let (ok, detail) = match checked {
            Ok(Ok(d)) => (true, d),
            Ok(Err(e)) => (false, e),
            Err(_) => (
                false,
                format!(
                    "no answer within {}",
                    human_ms(probe.timeout.as_millis() as u64)
                ),
            ),
        };
        let sample = Sample {
            probe: probe.name.clone(),
            phase: probe.phase,
            at_ms: t0.elapsed().as_millis() as Ms,
            ok,
            took_ms: started.elapsed().as_millis() as u64,
            detail,
        };
        if let Ok(mut r) = record.lock() {
            r.samples.push(sample.clone());
            r.lateness.push(late.as_millis() as u64);
        }
        let _ = events.send(DrillEvent {
            run: run.clone(),
            at_ms: sample.at_ms,
            at: Utc::now(),
            kind: DrillEventKind::Probe { sample },
        });
        due += probe.interval;
        // A check slower than its interval runs again at once, not in a burst.
        let now = tokio::time::Instant::now();
        if due < now {
            due = now;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.cancelled() => return,
        }
    }
}

fn consistency_time(c: &Consistency) -> DateTime<Utc> {
    match c {
        Consistency::Etcd { observed_at, .. } => *observed_at,
        Consistency::Rds { at } => *at,
        Consistency::Namespace { at, .. } => *at,
    }
}

/// A step's result from an engine report: every item's message, and a
/// failure when anything failed.
fn summarize(report: &crate::engine::RunReport) -> Result<String, Error> {
    let lines: Vec<String> = report
        .items
        .iter()
        .map(|i| {
            format!(
                "{} {} {} {}: {}",
                i.outcome.label(),
                i.operation,
                i.target,
                i.region,
                i.message
            )
        })
        .collect();
    let text = lines.join("; ");
    match report.verdict() {
        Verdict::Ok => Ok(text),
        Verdict::Cancelled => Err(Error::cancelled(text)),
        Verdict::Partial => Err(Error::failed(format!("partly failed: {text}"))),
        Verdict::Failed(class) => Err(Error::Noted {
            class,
            message: text,
        }),
    }
}

fn summary_lines(
    drill: &Drill,
    verdict: DrillVerdict,
    rto: &measure::RtoBreakdown,
    rpo: &RpoResult,
    steady: &SteadyState,
    fault: Option<&FaultRecord>,
    objectives: &Objectives,
) -> Vec<String> {
    let mut lines = vec![format!("Hypothesis: {}", drill.hypothesis)];
    lines.push(format!(
        "Steady state: {}",
        if steady.ok {
            "held before the fault"
        } else {
            "did not hold"
        }
    ));
    match fault {
        Some(f) => lines.push(format!(
            "What was done: {}, then {} steps in all.",
            f.description,
            drill.steps.len()
        )),
        None => lines.push("What was done: no fault was injected.".into()),
    }
    let rpo_text = match (rpo.measured_ms, rpo.nominal_ms) {
        (Some(m), _) => format!(
            "RPO {} measured ({} canary markers lost; nominal {})",
            human_ms(m),
            rpo.lost_markers,
            opt_ms(rpo.nominal_ms)
        ),
        (None, Some(n)) => format!("RPO {} nominal (no canaries)", human_ms(n)),
        (None, None) => "RPO not measured".into(),
    };
    lines.push(format!(
        "Verdict: {}. RTO {} (objective {}), {rpo_text} (objective {}).",
        verdict.label(),
        opt_ms(rto.rto_ms),
        human_ms(objectives.rto_ms),
        human_ms(objectives.rpo_ms),
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(probe: &str, ok: bool) -> Sample {
        Sample {
            probe: probe.into(),
            phase: Phase::Before,
            at_ms: 0,
            ok,
            took_ms: 0,
            detail: String::new(),
        }
    }

    #[test]
    fn a_streak_counts_the_newest_passes_only() {
        let s = [
            sample("a", true),
            sample("a", false),
            sample("b", true),
            sample("a", true),
            sample("a", true),
        ];
        assert_eq!(streak(&s, "a"), 2);
        assert_eq!(streak(&s, "b"), 1);
        assert_eq!(streak(&s, "c"), 0);
    }

    #[test]
    fn run_ids_are_lowercase_and_sort_by_time() {
        let t = DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        let id = run_id(t);
        assert!(id.starts_with("20261118t"), "{id}");
        assert_eq!(id, id.to_lowercase());
    }
}
