//! Backup: the kind's byte stream -> archive pipeline -> the home region, the
//! manifest last, then copies to every `copy_to` region.
//!
//! A point exists only once its manifest is written. Whatever fails or is
//! cancelled before that is removed: the aborted upload leaves nothing, an
//! uploaded data object is deleted, artefacts outside the bucket are discarded.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::events::{Job, JobSpec};
use super::kind::{BackupShape, Taken, TargetKind};
use super::point::pipeline_error;
use super::report::{ItemReport, Operation, Outcome, RunReport};
use super::root::Engine;
use crate::archive::manifest::{
    Compression, EncryptionInfo, FORMAT_VERSION, recipient_fingerprint,
};
use crate::archive::pipeline::{self, DataSummary, WriteOptions};
use crate::archive::{Layout, Manifest, PointId};
use crate::catalog::RegionStore;
use crate::config::Target;
use crate::error::Error;
use crate::store::Keep;

/// Which targets to back up and what to record.
#[derive(Debug, Clone, Default)]
pub struct BackupRequest {
    /// Target names; every target when empty.
    pub targets: Vec<String>,
    /// The schedule that asked for this backup, recorded in the manifests.
    pub schedule: Option<String>,
    /// The retention the new points are made under (a schedule's), signed
    /// into their manifests.
    pub retention: Option<crate::archive::manifest::PointRetention>,
    pub labels: BTreeMap<String, String>,
    /// Skip the copies to `copy_to` regions.
    pub no_copy: bool,
    /// Copy to these regions instead of each target's `copy_to` (a schedule's).
    pub copy_to: Option<Vec<String>>,
}

impl Engine {
    /// Backs up the selected targets, one after the other, and copies each new
    /// point; one report item per region touched.
    pub async fn backup(&self, req: &BackupRequest) -> Result<RunReport, Error> {
        let targets = self.backup_targets(req)?;
        let mut report = RunReport::default();
        for target in targets {
            if self.cancel_token().is_cancelled() {
                report.push(
                    ItemReport::new(Operation::Backup, &target.name, &target.home, None)
                        .failed(&Error::cancelled("not started: the run was cancelled")),
                );
                continue;
            }
            report.extend(self.backup_target(target, req).await);
        }
        Ok(report)
    }

    /// What `backup` would do, checked without writing anything: per target,
    /// that its kind can back it up, the signing key signs, its source
    /// answers in the home region and the home store takes writes (Object
    /// Lock included); per copy region, that its store takes writes. Items
    /// are `Planned` or `Failed` with the reason the real run would fail.
    pub async fn backup_plan(&self, req: &BackupRequest) -> Result<RunReport, Error> {
        let targets = self.backup_targets(req)?;
        let mut report = RunReport::default();
        for target in targets {
            let home = target.home.as_str();
            let item = ItemReport::new(Operation::Backup, &target.name, home, None);
            let checked = async {
                let kind = self.kind_of(target)?;
                kind.backup_shape(target)?;
                self.signer()?;
                let source = kind
                    .reachability(target)
                    .await
                    .into_iter()
                    .find(|r| r.region == home);
                if let Some(r) = source.as_ref().filter(|r| !r.reachable) {
                    return Err(Error::unreachable(format!(
                        "the {} source at {} does not answer: {}",
                        target.spec.kind(),
                        r.address,
                        r.detail
                    )));
                }
                let rs = self.writable_store(home).await?;
                rs.store.probe().await?;
                Ok::<_, Error>((source.map(|r| r.address), rs.store.describe()))
            }
            .await;
            match checked {
                Ok((source, store)) => {
                    let mut message = format!(
                        "would back up {} {}{} into {store}",
                        target.spec.kind(),
                        target.name,
                        source.map(|s| format!(" from {s}")).unwrap_or_default()
                    );
                    if let Some(w) = self.plaintext_secrets(target).await {
                        message = format!("{message}; WARNING: {w}");
                    }
                    report.push(item.with_outcome(Outcome::Planned, message));
                }
                Err(e) => {
                    report.push(item.failed(&e));
                    continue;
                }
            }
            if req.no_copy {
                continue;
            }
            let regions = req.copy_to.as_ref().unwrap_or(&target.copy_to);
            for to in regions.iter().filter(|r| **r != target.home) {
                let item = ItemReport::new(Operation::Copy, &target.name, to, None);
                let writable = async {
                    let rs = self.writable_store(to).await?;
                    rs.store.probe().await?;
                    Ok::<_, Error>(rs.store.describe())
                }
                .await;
                report.push(match writable {
                    Ok(store) => item.with_outcome(
                        Outcome::Planned,
                        format!("would copy the new point from {home} to {store}"),
                    ),
                    Err(e) => item.failed(&e),
                });
            }
        }
        Ok(report)
    }

