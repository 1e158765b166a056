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
use tokio::io::AsyncRead;

pub use fs::FsStore;
pub use s3::S3Store;

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
    #[error("{store}: {op} {key} failed: {detail}")]
    Failed {
        store: String,
        op: &'static str,
        key: String,
        detail: String,
    },
}

pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// A human description, e.g. `s3://bucket/prefix (http://127.0.0.1:3900)`.
    fn describe(&self) -> String;
    /// Writes a small object in one request (manifests, reports, locks).
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError>;
    /// Reads a small object whole (manifests).
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;
    /// Streams an object.
    async fn open(&self, key: &str) -> Result<(ObjectReader, u64), StoreError>;
    /// Every object under `prefix`, all pages.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Starts a multipart upload; nothing is visible at `key` until `complete`.
    async fn start_upload(&self, key: &str) -> Result<Box<dyn MultipartUpload>, StoreError>;
    /// Keys of multipart uploads that were started and never completed or aborted.
    async fn open_uploads(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Checks that the store answers and the bucket/folder exists.
    async fn probe(&self) -> Result<(), StoreError>;
}

#[async_trait]
pub trait MultipartUpload: Send + Sync {
    /// Uploads part `number` (1-based). Parts may arrive out of order and concurrently.
    async fn put_part(&self, number: u32, body: Bytes) -> Result<(), StoreError>;
    async fn complete(self: Box<Self>) -> Result<(), StoreError>;
    async fn abort(self: Box<Self>) -> Result<(), StoreError>;
}
