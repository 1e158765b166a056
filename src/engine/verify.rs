//! Verify: download each point, check the manifest's own checksum, the stored
//! and plaintext hashes, that it decompresses, for etcd snapshots the embedded
//! sha256 trailer, and (through its kind) the artefacts kept outside the bucket.

use std::time::Instant;

use super::events::{Job, JobSpec};
use super::point::{PointData, PointRef, pipeline_error};
use super::report::{ItemReport, Operation, Outcome, RunReport};
use super::root::{Engine, Scope};
use crate::archive::pipeline::{self, DataSummary};
use crate::archive::{ArchiveError, PointId};
use crate::catalog::{self, PointEntry, RegionStore};
use crate::error::Error;

#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    pub scope: Scope,
    /// Only this point.
    pub point: Option<PointId>,
}

impl Engine {
    /// Verifies every point in scope, region by region.
    pub async fn verify(&self, req: &VerifyRequest) -> Result<RunReport, Error> {
        self.check_scope(&req.scope)?;
        let mut report = RunReport::default();
        for region in self.scoped_regions(&req.scope) {
            report.extend(self.verify_region(&region, req).await);
        }
        if report.is_empty() {
            return Err(Error::input(
                "no recovery points matched: nothing was verified",
            ));
        }
        Ok(report)
    }

    async fn verify_region(&self, region: &str, req: &VerifyRequest) -> RunReport {
        let mut report = RunReport::default();
        let target = req.scope.target.as_deref();
        let any = target.unwrap_or("*");
        let listed = match self.store(region).await {
            Ok(rs) => catalog::list_points(&rs, target)
                .await
                .map(|l| (rs, l))
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        let (rs, listing) = match listed {
            Ok(l) => l,
            Err(e) => {
                report.push(ItemReport::new(Operation::Verify, any, region, None).failed(&e));
                return report;
            }
        };
        let wanted = |point: &str| req.point.as_ref().is_none_or(|id| id.as_str() == point);
        for problem in listing.problems.iter().filter(|p| wanted(&p.point)) {
            let e = Error::from(ArchiveError::BadManifest {
                key: format!("point {}", problem.point),
                detail: problem.detail.clone(),
            });
            let mut item = ItemReport::new(
                Operation::Verify,
                &problem.target,
                region,
                Some(problem.point.clone()),
            )
            .failed(&e);
            item.message = problem.detail.clone();
            report.push(item);
        }
        for entry in listing.points.iter().filter(|p| wanted(p.id.as_str())) {
            report.push(self.verify_point(&rs, entry).await);
        }
        report
    }

    /// Verifies one point; the message says what was checked.
    pub(crate) async fn verify_point(&self, rs: &RegionStore, entry: &PointEntry) -> ItemReport {
        let started = Instant::now();
        let m = &entry.manifest;
        let job = self.job(
            JobSpec::new(Operation::Verify)
                .target(&m.target)
                .region(&rs.region)
                .point(entry.id.to_string())
                .total_bytes(Some(m.plaintext_size)),
        );
        let item = ItemReport::new(
            Operation::Verify,
            &m.target,
            &rs.region,
            Some(entry.id.to_string()),
        );
        match self.check_point(rs, entry, &job).await {
            Ok((outcome, message)) => {
                job.finish(outcome, &message, None);
                let mut done = item.with_outcome(outcome, message).timed(started);
                done.bytes = Some(m.plaintext_size);
                done
            }
            Err(e) => {
                job.fail(&e);
                item.failed(&e).timed(started)
            }
        }
    }

    async fn check_point(
        &self,
        rs: &RegionStore,
        entry: &PointEntry,
        job: &Job,
    ) -> Result<(Outcome, String), Error> {
        let m = &entry.manifest;
        let point = PointRef::from_entry(rs, entry);
        let (outcome, mut message) = match &point.data_key {
            None => (Outcome::Ok, String::new()),
            Some(key) if m.is_encrypted() && self.identities().is_none() => {
                stored_only(rs, key, &point, job).await?
            }
            Some(_) => {
                job.phase("downloading and checking");
                PointData::new(
                    rs.store.clone(),
                    point.clone(),
                    self.identities(),
                    job.clone(),
                )
                .stream()
                .await?
                .verify()
                .await?;
                let mut message = format!(
                    "ok: {} stored bytes and {} plaintext bytes match their sha256, zstd decodes",
                    m.stored_size, m.plaintext_size
                );
                if m.payload.has_trailing_sha256() {
                    message.push_str(", etcd snapshot trailer ok");
                }
                (Outcome::Ok, message)
            }
        };
        let kind = self.kind_named(&m.target_kind)?;
        let target = self.config().target(&m.target);
        if let Some(external) = kind.verify_external(target, m, &rs.region, job).await? {
            message = if message.is_empty() {
                external
            } else {
                format!("{message}; {external}")
            };
        }
        if message.is_empty() {
            message = "no data object".into();
        }
        Ok((outcome, message))
    }
}

/// Encrypted points without an identity: only the stored bytes can be checked.
async fn stored_only(
    rs: &RegionStore,
    key: &str,
    point: &PointRef,
    job: &Job,
) -> Result<(Outcome, String), Error> {
    let (size, sha) = job
        .cancellable(async {
            pipeline::hash_object(rs.store.as_ref(), key, job.on_bytes())
                .await
                .map_err(pipeline_error)
        })
        .await?;
    let expected = DataSummary {
        plaintext_size: point.plaintext_size,
        plaintext_sha256: point.plaintext_sha256.clone(),
        stored_size: point.stored_size,
        stored_sha256: point.stored_sha256.clone(),
        version: None,
    };
    let found = DataSummary {
        stored_size: size,
        stored_sha256: sha,
        ..expected.clone()
    };
    pipeline::check_summary(key, &found, &expected, false)?;
    Ok((
        Outcome::Warning,
        "stored bytes match; plaintext not checked: the point is encrypted, pass --identity FILE"
            .into(),
    ))
}