    fn backup_targets(&self, req: &BackupRequest) -> Result<Vec<&Target>, Error> {
        let targets: Vec<&Target> = if req.targets.is_empty() {
            self.config().targets.values().collect()
        } else {
            req.targets
                .iter()
                .map(|t| self.target(t))
                .collect::<Result<_, _>>()?
        };
        if targets.is_empty() {
            return Err(Error::input(format!(
                "the config {} defines no targets: add a [targets.NAME] table",
                self.config().path.display()
            )));
        }
        Ok(targets)
    }

    /// A warning when `target`'s points hold secrets and nothing encrypts them.
    pub async fn plaintext_secrets(&self, target: &Target) -> Option<String> {
        if self.config().encryption.is_some() {
            return None;
        }
        let what = self.kind_of(target).ok()?.holds_secrets(target).await?;
        Some(format!(
            "target {}: {what}, stored unencrypted: anyone who can read the bucket can read them; add age recipients under [encryption]",
            target.name
        ))
    }

    async fn backup_target(&self, target: &Target, req: &BackupRequest) -> RunReport {
        let started = Instant::now();
        let home = target.home.as_str();
        let job = self.job(
            JobSpec::new(Operation::Backup)
                .target(&target.name)
                .region(home),
        );
        let item = ItemReport::new(Operation::Backup, &target.name, home, None);
        let mut report = RunReport::default();
        let exposed = self.plaintext_secrets(target).await;
        if let Some(w) = &exposed {
            job.warn(w.clone());
        }
        let (manifest, rs) = match self.take_point(target, req, &job).await {
            Ok(done) => done,
            Err(e) => {
                job.fail(&e);
                report.push(item.failed(&e).timed(started));
                return report;
            }
        };
        let message = format!(
            "{} bytes -> {} stored ({}), {}",
            manifest.plaintext_size,
            manifest.stored_size,
            rs.store.describe(),
            self.kinds().describe_consistency(&manifest.consistency)
        );
        job.finish(Outcome::Ok, &message, None);
        let message = match exposed {
            Some(w) => format!("{message}; WARNING: {w}"),
            None => message,
        };
        let mut done = item.ok(message).timed(started);
        done.point = Some(manifest.point_id.clone());
        done.counts = manifest.items.clone();
        done.bytes = Some(manifest.plaintext_size);
        report.push(done);
        if req.no_copy {
            return report;
        }
        let mut current = manifest;
        let regions = req.copy_to.as_ref().unwrap_or(&target.copy_to);
        for to in regions.iter().filter(|r| **r != target.home) {
            let started = Instant::now();
            let item = ItemReport::new(
                Operation::Copy,
                &target.name,
                to,
                Some(current.point_id.clone()),
            );
            let copied = match self.writable_store(to).await {
                Ok(to_rs) => self
                    .copy_point(target, &rs, &to_rs, &current, Some(&job))
                    .await
                    .map(|m| (m, to_rs)),
                Err(e) => Err(e),
            };
            match copied {
                Ok((updated, to_rs)) => {
                    let mut done = item
                        .ok(format!("copied from {home} to {}", to_rs.store.describe()))
                        .timed(started);
                    done.bytes = Some(updated.stored_size);
                    report.push(done);
                    current = updated;
                }
                Err(e) => report.push(item.failed(&e).timed(started)),
            }
        }
        report
    }

    /// Takes the backup into the home region and writes its manifest.
    async fn take_point(
        &self,
        target: &Target,
        req: &BackupRequest,
        job: &Job,
    ) -> Result<(Manifest, RegionStore), Error> {
        let kind = self.kind_of(target)?;
        let shape = kind.backup_shape(target)?;
        let signer = self.signer()?;
        let rs = self.writable_store(&target.home).await?;
        let started_at = Utc::now();
        let id = PointId::new(started_at);
        job.set_point(id.as_str());
        let write = self.write_options(self.kinds().trailing_sha256(&shape.payload));
        let data_key = rs
            .layout
            .data_key(&target.name, &id, !write.recipients.is_empty());
        let (taken, data) = if shape.has_data {
            let (taken, data) = stream(&kind, target, &id, &rs, &data_key, &write, job).await;
            (taken, Some(data))
        } else {
            (kind.backup(target, &id, None, job).await, None)
        };
        let draft = |taken: &Taken, data: Option<&DataSummary>| {
            Draft {
                target,
                id: &id,
                region: &rs.region,
                started_at,
                shape,
                write: &write,
                req,
            }
            .manifest(taken, data)
        };
        let mut manifest = match (taken, data) {
            (Ok(t), None) => draft(&t, None),
            (Ok(t), Some(Ok(d))) => draft(&t, Some(&d)),
            // The data failed after the kind made its artefacts: discard them.
            (Ok(t), Some(Err(e))) => {
                self.discard(&kind, target, &rs, &draft(&t, None), None)
                    .await;
                return Err(e);
            }
            (Err(e), data) => {
                if let Some(Ok(_)) = data {
                    let _ = rs.store.delete(&data_key).await;
                }
                // The kind only saw the stream stop: the pipeline knows why.
                return Err(match data {
                    Some(Err(d)) if e.is_stopped_stream() => d,
                    _ => e,
                });
            }
        };
        if let Some(signer) = &signer {
            signer.sign(&mut manifest);
        }
        let data_key = manifest.data_file.as_ref().map(|_| data_key.as_str());
        // A cancelled run never writes a manifest, whatever got uploaded.
        if let Err(e) = job.check_cancelled() {
            self.discard(&kind, target, &rs, &manifest, data_key).await;
            return Err(e);
        }
        job.phase("writing manifest");
        let key = rs.layout.manifest_key(&target.name, &id);
        if let Err(e) = rs
            .store
            .put(&key, manifest.seal().into(), Keep::Retained)
            .await
        {
            // Without its manifest the data is an orphan: remove it rather than leave it.
            self.discard(&kind, target, &rs, &manifest, data_key).await;
            return Err(e.into());
        }
        self.check_retention_took(&rs, &key).await?;
        Ok((manifest, rs))
    }

