//! The scheduler daemon (`drtool schedule run`): computes each schedule's
//! next run, runs what is due (each run on its own child engine, so a timeout
//! stops one run only), never starts a schedule while its previous run goes
//! on, applies the missed-run policy at start, reloads the schedules on
//! request and, when stopped, lets running work abort or finish cleanly
//! before it returns. It logs through `tracing` and never prints.
//!
//! Deciding when to run is pure ([`first_slot`], [`next_slot`],
//! [`too_late`]); the loop only sleeps, spawns and collects.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::notify;
use super::run::{ScheduleRun, ScheduleState, home_region, run_once};
use super::spec::{Missed, Schedule};
use crate::engine::{Engine, Outcome};
use crate::error::Error;

/// One planned run of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The time the cron line names.
    pub at: DateTime<Utc>,
    /// When to start it (`at` plus jitter; now for a catch-up).
    pub start: DateTime<Utc>,
    /// A run missed while the daemon was down, made up for now.
    pub catch_up: bool,
}

/// A schedule's jitter, scaled by `frac` in [0, 1).
fn jitter(s: &Schedule, frac: f64) -> chrono::Duration {
    let ms = (s.jitter.as_millis() as f64 * frac.clamp(0.0, 1.0)) as i64;
    chrono::Duration::milliseconds(ms)
}

/// The first run after `after`.
pub fn next_slot(s: &Schedule, after: DateTime<Utc>, frac: f64) -> Option<Slot> {
    let at = s
        .cron
        .next_runs(after, s.timezone, 1)
        .first()?
        .with_timezone(&Utc);
    Some(Slot {
        at,
        start: at + jitter(s, frac),
        catch_up: false,
    })
}

/// What the daemon does with a schedule when it starts, given when the
/// schedule last ran: a missed run is made up for now (`missed =
/// "run_once"`, however many were missed) or skipped; a paused schedule has
/// no slot. The note says what was decided, for the log.
pub fn first_slot(
    s: &Schedule,
    last_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    frac: f64,
) -> (Option<Slot>, Option<String>) {
    if s.paused {
        return (
            None,
            Some("paused: it does not run until `paused` is removed".into()),
        );
    }
    let missed = match (last_run, s.cron.previous_run(now, s.timezone)) {
        (Some(last), Some(prev)) if prev.with_timezone(&Utc) > last => {
            Some(prev.with_timezone(&Utc))
        }
        _ => None,
    };
    match (missed, s.missed) {
        (Some(at), Missed::RunOnce) => (
            Some(Slot {
                at,
                start: now,
                catch_up: true,
            }),
            Some(format!(
                "missed its run at {} (last ran {}): running once now (missed = \"run_once\")",
                at.format("%Y-%m-%d %H:%M UTC"),
                last_run.map_or_else(String::new, |l| l.format("%Y-%m-%d %H:%M UTC").to_string())
            )),
        ),
        (Some(at), Missed::Skip) => (
            next_slot(s, now, frac),
            Some(format!(
                "missed its run at {} while drtool was down: skipped (missed = \"skip\"), waiting for the next",
                at.format("%Y-%m-%d %H:%M UTC")
            )),
        ),
        (None, _) => (next_slot(s, now, frac), None),
    }
}

/// Whether a slot can no longer start: more than `start_window` past its
/// time. A catch-up is never too late (it exists because time passed).
pub fn too_late(s: &Schedule, slot: &Slot, now: DateTime<Utc>) -> bool {
    let window = chrono::Duration::from_std(s.start_window).unwrap_or(chrono::Duration::MAX);
    !slot.catch_up && now - slot.at > window
}

/// For `--once`: run every schedule whose last scheduled time is after its
/// last run (or that never ran); paused ones never.
pub fn due_once(s: &Schedule, last_run: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    if s.paused {
        return false;
    }
    match (last_run, s.cron.previous_run(now, s.timezone)) {
        (None, _) => true,
        (Some(last), Some(prev)) => prev.with_timezone(&Utc) > last,
        (Some(_), None) => false,
    }
}

/// How the daemon runs.
pub struct DaemonOptions {
    /// Run what is due now, then return.
    pub once: bool,
    pub metrics: Option<Arc<Metrics>>,
}

/// Why the daemon should look at its schedules again.
pub enum Control {
    /// Schedules reloaded (SIGHUP): the new set.
    Reload(Vec<Schedule>),
}

struct Finished {
    name: String,
    result: Result<ScheduleRun, Error>,
}

