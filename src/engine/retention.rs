//! Deleting recovery points (the hook `prune` builds on): a point is removed in
//! every region that holds it, together with the RDS snapshots drtool made for
//! it. The manifest goes first, so an interrupted delete leaves unlisted data
//! (cleaned up later), never a point whose data is gone.

use super::ItemResult;
use crate::archive::{Manifest, PointId};
use crate::config::{Config, Target, TargetSpec};
use crate::error::Error;
use crate::source::rds::{self, Rds};
use crate::store::{RegionStore, StoreError};

/// Deletes `point` of `target` from every region of the target.
pub async fn delete_point(cfg: &Config, target: &Target, point: &PointId) -> Vec<ItemResult> {
    // Regions come from the config (stores), snapshots from each region's manifest.
    let mut results = Vec::new();
    for region in target.regions() {
        let Some(region_cfg) = cfg.region(region) else {
            continue;
        };
        let rs = RegionStore::open(region_cfg).await;
        let outcome = delete_in_region(target, &rs, point).await;
        results.push(match outcome {
            Ok(msg) => ItemResult::ok(&target.name, region, "delete", Some(point.to_string()), msg),
            Err(e) => {
                ItemResult::failed(&target.name, region, "delete", Some(point.to_string()), &e)
            }
        });
    }
    results
}

async fn delete_in_region(
    target: &Target,
    rs: &RegionStore,
    point: &PointId,
) -> Result<String, Error> {
    let key = rs.layout.manifest_key(&target.name, point);
    let manifest = match rs.store.get(&key).await {
        Ok(bytes) => Manifest::parse(&key, &bytes)?,
        Err(StoreError::NotFound { .. }) => return Ok("not present".into()),
        Err(e) => return Err(e.into()),
    };
    let mut deleted = Vec::new();
    if let (Some(info), TargetSpec::Rds(spec)) = (&manifest.rds, &target.spec)
        && info.snapshots.contains_key(&rs.region)
    {
        let api = Rds::new(&rs.region, spec.regions.get(&rs.region)).await;
        let id = rds::snapshot_id(&target.name, point.as_str());
        api.delete_managed_snapshot(&id).await?;
        deleted.push(format!("snapshot {id}"));
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
    Ok(format!("deleted {}", deleted.join(", ")))
}
