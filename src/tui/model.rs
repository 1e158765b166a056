//! What the dashboard shows, as plain data: rows built from engine, drill,
//! report and schedule types by pure functions, so screens draw from state
//! only and tests build state without any service.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::archive::Manifest;
use crate::catalog::CheckResult;
use crate::drill::measure::DrillVerdict;
use crate::drill::spec::{Action as StepAction, Drill, PointPick, Step};
use crate::engine::stream::{RegionStream, StreamStatus};
use crate::error::{Error, ErrorClass};
use crate::report::RunEntry;
use crate::schedule::Schedule;
use crate::schedule::run::ScheduleState;

/// Something loaded in the background.
#[derive(Debug, Clone, PartialEq)]
pub enum Loadable<T> {
    Loading,
    Ready(T),
    Failed(String),
}

impl<T> Loadable<T> {
    pub fn ready(&self) -> Option<&T> {
        match self {
            Loadable::Ready(t) => Some(t),
            _ => None,
        }
    }
}

/// A configured target, as the overview lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    pub name: String,
    pub kind: String,
    pub home: String,
    pub copy_to: Vec<String>,
    /// Its kind's on/off restore options (`from-dump`), as the wizard offers them.
    pub switches: Vec<String>,
    /// Whether a continuous stream follows it (`continuous` in its config).
    pub streams: bool,
}

/// One recovery point in one region.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRow {
    pub region: String,
    pub manifest: Arc<Manifest>,
    /// Its payload and consistency as its kind describes them.
    pub payload_text: String,
    pub consistency_text: String,
    /// What its kind keeps outside the bucket, as (label, value) lines.
    pub external: Vec<(String, String)>,
    pub restore_test: Option<CheckResult>,
    /// Its last verify in this region.
    pub verified: Option<CheckResult>,
}

impl PointRow {
    pub fn target(&self) -> &str {
        &self.manifest.target
    }
    pub fn id(&self) -> &str {
        &self.manifest.point_id
    }
    pub fn payload(&self) -> String {
        self.manifest.payload.to_string()
    }
    /// The text a filter matches against.
    pub fn haystack(&self) -> String {
        format!(
            "{} {} {} {}",
            self.manifest.target,
            self.manifest.point_id,
            self.payload(),
            self.region
        )
    }
}

/// A region's points, or why they are not there.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionPoints {
    pub region: String,
    pub points: Loadable<Vec<PointRow>>,
}

/// One step of a drill, flattened (parallel groups indented).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepLine {
    pub name: String,
    pub kind: String,
    pub depth: usize,
    pub summary: String,
    /// The target and region of a step restoring the newest point (its
    /// dry run names that point).
    pub restores: Option<(String, String)>,
}

/// A failure as the dashboard shows it: its class and its words, rendered
/// once where the error was caught (the dashboard is an edge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: ErrorClass,
    pub message: String,
}

impl Failure {
    pub fn new(class: ErrorClass, message: impl std::fmt::Display) -> Failure {
        Failure {
            class,
            message: message.to_string(),
        }
    }

