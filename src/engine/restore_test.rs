//! Restore tests: restore a point into a scratch place its kind provides (an
//! etcd drtool starts on free ports, a scratch namespace, a scratch database),
//! check what came back against the manifest, remove the scratch place, and
//! record the result next to the point (`restore-test.json`, never in the
//! signed manifest).

use std::time::Instant;

use chrono::Utc;

use super::events::JobSpec;
use super::kind::PlanRequest;
use super::report::{ItemReport, Operation, Outcome, RunReport};
use super::root::Engine;
use crate::archive::PointId;
pub use crate::catalog::CheckResult;
use crate::catalog::{self, PointChoice};
use crate::error::Error;
use crate::store::{Keep, StoreError};

impl Engine {
    /// Restore-tests `point` of `target` (its newest in the home region when
    /// none) in `region`, or in every region that holds it, DR copies first:
    /// a copy nobody restored is no copy.
    pub async fn restore_test(
        &self,
        target: &str,
        point: Option<&str>,
        region: Option<&str>,
    ) -> RunReport {
        let mut report = RunReport::default();
        let t = match self.target(target) {
            Ok(t) => t,
            Err(e) => {
                report.push(
                    ItemReport::new(
                        Operation::RestoreTest,
                        target,
                        "-",
                        point.map(str::to_string),
                    )
                    .failed(&e),
                );
                return report;
            }
        };
        if let Some(r) = region {
            if let Err(e) = self.region(r) {
                report.push(
                    ItemReport::new(Operation::RestoreTest, target, r, point.map(str::to_string))
                        .failed(&e),
                );
                return report;
            }
            return self.restore_test_one(target, point, r).await;
        }
        let (point, regions) = self.copies_of(t, point).await;
        for r in regions {
            report.extend(self.restore_test_one(target, point.as_deref(), &r).await);
        }
        report
    }

    /// The point to test (as named, or the home region's newest) and the
    /// regions that hold it, DR copies first. When the home region cannot
    /// be listed: the target's configured regions, each testing its own.
    async fn copies_of(
        &self,
        t: &crate::config::Target,
        point: Option<&str>,
    ) -> (Option<String>, Vec<String>) {
        let configured = || {
            let mut r: Vec<String> = t.copy_to.clone();
            r.push(t.home.clone());
            r
        };
        let listed = async {
            let rs = self.store(&t.home).await?;
            let listing = catalog::list_points(&rs, Some(&t.name)).await?;
            let choice = match point {
                Some(p) => PointChoice::Id(p.parse::<PointId>()?),
                None => PointChoice::Newest,
            };
            let m = catalog::select(&listing, &t.home, &t.name, &choice)?
                .chosen
                .manifest
                .clone();
            Ok::<_, Error>(m)
        }
        .await;
        match listed {
            Ok(m) => {
                let mut regions: Vec<String> = m
                    .copied_to
                    .iter()
                    .filter(|r| self.config().region(r).is_some())
                    .cloned()
                    .collect();
                regions.push(t.home.clone());
                (Some(m.point_id.clone()), regions)
            }
            Err(_) => (point.map(str::to_string), configured()),
        }
    }

