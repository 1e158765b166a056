//! Object stores: the narrow interface the engine writes recovery points through,
//! with an S3 implementation (any S3-compatible endpoint) and a filesystem one
//! (the embedded default for a laptop or a demo).
//!
//! Keys are full keys built by `archive::Layout`; stores never invent keys.

mod fs;
mod s3;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::AsyncRead;

pub use fs::FsStore;
pub use s3::{ListBucketsError, S3Store, list_buckets};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{store}: object {key} not found")]
    NotFound { store: String, key: String },
    #[error(
        "{store}: cannot reach the store ({detail}). Check the endpoint, credentials and that the region's object store is up."
    )]
    Unreachable { store: String, detail: String },
    #[error(
        "{store}: no usable AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or `profile` in the region ({detail})"
    )]
    Credentials { store: String, detail: String },
    /// A read pinned to one version found another: the object was replaced.
    #[error(
        "{store}: object {key} changed since it was checked (it was {pinned}, it is now {found})"
    )]
    Changed {
        store: String,
        key: String,
        pinned: String,
        found: String,
    },
    /// The store refused to delete an object under retention (S3 Object Lock).
    #[error("{store}: {key} is under retention and cannot be deleted yet ({detail})")]
    Retained {
        store: String,
        key: String,
        detail: String,
    },
    /// The store cannot do what the config asks of it (Object Lock on a
    /// bucket without it, an operation it does not implement): fix the
    /// bucket or the config, retrying will not help.
    #[error("{store}: {detail}")]
    Misconfigured { store: String, detail: String },
    #[error("{store}: {op} {key} failed: {detail}")]
    Failed {
        store: String,
        op: &'static str,
        key: String,
        detail: String,
    },
}

/// The operating system's words for the failure behind `e`, if one is in its
/// chain of sources ("connection refused", "no such file or directory").
pub fn os_words(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            let text = io.to_string();
            return Some(
                text.split(" (os error")
                    .next()
                    .unwrap_or(&text)
                    .to_lowercase(),
            );
        }
        cur = c.source();
    }
    None
}

pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// When the object was last written, when the store says.
    pub modified: Option<DateTime<Utc>>,
}

/// An object opened for streaming.
pub struct Opened {
    pub reader: ObjectReader,
    pub size: u64,
    /// What identifies this exact version of the object (an S3 ETag; size,
    /// modification time and inode on a filesystem): pass it to
    /// [`ObjectStore::open`] to read the same bytes again or fail.
    pub version: Option<String>,
}

/// A write that was started and never finished: an open multipart upload, or
/// a filesystem store's temporary file or parts folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    pub what: UnfinishedKind,
    /// The key it was meant to become.
    pub key: String,
    /// The store's handle on it (an upload id, a path).
    pub id: String,
    pub started: Option<DateTime<Utc>>,
    /// Bytes it holds, when the store says.
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnfinishedKind {
    /// A multipart upload (its parts are stored, and billed).
    OpenUpload,
    /// A temporary file of a filesystem store.
    TempFile,
}

/// How long the store must refuse to delete or overwrite what is written
/// (S3 Object Lock). Only recovery points are retained; locks and reports
/// are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Normal,
    Retained,
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// A human description, e.g. `s3://bucket/prefix (http://127.0.0.1:3900)`.
    fn describe(&self) -> String;
    /// Writes a small object in one request (manifests, reports, locks).
    async fn put(&self, key: &str, body: Bytes, keep: Keep) -> Result<(), StoreError>;
    /// Writes a small object only if nothing is at `key` yet; `Ok(false)` when
    /// something is (scheduler locks). Stores without conditional writes check,
    /// then write.
    async fn put_new(&self, key: &str, body: Bytes) -> Result<bool, StoreError>;
    /// Reads a small object whole (manifests).
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;
    /// Streams an object; with `pin`, only the version [`Opened::version`]
    /// named, or [`StoreError::Changed`] before any byte is read.
    async fn open(&self, key: &str, pin: Option<&str>) -> Result<Opened, StoreError>;
    /// Every object under `prefix`, all pages.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;
    /// Deletes an object (every version of it, where the store keeps
    /// versions); [`StoreError::Retained`] while it is under retention.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Starts a multipart upload; nothing is visible at `key` until `complete`.
    async fn start_upload(
        &self,
        key: &str,
        keep: Keep,
    ) -> Result<Box<dyn MultipartUpload>, StoreError>;
    /// Writes under `prefix` that were started and never completed or aborted.
    async fn unfinished(&self, prefix: &str) -> Result<Vec<Unfinished>, StoreError>;
    /// Removes one unfinished write.
    async fn discard(&self, unfinished: &Unfinished) -> Result<(), StoreError>;
    /// When an object is retained until, if it is (S3 Object Lock).
    async fn retained_until(&self, _key: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(None)
    }
    /// Checks that the store answers and the bucket/folder exists.
    async fn probe(&self) -> Result<(), StoreError>;
}

#[async_trait]
pub trait MultipartUpload: Send + Sync {
    /// Uploads part `number` (1-based). Parts may arrive out of order and concurrently.
    async fn put_part(&self, number: u32, body: Bytes) -> Result<(), StoreError>;
    /// Makes the object visible. On failure the upload is still open: abort it.
    async fn complete(&self) -> Result<(), StoreError>;
    async fn abort(&self) -> Result<(), StoreError>;
}
