//! The S3 store (AWS or any S3-compatible endpoint such as Garage).
//!
//! Credentials come from the standard AWS chain (environment, profile, ...). The
//! client connects lazily, with a short connect timeout, so an unreachable region
//! is reported quickly and never touched unless asked for.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectLockMode};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{
    Keep, MultipartUpload, ObjectInfo, ObjectStore, Opened, StoreError, Unfinished, UnfinishedKind,
};
use crate::config::{LockMode, ObjectLock, Region};

pub struct S3Store {
    client: Client,
    bucket: String,
    name: String,
    lock: Option<ObjectLock>,
}

fn chrono_time(t: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// The retention to ask for on a new object, if any.
fn retention(
    lock: Option<ObjectLock>,
    keep: Keep,
) -> Option<(ObjectLockMode, aws_sdk_s3::primitives::DateTime)> {
    let lock = lock.filter(|_| keep == Keep::Retained)?;
    let until = std::time::SystemTime::now() + lock.retain;
    let mode = match lock.mode {
        LockMode::Governance => ObjectLockMode::Governance,
        LockMode::Compliance => ObjectLockMode::Compliance,
    };
    Some((mode, aws_sdk_s3::primitives::DateTime::from(until)))
}

/// Why the buckets could not be listed, in the service's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListBucketsError {
    /// The service answered with an error.
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
    /// No answer (the operating system's or the SDK's words).
    #[error("{0}")]
    NoAnswer(String),
    #[error("no answer in {0} s")]
    TimedOut(u64),
}

/// The buckets the credentials can see at `endpoint` (AWS's when none;
/// path style), for `drtool init`.
pub async fn list_buckets(
    region: &str,
    endpoint: Option<&str>,
) -> Result<Vec<String>, ListBucketsError> {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(20))
        .build();
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .timeout_config(timeouts)
        .load()
        .await;
    let mut conf = aws_sdk_s3::config::Builder::from(&shared).force_path_style(true);
    if let Some(endpoint) = endpoint {
        conf = conf.endpoint_url(endpoint);
    }
    let out = Client::from_conf(conf.build())
        .list_buckets()
        .send()
        .await
        .map_err(|e| match e.message() {
            Some(m) => ListBucketsError::Refused {
                code: e.code().unwrap_or("error").to_string(),
                message: m.to_string(),
            },
            None => ListBucketsError::NoAnswer(
                super::os_words(&e).unwrap_or_else(|| DisplayErrorContext(&e).to_string()),
            ),
        })?;
    Ok(out
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect())
}

impl S3Store {
    pub async fn new(region: &Region, bucket: &str) -> S3Store {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.s3_region.clone()))
            .timeout_config(timeouts);
        if let Some(profile) = &region.profile {
            loader = loader.profile_name(profile);
        }
        let shared = loader.load().await;
        let mut conf =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(region.path_style);
        if let Some(endpoint) = &region.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        let name = match &region.endpoint {
            Some(e) => format!("{} ({e})", region.store),
            None => region.store.to_string(),
        };
        S3Store {
            client: Client::from_conf(conf.build()),
            bucket: bucket.to_string(),
            name,
            lock: region.object_lock,
        }
    }
}

