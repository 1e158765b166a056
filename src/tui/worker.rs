//! The dashboard's background work: each [`Effect`] becomes a task that
//! calls the engine (with a timeout where it only reads) and sends what it
//! found back as an [`Action`] over the bounded channel. Nothing here
//! touches the terminal or the app's state.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Options;
use super::app::{Action, Effect, PlanView, RestoreAsk};
use super::model::{DrillInfo, DrillRow, Failure, Loadable, PointRow, ScheduleRow};
use super::screens::contents::{Index, LEVEL_ROWS, LevelAsk};
use super::screens::diff::{DiffAsk, Shown, With};
use crate::archive::PointId;
use crate::catalog::PointChoice;
use crate::drill::runner::{DrillEvent, NotConfirmed, Operator, RunOptions};
use crate::drill::spec;
use crate::engine::contents::ContentsRequest;
use crate::engine::diff::{Against, Change, DiffRequest};
use crate::engine::kind::Filter;
use crate::engine::{
    CopyRequest, Engine, EventKind, JobEvent, Outcome, RestorePlan, RestoreRequest, RunReport,
    Scope, Verdict, VerifyRequest,
};
use crate::error::{Error, ErrorClass};
use crate::report::ReportStore;
use crate::schedule::run::{ScheduleState, home_region};

/// How long listing one region may take before it shows as unreachable.
const LIST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the endpoints' probes may take together.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(20);
/// Reading a schedule's state.
const STATE_TIMEOUT: Duration = Duration::from_secs(5);
/// Making a restore plan (it verifies the point: a download); listing a
/// point to browse it, or comparing it, reads as much.
const PLAN_TIMEOUT: Duration = Duration::from_secs(600);
/// Lines of changes a diff keeps for the view (the rest are counted).
const DIFF_LINES: usize = 20_000;

/// The drill running in the dashboard.
struct Running {
    engine: Arc<Engine>,
    /// The answer to the manual step waiting for one.
    answer: Arc<Mutex<Option<oneshot::Sender<bool>>>>,
    /// True while the quit or abort dialog is up: the drill waits before
    /// its next step.
    hold: watch::Sender<bool>,
    task: JoinHandle<()>,
}

pub struct Worker {
    engine: Arc<Engine>,
    opts: Options,
    tx: mpsc::Sender<Action>,
    drill: Arc<Mutex<Option<Running>>>,
    /// Verify, copy and restore jobs: stopped cleanly and waited for on exit.
    jobs: Mutex<Vec<JoinHandle<()>>>,
    /// How the last drill run here ended, as `drill run` says it: printed
    /// on the normal screen once the dashboard is gone.
    ended: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    pub fn new(engine: Engine, opts: Options, tx: mpsc::Sender<Action>) -> Worker {
        let engine = Arc::new(engine);
        tokio::spawn(forward_jobs(engine.subscribe(), tx.clone()));
        Worker {
            engine,
            opts,
            tx,
            drill: Arc::new(Mutex::new(None)),
            jobs: Mutex::new(Vec::new()),
            ended: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn track(&self, job: JoinHandle<()>) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.retain(|j| !j.is_finished());
            jobs.push(job);
        }
    }

    /// How many verify, copy or restore jobs are still running.
    pub fn jobs_running(&self) -> usize {
        self.jobs
            .lock()
            .map_or(0, |j| j.iter().filter(|j| !j.is_finished()).count())
    }

    /// Cancels the running jobs through the engine (each stops the way a
    /// cancelled CLI command does: no manifest for a partial copy, a
    /// restore rolled back or reported) and waits for them.
    pub async fn stop_jobs(&self) {
        self.engine.cancel();
        let jobs = self
            .jobs
            .lock()
            .map(|mut j| std::mem::take(&mut *j))
            .unwrap_or_default();
        for j in jobs {
            let _ = j.await;
        }
    }

