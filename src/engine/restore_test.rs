//! Restore tests: restore a point into a scratch place its kind provides (an
//! etcd drtool starts on free ports, a scratch namespace, a scratch database),
//! check what came back against the manifest, remove the scratch place, and
//! record the result next to the point (`restore-test.json`, never in the
//! signed manifest).

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::JobSpec;
use super::kind::PlanRequest;
use super::point::{PointData, PointRef};
use super::report::{ItemReport, Operation, Outcome, RunReport};
use super::root::Engine;
use crate::archive::PointId;
use crate::catalog::{self, PointChoice};
use crate::error::Error;
use crate::store::{Keep, StoreError};

/// The last restore test of a point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreTest {
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub message: String,
    pub duration_ms: u64,
}

impl Engine {
    /// Restore-tests `point` of `target` from its home region.
    pub async fn restore_test(&self, target: &str, point: &str) -> RunReport {
        let started = Instant::now();
        let mut report = RunReport::default();
        let item = |region: &str| {
            ItemReport::new(
                Operation::RestoreTest,
                target,
                region,
                Some(point.to_string()),
            )
        };
        let t = match self.target(target) {
            Ok(t) => t,
            Err(e) => {
                report.push(item("-").failed(&e));
                return report;
            }
        };
        let region = t.home.clone();
        let tested = self.restore_test_in(target, point, &region).await;
        let (ok, message) = match &tested {
            Ok(Some(m)) => (true, m.clone()),
            Ok(None) => {
                report.push(item(&region).with_outcome(
                    Outcome::Skipped,
                    format!("{} points of this kind are not restore-tested (no cheap scratch place): run a drill", t.spec.kind()),
                ));
                return report;
            }
            Err(e) => (false, e.to_string()),
        };
        let result = RestoreTest {
            at: Utc::now(),
            ok,
            message: message.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        if let Err(e) = self
            .record_restore_test(&region, target, point, &result)
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

    async fn restore_test_in(
        &self,
        target: &str,
        point: &str,
        region: &str,
    ) -> Result<Option<String>, Error> {
        let t = self.target(target)?;
        let kind = self.kind_of(t)?;
        let rs = self.store(region).await?;
        let listing = catalog::list_points(&rs, Some(target)).await?;
        let id: PointId = point.parse()?;
        let selection = catalog::select(&listing, region, target, &PointChoice::Id(id))?;
        let entry = selection.chosen;
        let job = self.job(
            JobSpec::new(Operation::RestoreTest)
                .target(target)
                .region(region)
                .point(point.to_string()),
        );
        let Some(scratch) = kind.scratch(t, &entry.manifest, &job).await? else {
            return Ok(None);
        };
        let outcome = async {
            let point_ref = PointRef::from_entry(&rs, entry);
            let data = PointData::new(rs.store.clone(), point_ref, self.identities(), job.clone());
            let plan = kind
                .plan_restore(PlanRequest {
                    target: &scratch.target,
                    region: &scratch.region,
                    options: &scratch.options,
                    point: Some((&entry.manifest, data.clone())),
                    job: &job,
                })
                .await?;
            let applied = kind.apply(&plan, Some(data), &job).await?;
            scratch.guard.check(&entry.manifest, &plan, &applied).await
        }
        .await;
        let removed = scratch.guard.remove().await;
        let message = outcome?;
        removed.map_err(|e| {
            e.noted("the restore test passed, but its scratch place could not be removed")
        })?;
        Ok(Some(message))
    }

    async fn record_restore_test(
        &self,
        region: &str,
        target: &str,
        point: &str,
        result: &RestoreTest,
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
    ) -> Result<Option<RestoreTest>, Error> {
        let rs = self.store(region).await?;
        let key = rs.layout.restore_test_key(target, &point.parse()?);
        match rs.store.get(&key).await {
            Ok(body) => Ok(serde_json::from_slice(&body).ok()),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