/// Runs until `stop` is cancelled (or, with `once`, until what was due ran).
/// Returns the number of runs that failed.
pub async fn run(
    engine: Arc<Engine>,
    mut schedules: Vec<Schedule>,
    mut control: mpsc::Receiver<Control>,
    stop: CancellationToken,
    options: DaemonOptions,
) -> u64 {
    let mut slots = first_slots(&engine, &schedules, &options).await;
    tracing::info!(
        schedules = schedules.len(),
        once = options.once,
        "scheduler started with {} schedules",
        schedules.len()
    );
    let mut running: JoinSet<Finished> = JoinSet::new();
    let mut busy: BTreeSet<String> = BTreeSet::new();
    let mut failures = 0u64;
    let mut closed = false;
    loop {
        let now = Utc::now();
        if !stop.is_cancelled() {
            for s in &schedules {
                let Some(slot) = slots.get(&s.name).copied() else {
                    continue;
                };
                if slot.start > now || busy.contains(&s.name) {
                    continue;
                }
                if options.once {
                    slots.remove(&s.name);
                } else if let Some(next) = next_slot(s, slot.at.max(now), rand::random()) {
                    announce(s, &next, options.metrics.as_deref());
                    slots.insert(s.name.clone(), next);
                } else {
                    slots.remove(&s.name);
                }
                if too_late(s, &slot, now) {
                    failures += 1;
                    tracing::error!(
                        schedule = %s.name,
                        scheduled_for = %slot.at,
                        "gave up on the run at {}: it could not start within start_window {}",
                        slot.at.format("%H:%M UTC"),
                        humantime::format_duration(s.start_window)
                    );
                    if let Some(m) = &options.metrics {
                        m.record_failure(s);
                    }
                    continue;
                }
                busy.insert(s.name.clone());
                let engine = engine.clone();
                let schedule = s.clone();
                tracing::info!(schedule = %s.name, scheduled_for = %slot.at, catch_up = slot.catch_up, "slot due: taking the schedule's lock");
                running.spawn(async move {
                    let result = run_once(&engine, &schedule, Some(slot.at)).await;
                    Finished {
                        name: schedule.name.clone(),
                        result,
                    }
                });
            }
        }
        if running.is_empty() && (stop.is_cancelled() || (options.once && slots.is_empty())) {
            break;
        }
        let sleep = until_next(&slots, &busy);
        tokio::select! {
            done = running.join_next(), if !running.is_empty() => {
                if let Some(Ok(f)) = done {
                    busy.remove(&f.name);
                    let s = schedules.iter().find(|s| s.name == f.name).cloned();
                    if !finished(s.as_ref(), &f, options.metrics.as_deref()).await {
                        failures += 1;
                    }
                }
            }
            c = control.recv(), if !stop.is_cancelled() && !closed => {
                match c {
                    Some(Control::Reload(new)) => {
                        reload(&mut slots, &schedules, &new, options.metrics.as_deref());
                        schedules = new;
                    }
                    // No one can reload any more; keep running.
                    None => closed = true,
                }
            }
            _ = stop.cancelled(), if !stop.is_cancelled() => {
                tracing::info!(running = running.len(), "stopping: running work is aborted or finished, nothing half-done is kept");
            }
            _ = tokio::time::sleep(sleep) => {}
        }
    }
    tracing::info!("scheduler stopped");
    failures
}

/// Each schedule's first slot (with `once`, now for those due, none for
/// the others).
async fn first_slots(
    engine: &Engine,
    schedules: &[Schedule],
    options: &DaemonOptions,
) -> BTreeMap<String, Slot> {
    let now = Utc::now();
    let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
    for s in schedules {
        let last = last_run(engine, s).await;
        if options.once {
            if due_once(s, last, now) {
                slots.insert(
                    s.name.clone(),
                    Slot {
                        at: now,
                        start: now,
                        catch_up: true,
                    },
                );
            } else {
                tracing::info!(schedule = %s.name, "not due: its last scheduled run already ran");
            }
            continue;
        }
        let (slot, note) = first_slot(s, last, now, rand::random());
        if let Some(n) = note {
            tracing::info!(schedule = %s.name, "{n}");
        }
        if let Some(slot) = slot {
            announce(s, &slot, options.metrics.as_deref());
            slots.insert(s.name.clone(), slot);
        }
    }
    slots
}

/// How long to sleep until the next slot of a schedule not running.
fn until_next(slots: &BTreeMap<String, Slot>, busy: &BTreeSet<String>) -> Duration {
    let wake = slots
        .iter()
        .filter(|(n, _)| !busy.contains(*n))
        .map(|(_, s)| s.start)
        .min();
    wake.map_or(Duration::from_secs(3600), |w| {
        (w - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(50))
    })
}