impl S3Store {
    async fn get_object(
        &self,
        key: &str,
        op: &'static str,
        pin: Option<&str>,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, StoreError> {
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match(pin.map(str::to_string))
            .send()
            .await
            .map_err(|e| match map_err(&self.name, op, key, e) {
                StoreError::Failed { detail, .. }
                    if pin.is_some()
                        && (detail.contains("PreconditionFailed") || detail.contains("412")) =>
                {
                    StoreError::Changed {
                        store: self.name.clone(),
                        key: key.to_string(),
                        pinned: format!("ETag {}", pin.unwrap_or_default()),
                        found: "another ETag".into(),
                    }
                }
                other => other,
            })
    }

    /// Deletes every version of `key` (a bucket with Object Lock keeps versions:
    /// a plain delete would only hide the object behind a delete marker).
    async fn delete_versions(&self, key: &str) -> Result<(), StoreError> {
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(key)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .map_err(|e| map_err(&self.name, "list versions", key, e))?;
            let ids = page
                .versions()
                .iter()
                .filter(|v| v.key() == Some(key))
                .filter_map(|v| v.version_id())
                .chain(
                    page.delete_markers()
                        .iter()
                        .filter(|m| m.key() == Some(key))
                        .filter_map(|m| m.version_id()),
                );
            for id in ids {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .version_id(id)
                    .send()
                    .await
                    .map_err(|e| match map_err(&self.name, "delete", key, e) {
                        StoreError::Failed { detail, .. }
                            if detail.contains("AccessDenied")
                                || detail.contains("retention")
                                || detail.contains("ObjectLock") =>
                        {
                            StoreError::Retained {
                                store: self.name.clone(),
                                key: key.to_string(),
                                detail: format!("version {id}: {detail}"),
                            }
                        }
                        other => other,
                    })?;
            }
            if page.is_truncated() != Some(true) {
                return Ok(());
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        }
    }
}

/// Maps an SDK error to ours: transport failures mean the region is unreachable.
fn map_err<E, R>(store: &str, op: &'static str, key: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + 'static,
{
    let code = err.code().map(str::to_string);
    // The service's own code and message when it answered; the operating
    // system's words when it could not be reached; the SDK's context last.
    let detail = match (code.as_deref(), err.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => super::os_words(&err).unwrap_or_else(|| DisplayErrorContext(&err).to_string()),
    };
    match (&err, code.as_deref()) {
        // The SDK reports a missing credential chain as a dispatch failure.
        (SdkError::DispatchFailure(_), _)
            if detail.contains("loading credentials")
                || detail.contains("CredentialsNotLoaded") =>
        {
            StoreError::Credentials {
                store: store.to_string(),
                detail: "the credential chain found none".into(),
            }
        }
        (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _) => StoreError::Unreachable {
            store: store.to_string(),
            detail,
        },
        (_, Some("NoSuchKey" | "NotFound")) => StoreError::NotFound {
            store: store.to_string(),
            key: key.to_string(),
        },
        (_, Some("NotImplemented")) => StoreError::Misconfigured {
            store: store.to_string(),
            detail: format!(
                "the store does not implement {op} ({detail}){}",
                if op == "list versions" {
                    ": it keeps no object versions, which object_lock needs (use a bucket with versioning and Object Lock, or remove object_lock from the region)"
                } else {
                    ""
                }
            ),
        },
        _ => StoreError::Failed {
            store: store.to_string(),
            op,
            key: key.to_string(),
            detail,
        },
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn put(&self, key: &str, body: Bytes, keep: Keep) -> Result<(), StoreError> {
        let (mode, until) = retention(self.lock, keep).unzip();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_object_lock_mode(mode)
            .set_object_lock_retain_until_date(until)
            .send()
            .await
            .map_err(|e| map_err(&self.name, "put", key, e))?;
        Ok(())
    }

    async fn put_new(&self, key: &str, body: Bytes) -> Result<bool, StoreError> {
        // Not every S3 store honours If-None-Match on PUT (Garage does not):
        // look first, so an existing object is never overwritten knowingly.
        match self.get_object(key, "get", None).await {
            Ok(_) => return Ok(false),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .if_none_match("*")
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) => match map_err(&self.name, "put", key, e) {
                StoreError::Failed { detail, .. }
                    if detail.contains("PreconditionFailed")
                        || detail.contains("412")
                        || detail.contains("ConditionalRequestConflict") =>
                {
                    Ok(false)
                }
                other => Err(other),
            },
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let out = self.get_object(key, "get", None).await?;
        let body = out.body.collect().await.map_err(|e| StoreError::Failed {
            store: self.name.clone(),
            op: "get",
            key: key.to_string(),
            detail: e.to_string(),
        })?;
        Ok(body.into_bytes())
    }

    async fn open(&self, key: &str, pin: Option<&str>) -> Result<Opened, StoreError> {
        let out = self.get_object(key, "open", pin).await?;
        let size = out.content_length().unwrap_or(0).max(0) as u64;
        let version = out.e_tag().map(str::to_string);
        if let (Some(pinned), Some(found)) = (pin, &version)
            && pinned != found
        {
            // A store that ignores If-Match is caught here, before any byte.
            return Err(StoreError::Changed {
                store: self.name.clone(),
                key: key.to_string(),
                pinned: format!("ETag {pinned}"),
                found: format!("ETag {found}"),
            });
        }
        Ok(Opened {
            reader: Box::pin(out.body.into_async_read()),
            size,
            version,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err(&self.name, "list", prefix, e))?;
            for o in page.contents() {
                if let Some(key) = o.key() {
                    out.push(ObjectInfo {
                        key: key.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        modified: o.last_modified().and_then(chrono_time),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if self.lock.is_some() {
            return self.delete_versions(key).await;
        }
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_err(&self.name, "delete", key, e))?;
        Ok(())
    }

    async fn start_upload(
        &self,
        key: &str,
        keep: Keep,
    ) -> Result<Box<dyn MultipartUpload>, StoreError> {
        let (mode, until) = retention(self.lock, keep).unzip();
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_object_lock_mode(mode)
            .set_object_lock_retain_until_date(until)
            .send()
            .await
            .map_err(|e| map_err(&self.name, "start upload", key, e))?;
        let upload_id = out.upload_id().unwrap_or_default().to_string();
        Ok(Box::new(S3Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_string(),
            store: self.name.clone(),
            upload_id,
            parts: Mutex::new(Vec::new()),
        }))
    }

    async fn unfinished(&self, prefix: &str) -> Result<Vec<Unfinished>, StoreError> {
        let mut found = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|e| map_err(&self.name, "list uploads", prefix, e))?;
            for u in page.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                    found.push(Unfinished {
                        what: UnfinishedKind::OpenUpload,
                        key: key.to_string(),
                        id: id.to_string(),
                        started: u.initiated().and_then(chrono_time),
                        size: None,
                    });
                }
            }
            let next = (
                page.next_key_marker().map(str::to_string),
                page.next_upload_id_marker().map(str::to_string),
            );
            // A store that says "truncated" without a way on would loop forever.
            if page.is_truncated() != Some(true) || next == (key_marker.clone(), id_marker.clone())
            {
                return Ok(found);
            }
            (key_marker, id_marker) = next;
        }
    }

    async fn discard(&self, unfinished: &Unfinished) -> Result<(), StoreError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&unfinished.key)
            .upload_id(&unfinished.id)
            .send()
            .await
            .map_err(|e| map_err(&self.name, "abort upload", &unfinished.key, e))?;
        Ok(())
    }

