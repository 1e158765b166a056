//! A recovery point's data as restores read it: a self-contained reference
//! ([`PointRef`], part of every restore plan) and a verified stream of its
//! plaintext ([`PointStream`]).
//!
//! The stream's hashes are checked against the reference when it ends; a
//! consumer that fails first keeps its own error (the download's "the consumer
//! stopped" never hides the real cause).

use std::path::Path;
use std::sync::Arc;

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
    pub consistency: Consistency,
    pub manifest_key: String,
    /// None for points without a data object (RDS snapshots only).
    pub data_key: Option<String>,
    pub encrypted: bool,
    pub plaintext_size: u64,
    pub plaintext_sha256: String,
    pub stored_size: u64,
    pub stored_sha256: String,
}

impl PointRef {
    /// The reference of a point listed in a region's store.
    pub fn from_entry(rs: &RegionStore, entry: &PointEntry) -> PointRef {
        let m = &entry.manifest;
        PointRef {
            id: entry.id.to_string(),
            target: m.target.clone(),
            region: rs.region.clone(),
            store: rs.store.describe(),
            source_region: m.source_region.clone(),
            finished_at: m.finished_at,
            payload: m.payload,
            consistency: m.consistency.clone(),
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
        }
    }

    fn expected(&self) -> DataSummary {
        DataSummary {
            plaintext_size: self.plaintext_size,
            plaintext_sha256: self.plaintext_sha256.clone(),
            stored_size: self.stored_size,
            stored_sha256: self.stored_sha256.clone(),
        }
    }
}

/// A point whose data can be streamed (as often as the planner needs).
#[derive(Clone)]
pub struct PointData {
    store: Arc<dyn ObjectStore>,
    point: PointRef,
    identities: Option<Arc<Identities>>,
    job: Job,
}

impl PointData {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        point: PointRef,
        identities: Option<Arc<Identities>>,
        job: Job,
    ) -> PointData {
        PointData {
            store,
            point,
            identities,
            job,
        }
    }

    pub fn point(&self) -> &PointRef {
        &self.point
    }

    /// Starts a download of the plaintext; progress goes to the job.
    pub fn stream(&self) -> Result<PointStream, Error> {
        let key = self.point.data_key.clone().ok_or_else(|| {
            Error::input(format!(
                "point {} of {} has no data object to read",
                self.point.id, self.point.target
            ))
        })?;
        let req = ReadRequest {
            key: key.clone(),
            encrypted: self.point.encrypted,
            trailing_sha256: self.point.payload.has_trailing_sha256(),
            identities: self.identities.clone(),
        };
        self.job.set_total_bytes(self.point.plaintext_size);
        let (rx, handle) = pipeline::download(self.store.clone(), req, self.job.on_bytes());
        Ok(PointStream {
            rx: Some(rx),
            handle,
            key,
            expected: self.point.expected(),
            job: self.job.clone(),
        })
    }
}

/// One download of a point's plaintext, checked when it ends.
pub struct PointStream {
    rx: Option<mpsc::Receiver<Bytes>>,
    handle: JoinHandle<Result<DataSummary, PipelineError>>,
    key: String,
    expected: DataSummary,
    job: Job,
}

impl PointStream {
    /// The plaintext chunks, for a consumer; take it once.
    pub fn take(&mut self) -> mpsc::Receiver<Bytes> {
        self.rx.take().unwrap_or_else(|| mpsc::channel(1).1)
    }

    /// Waits for the download to end and checks every hash; returns the
    /// consumer's value, or the error that explains best what went wrong.
    pub async fn finish<T>(mut self, consumed: Result<T, Error>) -> Result<T, Error> {
        drop(self.rx.take());
        let summary = self
            .handle
            .await
            .map_err(|e| Error::failed(format!("download of {} failed: {e}", self.key)))
            .and_then(|r| r.map_err(pipeline_error));
        match (consumed, summary) {
            (Ok(value), Ok(found)) => {
                pipeline::check_summary(&self.key, &found, &self.expected, true)?;
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
                let mut options = tokio::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                options.mode(0o600);
                let mut out = options.open(file).await.map_err(failed)?;
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
