//! The dashboard's state and its one mutator, [`App::update`]: an action in
//! (a command from the keymap, typed text, a tick, or what a background task
//! loaded or reported), effects out (work for the runtime to start). No I/O
//! here: tests drive `update` directly.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::keymap::{Command, Keymap};
use super::model::{
    self, DrillInfo, DrillRow, Failure, Loadable, OverviewInput, OverviewRow, PointRow,
    RegionPoints, ScheduleRow, StepLine, TargetInfo,
};
use super::screens::contents::{self, ContentsView, Index, LevelAsk};
use super::screens::diff::{self, Choice, DiffAsk, DiffView, Shown, With};
use super::screens::logs::{self, LogView};
use crate::catalog::PointChoice;
use crate::drill::measure::DrillVerdict;
use crate::drill::runner::{DrillEvent, DrillEventKind};
use crate::engine::browse::Level;
use crate::engine::kind::Reachability;
use crate::engine::stream::StreamStatus;
use crate::engine::{Existing, FlagValues, RestorePlan};
use crate::report::{DrillReport, RunEntry, StepOutcome};

/// The screens `tab` walks through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Screen {
    Overview,
    Points,
    Drills,
    Reports,
    Schedules,
}

pub const SCREENS: [Screen; 5] = [
    Screen::Overview,
    Screen::Points,
    Screen::Drills,
    Screen::Reports,
    Screen::Schedules,
];

impl Screen {
    pub fn title(self) -> &'static str {
        match self {
            Screen::Overview => "Overview",
            Screen::Points => "Points",
            Screen::Drills => "Drills",
            Screen::Reports => "Reports",
            Screen::Schedules => "Schedules",
        }
    }

    fn index(self) -> usize {
        SCREENS.iter().position(|s| *s == self).unwrap_or(0)
    }
}

/// What is opened on top of a screen (the breadcrumb).
#[derive(Debug, Clone, PartialEq)]
pub enum View {
    Point {
        region: String,
        target: String,
        point: String,
    },
    Drill {
        name: String,
    },
    Live,
    Report {
        run: String,
    },
    Wizard(Box<Wizard>),
    /// A point's contents, browsed.
    Contents(Box<ContentsView>),
    /// A point compared with the live target or another point.
    Diff(Box<DiffView>),
    /// The logs, searched.
    Logs(Box<LogView>),
}

impl View {
    fn crumb(&self) -> String {
        match self {
            View::Point { region, point, .. } => format!("{region} › {point}"),
            View::Drill { name } => format!("drill {name}"),
            View::Live => "running".into(),
            View::Report { run } => format!("report {run}"),
            View::Wizard(w) => format!("restore › {}", w.step.title()),
            View::Contents(c) => c.crumb(),
            View::Diff(d) => d.crumb(),
            View::Logs(l) => l.crumb(),
        }
    }
}

/// What the wizard asks to restore: the engine reads its options with the
/// target's kind, as it reads `drtool restore`'s flags.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreAsk {
    pub region: String,
    pub target: String,
    pub point: PointChoice,
    pub existing: Option<Existing>,
    /// The kind's switches that are on.
    pub flags: FlagValues,
}

/// The restore wizard: region -> target -> point -> options -> plan -> confirm.
#[derive(Debug, Clone, PartialEq)]
pub struct Wizard {
    pub step: WizardStep,
    pub region: Option<String>,
    pub target: Option<String>,
    /// None = the newest point.
    pub point: Option<String>,
    pub existing: Option<Existing>,
    /// The target kind's switches that are on (e.g. `from-dump`).
    pub on: FlagValues,
    pub sel: usize,
    pub plan: Loadable<PlanView>,
    pub typed: String,
    pub result: Loadable<Vec<String>>,
    /// The number of the plan asked for last: only its answer is shown.
    pub plan_seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WizardStep {
    Region,
    Target,
    Point,
    Options,
    Plan,
    Confirm,
    Running,
}

impl WizardStep {
    pub fn title(self) -> &'static str {
        match self {
            WizardStep::Region => "region",
            WizardStep::Target => "target",
            WizardStep::Point => "point",
            WizardStep::Options => "options",
            WizardStep::Plan => "plan",
            WizardStep::Confirm => "confirm",
            WizardStep::Running => "restoring",
        }
    }
}

/// A restore plan as the wizard shows it: the lines `restore --dry-run` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanView {
    pub lines: Vec<String>,
    pub destructive: bool,
    pub target: String,
    pub plan: Arc<RestorePlan>,
}

/// Something shown over the screen that takes the keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    Help,
    Palette {
        input: String,
        sel: usize,
        /// What was typed before `tab` completed it: the next `tab` cycles
        /// through its completions.
        stem: Option<String>,
    },
    Filter {
        input: String,
    },
    Confirm(Confirm),
    /// A drill's manual step: Enter when done, `a` to abort.
    Manual {
        step: String,
        instruction: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub title: String,
    pub lines: Vec<String>,
    pub then: ConfirmThen,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConfirmThen {
    RunDrill(PathBuf),
    AbortDrill,
    AbortAndQuit,
}

pub use super::keymap::Input;

/// Everything that reaches `update`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Cmd(Command),
    Input(Input),
    Tick(DateTime<Utc>),
    Region(String, Loadable<Vec<PointRow>>),
    Drills(Loadable<Vec<DrillRow>>),
    Reports(Loadable<Vec<RunEntry>>),
    Schedules(Loadable<Vec<ScheduleRow>>),
    /// The streams of the targets that have one, per region.
    Streams(Loadable<Vec<StreamStatus>>),
    Report(String, Loadable<Box<DrillReport>>),
    /// A verify or copy finished: what to say.
    Done(Result<String, Failure>),
    /// The plan of the wizard's request number N (older ones are dropped).
    Plan(u64, Result<PlanView, Failure>),
    Restored(Result<Vec<String>, Failure>),
    Drill(Box<DrillEvent>),
    Manual {
        step: String,
        instruction: String,
    },
    /// The drill's report was written (its run id), or could not be.
    DrillReported(Result<String, Failure>),
    Log(String),
    /// What the engine is doing now (None: nothing).
    Progress(Option<String>),
    /// A point listed to browse (the request's number).
    Indexed(u64, Result<Index, Failure>),
    /// A level of a browsed point.
    Level(u64, Result<Level, Failure>),
    /// A comparison of a point.
    Diffed(u64, Result<Shown, Failure>),
    /// The newest lines of the dashboard's log file.
    LogFile(Result<Vec<String>, Failure>),
    /// Every region's store and every target's endpoints, probed.
    Health(Loadable<Vec<Reachability>>),
}

/// Work for the runtime: each becomes a background task whose result comes
/// back as an action.
#[derive(Debug, Clone)]
pub enum Effect {
    LoadAll,
    LoadStreams,
    LoadReport(String),
    Verify {
        region: String,
        target: String,
        point: String,
    },
    Copy {
        region: String,
        target: String,
        point: String,
    },
    /// A restore plan for the wizard, with the request's number.
    PlanRestore(u64, RestoreAsk),
    Restore(Arc<RestorePlan>),
    RunDrill(PathBuf),
    AbortDrill,
    AnswerManual(bool),
    /// Put this text on the terminal's clipboard (the terminal's owner does).
    Clipboard(String),
    /// Open a drill run's report.html with the system's opener.
    OpenHtml {
        drill: String,
        run: String,
    },
    /// Hold the running drill before its next step (a dialog asks whether
    /// to abort it), or let it go on.
    HoldDrill(bool),
    /// List a point to browse it.
    IndexPoint {
        seq: u64,
        region: String,
        target: String,
        point: String,
    },
    ReadLevel(LevelAsk),
    Diff(DiffAsk),
    /// Read the newest lines of the dashboard's log file.
    ReadLogFile,
    /// Probe every store and endpoint (as `drtool config check`).
    LoadHealth,
}

/// A step of the running drill.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStep {
    pub line: StepLine,
    pub state: StepState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepState {
    Pending,
    Running {
        since_ms: u64,
    },
    Done {
        outcome: StepOutcome,
        ms: u64,
        message: String,
    },
}

/// A probe of the running drill, per phase.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveProbe {
    pub last_ok: Option<bool>,
    /// Consecutive results like the last one.
    pub streak: u32,
    pub passes: u64,
    pub failures: u64,
    pub detail: String,
}