    /// A failure of no more particular class.
    pub fn failed(message: impl std::fmt::Display) -> Failure {
        Failure::new(ErrorClass::Failed, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(e.class(), e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Tests write failures as their words.
#[cfg(test)]
impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::failed(message)
    }
}

/// A drill file: what it is, or why it is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillRow {
    pub file: PathBuf,
    pub name: String,
    pub info: Result<DrillInfo, Failure>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillInfo {
    pub hypothesis: String,
    pub rto_ms: u64,
    pub rpo_ms: u64,
    pub targets: Vec<String>,
    pub regions: Vec<String>,
    pub probes: Vec<(String, String)>,
    pub steps: Vec<StepLine>,
}

fn flatten(d: &Drill, steps: &[Step], depth: usize, out: &mut Vec<StepLine>) {
    for s in steps {
        out.push(StepLine {
            name: s.name.clone(),
            kind: s.action.kind().to_string(),
            depth,
            summary: s.summary(d, None),
            // Only a step restoring the newest point: the listing tells which.
            restores: match &s.action {
                StepAction::Restore(r) if matches!(r.point, PointPick::Latest) => {
                    Some((r.target.clone(), r.region.clone()))
                }
                _ => None,
            },
        });
        if let StepAction::Parallel { steps } = &s.action {
            flatten(d, steps, depth + 1, out);
        }
    }
}

impl DrillInfo {
    pub fn of(d: &Drill) -> DrillInfo {
        let mut steps = Vec::new();
        flatten(d, &d.steps, 0, &mut steps);
        DrillInfo {
            hypothesis: d.hypothesis.clone(),
            rto_ms: d.rto.as_millis() as u64,
            rpo_ms: d.rpo.as_millis() as u64,
            targets: d.targets.clone(),
            regions: d.regions.clone(),
            probes: d
                .probes
                .iter()
                .map(|p| (p.name.clone(), p.phase.name().to_string()))
                .collect(),
            steps,
        }
    }
}

/// A schedule with its next runs and what it last did.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub targets: Vec<String>,
    pub paused: bool,
    pub retention: String,
    /// Local times, formatted in the schedule's zone.
    pub next_runs: Vec<String>,
    pub next_at: Option<DateTime<Utc>>,
    pub interval_secs: Option<u64>,
    pub restore_test_every: Option<u64>,
    pub state: Option<ScheduleState>,
}

impl ScheduleRow {
    pub fn of(s: &Schedule, state: Option<ScheduleState>, now: DateTime<Utc>) -> ScheduleRow {
        let next = s.cron.next_runs(now, s.timezone, 3);
        ScheduleRow {
            name: s.name.clone(),
            cron: s.cron.line.clone(),
            timezone: s.timezone.name().to_string(),
            targets: s.targets.clone(),
            paused: s.paused,
            retention: s.retention.describe(),
            next_runs: next
                .iter()
                .map(|t| t.format("%a %m-%d %H:%M %Z").to_string())
                .collect(),
            next_at: next.first().map(|t| t.with_timezone(&Utc)),
            interval_secs: s.cron.interval(now, s.timezone).map(|d| d.as_secs()),
            restore_test_every: s.restore_test_every.map(|d| d.as_secs()),
            state,
        }
    }
}

/// How a target stands against its RPO objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Newest point well inside the objective.
    Good,
    /// Past three quarters of it.
    Warn,
    /// Older than the objective, or no point at all.
    Breach,
    /// No objective to judge against.
    Unknown,
}

/// Where a region stands for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    Points(usize),
    Loading,
    Unreachable,
}

/// One row of the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct OverviewRow {
    pub target: String,
    pub kind: String,
    /// The newest point anywhere: its id and age.
    pub newest: Option<(String, chrono::Duration)>,
    pub objective_ms: Option<u64>,
    /// Where the objective comes from ("drill X", "schedule Y").
    pub objective_from: Option<String>,
    pub health: Health,
    pub regions: Vec<(String, Holding)>,
    pub last_verified: Option<DateTime<Utc>>,
    pub last_restore_test: Option<(DateTime<Utc>, bool)>,
    pub next_run: Option<(String, DateTime<Utc>)>,
    pub last_drill: Option<(String, DrillVerdict, Option<u64>, Option<u64>)>,
    /// How old the newest change the best region's stream holds is (what
    /// a loss of the source loses), when a stream follows it.
    pub stream_lag: Option<chrono::Duration>,
}

/// Everything the overview is computed from.
pub struct OverviewInput<'a> {
    pub now: DateTime<Utc>,
    pub targets: &'a [TargetInfo],
    pub regions: &'a [RegionPoints],
    pub drills: Option<&'a [DrillRow]>,
    pub reports: Option<&'a [RunEntry]>,
    pub schedules: Option<&'a [ScheduleRow]>,
    pub streams: Option<&'a [StreamStatus]>,
}

