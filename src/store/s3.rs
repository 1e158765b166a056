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
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

use super::{MultipartUpload, ObjectInfo, ObjectReader, ObjectStore, StoreError};
use crate::config::Region;

pub struct S3Store {
    client: Client,
    bucket: String,
    name: String,
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
        }
    }
}

impl S3Store {
    async fn get_object(
        &self,
        key: &str,
        op: &'static str,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, StoreError> {
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_err(&self.name, op, key, e))
    }
}

/// Maps an SDK error to ours: transport failures mean the region is unreachable.
fn map_err<E, R>(store: &str, op: &'static str, key: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().map(str::to_string);
    let detail = DisplayErrorContext(&err).to_string();
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

    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| map_err(&self.name, "put", key, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let out = self.get_object(key, "get").await?;
        let body = out.body.collect().await.map_err(|e| StoreError::Failed {
            store: self.name.clone(),
            op: "get",
            key: key.to_string(),
            detail: e.to_string(),
        })?;
        Ok(body.into_bytes())
    }

    async fn open(&self, key: &str) -> Result<(ObjectReader, u64), StoreError> {
        let out = self.get_object(key, "open").await?;
        let size = out.content_length().unwrap_or(0).max(0) as u64;
        Ok((Box::pin(out.body.into_async_read()), size))
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
                    });
                }
            }
        }
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_err(&self.name, "delete", key, e))?;
        Ok(())
    }

    async fn start_upload(&self, key: &str) -> Result<Box<dyn MultipartUpload>, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
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

    async fn open_uploads(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(prefix)
            .send()
            .await
            .map_err(|e| map_err(&self.name, "list uploads", prefix, e))?;
        Ok(out
            .uploads()
            .iter()
            .filter_map(|u| u.key().map(str::to_string))
            .collect())
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| map_err(&self.name, "probe bucket", &self.bucket, e))?;
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

    async fn complete(self: Box<Self>) -> Result<(), StoreError> {
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

    async fn abort(self: Box<Self>) -> Result<(), StoreError> {
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
