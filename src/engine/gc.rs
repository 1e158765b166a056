//! Garbage collection: what belongs to no recovery point (data of point
//! folders without a manifest, open multipart uploads, temporary files) is
//! planned for removal once it is older than a grace period, and removed only
//! by executing that plan. A younger leftover may belong to a backup that is
//! still running, so it is kept, and the plan says why.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::lock::{Found, read_lock};
use super::report::{ItemReport, Operation, Outcome, RunReport, Verdict, verdict_of};
use super::root::{Engine, Scope};
use crate::catalog::{self, Leftover, LeftoverKind, short_age};
use crate::error::{Error, ErrorClass};

/// Leftovers younger than this are kept by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct GcRequest {
    pub scope: Scope,
    pub older_than: Duration,
    /// Locks to remove though held or unreadable (`--force-unlock`).
    pub force_unlock: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GcAction {
    Remove,
    Keep,
}

/// One leftover and what the plan does with it, with the reason.
#[derive(Debug, Clone, Serialize)]
pub struct GcItem {
    #[serde(flatten)]
    pub leftover: Leftover,
    pub action: GcAction,
    pub reason: String,
}

/// The plan of one region, or why it could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct RegionGc {
    pub region: String,
    pub store: String,
    pub error: Option<String>,
    pub error_class: Option<ErrorClass>,
    pub items: Vec<GcItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GcPlan {
    pub older_than_secs: u64,
    pub made_at: DateTime<Utc>,
    pub regions: Vec<RegionGc>,
}

impl GcPlan {
    /// Ok when every region was read; partial when some were not.
    pub fn listing_verdict(&self) -> Verdict {
        verdict_of(self.regions.iter().map(|r| match r.error_class {
            Some(class) => (Outcome::Failed, Some(class)),
            None => (Outcome::Ok, None),
        }))
    }

    pub fn removals(&self) -> usize {
        self.regions
            .iter()
            .flat_map(|r| &r.items)
            .filter(|i| i.action == GcAction::Remove)
            .count()
    }

    /// The plan, one line per fact, as `gc --dry-run` prints it.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "gc plan: remove what belongs to no recovery point and is older than {}",
            humantime::format_duration(Duration::from_secs(self.older_than_secs))
        )];
        for r in &self.regions {
            lines.push(format!("region {} ({})", r.region, r.store));
            if let Some(e) = &r.error {
                lines.push(format!("  UNAVAILABLE: {e}"));
                continue;
            }
            if r.items.is_empty() {
                lines.push("  nothing to collect".into());
            }
            for i in &r.items {
                let verb = match i.action {
                    GcAction::Remove => "REMOVE",
                    GcAction::Keep => "keep  ",
                };
                lines.push(format!(
                    "  {verb} {}: {}",
                    i.leftover.describe(self.made_at),
                    i.reason
                ));
            }
        }
        lines
    }
}