/// How far behind its source a region's stream copy is: the measured lag,
/// or, when the source cannot say (it is down), the age of the newest
/// segment stored there. None when the region holds none.
pub fn stream_lag(r: &RegionStream, now: DateTime<Utc>) -> Option<chrono::Duration> {
    if r.reaches.is_none() || r.error.is_some() {
        return None;
    }
    match r.lag_seconds.filter(|s| s.is_finite()) {
        Some(s) => Some(chrono::Duration::milliseconds((s * 1000.0) as i64)),
        None => r.newest_at.map(|at| now - at),
    }
}

/// A target's RPO objective: the tightest of the drills that name it, else
/// twice the shortest interval of the schedules that back it up.
fn objective(input: &OverviewInput, target: &str) -> Option<(u64, String)> {
    let from_drills = input
        .drills
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d.info.as_ref().ok().map(|i| (d, i)))
        .filter(|(_, i)| i.targets.iter().any(|t| t == target))
        .map(|(d, i)| (i.rpo_ms, format!("drill {}", d.name)))
        .min_by_key(|(ms, _)| *ms);
    from_drills.or_else(|| {
        input
            .schedules
            .unwrap_or_default()
            .iter()
            .filter(|s| s.targets.iter().any(|t| t == target))
            .filter_map(|s| {
                s.interval_secs
                    .map(|i| (i * 2000, format!("2x schedule {}", s.name)))
            })
            .min_by_key(|(ms, _)| *ms)
    })
}

pub fn health(age_ms: Option<i64>, objective_ms: Option<u64>) -> Health {
    match (age_ms, objective_ms) {
        (_, None) => Health::Unknown,
        (None, Some(_)) => Health::Breach,
        (Some(age), Some(obj)) if age > obj as i64 => Health::Breach,
        (Some(age), Some(obj)) if age * 4 > obj as i64 * 3 => Health::Warn,
        _ => Health::Good,
    }
}

/// The lag of the best region of the stream that follows a target.
fn stream_lag_of(input: &OverviewInput, target: &str) -> Option<chrono::Duration> {
    input
        .streams
        .unwrap_or_default()
        .iter()
        .filter(|s| s.target == target)
        .flat_map(|s| &s.regions)
        .filter_map(|r| stream_lag(r, input.now))
        .min()
}

/// The newest run of a drill that names the target: drill, verdict, RTO, RPO.
fn last_drill_of(
    input: &OverviewInput,
    target: &str,
) -> Option<(String, DrillVerdict, Option<u64>, Option<u64>)> {
    let drills: Vec<&str> = input
        .drills
        .unwrap_or_default()
        .iter()
        .filter(|d| {
            d.info
                .as_ref()
                .is_ok_and(|i| i.targets.iter().any(|x| x == target))
        })
        .map(|d| d.name.as_str())
        .collect();
    input
        .reports
        .unwrap_or_default()
        .iter()
        .filter(|r| drills.contains(&r.drill.as_str()))
        .max_by_key(|r| r.started_at)
        .map(|r| (r.drill.clone(), r.verdict, r.rto_ms, r.rpo_ms))
}

