//! Restore: plan first (which point, from where, into what, what is overwritten),
//! then execute only that plan. Everything is read from one region: its store and
//! its endpoints, so a restore works while every other region is down.
//!
//! A plan is self-contained: the point reference (keys, sizes, hashes), the
//! kind's resolved endpoints and references, what will change. Executing it
//! reads no config; `-o json` of a plan is the whole plan.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::events::{Job, JobSpec};
use super::kind::{KindPlan, PlanRequest, TargetKind};
use super::options::RestoreOptions;
use super::point::PointRef;
use super::replay::{ReplayPlan, ReplayTo};
use super::report::{ItemReport, Operation, Outcome, RunReport};
use super::root::Engine;
use crate::archive::ArchiveError;
use crate::catalog::{self, PassedOver, PointChoice, PointEntry, RegionStore};
use crate::config::Target;
use crate::error::{Error, ErrorClass, SourceError};

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub region: String,
    pub target: String,
    pub point: PointChoice,
    pub options: RestoreOptions,
}

/// A restore, fully decided, ready to print, confirm and execute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestorePlan {
    pub region: String,
    pub target: String,
    pub kind: String,
    /// The recovery point restored; none when the kind restores without one
    /// (an RDS point-in-time restore).
    pub point: Option<PointRef>,
    /// Newer points that were not chosen, and why (damaged, incomplete).
    #[serde(default)]
    pub passed_over: Vec<PassedOver>,
    /// Whether the plan replaces or overwrites anything.
    pub destructive: bool,
    /// Checksums already verified while planning.
    pub verified: bool,
    /// The kind's own plan: everything its execution needs.
    pub action: serde_json::Value,
    /// What the kind's plan does, one line per fact.
    pub summary: Vec<String>,
    /// The point's stream replayed after it (a restore to a revision or a
    /// time between points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayPlan>,
}

impl RestorePlan {
    /// A short name of what is restored, for results.
    pub fn source(&self) -> String {
        match &self.point {
            Some(p) => p.id.clone(),
            None => "-".into(),
        }
    }

    /// Human-readable plan, one line per fact.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "restore plan for target {} in region {}",
            self.target, self.region
        )];
        if let Some(p) = &self.point {
            lines.push(format!(
                "  point      {} (finished {}, taken in {})",
                p.id,
                p.finished_at.to_rfc3339(),
                p.source_region
            ));
            lines.push(format!("  from       {}", p.store));
            lines.push(format!(
                "  payload    {}, {} bytes ({} stored{})",
                p.payload_line(),
                p.plaintext_size,
                p.stored_size,
                if p.encrypted { ", age-encrypted" } else { "" }
            ));
            lines.push(format!("  consistent {}", p.consistency_line()));
            lines.push(format!(
                "  signed     {}",
                match &p.signed_by {
                    Some(key) => format!("by ed25519 key {key} (signature checked)"),
                    None => "no trusted signature (set [signing] verify_keys to require one)"
                        .to_string(),
                }
            ));
        }
        for skipped in &self.passed_over {
            lines.push(format!(
                "  NOT USED   newer point {}: {}",
                skipped.point, skipped.reason
            ));
        }
        lines.extend(self.summary.iter().map(|l| format!("  {l}")));
        if let Some(r) = &self.replay {
            lines.extend(r.describe().into_iter().map(|l| format!("  {l}")));
        }
        if self.point.is_some() {
            lines.push(format!(
                "  checksums  {}",
                if self.verified {
                    "verified while planning"
                } else {
                    "verified before any change"
                }
            ));
        }
        lines
    }

    fn kind_plan(&self) -> KindPlan {
        KindPlan {
            action: self.action.clone(),
            lines: self.summary.clone(),
            destructive: self.destructive,
            verified: self.verified,
        }
    }
}

/// The newest points a restore to a revision looks at for a stream that
/// reaches it (one listing each).
const BASES_LOOKED_AT: usize = 8;

