//! A recovery point's data as restores read it: a self-contained reference
//! ([`PointRef`], part of every restore plan) and a verified stream of its
//! plaintext ([`PointStream`]).
//!
//! The stream's hashes are checked against the reference when it ends; a
//! consumer that fails first keeps its own error (the download's "the consumer
//! stopped" never hides the real cause).
//!
//! Restores never apply bytes that were not verified: planning reads the whole
//! point and checks every hash, and records which version of the data object
//! it read ([`PointRef::data_version`]: an S3 ETag, a file's size, mtime and
//! inode). Every later read is pinned to that version (`If-Match`): an object
//! replaced between the plan and its execution fails to open, before the
//! first byte reaches a target. The cost is nothing beyond the two reads a
//! restore always made; no local spool, no extra disk.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::events::Job;
use crate::archive::pipeline::{self, DataSummary, Identities, PipelineError, ReadRequest};
use crate::archive::{ArchiveError, Consistency, PayloadKind};
use crate::catalog::{PointEntry, RegionStore};
use crate::error::{Error, SourceError};
use crate::store::ObjectStore;

/// Everything needed to find, read and check a point's data in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointRef {
    pub id: String,
    pub target: String,
    /// The region whose store holds this copy, and that store.
    pub region: String,
    pub store: String,
    pub source_region: String,
    pub finished_at: DateTime<Utc>,
    pub payload: PayloadKind,
    /// The payload as the kind that wrote it describes it (plans show it).
    #[serde(default)]
    pub payload_text: String,
    pub consistency: Consistency,
    /// The consistency as the kind that took the point reads it: a line
    /// for plans, and its time (drill reports judge the RPO by it).
    #[serde(default)]
    pub consistency_text: String,
    #[serde(default)]
    pub consistent_at: Option<DateTime<Utc>>,
    pub manifest_key: String,
    /// None for points without a data object (RDS snapshots only).
    pub data_key: Option<String>,
    pub encrypted: bool,
    pub plaintext_size: u64,
    pub plaintext_sha256: String,
    pub stored_size: u64,
    pub stored_sha256: String,
    /// The version of the data object whose bytes were verified while
    /// planning; execution reads only that version.
    #[serde(default)]
    pub data_version: Option<String>,
    /// The trusted key whose signature on the manifest was checked.
    #[serde(default)]
    pub signed_by: Option<String>,
}

/// What the kind that wrote a point reads in its manifest.
pub struct KindRead {
    pub payload_text: String,
    pub consistency_text: String,
    pub consistent_at: Option<DateTime<Utc>>,
}

impl PointRef {
    /// Its payload for people: as its kind describes it, else its name
    /// (a plan recorded before kinds described them).
    pub fn payload_line(&self) -> &str {
        if self.payload_text.is_empty() {
            self.payload.as_str()
        } else {
            &self.payload_text
        }
    }

    /// Its consistency for people: as its kind reads it, else its JSON.
    pub fn consistency_line(&self) -> &str {
        if self.consistency_text.is_empty() {
            self.consistency.as_json()
        } else {
            &self.consistency_text
        }
    }

    /// The reference of a point listed in a region's store, with its
    /// payload and consistency as its kind reads them.
    pub fn from_entry(rs: &RegionStore, entry: &PointEntry, read: KindRead) -> PointRef {
        let m = &entry.manifest;
        PointRef {
            id: entry.id.to_string(),
            target: m.target.clone(),
            region: rs.region.clone(),
            store: rs.store.describe(),
            source_region: m.source_region.clone(),
            finished_at: m.finished_at,
            payload: m.payload.clone(),
            payload_text: read.payload_text,
            consistency: m.consistency.clone(),
            consistency_text: read.consistency_text,
            consistent_at: read.consistent_at,
            manifest_key: entry.manifest_key.clone(),
            data_key: m
                .data_file
                .as_ref()
                .map(|_| rs.layout.data_key(&m.target, &entry.id, m.is_encrypted())),
            encrypted: m.is_encrypted(),
            plaintext_size: m.plaintext_size,
            plaintext_sha256: m.plaintext_sha256.clone(),
            stored_size: m.stored_size,
            stored_sha256: m.stored_sha256.clone(),
            data_version: None,
            signed_by: None,
        }
    }