async fn last_run(engine: &Engine, s: &Schedule) -> Option<DateTime<Utc>> {
    let region = home_region(engine, s).ok()?;
    match engine
        .schedule_state::<ScheduleState>(&region, &s.name)
        .await
    {
        Ok(state) => state.and_then(|st| st.last_run),
        Err(e) => {
            tracing::warn!(schedule = %s.name, "cannot read when it last ran ({e}): no missed run is made up");
            None
        }
    }
}

fn announce(s: &Schedule, slot: &Slot, metrics: Option<&Metrics>) {
    tracing::info!(
        schedule = %s.name,
        next_run = %slot.at.with_timezone(&s.timezone).format("%Y-%m-%d %H:%M %Z"),
        start = %slot.start,
        "next run"
    );
    if let Some(m) = metrics {
        m.describe_schedule(s, Some(slot.start));
    }
}

/// New schedules keep nothing of the old slots: each waits for its next
/// time (a reload never makes a schedule run at once).
fn reload(
    slots: &mut BTreeMap<String, Slot>,
    old: &[Schedule],
    new: &[Schedule],
    metrics: Option<&Metrics>,
) {
    let now = Utc::now();
    slots.clear();
    for s in new {
        if s.paused {
            tracing::info!(schedule = %s.name, "paused");
            if let Some(m) = metrics {
                m.describe_schedule(s, None);
            }
            continue;
        }
        if let Some(slot) = next_slot(s, now, rand::random()) {
            announce(s, &slot, metrics);
            slots.insert(s.name.clone(), slot);
        }
    }
    let gone: Vec<&str> = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.name == o.name))
        .map(|o| o.name.as_str())
        .collect();
    if let Some(m) = metrics {
        m.keep_only(&new.iter().map(|s| s.name.clone()).collect::<Vec<_>>());
    }
    tracing::info!(schedules = new.len(), removed = ?gone, "schedules reloaded");
}

/// Tells the schedule's webhook about a run (or a run that could not
/// happen), when there is something to tell; logs what became of it.
pub async fn tell(s: &Schedule, result: &Result<ScheduleRun, Error>) {
    let Some(n) = &s.notify else { return };
    let (run, error) = match result {
        Ok(run) if run.skipped.is_some() => return,
        Ok(run) => (run.clone(), None),
        Err(e) => (
            ScheduleRun {
                schedule: s.name.clone(),
                started_at: Utc::now(),
                duration_ms: 0,
                verdict: crate::engine::Verdict::Failed(e.class()),
                report: Default::default(),
                pruned: 0,
                kept: Vec::new(),
                skipped: None,
                previous: ScheduleState::default(),
            },
            Some(e.to_string()),
        ),
    };
    match notify::notify(n, &run, error.as_deref()).await {
        Ok(Some(t)) => tracing::info!(schedule = %s.name, "webhook told: {t:?}"),
        Ok(None) => {}
        Err(why) => tracing::warn!(schedule = %s.name, "webhook not delivered: {why}"),
    }
}