/// How far a point choice replays the point's stream: the newest point and
/// a time go as far as the region holds (up to that time); a point asked
/// for by id is restored as it is.
fn replay_to(choice: &PointChoice) -> Option<ReplayTo> {
    match choice {
        PointChoice::Newest => Some(ReplayTo::Newest),
        PointChoice::Before(t) => Some(ReplayTo::Before(*t)),
        PointChoice::Revision(n) => Some(ReplayTo::Position(*n)),
        PointChoice::Id(_) => None,
    }
}

/// Older points tried when the chosen one fails its checks while planning.
const MAX_FALLBACKS: usize = 2;

type Planned = (
    Option<PointRef>,
    Vec<PassedOver>,
    KindPlan,
    Option<ReplayPlan>,
);

impl Engine {
    /// Builds the plan. Reads only `req.region`'s store and endpoints.
    pub async fn plan_restore(&self, req: &RestoreRequest) -> Result<RestorePlan, Error> {
        self.region(&req.region)?;
        self.check_reachable(&req.region)?;
        let target = self.target(&req.target)?;
        let kind = self.kind_of(target)?;
        if let Some(read_by) = req.options.kind.kind()
            && read_by != kind.name()
        {
            return Err(Error::input(format!(
                "the restore options were read for a target of kind {read_by}, and target {} is of kind {}: \
                 read them again for it",
                target.name,
                kind.name()
            )));
        }
        let job = self.job(
            JobSpec::new(Operation::Plan)
                .target(&target.name)
                .region(&req.region),
        );
        let planned = self.plan_with(&kind, target, req, &job).await;
        let (point, passed_over, plan, replay) = job.settle(planned, |_| "planned".to_string())?;
        Ok(RestorePlan {
            region: req.region.clone(),
            target: target.name.clone(),
            kind: kind.name().to_string(),
            point,
            passed_over,
            destructive: plan.destructive,
            verified: plan.verified,
            action: plan.action,
            summary: plan.lines,
            replay,
        })
    }