/// What `--force-unlock` does with a named lock, given what is there: a
/// held or unreadable one is removed (the operator said no run holds it),
/// an absent one is said.
pub fn decide_force_unlock(key: &str, found: Found) -> GcItem {
    let (since, action, reason) = match found {
        Found::Held(l) => (
            Some(l.since),
            GcAction::Remove,
            format!(
                "--force-unlock: held by {} since {} until {}",
                l.owner,
                l.since.format("%Y-%m-%d %H:%M:%S UTC"),
                l.until.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        ),
        Found::Unreadable(why) => (
            None,
            GcAction::Remove,
            format!("--force-unlock: it cannot be read ({why})"),
        ),
        Found::Absent => (
            None,
            GcAction::Keep,
            "--force-unlock: no such lock in this region".to_string(),
        ),
    };
    GcItem {
        leftover: Leftover {
            what: LeftoverKind::Lock,
            target: None,
            point: None,
            key: key.to_string(),
            size: None,
            since,
            unfinished: None,
        },
        action,
        reason,
    }
}

/// A lock name as `--force-unlock` takes it: what follows `locks/`.
fn check_lock_name(name: &str) -> Result<(), Error> {
    if matches!(name, "" | "." | "..") || name.contains('/') || name.chars().any(char::is_control) {
        return Err(Error::input(format!(
            "--force-unlock {name:?}: not a lock name; give the name an error or `drtool points` shows after `locks/` (e.g. schedule.nightly)"
        )));
    }
    Ok(())
}

/// Decides what to do with each leftover: remove those older than
/// `older_than`, keep the others (and those of unknown age), with a reason.
pub fn decide_gc(
    leftovers: Vec<Leftover>,
    now: DateTime<Utc>,
    older_than: Duration,
) -> Vec<GcItem> {
    let grace = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    leftovers
        .into_iter()
        .map(|leftover| {
            let (action, reason) = match leftover.age(now) {
                // Past its own lifetime: no grace is needed.
                Some(age) if leftover.what == LeftoverKind::ExpiredLock => (
                    GcAction::Remove,
                    format!(
                        "expired {} ago: whoever took it is gone (killed before releasing it)",
                        short_age(age)
                    ),
                ),
                None => (
                    GcAction::Keep,
                    "the store does not say how old it is: remove it by hand if you know it is stale"
                        .to_string(),
                ),
                Some(age) if age < grace => (
                    GcAction::Keep,
                    format!(
                        "younger than {}: it may belong to a backup or copy still running",
                        short_age(grace)
                    ),
                ),
                Some(age) => (
                    GcAction::Remove,
                    format!("{} old, belongs to no recovery point", short_age(age)),
                ),
            };
            GcItem {
                leftover,
                action,
                reason,
            }
        })
        .collect()
}

impl Engine {
    /// Lists every region in scope and decides what to collect. Changes nothing.
    pub async fn plan_gc(&self, req: &GcRequest) -> Result<GcPlan, Error> {
        self.check_scope(&req.scope)?;
        for name in &req.force_unlock {
            check_lock_name(name)?;
        }
        let now = Utc::now();
        let target = req.scope.target.as_deref();
        let mut regions = Vec::new();
        for region in self.scoped_regions(&req.scope) {
            let rs = match self.store(&region).await {
                Ok(rs) => rs,
                Err(e) => {
                    regions.push(RegionGc {
                        region: region.clone(),
                        store: "-".into(),
                        error_class: Some(e.class()),
                        error: Some(e.to_string()),
                        items: Vec::new(),
                    });
                    continue;
                }
            };
            let found = futures::future::try_join3(
                catalog::list_points(&rs, target),
                catalog::unfinished(&rs, target),
                catalog::expired_locks(&rs, target, now),
            )
            .await
            .map_err(Error::from);
            let mut planned = RegionGc {
                region: region.clone(),
                store: rs.store.describe(),
                error: None,
                error_class: None,
                items: Vec::new(),
            };
            match found {
                Ok((listing, unfinished, locks)) => {
                    let mut leftovers = listing.leftovers;
                    leftovers.extend(unfinished);
                    leftovers.extend(locks);
                    planned.items = decide_gc(leftovers, now, req.older_than);
                    for name in &req.force_unlock {
                        let key = rs.layout.lock_key(name);
                        match read_lock(&rs.store, &key).await {
                            Ok(found) => {
                                planned.items.retain(|i| i.leftover.key != key);
                                planned.items.push(decide_force_unlock(&key, found));
                            }
                            Err(e) => {
                                planned.error_class = Some(e.class());
                                planned.error = Some(e.to_string());
                            }
                        }
                    }
                }
                Err(e) => {
                    planned.error_class = Some(e.class());
                    planned.error = Some(e.to_string());
                }
            }
            regions.push(planned);
        }
        Ok(GcPlan {
            older_than_secs: req.older_than.as_secs(),
            made_at: now,
            regions,
        })
    }

    /// Removes what the plan says to remove; one report item per region, and
    /// one per removal that failed.
    pub async fn gc(&self, plan: &GcPlan) -> RunReport {
        let mut report = RunReport::default();
        for r in &plan.regions {
            let target = r
                .items
                .iter()
                .find_map(|i| i.leftover.target.clone())
                .unwrap_or_else(|| "*".into());
            let item = ItemReport::new(Operation::Gc, &target, &r.region, None);
            if let Some(e) = &r.error {
                let e = Error::Noted {
                    class: r.error_class.unwrap_or(ErrorClass::Failed),
                    message: e.clone(),
                };
                report.push(item.failed(&e));
                continue;
            }
            let removals: Vec<&GcItem> = r
                .items
                .iter()
                .filter(|i| i.action == GcAction::Remove)
                .collect();
            if removals.is_empty() {
                report.push(item.with_outcome(Outcome::Skipped, "nothing to collect"));
                continue;
            }
            let started = Instant::now();
            let rs = match self.store(&r.region).await {
                Ok(rs) => rs,
                Err(e) => {
                    report.push(item.failed(&e));
                    continue;
                }
            };
            let (mut removed, mut bytes) = (0u64, 0u64);
            for i in removals {
                if self.cancel_token().is_cancelled() {
                    report.push(
                        ItemReport::new(Operation::Gc, &target, &r.region, None).failed(
                            &Error::cancelled("gc cancelled: the rest was left as it was"),
                        ),
                    );
                    break;
                }
                let done = match &i.leftover.unfinished {
                    Some(u) => rs.store.discard(u).await,
                    // Taken again since the plan: it is someone's now.
                    None if i.leftover.what == LeftoverKind::ExpiredLock
                        && !still_expired(&rs, &i.leftover.key).await =>
                    {
                        continue;
                    }
                    None => rs.store.delete(&i.leftover.key).await,
                };
                match done {
                    Ok(()) => {
                        removed += 1;
                        bytes += i.leftover.size.unwrap_or(0);
                    }
                    Err(e) => report.push(
                        ItemReport::new(
                            Operation::Gc,
                            i.leftover.target.as_deref().unwrap_or("*"),
                            &r.region,
                            i.leftover.point.clone(),
                        )
                        .failed(&e.into()),
                    ),
                }
            }
            let mut done = item
                .ok(format!("removed {removed} leftovers ({bytes} bytes)"))
                .timed(started);
            done.counts.insert("removed".into(), removed);
            done.bytes = Some(bytes);
            report.push(done);
        }
        report
    }
}

/// Whether the lock at `key` is still past its lifetime (re-read just before
/// it is removed).
async fn still_expired(rs: &catalog::RegionStore, key: &str) -> bool {
    let Ok(body) = rs.store.get(key).await else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v["until"]
                .as_str()
                .and_then(|u| u.parse::<DateTime<Utc>>().ok())
        })
        .is_some_and(|until| until < Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftover(age_hours: Option<i64>, now: DateTime<Utc>) -> Leftover {
        Leftover {
            what: LeftoverKind::OpenUpload,
            target: Some("t".into()),
            point: None,
            key: format!("points/t/x{age_hours:?}"),
            size: Some(10),
            since: age_hours.map(|h| now - chrono::Duration::hours(h)),
            unfinished: None,
        }
    }

    #[test]
    fn force_unlock_removes_a_held_or_unreadable_lock_and_says_an_absent_one() {
        let now = Utc::now();
        let held = crate::engine::lock::Lock {
            name: "schedule.nightly".into(),
            owner: "host:42:abcd".into(),
            since: now,
            until: now + chrono::Duration::hours(1),
        };
        let cases = [
            (Found::Held(held), GcAction::Remove, "held by host:42:abcd"),
            (
                Found::Unreadable("not a drtool lock: EOF".into()),
                GcAction::Remove,
                "cannot be read (not a drtool lock: EOF)",
            ),
            (Found::Absent, GcAction::Keep, "no such lock"),
        ];
        for (found, action, reason) in cases {
            let item = decide_force_unlock("lab/locks/schedule.nightly", found);
            assert_eq!(item.action, action, "{reason}");
            assert_eq!(item.leftover.what, LeftoverKind::Lock);
            assert!(item.reason.contains(reason), "{}", item.reason);
        }
        for bad in ["", ".", "..", "a/b", "x\n"] {
            assert!(check_lock_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_lock_name("schedule.nightly").is_ok());
    }

    #[test]
    fn only_leftovers_past_the_grace_period_are_removed() {
        let now = Utc::now();
        let cases = [
            (Some(48), GcAction::Remove, "2d0h old"),
            (Some(25), GcAction::Remove, "1d1h old"),
            (Some(23), GcAction::Keep, "may belong to a backup"),
            (Some(0), GcAction::Keep, "may belong to a backup"),
            (None, GcAction::Keep, "does not say how old"),
        ];
        for (age, action, reason) in cases {
            let got = decide_gc(vec![leftover(age, now)], now, DEFAULT_GRACE);
            assert_eq!(got[0].action, action, "{age:?}");
            assert!(got[0].reason.contains(reason), "{age:?}: {}", got[0].reason);
        }
        let short = decide_gc(vec![leftover(Some(2), now)], now, Duration::from_secs(3600));
        assert_eq!(short[0].action, GcAction::Remove);
    }
}