    pub(crate) fn expected(&self) -> DataSummary {
        DataSummary {
            plaintext_size: self.plaintext_size,
            plaintext_sha256: self.plaintext_sha256.clone(),
            stored_size: self.stored_size,
            stored_sha256: self.stored_sha256.clone(),
            version: None,
        }
    }
}

/// The version of a data object whose every hash matched, once one was read.
type Verified = Arc<Mutex<Option<String>>>;

/// A point whose data can be streamed (as often as the planner needs).
#[derive(Clone)]
pub struct PointData {
    store: Arc<dyn ObjectStore>,
    /// Whether the payload ends with its own sha256 (its kind says).
    trailing_sha256: bool,
    point: PointRef,
    identities: Option<Arc<Identities>>,
    job: Job,
    verified: Verified,
}

impl PointData {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        trailing_sha256: bool,
        point: PointRef,
        identities: Option<Arc<Identities>>,
        job: Job,
    ) -> PointData {
        let verified = Arc::new(Mutex::new(point.data_version.clone()));
        PointData {
            store,
            trailing_sha256,
            point,
            identities,
            job,
            verified,
        }
    }

    pub fn point(&self) -> &PointRef {
        &self.point
    }

    /// The version of the data object that was read and matched every hash.
    pub fn verified_version(&self) -> Option<String> {
        self.verified.lock().ok().and_then(|v| v.clone())
    }

    /// Opens the data object and starts a download of the plaintext; progress
    /// goes to the job. Once a read has been verified, every later one is
    /// pinned to the same version: a replaced object fails here, before any
    /// byte is handed on.
    pub async fn stream(&self) -> Result<PointStream, Error> {
        let key = self.point.data_key.clone().ok_or_else(|| {
            Error::input(format!(
                "point {} of {} has no data object to read",
                self.point.id, self.point.target
            ))
        })?;
        let req = ReadRequest {
            key: key.clone(),
            encrypted: self.point.encrypted,
            trailing_sha256: self.trailing_sha256,
            identities: self.identities.clone(),
            pin: self.verified_version(),
        };
        self.job.set_total_bytes(self.point.plaintext_size);
        let (rx, handle) = pipeline::download(self.store.clone(), req, self.job.on_bytes())
            .await
            .map_err(|e| changed(e, &self.point))?;
        Ok(PointStream {
            rx: Some(rx),
            handle: Some(handle),
            checked: None,
            key,
            expected: self.point.expected(),
            job: self.job.clone(),
            verified: self.verified.clone(),
        })
    }
}

/// A replaced data object is named as such, with what to do.
fn changed(e: PipelineError, point: &PointRef) -> Error {
    match e {
        PipelineError::Store(crate::store::StoreError::Changed {
            store,
            key,
            pinned,
            found,
        }) => SourceError::Integrity {
            what: format!("point {} of {} in {store}", point.id, point.target),
            detail: format!(
                "its data object {key} was replaced after it was verified ({pinned}, now {found}); \
                 nothing was read from it and nothing was written: plan the restore again, and find out who writes to this bucket"
            ),
        }
        .into(),
        other => pipeline_error(other),
    }
}

/// One download of a point's plaintext, checked when it ends.
pub struct PointStream {
    rx: Option<mpsc::Receiver<Bytes>>,
    handle: Option<JoinHandle<Result<DataSummary, PipelineError>>>,
    /// Set once [`PointStream::end`] has checked the download.
    checked: Option<bool>,
    key: String,
    expected: DataSummary,
    job: Job,
    verified: Verified,
}

impl PointStream {
    /// The plaintext chunks, for a consumer; take it once.
    pub fn take(&mut self) -> mpsc::Receiver<Bytes> {
        self.rx.take().unwrap_or_else(|| mpsc::channel(1).1)
    }

