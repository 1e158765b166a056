//! RDS: native snapshots (create, copy across regions, restore, delete), and the
//! failover helpers drills use. Every call goes to one region's RDS API; a
//! restore in region R builds only R's client.
//!
//! drtool tags what it creates (`drtool:managed=true`) and never deletes a
//! snapshot without that tag. [`RdsKind`] (in `home.rs`) is what the engine sees.

mod config;
mod contents;
pub mod drill;
pub mod dump;
mod error;
mod home;
mod init;
mod options;
pub mod presign;
mod rows;
mod scratch;
pub mod wait;

pub use config::{DbConn, PasswordSource, RdsMode, RdsRegion, RdsTarget};

use std::time::Duration;

use aws_sdk_rds::Client;
use aws_sdk_rds::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_rds::types::Tag;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use error::{DatabaseUse, RdsError};
pub use home::{
    ApiRef, PG_DUMP, RdsInfo, RdsKind, RdsPlan, Route, SNAPSHOT, decide_dump, decide_pitr,
    decide_snapshot, route,
};

use crate::error::SourceError;
use wait::{WaitSpec, wait_until};

pub const MANAGED_TAG: &str = "drtool:managed";

/// How long waits may take by default; RDS snapshots of big instances take hours.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
const POLL: Duration = Duration::from_secs(5);

/// One region's RDS API.
#[derive(Clone)]
pub struct Rds {
    client: Client,
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    pub region: String,
    /// Poll interval of waits (short in tests).
    pub poll: Duration,
    pub timeout: Duration,
}

/// A snapshot to copy from another region.
pub struct SnapshotSource<'a> {
    pub arn: &'a str,
    pub region: &'a str,
    /// The source region's RDS endpoint override, if any.
    pub endpoint: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    pub id: String,
    pub arn: String,
    pub status: String,
    pub created_at: Option<DateTime<Utc>>,
    pub engine: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceInfo {
    pub id: String,
    pub status: String,
    pub endpoint: Option<String>,
    pub port: Option<i32>,
    pub engine: Option<String>,
}

fn map_err<E, R>(region: &str, what: &str, e: SdkError<E, R>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    // A service error says it in its code and message; the context of
    // anything else (a connection refused) is the useful part.
    let detail = match (e.code(), e.message()) {
        (Some(_), Some(m)) => m.to_string(),
        _ => DisplayErrorContext(&e).to_string(),
    };
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => SourceError::Unreachable {
            what: format!("the RDS API of {region}"),
            endpoints: region.to_string(),
            detail,
        },
        _ => SourceError::Failed {
            what: format!("RDS {what} in {region}"),
            detail: e
                .code()
                .map_or(detail.clone(), |c| format!("{c}: {detail}")),
        },
    }
}

fn time(t: Option<&aws_sdk_rds::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// A snapshot identifier RDS accepts: letters, digits and single hyphens,
/// starting with a letter.
pub fn snapshot_id(target: &str, point: &str) -> String {
    identifier(&format!("drtool-{target}-{point}"))
}

/// The identifier of an instance restored from `point`, from the configured
/// template (`{instance}` and `{point}` are replaced).
pub fn restored_instance_id(template: &str, instance: &str, point: &str) -> String {
    identifier(
        &template
            .replace("{instance}", instance)
            .replace("{point}", point),
    )
}

/// Lowercase letters, digits and single hyphens, as RDS identifiers need.
fn identifier(raw: &str) -> String {
    let raw = raw.to_ascii_lowercase();
    let mut id = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && id.ends_with('-')) {
            id.push(c);
        }
    }
    id.trim_end_matches('-').chars().take(255).collect()
}

