//! Prune: apply retention policies per target and region. The plan lists
//! every point with *keep* and its reasons, or *remove*; then only the plan is
//! executed. Three guards overrule a policy: the newest point of a target is
//! always kept, a point a running restore or drill holds is kept, and a point
//! under S3 Object Lock retention is kept (deleting it would fail anyway).
//!
//! Holds are small objects under `locks/` that a restore writes while it
//! runs (see [`Engine::hold_point`]); they expire, so a crashed restore does
//! not pin a point forever.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::report::{ItemReport, Operation, Outcome, RunReport, Verdict, verdict_of};
use super::root::{Engine, Scope};
use crate::archive::PointId;
use crate::catalog::retention::{self, Candidate, Policy};
use crate::catalog::{self, RegionStore};
use crate::error::{Error, ErrorClass};
use crate::store::{Keep, StoreError};

/// One target's policy, from the schedule that backs it up.
#[derive(Debug, Clone)]
pub struct TargetPolicy {
    pub target: String,
    pub schedule: String,
    pub policy: Policy,
    pub timezone: Tz,
}

#[derive(Debug, Clone, Default)]
pub struct PruneRequest {
    pub scope: Scope,
    /// Policies by target; a target with several schedules keeps what any keeps.
    pub policies: Vec<TargetPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneAction {
    Keep,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneItem {
    pub point: String,
    pub at: DateTime<Utc>,
    pub action: PruneAction,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetPrune {
    pub target: String,
    pub schedules: Vec<String>,
    pub items: Vec<PruneItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionPrune {
    pub region: String,
    pub store: String,
    pub error: Option<String>,
    pub error_class: Option<ErrorClass>,
    pub targets: Vec<TargetPrune>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrunePlan {
    pub made_at: DateTime<Utc>,
    pub regions: Vec<RegionPrune>,
}

impl PrunePlan {
    pub fn removals(&self) -> usize {
        self.regions
            .iter()
            .flat_map(|r| &r.targets)
            .flat_map(|t| &t.items)
            .filter(|i| i.action == PruneAction::Remove)
            .count()
    }

    pub fn listing_verdict(&self) -> Verdict {
        verdict_of(self.regions.iter().map(|r| match r.error_class {
            Some(class) => (Outcome::Failed, Some(class)),
            None => (Outcome::Ok, None),
        }))
    }

    /// The plan as `prune --dry-run` prints it: every point, keep or remove.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for r in &self.regions {
            lines.push(format!("region {} ({})", r.region, r.store));
            if let Some(e) = &r.error {
                lines.push(format!("  UNAVAILABLE: {e}"));
                continue;
            }
            if r.targets.is_empty() {
                lines.push("  no points under a schedule's retention".into());
            }
            for t in &r.targets {
                lines.push(format!(
                    "  target {} (retention of {})",
                    t.target,
                    t.schedules.join(", ")
                ));
                for i in &t.items {
                    match i.action {
                        PruneAction::Keep => lines.push(format!(
                            "    keep   {} {}  {}",
                            i.point,
                            i.at.format("%Y-%m-%d %H:%M"),
                            i.reasons.join("; ")
                        )),
                        PruneAction::Remove => lines.push(format!(
                            "    REMOVE {} {}",
                            i.point,
                            i.at.format("%Y-%m-%d %H:%M")
                        )),
                    }
                }
            }
        }
        lines
    }
}

/// A hold on a point: who holds it, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub target: String,
    pub point: String,
    pub holder: String,
    pub until: DateTime<Utc>,
}

/// The retention decisions of several policies over one target's points,
/// with the guards: holds and Object Lock keep a point whatever the policies say.
pub fn decide_prune(
    points: &[Candidate],
    policies: &[&TargetPolicy],
    holds: &BTreeMap<String, Hold>,
    retained: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<PruneItem> {
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in policies {
        for d in retention::decide(points, &p.policy, p.timezone) {
            let entry = reasons.entry(d.id.clone()).or_default();
            for r in d.reasons {
                let r = if policies.len() > 1 {
                    format!("{}: {r}", p.schedule)
                } else {
                    r
                };
                if !entry.contains(&r) {
                    entry.push(r);
                }
            }
        }
    }
    let mut items: Vec<PruneItem> = points
        .iter()
        .map(|p| {
            let mut why = reasons.remove(&p.id).unwrap_or_default();
            if let Some(h) = holds.get(&p.id).filter(|h| h.until > now) {
                why.push(format!(
                    "held by {} until {}",
                    h.holder,
                    h.until.format("%Y-%m-%d %H:%M UTC")
                ));
            }
            if let Some(until) = retained.get(&p.id).filter(|u| **u > now) {
                why.push(format!(
                    "under Object Lock retention until {}",
                    until.format("%Y-%m-%d %H:%M UTC")
                ));
            }
            PruneItem {
                point: p.id.clone(),
                at: p.at,
                action: if why.is_empty() {
                    PruneAction::Remove
                } else {
                    PruneAction::Keep
                },
                reasons: why,
            }
        })
        .collect();
    items.sort_by(|a, b| (b.at, &b.point).cmp(&(a.at, &a.point)));
    items
}

/// When each of these (point, manifest key) is under Object Lock retention
/// until, asked concurrently; a point that cannot be asked is not retained.
async fn retained_until(
    rs: &RegionStore,
    asked: Vec<(String, String)>,
) -> BTreeMap<String, DateTime<Utc>> {
    let store = rs.store.clone();
    let answers: Vec<(String, Option<DateTime<Utc>>)> =
        futures::stream::iter(asked.into_iter().map(|(id, key)| {
            let store = store.clone();
            async move {
                let until = store.retained_until(&key).await.ok().flatten();
                (id, until)
            }
        }))
        .buffer_unordered(16)
        .collect()
        .await;
    answers
        .into_iter()
        .filter_map(|(id, u)| Some((id, u?)))
        .collect()
}

/// How long a restore's hold lasts if it is never released.
pub const HOLD_TTL: Duration = Duration::from_secs(6 * 3600);

fn hold_name(target: &str, point: &str) -> String {
    format!("hold.{target}.{point}")
}

impl Engine {
    /// Holds a point so no prune removes it while `holder` works on it.
    pub async fn hold_point(
        &self,
        region: &str,
        target: &str,
        point: &str,
        holder: &str,
    ) -> Result<(), Error> {
        let rs = self.store(region).await?;
        let hold = Hold {
            target: target.to_string(),
            point: point.to_string(),
            holder: holder.to_string(),
            until: Utc::now() + chrono::Duration::from_std(HOLD_TTL).unwrap_or_default(),
        };
        let body = serde_json::to_vec(&hold).map_err(Error::failed)?;
        rs.store
            .put(
                &rs.layout.lock_key(&hold_name(target, point)),
                body.into(),
                Keep::Normal,
            )
            .await?;
        Ok(())
    }

    pub async fn release_point(
        &self,
        region: &str,
        target: &str,
        point: &str,
    ) -> Result<(), Error> {
        let rs = self.store(region).await?;
        rs.store
            .delete(&rs.layout.lock_key(&hold_name(target, point)))
            .await?;
        Ok(())
    }

    async fn holds(&self, rs: &RegionStore) -> Result<BTreeMap<String, Hold>, Error> {
        let prefix = rs.layout.lock_key("hold.");
        let mut out = BTreeMap::new();
        for o in rs.store.list(&prefix).await? {
            match rs.store.get(&o.key).await {
                Ok(body) => {
                    if let Ok(h) = serde_json::from_slice::<Hold>(&body) {
                        out.insert(h.point.clone(), h);
                    }
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Lists every region in scope and decides, per target, what to keep.
    pub async fn plan_prune(&self, req: &PruneRequest) -> Result<PrunePlan, Error> {
        self.check_scope(&req.scope)?;
        let now = Utc::now();
        let mut by_target: BTreeMap<&str, Vec<&TargetPolicy>> = BTreeMap::new();
        for p in &req.policies {
            self.target(&p.target)?;
            if req.scope.target.as_ref().is_none_or(|t| t == &p.target) {
                by_target.entry(p.target.as_str()).or_default().push(p);
            }
        }
        let mut regions = Vec::new();
        for region in self.scoped_regions(&req.scope) {
            let planned = self.plan_region(&region, &by_target, now).await;
            regions.push(planned);
        }
        Ok(PrunePlan {
            made_at: now,
            regions,
        })
    }

    async fn plan_region(
        &self,
        region: &str,
        by_target: &BTreeMap<&str, Vec<&TargetPolicy>>,
        now: DateTime<Utc>,
    ) -> RegionPrune {
        let mut out = RegionPrune {
            region: region.to_string(),
            store: "-".into(),
            error: None,
            error_class: None,
            targets: Vec::new(),
        };
        let found = async {
            let rs = self.store(region).await?;
            let listing = catalog::list_points(&rs, None).await?;
            let holds = self.holds(&rs).await?;
            Ok::<_, Error>((rs, listing, holds))
        }
        .await;
        let (rs, listing, holds) = match found {
            Ok(f) => f,
            Err(e) => {
                out.error_class = Some(e.class());
                out.error = Some(e.to_string());
                return out;
            }
        };
        out.store = rs.store.describe();
        for (target, policies) in by_target {
            let mine: Vec<&catalog::PointEntry> = listing
                .points
                .iter()
                .filter(|p| p.manifest.target == *target)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let candidates: Vec<Candidate> = mine
                .iter()
                .map(|p| Candidate {
                    id: p.id.to_string(),
                    at: p.manifest.started_at,
                })
                .collect();
            // Only points the policies would remove are asked about Object
            // Lock (one HEAD each, concurrently): the rest stay anyway.
            let first = decide_prune(&candidates, policies, &holds, &BTreeMap::new(), now);
            let keys: BTreeMap<String, String> = mine
                .iter()
                .map(|p| (p.id.to_string(), p.manifest_key.clone()))
                .collect();
            let asked: Vec<(String, String)> = first
                .iter()
                .filter(|i| i.action == PruneAction::Remove)
                .filter_map(|i| Some((i.point.clone(), keys.get(&i.point)?.clone())))
                .collect();
            let retained = retained_until(&rs, asked).await;
            out.targets.push(TargetPrune {
                target: target.to_string(),
                schedules: policies.iter().map(|p| p.schedule.clone()).collect(),
                items: decide_prune(&candidates, policies, &holds, &retained, now),
            });
        }
        out
    }

    /// Removes what the plan says to remove, region by region; one report
    /// item per point removed or failed.
    pub async fn prune(&self, plan: &PrunePlan) -> RunReport {
        let mut report = RunReport::default();
        for r in &plan.regions {
            if let Some(e) = &r.error {
                let e = Error::Noted {
                    class: r.error_class.unwrap_or(ErrorClass::Failed),
                    message: e.clone(),
                };
                report.push(ItemReport::new(Operation::Delete, "*", &r.region, None).failed(&e));
                continue;
            }
            for t in &r.targets {
                for i in t.items.iter().filter(|i| i.action == PruneAction::Remove) {
                    if self.cancel_token().is_cancelled() {
                        report.push(
                            ItemReport::new(
                                Operation::Delete,
                                &t.target,
                                &r.region,
                                Some(i.point.clone()),
                            )
                            .failed(&Error::cancelled(
                                "prune cancelled: the rest was left as it was",
                            )),
                        );
                        return report;
                    }
                    let started = Instant::now();
                    let item = ItemReport::new(
                        Operation::Delete,
                        &t.target,
                        &r.region,
                        Some(i.point.clone()),
                    );
                    let done = match i.point.parse::<PointId>() {
                        Ok(id) => self.delete_point_in(&r.region, &t.target, &id).await,
                        Err(e) => Err(e.into()),
                    };
                    report.push(match done {
                        Ok(None) => item.with_outcome(Outcome::Skipped, "already gone"),
                        Ok(Some(what)) => item
                            .ok(format!("removed {}", what.join(", ")))
                            .timed(started),
                        Err(e) => item.failed(&e).timed(started),
                    });
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_795_000_000 + h * 3600, 0).unwrap_or_default()
    }

    fn points(n: i64) -> Vec<Candidate> {
        (0..n)
            .map(|h| Candidate {
                id: format!("p{h}"),
                at: at(h),
            })
            .collect()
    }

    fn policy(schedule: &str, last: u32) -> TargetPolicy {
        TargetPolicy {
            target: "t".into(),
            schedule: schedule.into(),
            policy: Policy {
                keep_last: last,
                ..Policy::default()
            },
            timezone: Tz::UTC,
        }
    }

    fn actions(items: &[PruneItem]) -> Vec<(&str, PruneAction)> {
        items.iter().map(|i| (i.point.as_str(), i.action)).collect()
    }

    #[test]
    fn holds_and_object_lock_overrule_the_policy() {
        use PruneAction::{Keep, Remove};
        let now = at(10);
        let p = policy("nightly", 1);
        let holds = BTreeMap::from([
            (
                "p1".to_string(),
                Hold {
                    target: "t".into(),
                    point: "p1".into(),
                    holder: "restore".into(),
                    until: at(11),
                },
            ),
            // An expired hold holds nothing.
            (
                "p0".to_string(),
                Hold {
                    target: "t".into(),
                    point: "p0".into(),
                    holder: "restore".into(),
                    until: at(9),
                },
            ),
        ]);
        let retained = BTreeMap::from([("p2".to_string(), at(30))]);
        let items = decide_prune(&points(4), &[&p], &holds, &retained, now);
        assert_eq!(
            actions(&items),
            [("p3", Keep), ("p2", Keep), ("p1", Keep), ("p0", Remove)]
        );
        assert!(items[1].reasons[0].starts_with("under Object Lock retention until"));
        assert!(items[2].reasons[0].starts_with("held by restore until"));
    }

    #[test]
    fn several_schedules_keep_what_any_keeps_and_say_which() {
        use PruneAction::{Keep, Remove};
        let (a, b) = (policy("hourly", 2), policy("weekly", 3));
        let items = decide_prune(
            &points(4),
            &[&a, &b],
            &BTreeMap::new(),
            &BTreeMap::new(),
            at(10),
        );
        assert_eq!(
            actions(&items),
            [("p3", Keep), ("p2", Keep), ("p1", Keep), ("p0", Remove)]
        );
        assert!(
            items[2]
                .reasons
                .iter()
                .any(|r| r.starts_with("weekly: last 3")),
            "{:?}",
            items[2]
        );
        assert!(
            items[0]
                .reasons
                .iter()
                .any(|r| r.starts_with("hourly: newest point")),
            "{:?}",
            items[0]
        );
    }
}