    /// Removes what a point that will not exist left behind.
    async fn discard(
        &self,
        kind: &std::sync::Arc<dyn TargetKind>,
        target: &Target,
        rs: &RegionStore,
        manifest: &Manifest,
        data_key: Option<&str>,
    ) {
        if let Some(key) = data_key
            && let Err(e) = rs.store.delete(key).await
        {
            tracing::warn!("could not remove {key} of an unfinished point: {e}");
        }
        if let Err(e) = kind
            .delete_external(Some(target), manifest, &rs.region)
            .await
        {
            tracing::warn!(
                "could not remove the artefacts of unfinished point {} of {}: {e}",
                manifest.point_id,
                target.name
            );
        }
    }
}

/// Runs the kind's backup into the archive pipeline and uploads the result.
/// Returns both outcomes: the caller decides what to keep.
async fn stream(
    kind: &std::sync::Arc<dyn TargetKind>,
    target: &Target,
    id: &PointId,
    rs: &RegionStore,
    key: &str,
    write: &WriteOptions,
    job: &Job,
) -> (Result<Taken, Error>, Result<DataSummary, Error>) {
    let (tx, rx) = mpsc::channel(4);
    // The source runs as its own task, so it reads while the pipeline uploads.
    let source = {
        let (kind, target, id, job) = (kind.clone(), target.clone(), id.clone(), job.clone());
        tokio::spawn(async move { kind.backup(&target, &id, Some(tx), &job).await })
    };
    job.phase("streaming");
    let uploaded = pipeline::upload(
        rs.store.as_ref(),
        key,
        rx,
        write,
        job.on_bytes(),
        job.cancel_token(),
    )
    .await
    .map_err(pipeline_error);
    let taken = source
        .await
        .map_err(|e| Error::failed(format!("backup task failed: {e}")))
        .and_then(|r| r);
    (taken, uploaded)
}

/// The facts of a new point, before its data and artefacts are known.
struct Draft<'a> {
    target: &'a Target,
    id: &'a PointId,
    region: &'a str,
    started_at: DateTime<Utc>,
    shape: BackupShape,
    write: &'a WriteOptions,
    req: &'a BackupRequest,
}

impl Draft<'_> {
    fn manifest(&self, taken: &Taken, data: Option<&DataSummary>) -> Manifest {
        let encrypted = !self.write.recipients.is_empty() && data.is_some();
        let empty = DataSummary {
            plaintext_size: 0,
            plaintext_sha256: String::new(),
            stored_size: 0,
            stored_sha256: String::new(),
            version: None,
        };
        let d = data.unwrap_or(&empty);
        Manifest {
            format_version: FORMAT_VERSION,
            point_id: self.id.to_string(),
            target: self.target.name.clone(),
            target_kind: self.target.spec.kind().to_string(),
            payload: self.shape.payload.clone(),
            data_file: data.map(|_| Layout::data_file(encrypted).to_string()),
            source_region: self.region.to_string(),
            region: self.region.to_string(),
            copied_from: None,
            copied_to: Vec::new(),
            started_at: self.started_at,
            finished_at: Utc::now(),
            consistency: taken.consistency.clone(),
            plaintext_size: d.plaintext_size,
            stored_size: d.stored_size,
            plaintext_sha256: d.plaintext_sha256.clone(),
            stored_sha256: d.stored_sha256.clone(),
            compression: Compression {
                algorithm: "zstd".into(),
                level: self.write.level,
            },
            encryption: encrypted.then(|| EncryptionInfo {
                scheme: "age-x25519".into(),
                recipients: self
                    .write
                    .recipients
                    .iter()
                    .map(|r| recipient_fingerprint(r))
                    .collect(),
            }),
            items: taken.items.clone(),
            drtool_version: env!("CARGO_PKG_VERSION").to_string(),
            schedule: self.req.schedule.clone(),
            labels: self.req.labels.clone(),
            external: taken.external.clone(),
            retention: self.req.retention.clone(),
            signature: None,
            checksum: String::new(),
        }
    }
}