/// The drill running in the dashboard, from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveDrill {
    pub name: String,
    pub run: Option<String>,
    pub info: DrillInfo,
    pub steps: Vec<LiveStep>,
    pub probes: BTreeMap<(String, String), LiveProbe>,
    pub canaries: BTreeMap<String, u64>,
    pub now_ms: u64,
    pub fault_at_ms: Option<u64>,
    pub since_fault_ms: Option<u64>,
    pub rto_ms: Option<u64>,
    pub finished: Option<(DrillVerdict, Option<u64>, Option<u64>)>,
    pub report: Option<Result<String, Failure>>,
    pub aborting: bool,
    pub log: VecDeque<String>,
}

const LOG_LINES: usize = 200;
/// What the quit and abort dialogs say of the drill while they are up.
const HELD: &str = "Until you answer, the drill waits before its next step (its clock runs on).";
/// How often the Overview asks for the streams' lag again.
const STREAMS_EVERY_SECS: i64 = 5;
/// How often every store and endpoint is probed.
const HEALTH_EVERY_SECS: i64 = 15;
/// Streams read longer ago than this are shown as old and not judged on.
const STREAMS_STALE_SECS: i64 = 30;

impl LiveDrill {
    pub fn new(name: &str, info: DrillInfo) -> LiveDrill {
        LiveDrill {
            name: name.to_string(),
            run: None,
            steps: info
                .steps
                .iter()
                .map(|l| LiveStep {
                    line: l.clone(),
                    state: StepState::Pending,
                })
                .collect(),
            info,
            probes: BTreeMap::new(),
            canaries: BTreeMap::new(),
            now_ms: 0,
            fault_at_ms: None,
            since_fault_ms: None,
            rto_ms: None,
            finished: None,
            report: None,
            aborting: false,
            log: VecDeque::new(),
        }
    }

    fn say(&mut self, at_ms: u64, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log
            .push_back(format!("{:>7} {line}", crate::report::human_ms(at_ms)));
    }

    fn step(&mut self, name: &str) -> Option<&mut LiveStep> {
        self.steps.iter_mut().find(|s| s.line.name == name)
    }

    pub fn apply(&mut self, e: &DrillEvent) {
        self.now_ms = self.now_ms.max(e.at_ms);
        match &e.kind {
            DrillEventKind::Started { .. } => self.run = Some(e.run.clone()),
            DrillEventKind::StepStarted { step, .. } => {
                if let Some(s) = self.step(step) {
                    s.state = StepState::Running { since_ms: e.at_ms };
                }
            }
            DrillEventKind::StepFinished {
                step,
                outcome,
                message,
                duration_ms,
            } => {
                if let Some(s) = self.step(step) {
                    s.state = StepState::Done {
                        outcome: *outcome,
                        ms: *duration_ms,
                        message: message.clone(),
                    };
                }
            }
            DrillEventKind::Fault { .. } => self.fault_at_ms = Some(e.at_ms),
            DrillEventKind::Probe { sample } => {
                let key = (sample.probe.clone(), sample.phase.name().to_string());
                let p = self.probes.entry(key).or_default();
                let changed = p.last_ok.is_some() && p.last_ok != Some(sample.ok);
                p.streak = if p.last_ok == Some(sample.ok) {
                    p.streak + 1
                } else {
                    1
                };
                p.last_ok = Some(sample.ok);
                if sample.ok {
                    p.passes += 1;
                } else {
                    p.failures += 1;
                }
                p.detail = sample.detail.clone();
                if changed {
                    self.say(e.at_ms, crate::drill::runner::probe_line(sample));
                }
            }
            DrillEventKind::Canary { canary, written } => {
                self.canaries.insert(canary.clone(), *written);
            }
            DrillEventKind::Recovered { rto_ms } => self.rto_ms = Some(*rto_ms),
            DrillEventKind::Measures {
                since_fault_ms,
                rto_ms,
                ..
            } => {
                self.since_fault_ms = Some(*since_fault_ms);
                if rto_ms.is_some() {
                    self.rto_ms = *rto_ms;
                }
            }
            DrillEventKind::Manual { .. }
            | DrillEventKind::Cleanup { .. }
            | DrillEventKind::Guard { .. } => {}
            DrillEventKind::Finished {
                verdict,
                rto_ms,
                rpo_ms,
            } => {
                self.finished = Some((*verdict, *rto_ms, *rpo_ms));
                if rto_ms.is_some() {
                    self.rto_ms = *rto_ms;
                }
                self.end_steps(e.at_ms);
            }
        }
        if let Some(line) = e.line() {
            self.say(e.at_ms, line);
        }
    }

    /// A drill that ended ran no more steps: any still shown waiting (its
    /// skipped events lost) or running ends as the report has it, skipped.
    fn end_steps(&mut self, at_ms: u64) {
        for s in &mut self.steps {
            let ms = match s.state {
                StepState::Pending => 0,
                StepState::Running { since_ms } => at_ms.saturating_sub(since_ms),
                StepState::Done { .. } => continue,
            };
            s.state = StepState::Done {
                outcome: StepOutcome::Skipped,
                ms,
                message: crate::drill::runner::SKIPPED.into(),
            };
        }
    }

    /// Until its report is written (or could not be): a drill whose
    /// finished event was lost, or that never started, ends there too.
    pub fn running(&self) -> bool {
        self.finished.is_none() && self.report.is_none()
    }
}

/// A row of the wizard's options step.
#[derive(Debug, Clone, PartialEq)]
enum OptionRow {
    /// `--existing`, cycled by enter.
    Existing,
    /// A part of the point chosen in its contents (`--prefix P`): enter
    /// drops it.
    Only(String),
    /// An on/off option of the kind.
    Switch(String),
    Plan,
}

/// A background read asked for again every few seconds once answered
/// (never two at a time): when it was last asked, and whether its answer
/// is still due.
#[derive(Debug, Clone, Copy, Default)]
struct Poll(Option<(DateTime<Utc>, bool)>);

impl Poll {
    /// Whether to ask now (then it counts as asked).
    fn due(&mut self, now: DateTime<Utc>, every_secs: i64) -> bool {
        let due = match self.0 {
            Some((_, true)) => false,
            Some((at, false)) => now - at >= chrono::Duration::seconds(every_secs),
            None => true,
        };
        if due {
            self.0 = Some((now, true));
        }
        due
    }

    fn answered(&mut self) {
        if let Some((_, due)) = self.0.as_mut() {
            *due = false;
        }
    }
}

/// What a view's key asked for.
enum Wanted {
    Contents(contents::Want),
    Diff(diff::Want),
    Logs(logs::Want),
}

/// The dashboard.
#[derive(Debug, Clone)]
pub struct App {
    pub now: DateTime<Utc>,
    pub read_only: bool,
    pub keymap: Keymap,
    pub screen: Screen,
    pub views: Vec<View>,
    pub overlay: Option<Overlay>,
    pub filter: String,
    pub inverse: bool,
    pub targets: Vec<TargetInfo>,
    pub regions: Vec<RegionPoints>,
    pub region: usize,
    pub drills: Loadable<Vec<DrillRow>>,
    pub reports: Loadable<Vec<RunEntry>>,
    pub schedules: Loadable<Vec<ScheduleRow>>,
    pub streams: Loadable<Vec<StreamStatus>>,
    /// When the streams were last asked for, and whether an answer is due.
    streams_asked: Poll,
    /// When the streams shown were read, and why the last refresh failed.
    pub streams_at: Option<DateTime<Utc>>,
    pub streams_failed: Option<String>,
    /// Every store and endpoint, as last probed (`config check`'s words),
    /// and when it was last asked for (and whether an answer is due).
    pub health: Loadable<Vec<Reachability>>,
    health_asked: Poll,
    pub report: Option<(String, Loadable<Box<DrillReport>>)>,
    /// Selected row per screen.
    pub sel: [usize; 5],
    /// The screen `enter` came from (the Overview's target to its points):
    /// `esc` goes back to it once the filter it set is cleared.
    came_from: Option<Screen>,
    /// Scroll of an opened view (point manifest, report).
    pub scroll: u16,
    pub live: Option<LiveDrill>,
    pub status: Option<(String, bool)>,
    pub log: VecDeque<String>,
    /// The engine job in progress, for the footer.
    pub progress: Option<String>,
    /// A manual step waiting to be asked (step, instruction).
    pub manual: Option<(String, String)>,
    /// A reload on the Drills screen: the drills' load says how many are valid.
    validating: bool,
    /// Plans asked for so far, by any wizard: each answer names its number.
    plans: u64,
    /// Reads asked for by the views (contents, diffs): each answer names its number.
    asked: u64,
    pub quit: bool,
    quit_after_drill: bool,
}

