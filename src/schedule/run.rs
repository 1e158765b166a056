//! One run of a schedule: take its lock, back up its targets (copying where
//! it says), apply its retention, check the newest points when their cadence
//! is due, remember how it went, release the lock. The daemon and `drtool
//! backup --schedule NAME` both run schedules this way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::spec::Schedule;
use crate::engine::lock::{Locked, owner_id};
use crate::engine::prune::PruneRequest;
use crate::engine::{BackupRequest, Engine, Outcome, RunReport, Scope, Verdict, VerifyRequest};
use crate::error::Error;

/// What a schedule remembers between runs (in its home region's store).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    pub last_run: Option<DateTime<Utc>>,
    pub last_outcome: Option<Verdict>,
    pub last_success: Option<DateTime<Utc>>,
    /// The last run that did not succeed (shared: every daemon's metrics
    /// read it from the bucket).
    #[serde(default)]
    pub last_failure: Option<DateTime<Utc>>,
    pub last_hash_verify: Option<DateTime<Utc>>,
    pub last_restore_test: Option<DateTime<Utc>>,
    pub last_duration_ms: Option<u64>,
}

/// What one run did.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleRun {
    pub schedule: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub verdict: Verdict,
    /// The backup, copies, prune deletions, verifications and restore tests.
    pub report: RunReport,
    pub pruned: u64,
    /// Points kept per target and region after the run's prune.
    pub kept: Vec<KeptPoints>,
    /// Not run: the lock was someone else's (who, until when).
    pub skipped: Option<String>,
    /// The state before this run (to tell a recovery from a failure).
    #[serde(skip)]
    pub previous: ScheduleState,
}

impl ScheduleRun {
    /// The points this run made, by target.
    pub fn new_points(&self) -> BTreeMap<String, String> {
        new_points(&self.report).into_iter().collect()
    }
}

/// Where a schedule keeps its lock and state: its first target's home region.
pub fn home_region(engine: &Engine, schedule: &Schedule) -> Result<String, Error> {
    let first = schedule
        .targets
        .first()
        .ok_or_else(|| Error::input(format!("schedule {} has no targets", schedule.name)))?;
    Ok(engine.target(first)?.home.clone())
}

fn due(last: Option<DateTime<Utc>>, every: Option<Duration>, now: DateTime<Utc>) -> bool {
    match (every, last) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(every), Some(last)) => {
            now - last >= chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX)
        }
    }
}

/// Runs `schedule` once (its points are pruned by the retention each was
/// made under, whatever other schedules say). With `slot`, the run is for that
/// scheduled time: when another scheduler (a second daemon, a CronJob in
/// another cluster) already ran it, this one is skipped.
pub async fn run_once(
    engine: &Engine,
    schedule: &Schedule,
    slot: Option<DateTime<Utc>>,
) -> Result<ScheduleRun, Error> {
    // Its own cancellation: a timeout stops this run only.
    let engine = &engine.child();
    let started_at = Utc::now();
    let started = Instant::now();
    let region = home_region(engine, schedule)?;
    let owner = owner_id();
    let lock_name = format!("schedule.{}", schedule.name);
    // The lock outlives the run's timeout a little, so a hung run cannot be doubled.
    let ttl = schedule.timeout + Duration::from_secs(600);
    let guard = match engine.try_lock(&region, &lock_name, &owner, ttl).await? {
        Locked::Taken(guard) => guard,
        Locked::Busy(held) => {
            let why = format!(
                "another run holds the lock ({} since {}, until {})",
                held.owner,
                held.since.format("%H:%M:%S UTC"),
                held.until.format("%H:%M:%S UTC")
            );
            return Ok(skipped_run(
                schedule,
                started_at,
                started,
                why,
                ScheduleState::default(),
            ));
        }
    };
    // One release, whatever the run came to (and the guard's own if this
    // future is dropped: a daemon shutting down).
    let ran = run_locked(engine, schedule, slot, &region, started_at, started).await;
    if let Err(e) = guard.release().await {
        tracing::warn!(schedule = %schedule.name, "could not release the schedule's lock: {e}");
    }
    ran
}

/// A skipped run: why, and what the last run left.
fn skipped_run(
    schedule: &Schedule,
    started_at: DateTime<Utc>,
    started: Instant,
    why: String,
    previous: ScheduleState,
) -> ScheduleRun {
    ScheduleRun {
        schedule: schedule.name.clone(),
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        verdict: Verdict::Ok,
        report: RunReport::default(),
        pruned: 0,
        kept: Vec::new(),
        skipped: Some(why),
        previous,
    }
}

