//! Backup: source -> archive pipeline -> home region, manifest last, then copies
//! to every `copy_to` region.

use std::collections::BTreeMap;
use std::future::Future;

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::mpsc;

use super::copy::copy_point;
use super::{ItemResult, Job, Jobs, write_options};
use crate::archive::manifest::{
    Compression, EncryptionInfo, FORMAT_VERSION, RdsInfo, recipient_fingerprint,
};
use crate::archive::pipeline::{self, DataSummary, PipelineError, WriteOptions};
use crate::archive::{Consistency, Layout, Manifest, PayloadKind, PointId};
use crate::config::{Config, EtcdMode, EtcdTarget, NamespaceTarget, RdsTarget, Target, TargetSpec};
use crate::error::Error;
use crate::source::SourceError;
use crate::source::etcd;
use crate::source::kube as kube_ns;
use crate::source::rds::{self, Rds, dump};
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
            "{} bytes -> {} stored ({}), {}",
            manifest.plaintext_size,
            manifest.stored_size,
            rs.store.describe(),
            manifest.consistency.describe()
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

/// What a source produced for a new point, before the manifest is written.
struct Taken {
    payload: PayloadKind,
    data: Option<DataSummary>,
    consistency: Consistency,
    items: BTreeMap<String, u64>,
    rds: Option<RdsInfo>,
}

/// Takes the backup into `rs` and writes its manifest; returns the manifest.
async fn backup_into(
    cfg: &Config,
    target: &Target,
    rs: &RegionStore,
    opts: &BackupOptions,
    jobs: &Jobs,
) -> Result<Manifest, Error> {
    let started_at = Utc::now();
    let id = PointId::new(started_at);
    let write = write_options(cfg);
    let encrypted = !write.recipients.is_empty();
    let data_key = rs.layout.data_key(&target.name, &id, encrypted);
    let job = jobs.start(
        format!("backup {} -> {} ({id})", target.name, rs.region),
        None,
    );
    let taken = match &target.spec {
        TargetSpec::Etcd(spec) => take_etcd(cfg, target, spec, rs, &data_key, &job).await,
        TargetSpec::Rds(spec) => take_rds(cfg, target, spec, rs, (&id, &data_key), &job).await,
        TargetSpec::Namespace(spec) => take_namespace(cfg, target, spec, rs, &data_key, &job).await,
    };
    let taken = match taken {
        Ok(t) => t,
        Err(e) => {
            job.fail(e.to_string());
            return Err(e);
        }
    };
    let data = taken.data.clone().unwrap_or(DataSummary {
        plaintext_size: 0,
        plaintext_sha256: String::new(),
        stored_size: 0,
        stored_sha256: String::new(),
    });
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        point_id: id.to_string(),
        target: target.name.clone(),
        target_kind: target.spec.kind().to_string(),
        payload: taken.payload,
        data_file: taken
            .data
            .is_some()
            .then(|| Layout::data_file(encrypted).to_string()),
        source_region: rs.region.clone(),
        region: rs.region.clone(),
        copied_from: None,
        copied_to: Vec::new(),
        started_at,
        finished_at: Utc::now(),
        consistency: taken.consistency,
        plaintext_size: data.plaintext_size,
        stored_size: data.stored_size,
        plaintext_sha256: data.plaintext_sha256,
        stored_sha256: data.stored_sha256,
        compression: Compression {
            algorithm: "zstd".into(),
            level: write.level,
        },
        encryption: (encrypted && taken.data.is_some()).then(|| EncryptionInfo {
            scheme: "age-x25519".into(),
            recipients: write
                .recipients
                .iter()
                .map(|r| recipient_fingerprint(r))
                .collect(),
        }),
        items: taken.items,
        drtool_version: env!("CARGO_PKG_VERSION").to_string(),
        schedule: opts.schedule.clone(),
        labels: opts.labels.clone(),
        rds: taken.rds,
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
        if manifest.data_file.is_some() {
            let _ = rs.store.delete(&data_key).await;
        }
        job.fail(e.to_string());
        return Err(e.into());
    }
    job.finish(format!("point {id}: {} bytes stored", manifest.stored_size));
    Ok(manifest)
}

/// Runs `source` into the archive pipeline and uploads the result to the
/// point's data key. The data exists only if both sides succeeded.
async fn stream_data<T, Fut>(
    cfg: &Config,
    rs: &RegionStore,
    key: &str,
    payload: PayloadKind,
    job: &Job,
    source: impl FnOnce(mpsc::Sender<std::io::Result<Bytes>>) -> Fut,
) -> Result<(T, DataSummary), Error>
where
    Fut: Future<Output = Result<T, SourceError>> + Send + 'static,
    T: Send + 'static,
{
    let write = WriteOptions {
        trailing_sha256: payload.has_trailing_sha256(),
        ..write_options(cfg)
    };
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let source = tokio::spawn(source(tx));
    job.phase("streaming");
    let uploaded = pipeline::upload(rs.store.as_ref(), key, rx, &write, job.on_bytes()).await;
    let sourced = source
        .await
        .map_err(|e| Error::failed(format!("source task failed: {e}")));
    // The source's own error says more than the pipeline's "stream broke".
    match (sourced, uploaded) {
        (Ok(Ok(meta)), Ok(data)) => Ok((meta, data)),
        (Ok(Err(e)), uploaded) => {
            if uploaded.is_ok() {
                let _ = rs.store.delete(key).await;
            }
            Err(e.into())
        }
        (Err(e), _) => Err(e),
        (Ok(Ok(_)), Err(e)) => Err(pipeline_error(e)),
    }
}