    /// How the last drill run in the dashboard ended (nothing if none ran).
    pub fn drill_ended(&self) -> Vec<String> {
        self.ended.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub fn drill_running(&self) -> bool {
        self.drill
            .lock()
            .ok()
            .is_some_and(|d| d.as_ref().is_some_and(|r| !r.task.is_finished()))
    }

    /// Waits until the running drill (and its cleanup) is over.
    pub async fn wait_drill(&self) {
        let task = self
            .drill
            .lock()
            .ok()
            .and_then(|mut d| d.take())
            .map(|r| r.task);
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    pub fn effect(&self, e: Effect) {
        let engine = self.engine.clone();
        let tx = self.tx.clone();
        match e {
            Effect::LoadAll => self.load_all(),
            Effect::LoadStreams => self.load_streams(),
            Effect::LoadReport(run) => self.load_report(run),
            Effect::Verify {
                region,
                target,
                point,
            } => self.track(job(tx, "verify", point, move |id| async move {
                engine
                    .verify(&VerifyRequest {
                        scope: Scope {
                            region: Some(region),
                            target: Some(target),
                        },
                        point: Some(id),
                    })
                    .await
            })),
            Effect::Copy {
                region,
                target,
                point,
            } => self.track(job(tx, "copy", point, move |id| async move {
                engine
                    .copy(&CopyRequest {
                        target: Some(target),
                        point: Some(id),
                        from: Some(region),
                        to: None,
                        dry_run: false,
                    })
                    .await
            })),
            Effect::PlanRestore(seq, req) => self.plan_restore(seq, req),
            Effect::Restore(plan) => self.restore(plan),
            Effect::RunDrill(file) => self.run_drill(file),
            Effect::AbortDrill => self.abort_drill(),
            Effect::AnswerManual(ok) => self.answer_manual(ok),
            // The terminal's owner writes it (tui::run's loop); nothing here.
            Effect::Clipboard(_) => {}
            Effect::OpenHtml { drill, run } => {
                let html = ReportStore::new(self.opts.reports.clone())
                    .dir_of(&drill, &run)
                    .join("report.html");
                tokio::spawn(async move {
                    let said = open_file(&html, opener()).await;
                    let _ = tx.send(Action::Done(said)).await;
                });
            }
            Effect::HoldDrill(on) => {
                if let Ok(d) = self.drill.lock()
                    && let Some(r) = d.as_ref()
                {
                    r.hold.send_replace(on);
                }
            }
            Effect::IndexPoint {
                seq,
                region,
                target,
                point,
            } => self.index_point(seq, region, target, point),
            Effect::ReadLevel(ask) => read_level(tx, ask),
            Effect::Diff(ask) => self.diff(ask),
            Effect::LoadHealth => {
                tokio::spawn(async move {
                    let probed =
                        match tokio::time::timeout(HEALTH_TIMEOUT, engine.reachability()).await {
                            Ok(r) => Loadable::Ready(r),
                            Err(_) => Loadable::Failed(format!(
                                "the probes did not finish within {}s",
                                HEALTH_TIMEOUT.as_secs()
                            )),
                        };
                    let _ = tx.send(Action::Health(probed)).await;
                });
            }
            Effect::ReadLogFile => {
                let path = self.opts.log_file.clone();
                tokio::spawn(async move {
                    let read = tokio::task::spawn_blocking(move || match path {
                        Some(p) => log_tail(&p, LOG_TAIL_BYTES),
                        None => Err("no log file: the dashboard logs nowhere here".to_string()),
                    })
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                    let _ = tx
                        .send(Action::LogFile(read.map_err(|message| Failure {
                            message,
                            class: crate::error::ErrorClass::Failed,
                        })))
                        .await;
                });
            }
        }
    }

    /// Lists a point into an index to browse, within `PLAN_TIMEOUT`.
    fn index_point(&self, seq: u64, region: String, target: String, point: String) {
        let engine = self.engine.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let work = async {
                let id = point
                    .parse()
                    .map_err(|e| Error::input(format!("cannot list point {point}: {e}")))?;
                let req = ContentsRequest {
                    region: region.clone(),
                    target,
                    point: PointChoice::Id(id),
                    filter: Filter::default(),
                };
                engine.open_point(&req).await?.index().await
            };
            let r = match tokio::time::timeout(PLAN_TIMEOUT, work).await {
                Ok(Ok(index)) => Ok(Index(Arc::new(index))),
                Ok(Err(e)) => Err(Failure::from(e)),
                Err(_) => Err(took_too_long("listing", &region)),
            };
            let _ = tx.send(Action::Indexed(seq, r)).await;
        });
    }

