//! Deleting recovery points (what `prune` builds on): a point is removed in every
//! region of its target, with the artefacts its kind keeps outside the bucket.
//! Those go first (a kind may refuse, e.g. an RDS snapshot drtool did not make,
//! and then the point stays whole), then the manifest, so an interrupted delete
//! leaves unlisted data (an orphan `prune` removes), never a point whose data is
//! gone.

use std::time::Instant;

use super::report::{ItemReport, Operation, Outcome, RunReport};
use super::root::Engine;
use crate::archive::{Manifest, PointId};
use crate::catalog::RegionStore;
use crate::config::Target;
use crate::error::Error;
use crate::store::StoreError;

impl Engine {
    /// Deletes `point` of `target` from every region of the target.
    pub async fn delete_point(&self, target: &str, point: &PointId) -> Result<RunReport, Error> {
        let target = self.target(target)?;
        let mut report = RunReport::default();
        for region in target.regions() {
            let started = Instant::now();
            let item = ItemReport::new(
                Operation::Delete,
                &target.name,
                region,
                Some(point.to_string()),
            );
            let deleted = match self.store(region).await {
                Ok(rs) => self.delete_in_region(target, &rs, point).await,
                Err(e) => Err(e),
            };
            report.push(match deleted {
                Ok(None) => item.with_outcome(Outcome::Skipped, "not present"),
                Ok(Some(what)) => item
                    .ok(format!("deleted {}", what.join(", ")))
                    .timed(started),
                Err(e) => item.failed(&e).timed(started),
            });
        }
        Ok(report)
    }

    /// Deletes `point` of `target` in one region (what prune does): what
    /// was deleted, or none when the region does not hold it.
    pub async fn delete_point_in(
        &self,
        region: &str,
        target: &str,
        point: &PointId,
    ) -> Result<Option<Vec<String>>, Error> {
        let target = self.target(target)?;
        let rs = self.store(region).await?;
        self.delete_in_region(target, &rs, point).await
    }

    async fn delete_in_region(
        &self,
        target: &Target,
        rs: &RegionStore,
        point: &PointId,
    ) -> Result<Option<Vec<String>>, Error> {
        let key = rs.layout.manifest_key(&target.name, point);
        let manifest = match rs.store.get(&key).await {
            Ok(bytes) => Manifest::parse(&key, &bytes)?,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let kind = self.kind_named(&manifest.target_kind)?;
        let mut deleted = kind
            .delete_external(Some(target), &manifest, &rs.region)
            .await?;
        // Its stream's segments go with it, first: an interrupted delete
        // leaves the point, which a second delete finds (without their base
        // they restore nothing; a stream writing under it moves to a newer one).
        let segments = rs
            .store
            .list(&rs.layout.stream_prefix(&target.name, Some(point)))
            .await?;
        if !segments.is_empty() {
            for s in &segments {
                rs.store.delete(&s.key).await?;
            }
            deleted.push(format!("{} stream segments", segments.len()));
        }
        rs.store.delete(&key).await?;
        deleted.push("manifest".into());
        if manifest.data_file.is_some() {
            rs.store
                .delete(
                    &rs.layout
                        .data_key(&target.name, point, manifest.is_encrypted()),
                )
                .await?;
            deleted.push("data".into());
        }
        // The results of its checks and its hand-set retention go with the
        // point (gone already is fine).
        let (verified, failed) = rs.layout.verify_keys(&target.name, point, true);
        for key in [
            rs.layout.restore_test_key(&target.name, point),
            verified,
            failed,
            rs.layout.retention_key(&target.name, point),
        ] {
            let _ = rs.store.delete(&key).await;
        }
        Ok(Some(deleted))
    }
}