/// The run under its lock: what the last run left, the slot check, the
/// work and the state it leaves for the next one.
async fn run_locked(
    engine: &Engine,
    schedule: &Schedule,
    slot: Option<DateTime<Utc>>,
    region: &str,
    started_at: DateTime<Utc>,
    started: Instant,
) -> Result<ScheduleRun, Error> {
    // Read under the lock: what the last run (anyone's) left.
    let previous: ScheduleState = engine
        .schedule_state(region, &schedule.name)
        .await
        .map_err(|e| e.noted(format!("reading the state of schedule {}", schedule.name)))?
        .unwrap_or_default();
    if let (Some(slot), Some(last)) = (slot, previous.last_run)
        && last >= slot
    {
        let why = format!(
            "its run for {} already ran (started {}), elsewhere",
            slot.format("%Y-%m-%d %H:%M UTC"),
            last.format("%H:%M:%S UTC")
        );
        return Ok(skipped_run(schedule, started_at, started, why, previous));
    }
    // Said only now: a run that is skipped above never "started".
    tracing::info!(schedule = %schedule.name, "run started");
    let worked = work_within_timeout(engine, schedule, &previous).await;
    let (w, error) = match worked {
        Ok(w) => (w, None),
        Err(e) => (Worked::default(), Some(e)),
    };
    let Worked {
        report,
        pruned,
        verified,
        tested,
        kept,
    } = w;
    let verdict = match &error {
        Some(e) => Verdict::Failed(e.class()),
        None => report.verdict(),
    };
    let state = previous.after_run(
        started_at,
        verdict,
        (verified, tested),
        Utc::now(),
        started.elapsed().as_millis() as u64,
    );
    // Saved before the lock is released, so nobody runs this slot again. A
    // cancelled run (SIGTERM) is not remembered as run: after a restart,
    // `missed = "run_once"` makes up for it.
    if let Some(state) = state
        && let Err(e) = engine
            .save_schedule_state(region, &schedule.name, &state)
            .await
    {
        tracing::warn!(schedule = %schedule.name, "could not save the schedule's state: {e}");
    }
    if let Some(e) = error {
        return Err(e);
    }
    Ok(ScheduleRun {
        schedule: schedule.name.clone(),
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        verdict,
        report,
        pruned,
        kept,
        skipped: None,
        previous,
    })
}

/// The work of a run, stopped (and cleaned up after) at the schedule's
/// timeout.
async fn work_within_timeout(
    engine: &Engine,
    schedule: &Schedule,
    previous: &ScheduleState,
) -> Result<Worked, Error> {
    let working = work(engine, schedule, previous);
    tokio::pin!(working);
    tokio::select! {
        w = &mut working => w,
        _ = tokio::time::sleep(schedule.timeout) => {
            // Stop it and let it clean up (abort uploads) before giving up.
            engine.cancel();
            let _ = working.await;
            Err(Error::failed(format!(
                "schedule {} did not finish within its timeout of {}: the run was cancelled, nothing half-done was kept",
                schedule.name,
                humantime::format_duration(schedule.timeout)
            )))
        }
    }
}

impl ScheduleState {
    /// The state a run leaves after this one (`checked`: whether it verified
    /// hashes, whether it ran a restore test); none for a cancelled run: it
    /// is not remembered as run, so a restart makes up for it.
    pub fn after_run(
        &self,
        started_at: DateTime<Utc>,
        verdict: Verdict,
        checked: (bool, bool),
        now: DateTime<Utc>,
        duration_ms: u64,
    ) -> Option<ScheduleState> {
        if matches!(
            verdict,
            Verdict::Cancelled | Verdict::Failed(crate::error::ErrorClass::Cancelled)
        ) {
            return None;
        }
        let (verified, tested) = checked;
        let ok = verdict == Verdict::Ok;
        Some(ScheduleState {
            last_run: Some(started_at),
            last_outcome: Some(verdict),
            last_success: if ok { Some(now) } else { self.last_success },
            last_failure: if ok { self.last_failure } else { Some(now) },
            last_hash_verify: if verified {
                Some(now)
            } else {
                self.last_hash_verify
            },
            last_restore_test: if tested {
                Some(now)
            } else {
                self.last_restore_test
            },
            last_duration_ms: Some(duration_ms),
        })
    }
}

/// What the work of a run did.
#[derive(Default)]
struct Worked {
    report: RunReport,
    pruned: u64,
    verified: bool,
    tested: bool,
    kept: Vec<KeptPoints>,
}

/// How many points of a target a region keeps after the run's prune.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptPoints {
    pub target: String,
    pub region: String,
    pub points: u64,
}

fn kept_points(plan: &crate::engine::prune::PrunePlan) -> Vec<KeptPoints> {
    plan.regions
        .iter()
        .flat_map(|r| {
            r.targets.iter().map(|t| KeptPoints {
                target: t.target.clone(),
                region: r.region.clone(),
                points: t
                    .items
                    .iter()
                    .filter(|i| i.action == crate::engine::prune::PruneAction::Keep)
                    .count() as u64,
            })
        })
        .collect()
}

