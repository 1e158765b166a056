//! Backup: source -> archive pipeline -> home region, manifest last, then copies
//! to every `copy_to` region.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::mpsc;

use super::copy::copy_point;
use super::{ItemResult, Jobs, write_options};
use crate::archive::manifest::{
    Compression, EncryptionInfo, FORMAT_VERSION, recipient_fingerprint,
};
use crate::archive::pipeline::{self, PipelineError, WriteOptions};
use crate::archive::{Consistency, Layout, Manifest, PayloadKind, PointId};
use crate::config::{Config, EtcdMode, Target, TargetSpec};
use crate::error::Error;
use crate::source::etcd;
use crate::store::RegionStore;

#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// The schedule that asked for this backup, recorded in the manifest.
    pub schedule: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Skip the copies to `copy_to` regions.
    pub no_copy: bool,
}

/// Backs up one target and copies the new point; one result per region touched.
pub async fn backup_target(
    cfg: &Config,
    target: &Target,
    opts: &BackupOptions,
    jobs: &Jobs,
) -> Vec<ItemResult> {
    let home = target.home.as_str();
    let Some(region) = cfg.region(home) else {
        let e = Error::input(format!(
            "target {}: home region {home} is not configured",
            target.name
        ));
        return vec![ItemResult::failed(&target.name, home, "backup", None, &e)];
    };
    let rs = RegionStore::open(region).await;
    let manifest = match backup_into(cfg, target, &rs, opts, jobs).await {
        Ok(m) => m,
        Err(e) => return vec![ItemResult::failed(&target.name, home, "backup", None, &e)],
    };
    let mut results = vec![ItemResult::ok(
        &target.name,
        home,
        "backup",
        Some(manifest.point_id.clone()),
        format!(
            "{} bytes -> {} stored ({}), revision {}",
            manifest.plaintext_size,
            manifest.stored_size,
            rs.store.describe(),
            match manifest.consistency {
                Consistency::Etcd { revision, .. } => revision,
            }
        ),
    )];
    if opts.no_copy {
        return results;
    }
    let mut current = manifest;
    for to in &target.copy_to {
        let Some(to_region) = cfg.region(to) else {
            continue;
        };
        let to_rs = RegionStore::open(to_region).await;
        match copy_point(cfg, &rs, &to_rs, &current, jobs).await {
            Ok(updated) => {
                results.push(ItemResult::ok(
                    &target.name,
                    to,
                    "copy",
                    Some(updated.point_id.clone()),
                    format!("copied from {home} to {}", to_rs.store.describe()),
                ));
                current = updated;
            }
            Err(e) => results.push(ItemResult::failed(
                &target.name,
                to,
                "copy",
                Some(current.point_id.clone()),
                &e,
            )),
        }
    }
    results
}

/// Takes the backup into `rs` and writes its manifest; returns the manifest.
async fn backup_into(
    cfg: &Config,
    target: &Target,
    rs: &RegionStore,
    opts: &BackupOptions,
    jobs: &Jobs,
) -> Result<Manifest, Error> {
    let TargetSpec::Etcd(spec) = &target.spec;
    let region_cfg = spec.regions.get(&target.home).ok_or_else(|| {
        Error::input(format!(
            "target {}: no endpoints for region {}",
            target.name, target.home
        ))
    })?;
    let payload = match spec.mode {
        EtcdMode::Snapshot => PayloadKind::EtcdSnapshot,
        EtcdMode::Keys => PayloadKind::EtcdKeys,
    };
    let write = WriteOptions {
        trailing_sha256: payload.has_trailing_sha256(),
        ..write_options(cfg)
    };
    let started_at = Utc::now();
    let id = PointId::new(started_at);
    let encrypted = !write.recipients.is_empty();
    let data_key = rs.layout.data_key(&target.name, &id, encrypted);
    let job = jobs.start(
        format!("backup {} -> {} ({id})", target.name, rs.region),
        None,
    );
    job.phase("connecting to etcd");
    let mut client = match etcd::connect(region_cfg).await {
        Ok(c) => c,
        Err(e) => {
            job.fail(e.to_string());
            return Err(e.into());
        }
    };
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let endpoints = region_cfg.endpoints.clone();
    let mode = spec.mode;
    let prefix = spec.prefix.clone();
    let source = tokio::spawn(async move {
        match mode {
            EtcdMode::Snapshot => etcd::snapshot(&mut client, &endpoints, tx).await,
            EtcdMode::Keys => etcd::keys(&mut client, &endpoints, prefix.as_deref(), tx).await,
        }
    });
    job.phase("streaming");
    let uploaded = pipeline::upload(rs.store.as_ref(), &data_key, rx, &write, job.on_bytes()).await;
    let sourced = source
        .await
        .map_err(|e| Error::failed(format!("etcd reader task failed: {e}")));
    // The source's own error says more than the pipeline's "stream broke".
    let (meta, data) = match (sourced, uploaded) {
        (Ok(Ok(meta)), Ok(data)) => (meta, data),
        (Ok(Err(e)), uploaded) => {
            if uploaded.is_ok() {
                let _ = rs.store.delete(&data_key).await;
            }
            job.fail(e.to_string());
            return Err(e.into());
        }
        (Err(e), _) => {
            job.fail(e.to_string());
            return Err(e);
        }
        (Ok(Ok(_)), Err(e)) => {
            let e = pipeline_error(e);
            job.fail(e.to_string());
            return Err(e);
        }
    };
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        point_id: id.to_string(),
        target: target.name.clone(),
        target_kind: target.spec.kind().to_string(),
        payload,
        data_file: Layout::data_file(encrypted).to_string(),
        source_region: rs.region.clone(),
        region: rs.region.clone(),
        copied_from: None,
        copied_to: Vec::new(),
        started_at,
        finished_at: Utc::now(),
        consistency: Consistency::Etcd {
            revision: meta.revision,
            observed_at: meta.observed_at,
        },
        plaintext_size: data.plaintext_size,
        stored_size: data.stored_size,
        plaintext_sha256: data.plaintext_sha256,
        stored_sha256: data.stored_sha256,
        compression: Compression {
            algorithm: "zstd".into(),
            level: write.level,
        },
        encryption: encrypted.then(|| EncryptionInfo {
            scheme: "age-x25519".into(),
            recipients: write
                .recipients
                .iter()
                .map(|r| recipient_fingerprint(r))
                .collect(),
        }),
        items: meta.items,
        drtool_version: env!("CARGO_PKG_VERSION").to_string(),
        schedule: opts.schedule.clone(),
        labels: opts.labels.clone(),
        checksum: String::new(),
    };
    job.phase("writing manifest");
    let bytes = manifest.seal();
    if let Err(e) = rs
        .store
        .put(&rs.layout.manifest_key(&target.name, &id), bytes.into())
        .await
    {
        // Without its manifest the data is an orphan: remove it rather than leave it.
        let _ = rs.store.delete(&data_key).await;
        job.fail(e.to_string());
        return Err(e.into());
    }
    job.finish(format!("point {id}: {} bytes stored", manifest.stored_size));
    Ok(manifest)
}

pub(crate) fn pipeline_error(e: PipelineError) -> Error {
    match e {
        PipelineError::Store(e) => e.into(),
        PipelineError::Archive(e) => e.into(),
    }
}
