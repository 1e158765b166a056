//! Copying points between regions: stored bytes unchanged, hash checked against
//! the manifest, manifest written last in the destination, then the source
//! manifest records the new copy.

use chrono::Utc;

use super::backup::pipeline_error;
use super::{ItemResult, Jobs, write_options};
use crate::archive::pipeline;
use crate::archive::{Manifest, PointId};
use crate::catalog;
use crate::config::{Config, TargetSpec};
use crate::error::Error;
use crate::source::rds::{self, Rds};
use crate::store::RegionStore;

/// Copies one point from `from` to `to`; returns the source manifest updated with
/// the new copy.
pub async fn copy_point(
    cfg: &Config,
    from: &RegionStore,
    to: &RegionStore,
    manifest: &Manifest,
    jobs: &Jobs,
) -> Result<Manifest, Error> {
    let id: PointId = manifest.point_id.parse()?;
    let target = manifest.target.as_str();
    let encrypted = manifest.is_encrypted();
    let from_key = from.layout.data_key(target, &id, encrypted);
    let to_key = to.layout.data_key(target, &id, encrypted);
    let job = jobs.start(
        format!("copy {target} {id}: {} -> {}", from.region, to.region),
        Some(manifest.stored_size),
    );
    let mut copy = manifest.clone();
    if manifest.data_file.is_some() {
        let copied = pipeline::copy_object(
            from.store.as_ref(),
            &from_key,
            to.store.as_ref(),
            &to_key,
            &write_options(cfg),
            &manifest.stored_sha256,
            job.on_bytes(),
        )
        .await;
        if let Err(e) = copied {
            let e = pipeline_error(e);
            job.fail(e.to_string());
            return Err(e);
        }
    }
    let snapshot = match copy_snapshot(cfg, &from.region, &to.region, manifest, &job).await {
        Ok(s) => s,
        Err(e) => {
            if manifest.data_file.is_some() {
                let _ = to.store.delete(&to_key).await;
            }
            job.fail(e.to_string());
            return Err(e);
        }
    };
    if let (Some(arn), Some(info)) = (&snapshot, copy.rds.as_mut()) {
        info.snapshots.insert(to.region.clone(), arn.clone());
    }
    copy.region = to.region.clone();
    copy.copied_from = Some(from.region.clone());
    copy.copied_to = Vec::new();
    let written = to
        .store
        .put(&to.layout.manifest_key(target, &id), copy.seal().into())
        .await;
    if let Err(e) = written {
        let _ = to.store.delete(&to_key).await;
        job.fail(e.to_string());
        return Err(e.into());
    }
    let mut source = manifest.clone();
    if !source.copied_to.contains(&to.region) {
        source.copied_to.push(to.region.clone());
    }
    if let (Some(arn), Some(info)) = (snapshot, source.rds.as_mut()) {
        info.snapshots.insert(to.region.clone(), arn);
    }
    // The copy is complete either way; failing to note it in the source is a warning.
    if let Err(e) = from
        .store
        .put(&from.layout.manifest_key(target, &id), source.seal().into())
        .await
    {
        tracing::warn!(
            "copy of {id} to {} done, but the source manifest was not updated: {e}",
            to.region
        );
    }
    job.finish(format!(
        "copied {id} to {} at {}",
        to.region,
        Utc::now().to_rfc3339()
    ));
    Ok(source)
}

/// Copies the point's RDS snapshot (if it has one in `from`) into `to`, reusing
/// a copy that already exists there; returns the new copy's ARN.
async fn copy_snapshot(
    cfg: &Config,
    from: &str,
    to: &str,
    manifest: &Manifest,
    job: &super::Job,
) -> Result<Option<String>, Error> {
    let Some(arn) = manifest.rds.as_ref().and_then(|r| r.snapshots.get(from)) else {
        return Ok(None);
    };
    let spec = match cfg.target(&manifest.target).map(|t| &t.spec) {
        Some(TargetSpec::Rds(spec)) => Some(spec),
        _ => None,
    };
    let region_cfg = spec.and_then(|s| s.regions.get(to).cloned());
    let source_endpoint = spec
        .and_then(|s| s.regions.get(from))
        .and_then(|r| r.endpoint.as_deref());
    let api = Rds::new(to, region_cfg.as_ref()).await;
    let id = rds::snapshot_id(&manifest.target, &manifest.point_id);
    if let Ok(existing) = api.snapshot(&id).await
        && existing.status == "available"
    {
        return Ok(Some(existing.arn));
    }
    job.phase(format!("copying RDS snapshot to {to}"));
    let phase = job.clone();
    let on_state = move |s: &str| phase.phase(format!("snapshot copy {s}"));
    let copied = api
        .copy_snapshot_from(
            &rds::SnapshotSource {
                arn,
                region: from,
                endpoint: source_endpoint,
            },
            &id,
            region_cfg.as_ref().and_then(|c| c.kms_key.as_deref()),
            (&manifest.target, &manifest.point_id),
            &on_state,
        )
        .await?;
    Ok(Some(copied.arn))
}

/// Copies every point of `target` (or just `point`) that `to` lacks.
pub async fn copy_missing(
    cfg: &Config,
    from: &RegionStore,
    to: &RegionStore,
    target: &str,
    point: Option<&PointId>,
    jobs: &Jobs,
) -> Vec<ItemResult> {
    let listings = tokio::join!(
        catalog::list_points(from, Some(target)),
        catalog::list_points(to, Some(target))
    );
    let (have, want) = match listings {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) => {
            return vec![ItemResult::failed(
                target,
                &from.region,
                "copy",
                None,
                &e.into(),
            )];
        }
        (_, Err(e)) => {
            return vec![ItemResult::failed(
                target,
                &to.region,
                "copy",
                None,
                &e.into(),
            )];
        }
    };
    let mut results = Vec::new();
    for p in have
        .points
        .iter()
        .filter(|p| point.is_none_or(|id| &p.id == id))
    {
        if want.points.iter().any(|w| w.id == p.id) {
            results.push(ItemResult::ok(
                target,
                &to.region,
                "copy",
                Some(p.id.to_string()),
                "already present".into(),
            ));
            continue;
        }
        match copy_point(cfg, from, to, &p.manifest, jobs).await {
            Ok(_) => results.push(ItemResult::ok(
                target,
                &to.region,
                "copy",
                Some(p.id.to_string()),
                format!("copied from {}", from.region),
            )),
            Err(e) => results.push(ItemResult::failed(
                target,
                &to.region,
                "copy",
                Some(p.id.to_string()),
                &e,
            )),
        }
    }
    if results.is_empty() {
        let e = Error::input(match point {
            Some(id) => format!(
                "region {} holds no point {id} of target {target}",
                from.region
            ),
            None => format!("region {} holds no points of target {target}", from.region),
        });
        results.push(ItemResult::failed(target, &from.region, "copy", None, &e));
    }
    results
}