    /// Compares a point, keeping the first `DIFF_LINES` lines of its changes.
    fn diff(&self, ask: DiffAsk) {
        let engine = self.engine.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let seq = ask.seq;
            let region = ask.region.clone();
            let r = match tokio::time::timeout(PLAN_TIMEOUT, diff_lines(&engine, ask)).await {
                Ok(r) => r.map_err(Failure::from),
                Err(_) => Err(took_too_long("comparing", &region)),
            };
            let _ = tx.send(Action::Diffed(seq, r)).await;
        });
    }

    /// Loads a report off the event loop.
    fn load_report(&self, run: String) {
        let tx = self.tx.clone();
        let store = ReportStore::new(self.opts.reports.clone()).trusting(
            self.engine.trusted_keys(),
            self.engine.signatures_expected(),
        );
        tokio::spawn(async move {
            let id = run.clone();
            let r = tokio::task::spawn_blocking(move || store.load(&id)).await;
            let loaded = match r {
                Ok(Ok(r)) => Loadable::Ready(Box::new(r)),
                Ok(Err(e)) => Loadable::Failed(e.to_string()),
                Err(e) => Loadable::Failed(e.to_string()),
            };
            let _ = tx.send(Action::Report(run, loaded)).await;
        });
    }

    /// Plans a restore, within `PLAN_TIMEOUT`.
    fn plan_restore(&self, seq: u64, ask: RestoreAsk) {
        let engine = self.engine.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let req = match engine.restore_options(&ask.target, ask.existing, &ask.flags) {
                Ok(options) => RestoreRequest {
                    region: ask.region,
                    target: ask.target,
                    point: ask.point,
                    options,
                },
                Err(e) => {
                    let _ = tx.send(Action::Plan(seq, Err(Failure::from(e)))).await;
                    return;
                }
            };
            let r = match tokio::time::timeout(PLAN_TIMEOUT, engine.plan_restore(&req)).await {
                Ok(Ok(plan)) => Ok(PlanView {
                    lines: plan.describe(),
                    destructive: plan.destructive,
                    target: plan.target.clone(),
                    plan: Arc::new(plan),
                }),
                Ok(Err(e)) => Err(Failure::from(e)),
                Err(_) => Err(Failure::new(
                    ErrorClass::Unreachable,
                    format!(
                        "planning took longer than {}s: is region {} reachable?",
                        PLAN_TIMEOUT.as_secs(),
                        req.region
                    ),
                )),
            };
            let _ = tx.send(Action::Plan(seq, r)).await;
        });
    }

    /// Carries out a confirmed restore plan.
    fn restore(&self, plan: Arc<RestorePlan>) {
        let engine = self.engine.clone();
        let tx = self.tx.clone();
        self.track(tokio::spawn(async move {
            let rep = engine.execute(&plan).await;
            let lines: Vec<String> = rep
                .items
                .iter()
                .map(|i| {
                    format!(
                        "{} {} {}: {}",
                        i.outcome.label(),
                        i.operation,
                        i.target,
                        i.message
                    )
                })
                .collect();
            let r = match rep.verdict() {
                Verdict::Ok => Ok(lines),
                v => Err(Failure::new(class_of(v), lines.join("; "))),
            };
            let _ = tx.send(Action::Restored(r)).await;
        }));
    }

    /// Stops the running drill (its cleanup still runs), then answers a
    /// waiting manual step no.
    fn abort_drill(&self) {
        if let Ok(d) = self.drill.lock()
            && let Some(r) = d.as_ref()
        {
            r.engine.cancel();
            if let Ok(mut a) = r.answer.lock()
                && let Some(s) = a.take()
            {
                let _ = s.send(false);
            }
        }
    }

    /// Answers the drill's manual step; no also stops the drill.
    fn answer_manual(&self, ok: bool) {
        if let Ok(d) = self.drill.lock()
            && let Some(r) = d.as_ref()
        {
            if let Ok(mut a) = r.answer.lock()
                && let Some(s) = a.take()
            {
                let _ = s.send(ok);
            }
            if !ok {
                r.engine.cancel();
            }
        }
    }

    /// Every region's points (each on its own, so a dead region only delays
    /// itself), the drills, the reports and the schedules.
    fn load_all(&self) {
        let engine = self.engine.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut listed = std::pin::pin!(engine.points_each(&Scope::default(), LIST_TIMEOUT));
            while let Some(rp) = listed.next().await {
                let region = rp.region.clone();
                let points = match rp.error {
                    Some(e) => Loadable::Failed(e),
                    None => Loadable::Ready(
                        rp.points
                            .into_iter()
                            .map(|m| PointRow {
                                region: region.clone(),
                                payload_text: engine.kinds().describe_payload(&m.payload),
                                consistency_text: engine
                                    .kinds()
                                    .describe_consistency(&m.consistency),
                                external: engine.kinds().external_lines(&m),
                                restore_test: rp.restore_tests.get(&m.point_id).cloned(),
                                verified: rp.verifies.get(&m.point_id).cloned(),
                                manifest: Arc::new(m),
                            })
                            .collect(),
                    ),
                };
                let _ = tx.send(Action::Region(region, points)).await;
            }
        });
        let engine = self.engine.clone();
        let tx = self.tx.clone();
        let drills = self.opts.drills.clone();
        tokio::spawn(async move {
            let cfg = engine.config().clone();
            let kinds = engine.kinds().clone();
            let rows =
                tokio::task::spawn_blocking(move || load_drills(&drills, &cfg, &kinds)).await;
            let a = match rows {
                Ok(r) => Action::Drills(r),
                Err(e) => Action::Drills(Loadable::Failed(e.to_string())),
            };
            let _ = tx.send(a).await;
        });
        let tx = self.tx.clone();
        let store = ReportStore::new(self.opts.reports.clone()).trusting(
            self.engine.trusted_keys(),
            self.engine.signatures_expected(),
        );
        tokio::spawn(async move {
            let r = tokio::task::spawn_blocking(move || store.list(None)).await;
            let a = match r {
                Ok(Ok(runs)) => Loadable::Ready(runs),
                Ok(Err(e)) => Loadable::Failed(e.to_string()),
                Err(e) => Loadable::Failed(e.to_string()),
            };
            let _ = tx.send(Action::Reports(a)).await;
        });
        let engine = self.engine.clone();
        let tx = self.tx.clone();
        let dir = self.opts.schedules.clone();
        tokio::spawn(async move {
            let _ = tx
                .send(Action::Schedules(load_schedules(&engine, &dir).await))
                .await;
        });
    }

    /// The streams of the targets that have one (their lag per region).
    fn load_streams(&self) {
        let engine = self.engine.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let streams = match tokio::time::timeout(LIST_TIMEOUT, engine.stream_status(None)).await
            {
                Ok(Ok(s)) => Loadable::Ready(s),
                Ok(Err(e)) => Loadable::Failed(e.to_string()),
                Err(_) => Loadable::Failed(format!(
                    "no answer within {}s from a region's store or a source",
                    LIST_TIMEOUT.as_secs()
                )),
            };
            let _ = tx.send(Action::Streams(streams)).await;
        });
    }

    fn run_drill(&self, file: PathBuf) {
        let tx = self.tx.clone();
        if self.drill_running() {
            // The dashboard asks only when none runs; say so rather than
            // leave it waiting for a drill that will not start.
            tokio::spawn(async move {
                let _ = tx
                    .send(Action::DrillReported(Err(Failure::new(
                        ErrorClass::BadInput,
                        "a drill is already running",
                    ))))
                    .await;
            });
            return;
        }
        let engine = Arc::new(self.engine.child());
        let answer = Arc::new(Mutex::new(None));
        let store = ReportStore::new(self.opts.reports.clone()).trusting(
            self.engine.trusted_keys(),
            self.engine.signatures_expected(),
        );
        let operator = Arc::new(Screen {
            tx: tx.clone(),
            answer: answer.clone(),
            cancel: engine.cancel_token(),
        });
        let drill_engine = engine.clone();
        let sender = tx.clone();
        let ended = self.ended.clone();
        let (hold, held) = watch::channel(false);
        let run = tokio::spawn(async move {
            let tx = sender;
            let cfg = drill_engine.config().clone();
            let kinds = drill_engine.kinds().clone();
            let loaded = tokio::task::spawn_blocking(move || spec::load(&file, &cfg, &kinds)).await;
            let drill = match loaded {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => {
                    let bad = Failure::new(ErrorClass::BadInput, e);
                    let _ = tx.send(Action::DrillReported(Err(bad))).await;
                    return;
                }
                Err(e) => {
                    let _ = tx
                        .send(Action::DrillReported(Err(Failure::failed(e))))
                        .await;
                    return;
                }
            };
            let (etx, erx) = broadcast::channel::<DrillEvent>(4096);
            let forward = tokio::spawn(forward_drill(erx, tx.clone()));
            let opts = RunOptions {
                via: "the dashboard".into(),
                keep: false,
                // The run was confirmed on the screen that listed what it does.
                yes: true,
                region: None,
                hold: Some(held),
            };
            let filed =
                crate::drill::run_and_file(&drill_engine, &drill, opts, operator, etx, &store)
                    .await;
            let _ = forward.await;
            for u in filed.uploaded {
                let _ = tx.send(Action::Log(u)).await;
            }
            let (r, lines) = how_it_ended(&filed.report, filed.folder);
            if let Ok(mut e) = ended.lock() {
                *e = lines;
            }
            let _ = tx.send(Action::DrillReported(r)).await;
        });
        // A drill task that dies says so, so the screen does not wait on it.
        let task = tokio::spawn(async move {
            if let Err(e) = run.await {
                tracing::error!(error = %e, "the drill task failed");
                let _ = tx
                    .send(Action::DrillReported(Err(Failure::failed(format!(
                        "the drill stopped unexpectedly: {e}"
                    )))))
                    .await;
            }
        });
        if let Ok(mut d) = self.drill.lock() {
            *d = Some(Running {
                engine,
                answer,
                hold,
                task,
            });
        }
    }
}

