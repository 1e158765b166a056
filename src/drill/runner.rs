//! Running a drill: steps in order (parallel groups at once), each with its
//! timeout and failure policy; probes polling in their phases; canaries
//! writing markers until the fault; a monotonic timeline of all of it; then
//! the measures, the cleanup (always, on a detached engine, unless `keep`)
//! and the report.
//!
//! The runner prints nothing: it publishes [`DrillEvent`]s for any front end
//! and returns the [`DrillReport`].

use std::collections::{BTreeMap, BTreeSet};
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
    Action, Canary, Drill, Fault, OnFailure, Phase, PointPick, Probe, RestoreStep, Rollback, Step,
};
use crate::archive::PointId;
use crate::catalog::PointChoice;
use crate::engine::faults::CanaryMark;
use crate::engine::{
    BackupRequest, CopyRequest, Engine, RestorePlan, RestoreRequest, Scope, Verdict,
};
use crate::error::{Error, ErrorClass};
use crate::report::{
    CanaryPlace, CleanupRecord, DrillReport, FaultRecord, Objectives, Overhead, ProbeSummary,
    RENDERER, REPORT_VERSION, RanBy, RestoreRecord, Retrospective, RpoResult, SteadyState,
    StepOutcome, StepRecord, TimelineEntry, human_ms, opt_ms,
};

/// How long a cancelled step that changes something may take to roll back.
const WIND_DOWN: Duration = Duration::from_secs(300);
/// What a step the drill stopped before says, in the report and the events.
pub const SKIPPED: &str = "not run: the drill stopped before it";

/// What the operator is asked for at a `manual` step.
#[async_trait]
pub trait Operator: Send + Sync {
    /// Returns once the operator has done what `instruction` says; an error
    /// (with the reason) when they refuse or cannot be asked.
    async fn confirm(&self, step: &str, instruction: &str) -> Result<(), NotConfirmed>;
}

/// Why a manual step was not confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotConfirmed {
    #[error(
        "manual step {step} needs an operator: run on a terminal, or with --yes to confirm it at once"
    )]
    NoOperator { step: String },
    /// The terminal or dashboard that would ask went away.
    #[error("manual step {step}: {reason}")]
    OperatorGone { step: String, reason: String },
    #[error("the operator aborted at {step}")]
    Aborted { step: String },
    #[error("the drill was aborted at {step}")]
    DrillAborted { step: String },
}

/// The steady state's `before` probes did not all hold after recovery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the steady state did not come back after recovery: {detail}")]
pub struct SteadyStateLost {
    pub detail: String,
}

/// An operator who confirms everything at once (`--yes`).
pub struct Unattended;