impl Rds {
    /// Builds the client of one region (`endpoint` overrides the API's
    /// address, e.g. the lab's moto server); nothing is contacted yet.
    pub async fn new(region: &str, endpoint: Option<&str>) -> Rds {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .build();
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .timeout_config(timeouts)
            .load()
            .await;
        let mut conf = aws_sdk_rds::config::Builder::from(&shared);
        if let Some(endpoint) = endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        Rds {
            credentials: shared.credentials_provider(),
            client: Client::from_conf(conf.build()),
            region: region.to_string(),
            poll: POLL,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Every instance of the region: its id and engine (`drtool init`).
    pub async fn list_instances(&self) -> Result<Vec<(String, String)>, SourceError> {
        let mut out = Vec::new();
        let mut pages = self.client.describe_db_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err(&self.region, "list instances", e))?;
            for i in page.db_instances() {
                if let Some(id) = i.db_instance_identifier() {
                    out.push((id.to_string(), i.engine().unwrap_or("").to_string()));
                }
            }
        }
        Ok(out)
    }

    /// The instance, or `None` if this region has no instance of that name.
    async fn describe_instance(&self, id: &str) -> Result<Option<InstanceInfo>, SourceError> {
        let out = match self
            .client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.code() == Some("DBInstanceNotFound") => return Ok(None),
            Err(e) => return Err(map_err(&self.region, &format!("describe instance {id}"), e)),
        };
        Ok(out.db_instances().first().map(|i| InstanceInfo {
            id: id.to_string(),
            status: i.db_instance_status().unwrap_or_default().to_string(),
            endpoint: i.endpoint().and_then(|e| e.address()).map(str::to_string),
            port: i.endpoint().and_then(|e| e.port()),
            engine: i.engine().map(str::to_string),
        }))
    }

    pub async fn instance(&self, id: &str) -> Result<InstanceInfo, SourceError> {
        self.describe_instance(id).await?.ok_or_else(|| {
            RdsError::InstanceMissing {
                instance: id.to_string(),
                region: self.region.clone(),
            }
            .into()
        })
    }

    /// Whether an instance with this identifier exists.
    pub async fn instance_exists(&self, id: &str) -> Result<bool, SourceError> {
        Ok(self.describe_instance(id).await?.is_some())
    }

    pub async fn snapshot(&self, id: &str) -> Result<SnapshotInfo, SourceError> {
        self.find_snapshot(id).await?.ok_or_else(|| {
            RdsError::SnapshotMissing {
                snapshot: id.to_string(),
                region: self.region.clone(),
            }
            .into()
        })
    }

    /// The snapshot, or none when RDS has no snapshot of that name.
    pub async fn find_snapshot(&self, id: &str) -> Result<Option<SnapshotInfo>, SourceError> {
        let out = match self
            .client
            .describe_db_snapshots()
            .db_snapshot_identifier(id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.code() == Some("DBSnapshotNotFound") => return Ok(None),
            Err(e) => return Err(map_err(&self.region, &format!("describe snapshot {id}"), e)),
        };
        let Some(s) = out.db_snapshots().first() else {
            return Ok(None);
        };
        Ok(Some(SnapshotInfo {
            id: id.to_string(),
            arn: s.db_snapshot_arn().unwrap_or_default().to_string(),
            status: s.status().unwrap_or_default().to_string(),
            created_at: time(s.snapshot_create_time()),
            engine: s.engine().map(str::to_string),
        }))
    }

    fn tags(target: &str, point: &str) -> Vec<Tag> {
        [
            (MANAGED_TAG, "true"),
            ("drtool:target", target),
            ("drtool:point", point),
        ]
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
    }

    async fn wait_snapshot(
        &self,
        id: &str,
        on_state: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<SnapshotInfo, SourceError> {
        let what = format!("snapshot {id} in {}", self.region);
        let spec = WaitSpec {
            what: &what,
            done: &["available"],
            failed: &[
                "failed",
                "incompatible-restore",
                "incompatible-parameters",
                "deleted",
            ],
            timeout: self.timeout,
            interval: self.poll,
        };
        wait_until(
            &spec,
            || async { self.snapshot(id).await.map(|s| s.status) },
            on_state,
        )
        .await?;
        self.snapshot(id).await
    }

    /// Creates a tagged manual snapshot of `instance` and waits until it is available.
    pub async fn create_snapshot(
        &self,
        instance: &str,
        id: &str,
        target: &str,
        point: &str,
        on_state: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<SnapshotInfo, SourceError> {
        self.client
            .create_db_snapshot()
            .db_instance_identifier(instance)
            .db_snapshot_identifier(id)
            .set_tags(Some(Self::tags(target, point)))
            .send()
            .await
            .map_err(|e| map_err(&self.region, &format!("create snapshot of {instance}"), e))?;
        self.wait_snapshot(id, on_state).await
    }

    /// Copies a snapshot from another region into this one and waits for it.
    /// Cross-region copies carry a pre-signed request for the source region,
    /// which RDS needs to copy encrypted snapshots.
    pub async fn copy_snapshot_from(
        &self,
        source: &SnapshotSource<'_>,
        id: &str,
        kms_key: Option<&str>,
        (target, point): (&str, &str),
        on_state: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<SnapshotInfo, SourceError> {
        let source_arn = source.arn;
        let presigned = if source.region == self.region {
            None
        } else {
            Some(self.presign(source, id, kms_key).await?)
        };
        self.client
            .copy_db_snapshot()
            .source_db_snapshot_identifier(source_arn)
            .target_db_snapshot_identifier(id)
            .set_kms_key_id(kms_key.map(str::to_string))
            .set_pre_signed_url(presigned)
            .set_tags(Some(Self::tags(target, point)))
            .send()
            .await
            .map_err(|e| map_err(&self.region, &format!("copy snapshot {source_arn}"), e))?;
        self.wait_snapshot(id, on_state).await
    }

    async fn presign(
        &self,
        source: &SnapshotSource<'_>,
        id: &str,
        kms_key: Option<&str>,
    ) -> Result<String, SourceError> {
        use aws_credential_types::provider::ProvideCredentials;
        let failed = |detail: String| SourceError::Failed {
            what: format!(
                "pre-signing the copy of {} into {}",
                source.arn, self.region
            ),
            detail,
        };
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| failed("no AWS credentials provider is configured".into()))?;
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| failed(format!("no usable AWS credentials: {e}")))?;
        let req = presign::CopyRequest {
            source_region: source.region,
            destination_region: &self.region,
            source_arn: source.arn,
            target_id: id,
            kms_key,
            endpoint: source.endpoint,
        };
        presign::copy_snapshot_url(&creds, &req, std::time::SystemTime::now())
            .map_err(|e| failed(e.to_string()))
    }

    /// Deletes a snapshot drtool made; refuses one without drtool's tag.
    /// Deletes a snapshot drtool made; false when it was gone already.
    pub async fn delete_managed_snapshot(&self, id: &str) -> Result<bool, SourceError> {
        let Some(info) = self.find_snapshot(id).await? else {
            return Ok(false);
        };
        let tags = self
            .client
            .list_tags_for_resource()
            .resource_name(&info.arn)
            .send()
            .await
            .map_err(|e| map_err(&self.region, &format!("list tags of {id}"), e))?;
        let managed = tags
            .tag_list()
            .iter()
            .any(|t| t.key() == Some(MANAGED_TAG) && t.value() == Some("true"));
        if !managed {
            return Err(RdsError::NotManaged {
                snapshot: id.to_string(),
                region: self.region.clone(),
            }
            .into());
        }
        self.client
            .delete_db_snapshot()
            .db_snapshot_identifier(id)
            .send()
            .await
            .map_err(|e| map_err(&self.region, &format!("delete snapshot {id}"), e))?;
        Ok(true)
    }

    async fn wait_instance(
        &self,
        id: &str,
        done: &[&str],
        on_state: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Duration, SourceError> {
        let what = format!("instance {id} in {}", self.region);
        let spec = WaitSpec {
            what: &what,
            done,
            failed: &[
                "failed",
                "incompatible-restore",
                "incompatible-parameters",
                "storage-full",
                "deleting",
            ],
            timeout: self.timeout,
            interval: self.poll,
        };
        wait_until(
            &spec,
            || async { self.instance(id).await.map(|i| i.status) },
            on_state,
        )
        .await
    }

    /// Restores a new instance from a snapshot in this region and waits until it is available.
    pub async fn restore_from_snapshot(
        &self,
        new_id: &str,
        snapshot_arn: &str,
        class: Option<&str>,
        subnet_group: Option<&str>,
        on_state: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<InstanceInfo, SourceError> {
        self.client
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(new_id)
            .db_snapshot_identifier(snapshot_arn)
            .set_db_instance_class(class.map(str::to_string))
            .set_db_subnet_group_name(subnet_group.map(str::to_string))
            .send()
            .await
            .map_err(|e| {
                map_err(
                    &self.region,
                    &format!("restore {new_id} from {snapshot_arn}"),
                    e,
                )
            })?;
        self.wait_instance(new_id, &["available"], on_state).await?;
        self.instance(new_id).await
    }

    /// Point-in-time restore of `source` (automated backups in this region) into `new_id`.
    pub async fn restore_to_time(
        &self,
        source: &str,
        new_id: &str,
        at: DateTime<Utc>,
        class: Option<&str>,
        subnet_group: Option<&str>,
        on_state: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<InstanceInfo, SourceError> {
        self.client
            .restore_db_instance_to_point_in_time()
            .source_db_instance_identifier(source)
            .target_db_instance_identifier(new_id)
            .restore_time(aws_sdk_rds::primitives::DateTime::from_secs(at.timestamp()))
            .set_db_instance_class(class.map(str::to_string))
            .set_db_subnet_group_name(subnet_group.map(str::to_string))
            .send()
            .await
            .map_err(|e| {
                map_err(
                    &self.region,
                    &format!("point-in-time restore of {source} to {}", at.to_rfc3339()),
                    e,
                )
            })?;
        self.wait_instance(new_id, &["available"], on_state).await?;
        self.instance(new_id).await
    }

    /// Sends an instance action, then waits for the state it leads to; returns
    /// how long the whole took (what a drill records).
    async fn act<O, E, R>(
        &self,
        id: &str,
        what: &str,
        call: impl std::future::Future<Output = Result<O, SdkError<E, R>>>,
        done: &[&str],
        on_state: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Duration, SourceError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let started = std::time::Instant::now();
        call.await
            .map_err(|e| map_err(&self.region, &format!("{what} {id}"), e))?;
        self.wait_instance(id, done, on_state).await?;
        Ok(started.elapsed())
    }

    /// Deletes an instance without a final snapshot (one a drill restored).
    pub async fn delete_instance(&self, id: &str) -> Result<(), SourceError> {
        self.client
            .delete_db_instance()
            .db_instance_identifier(id)
            .skip_final_snapshot(true)
            .send()
            .await
            .map_err(|e| map_err(&self.region, &format!("delete instance {id}"), e))?;
        Ok(())
    }

    /// Promotes a read replica to a standalone instance.
    pub async fn promote_read_replica(
        &self,
        id: &str,
        on_state: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Duration, SourceError> {
        let call = self
            .client
            .promote_read_replica()
            .db_instance_identifier(id)
            .send();
        self.act(id, "promote read replica", call, &["available"], on_state)
            .await
    }

    /// Reboots, with a Multi-AZ failover if asked.
    pub async fn reboot(
        &self,
        id: &str,
        force_failover: bool,
        on_state: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Duration, SourceError> {
        let call = self
            .client
            .reboot_db_instance()
            .db_instance_identifier(id)
            .force_failover(force_failover)
            .send();
        self.act(id, "reboot", call, &["available"], on_state).await
    }

    /// Stops an instance.
    pub async fn stop(
        &self,
        id: &str,
        on_state: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Duration, SourceError> {
        let call = self
            .client
            .stop_db_instance()
            .db_instance_identifier(id)
            .send();
        self.act(id, "stop", call, &["stopped"], on_state).await
    }

    /// Starts a stopped instance.
    pub async fn start(
        &self,
        id: &str,
        on_state: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Duration, SourceError> {
        let call = self
            .client
            .start_db_instance()
            .db_instance_identifier(id)
            .send();
        self.act(id, "start", call, &["available"], on_state).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_are_valid_rds_identifiers() {
        assert_eq!(
            snapshot_id("orders_db", "20261122T020000Z-0badcafe"),
            "drtool-orders-db-20261122t020000z-0badcafe"
        );
        assert_eq!(snapshot_id("a..b", "p"), "drtool-a-b-p");
    }
}