/// Runs an engine job on one point in the background; says how it went.
fn job<F, Fut>(
    tx: mpsc::Sender<Action>,
    what: &'static str,
    point: String,
    run: F,
) -> JoinHandle<()>
where
    F: FnOnce(PointId) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<RunReport, Error>> + Send,
{
    tokio::spawn(async move {
        let outcome = match point.parse() {
            Ok(id) => match run(id).await {
                Ok(rep) => said(what, &rep),
                Err(e) => Err(Failure::from(e)),
            },
            Err(_) => Err(Failure::new(
                ErrorClass::BadInput,
                format!("{point} is not a point id"),
            )),
        };
        let _ = tx.send(Action::Done(outcome)).await;
    })
}

/// A report as one status line: ok with what was done, or the failures.
fn said(what: &str, rep: &RunReport) -> Result<String, Failure> {
    let failed: Vec<String> = rep
        .items
        .iter()
        .filter(|i| matches!(i.outcome, Outcome::Failed | Outcome::Cancelled))
        .map(|i| format!("{} in {}: {}", i.target, i.region, i.message))
        .collect();
    let verdict = rep.verdict();
    if verdict == Verdict::Ok {
        let done: Vec<String> = rep
            .items
            .iter()
            .map(|i| format!("{}: {}", i.region, i.message))
            .collect();
        Ok(format!("{what} ok: {}", done.join("; ")))
    } else {
        Err(Failure::new(
            class_of(verdict),
            format!("{what} failed: {}", failed.join("; ")),
        ))
    }
}