    /// Restore-tests one point in one region and records the result there;
    /// a point that is not found is reported, and nothing is written.
    async fn restore_test_one(&self, target: &str, point: Option<&str>, region: &str) -> RunReport {
        let started = Instant::now();
        let mut report = RunReport::default();
        let named = point.map(str::to_string);
        let item = |region: &str, point: Option<String>| {
            ItemReport::new(Operation::RestoreTest, target, region, point)
        };
        let t = match self.target(target) {
            Ok(t) => t,
            Err(e) => {
                report.push(item(region, named).failed(&e));
                return report;
            }
        };
        let region = region.to_string();
        let (point, tested) = match self.restore_test_in(target, point, &region).await {
            Ok((p, m)) => (p, Ok(m)),
            Err((p, e)) => (p, Err(e)),
        };
        let Some(point) = point else {
            // Not found (or not even listed): nothing to test, nothing written.
            if let Err(e) = tested {
                report.push(item(&region, named).failed(&e));
            }
            return report;
        };
        let item = |region: &str| item(region, Some(point.clone()));
        let (ok, message) = match &tested {
            Ok(Some(m)) => (true, m.clone()),
            Ok(None) => {
                report.push(item(&region).with_outcome(
                    Outcome::Skipped,
                    format!(
                        "this {} point cannot be restore-tested cheaply (no scratch place for it): run a drill",
                        t.spec.kind()
                    ),
                ));
                return report;
            }
            Err(e) => (false, e.to_string()),
        };
        let result = CheckResult {
            at: Utc::now(),
            ok,
            message: message.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        if let Err(e) = self
            .record_restore_test(&region, target, &point, &result)
            .await
        {
            tracing::warn!("could not record the restore test of {point}: {e}");
        }
        report.push(match tested {
            Ok(_) => item(&region).ok(message).timed(started),
            Err(e) => item(&region).failed(&e).timed(started),
        });
        report
    }

    /// The point (as named, or the newest) in `region`, with its listing.
    async fn find_point(
        &self,
        target: &str,
        point: Option<&str>,
        region: &str,
    ) -> Result<(crate::catalog::RegionStore, catalog::Listing, String), Error> {
        let rs = self.store(region).await?;
        let listing = catalog::list_points(&rs, Some(target)).await?;
        let choice = match point {
            Some(p) => PointChoice::Id(p.parse::<PointId>()?),
            None => PointChoice::Newest,
        };
        let id = catalog::select(&listing, region, target, &choice)?
            .chosen
            .id
            .to_string();
        Ok((rs, listing, id))
    }

    /// What `restore_test` would do: per region, the point it would test
    /// (found and listed, as the real run finds it) and its size. Nothing is
    /// started, held or recorded.
    pub async fn restore_test_plan(
        &self,
        target: &str,
        point: Option<&str>,
        region: Option<&str>,
    ) -> RunReport {
        let mut report = RunReport::default();
        let item = |region: &str, point: Option<String>| {
            ItemReport::new(Operation::RestoreTest, target, region, point)
        };
        let t = match self.target(target) {
            Ok(t) => t,
            Err(e) => {
                report.push(item("-", point.map(str::to_string)).failed(&e));
                return report;
            }
        };
        let (point, regions) = match region {
            Some(r) => match self.region(r) {
                Ok(_) => (point.map(str::to_string), vec![r.to_string()]),
                Err(e) => {
                    report.push(item(r, point.map(str::to_string)).failed(&e));
                    return report;
                }
            },
            None => self.copies_of(t, point).await,
        };
        for r in regions {
            match self.find_point(target, point.as_deref(), &r).await {
                Ok((rs, listing, id)) => {
                    let size = listing
                        .points
                        .iter()
                        .find(|p| p.id.as_str() == id)
                        .map(|p| p.manifest.stored_size);
                    let mut planned = item(&r, Some(id.clone())).with_outcome(
                        Outcome::Planned,
                        format!(
                            "would restore {id} from {} into a scratch place of its kind ({}), check it against its manifest, remove the scratch place and record the result",
                            rs.store.describe(),
                            t.spec.kind()
                        ),
                    );
                    planned.bytes = size;
                    report.push(planned);
                }
                Err(e) => report.push(item(&r, point.clone()).failed(&e)),
            }
        }
        report
    }

    /// The point tested (once known) and what its test said.
    #[allow(clippy::type_complexity)]
    async fn restore_test_in(
        &self,
        target: &str,
        point: Option<&str>,
        region: &str,
    ) -> Result<(Option<String>, Option<String>), (Option<String>, Error)> {
        let found = self.find_point(target, point, region).await;
        // Until the point is found in the region, there is no point to record
        // a result for: an unknown id writes nothing.
        let (rs, listing, id) = found.map_err(|e| (None, e))?;
        match self
            .restore_test_point(target, &rs, &listing, &id, region)
            .await
        {
            Ok(m) => Ok((Some(id), m)),
            Err(e) => Err((Some(id), e)),
        }
    }

    async fn restore_test_point(
        &self,
        target: &str,
        rs: &crate::catalog::RegionStore,
        listing: &catalog::Listing,
        point: &str,
        region: &str,
    ) -> Result<Option<String>, Error> {
        let t = self.target(target)?;
        let kind = self.kind_of(t)?;
        let id: PointId = point.parse()?;
        let selection = catalog::select(listing, region, target, &PointChoice::Id(id))?;
        let entry = selection.chosen;
        let job = self.job(
            JobSpec::new(Operation::RestoreTest)
                .target(target)
                .region(region)
                .point(point.to_string()),
        );
        // Held while it is tested, so a prune elsewhere leaves it alone.
        let holder = format!("restore test of {target}");
        if let Err(e) = self.hold_point(region, target, point, &holder).await {
            tracing::warn!("could not hold {point} during its restore test: {e}");
        }
        let tested = self.test_in_scratch(&kind, t, rs, entry, &job).await;
        let _ = self.release_point(region, target, point).await;
        match &tested {
            Ok(None) => job.finish(Outcome::Skipped, "no scratch place for this point", None),
            Ok(Some(m)) => job.finish(Outcome::Ok, m.clone(), None),
            Err(e) => job.fail(e),
        }
        tested
    }

    async fn test_in_scratch(
        &self,
        kind: &std::sync::Arc<dyn super::kind::TargetKind>,
        t: &crate::config::Target,
        rs: &crate::catalog::RegionStore,
        entry: &catalog::PointEntry,
        job: &super::events::Job,
    ) -> Result<Option<String>, Error> {
        let Some(scratch) = kind.scratch(t, &rs.region, &entry.manifest, job).await? else {
            return Ok(None);
        };
        let outcome = async {
            let point_ref = self.point_ref(rs, entry);
            let data = self.point_data(rs, point_ref, job);
            let plan = kind
                .plan_restore(PlanRequest {
                    target: &scratch.target,
                    region: &scratch.region,
                    options: &scratch.options,
                    point: Some((&entry.manifest, data.clone())),
                    job,
                })
                .await?;
            let applied = kind.apply(&plan, Some(data), job).await?;
            scratch.guard.check(&entry.manifest, &plan, &applied).await
        }
        .await;
        let removed = scratch.guard.remove().await;
        match (outcome, removed) {
            (Ok(m), Ok(())) => Ok(Some(m)),
            (Ok(_), Err(e)) => {
                Err(e.noted("the restore test passed, but its scratch place could not be removed"))
            }
            (Err(e), Ok(())) => Err(e),
            (Err(e), Err(r)) => {
                Err(e.noted(format!("and its scratch place could not be removed: {r}")))
            }
        }
    }

    async fn record_restore_test(
        &self,
        region: &str,
        target: &str,
        point: &str,
        result: &CheckResult,
    ) -> Result<(), Error> {
        let rs = self.store(region).await?;
        let key = rs.layout.restore_test_key(target, &point.parse()?);
        let body = serde_json::to_vec_pretty(result).map_err(Error::failed)?;
        rs.store.put(&key, body.into(), Keep::Normal).await?;
        Ok(())
    }

    /// The last restore test of a point, if it had one.
    pub async fn last_restore_test(
        &self,
        region: &str,
        target: &str,
        point: &str,
    ) -> Result<Option<CheckResult>, Error> {
        let rs = self.store(region).await?;
        let key = rs.layout.restore_test_key(target, &point.parse()?);
        match rs.store.get(&key).await {
            Ok(body) => Ok(serde_json::from_slice(&body).ok()),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