async fn take_etcd(
    cfg: &Config,
    target: &Target,
    spec: &EtcdTarget,
    rs: &RegionStore,
    key: &str,
    job: &Job,
) -> Result<Taken, Error> {
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
    job.phase("connecting to etcd");
    let mut client = etcd::connect(region_cfg).await?;
    let endpoints = region_cfg.endpoints.clone();
    let mode = spec.mode;
    let prefix = spec.prefix.clone();
    let (meta, data) = stream_data(cfg, rs, key, payload, job, move |tx| async move {
        match mode {
            EtcdMode::Snapshot => etcd::snapshot(&mut client, &endpoints, tx).await,
            EtcdMode::Keys => etcd::keys(&mut client, &endpoints, prefix.as_deref(), tx).await,
        }
    })
    .await?;
    Ok(Taken {
        payload,
        data: Some(data),
        consistency: Consistency::Etcd {
            revision: meta.revision,
            observed_at: meta.observed_at,
        },
        items: meta.items,
        rds: None,
    })
}

async fn take_namespace(
    cfg: &Config,
    target: &Target,
    spec: &NamespaceTarget,
    rs: &RegionStore,
    key: &str,
    job: &Job,
) -> Result<Taken, Error> {
    let region = spec.regions.get(&target.home).ok_or_else(|| {
        Error::input(format!(
            "target {}: no kubeconfig for region {}",
            target.name, target.home
        ))
    })?;
    job.phase("connecting to Kubernetes");
    let cluster = kube_ns::connect(region).await?;
    let spec_owned = spec.clone();
    let (meta, data) = stream_data(
        cfg,
        rs,
        key,
        PayloadKind::KubeNamespace,
        job,
        move |tx| async move { kube_ns::backup(&cluster, &spec_owned, tx).await },
    )
    .await?;
    Ok(Taken {
        payload: PayloadKind::KubeNamespace,
        data: Some(data),
        consistency: Consistency::Kube {
            at: meta.at,
            lists: meta.list_versions,
        },
        items: meta.items,
        rds: None,
    })
}

async fn take_rds(
    cfg: &Config,
    target: &Target,
    spec: &RdsTarget,
    rs: &RegionStore,
    (id, key): (&PointId, &str),
    job: &Job,
) -> Result<Taken, Error> {
    let home_cfg = spec.regions.get(&target.home);
    let api = Rds::new(&target.home, home_cfg).await;
    let mut items = BTreeMap::new();
    let mut rds = RdsInfo {
        instance: spec.instance.clone(),
        engine: None,
        snapshots: BTreeMap::new(),
    };
    let mut at = Utc::now();
    let mut data = None;
    if spec.mode.dumps() {
        let conn = home_cfg.and_then(|r| r.database.as_ref()).ok_or_else(|| {
            Error::input(format!(
                "target {}: dumping needs a `database` in region {}",
                target.name, target.home
            ))
        })?;
        let host = match conn.host {
            Some(_) => None,
            None => {
                job.phase("reading the instance endpoint");
                api.instance(&spec.instance).await?.endpoint
            }
        };
        let db = dump::Db::resolve(conn, host.as_deref())?;
        job.phase(format!("pg_dump of {db:?}"));
        at = Utc::now();
        let (size, summary) = stream_data(
            cfg,
            rs,
            key,
            PayloadKind::PgDump,
            job,
            move |tx| async move { dump::dump(&db, tx).await },
        )
        .await?;
        items.insert("dump_bytes".to_string(), size);
        data = Some(summary);
    }
    if spec.mode.snapshots() {
        let snapshot = rds::snapshot_id(&target.name, id.as_str());
        job.phase(format!("creating RDS snapshot {snapshot}"));
        let phase = job.clone();
        let on_state = move |s: &str| phase.phase(format!("snapshot {s}"));
        let created = api
            .create_snapshot(
                &spec.instance,
                &snapshot,
                &target.name,
                id.as_str(),
                &on_state,
            )
            .await;
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                // A dump already uploaded must not stay behind as an orphan.
                if data.is_some() {
                    let _ = rs.store.delete(key).await;
                }
                return Err(e.into());
            }
        };
        if !spec.mode.dumps() {
            at = created.created_at.unwrap_or(at);
        }
        rds.engine = created.engine;
        rds.snapshots.insert(target.home.clone(), created.arn);
        items.insert("snapshots".to_string(), 1);
    }
    Ok(Taken {
        payload: if spec.mode.dumps() {
            PayloadKind::PgDump
        } else {
            PayloadKind::RdsSnapshot
        },
        data,
        consistency: Consistency::Rds { at },
        items,
        rds: Some(rds),
    })
}

pub(crate) fn pipeline_error(e: PipelineError) -> Error {
    match e {
        PipelineError::Store(e) => e.into(),
        PipelineError::Archive(e) => e.into(),
    }
}