/// Logs, counts and tells about a finished run; whether it went well.
async fn finished(s: Option<&Schedule>, f: &Finished, metrics: Option<&Metrics>) -> bool {
    if let Some(s) = s {
        tell(s, &f.result).await;
    }
    let run = match &f.result {
        Ok(run) => run,
        Err(e) if e.class() == crate::error::ErrorClass::Cancelled => {
            tracing::info!(schedule = %f.name, "run cancelled: {e}");
            return true;
        }
        Err(e) => {
            tracing::error!(schedule = %f.name, class = ?e.class(), "run failed: {e}");
            if let (Some(s), Some(m)) = (s, metrics) {
                m.record_failure(s);
            }
            return false;
        }
    };
    if let Some(why) = &run.skipped {
        tracing::info!(schedule = %run.schedule, "not run here: {why}");
        return true;
    }
    for i in &run.report.items {
        let point = i.point.as_deref().unwrap_or("-");
        match i.outcome {
            Outcome::Ok | Outcome::Skipped | Outcome::Planned => tracing::info!(
                schedule = %run.schedule, operation = %i.operation, target = %i.target,
                region = %i.region, point, duration_ms = i.duration_ms, "{}", i.message
            ),
            Outcome::Warning => tracing::warn!(
                schedule = %run.schedule, operation = %i.operation, target = %i.target,
                region = %i.region, point, "{}", i.message
            ),
            Outcome::Failed | Outcome::Cancelled => tracing::error!(
                schedule = %run.schedule, operation = %i.operation, target = %i.target,
                region = %i.region, point, class = ?i.error_class, "{}", i.message
            ),
        }
    }
    // A run stopped by SIGTERM is not a failure of the schedule.
    let ok = matches!(
        run.verdict,
        crate::engine::Verdict::Ok
            | crate::engine::Verdict::Cancelled
            | crate::engine::Verdict::Failed(crate::error::ErrorClass::Cancelled)
    );
    // Plain words and numbers, so JSON log lines hold no text to parse again.
    use crate::engine::Verdict;
    let (verdict, class) = match run.verdict {
        Verdict::Ok => ("ok", None),
        Verdict::Partial => ("partial", None),
        Verdict::Cancelled => ("cancelled", None),
        Verdict::Failed(c) => ("failed", Some(c)),
    };
    let points: Vec<String> = run
        .new_points()
        .iter()
        .map(|(target, point)| format!("{target}={point}"))
        .collect();
    tracing::info!(
        schedule = %run.schedule,
        verdict,
        error_class = class.map(crate::error::ErrorClass::name),
        duration_ms = run.duration_ms,
        points = %points.join(" "),
        pruned = run.pruned,
        "run finished"
    );
    if let Some(m) = metrics {
        m.record_run(run);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn schedule(extra: &str) -> Schedule {
        let config = crate::source::parse_config(
            "[regions.r]\nstore = \"file:///tmp/x\"\n[targets.kv]\nkind = \"etcd\"\nmode = \"keys\"\nhome = \"r\"\n[targets.kv.regions.r]\nendpoints = [\"http://127.0.0.1:1\"]\n",
            Path::new("drtool.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let text = format!(
            "name = \"h\"\ncron = \"0 * * * *\"\ntargets = [\"kv\"]\njitter = \"10m\"\nstart_window = \"30m\"\n{extra}\n[retention]\nkeep_last = 3\n"
        );
        super::super::spec::parse(&text, Path::new("h.toml"), &config)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn missed_runs_are_made_up_once_or_skipped() {
        let now = t("2026-12-01T10:20:00Z");
        let s = schedule("");
        // Ran at 07:00, down since: the 10:00 run is made up now.
        let (slot, note) = first_slot(&s, Some(t("2026-12-01T07:00:05Z")), now, 0.5);
        assert_eq!(
            slot,
            Some(Slot {
                at: t("2026-12-01T10:00:00Z"),
                start: now,
                catch_up: true
            })
        );
        assert!(note.is_some_and(|n| n.contains("running once now")));
        // Nothing missed: the next hour, with half the jitter.
        let (slot, note) = first_slot(&s, Some(t("2026-12-01T10:00:04Z")), now, 0.5);
        assert_eq!(
            slot,
            Some(Slot {
                at: t("2026-12-01T11:00:00Z"),
                start: t("2026-12-01T11:05:00Z"),
                catch_up: false
            })
        );
        assert_eq!(note, None);
        // Never ran: no catch-up.
        assert!(
            first_slot(&s, None, now, 0.0)
                .0
                .is_some_and(|s| !s.catch_up)
        );
        let skip = schedule("missed = \"skip\"");
        let (slot, note) = first_slot(&skip, Some(t("2026-12-01T07:00:05Z")), now, 0.0);
        assert_eq!(slot.map(|s| s.at), Some(t("2026-12-01T11:00:00Z")));
        assert!(note.is_some_and(|n| n.contains("skipped")));
        assert_eq!(
            first_slot(&schedule("paused = true"), None, now, 0.0).0,
            None
        );
    }

    #[test]
    fn start_window_and_once() {
        let s = schedule("");
        let slot = Slot {
            at: t("2026-12-01T10:00:00Z"),
            start: t("2026-12-01T10:00:00Z"),
            catch_up: false,
        };
        assert!(!too_late(&s, &slot, t("2026-12-01T10:29:00Z")));
        assert!(too_late(&s, &slot, t("2026-12-01T10:31:00Z")));
        assert!(!too_late(
            &s,
            &Slot {
                catch_up: true,
                ..slot
            },
            t("2026-12-01T18:00:00Z")
        ));
        let now = t("2026-12-01T10:20:00Z");
        assert!(due_once(&s, None, now));
        assert!(due_once(&s, Some(t("2026-12-01T09:00:02Z")), now));
        assert!(!due_once(&s, Some(t("2026-12-01T10:00:02Z")), now));
        assert!(!due_once(&schedule("paused = true"), None, now));
    }
}