impl App {
    pub fn new(
        now: DateTime<Utc>,
        targets: Vec<TargetInfo>,
        regions: Vec<String>,
        keymap: Keymap,
        read_only: bool,
    ) -> App {
        let streaming = targets.iter().any(|t| t.streams);
        App {
            now,
            read_only,
            keymap,
            screen: Screen::Overview,
            views: Vec::new(),
            overlay: None,
            filter: String::new(),
            inverse: false,
            targets,
            regions: regions
                .into_iter()
                .map(|r| RegionPoints {
                    region: r,
                    points: Loadable::Loading,
                })
                .collect(),
            region: 0,
            drills: Loadable::Loading,
            reports: Loadable::Loading,
            schedules: Loadable::Loading,
            streams: if streaming {
                Loadable::Loading
            } else {
                Loadable::Ready(Vec::new())
            },
            streams_asked: Poll::default(),
            streams_at: None,
            streams_failed: None,
            health: Loadable::Loading,
            health_asked: Poll::default(),
            report: None,
            sel: [0; 5],
            came_from: None,
            scroll: 0,
            live: None,
            status: None,
            log: VecDeque::new(),
            progress: None,
            manual: None,
            validating: false,
            plans: 0,
            asked: 0,
            quit: false,
            quit_after_drill: false,
        }
    }

    /// Whether keys go to an overlay's text (not the keymap).
    pub fn wants_text(&self) -> bool {
        matches!(
            self.overlay,
            Some(
                Overlay::Palette { .. }
                    | Overlay::Filter { .. }
                    | Overlay::Confirm(_)
                    | Overlay::Manual { .. }
            )
        ) || matches!(self.views.last(), Some(View::Wizard(w)) if w.step == WizardStep::Confirm)
            || matches!(self.views.last(), Some(View::Contents(c)) if c.typing)
            || matches!(self.views.last(), Some(View::Logs(l)) if l.typing)
    }

    /// The breadcrumb: screen › opened views.
    pub fn breadcrumb(&self) -> String {
        let mut parts = vec![self.screen.title().to_string()];
        if self.screen == Screen::Points
            && self.views.is_empty()
            && let Some(r) = self.regions.get(self.region)
        {
            parts.push(r.region.clone());
        }
        parts.extend(self.views.iter().map(View::crumb));
        parts.join(" › ")
    }

    /// Asks for the streams again every few seconds (their lag moves), when
    /// a target has one and no answer is still due.
    fn streams_due(&mut self) -> Vec<Effect> {
        if !self.targets.iter().any(|t| t.streams) {
            return Vec::new();
        }
        if !self.streams_asked.due(self.now, STREAMS_EVERY_SECS) {
            return Vec::new();
        }
        vec![Effect::LoadStreams]
    }

    /// The streams' status answered (or failed).
    fn streams_answered(&mut self, s: Loadable<Vec<StreamStatus>>) -> Vec<Effect> {
        self.streams_asked.answered();
        match s {
            // A failed refresh keeps what was shown, marked as old.
            Loadable::Failed(e) => {
                self.log_line(format!("streams: {e}"));
                if self.streams.ready().is_none() {
                    self.streams = Loadable::Failed(e.clone());
                }
                self.streams_failed = Some(e);
            }
            other => {
                self.streams = other;
                self.streams_at = Some(self.now);
                self.streams_failed = None;
            }
        }
        Vec::new()
    }

    /// The log file's lines, for the log viewer open.
    fn log_file_read(&mut self, r: Result<Vec<String>, Failure>) -> Vec<Effect> {
        let lines = match r {
            Ok(l) => Loadable::Ready(l),
            Err(e) => Loadable::Failed(e.message),
        };
        if let Some(l) = self.views.iter_mut().find_map(|v| match v {
            View::Logs(l) => Some(l),
            _ => None,
        }) {
            l.file_read(lines);
        }
        Vec::new()
    }

    /// The endpoints' probe answered.
    fn health_answered(&mut self, h: Loadable<Vec<Reachability>>) -> Vec<Effect> {
        self.health_asked.answered();
        if let Loadable::Failed(e) = &h {
            self.log_line(format!("endpoints: {e}"));
        }
        // Newly down or back: said in the activity log.
        let mut changed = Vec::new();
        if let (Loadable::Ready(old), Loadable::Ready(new)) = (&self.health, &h) {
            for n in new {
                let was = old
                    .iter()
                    .find(|o| o.region == n.region && o.what == n.what)
                    .map(|o| o.reachable);
                match (was, n.reachable) {
                    (Some(true), false) => changed.push(format!(
                        "{} in {} stopped answering: {}",
                        n.what, n.region, n.detail
                    )),
                    (Some(false), true) => {
                        changed.push(format!("{} in {} answers again", n.what, n.region))
                    }
                    _ => {}
                }
            }
        }
        for line in changed {
            self.log_line(line);
        }
        self.health = h;
        Vec::new()
    }

    /// The endpoints' health, asked again every `HEALTH_EVERY_SECS` once
    /// answered (never two probes at once).
    fn health_due(&mut self) -> Vec<Effect> {
        if !self.health_asked.due(self.now, HEALTH_EVERY_SECS) {
            return Vec::new();
        }
        vec![Effect::LoadHealth]
    }

    /// Whether the streams shown were read recently enough to judge on.
    pub fn streams_fresh(&self) -> bool {
        self.streams_at
            .is_some_and(|at| self.now - at <= chrono::Duration::seconds(STREAMS_STALE_SECS))
    }

    pub fn overview(&self) -> Vec<OverviewRow> {
        let drills = self.drills.ready().map(Vec::as_slice);
        let reports = self.reports.ready().map(Vec::as_slice);
        let schedules = self.schedules.ready().map(Vec::as_slice);
        // A lag read long ago says nothing of now: the row is judged on its
        // points alone until the streams answer again.
        let streams = self
            .streams
            .ready()
            .filter(|_| self.streams_fresh())
            .map(Vec::as_slice);
        let rows = model::overview(&OverviewInput {
            now: self.now,
            targets: &self.targets,
            regions: &self.regions,
            drills,
            reports,
            schedules,
            streams,
        });
        rows.into_iter()
            .filter(|r| self.matches(&format!("{} {}", r.target, r.kind)))
            .collect()
    }

    fn matches(&self, text: &str) -> bool {
        self.filter.is_empty()
            || text.to_lowercase().contains(&self.filter.to_lowercase()) != self.inverse
    }

    /// The selected region's points, filtered, newest first.
    pub fn points(&self) -> Vec<&PointRow> {
        match self.regions.get(self.region).map(|r| &r.points) {
            Some(Loadable::Ready(p)) => model::filtered(p, &self.filter, self.inverse),
            _ => Vec::new(),
        }
    }

    pub fn drill_rows(&self) -> Vec<&DrillRow> {
        self.drills
            .ready()
            .map(|d| d.iter().filter(|r| self.matches(&r.name)).collect())
            .unwrap_or_default()
    }

    /// Runs, newest first.
    pub fn report_rows(&self) -> Vec<&RunEntry> {
        let mut rows: Vec<&RunEntry> = self
            .reports
            .ready()
            .map(|r| {
                r.iter()
                    .filter(|e| self.matches(&format!("{} {}", e.drill, e.run_id)))
                    .collect()
            })
            .unwrap_or_default();
        rows.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        rows
    }