#[async_trait]
impl Operator for Unattended {
    async fn confirm(&self, _step: &str, _instruction: &str) -> Result<(), NotConfirmed> {
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// How the drill was started (`drill run`, `the dashboard`), for the report.
    pub via: String,
    /// Keep what the drill made (restored copies, canary data).
    pub keep: bool,
    /// Confirm destructive restore plans.
    pub yes: bool,
    /// Restore in this region instead of the one each restore step names.
    pub region: Option<String>,
    /// While this holds true the drill waits before its next step (the
    /// dashboard's quit dialog: the operator decides before more happens);
    /// an abort ends the wait.
    pub hold: Option<tokio::sync::watch::Receiver<bool>>,
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
    /// A guard probe tripped: the drill stops and rolls back.
    Guard {
        message: String,
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
            DrillEventKind::Guard { message } => format!("!!! STOPPED: {message}"),
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

/// A restore the drill ran (or began): what the cleanup undoes.
#[derive(Clone)]
struct Restored {
    step: String,
    plan: RestorePlan,
    /// Whether it may have changed the target (and is not undone yet).
    pending_undo: bool,
    /// How it ended, once it did.
    result: Option<String>,
    /// Whether it finished without a failure (only those bound the RPO).
    completed: bool,
}

/// What the run has recorded so far (its own state, not a front end's).
#[derive(Default, Clone)]
struct Record {
    timeline: Vec<TimelineEntry>,
    samples: Vec<Sample>,
    /// Late results: how far each probe result was behind its schedule.
    lateness: Vec<u64>,
    steps: Vec<StepRecord>,
    markers: BTreeMap<String, Vec<Marker>>,
    fault: Option<FaultRecord>,
    restores: Vec<Restored>,
    recovered_ms: Option<Ms>,
    errors: Vec<String>,
    steady: Option<SteadyState>,
    /// The steady state re-checked after recovery.
    steady_after: Option<SteadyState>,
    /// Why a guard probe stopped the drill.
    guard_tripped: Option<String>,
    /// The parallel group of the first fault (none: it was no group's).
    fault_group: Option<Option<String>>,
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
    /// Cleanup steps run their commands only (the rollback policy keeps
    /// what the drill made).
    exec_only: std::sync::atomic::AtomicBool,
    /// The rollback runs in full (its policy allows it after this outcome).
    undo_granted: std::sync::atomic::AtomicBool,
}

/// A run id: the start time and a random suffix, spelled as point ids are
/// (`20261205T083724Z-08f162f8`); Kubernetes names take it lowercased.
pub fn run_id(started: DateTime<Utc>) -> String {
    format!(
        "{}-{:08x}",
        started.format("%Y%m%dT%H%M%SZ"),
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
    // The drill's own engine: a guard probe stops it without it looking like
    // a signal or an operator's abort (those cancel `engine`).
    let drill_engine = engine.child();
    let ctx = Ctx {
        engine: &drill_engine,
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
        exec_only: std::sync::atomic::AtomicBool::new(false),
        undo_granted: std::sync::atomic::AtomicBool::new(false),
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
    let outcome = ctx.run_steps().await;
    let aborted = engine.cancel_token().is_cancelled();
    // Measuring ends; what follows runs even after an abort.
    ctx.faulted.cancel();
    ctx.stopped.cancel();
    ctx.join_tasks().await;
    let cleaner = engine.detached();
    let (tallies, canaries_read) = ctx.read_canaries(&cleaner).await;
    let failed = outcome.failed || !canaries_read;
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
    let provisional = ctx.report(aborted, failed, tallies.clone()).verdict;
    let cleanup_ok = ctx
        .roll_back(&cleaner, &were_lost, &outcome.rollback_steps, provisional)
        .await;
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

/// Before anything changes: every store and endpoint the steps after the
/// fault need (restore regions' stores and targets, `after` probes'
/// targets, where canaries write and are read) must answer.
pub async fn preflight(
    engine: &Engine,
    drill: &Drill,
    region: Option<&str>,
) -> Result<String, Error> {
    let mut stores = BTreeSet::new();
    let mut targets = BTreeSet::new();
    collect_needs(&drill.steps, region, &mut stores, &mut targets);
    for p in drill.probes.iter().filter(|p| p.phase == Phase::After) {
        if let Some((t, r)) = p.check.target() {
            targets.insert((t.to_string(), r.to_string()));
        }
    }
    for c in &drill.canaries {
        targets.insert((c.target.clone(), c.write_region.clone()));
        targets.insert((c.target.clone(), c.read_region.clone()));
    }
    if stores.is_empty() && targets.is_empty() {
        return Ok("no store or endpoint to check".into());
    }
    let checked = engine.reachability_of(&stores, &targets).await;
    let dead: Vec<String> = checked
        .iter()
        .filter(|c| !c.reachable)
        .map(|c| format!("{} in {} ({}): {}", c.what, c.region, c.address, c.detail))
        .collect();
    if dead.is_empty() {
        Ok(format!(
            "{} stores and endpoints the drill needs after its fault answer",
            checked.len()
        ))
    } else {
        Err(crate::store::StoreError::Unreachable {
            store: format!("{} of {} needed endpoints", dead.len(), checked.len()),
            detail: format!(
                "{}: fix them before the drill injects a fault it could not recover from",
                dead.join("; ")
            ),
        }
        .into())
    }
}

/// How the steps went.
struct StepsOutcome<'d> {
    failed: bool,
    /// `cleanup` steps an abort or a failure skipped: the rollback runs them.
    rollback_steps: Vec<&'d Step>,
}

impl<'d> Ctx<'d> {
    /// The pre-flight, then the steps in order; cleanup steps skipped by an
    /// abort are kept for the rollback.
    async fn run_steps(&self) -> StepsOutcome<'d> {
        let mut out = StepsOutcome {
            failed: false,
            rollback_steps: Vec::new(),
        };
        let mut stop = false;
        match self.preflight().await {
            Ok(said) => self.note("preflight", said),
            Err(e) => {
                let message = format!("pre-flight: {e}; nothing was done");
                self.note("preflight", message.clone());
                self.with(|r| r.errors.push(message));
                out.failed = true;
                stop = true;
            }
        }
        if !stop {
            self.start_canaries();
            self.start_probes(Phase::Before);
            self.start_probes(Phase::Guard);
        }
        let drill: &'d Drill = self.drill;
        for step in &drill.steps {
            if stop {
                if matches!(step.action, Action::Cleanup(_)) {
                    out.rollback_steps.push(step);
                } else {
                    self.skipped(step, None);
                }
                continue;
            }
            if self.held().await {
                self.skipped(step, None);
                stop = true;
                continue;
            }
            if !self.step(step, None).await {
                out.failed = true;
                stop = step.on_failure == OnFailure::Abort;
            }
            if self.engine.cancel_token().is_cancelled() {
                stop = true;
            }
        }
        if let Some(why) = self.with(|r| r.guard_tripped.clone()).flatten() {
            out.failed = true;
            self.with(|r| r.errors.push(why));
        }
        let faulted = self.with(|r| r.fault.is_some()).unwrap_or(false);
        if !stop
            && faulted
            && let Err(e) = self.steady_state_after().await
        {
            out.failed = true;
            self.with(|r| r.errors.push(e.to_string()));
        }
        out
    }

    /// Cleans up as the drill's rollback policy says: runs the cleanup steps
    /// an abort skipped, undoes restores, removes canary markers. Whether all
    /// of it went well.
    async fn roll_back(
        &self,
        cleaner: &Engine,
        were_lost: &[String],
        skipped_cleanups: &[&Step],
        provisional: DrillVerdict,
    ) -> bool {
        let why_not = if self.opts.keep {
            Some("--keep: what the drill made was left in place".to_string())
        } else {
            match self.drill.rollback {
                Rollback::Always => None,
                Rollback::OnFailure if provisional != DrillVerdict::Pass => None,
                Rollback::OnFailure => Some(
                    "rollback: on_failure and the drill passed: what it made was left in place"
                        .into(),
                ),
                Rollback::Never => {
                    Some("rollback: never: what the drill made was left in place".into())
                }
            }
        };
        match &why_not {
            Some(why) => {
                self.note("cleanup", why.clone());
                // Their commands still run (they undo the drill's own faults,
                // such as a region it stopped); what restores made is kept.
                self.exec_only
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            None => self
                .undo_granted
                .store(true, std::sync::atomic::Ordering::SeqCst),
        }
        let mut ok = true;
        for step in skipped_cleanups {
            self.note(
                "cleanup",
                format!(
                    "{}: a cleanup step, run although the drill stopped",
                    step.name
                ),
            );
            ok &= self.step_on(step, None, cleaner).await;
        }
        if why_not.is_some() {
            return ok;
        }
        ok & self.final_cleanup(cleaner, were_lost).await
    }

    async fn preflight(&self) -> Result<String, Error> {
        preflight(self.engine, self.drill, self.opts.region.as_deref()).await
    }

    /// After recovery, the hypothesis again: every `before` probe, moved to
    /// the region the drill last restored its target into, must meet its
    /// threshold once more.
    async fn steady_state_after(&self) -> Result<(), SteadyStateLost> {
        let before = self.probes_of(Phase::Before);
        if before.is_empty() {
            self.with(|r| {
                r.steady_after = Some(SteadyState {
                    ok: true,
                    detail: "no before probes: the steady state was not re-checked".into(),
                })
            });
            return Ok(());
        }
        let mut lines = Vec::new();
        let mut ok = true;
        for p in before {
            let region = p
                .check
                .target()
                .and_then(|(t, _)| last_restore_region(&self.drill.steps, t))
                .map(|r| self.opts.region.clone().unwrap_or(r));
            let check = region
                .as_deref()
                .and_then(|r| p.check.in_region(r))
                .unwrap_or_else(|| p.check.clone());
            let (passed, detail) = self.hold(p, &check).await;
            ok &= passed;
            lines.push(format!(
                "{} ({}): {}",
                p.name,
                check.describe(),
                if passed {
                    "holds".to_string()
                } else {
                    format!("does not hold: {detail}")
                }
            ));
        }
        let detail = lines.join("; ");
        self.note("steady-state", format!("after recovery: {detail}"));
        self.with(|r| {
            r.steady_after = Some(SteadyState {
                ok,
                detail: detail.clone(),
            })
        });
        if ok {
            Ok(())
        } else {
            Err(SteadyStateLost { detail })
        }
    }

    /// Checks `check` until it passes `p.success_threshold` times in a row,
    /// or the patience the steady state gets runs out.
    async fn hold(&self, p: &Probe, check: &super::spec::ProbeCheck) -> (bool, String) {
        let patience = (p.interval.saturating_add(p.timeout))
            .saturating_mul(p.success_threshold.saturating_add(2));
        let deadline = Instant::now()
            .checked_add(patience)
            .unwrap_or_else(Instant::now);
        let mut streak = 0;
        loop {
            let checked = tokio::time::timeout(p.timeout, probe::check(self.engine, check)).await;
            let last = match checked {
                Ok(Ok(d)) => {
                    streak += 1;
                    d
                }
                Ok(Err(e)) => {
                    streak = 0;
                    e.to_string()
                }
                Err(_) => {
                    streak = 0;
                    format!(
                        "no answer within {}",
                        human_ms(p.timeout.as_millis() as u64)
                    )
                }
            };
            if streak >= p.success_threshold {
                return (true, last);
            }
            if Instant::now() >= deadline || self.engine.cancel_token().is_cancelled() {
                return (false, last);
            }
            tokio::time::sleep(p.interval).await;
        }
    }
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
                self.note("notify", e.to_string());
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
        format!("{}:{}", c.kind, c.target)
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
                // Counts go out every 10 markers while writing, and once more
                // at the end: a face then shows what the report records.
                let counted = |written: u64| DrillEvent {
                    run: run.clone(),
                    at_ms: t0.elapsed().as_millis() as Ms,
                    at: Utc::now(),
                    kind: DrillEventKind::Canary {
                        canary: name.clone(),
                        written,
                    },
                };
                let marks = async { loop {
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
                        let _ = events.send(counted(written));
                    }
                    seq += 1;
                    next += canary.interval;
                    tokio::select! {
                        _ = tokio::time::sleep_until(next) => {}
                        _ = stop.cancelled() => return,
                    }
                } };
                marks.await;
                let written = record
                    .lock()
                    .ok()
                    .and_then(|r| r.markers.get(&name).map(|m| m.len() as u64));
                if let Some(written) = written.filter(|w| w % 10 != 1) {
                    let _ = events.send(counted(written));
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
            Phase::During | Phase::After | Phase::Guard => self.stopped.clone(),
        };
        for p in self.drill.probes.iter().filter(|p| p.phase == phase) {
            let looped = ProbeLoop {
                engine: self.engine.detached(),
                probe: p.clone(),
                record: self.record.clone(),
                events: self.events.clone(),
                run: self.run.clone(),
                t0: self.t0,
                stop: until.clone(),
                // A guard that trips stops the drill's steps.
                trips: (phase == Phase::Guard).then(|| self.engine.cancel_token()),
            };
            self.spawn(looped.run());
        }
    }

    /// Waits while the operator holds the drill; whether it was aborted
    /// meanwhile (the step is then not run).
    async fn held(&self) -> bool {
        let cancel = self.engine.cancel_token();
        let Some(mut hold) = self.opts.hold.clone() else {
            return cancel.is_cancelled();
        };
        if *hold.borrow_and_update() {
            self.note(
                "hold",
                "paused before the next step while the operator decides",
            );
            while *hold.borrow_and_update() && !cancel.is_cancelled() {
                tokio::select! {
                    changed = hold.changed() => if changed.is_err() { break },
                    _ = cancel.cancelled() => break,
                }
            }
            if !cancel.is_cancelled() {
                self.note("hold", "going on");
            }
        }
        cancel.is_cancelled()
    }

    fn skipped(&self, step: &Step, group: Option<&str>) {
        let at = self.ms();
        // Faces end where the report does: this step, not run.
        self.publish(DrillEventKind::StepFinished {
            step: step.name.clone(),
            outcome: StepOutcome::Skipped,
            message: SKIPPED.into(),
            duration_ms: 0,
        });
        self.with(|r| {
            r.steps.push(StepRecord {
                name: step.name.clone(),
                kind: step.action.kind().into(),
                group: group.map(str::to_string),
                start_ms: at,
                end_ms: at,
                outcome: StepOutcome::Skipped,
                message: SKIPPED.into(),
            })
        });
    }

    /// Runs one step; whether it succeeded.
    async fn step(&self, step: &Step, group: Option<&str>) -> bool {
        self.step_on(step, group, self.engine).await
    }

    /// Runs one step on `engine` (the drill's, or a detached one for a
    /// rollback after an abort); whether it succeeded.
    async fn step_on(&self, step: &Step, group: Option<&str>, engine: &Engine) -> bool {
        if let Action::Parallel { steps } = &step.action {
            return Box::pin(self.parallel(step, steps, engine)).await;
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
        let (outcome, message) = self.run_action(step, group, engine).await;
        let end = self.ms();
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

    /// Runs a step's action on a child of `parent`, within the step's
    /// timeout. A step that changes something (a backup, a restore, a fault,
    /// a cleanup) is never dropped half-way: an abort or its timeout cancels
    /// it through the engine, and it is awaited while it rolls back or
    /// records what it wrote. A step that only waits is dropped at once.
    async fn run_action(
        &self,
        step: &Step,
        group: Option<&str>,
        parent: &Engine,
    ) -> (StepOutcome, String) {
        let engine = parent.child();
        let owns = step.action.changes_something();
        let work = self.action(step, group, &engine);
        tokio::pin!(work);
        let deadline = tokio::time::sleep(step.timeout);
        tokio::pin!(deadline);
        let cancel = parent.cancel_token();
        let done = tokio::select! {
            r = &mut work => Some(r),
            _ = &mut deadline => None,
            _ = cancel.cancelled(), if !owns => {
                return (StepOutcome::Cancelled, "aborted: the drill was cancelled".into());
            }
        };
        let timed_out = format!(
            "did not finish within {}",
            human_ms(step.timeout.as_millis() as u64)
        );
        let result = match done {
            Some(r) => r,
            None if !owns => return (StepOutcome::TimedOut, timed_out),
            None => {
                engine.cancel();
                match tokio::time::timeout(WIND_DOWN, &mut work).await {
                    Ok(Ok(m)) => {
                        return (
                            StepOutcome::TimedOut,
                            format!("{timed_out}; it finished while stopping: {m}"),
                        );
                    }
                    Ok(Err(e)) => {
                        return (StepOutcome::TimedOut, format!("{timed_out}; stopped: {e}"));
                    }
                    Err(_) => {
                        return (
                            StepOutcome::TimedOut,
                            format!(
                                "{timed_out}, and did not stop within {} of being cancelled: what it changed may be half-done",
                                human_ms(WIND_DOWN.as_millis() as u64)
                            ),
                        );
                    }
                }
            }
        };
        match result {
            Ok(message) => (StepOutcome::Ok, message),
            Err(e) if e.class() == ErrorClass::Cancelled => (StepOutcome::Cancelled, e.to_string()),
            Err(e) => (StepOutcome::Failed, e.to_string()),
        }
    }

    /// Runs a parallel group's steps at once on a child of `engine`; at the
    /// group's timeout the child is cancelled and every step is awaited while
    /// it winds down (a restore in it rolls back, it is not dropped).
    async fn parallel(&self, group: &Step, steps: &[Step], engine: &Engine) -> bool {
        let start = self.ms();
        self.note(
            "step",
            format!("{} (parallel, {} steps) started", group.name, steps.len()),
        );
        self.publish(DrillEventKind::StepStarted {
            step: group.name.clone(),
            kind: "parallel".into(),
        });
        let group_engine = engine.child();
        let runs = futures::future::join_all(
            steps
                .iter()
                .map(|s| self.step_on(s, Some(&group.name), &group_engine)),
        );
        tokio::pin!(runs);
        let results = tokio::select! {
            r = &mut runs => Ok(r),
            _ = tokio::time::sleep(group.timeout) => {
                group_engine.cancel();
                Err(runs.await)
            }
        };
        let (ok, message) = match &results {
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
                    "did not finish within {}: its steps were stopped",
                    human_ms(group.timeout.as_millis() as u64)
                ),
            ),
        };
        let end = self.ms();
        let outcome = if ok {
            StepOutcome::Ok
        } else {
            StepOutcome::Failed
        };
        self.publish(DrillEventKind::StepFinished {
            step: group.name.clone(),
            outcome,
            message: message.clone(),
            duration_ms: end - start,
        });
        self.with(|r| {
            r.steps.push(StepRecord {
                name: group.name.clone(),
                kind: "parallel".into(),
                group: None,
                start_ms: start,
                end_ms: end,
                outcome,
                message: message.clone(),
            })
        });
        ok
    }

    async fn action(
        &self,
        step: &Step,
        group: Option<&str>,
        engine: &Engine,
    ) -> Result<String, Error> {
        match &step.action {
            Action::Backup(b) => {
                let targets = if b.targets.is_empty() {
                    self.drill.targets.clone()
                } else {
                    b.targets.clone()
                };
                let req = BackupRequest {
                    retention: None,
                    targets,
                    schedule: None,
                    labels: BTreeMap::from([
                        ("drill".to_string(), self.drill.name.clone()),
                        ("drill-run".to_string(), self.run.clone()),
                    ]),
                    no_copy: b.no_copy,
                    copy_to: None,
                };
                let report = engine.backup(&req).await?;
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
                        dry_run: false,
                    };
                    all.extend(engine.copy(&req).await?);
                }
                summarize(&all)
            }
            Action::Fault(f) => self.fault(f, group, engine).await,
            Action::Restore(r) => self.restore(step, r, engine).await,
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
                    .map_err(|e| Error::NotConfirmed(e.to_string()))?;
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
                if !c.keep_restores && self.undo_allowed() {
                    let ok = self.undo_restores(&engine.detached()).await;
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
                engine.regain_region(&r.region)?;
                Ok(format!(
                    "region {} is back: drtool contacts it again",
                    r.region
                ))
            }
        }
    }

    /// Waits until every `before` probe holds its threshold, or refuses.
    async fn steady_state(&self, engine: &Engine) -> Result<(), Error> {
        let before = self.probes_of(Phase::Before);
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
            .map(|p| {
                p.interval
                    .saturating_add(p.timeout)
                    .saturating_mul(p.success_threshold.saturating_add(2))
            })
            .max()
            .unwrap_or(Duration::from_secs(30));
        let deadline = Instant::now()
            .checked_add(patience)
            .unwrap_or_else(Instant::now);
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
            if engine.cancel_token().is_cancelled() {
                return Err(Error::cancelled(
                    "aborted while waiting for the steady state: no fault was injected",
                ));
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

    async fn fault(
        &self,
        fault: &Fault,
        group: Option<&str>,
        engine: &Engine,
    ) -> Result<String, Error> {
        if self.with(|r| r.fault.is_some()).unwrap_or(false) {
            // A later fault: measured from the first. Only the first fault's
            // parallel group is its injection; a fault later on is not.
            let done = self.inject(fault, engine).await;
            self.injected(group);
            return done;
        }
        self.steady_state(engine).await?;
        let description = fault.describe();
        // Canaries stop at the fault: what they wrote before it is what a
        // recovery should bring back.
        let at_ms = self.ms();
        let at = Utc::now();
        // Faults of one parallel group all wait for the steady state; the
        // first to get here is the fault the drill is measured from.
        let first = self
            .with(|r| {
                if r.fault.is_some() {
                    return false;
                }
                r.fault = Some(FaultRecord {
                    at_ms,
                    at,
                    description: description.clone(),
                    injected_ms: None,
                });
                r.fault_group = Some(group.map(str::to_string));
                true
            })
            .unwrap_or(false);
        if first {
            self.faulted.cancel();
            self.note("fault", description.clone());
            self.publish(DrillEventKind::Fault {
                description: description.clone(),
            });
            self.start_probes(Phase::During);
            self.start_probes(Phase::After);
            self.start_ticker(at_ms);
        }
        let done = self.inject(fault, engine).await;
        self.injected(group);
        done
    }

    /// A fault of `group` has been delivered: the injection lasts until the
    /// last fault of the first fault's group (or the first fault alone) has.
    fn injected(&self, group: Option<&str>) {
        let now = self.ms();
        self.with(|r| {
            let same = match (&r.fault_group, group) {
                (Some(Some(g)), Some(mine)) => g == mine,
                (Some(None), None) => r.fault.as_ref().is_some_and(|f| f.injected_ms.is_none()),
                _ => false,
            };
            if !same {
                return;
            }
            if let Some(f) = r.fault.as_mut() {
                f.injected_ms = Some(f.injected_ms.map_or(now, |t| t.max(now)));
            }
        });
    }

    /// The drill's probes of one phase.
    fn probes_of(&self, phase: Phase) -> Vec<&Probe> {
        self.drill
            .probes
            .iter()
            .filter(|p| p.phase == phase)
            .collect()
    }

    /// Whether restores may be undone now: not with `--keep`, and only with
    /// `rollback: always` before the verdict is known (and not while the
    /// rollback runs cleanup steps the policy keeps from undoing).
    fn undo_allowed(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        !self.opts.keep
            && !self.exec_only.load(SeqCst)
            && (self.drill.rollback == Rollback::Always || self.undo_granted.load(SeqCst))
    }

    async fn inject(&self, fault: &Fault, engine: &Engine) -> Result<String, Error> {
        match fault {
            Fault::LoseRegion { region } => {
                engine.lose_region(region)?;
                Ok(format!(
                    "region {region} is lost: drtool contacts nothing in it from now on"
                ))
            }
            Fault::Exec { command } => {
                probe::run_command(command, 0, Duration::from_secs(600)).await
            }
            Fault::Target {
                target,
                region,
                what,
                ..
            } => engine.inject_fault(target, region, what).await,
        }
    }

    async fn restore(
        &self,
        step: &Step,
        r: &RestoreStep,
        engine: &Engine,
    ) -> Result<String, Error> {
        let region = self.opts.region.clone().unwrap_or_else(|| r.region.clone());
        let point = self.pick_point(r, &region, engine).await?;
        let mut options = r.options.clone();
        // A drill's restore brings its own canary markers back: they are
        // how it measures the RPO. No other restore does.
        options.with_canaries = true;
        let plan = engine
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
        // Recorded before it runs: a restore cut short by an abort or its
        // timeout has written something the cleanup must undo.
        let index = self
            .with(|rec| {
                rec.restores.push(Restored {
                    step: step.name.clone(),
                    plan: plan.clone(),
                    pending_undo: true,
                    result: None,
                    completed: false,
                });
                rec.restores.len() - 1
            })
            .unwrap_or_default();
        let report = engine.execute(&plan).await;
        let summary = summarize(&report);
        let refused = report.verdict() == Verdict::Failed(ErrorClass::BadInput);
        self.with(|rec| {
            if let Some(entry) = rec.restores.get_mut(index) {
                entry.pending_undo = !refused;
                entry.completed = summary.is_ok();
                entry.result = Some(match &summary {
                    Ok(m) => m.clone(),
                    Err(e) => e.to_string(),
                });
            }
        });
        summary
    }

    async fn pick_point(
        &self,
        r: &RestoreStep,
        region: &str,
        engine: &Engine,
    ) -> Result<PointChoice, Error> {
        match &r.point {
            PointPick::Latest => Ok(PointChoice::Newest),
            PointPick::Before(t) => Ok(PointChoice::Before(*t)),
            PointPick::RandomWithin(window) => {
                let listed = engine
                    .points(&Scope {
                        region: Some(region.to_string()),
                        target: Some(r.target.clone()),
                    })
                    .await?;
                let since = chrono::Duration::from_std(*window)
                    .ok()
                    .and_then(|w| self.started_at.checked_sub_signed(w))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
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

    /// What every canary wrote and what survived; whether every canary could
    /// be read (one that cannot proves nothing and is left out of the RPO).
    async fn read_canaries(&self, engine: &Engine) -> (Vec<measure::CanaryTally>, bool) {
        let fault = self.with(|r| r.fault.clone()).flatten();
        let Some(fault) = fault else {
            return (Vec::new(), true);
        };
        let mut out = Vec::new();
        let mut all_read = true;
        for c in &self.drill.canaries {
            let name = Self::canary_name(c);
            let written = self
                .with(|r| r.markers.get(&name).cloned().unwrap_or_default())
                .unwrap_or_default();
            let surviving: Vec<Marker> = match engine
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
                    all_read = false;
                    self.with(|r| {
                        r.errors.push(format!(
                            "canary {name}: cannot read its markers in {} ({e}): the RPO it would measure is unknown",
                            c.read_region
                        ))
                    });
                    continue;
                }
            };
            out.push(measure::tally(
                &name,
                &written,
                &surviving,
                fault.at,
                c.interval.as_millis() as u64,
            ));
        }
        (out, all_read)
    }

    /// Undoes every restore not undone yet, newest first; whether all went well.
    async fn undo_restores(&self, engine: &Engine) -> bool {
        let pending: Vec<(usize, String, RestorePlan)> = self
            .with(|r| {
                r.restores
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| x.pending_undo)
                    .map(|(i, x)| (i, x.step.clone(), x.plan.clone()))
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
                    entry.pending_undo = false;
                }
            });
        }
        ok
    }

    fn cleaned(&self, what: String, result: Result<String, Error>) {
        self.cleaned_as(what, result, false, None);
    }

    /// Records one cleanup; `left_behind` marks what could not be removed
    /// because the drill itself took its region down.
    fn cleaned_as(
        &self,
        what: String,
        result: Result<String, Error>,
        left_behind: bool,
        canary: Option<CanaryPlace>,
    ) {
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
                canary,
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
                let place = Some(CanaryPlace {
                    target: c.target.clone(),
                    region: region.clone(),
                });
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
                                "left behind: the drill took {region} down and it does not answer ({e}); once it is back, remove them with `drtool drill cleanup {}`",
                                self.run
                            )),
                            true,
                            place,
                        );
                    }
                    Err(e) => {
                        ok = false;
                        self.cleaned_as(
                            what,
                            Err(e.noted(format!(
                                "remove them with `drtool drill cleanup {}` once it answers",
                                self.run
                            ))),
                            false,
                            place,
                        );
                    }
                    Ok(m) => self.cleaned_as(what, Ok(m), false, place),
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
        // A copy: a provisional report (the rollback policy asks for the
        // verdict) leaves the record as it is.
        let rec = self.record.lock().map(|r| r.clone()).unwrap_or_default();
        let finished_at = Utc::now();
        let duration_ms = self.ms();
        let fault_ms = rec.fault.as_ref().map(|f| f.at_ms);
        let (rto, recovered) = self.rto_of(&rec);
        let restores = restore_records(&rec);
        let rpo = rpo_result(rec.fault.as_ref(), &restores, tallies);
        let objectives = Objectives {
            rto_ms: self.drill.rto.as_millis() as u64,
            rpo_ms: self.drill.rpo.as_millis() as u64,
        };
        let fault_missing = rec.fault.is_none();
        let verdict = measure::verdict(
            aborted,
            failed || fault_missing,
            rto.rto_ms,
            rpo_judged(&rpo),
            (objectives.rto_ms, objectives.rpo_ms),
        );
        let delivered = rec.fault.as_ref().map(|f| f.injected_ms.unwrap_or(f.at_ms));
        let probes = self.probe_summaries(
            &rec.samples,
            (fault_ms, delivered),
            recovered.unwrap_or(duration_ms),
        );
        let overhead = self.overhead(&rec);
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
            renderer: RENDERER,
            run_id: self.run.clone(),
            drill: self.drill.name.clone(),
            description: self.drill.description.clone(),
            hypothesis: self.drill.hypothesis.clone(),
            file: self.drill.file.display().to_string(),
            drtool_version: env!("CARGO_PKG_VERSION").to_string(),
            ran_by: Some(RanBy::here(&self.engine.config().path, &self.opts.via)),
            started_at: self.started_at,
            finished_at,
            duration_ms,
            verdict,
            summary,
            objectives,
            rto,
            rpo,
            steady_state: steady,
            steady_state_after: rec.steady_after,
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
            seal: None,
            signature: None,
        }
    }

    /// The RTO and its phases, and when recovery was (from the verify
    /// step, else from the after probes).
    fn rto_of(&self, rec: &Record) -> (measure::RtoBreakdown, Option<Ms>) {
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
        let rto = match &rec.fault {
            Some(f) => measure::breakdown(&measure::Timeline {
                fault_ms: f.at_ms,
                injected_ms: f.injected_ms,
                detected_ms: detected,
                recovered_ms: recovered,
                spans,
            }),
            None => measure::RtoBreakdown::default(),
        };
        (rto, recovered)
    }

    /// Time the drill spent between steps, how late probes ran, and the
    /// finest probe interval.
    fn overhead(&self, rec: &Record) -> Overhead {
        let step_time: u64 = rec
            .steps
            .iter()
            .filter(|s| s.group.is_none())
            .map(|s| s.end_ms.saturating_sub(s.start_ms))
            .sum();
        Overhead {
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
        }
    }

    /// Per probe: runs, passes, when an `after` probe met its threshold
    /// (from the fault) and a `during` probe's availability (from the moment
    /// the fault was delivered).
    fn probe_summaries(
        &self,
        samples: &[Sample],
        (fault_ms, delivered_ms): (Option<Ms>, Option<Ms>),
        end_ms: Ms,
    ) -> Vec<ProbeSummary> {
        let availability = delivered_ms.map(|f| measure::availability(samples, f, end_ms));
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

/// One probe, checked at its interval until `stop`.
struct ProbeLoop {
    engine: Engine,
    probe: Probe,
    record: Arc<Mutex<Record>>,
    events: broadcast::Sender<DrillEvent>,
    run: String,
    t0: Instant,
    stop: CancellationToken,
    /// For a guard probe: what its tripping cancels.
    trips: Option<CancellationToken>,
}

impl ProbeLoop {
    async fn run(self) {
        let probe = &self.probe;
        let mut due = tokio::time::Instant::now();
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            let late = tokio::time::Instant::now().saturating_duration_since(due);
            let started = Instant::now();
            let checked = tokio::select! {
                r = tokio::time::timeout(probe.timeout, probe::check(&self.engine, &probe.check)) => r,
                _ = self.stop.cancelled() => return,
            };
            let (ok, detail) = match checked {
                Ok(Ok(d)) => (true, d),
                Ok(Err(e)) => (false, e.to_string()),
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
                at_ms: self.t0.elapsed().as_millis() as Ms,
                ok,
                took_ms: started.elapsed().as_millis() as u64,
                detail,
            };
            let tripped = self.record.lock().ok().and_then(|mut r| {
                r.samples.push(sample.clone());
                r.lateness.push(late.as_millis() as u64);
                self.trip(&mut r)
            });
            let _ = self.events.send(DrillEvent {
                run: self.run.clone(),
                at_ms: sample.at_ms,
                at: Utc::now(),
                kind: DrillEventKind::Probe { sample },
            });
            if let Some(why) = tripped {
                let _ = self.events.send(DrillEvent {
                    run: self.run.clone(),
                    at_ms: self.t0.elapsed().as_millis() as Ms,
                    at: Utc::now(),
                    kind: DrillEventKind::Guard { message: why },
                });
                return;
            }
            due += probe.interval;
            // A check slower than its interval runs again at once, not in a burst.
            let now = tokio::time::Instant::now();
            if due < now {
                due = now;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }

    /// A guard that has failed `failure_threshold` times in a row stops the
    /// drill (once); why, when it did.
    fn trip(&self, r: &mut Record) -> Option<String> {
        let cancel = self.trips.as_ref()?;
        let p = &self.probe;
        let failures = r
            .samples
            .iter()
            .rev()
            .filter(|s| s.probe == p.name)
            .take_while(|s| !s.ok)
            .count();
        if failures < p.failure_threshold as usize || r.guard_tripped.is_some() {
            return None;
        }
        let last = r
            .samples
            .iter()
            .rev()
            .find(|s| s.probe == p.name)
            .map(|s| s.detail.clone())
            .unwrap_or_default();
        let why = format!(
            "guard probe {} ({}) failed {failures} times in a row (its threshold): the drill was stopped and rolled back; last answer: {last}",
            p.name,
            p.check.describe()
        );
        r.guard_tripped = Some(why.clone());
        r.timeline.push(TimelineEntry {
            at_ms: self.t0.elapsed().as_millis() as Ms,
            kind: "guard".into(),
            what: why.clone(),
        });
        cancel.cancel();
        Some(why)
    }
}

/// The stores and (target, region) endpoints the restore steps need.
fn collect_needs(
    steps: &[Step],
    region_override: Option<&str>,
    stores: &mut BTreeSet<String>,
    targets: &mut BTreeSet<(String, String)>,
) {
    for s in steps {
        match &s.action {
            Action::Restore(r) => {
                let region = region_override.unwrap_or(&r.region).to_string();
                stores.insert(region.clone());
                targets.insert((r.target.clone(), region));
            }
            Action::Parallel { steps } => collect_needs(steps, region_override, stores, targets),
            _ => {}
        }
    }
}

/// The region of the last restore step of `target`, as the file names it.
fn last_restore_region(steps: &[Step], target: &str) -> Option<String> {
    steps.iter().rev().find_map(|s| match &s.action {
        Action::Restore(r) if r.target == target => Some(r.region.clone()),
        Action::Parallel { steps } => last_restore_region(steps, target),
        _ => None,
    })
}

/// What each restore of the drill restored, from which point.
fn restore_records(rec: &Record) -> Vec<RestoreRecord> {
    rec.restores
        .iter()
        .map(|x| RestoreRecord {
            step: x.step.clone(),
            target: x.plan.target.clone(),
            region: x.plan.region.clone(),
            point: x.plan.point.as_ref().map(|p| p.id.clone()),
            consistent_at: x
                .plan
                .replay
                .as_ref()
                .and_then(|r| r.reaches_at)
                .or_else(|| x.plan.point.as_ref().and_then(|p| p.consistent_at)),
            stream_to: x.plan.replay.as_ref().map(|r| r.to),
            plan: x.plan.describe(),
            result: x.result.clone(),
            completed: x.completed,
        })
        .collect()
}

/// The RPO interval from the canaries and the restored points.
fn rpo_result(
    fault: Option<&FaultRecord>,
    restores: &[RestoreRecord],
    canaries: Vec<measure::CanaryTally>,
) -> RpoResult {
    let nominal = fault.and_then(|f| {
        restores
            .iter()
            .filter(|r| r.completed)
            .filter_map(|r| r.consistent_at)
            .map(|c| (f.at - c).num_milliseconds().max(0) as u64)
            .max()
    });
    let b = measure::rpo_bounds(&canaries, nominal);
    let measured = if canaries.is_empty() || canaries.iter().any(|t| t.rpo_ms.is_none()) {
        None
    } else {
        canaries.iter().filter_map(|t| t.rpo_ms).max()
    };
    let streamed = restores
        .iter()
        .any(|r| r.completed && r.stream_to.is_some());
    let bound = rpo_bound_text(&canaries, (nominal, streamed), &b);
    RpoResult {
        measured_ms: measured,
        nominal_ms: nominal,
        lower_ms: b.lower_ms,
        upper_ms: b.upper_ms,
        resolution_ms: b.resolution_ms,
        bound,
        lost_markers: canaries.iter().map(|t| t.lost).sum(),
        canaries,
    }
}

/// How the RPO is judged, from a report's numbers.
fn rpo_judged(rpo: &RpoResult) -> measure::RpoJudged {
    measure::RpoJudged::of(&measure::RpoBounds {
        lower_ms: rpo.lower_ms,
        upper_ms: rpo.upper_ms,
        measured: !rpo.canaries.is_empty() || rpo.nominal_ms.is_some(),
        resolution_ms: rpo.resolution_ms,
    })
}

/// Where the RPO interval's ends come from, in words.
fn rpo_bound_text(
    canaries: &[measure::CanaryTally],
    (nominal, streamed): (Option<u64>, bool),
    b: &measure::RpoBounds,
) -> String {
    let mut parts = Vec::new();
    let survivors = canaries.iter().all(|t| t.newest_surviving.is_some());
    if !canaries.is_empty() {
        let resolution = opt_ms(b.resolution_ms);
        if survivors {
            parts.push(format!(
                "canaries: {} proven lost, {} at most (markers every {resolution})",
                opt_ms(b.lower_ms),
                opt_ms(canaries.iter().filter_map(|t| t.rpo_ms).max()),
            ));
        } else {
            parts.push(format!(
                "canaries: no marker survived, so they prove only a lower bound: at least {} lost (markers every {resolution})",
                opt_ms(b.lower_ms)
            ));
        }
    }
    match nominal {
        Some(n) if streamed => parts.push(format!(
            "the restored point and its stream reach {} before the fault",
            human_ms(n)
        )),
        Some(n) => parts.push(format!(
            "the restored point was taken {} before the fault",
            human_ms(n)
        )),
        None if !canaries.is_empty() && !survivors => {
            parts.push("no restored point bounds it: the loss has no upper bound".into())
        }
        None => {}
    }
    if parts.is_empty() {
        "not measured: the drill has no canaries and restored no point".into()
    } else {
        parts.join("; ")
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
        match (steady.ok, fault) {
            (true, _) => "held before the fault",
            (false, Some(_)) => "did not hold",
            (false, None) if steady.detail.starts_with("the steady state does not hold") => {
                "did not hold, so no fault was injected"
            }
            (false, None) => "not checked: the drill stopped before its fault",
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
    let rpo_text = match (rpo.upper_ms, rpo.lower_ms) {
        (Some(_), _) => format!(
            "RPO {} ({} canary markers lost; judged on the upper bound)",
            rpo.interval_text(),
            rpo.lost_markers,
        ),
        (None, Some(_)) => format!("RPO {}", rpo.interval_text()),
        (None, None) => "RPO not measured".into(),
    };
    lines.push(format!(
        "Verdict: {}. RTO {} (objective {}), {rpo_text} (objective {}).",
        verdict.label(),
        opt_ms(rto.rto_ms),
        human_ms(objectives.rto_ms),
        human_ms(objectives.rpo_ms),
    ));
    if fault.is_some() {
        lines.push(format!("RPO evidence: {}.", rpo.bound));
    }
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
    fn run_ids_are_spelled_as_point_ids() {
        let t = DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        let id = run_id(t);
        assert!(id.starts_with("20261118T"), "{id}");
        assert!(
            id.parse::<crate::archive::PointId>().is_ok(),
            "{id} reads as a point id"
        );
    }
}