/// The class a run's verdict stands for, when it is not ok.
fn class_of(v: Verdict) -> ErrorClass {
    match v {
        Verdict::Failed(class) => class,
        Verdict::Cancelled => ErrorClass::Cancelled,
        Verdict::Ok | Verdict::Partial => ErrorClass::Failed,
    }
}

/// The drill files of a folder, each parsed and checked against the config.
pub fn load_drills(
    dir: &Path,
    cfg: &crate::config::Config,
    kinds: &crate::engine::kind::Registry,
) -> Loadable<Vec<DrillRow>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loadable::Ready(Vec::new()),
        Err(e) => return Loadable::Failed(format!("cannot read {}: {e}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Loadable::Ready(
        files
            .into_iter()
            .map(|file| {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match spec::load(&file, cfg, kinds) {
                    Ok(d) => DrillRow {
                        name: d.name.clone(),
                        info: Ok(DrillInfo::of(&d)),
                        file,
                    },
                    Err(e) => DrillRow {
                        name: stem,
                        info: Err(Failure::new(ErrorClass::BadInput, e)),
                        file,
                    },
                }
            })
            .collect(),
    )
}

/// The schedules of a folder with their state (each read with a timeout).
pub async fn load_schedules(engine: &Engine, dir: &Path) -> Loadable<Vec<ScheduleRow>> {
    if !dir.exists() {
        return Loadable::Ready(Vec::new());
    }
    let (cfg, folder) = (engine.config().clone(), dir.to_path_buf());
    let loaded =
        tokio::task::spawn_blocking(move || crate::schedule::spec::load_dir(&folder, &cfg)).await;
    let schedules = match loaded {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Loadable::Failed(e.to_string()),
        Err(e) => return Loadable::Failed(e.to_string()),
    };
    let now = Utc::now();
    let states = futures::future::join_all(schedules.iter().map(|s| async move {
        let region = home_region(engine, s).ok()?;
        tokio::time::timeout(
            STATE_TIMEOUT,
            engine.schedule_state::<ScheduleState>(&region, &s.name),
        )
        .await
        .ok()?
        .ok()?
    }))
    .await;
    Loadable::Ready(
        schedules
            .iter()
            .zip(states)
            .map(|(s, st)| ScheduleRow::of(s, st, now))
            .collect(),
    )
}