    async fn summary(&mut self) -> Result<DataSummary, Error> {
        let Some(handle) = self.handle.take() else {
            return Err(Error::failed(format!(
                "the download of {} was already checked",
                self.key
            )));
        };
        handle
            .await
            .map_err(|e| Error::failed(format!("download of {} failed: {e}", self.key)))
            .and_then(|r| r.map_err(pipeline_error))
    }

    fn check(&self, found: &DataSummary) -> Result<(), Error> {
        pipeline::check_summary(&self.key, found, &self.expected, true)?;
        if let (Ok(mut seen), Some(version)) = (self.verified.lock(), &found.version) {
            *seen = Some(version.clone());
        }
        Ok(())
    }

    /// For a consumer that can still undo what it did (a database
    /// transaction): call once every chunk has been received, before
    /// committing. Waits for the download and checks every hash; an error
    /// means "roll back". [`PointStream::finish`] then returns the consumer's
    /// own result.
    pub async fn end(&mut self) -> Result<(), Error> {
        drop(self.rx.take());
        let checked = match self.summary().await {
            Ok(found) => self.check(&found),
            Err(e) => Err(e),
        };
        self.checked = Some(checked.is_ok());
        checked
    }

    /// Waits for the download to end and checks every hash; returns the
    /// consumer's value, or the error that explains best what went wrong.
    pub async fn finish<T>(mut self, consumed: Result<T, Error>) -> Result<T, Error> {
        drop(self.rx.take());
        if self.checked.is_some() {
            // The consumer called `end` and acted on its verdict.
            return consumed;
        }
        let summary = self.summary().await;
        match (consumed, summary) {
            (Ok(value), Ok(found)) => {
                self.check(&found)?;
                Ok(value)
            }
            // The consumer stopped first: its error is the cause.
            (Err(e), Ok(_)) => Err(e),
            (Err(e), Err(d)) if is_consumer_stop(&d) => Err(e),
            // The download failed and cut the stream short: the consumer's
            // complaint about a truncated stream is only a consequence.
            (_, Err(d)) => Err(d),
        }
    }

    /// Reads the whole point only to check it.
    pub async fn verify(mut self) -> Result<(), Error> {
        let mut rx = self.take();
        let job = self.job.clone();
        let drained = job
            .cancellable(async move {
                while rx.recv().await.is_some() {}
                Ok(())
            })
            .await;
        self.finish(drained).await
    }

    /// Writes the plaintext into `file` (created, 0600) and checks it. On any
    /// failure or cancellation the file is removed.
    pub async fn into_file(mut self, file: &Path) -> Result<(), Error> {
        use tokio::io::AsyncWriteExt;
        let failed = |e: std::io::Error| {
            Error::from(SourceError::Failed {
                what: format!("writing {}", file.display()),
                detail: format!("{e}: free space, or pick a folder on another disk"),
            })
        };
        let mut rx = self.take();
        let job = self.job.clone();
        let written = job
            .cancellable(async {
                let mut out = create_private(file).await.map_err(failed)?;
                while let Some(chunk) = rx.recv().await {
                    out.write_all(&chunk).await.map_err(failed)?;
                }
                // No fsync: the file is read back at once, and a crash here only
                // means downloading again.
                out.flush().await.map_err(failed)
            })
            .await;
        drop(rx);
        let result = self.finish(written).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(file).await;
        }
        result
    }
}

/// Creates `file` for writing, readable by its owner only (0600); an
/// existing file is an error, never overwritten.
pub async fn create_private(file: &Path) -> std::io::Result<tokio::fs::File> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(file).await
}

fn is_consumer_stop(e: &Error) -> bool {
    matches!(e, Error::Archive(ArchiveError::ConsumerStopped { .. }))
}

/// The library error for a pipeline error.
pub fn pipeline_error(e: PipelineError) -> Error {
    match e {
        PipelineError::Store(e) => e.into(),
        PipelineError::Archive(e) => e.into(),
    }
}
