//! Prune: apply to each point the retention it was made under (recorded in
//! its signed manifest, or changed by hand next to it), per target and region:
//! never the policies of whichever schedule files a process loaded. The plan
//! lists every point with *keep* and its reasons, or *remove*; then only the
//! plan is executed. Guards overrule a policy: the newest point of a target,
//! a point with no retention recorded, one kept until a date by hand, one a
//! drill report cites, the newest point a restore test proved, one a running
//! restore holds, and one under S3 Object Lock retention are all kept.
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
use crate::archive::manifest::PointRetention;
use crate::catalog::retention::{self, Candidate, Policy};
use crate::catalog::{self, RegionStore};
use crate::error::{Error, ErrorClass};
use crate::store::{Keep, StoreError};

#[derive(Debug, Clone, Default)]
pub struct PruneRequest {
    pub scope: Scope,
    /// Only these targets (all in scope when empty).
    pub targets: Vec<String>,
}

/// What prune knows of one point before it decides.
#[derive(Debug, Clone, PartialEq)]
pub struct PointFacts {
    pub id: String,
    pub at: DateTime<Utc>,
    /// The retention it is judged by: the hand-set one, else its manifest's.
    pub retention: Option<PointRetention>,
    /// Kept at least until then, and who said so.
    pub kept_until: Option<(DateTime<Utc>, String)>,
    /// Why it must stay whatever its policy says (a drill report cites it,
    /// it is the newest point a restore test proved).
    pub cited: Vec<String>,
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
                    "  target {} (points made under {})",
                    t.target,
                    if t.schedules.is_empty() {
                        "no recorded retention".to_string()
                    } else {
                        t.schedules.join(", ")
                    }
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

/// Decides one target's points in one region: each is judged by the retention
/// it carries, among the points that carry the same one (same policy, rules
/// and zone); then the guards keep what must stay. Newest first.
pub fn decide_prune(
    points: &[PointFacts],
    holds: &BTreeMap<String, Hold>,
    retained: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<PruneItem> {
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut groups: BTreeMap<String, (&PointRetention, Vec<Candidate>)> = BTreeMap::new();
    for p in points {
        match &p.retention {
            Some(r) => {
                let key = serde_json::to_string(r).unwrap_or_else(|_| r.policy.clone());
                groups.entry(key).or_insert((r, Vec::new())).1.push(Candidate {
                    id: p.id.clone(),
                    at: p.at,
                });
            }
            None => reasons.entry(p.id.clone()).or_default().push(
                "no retention recorded (a backup outside a schedule, or made by an older drtool): kept until `drtool points retain` gives it one".into(),
            ),
        }
    }
    for (r, candidates) in groups.values() {
        // A zone this build does not know (a newer drtool's tz database, or
        // an edited manifest) would move the calendar buckets: keep instead.
        let Ok(tz) = r.timezone.parse::<Tz>() else {
            for c in candidates {
                reasons.entry(c.id.clone()).or_default().push(format!(
                    "{}: its retention's time zone {:?} is not known to this drtool: kept until `drtool points retain` gives it a known one",
                    r.policy, r.timezone
                ));
            }
            continue;
        };
        let policy = Policy::from(&r.rules);
        for d in retention::decide(candidates, &policy, tz) {
            let entry = reasons.entry(d.id.clone()).or_default();
            for why in d.reasons {
                entry.push(format!("{}: {why}", r.policy));
            }
        }
    }
    let newest = points.iter().max_by_key(|p| (p.at, &p.id)).map(|p| &p.id);
    let mut items: Vec<PruneItem> = points
        .iter()
        .map(|p| {
            let mut why = reasons.remove(&p.id).unwrap_or_default();
            if Some(&p.id) == newest && !why.iter().any(|w| w.contains("newest point")) {
                why.push("the target's newest point in this region".into());
            }
            if let Some((until, by)) = p.kept_until.as_ref().filter(|(u, _)| *u > now) {
                why.push(format!(
                    "kept until {} ({by})",
                    until.format("%Y-%m-%d %H:%M UTC")
                ));
            }
            why.extend(p.cited.iter().cloned());
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

/// What one point's folder says for prune: its retention (hand-set first),
/// its keep-until and its citations.
fn facts_of(p: &catalog::PointEntry, cited: Vec<String>) -> PointFacts {
    let o = p.retention_override.as_ref();
    PointFacts {
        id: p.id.to_string(),
        at: p.manifest.started_at,
        retention: o
            .and_then(|o| o.policy.clone())
            .or_else(|| p.manifest.retention.clone()),
        kept_until: o
            .and_then(|o| {
                o.until.map(|u| {
                    (
                        u,
                        format!(
                            "drtool points retain by {} at {}",
                            o.by,
                            o.at.format("%Y-%m-%d %H:%M UTC")
                        ),
                    )
                })
            })
            .or_else(|| {
                p.manifest
                    .retention
                    .as_ref()
                    .and_then(|r| r.expires_at)
                    .map(|u| (u, "its retention's date".to_string()))
            }),
        cited,
    }
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

/// Which points the drill reports stored in a region cite (restored from),
/// by (target, point): a point a report is evidence for stays.
async fn drill_citations(
    rs: &RegionStore,
) -> Result<BTreeMap<(String, String), Vec<String>>, Error> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let reports: Vec<String> = rs
        .store
        .list(&rs.layout.drills_prefix())
        .await?
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.ends_with("/report.json"))
        .collect();
    let read: Vec<Option<serde_json::Value>> =
        futures::stream::iter(reports.into_iter().map(|key| {
            let store = rs.store.clone();
            async move {
                let body = store.get(&key).await.ok()?;
                serde_json::from_slice(&body).ok()
            }
        }))
        .buffer_unordered(16)
        .collect()
        .await;
    for r in read.into_iter().flatten() {
        let (run, drill) = (
            r["run_id"].as_str().unwrap_or("?").to_string(),
            r["drill"].as_str().unwrap_or("?").to_string(),
        );
        for x in r["restores"].as_array().into_iter().flatten() {
            if let (Some(t), Some(p)) = (x["target"].as_str(), x["point"].as_str()) {
                out.entry((t.to_string(), p.to_string()))
                    .or_default()
                    .push(format!("cited by drill report {run} ({drill})"));
            }
        }
    }
    Ok(out)
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
        for t in &req.targets {
            self.target(t)?;
        }
        let now = Utc::now();
        let mut regions = Vec::new();
        for region in self.scoped_regions(&req.scope) {
            regions.push(self.plan_region(&region, req, now).await);
        }
        Ok(PrunePlan {
            made_at: now,
            regions,
        })
    }

    async fn plan_region(
        &self,
        region: &str,
        req: &PruneRequest,
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
            let listing = catalog::list_points(&rs, req.scope.target.as_deref()).await?;
            let holds = self.holds(&rs).await?;
            let reports = drill_citations(&rs).await?;
            Ok::<_, Error>((rs, listing, holds, reports))
        }
        .await;
        let (rs, listing, holds, mut reports) = match found {
            Ok(f) => f,
            Err(e) => {
                out.error_class = Some(e.class());
                out.error = Some(e.to_string());
                return out;
            }
        };
        out.store = rs.store.describe();
        let mut targets: Vec<&str> = listing
            .points
            .iter()
            .map(|p| p.manifest.target.as_str())
            .collect();
        targets.sort();
        targets.dedup();
        for target in targets {
            if !req.targets.is_empty() && !req.targets.iter().any(|t| t == target) {
                continue;
            }
            let mine: Vec<&catalog::PointEntry> = listing
                .points
                .iter()
                .filter(|p| p.manifest.target == target)
                .collect();
            // The newest point a restore test proved stays: it is the one
            // known to come back.
            let proven = mine
                .iter()
                .filter(|p| p.restore_test.as_ref().is_some_and(|t| t.ok))
                .max_by_key(|p| p.manifest.started_at)
                .map(|p| p.id.to_string());
            let facts: Vec<PointFacts> = mine
                .iter()
                .map(|p| {
                    let id = p.id.to_string();
                    let mut cited = reports
                        .remove(&(target.to_string(), id.clone()))
                        .unwrap_or_default();
                    if proven.as_ref() == Some(&id) {
                        cited.push("the newest point a restore test proved".into());
                    }
                    facts_of(p, cited)
                })
                .collect();
            // Only points the policies would remove are asked about Object
            // Lock (one HEAD each, concurrently): the rest stay anyway.
            let first = decide_prune(&facts, &holds, &BTreeMap::new(), now);
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
            let mut policies: Vec<String> = facts
                .iter()
                .filter_map(|f| f.retention.as_ref().map(|r| r.policy.clone()))
                .collect();
            policies.sort();
            policies.dedup();
            out.targets.push(TargetPrune {
                target: target.to_string(),
                schedules: policies,
                items: decide_prune(&facts, &holds, &retained, now),
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
    use crate::archive::manifest::RetentionRules;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_795_000_000 + h * 3600, 0).unwrap_or_default()
    }

    fn made_under(policy: &str, last: u32) -> Option<PointRetention> {
        Some(PointRetention {
            policy: policy.into(),
            rules: RetentionRules {
                keep_last: last,
                ..RetentionRules::default()
            },
            timezone: "UTC".into(),
            expires_at: None,
        })
    }

    fn point(h: i64, retention: Option<PointRetention>) -> PointFacts {
        PointFacts {
            id: format!("p{h}"),
            at: at(h),
            retention,
            kept_until: None,
            cited: Vec::new(),
        }
    }

    fn actions(items: &[PruneItem]) -> Vec<(&str, PruneAction)> {
        items.iter().map(|i| (i.point.as_str(), i.action)).collect()
    }

    #[test]
    fn holds_and_object_lock_overrule_the_policy() {
        use PruneAction::{Keep, Remove};
        let now = at(10);
        let points: Vec<PointFacts> = (0..4).map(|h| point(h, made_under("nightly", 1))).collect();
        let hold = |p: &str, until| Hold {
            target: "t".into(),
            point: p.into(),
            holder: "restore".into(),
            until,
        };
        // An expired hold holds nothing.
        let holds = BTreeMap::from([
            ("p1".to_string(), hold("p1", at(11))),
            ("p0".to_string(), hold("p0", at(9))),
        ]);
        let retained = BTreeMap::from([("p2".to_string(), at(30))]);
        let items = decide_prune(&points, &holds, &retained, now);
        assert_eq!(
            actions(&items),
            [("p3", Keep), ("p2", Keep), ("p1", Keep), ("p0", Remove)]
        );
        assert!(items[1].reasons[0].starts_with("under Object Lock retention until"));
        assert!(items[2].reasons[0].starts_with("held by restore until"));
    }

    #[test]
    fn each_point_is_judged_by_the_retention_it_was_made_under() {
        use PruneAction::{Keep, Remove};
        // The case: minutely points kept 5, then a point of another
        // schedule that keeps 1: neither policy reaches the other's points.
        let mut points: Vec<PointFacts> = (0..6)
            .map(|h| point(h, made_under("minutely", 5)))
            .collect();
        points.push(point(6, made_under("once", 1)));
        points.push(point(7, None));
        let items = decide_prune(&points, &BTreeMap::new(), &BTreeMap::new(), at(10));
        assert_eq!(
            actions(&items),
            [
                ("p7", Keep),
                ("p6", Keep),
                ("p5", Keep),
                ("p4", Keep),
                ("p3", Keep),
                ("p2", Keep),
                ("p1", Keep),
                ("p0", Remove)
            ]
        );
        assert!(
            items[0].reasons[0].starts_with("no retention recorded"),
            "{:?}",
            items[0]
        );
        assert!(
            items[1].reasons.iter().any(|r| r.starts_with("once: ")),
            "{:?}",
            items[1]
        );
        assert!(
            items[2].reasons.iter().any(|r| r.starts_with("minutely: ")),
            "{:?}",
            items[2]
        );
    }

    #[test]
    fn a_retention_in_an_unknown_time_zone_keeps_its_points() {
        // Read as UTC, its calendar buckets would move: nothing is removed.
        let points: Vec<PointFacts> = (0..4)
            .map(|h| {
                let mut r = made_under("nightly", 1);
                if let Some(r) = r.as_mut() {
                    r.timezone = "Mars/Olympus_Mons".into();
                }
                point(h, r)
            })
            .collect();
        let items = decide_prune(&points, &BTreeMap::new(), &BTreeMap::new(), at(10));
        assert!(
            items.iter().all(|i| i.action == PruneAction::Keep),
            "{items:?}"
        );
        assert!(
            items[3].reasons[0].contains("\"Mars/Olympus_Mons\" is not known"),
            "{:?}",
            items[3]
        );
    }

    #[test]
    fn citations_and_hand_set_dates_keep_a_point_and_say_why() {
        use PruneAction::{Keep, Remove};
        let mut points: Vec<PointFacts> =
            (0..4).map(|h| point(h, made_under("nightly", 1))).collect();
        points[0]
            .cited
            .push("cited by drill report r1 (etcd-region-failover)".into());
        points[1].kept_until = Some((at(48), "drtool points retain by alice".into()));
        points[2].kept_until = Some((at(5), "drtool points retain by bob".into()));
        let items = decide_prune(&points, &BTreeMap::new(), &BTreeMap::new(), at(10));
        assert_eq!(
            actions(&items),
            [("p3", Keep), ("p2", Remove), ("p1", Keep), ("p0", Keep)]
        );
        assert!(
            items[2].reasons[0].starts_with("kept until "),
            "{:?}",
            items[2]
        );
        assert!(
            items[3].reasons[0].starts_with("cited by drill report r1"),
            "{:?}",
            items[3]
        );
    }
}

/// A change of points' retention by hand (`drtool points retain`).
#[derive(Debug, Clone)]
pub struct RetainRequest {
    pub scope: Scope,
    pub target: String,
    /// These points (every point of the target when empty).
    pub points: Vec<PointId>,
    pub change: catalog::RetentionOverride,
}

impl Engine {
    /// Records the new retention next to each chosen point, in every region
    /// in scope that holds it; one report item per region.
    pub async fn retain(&self, req: &RetainRequest) -> Result<RunReport, Error> {
        self.check_scope(&req.scope)?;
        self.target(&req.target)?;
        let body = serde_json::to_vec_pretty(&req.change).map_err(Error::failed)?;
        let mut report = RunReport::default();
        for region in self.scoped_regions(&req.scope) {
            let item = ItemReport::new(Operation::Retain, &req.target, &region, None);
            let done = async {
                let rs = self.store(&region).await?;
                let listing = catalog::list_points(&rs, Some(&req.target)).await?;
                let mut changed = 0u64;
                for p in listing
                    .points
                    .iter()
                    .filter(|p| req.points.is_empty() || req.points.contains(&p.id))
                {
                    rs.store
                        .put(
                            &rs.layout.retention_key(&req.target, &p.id),
                            body.clone().into(),
                            Keep::Normal,
                        )
                        .await?;
                    changed += 1;
                }
                Ok::<u64, Error>(changed)
            }
            .await;
            report.push(match done {
                Ok(0) => item.with_outcome(Outcome::Skipped, "holds none of the points"),
                Ok(n) => {
                    let mut ok = item.ok(format!("retention of {n} points changed"));
                    ok.counts.insert("points".into(), n);
                    ok
                }
                Err(e) => item.failed(&e),
            });
        }
        Ok(report)
    }
}