/// The drill's events, onto the dashboard's queue.
async fn forward_drill(mut rx: broadcast::Receiver<DrillEvent>, tx: mpsc::Sender<Action>) {
    loop {
        match rx.recv().await {
            Ok(e) => {
                if tx.send(Action::Drill(Box::new(e))).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let _ = tx
                    .send(Action::Log(format!(
                        "{n} drill events were dropped (the screen fell behind)"
                    )))
                    .await;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Engine jobs' progress and problems, as the footer's progress line and log
/// lines. Lossy: a full queue drops progress, never blocks a job.
async fn forward_jobs(mut rx: broadcast::Receiver<JobEvent>, tx: mpsc::Sender<Action>) {
    loop {
        let e = match rx.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let what = format!(
            "{} {} {}",
            e.operation,
            e.target.as_deref().unwrap_or("-"),
            e.region.as_deref().unwrap_or("-")
        );
        let a = match &e.kind {
            EventKind::Progress {
                bytes, total_bytes, ..
            } => Action::Progress(Some(match total_bytes {
                Some(t) if *t > 0 => format!(
                    "{what}: {} of {} ({}%)",
                    super::model::size(*bytes),
                    super::model::size(*t),
                    bytes * 100 / t
                ),
                _ => format!("{what}: {}", super::model::size(*bytes)),
            })),
            EventKind::Phase => Action::Progress(Some(format!(
                "{what}: {}",
                e.phase.as_deref().unwrap_or("")
            ))),
            EventKind::Warning { message } => Action::Log(format!("warning: {what}: {message}")),
            EventKind::ItemFailed { item, error } => {
                Action::Log(format!("failed: {what}: {item}: {error}"))
            }
            EventKind::Finished { .. } if e.parent.is_none() => Action::Progress(None),
            _ => continue,
        };
        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(a) {
            return;
        }
    }
}

/// Manual steps asked on the dashboard.
struct Screen {
    tx: mpsc::Sender<Action>,
    answer: Arc<Mutex<Option<oneshot::Sender<bool>>>>,
    cancel: CancellationToken,
}

#[async_trait]
impl Operator for Screen {
    async fn confirm(&self, step: &str, instruction: &str) -> Result<(), NotConfirmed> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut a) = self.answer.lock() {
            *a = Some(tx);
        }
        let asked = self
            .tx
            .send(Action::Manual {
                step: step.to_string(),
                instruction: instruction.to_string(),
            })
            .await;
        if asked.is_err() {
            return Err(NotConfirmed::OperatorGone {
                step: step.to_string(),
                reason: "the dashboard is gone".into(),
            });
        }
        let step = step.to_string();
        tokio::select! {
            r = rx => match r {
                Ok(true) => Ok(()),
                _ => Err(NotConfirmed::Aborted { step }),
            },
            _ = self.cancel.cancelled() => Err(NotConfirmed::DrillAborted { step }),
        }
    }
}

/// Reads a level of a browsed point off the event loop.
fn read_level(tx: mpsc::Sender<Action>, ask: LevelAsk) {
    tokio::spawn(async move {
        let LevelAsk {
            seq,
            index,
            prefix,
            filter,
        } = ask;
        let r =
            tokio::task::spawn_blocking(move || index.0.level(&prefix, &filter, LEVEL_ROWS)).await;
        let r = match r {
            Ok(r) => r.map_err(Failure::from),
            Err(e) => Err(Failure::failed(e)),
        };
        let _ = tx.send(Action::Level(seq, r)).await;
    });
}

fn took_too_long(what: &str, region: &str) -> Failure {
    Failure::new(
        ErrorClass::Unreachable,
        format!(
            "{what} took longer than {}s: is region {region} reachable?",
            PLAN_TIMEOUT.as_secs()
        ),
    )
}

/// A diff as the view shows it.
async fn diff_lines(engine: &Engine, ask: DiffAsk) -> Result<Shown, Error> {
    let id = |p: &str| -> Result<PointChoice, Error> {
        p.parse()
            .map(PointChoice::Id)
            .map_err(|e| Error::input(format!("cannot compare point {p}: {e}")))
    };
    let req = DiffRequest {
        region: ask.region.clone(),
        target: ask.target,
        point: id(&ask.point)?,
        against: match &ask.with {
            With::Live => Against::Live(ask.region),
            With::Point(p) => Against::Point(id(p)?),
        },
        filter: Filter {
            prefix: ask.prefix,
            revision: None,
        },
    };
    let mut lines = Vec::new();
    let mut left_out = 0u64;
    let compared = {
        let mut sink = |c: Change| -> Result<(), Error> {
            if lines.len() < DIFF_LINES {
                lines.extend(c.lines());
            } else {
                left_out += 1;
            }
            Ok(())
        };
        engine.diff(&req, true, &mut sink).await?
    };
    Ok(Shown {
        summary: compared.summary(),
        differs: compared.differs(),
        about: compared
            .about_from
            .iter()
            .chain(&compared.about_to)
            .cloned()
            .collect(),
        lines,
        left_out,
    })
}

/// A filed drill: its run id (or why its report could not be written), and
/// the lines that say how it ended.
fn how_it_ended(
    report: &crate::report::DrillReport,
    folder: Result<PathBuf, Error>,
) -> (Result<String, Failure>, Vec<String>) {
    match folder {
        Ok(folder) => {
            tracing::info!(report = %folder.display(), "drill report written");
            (Ok(report.run_id.clone()), report.end_lines(&folder))
        }
        Err(e) => {
            let lines = vec![format!(
                "drill {}: {}; its report could not be written: {e}",
                report.drill,
                report.verdict.label()
            )];
            (Err(Failure::failed(e)), lines)
        }
    }
}

/// The system's opener of files: `$DRTOOL_OPENER` if set, else `open` on
/// macOS and `xdg-open` elsewhere.
fn opener() -> String {
    std::env::var("DRTOOL_OPENER").unwrap_or_else(|_| {
        if cfg!(target_os = "macos") {
            "open".into()
        } else {
            "xdg-open".into()
        }
    })
}

/// Hands `file` to `program`, not waiting for what it opens (a browser may
/// run on); says what happened in words.
async fn open_file(file: &Path, program: String) -> Result<String, Failure> {
    if !file.exists() {
        return Err(Failure::new(
            ErrorClass::BadInput,
            format!("no {} (was the report written here?)", file.display()),
        ));
    }
    let child = tokio::process::Command::new(&program)
        .arg(file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match child {
        Ok(mut c) => {
            // Reaped in the background: openers return at once or run on.
            tokio::spawn(async move { c.wait().await });
            Ok(format!("opened {} with {program}", file.display()))
        }
        Err(e) => Err(Failure::new(
            ErrorClass::BadInput,
            format!(
                "cannot run {program} ({e}): open {} in a browser, or set DRTOOL_OPENER",
                file.display()
            ),
        )),
    }
}

/// How much of the end of the log file the viewer reads.
const LOG_TAIL_BYTES: u64 = 4 << 20;

/// The lines of the last `most` bytes of the file at `path` (a line cut at
/// the start is dropped), or what went wrong, in words.
pub fn log_tail(path: &std::path::Path, most: u64) -> Result<Vec<String>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let said = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(said)?;
    let len = file.metadata().map_err(said)?.len();
    let start = len.saturating_sub(most);
    file.seek(SeekFrom::Start(start)).map_err(said)?;
    let mut bytes = Vec::new();
    file.take(most).read_to_end(&mut bytes).map_err(said)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_log_viewer_reads_the_files_last_lines_whole() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("ui.log");
        let lines: Vec<String> = (0..100)
            .map(|i| format!("line {i:03} of the log"))
            .collect();
        std::fs::write(&file, lines.join("\n") + "\n")?;
        assert_eq!(log_tail(&file, 1 << 20)?, lines, "a small file whole");
        // The last 50 bytes: a line cut at the start is left out.
        let tail = log_tail(&file, 50)?;
        assert_eq!(tail, lines[98..], "{tail:?}");
        let e = log_tail(&dir.path().join("none.log"), 100).map_err(|e| e.to_string());
        assert!(e.as_ref().is_err_and(|e| e.contains("none.log")), "{e:?}");
        Ok(())
    }

    #[tokio::test]
    async fn a_report_opens_with_the_opener_or_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let html = dir.path().join("report.html");
        let missing = open_file(&html, "true".into()).await.unwrap_err();
        assert!(missing.message.contains("no "), "{missing}");
        std::fs::write(&html, "<html></html>").unwrap();
        let ok = open_file(&html, "true".into()).await.unwrap();
        assert!(ok.contains("opened"), "{ok}");
        let none = open_file(&html, "/nonexistent/opener".into())
            .await
            .unwrap_err();
        assert!(
            none.message.contains("cannot run /nonexistent/opener")
                && none.message.contains("DRTOOL_OPENER"),
            "{none}"
        );
    }
}