/// The backup a run of `schedule` asks for.
pub fn backup_request(schedule: &Schedule) -> BackupRequest {
    BackupRequest {
        retention: Some(schedule.point_retention()),
        targets: schedule.targets.clone(),
        schedule: Some(schedule.name.clone()),
        labels: BTreeMap::from([("schedule".to_string(), schedule.name.clone())]),
        no_copy: false,
        copy_to: schedule.copy_to.clone(),
    }
}

async fn work(
    engine: &Engine,
    schedule: &Schedule,
    previous: &ScheduleState,
) -> Result<Worked, Error> {
    let req = backup_request(schedule);
    let mut report = engine.backup(&req).await?;
    if engine.cancel_token().is_cancelled() {
        return Ok(Worked {
            report,
            ..Worked::default()
        });
    }
    // Retention for the targets of this schedule, in every region they live
    // in: each point judged by the retention it was made under.
    let plan = engine
        .plan_prune(&PruneRequest {
            scope: Scope::default(),
            targets: schedule.targets.clone(),
        })
        .await?;
    let kept = kept_points(&plan);
    let pruned_report = engine.prune(&plan).await;
    let pruned = pruned_report
        .items
        .iter()
        .filter(|i| i.outcome == Outcome::Ok)
        .count() as u64;
    report.extend(pruned_report);
    let now = Utc::now();
    let mut verified = false;
    if due(previous.last_hash_verify, schedule.hash_every, now) {
        for (target, point) in new_points(&report) {
            let v = engine
                .verify(&VerifyRequest {
                    scope: Scope {
                        region: None,
                        target: Some(target),
                    },
                    point: point.parse().ok(),
                })
                .await;
            match v {
                Ok(r) => report.extend(r),
                Err(e) => return Err(e),
            }
        }
        // Only a run that had new points to check counts as checked.
        verified = !new_points(&report).is_empty();
    }
    let mut tested = false;
    if due(previous.last_restore_test, schedule.restore_test_every, now) {
        let made = new_points(&report);
        tested = !made.is_empty();
        for (target, point) in made {
            // Every copy: the DR region's too.
            report.extend(engine.restore_test(&target, Some(&point), None).await);
        }
    }
    Ok(Worked {
        report,
        pruned,
        verified,
        tested,
        kept,
    })
}

/// The points a report's backups made, as (target, point).
fn new_points(report: &RunReport) -> Vec<(String, String)> {
    report
        .items
        .iter()
        .filter(|i| i.operation == crate::engine::Operation::Backup && i.outcome == Outcome::Ok)
        .filter_map(|i| i.point.clone().map(|p| (i.target.clone(), p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadences() {
        let now = DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        let day = Some(Duration::from_secs(86_400));
        assert!(!due(None, None, now), "no cadence, never");
        assert!(due(None, day, now), "never done, due");
        assert!(!due(Some(now - chrono::Duration::hours(2)), day, now));
        assert!(due(Some(now - chrono::Duration::hours(25)), day, now));
    }

    #[test]
    fn a_run_leaves_its_state_and_a_cancelled_one_none() {
        let t = |h: i64| {
            DateTime::<Utc>::from_timestamp(1_795_000_000 + h * 3600, 0).unwrap_or_default()
        };
        let before = ScheduleState {
            last_run: Some(t(0)),
            last_success: Some(t(0)),
            last_failure: Some(t(-5)),
            last_hash_verify: Some(t(-24)),
            ..ScheduleState::default()
        };
        let now = t(2);
        let ok = before
            .after_run(t(1), Verdict::Ok, (true, false), now, 42)
            .unwrap_or_default();
        assert_eq!(ok.last_run, Some(t(1)));
        assert_eq!(ok.last_success, Some(now));
        assert_eq!(ok.last_failure, Some(t(-5)));
        assert_eq!(ok.last_hash_verify, Some(now));
        assert_eq!(ok.last_restore_test, None);
        assert_eq!(ok.last_duration_ms, Some(42));
        let failed = Verdict::Failed(crate::error::ErrorClass::Unreachable);
        let bad = before
            .after_run(t(1), failed, (false, true), now, 7)
            .unwrap_or_default();
        assert_eq!(bad.last_success, Some(t(0)));
        assert_eq!(bad.last_failure, Some(now));
        assert_eq!(bad.last_hash_verify, Some(t(-24)));
        assert_eq!(bad.last_restore_test, Some(now));
        let partial = before
            .after_run(t(1), Verdict::Partial, (false, false), now, 7)
            .unwrap_or_default();
        assert_eq!(
            partial.last_failure,
            Some(now),
            "a partial run is no success"
        );
        for cancelled in [
            Verdict::Cancelled,
            Verdict::Failed(crate::error::ErrorClass::Cancelled),
        ] {
            assert_eq!(
                before.after_run(t(1), cancelled, (true, true), now, 1),
                None
            );
        }
    }
}