    async fn retained_until(&self, key: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        if self.lock.is_none() {
            return Ok(None);
        }
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_err(&self.name, "head", key, e))?;
        Ok(out.object_lock_retain_until_date().and_then(chrono_time))
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| map_err(&self.name, "probe bucket", &self.bucket, e))?;
        if self.lock.is_some() {
            // Retention on objects needs Object Lock on the bucket; without it
            // every backup would fail at its first write.
            let enabled = self
                .client
                .get_object_lock_configuration()
                .bucket(&self.bucket)
                .send()
                .await
                .ok()
                .and_then(|o| o.object_lock_configuration().cloned())
                .and_then(|c| c.object_lock_enabled().cloned());
            if enabled != Some(aws_sdk_s3::types::ObjectLockEnabled::Enabled) {
                return Err(StoreError::Misconfigured {
                    store: self.name.clone(),
                    detail: format!(
                        "the region sets object_lock but bucket {} has no Object Lock enabled, so points would not be immutable: \
                         create the bucket with Object Lock (aws s3api create-bucket --object-lock-enabled-for-bucket), \
                         or remove object_lock from the region",
                        self.bucket
                    ),
                });
            }
        }
        Ok(())
    }
}

struct S3Upload {
    client: Client,
    bucket: String,
    key: String,
    store: String,
    upload_id: String,
    parts: Mutex<Vec<(i32, String)>>,
}

#[async_trait]
impl MultipartUpload for S3Upload {
    async fn put_part(&self, number: u32, body: Bytes) -> Result<(), StoreError> {
        let number = number as i32;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| map_err(&self.store, "upload part", &self.key, e))?;
        let etag = out.e_tag().unwrap_or_default().to_string();
        if let Ok(mut parts) = self.parts.lock() {
            parts.push((number, etag));
        }
        Ok(())
    }

    async fn complete(&self) -> Result<(), StoreError> {
        let mut parts = self.parts.lock().map(|p| p.clone()).unwrap_or_default();
        parts.sort();
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .into_iter()
                    .map(|(n, etag)| CompletedPart::builder().part_number(n).e_tag(etag).build())
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| map_err(&self.store, "complete upload", &self.key, e))?;
        Ok(())
    }

    async fn abort(&self) -> Result<(), StoreError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map_err(|e| map_err(&self.store, "abort upload", &self.key, e))?;
        Ok(())
    }
}