pub fn overview(input: &OverviewInput) -> Vec<OverviewRow> {
    input
        .targets
        .iter()
        .map(|t| {
            let mut newest: Option<&PointRow> = None;
            let mut regions = Vec::new();
            let mut tested: Option<(DateTime<Utc>, bool)> = None;
            let mut verified: Option<DateTime<Utc>> = None;
            for r in input.regions {
                let holding = match &r.points {
                    Loadable::Loading => Holding::Loading,
                    Loadable::Failed(_) => Holding::Unreachable,
                    Loadable::Ready(points) => {
                        let mine: Vec<&PointRow> =
                            points.iter().filter(|p| p.target() == t.name).collect();
                        for p in &mine {
                            if newest.is_none_or(|n| n.manifest.started_at < p.manifest.started_at)
                            {
                                newest = Some(p);
                            }
                            if let Some(rt) = &p.restore_test
                                && tested.is_none_or(|(at, _)| at < rt.at)
                            {
                                tested = Some((rt.at, rt.ok));
                            }
                            if let Some(v) = p.verified.as_ref().filter(|v| v.ok) {
                                verified = verified.max(Some(v.at));
                            }
                        }
                        Holding::Points(mine.len())
                    }
                };
                regions.push((r.region.clone(), holding));
            }
            let newest = newest.map(|p| (p.id().to_string(), input.now - p.manifest.finished_at));
            let obj = objective(input, &t.name);
            let schedules: Vec<&ScheduleRow> = input
                .schedules
                .unwrap_or_default()
                .iter()
                .filter(|s| s.targets.iter().any(|x| x == &t.name))
                .collect();
            let next_run = schedules
                .iter()
                .filter(|s| !s.paused)
                .filter_map(|s| s.next_at.map(|at| (s.name.clone(), at)))
                .min_by_key(|(_, at)| *at);
            // A schedule's hash verify, or any verify of one of its points
            // (from the CLI or here) that passed.
            let last_verified = schedules
                .iter()
                .filter_map(|s| s.state.as_ref().and_then(|st| st.last_hash_verify))
                .chain(verified)
                .max();
            let last_drill = last_drill_of(input, &t.name);
            let any_loading = regions.iter().any(|(_, h)| *h == Holding::Loading);
            let stream_lag = stream_lag_of(input, &t.name);
            // What a loss of the source loses: the newest point's age, or
            // less when a stream holds changes after it.
            let age_ms = newest
                .as_ref()
                .map(|(_, age)| age.num_milliseconds())
                .into_iter()
                .chain(stream_lag.map(|l| l.num_milliseconds()))
                .min();
            OverviewRow {
                target: t.name.clone(),
                kind: t.kind.clone(),
                health: if newest.is_none() && any_loading {
                    Health::Unknown
                } else {
                    health(age_ms, obj.as_ref().map(|(ms, _)| *ms))
                },
                newest,
                objective_ms: obj.as_ref().map(|(ms, _)| *ms),
                objective_from: obj.map(|(_, from)| from),
                regions,
                last_verified,
                last_restore_test: tested,
                next_run,
                last_drill,
                stream_lag,
            }
        })
        .collect()
}

/// A duration as people say it: 45s, 12m, 3h 5m, 2d 4h.
pub fn age(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A stream's lag: tenths of a second under a minute, else as [`age`].
pub fn lag(d: chrono::Duration) -> String {
    match d.num_milliseconds().max(0) {
        ms @ 0..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => age(d),
    }
}

/// Bytes as people read them.
pub use crate::report::human_bytes as size;

/// The points of every region, newest first, with the filter applied.
pub fn filtered<'a>(points: &'a [PointRow], filter: &str, inverse: bool) -> Vec<&'a PointRow> {
    let needle = filter.to_lowercase();
    let mut out: Vec<&PointRow> = points
        .iter()
        .filter(|p| needle.is_empty() || p.haystack().to_lowercase().contains(&needle) != inverse)
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.manifest.started_at));
    out
}

/// Runs of one drill, oldest first (for its sparkline).
pub fn history<'a>(reports: &'a [RunEntry], drill: &str) -> Vec<&'a RunEntry> {
    let mut runs: Vec<&RunEntry> = reports.iter().filter(|r| r.drill == drill).collect();
    runs.sort_by_key(|r| r.started_at);
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_against_the_objective() {
        let hour = 3_600_000;
        assert_eq!(health(Some(10 * 60_000), Some(hour)), Health::Good);
        assert_eq!(health(Some(50 * 60_000), Some(hour)), Health::Warn);
        assert_eq!(health(Some(61 * 60_000), Some(hour)), Health::Breach);
        assert_eq!(health(None, Some(hour)), Health::Breach, "no point at all");
        assert_eq!(health(Some(1), None), Health::Unknown);
    }

    #[test]
    fn ages_and_sizes_read_well() {
        assert_eq!(age(chrono::Duration::seconds(42)), "42s");
        assert_eq!(age(chrono::Duration::seconds(3 * 3600 + 5 * 60)), "3h 5m");
        assert_eq!(
            age(chrono::Duration::seconds(2 * 86_400 + 4 * 3600)),
            "2d 4h"
        );
        assert_eq!(lag(chrono::Duration::milliseconds(1_449)), "1.4s");
        assert_eq!(lag(chrono::Duration::seconds(125)), "2m");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }
}