    pub fn schedule_rows(&self) -> Vec<&ScheduleRow> {
        self.schedules
            .ready()
            .map(|s| {
                s.iter()
                    .filter(|r| self.matches(&format!("{} {}", r.name, r.targets.join(" "))))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn rows(&self) -> usize {
        match self.screen {
            Screen::Overview => self.overview().len(),
            Screen::Points => self.points().len(),
            Screen::Drills => self.drill_rows().len(),
            Screen::Reports => self.report_rows().len(),
            Screen::Schedules => self.schedule_rows().len(),
        }
    }

    pub fn selected(&self) -> usize {
        self.selected_in(self.rows())
    }

    /// The selected row of a list of `rows` the caller already has (a
    /// view draws its rows once, not again to clamp the selection).
    pub fn selected_in(&self, rows: usize) -> usize {
        self.sel[self.screen.index()].min(rows.saturating_sub(1))
    }

    fn say(&mut self, text: impl Into<String>, error: bool) {
        let text = text.into();
        self.log_line(text.clone());
        self.status = Some((text, error));
    }

    fn log_line(&mut self, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log
            .push_back(format!("{} {line}", self.now.format("%H:%M:%S")));
    }

    /// The one mutator.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        let effects = self.apply(action);
        self.show_manual();
        effects
    }

    /// A waiting manual step is asked once nothing else takes the keys.
    fn show_manual(&mut self) {
        let Some((step, instruction)) = self.manual.clone() else {
            return;
        };
        if !self.live.as_ref().is_some_and(LiveDrill::running) {
            self.manual = None;
            if matches!(self.overlay, Some(Overlay::Manual { .. })) {
                self.overlay = None;
            }
            return;
        }
        // Not over the wizard's typed confirmation either.
        let typing =
            matches!(self.views.last(), Some(View::Wizard(w)) if w.step == WizardStep::Confirm);
        if (self.overlay.is_none() && !typing)
            || matches!(self.overlay, Some(Overlay::Manual { .. }))
        {
            self.overlay = Some(Overlay::Manual { step, instruction });
        }
    }

    /// Nothing is left to ask about a drill that is over.
    fn drill_over(&mut self) {
        self.manual = None;
        match &self.overlay {
            Some(Overlay::Manual { .. }) => self.overlay = None,
            Some(Overlay::Confirm(c)) if c.then == ConfirmThen::AbortDrill => self.overlay = None,
            // Quitting needs no abort any more: it asks no more either.
            Some(Overlay::Confirm(c)) if c.then == ConfirmThen::AbortAndQuit => {
                self.overlay = None;
                self.say("the drill is over: q quits", false);
            }
            _ => {}
        }
    }

    fn apply(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Cmd(c) => self.command(c),
            Action::Input(i) => self.input(i),
            Action::Tick(now) => {
                self.now = now;
                let mut effects = self.streams_due();
                effects.extend(self.health_due());
                effects
            }
            Action::Health(h) => self.health_answered(h),
            Action::Streams(s) => self.streams_answered(s),
            Action::Region(region, points) => {
                if let Loadable::Failed(e) = &points {
                    self.log_line(format!("{region}: {e}"));
                }
                if let Some(r) = self.regions.iter_mut().find(|r| r.region == region) {
                    r.points = points;
                }
                Vec::new()
            }
            Action::Drills(d) => self.drills_loaded(d),
            Action::Reports(r) => {
                self.reports = r;
                Vec::new()
            }
            Action::Schedules(s) => {
                self.schedules = s;
                Vec::new()
            }
            Action::Report(run, r) => {
                self.report = Some((run, r));
                Vec::new()
            }
            Action::Done(r) => {
                match r {
                    Ok(m) => self.say(m, false),
                    Err(e) => self.say(e.message, true),
                }
                vec![Effect::LoadAll]
            }
            Action::Plan(seq, p) => {
                if let Some(View::Wizard(w)) = self.views.last_mut()
                    && w.plan_seq == seq
                    && w.step == WizardStep::Plan
                {
                    w.plan = match p {
                        Ok(p) => Loadable::Ready(p),
                        Err(e) => Loadable::Failed(e.message),
                    };
                }
                Vec::new()
            }
            Action::Restored(r) => self.restored(r),
            Action::Drill(e) => self.drill_event(&e),
            Action::Manual { step, instruction } => {
                // Not over something taking keys: an enter meant for it
                // would confirm the step. It shows when that closes.
                self.manual = Some((step, instruction));
                self.show_manual();
                Vec::new()
            }
            Action::DrillReported(r) => self.drill_reported(r),
            Action::Log(line) => {
                self.log_line(line);
                Vec::new()
            }
            Action::Progress(p) => {
                self.progress = p;
                Vec::new()
            }
            a @ (Action::Indexed(..) | Action::Level(..) | Action::Diffed(..)) => {
                self.view_answer(a)
            }
            Action::LogFile(r) => self.log_file_read(r),
        }
    }

    /// What a view's read (an index, a level, a diff) came back with.
    fn view_answer(&mut self, action: Action) -> Vec<Effect> {
        match action {
            // Each answer goes to the view that asked (its number), moved.
            Action::Indexed(seq, r) => {
                let view = self.views.iter_mut().find_map(|v| match v {
                    View::Contents(c) if c.seq == seq && c.index == Loadable::Loading => Some(c),
                    _ => None,
                });
                let Some(c) = view else {
                    return Vec::new();
                };
                let want = c.indexed(r, &mut self.asked);
                self.contents_wants(want)
            }
            Action::Level(seq, r) => {
                if let Some(c) = self.views.iter_mut().find_map(|v| match v {
                    View::Contents(c) if c.seq == seq => Some(c),
                    _ => None,
                }) {
                    c.leveled(seq, r);
                }
                Vec::new()
            }
            Action::Diffed(seq, r) => {
                if let Some(d) = self.views.iter_mut().find_map(|v| match v {
                    View::Diff(d) if d.seq == seq => Some(d),
                    _ => None,
                }) {
                    d.answered(seq, r);
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The drill files, read again (said when it was a validation).
    fn drills_loaded(&mut self, d: Loadable<Vec<DrillRow>>) -> Vec<Effect> {
        if std::mem::take(&mut self.validating)
            && let Loadable::Ready(rows) = &d
        {
            let bad = rows.iter().filter(|r| r.info.is_err()).count();
            let text = format!(
                "{} drill files validated: {} valid, {bad} invalid",
                rows.len(),
                rows.len() - bad
            );
            self.say(text, bad > 0);
        }
        self.drills = d;
        Vec::new()
    }

    /// How a restore of the wizard went.
    fn restored(&mut self, r: Result<Vec<String>, Failure>) -> Vec<Effect> {
        let (text, error) = match &r {
            Ok(lines) => (lines.join("; "), false),
            Err(e) => (e.message.clone(), true),
        };
        if let Some(View::Wizard(w)) = self.views.last_mut() {
            w.result = match r {
                Ok(l) => Loadable::Ready(l),
                Err(e) => Loadable::Failed(e.message),
            };
        }
        self.say(text, error);
        vec![Effect::LoadAll]
    }

    /// An event of the running drill.
    fn drill_event(&mut self, e: &DrillEvent) -> Vec<Effect> {
        if let Some(l) = self.live.as_mut() {
            l.apply(e);
        }
        match &e.kind {
            // A step that ended (answered, timed out) asks no more.
            DrillEventKind::StepFinished { step, .. }
                if self.manual.as_ref().is_some_and(|(m, _)| m == step) =>
            {
                self.manual = None;
                if matches!(self.overlay, Some(Overlay::Manual { .. })) {
                    self.overlay = None;
                }
            }
            DrillEventKind::Finished { .. } => self.drill_over(),
            _ => {}
        }
        Vec::new()
    }

    /// The drill's report is written (or could not be).
    fn drill_reported(&mut self, r: Result<String, Failure>) -> Vec<Effect> {
        if let Some(l) = self.live.as_mut() {
            l.report = Some(r.clone());
        }
        self.drill_over();
        match r {
            Ok(run) => self.say(format!("report {run} written: enter opens it"), false),
            Err(e) => self.say(format!("the report could not be written: {e}"), true),
        }
        if self.quit_after_drill {
            self.quit = true;
        }
        vec![Effect::LoadAll]
    }

    fn move_sel(&mut self, by: isize, rows: usize) {
        let i = self.screen.index();
        let cur = self.sel[i].min(rows.saturating_sub(1)) as isize;
        self.sel[i] = (cur + by).clamp(0, rows.saturating_sub(1) as isize) as usize;
    }

    fn command(&mut self, c: Command) -> Vec<Effect> {
        if let Some(Overlay::Help) = self.overlay {
            if matches!(
                c,
                Command::Back | Command::Help | Command::Quit | Command::Open
            ) {
                self.overlay = None;
            }
            return Vec::new();
        }
        if self.read_only && c.writes() {
            self.say(format!("read-only: {} is not available", c.name()), true);
            return Vec::new();
        }
        self.status = None;
        if let Some(View::Wizard(_)) = self.views.last() {
            return self.wizard_command(c);
        }
        if let Some(effects) = self.view_command(c) {
            return effects;
        }
        match c {
            Command::Quit => self.quit_or_confirm(),
            Command::Help => {
                self.overlay = Some(Overlay::Help);
                Vec::new()
            }
            Command::Palette => {
                self.overlay = Some(Overlay::Palette {
                    input: String::new(),
                    sel: 0,
                    stem: None,
                });
                Vec::new()
            }
            Command::Filter => {
                self.overlay = Some(Overlay::Filter {
                    input: String::new(),
                });
                Vec::new()
            }
            Command::NextScreen | Command::PrevScreen => {
                let i =
                    self.screen.index() as isize + if c == Command::NextScreen { 1 } else { -1 };
                self.go(SCREENS[i.rem_euclid(SCREENS.len() as isize) as usize]);
                Vec::new()
            }
            Command::Up
            | Command::Down
            | Command::PageUp
            | Command::PageDown
            | Command::Top
            | Command::Bottom => self.scroll_or_move(c),
            Command::NextRegion | Command::PrevRegion => {
                if self.screen == Screen::Points
                    && self.views.is_empty()
                    && !self.regions.is_empty()
                {
                    let n = self.regions.len() as isize;
                    let by = if c == Command::NextRegion { 1 } else { -1 };
                    self.region = (self.region as isize + by).rem_euclid(n) as usize;
                    self.sel[Screen::Points.index()] = 0;
                }
                Vec::new()
            }
            Command::Open => self.open(),
            Command::Back => {
                if self.views.pop().is_some() {
                    self.scroll = 0;
                } else if !self.filter.is_empty() {
                    self.filter.clear();
                    self.inverse = false;
                } else if let Some(back) = self.came_from.take() {
                    self.go(back);
                }
                Vec::new()
            }
            Command::Refresh => {
                for r in &mut self.regions {
                    r.points = Loadable::Loading;
                }
                // On the Drills screen a reload is a validation: say how it went.
                self.validating = self.screen == Screen::Drills;
                vec![Effect::LoadAll]
            }
            Command::Verify | Command::Copy => self.verify_or_copy(c),
            Command::Restore => self.open_restore_wizard(),
            Command::Run => self.confirm_run(),
            Command::DryRun => self.dry_run_or_diff(),
            Command::Abort => self.confirm_abort(),
            Command::Yank => self.yank(),
            Command::OpenHtml => self.open_html(),
            Command::Logs => self.open_logs(),
            // Only the log viewer has matches to go to.
            Command::NextMatch | Command::PrevMatch => Vec::new(),
        }
    }

    /// `l`: the log viewer, on this session's activity (the running drill's
    /// log first while one runs); the log file is read in the background.
    fn open_logs(&mut self) -> Vec<Effect> {
        let mut sources = Vec::new();
        if let Some(l) = &self.live {
            sources.push(logs::Source {
                name: format!("drill {}", l.name),
                lines: Loadable::Ready(l.log.iter().cloned().collect()),
            });
        }
        sources.push(logs::Source {
            name: "activity".into(),
            lines: Loadable::Ready(self.log.iter().cloned().collect()),
        });
        sources.push(logs::Source {
            name: logs::FILE.into(),
            lines: Loadable::Loading,
        });
        self.views.push(View::Logs(Box::new(LogView::new(sources))));
        vec![Effect::ReadLogFile]
    }

    /// `o`: the report open or selected, in a browser.
    fn open_html(&mut self) -> Vec<Effect> {
        let picked = match (self.views.last(), self.screen) {
            (Some(View::Report { run }), _) => match &self.report {
                Some((r, Loadable::Ready(rep))) if r == run => {
                    Some((rep.drill.clone(), run.clone()))
                }
                _ => None,
            },
            (None, Screen::Reports) => self
                .report_rows()
                .get(self.selected())
                .map(|r| (r.drill.clone(), r.run_id.clone())),
            _ => None,
        };
        match picked {
            Some((drill, run)) => vec![Effect::OpenHtml { drill, run }],
            None => {
                self.say("select or open a report first (Reports screen)", true);
                Vec::new()
            }
        }
    }

    /// `y`: the selected point's, run's or drill's id to the clipboard.
    fn yank(&mut self) -> Vec<Effect> {
        let picked = match (self.views.last(), self.screen) {
            (Some(View::Contents(c)), _) => c.selected().map(|e| e.path().to_string()),
            (Some(View::Report { run }), _) => Some(run.clone()),
            (Some(View::Live), _) => self.live.as_ref().and_then(|l| l.run.clone()),
            (Some(View::Point { point, .. }), _) => Some(point.clone()),
            (None, Screen::Points) => self.current_point().map(|(_, _, p)| p),
            (None, Screen::Reports) => self
                .report_rows()
                .get(self.selected())
                .map(|r| r.run_id.clone()),
            (None, Screen::Drills) | (Some(View::Drill { .. }), _) => {
                self.current_drill().map(|d| d.name.clone())
            }
            (None, Screen::Overview) => self
                .overview()
                .get(self.selected())
                .map(|r| r.target.clone()),
            _ => None,
        };
        match picked {
            Some(text) => {
                self.say(format!("copied {text}"), false);
                vec![Effect::Clipboard(text)]
            }
            None => {
                self.say(
                    "nothing to copy here: select a point, a run, a drill or a target first",
                    true,
                );
                Vec::new()
            }
        }
    }

    /// `d`: on a point, compares it; on a drill, shows its dry run.
    fn dry_run_or_diff(&mut self) -> Vec<Effect> {
        if let Some(at) = self.current_point() {
            return self.open_diff(at, None);
        }
        if let Some(d) = self.current_drill() {
            let name = d.name.clone();
            self.views.push(View::Drill { name });
            self.say(
                "dry run: every step as it would run; nothing was changed",
                false,
            );
        }
        Vec::new()
    }

    /// A quit, asked first while a drill runs.
    fn quit_or_confirm(&mut self) -> Vec<Effect> {
        if self.live.as_ref().is_some_and(LiveDrill::running) {
            self.overlay = Some(Overlay::Confirm(Confirm {
                title: "A drill is running".into(),
                lines: vec![
                    "Quitting aborts it: its cleanup runs first, then drtool exits.".into(),
                    HELD.into(),
                    "y: abort and quit    n / esc: keep watching".into(),
                ],
                then: ConfirmThen::AbortAndQuit,
            }));
            return vec![Effect::HoldDrill(true)];
        }
        self.quit = true;
        Vec::new()
    }

    /// Scrolls a view, or moves the selection of a screen.
    fn scroll_or_move(&mut self, c: Command) -> Vec<Effect> {
        // The live log counts back from its newest line.
        if let (Some(View::Live), Some(l)) = (self.views.last(), self.live.as_ref()) {
            let oldest = u16::try_from(l.log.len().saturating_sub(1)).unwrap_or(u16::MAX);
            self.scroll = match c {
                Command::Up => self.scroll.saturating_add(1),
                Command::Down => self.scroll.saturating_sub(1),
                Command::PageUp => self.scroll.saturating_add(10),
                Command::PageDown => self.scroll.saturating_sub(10),
                Command::Top => oldest,
                _ => 0,
            }
            .min(oldest);
            return Vec::new();
        }
        if !self.views.is_empty() {
            self.scroll = match c {
                Command::Up => self.scroll.saturating_sub(1),
                Command::Down => self.scroll.saturating_add(1),
                Command::PageUp => self.scroll.saturating_sub(10),
                Command::PageDown => self.scroll.saturating_add(10),
                Command::Top => 0,
                _ => u16::MAX / 2,
            };
            return Vec::new();
        }
        let rows = self.rows();
        let by = match c {
            Command::Up => -1,
            Command::Down => 1,
            Command::PageUp => -10,
            Command::PageDown => 10,
            Command::Top => -(rows as isize),
            _ => rows as isize,
        };
        self.move_sel(by, rows);
        Vec::new()
    }

    /// Verifies or copies the selected point.
    fn verify_or_copy(&mut self, c: Command) -> Vec<Effect> {
        match self.current_point() {
            Some((region, target, point)) => {
                self.say(
                    format!(
                        "{} {target} {point} in {region}...",
                        if c == Command::Verify {
                            "verifying"
                        } else {
                            "copying"
                        }
                    ),
                    false,
                );
                vec![if c == Command::Verify {
                    Effect::Verify {
                        region,
                        target,
                        point,
                    }
                } else {
                    Effect::Copy {
                        region,
                        target,
                        point,
                    }
                }]
            }
            None => {
                self.say("select a point first (Points screen)", true);
                Vec::new()
            }
        }
    }

    /// Opens the restore wizard, at its options when a point is selected.
    fn open_restore_wizard(&mut self) -> Vec<Effect> {
        let picked = self.current_point();
        let mut w = Wizard {
            step: WizardStep::Region,
            region: None,
            target: None,
            point: None,
            existing: None,
            on: FlagValues::default(),
            sel: 0,
            plan: Loadable::Loading,
            typed: String::new(),
            result: Loadable::Loading,
            plan_seq: 0,
        };
        if let Some((region, target, point)) = picked {
            w.region = Some(region);
            w.target = Some(target);
            w.point = Some(point);
            w.step = WizardStep::Options;
        }
        self.scroll = 0;
        self.views.push(View::Wizard(Box::new(w)));
        Vec::new()
    }

    /// Asks before running the selected drill.
    fn confirm_run(&mut self) -> Vec<Effect> {
        match self.current_drill() {
            Some(d) => match &d.info {
                Ok(info) => {
                    // Until the last drill's report is written.
                    if let Some(l) = self.live.as_ref().filter(|l| l.report.is_none()) {
                        let why = if l.running() {
                            "a drill is already running"
                        } else {
                            "the last drill is still writing its report"
                        };
                        self.say(why, true);
                        return Vec::new();
                    }
                    let faults: Vec<String> = info
                        .steps
                        .iter()
                        // Every step that changes something or waits on someone.
                        .filter(|s| {
                            matches!(s.kind.as_str(), "fault" | "exec" | "restore" | "manual")
                        })
                        .map(|s| format!("  {}: {}", s.name, s.summary))
                        .collect();
                    let mut lines = vec![info.hypothesis.clone(), "It will:".into()];
                    lines.extend(faults);
                    lines.push("y: run it    n / esc: cancel".into());
                    self.overlay = Some(Overlay::Confirm(Confirm {
                        title: format!("Run drill {}?", d.name),
                        lines,
                        then: ConfirmThen::RunDrill(d.file.clone()),
                    }));
                    Vec::new()
                }
                Err(e) => {
                    let e = e.clone();
                    self.say(format!("the drill is not valid: {e}"), true);
                    Vec::new()
                }
            },
            None => {
                self.say("select a drill first (Drills screen)", true);
                Vec::new()
            }
        }
    }

    /// Asks before aborting the running drill.
    fn confirm_abort(&mut self) -> Vec<Effect> {
        if let Some(l) = self.live.as_ref().filter(|l| l.running()) {
            self.overlay = Some(Overlay::Confirm(Confirm {
                title: format!("Abort drill {}?", l.name),
                lines: vec![
                    "The running step is stopped; cleanup still runs.".into(),
                    HELD.into(),
                    "y: abort    n / esc: keep going".into(),
                ],
                then: ConfirmThen::AbortDrill,
            }));
            return vec![Effect::HoldDrill(true)];
        }
        self.say("no drill is running", true);
        Vec::new()
    }

    fn go(&mut self, s: Screen) {
        self.screen = s;
        self.came_from = None;
        self.views.clear();
        self.scroll = 0;
        self.filter.clear();
        self.inverse = false;
    }

    /// (region, target, point) of the selected point.
    fn current_point(&self) -> Option<(String, String, String)> {
        match self.views.last() {
            Some(View::Point {
                region,
                target,
                point,
            }) => Some((region.clone(), target.clone(), point.clone())),
            Some(View::Contents(c)) => Some((c.region.clone(), c.target.clone(), c.point.clone())),
            None if self.screen == Screen::Points => self
                .points()
                .get(self.selected())
                .map(|p| (p.region.clone(), p.target().to_string(), p.id().to_string())),
            _ => None,
        }
    }

    fn current_drill(&self) -> Option<&DrillRow> {
        let name = match self.views.last() {
            Some(View::Drill { name }) => Some(name.clone()),
            _ => None,
        };
        let drills = self.drills.ready()?;
        match name {
            Some(n) => drills.iter().find(|d| d.name == n),
            None if self.screen == Screen::Drills => {
                self.drill_rows().get(self.selected()).copied()
            }
            None => None,
        }
    }

    fn open(&mut self) -> Vec<Effect> {
        if let Some(View::Point {
            region,
            target,
            point,
        }) = self.views.last()
        {
            self.asked += 1;
            let effect = Effect::IndexPoint {
                seq: self.asked,
                region: region.clone(),
                target: target.clone(),
                point: point.clone(),
            };
            let v = ContentsView::new(region, target, point, self.asked);
            self.views.push(View::Contents(Box::new(v)));
            return vec![effect];
        }
        if let Some(View::Live) = self.views.last()
            && let Some(Some(Ok(run))) = self.live.as_ref().map(|l| l.report.clone())
        {
            self.views.push(View::Report { run: run.clone() });
            self.report = None;
            return vec![Effect::LoadReport(run)];
        }
        if !self.views.is_empty() {
            return Vec::new();
        }
        let i = self.selected();
        match self.screen {
            Screen::Overview => {
                if let Some(row) = self.overview().get(i) {
                    let target = row.target.clone();
                    self.go(Screen::Points);
                    self.filter = target;
                    self.came_from = Some(Screen::Overview);
                }
                Vec::new()
            }
            Screen::Points => {
                if let Some(p) = self.points().get(i) {
                    let v = View::Point {
                        region: p.region.clone(),
                        target: p.target().to_string(),
                        point: p.id().to_string(),
                    };
                    self.views.push(v);
                }
                Vec::new()
            }
            Screen::Drills => {
                if let Some(d) = self.drill_rows().get(i) {
                    let name = d.name.clone();
                    self.views.push(View::Drill { name });
                }
                Vec::new()
            }
            Screen::Reports => match self.report_rows().get(i) {
                Some(r) => {
                    let run = r.run_id.clone();
                    self.views.push(View::Report { run: run.clone() });
                    self.report = None;
                    vec![Effect::LoadReport(run)]
                }
                None => Vec::new(),
            },
            Screen::Schedules => Vec::new(),
        }
    }

    /// A key for the view on top that owns its keys; None when it is not
    /// one of its own (the dashboard's: quit, help, tab...).
    fn view_command(&mut self, c: Command) -> Option<Vec<Effect>> {
        let mut asked = self.asked;
        let wanted = match self.views.last_mut() {
            Some(View::Contents(v)) => Wanted::Contents(v.command(c, &mut asked)),
            Some(View::Diff(v)) => Wanted::Diff(v.command(c, &mut asked)),
            Some(View::Logs(v)) => Wanted::Logs(v.command(c)),
            _ => return None,
        };
        self.asked = asked;
        match wanted {
            Wanted::Contents(contents::Want::Pass)
            | Wanted::Diff(diff::Want::Pass)
            | Wanted::Logs(logs::Want::Pass) => None,
            Wanted::Logs(logs::Want::Close) => {
                self.views.pop();
                Some(Vec::new())
            }
            Wanted::Logs(_) => Some(Vec::new()),
            Wanted::Contents(w) => Some(self.contents_wants(w)),
            Wanted::Diff(w) => Some(self.diff_wants(w)),
        }
    }

    /// What the contents view asked for.
    fn contents_wants(&mut self, w: contents::Want) -> Vec<Effect> {
        match w {
            contents::Want::Nothing | contents::Want::Pass => Vec::new(),
            contents::Want::Level(ask) => vec![Effect::ReadLevel(ask)],
            contents::Want::Close => {
                self.views.pop();
                Vec::new()
            }
            contents::Want::Diff(prefix) => match self.views.last() {
                Some(View::Contents(c)) => {
                    let at = (c.region.clone(), c.target.clone(), c.point.clone());
                    self.open_diff(at, prefix)
                }
                _ => Vec::new(),
            },
            // Read-only never gets here: `R` writes, and is refused first.
            contents::Want::Restore(selection) => {
                let effects = self.open_restore_wizard();
                if let Some(View::Wizard(w)) = self.views.last_mut() {
                    match selection {
                        Some(flags) => w.on = flags,
                        None => self.say(
                            "this part cannot be restored alone: the wizard restores the whole point",
                            false,
                        ),
                    }
                }
                effects
            }
        }
    }

    /// What the diff view asked for.
    fn diff_wants(&mut self, w: diff::Want) -> Vec<Effect> {
        match w {
            diff::Want::Nothing | diff::Want::Pass => Vec::new(),
            diff::Want::Diff(ask) => vec![Effect::Diff(ask)],
            diff::Want::Close => {
                self.views.pop();
                Vec::new()
            }
        }
    }

    /// Opens the comparison of a point: with the live target, or another
    /// point of its target in its region (newest first).
    fn open_diff(
        &mut self,
        (region, target, point): (String, String, String),
        prefix: Option<String>,
    ) -> Vec<Effect> {
        let mut choices = vec![Choice {
            with: With::Live,
            label: format!("the live target {target} in {region}"),
        }];
        if let Some(Loadable::Ready(points)) = self
            .regions
            .iter()
            .find(|r| r.region == region)
            .map(|r| &r.points)
        {
            choices.extend(
                model::filtered(points, "", false)
                    .iter()
                    .filter(|p| p.target() == target && p.id() != point)
                    .map(|p| Choice {
                        with: With::Point(p.id().to_string()),
                        label: format!(
                            "point {} ({} ago)",
                            p.id(),
                            model::age(self.now - p.manifest.finished_at)
                        ),
                    }),
            );
        }
        let v = DiffView::new((&region, &target, &point), prefix, choices);
        self.views.push(View::Diff(Box::new(v)));
        Vec::new()
    }

    /// The rows of the wizard's options step, in order.
    fn option_rows(&self, w: &Wizard) -> Vec<OptionRow> {
        let switches = self.switches(w);
        let mut rows = vec![OptionRow::Existing];
        rows.extend(
            w.on.0
                .keys()
                .filter(|k| !switches.contains(&k.as_str()))
                .map(|k| OptionRow::Only(k.clone())),
        );
        rows.extend(switches.iter().map(|s| OptionRow::Switch(s.to_string())));
        rows.push(OptionRow::Plan);
        rows
    }

    /// The on/off options of the wizard's target's kind.
    fn switches(&self, w: &Wizard) -> Vec<&str> {
        w.target
            .as_ref()
            .and_then(|t| self.targets.iter().find(|x| &x.name == t))
            .map(|t| t.switches.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The lists the wizard's steps choose from.
    pub fn wizard_choices(&self, w: &Wizard) -> Vec<String> {
        match w.step {
            WizardStep::Region => self.regions.iter().map(|r| r.region.clone()).collect(),
            WizardStep::Target => self.targets.iter().map(|t| t.name.clone()).collect(),
            WizardStep::Point => {
                let mut out = vec!["newest point".to_string()];
                if let Some(r) = self
                    .regions
                    .iter()
                    .find(|r| Some(&r.region) == w.region.as_ref())
                    && let Loadable::Ready(points) = &r.points
                {
                    out.extend(
                        model::filtered(points, "", false)
                            .iter()
                            .filter(|p| Some(p.target()) == w.target.as_deref())
                            .map(|p| p.id().to_string()),
                    );
                }
                out
            }
            WizardStep::Options => {
                let existing = match w.existing {
                    None | Some(Existing::Fail) => {
                        "fail if anything exists (the default; enter: skip, overwrite)"
                    }
                    Some(Existing::Skip) => "skip what exists",
                    Some(Existing::Overwrite) => "overwrite what exists",
                };
                self.option_rows(w)
                    .into_iter()
                    .map(|row| match row {
                        OptionRow::Existing => format!("existing: {existing}"),
                        OptionRow::Only(flag) => format!(
                            "only --{flag} {}   (enter: the whole point instead)",
                            w.on.values(&flag).join(",")
                        ),
                        OptionRow::Switch(switch) => format!(
                            "{}: {}",
                            switch.replace('-', " "),
                            if w.on.on(&switch) { "yes" } else { "no" }
                        ),
                        OptionRow::Plan => "make the plan".into(),
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn wizard_command(&mut self, c: Command) -> Vec<Effect> {
        let Some(View::Wizard(w)) = self.views.last() else {
            return Vec::new();
        };
        let mut w = (**w).clone();
        let choices = self.wizard_choices(&w);
        let mut effects = Vec::new();
        match c {
            // The plan scrolls; the other steps choose.
            Command::Up | Command::PageUp if w.step == WizardStep::Plan => {
                let by = if c == Command::Up { 1 } else { 10 };
                self.scroll = self.scroll.saturating_sub(by);
            }
            Command::Down | Command::PageDown if w.step == WizardStep::Plan => {
                let by = if c == Command::Down { 1 } else { 10 };
                let lines = w.plan.ready().map_or(0, |p| p.lines.len());
                self.scroll = self.scroll.saturating_add(by).min(lines as u16);
            }
            Command::Up => w.sel = w.sel.saturating_sub(1),
            Command::Down => w.sel = (w.sel + 1).min(choices.len().saturating_sub(1)),
            Command::Top | Command::PageUp => w.sel = 0,
            Command::Bottom | Command::PageDown => w.sel = choices.len().saturating_sub(1),
            Command::Back | Command::Quit if w.step == WizardStep::Running => {
                if matches!(w.result, Loadable::Loading) {
                    self.say(
                        "the restore is running: its result shows here when it ends",
                        true,
                    );
                } else {
                    self.views.pop();
                }
                return Vec::new();
            }
            Command::Back => {
                let back = match w.step {
                    WizardStep::Region | WizardStep::Running => None,
                    WizardStep::Target => Some(WizardStep::Region),
                    WizardStep::Point => Some(WizardStep::Target),
                    WizardStep::Options => Some(WizardStep::Point),
                    WizardStep::Plan => Some(WizardStep::Options),
                    WizardStep::Confirm => Some(WizardStep::Plan),
                };
                match back {
                    Some(s) => {
                        w.step = s;
                        w.sel = 0;
                    }
                    None => {
                        self.views.pop();
                        return Vec::new();
                    }
                }
            }
            Command::Open => {
                let keep = self.wizard_open(&mut w, &choices, &mut effects);
                if !keep {
                    return Vec::new();
                }
            }
            Command::Quit => {
                self.views.pop();
                return Vec::new();
            }
            _ => {}
        }
        if let Some(View::Wizard(slot)) = self.views.last_mut() {
            **slot = w;
        }
        effects
    }

    /// Enter on a step of the wizard: the choice is taken and the next step
    /// shown; false when the wizard is left as it was (or closed).
    fn wizard_open(
        &mut self,
        w: &mut Wizard,
        choices: &[String],
        effects: &mut Vec<Effect>,
    ) -> bool {
        match w.step {
            WizardStep::Region => {
                w.region = choices.get(w.sel).cloned();
                w.step = WizardStep::Target;
                w.sel = 0;
            }
            WizardStep::Target => {
                w.target = choices.get(w.sel).cloned();
                // Another target's kind has other switches.
                w.on = FlagValues::default();
                w.step = WizardStep::Point;
                w.sel = 0;
            }
            WizardStep::Point => {
                w.point = if w.sel == 0 {
                    None
                } else {
                    choices.get(w.sel).cloned()
                };
                w.step = WizardStep::Options;
                w.sel = 0;
            }
            WizardStep::Options => match self.option_rows(w).get(w.sel) {
                // Fail is the default: the cycle names it once.
                Some(OptionRow::Existing) => {
                    w.existing = match w.existing {
                        None | Some(Existing::Fail) => Some(Existing::Skip),
                        Some(Existing::Skip) => Some(Existing::Overwrite),
                        Some(Existing::Overwrite) => None,
                    };
                }
                Some(OptionRow::Only(flag)) => {
                    w.on.0.remove(flag);
                }
                Some(OptionRow::Switch(switch)) => {
                    if w.on.on(switch) {
                        w.on.0.remove(switch);
                    } else {
                        w.on = std::mem::take(&mut w.on).switch(switch);
                    }
                }
                None => {}
                Some(OptionRow::Plan) => {
                    let (Some(region), Some(target)) = (w.region.clone(), w.target.clone()) else {
                        return false;
                    };
                    let point = match &w.point {
                        Some(p) => match p.parse() {
                            Ok(id) => PointChoice::Id(id),
                            Err(e) => {
                                self.say(format!("cannot restore point {p}: {e}"), true);
                                return false;
                            }
                        },
                        None => PointChoice::Newest,
                    };
                    self.plans += 1;
                    w.plan_seq = self.plans;
                    self.scroll = 0;
                    effects.push(Effect::PlanRestore(
                        w.plan_seq,
                        RestoreAsk {
                            region,
                            target,
                            point,
                            existing: w.existing,
                            flags: w.on.clone(),
                        },
                    ));
                    w.plan = Loadable::Loading;
                    w.step = WizardStep::Plan;
                }
            },
            WizardStep::Plan => {
                if let Loadable::Ready(_) = &w.plan {
                    w.step = WizardStep::Confirm;
                    w.typed.clear();
                }
            }
            WizardStep::Confirm => {}
            WizardStep::Running => {
                if !matches!(w.result, Loadable::Loading) {
                    self.views.pop();
                    return false;
                }
            }
        }
        true
    }

    /// A key in the command palette.
    fn palette_input(
        &mut self,
        (mut input, mut sel, mut stem): (String, usize, Option<String>),
        i: Input,
    ) -> Vec<Effect> {
        let options = self.completions(&input);
        match i {
            Input::Char(c) => {
                input.push(c);
                sel = 0;
                stem = None;
            }
            Input::Backspace => {
                input.pop();
                sel = 0;
                stem = None;
            }
            Input::Up => sel = sel.saturating_sub(1),
            Input::Down => sel = (sel + 1).min(options.len().saturating_sub(1)),
            // The first tab completes the selected one; the next ones cycle
            // through what the typed text completes to.
            Input::Tab => {
                let typed = stem.clone().unwrap_or_else(|| input.clone());
                let all = self.completions(&typed);
                let next = match &stem {
                    Some(_) => all
                        .iter()
                        .position(|o| *o == input)
                        .map_or(0, |at| (at + 1) % all.len().max(1)),
                    None => sel.min(all.len().saturating_sub(1)),
                };
                if let Some(o) = all.get(next) {
                    input = o.clone();
                    stem = Some(typed);
                    sel = 0;
                }
            }
            Input::Enter => {
                // A partial word runs what it completes to.
                let bare = input.split_whitespace().nth(1).is_none();
                let line = if (bare && self.palette_command(&input).is_some())
                    || options.iter().any(|o| o == input.trim())
                {
                    input.trim().to_string()
                } else {
                    options.get(sel).cloned().unwrap_or(input.clone())
                };
                return self.run_palette(&line);
            }
            Input::Esc => return Vec::new(),
        }
        self.overlay = Some(Overlay::Palette { input, sel, stem });
        Vec::new()
    }

    /// What a confirmation said yes to.
    fn confirmed(&mut self, then: ConfirmThen) -> Vec<Effect> {
        match then {
            ConfirmThen::RunDrill(file) => {
                let name = self.drills.ready().and_then(|d| {
                    d.iter()
                        .find(|r| r.file == file)
                        .and_then(|r| r.info.as_ref().ok().map(|i| (r.name.clone(), i.clone())))
                });
                let Some((name, info)) = name else {
                    self.say(
                        format!("{} is no longer a valid drill: reload (r)", file.display()),
                        true,
                    );
                    return Vec::new();
                };
                self.live = Some(LiveDrill::new(&name, info));
                self.screen = Screen::Drills;
                self.views = vec![View::Drill { name }, View::Live];
                self.scroll = 0;
                vec![Effect::RunDrill(file)]
            }
            ConfirmThen::AbortDrill => {
                if let Some(l) = self.live.as_mut() {
                    l.aborting = true;
                }
                self.manual = None;
                vec![Effect::AbortDrill]
            }
            ConfirmThen::AbortAndQuit => {
                if !self.live.as_ref().is_some_and(LiveDrill::running) {
                    self.quit = true;
                    return Vec::new();
                }
                if let Some(l) = self.live.as_mut() {
                    l.aborting = true;
                }
                self.manual = None;
                self.quit_after_drill = true;
                vec![Effect::AbortDrill]
            }
        }
    }

    /// Text typed into the view on top (a filter, a search), if it takes it.
    fn view_typed(&mut self, i: Input) -> Option<Vec<Effect>> {
        if self.overlay.is_some() {
            return None;
        }
        match self.views.last_mut() {
            Some(View::Logs(l)) if l.typing => {
                l.typed(i);
                Some(Vec::new())
            }
            Some(View::Contents(c)) if c.typing => {
                let w = c.typed(i, &mut self.asked);
                Some(self.contents_wants(w))
            }
            _ => None,
        }
    }

    fn input(&mut self, i: Input) -> Vec<Effect> {
        if let Some(effects) = self.view_typed(i) {
            return effects;
        }
        if let Some(View::Wizard(w)) = self.views.last_mut()
            && w.step == WizardStep::Confirm
            && self.overlay.is_none()
        {
            match i {
                Input::Char(c) => w.typed.push(c),
                Input::Backspace => {
                    w.typed.pop();
                }
                Input::Esc => {
                    w.step = WizardStep::Plan;
                }
                Input::Enter => {
                    if let Loadable::Ready(p) = &w.plan {
                        if w.typed == p.target {
                            let plan = p.plan.clone();
                            w.step = WizardStep::Running;
                            w.result = Loadable::Loading;
                            return vec![Effect::Restore(plan)];
                        }
                        let want = p.target.clone();
                        w.typed.clear();
                        self.say(format!("not confirmed: type {want} exactly"), true);
                    }
                }
                _ => {}
            }
            return Vec::new();
        }
        let Some(overlay) = self.overlay.take() else {
            return Vec::new();
        };
        match overlay {
            // The list follows each key (as k9s filters); enter keeps the
            // filter, esc drops it.
            Overlay::Filter { mut input } => match i {
                Input::Char(_) | Input::Backspace => {
                    if let Input::Char(c) = i {
                        input.push(c);
                    } else {
                        input.pop();
                    }
                    self.inverse = input.starts_with('!');
                    self.filter = input.trim_start_matches('!').to_string();
                    self.sel[self.screen.index()] = 0;
                    self.overlay = Some(Overlay::Filter { input });
                }
                Input::Enter => {}
                Input::Esc => {
                    self.filter.clear();
                    self.inverse = false;
                }
                _ => self.overlay = Some(Overlay::Filter { input }),
            },
            Overlay::Palette { input, sel, stem } => {
                return self.palette_input((input, sel, stem), i);
            }
            Overlay::Confirm(c) => match i {
                Input::Char('y') | Input::Char('Y') => return self.confirmed(c.then),
                Input::Char('n') | Input::Char('N') | Input::Esc => {
                    if matches!(c.then, ConfirmThen::AbortDrill | ConfirmThen::AbortAndQuit) {
                        return vec![Effect::HoldDrill(false)];
                    }
                }
                _ => self.overlay = Some(Overlay::Confirm(c)),
            },
            Overlay::Manual { step, instruction } => match i {
                Input::Enter => {
                    self.manual = None;
                    return vec![Effect::AnswerManual(true)];
                }
                Input::Char('a') => {
                    // Asks first; "no" brings the prompt back.
                    self.overlay = Some(Overlay::Confirm(Confirm {
                        title: format!("Abort the drill at {step}?"),
                        lines: vec![
                            "The drill stops here; its cleanup still runs.".into(),
                            "y: abort    n / esc: back to the manual step".into(),
                        ],
                        then: ConfirmThen::AbortDrill,
                    }));
                }
                _ => self.overlay = Some(Overlay::Manual { step, instruction }),
            },
            Overlay::Help => {}
        }
        Vec::new()
    }

    /// The palette's commands and what follows them.
    const PALETTE: &'static [&'static str] = &[
        "overview",
        "points",
        "drills",
        "drill",
        "reports",
        "schedules",
        "help",
        "quit",
    ];

    fn palette_command(&self, line: &str) -> Option<&'static str> {
        let word = line.split_whitespace().next()?;
        Self::PALETTE
            .iter()
            .copied()
            .find(|c| *c == word || (word == "q" && *c == "quit"))
    }

    /// Completions of what was typed in the palette.
    pub fn completions(&self, input: &str) -> Vec<String> {
        let mut words = input.split_whitespace();
        let first = words.next().unwrap_or("");
        let second = words.next();
        let after_space = input.ends_with(' ');
        if second.is_none() && !after_space {
            return Self::PALETTE
                .iter()
                .filter(|c| c.starts_with(first))
                .map(|c| c.to_string())
                .collect();
        }
        let partial = second.unwrap_or("");
        let args: Vec<String> = match first {
            "points" => self.regions.iter().map(|r| r.region.clone()).collect(),
            "drill" | "reports" => self
                .drills
                .ready()
                .map(|d| d.iter().map(|r| r.name.clone()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        args.into_iter()
            .filter(|a| a.starts_with(partial))
            .map(|a| format!("{first} {a}"))
            .collect()
    }

    fn run_palette(&mut self, line: &str) -> Vec<Effect> {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let arg = words.next();
        match (cmd, arg) {
            ("overview", _) => self.go(Screen::Overview),
            ("points", region) => {
                self.go(Screen::Points);
                if let Some(r) = region {
                    match self.regions.iter().position(|x| x.region == r) {
                        Some(i) => self.region = i,
                        None => {
                            let known: Vec<&str> =
                                self.regions.iter().map(|x| x.region.as_str()).collect();
                            self.say(
                                format!("no region {r}: the config has {}", known.join(", ")),
                                true,
                            )
                        }
                    }
                }
            }
            ("drills", _) => self.go(Screen::Drills),
            ("drill", Some(name)) => {
                let known = self
                    .drills
                    .ready()
                    .is_some_and(|d| d.iter().any(|r| r.name == name));
                if known {
                    self.go(Screen::Drills);
                    if let Some(i) = self.drill_rows().iter().position(|d| d.name == name) {
                        self.sel[Screen::Drills.index()] = i;
                    }
                    self.views.push(View::Drill {
                        name: name.to_string(),
                    });
                } else {
                    self.say(format!("no drill {name} (:drills lists them)"), true);
                }
            }
            ("drill", None) => self.say("drill NAME: which drill? (tab completes)", true),
            ("reports", drill) => {
                self.go(Screen::Reports);
                if let Some(d) = drill {
                    self.filter = d.to_string();
                }
            }
            ("schedules", _) => self.go(Screen::Schedules),
            ("help", _) => self.overlay = Some(Overlay::Help),
            ("quit" | "q", _) => return self.command(Command::Quit),
            ("", _) => {}
            (other, _) => self.say(
                format!("unknown command {other:?}: {}", Self::PALETTE.join(", ")),
                true,
            ),
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests;