    async fn plan_with(
        &self,
        kind: &Arc<dyn TargetKind>,
        target: &Target,
        req: &RestoreRequest,
        job: &Job,
    ) -> Result<Planned, Error> {
        if !kind.needs_point(&req.options) {
            if req.point != PointChoice::Newest {
                return Err(Error::input(
                    "this restore reads no recovery point: drop --point and --before",
                ));
            }
            let plan = kind
                .plan_restore(PlanRequest {
                    target,
                    region: &req.region,
                    options: &req.options,
                    point: None,
                    job,
                })
                .await?;
            return Ok((None, Vec::new(), plan, None));
        }
        let rs = self.store(&req.region).await?;
        let listing = catalog::list_points(&rs, Some(&target.name)).await?;
        let choice = self
            .base_of(kind, target, &listing, &rs, &req.point)
            .await?;
        let selection = catalog::select(&listing, &req.region, &target.name, &choice)?;
        let mut passed_over = selection.passed_over;
        let explicit = matches!(req.point, PointChoice::Id(_));
        let candidates = std::iter::once(selection.chosen)
            .chain(selection.fallbacks.into_iter().take(MAX_FALLBACKS));
        for entry in candidates {
            match self.plan_point(kind, target, req, &rs, entry, job).await {
                Ok((point, plan)) => {
                    let replay = match (kind.streams(), replay_to(&req.point)) {
                        (Some(streams), Some(to)) => {
                            self.plan_replay(streams, &rs, entry, to, job).await?
                        }
                        _ => None,
                    };
                    return Ok((Some(point), passed_over, plan, replay));
                }
                // A point whose data fails its checks is passed over when the
                // newest one was asked for; the plan names it.
                Err(e) if e.class() == ErrorClass::Integrity && !explicit => {
                    job.warn(format!("point {} is not used: {e}", entry.id));
                    passed_over.push(PassedOver {
                        point: entry.id.to_string(),
                        reason: format!("failed its checks: {e}"),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        let tried: Vec<String> = passed_over
            .iter()
            .map(|p| format!("{}: {}", p.point, p.reason))
            .collect();
        Err(SourceError::Integrity {
            what: format!("target {} in region {}", target.name, req.region),
            detail: format!(
                "no recovery point passed its checks ({}); run `drtool verify --region {} --target {}`, or restore from another region",
                tried.join("; "),
                req.region,
                target.name
            ),
        }
        .into())
    }

    /// The point a restore to a revision starts from: the newest whose own
    /// revision is at or before it and whose stream in the region reaches
    /// it (a schedule's point can be newer than the base the stream still
    /// followed for a few seconds); when none reaches it, the newest at or
    /// before it, whose plan says how far it goes. Other choices are left as
    /// they are.
    async fn base_of(
        &self,
        kind: &Arc<dyn TargetKind>,
        target: &Target,
        listing: &catalog::Listing,
        rs: &RegionStore,
        choice: &PointChoice,
    ) -> Result<PointChoice, Error> {
        let PointChoice::Revision(n) = choice else {
            return Ok(choice.clone());
        };
        let streams = kind.streams().ok_or_else(|| {
            Error::input(format!(
                "target {}: its kind ({}) has no stream, so it restores points, not revisions: use --point or --before",
                target.name,
                kind.name()
            ))
        })?;
        let bases: Vec<(&PointEntry, u64)> = listing
            .points
            .iter()
            .rev()
            .filter(|p| p.manifest.target == target.name)
            .filter_map(|p| {
                let pos = streams.position(&p.manifest).ok()?;
                (pos <= *n).then_some((p, pos))
            })
            .take(BASES_LOOKED_AT)
            .collect();
        for (p, pos) in &bases {
            let reaches = if pos == n {
                *pos
            } else {
                super::stream::chain_in(rs, &target.name, &p.id, *pos)
                    .await?
                    .reaches
            };
            if reaches >= *n {
                return Ok(PointChoice::Id(p.id.clone()));
            }
        }
        bases
            .first()
            .map(|(p, _)| PointChoice::Id(p.id.clone()))
            .ok_or_else(|| {
                Error::input(format!(
                    "region {} holds no point of {} at or before revision {n} that a stream starts from: \
                     run `drtool stream status --target {}` to see what it holds",
                    rs.region, target.name, target.name
                ))
            })
    }

    /// Plans the restore of one point.
    async fn plan_point(
        &self,
        kind: &Arc<dyn TargetKind>,
        target: &Target,
        req: &RestoreRequest,
        rs: &RegionStore,
        entry: &PointEntry,
        job: &Job,
    ) -> Result<(PointRef, KindPlan), Error> {
        let m = &entry.manifest;
        if m.target_kind != kind.name() {
            return Err(Error::input(format!(
                "point {} is a {} point but target {} is of kind {}",
                entry.id,
                m.target_kind,
                target.name,
                kind.name()
            )));
        }
        if m.is_encrypted() && self.identities().is_none() {
            return Err(ArchiveError::NeedsIdentity {
                key: entry.manifest_key.clone(),
            }
            .into());
        }
        job.set_point(entry.id.as_str());
        let signed_by = self.check_signature(m, &req.region)?;
        let mut point = self.point_ref(rs, entry);
        point.signed_by = signed_by;
        let data = self.point_data(rs, point.clone(), job);
        let plan = kind
            .plan_restore(PlanRequest {
                target,
                region: &req.region,
                options: &req.options,
                point: Some((m, data.clone())),
                job,
            })
            .await?;
        // Execution reads exactly the bytes planning verified.
        point.data_version = data.verified_version();
        Ok((point, plan))
    }

    async fn replay_after(
        &self,
        kind: &Arc<dyn TargetKind>,
        plan: &RestorePlan,
        replay: &ReplayPlan,
        job: &Job,
    ) -> Result<super::kind::Applied, Error> {
        let streams = kind
            .streams()
            .ok_or_else(|| Error::failed("the plan replays a stream of a kind without streams"))?;
        let rs = self.store(&plan.region).await?;
        self.run_replay(streams, &plan.kind_plan(), &rs, replay, job)
            .await
    }

    /// Applies the plan's kind plan and its stream's replay: after the
    /// restore, or within it for a kind whose restored data cannot be
    /// replayed into once handed over.
    async fn apply_plan(
        &self,
        kind: &Arc<dyn TargetKind>,
        plan: &RestorePlan,
        data: Option<super::point::PointData>,
        job: &Job,
    ) -> Result<super::kind::Applied, Error> {
        let kind_plan = plan.kind_plan();
        if let (Some(streams), Some(replay)) = (kind.streams(), &plan.replay)
            && streams.replays_before_handing_over(&kind_plan)
        {
            let rs = self.store(&plan.region).await?;
            return self
                .apply_replayed(streams, &kind_plan, data, &rs, replay, job)
                .await;
        }
        let mut applied = kind.apply(&kind_plan, data, job).await;
        if let (Ok(done), Some(replay)) = (&mut applied, &plan.replay) {
            match self.replay_after(kind, plan, replay, job).await {
                Ok(more) => {
                    done.message = format!("{}; {}", done.message, more.message);
                    done.counts.extend(more.counts);
                    done.failures.extend(more.failures);
                }
                Err(e) => {
                    applied = Err(e.noted(format!(
                        "the base point was restored ({}); the stream's replay stopped",
                        done.message
                    )))
                }
            }
        }
        applied
    }

    /// Runs a plan made by [`Engine::plan_restore`]. The caller has shown it and,
    /// if it is destructive, obtained confirmation.
    pub async fn execute(&self, plan: &RestorePlan) -> RunReport {
        let started = Instant::now();
        let source = plan.source();
        let job = self.job(
            JobSpec::new(Operation::Restore)
                .target(&plan.target)
                .region(&plan.region)
                .point(plan.point.as_ref().map(|p| p.id.clone()))
                .total_bytes(plan.point.as_ref().map(|p| p.plaintext_size)),
        );
        let item = ItemReport::new(
            Operation::Restore,
            &plan.target,
            &plan.region,
            Some(source.clone()),
        );
        let applied = async {
            self.check_reachable(&plan.region)?;
            let kind = self.kind_named(&plan.kind)?;
            let data = match &plan.point {
                None => None,
                Some(p) => {
                    let rs = self.store(&p.region).await?;
                    if rs.store.describe() != p.store {
                        return Err(Error::input(format!(
                            "the plan reads point {} from {}, but region {}'s store is now {}: plan the restore again",
                            p.id,
                            p.store,
                            p.region,
                            rs.store.describe()
                        )));
                    }
                    Some(self.point_data(&rs, p.clone(), &job))
                }
            };
            // No prune removes the point while it is being restored.
            if let Some(p) = &plan.point
                && let Err(e) = self.hold_point(&p.region, &plan.target, &p.id, "a restore").await
            {
                job.warn(format!("could not hold point {} against prune: {e}", p.id));
            }
            let applied = self.apply_plan(&kind, plan, data, &job).await;
            if let Some(p) = &plan.point {
                let _ = self.release_point(&p.region, &plan.target, &p.id).await;
            }
            applied
        }
        .await;
        let mut report = RunReport::default();
        match applied {
            Ok(done) => {
                let outcome = if done.failures.is_empty() {
                    Outcome::Ok
                } else {
                    Outcome::Warning
                };
                job.finish(outcome, &done.message, None);
                let mut ok = item.ok(done.message).timed(started);
                ok.counts = done.counts;
                ok.bytes = plan.point.as_ref().map(|p| p.plaintext_size);
                report.push(ok);
                for f in done.failures {
                    let e = Error::failed(format!("{}: {}", f.item, f.error));
                    report.push(
                        ItemReport::new(
                            Operation::Restore,
                            &plan.target,
                            &plan.region,
                            Some(source.clone()),
                        )
                        .failed(&e),
                    );
                }
            }
            Err(e) => {
                job.fail(&e);
                report.push(item.failed(&e).timed(started));
            }
        }
        report
    }
}
