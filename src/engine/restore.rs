//! Restore: plan first (which point, from where, into what, what is overwritten),
//! then execute only that plan. Everything is read from one region: its store and
//! its endpoints, so a restore works while every other region is down.
//!
//! Checksums are verified before a target is touched: a keys point is verified
//! while planning; a snapshot point is downloaded and verified into a local file
//! before any data dir is moved or created.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use super::backup::pipeline_error;
use super::{ItemResult, Jobs};
use crate::archive::pipeline::{self, DataSummary, Identities, ReadRequest};
use crate::archive::{Consistency, PayloadKind, PointId};
use crate::catalog::{self, PointEntry};
use crate::config::{
    Config, EtcdMember, EtcdRegion, NamespaceTarget, RdsRegion, RdsTarget, Target, TargetSpec,
};
use crate::error::Error;
use crate::source::SourceError;
use crate::source::etcd::{self, Existing, KeysPlan, SnapshotTool};
use crate::source::kube::{self as kube_ns, KindPlan, NsRestoreOptions};
use crate::source::rds::dump::{self, DbState};
use crate::source::rds::{self, Rds};
use crate::store::RegionStore;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub region: String,
    pub target: String,
    pub point: Option<PointId>,
    pub before: Option<DateTime<Utc>>,
    /// Keys restores: only keys under this prefix.
    pub prefix: Option<String>,
    pub existing: Existing,
    /// RDS: restore the dump into this database instead of the configured one.
    pub database: Option<String>,
    /// RDS: use the point's dump even where a snapshot exists.
    pub from_dump: bool,
    /// RDS: point-in-time restore from the automated backups instead of a point.
    pub pitr: Option<DateTime<Utc>>,
    /// Kubernetes: restore namespace `.0` into namespace `.1`.
    pub namespace_map: Option<(String, String)>,
    /// Kubernetes: only / never these resources (plural or plural.group).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberPlan {
    pub name: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
    /// Where an existing data dir is moved before the new one is made.
    pub move_aside_to: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RestoreAction {
    /// Replay keys into the region's cluster.
    EtcdKeys {
        endpoints: Vec<String>,
        prefix: Option<String>,
        existing: Existing,
        counts: KeysPlan,
    },
    /// Materialize fresh member data dirs from a snapshot.
    EtcdSnapshot {
        tool: SnapshotTool,
        cluster_token: String,
        members: Vec<MemberPlan>,
    },
    /// Restore a new RDS instance from the point's snapshot copy in this region.
    RdsFromSnapshot {
        snapshot_arn: String,
        new_instance: String,
        instance_class: Option<String>,
        subnet_group: Option<String>,
    },
    /// RDS point-in-time restore from the automated backups in this region.
    RdsPointInTime {
        source_instance: String,
        at: DateTime<Utc>,
        new_instance: String,
        instance_class: Option<String>,
        subnet_group: Option<String>,
    },
    /// Recreate a namespace's objects in this region's cluster.
    KubeNamespace {
        cluster: String,
        source_namespace: String,
        namespace: String,
        existing: Existing,
        include: Vec<String>,
        exclude: Vec<String>,
        /// Per resource: create / update / unchanged / skip / conflict.
        kinds: BTreeMap<String, KindPlan>,
    },
    /// pg_restore the point's dump into a database.
    PgRestore {
        database: String,
        dbname: String,
        state: DbState,
        /// Drop existing objects first (`--existing overwrite`).
        clean: bool,
    },
}

/// A restore, fully decided, ready to print, confirm and execute.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    pub region: String,
    pub target: String,
    /// The recovery point restored; none for an RDS point-in-time restore.
    pub point: Option<PointSummary>,
    /// Whether the plan replaces or overwrites anything.
    pub destructive: bool,
    /// Checksums already verified while planning.
    pub verified: bool,
    pub action: RestoreAction,
    #[serde(skip)]
    entry: Option<PointEntry>,
}

/// The facts of the point a plan restores.
#[derive(Debug, Clone, Serialize)]
pub struct PointSummary {
    pub id: String,
    pub finished_at: DateTime<Utc>,
    pub source_region: String,
    pub store: String,
    pub payload: PayloadKind,
    pub consistency: Consistency,
    pub stored_size: u64,
    pub plaintext_size: u64,
    pub encrypted: bool,
}

impl RestorePlan {
    /// A short name of what is restored, for job titles and results.
    pub fn source(&self) -> String {
        match (&self.point, &self.action) {
            (Some(p), _) => p.id.clone(),
            (None, RestoreAction::RdsPointInTime { at, .. }) => format!("time {}", at.to_rfc3339()),
            (None, _) => "-".into(),
        }
    }

    /// Human-readable plan, one line per fact.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "restore plan for target {} in region {}",
            self.target, self.region
        )];
        if let Some(p) = &self.point {
            lines.push(format!(
                "  point      {} (finished {}, taken in {})",
                p.id,
                p.finished_at.to_rfc3339(),
                p.source_region
            ));
            lines.push(format!("  from       {}", p.store));
            lines.push(format!(
                "  payload    {}, {} bytes ({} stored{})",
                p.payload.describe(),
                p.plaintext_size,
                p.stored_size,
                if p.encrypted { ", age-encrypted" } else { "" }
            ));
            lines.push(format!("  consistent {}", p.consistency.describe()));
        }
        match &self.action {
            RestoreAction::EtcdKeys {
                endpoints,
                prefix,
                existing,
                counts,
            } => {
                lines.push(format!("  into       etcd {}", endpoints.join(",")));
                lines.push(format!(
                    "  keys       {} in point, {} selected{}",
                    counts.in_point,
                    counts.selected,
                    prefix
                        .as_ref()
                        .map(|p| format!(" by prefix {p:?}"))
                        .unwrap_or_default()
                ));
                lines.push(format!("  create     {}", counts.create));
                let verb = match existing {
                    Existing::Skip => "skip",
                    Existing::Overwrite => "OVERWRITE",
                    Existing::Fail => "CONFLICT",
                };
                lines.push(format!("  {verb:<10} {}", counts.existing));
                for k in &counts.existing_examples {
                    lines.push(format!("             e.g. {k}"));
                }
            }
            RestoreAction::EtcdSnapshot {
                tool,
                cluster_token,
                members,
            } => {
                lines.push(format!(
                    "  into       new data dirs via {} (cluster token {cluster_token})",
                    tool.program.display()
                ));
                for m in members {
                    lines.push(format!(
                        "  member     {} {} -> {}",
                        m.name,
                        m.peer_url,
                        m.data_dir.display()
                    ));
                    if let Some(aside) = &m.move_aside_to {
                        lines.push(format!(
                            "             existing data dir will be MOVED to {}",
                            aside.display()
                        ));
                    }
                }
            }
            RestoreAction::RdsFromSnapshot {
                snapshot_arn,
                new_instance,
                instance_class,
                subnet_group,
            } => {
                lines.push(format!("  snapshot   {snapshot_arn}"));
                new_instance_lines(
                    &mut lines,
                    new_instance,
                    instance_class,
                    subnet_group,
                    "snapshot's",
                );
            }
            RestoreAction::RdsPointInTime {
                source_instance,
                at,
                new_instance,
                instance_class,
                subnet_group,
            } => {
                lines.push(format!(
                    "  from       automated backups of {source_instance} in {} at {}",
                    self.region,
                    at.to_rfc3339()
                ));
                new_instance_lines(
                    &mut lines,
                    new_instance,
                    instance_class,
                    subnet_group,
                    "source's",
                );
            }
            RestoreAction::KubeNamespace {
                cluster,
                source_namespace,
                namespace,
                kinds,
                ..
            } => {
                lines.push(format!("  into       {cluster}, namespace {namespace}"));
                if source_namespace != namespace {
                    lines.push(format!(
                        "  mapping    namespace {source_namespace} -> {namespace}"
                    ));
                }
                lines.push(format!(
                    "  {:<48} {:>7} {:>7} {:>9} {:>7} {:>8}",
                    "resource", "create", "UPDATE", "unchanged", "skip", "CONFLICT"
                ));
                for (resource, k) in kinds {
                    lines.push(format!(
                        "  {resource:<48} {:>7} {:>7} {:>9} {:>7} {:>8}",
                        k.create, k.update, k.unchanged, k.skip, k.conflict
                    ));
                }
            }
            RestoreAction::PgRestore {
                database,
                state,
                clean,
                ..
            } => {
                lines.push(format!("  into       database {database}"));
                lines.push(format!(
                    "  database   {}",
                    match (state, clean) {
                        (DbState::Missing, _) => "does not exist: it will be CREATED".to_string(),
                        (DbState::Empty, _) => "exists and is empty".to_string(),
                        (DbState::NotEmpty(n), true) =>
                            format!("holds {n} relations: they will be DROPPED and replaced"),
                        (DbState::NotEmpty(n), false) => format!("holds {n} relations"),
                    }
                ));
            }
        }
        lines.push(format!(
            "  checksums  {}",
            if self.verified {
                "verified while planning"
            } else {
                "verified before any change"
            }
        ));
        lines
    }
}

/// The plan lines of a restore that makes a new RDS instance.
fn new_instance_lines(
    lines: &mut Vec<String>,
    name: &str,
    class: &Option<String>,
    subnet_group: &Option<String>,
    class_from: &str,
) {
    lines.push(format!("  into       NEW RDS instance {name}"));
    lines.push(format!(
        "  class      {} / subnet group {}",
        class
            .clone()
            .unwrap_or_else(|| format!("(the {class_from})")),
        subnet_group.as_deref().unwrap_or("(default)")
    ));
}

/// Builds the plan. Reads only `req.region`'s store and cluster.
pub async fn plan_restore(
    cfg: &Config,
    req: &RestoreRequest,
    identities: Option<Arc<Identities>>,
    jobs: &Jobs,
) -> Result<RestorePlan, Error> {
    let region = cfg.region(&req.region).ok_or_else(|| {
        Error::input(format!(
            "unknown region {:?}: the config defines {}",
            req.region,
            cfg.regions.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let target = cfg.target(&req.target).ok_or_else(|| {
        Error::input(format!(
            "unknown target {:?}: the config defines {}",
            req.target,
            cfg.targets.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    if let Some(at) = req.pitr {
        return plan_pitr(target, req, at).await;
    }
    let rs = RegionStore::open(region).await;
    let listing = catalog::list_points(&rs, Some(&target.name)).await?;
    let entry = catalog::select(
        &listing.points,
        &req.region,
        &target.name,
        req.point.as_ref(),
        req.before,
    )?
    .clone();
    let m = &entry.manifest;
    if m.target_kind != target.spec.kind() {
        return Err(Error::input(format!(
            "point {} is a {} point but target {} is of kind {}",
            entry.id,
            m.target_kind,
            target.name,
            target.spec.kind()
        )));
    }
    if m.is_encrypted() && identities.is_none() {
        return Err(crate::archive::ArchiveError::NeedsIdentity {
            key: entry.manifest_key.clone(),
        }
        .into());
    }
    let (action, destructive, verified) = match &target.spec {
        TargetSpec::Etcd(spec) => {
            let etcd_region = spec
                .regions
                .get(&req.region)
                .ok_or_else(|| no_region_table(target, &req.region))?;
            plan_etcd(target, etcd_region, req, &rs, &entry, identities, jobs).await?
        }
        TargetSpec::Rds(spec) => plan_rds(target, spec, req, &rs, &entry, identities, jobs).await?,
        TargetSpec::Namespace(spec) => {
            plan_namespace(target, spec, req, &rs, &entry, identities, jobs).await?
        }
    };
    Ok(RestorePlan {
        region: req.region.clone(),
        target: target.name.clone(),
        point: Some(PointSummary {
            id: entry.id.to_string(),
            finished_at: m.finished_at,
            source_region: m.source_region.clone(),
            store: rs.store.describe(),
            payload: m.payload,
            consistency: m.consistency.clone(),
            stored_size: m.stored_size,
            plaintext_size: m.plaintext_size,
            encrypted: m.is_encrypted(),
        }),
        destructive,
        verified,
        action,
        entry: Some(entry),
    })
}

/// A point-in-time restore needs no recovery point: RDS restores from its own
/// automated backups in the region.
async fn plan_pitr(
    target: &Target,
    req: &RestoreRequest,
    at: DateTime<Utc>,
) -> Result<RestorePlan, Error> {
    let TargetSpec::Rds(spec) = &target.spec else {
        return Err(Error::input(format!(
            "--pitr applies to rds targets; {} is of kind {}",
            target.name,
            target.spec.kind()
        )));
    };
    if at > Utc::now() {
        return Err(Error::input(format!(
            "--pitr {} is in the future",
            at.to_rfc3339()
        )));
    }
    let region_cfg = spec.regions.get(&req.region).cloned().unwrap_or_default();
    let stamp = format!("pitr-{}", at.format("%Y%m%dT%H%M%SZ"));
    let new_instance =
        rds::restored_instance_id(&region_cfg.restore_identifier, &spec.instance, &stamp);
    let api = Rds::new(&req.region, Some(&region_cfg)).await;
    if api.instance_exists(&new_instance).await? {
        return Err(Error::input(format!(
            "RDS instance {new_instance} already exists in {}: delete it, or change restore_identifier",
            req.region
        )));
    }
    Ok(RestorePlan {
        region: req.region.clone(),
        target: target.name.clone(),
        point: None,
        destructive: false,
        verified: false,
        action: RestoreAction::RdsPointInTime {
            source_instance: spec.instance.clone(),
            at,
            new_instance,
            instance_class: region_cfg.instance_class.clone(),
            subnet_group: region_cfg.subnet_group.clone(),
        },
        entry: None,
    })
}

fn no_region_table(target: &Target, region: &str) -> Error {
    Error::input(format!(
        "target {} has no [targets.{}.regions.{}] table: say where to restore in that region",
        target.name, target.name, region
    ))
}

type Decided = (RestoreAction, bool, bool);

async fn plan_etcd(
    target: &Target,
    etcd_region: &EtcdRegion,
    req: &RestoreRequest,
    rs: &RegionStore,
    entry: &PointEntry,
    identities: Option<Arc<Identities>>,
    jobs: &Jobs,
) -> Result<Decided, Error> {
    let m = &entry.manifest;
    Ok(match m.payload {
        PayloadKind::EtcdKeys => {
            let mut client = etcd::connect(etcd_region).await?;
            let job = jobs.start(
                format!("plan: verify {} and compare with the target", entry.id),
                Some(m.plaintext_size),
            );
            let endpoints = &etcd_region.endpoints;
            let planned = through(rs, entry, identities, &job, |rx| {
                etcd::plan_keys(&mut client, endpoints, rx, req.prefix.as_deref())
            })
            .await;
            let counts = settle(&job, "verified", planned)?;
            if req.existing == Existing::Fail && counts.existing > 0 {
                return Err(Error::input(format!(
                    "{} of the selected keys already exist in region {} (e.g. {}) and --existing fail was given: \
                     use --existing skip or --existing overwrite, or restore into an empty cluster",
                    counts.existing,
                    req.region,
                    counts.existing_examples.join(", ")
                )));
            }
            let destructive = req.existing == Existing::Overwrite && counts.existing > 0;
            (
                RestoreAction::EtcdKeys {
                    endpoints: etcd_region.endpoints.clone(),
                    prefix: req.prefix.clone(),
                    existing: req.existing,
                    counts,
                },
                destructive,
                true,
            )
        }
        PayloadKind::EtcdSnapshot => {
            if etcd_region.members.is_empty() {
                return Err(Error::input(format!(
                    "target {} region {}: a snapshot restore needs `members = [{{ name, peer_url, data_dir }}, ...]` \
                     in [targets.{}.regions.{}]",
                    target.name, req.region, target.name, req.region
                )));
            }
            let tool = etcd::find_snapshot_tool()?;
            let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
            let members: Vec<MemberPlan> = etcd_region
                .members
                .iter()
                .map(|m| MemberPlan {
                    name: m.name.clone(),
                    peer_url: m.peer_url.clone(),
                    data_dir: m.data_dir.clone(),
                    move_aside_to: m.data_dir.exists().then(|| {
                        let mut aside = m.data_dir.clone().into_os_string();
                        aside.push(format!(".drtool-replaced-{stamp}"));
                        PathBuf::from(aside)
                    }),
                })
                .collect();
            let destructive = members.iter().any(|m| m.move_aside_to.is_some());
            (
                RestoreAction::EtcdSnapshot {
                    tool,
                    cluster_token: etcd_region.cluster_token.clone(),
                    members,
                },
                destructive,
                false,
            )
        }
        other => {
            return Err(Error::input(format!(
                "point {} holds a {} payload, not an etcd one",
                entry.id,
                other.describe()
            )));
        }
    })
}

async fn plan_namespace(
    target: &Target,
    spec: &NamespaceTarget,
    req: &RestoreRequest,
    rs: &RegionStore,
    entry: &PointEntry,
    identities: Option<Arc<Identities>>,
    jobs: &Jobs,
) -> Result<Decided, Error> {
    let region = spec
        .regions
        .get(&req.region)
        .ok_or_else(|| no_region_table(target, &req.region))?;
    let namespace = match &req.namespace_map {
        None => spec.namespace.clone(),
        Some((from, to)) if from == &spec.namespace => to.clone(),
        Some((from, _)) => {
            return Err(Error::input(format!(
                "--namespace-map {from}=...: target {} backs up namespace {}, not {from}",
                target.name, spec.namespace
            )));
        }
    };
    let opts = NsRestoreOptions {
        source_namespace: spec.namespace.clone(),
        namespace,
        include: req.include.clone(),
        exclude: req.exclude.clone(),
        existing: req.existing,
    };
    let cluster = kube_ns::connect(region).await?;
    let job = jobs.start(
        format!("plan: verify {} and compare with the cluster", entry.id),
        Some(entry.manifest.plaintext_size),
    );
    let planned = through(rs, entry, identities, &job, |rx| {
        kube_ns::plan(&cluster, rx, &opts)
    })
    .await;
    let kinds = settle(&job, "verified", planned)?;
    let conflicts: u64 = kinds.values().map(|k| k.conflict).sum();
    if conflicts > 0 {
        return Err(Error::input(format!(
            "{conflicts} objects already exist in namespace {} and differ from the point (--existing fail): \
             use --existing skip or --existing update, or --namespace-map to restore next to them",
            opts.namespace
        )));
    }
    let destructive = kinds.values().any(|k| k.update > 0);
    Ok((
        RestoreAction::KubeNamespace {
            cluster: cluster.name.clone(),
            source_namespace: opts.source_namespace,
            namespace: opts.namespace,
            existing: opts.existing,
            include: opts.include,
            exclude: opts.exclude,
            kinds,
        },
        destructive,
        true,
    ))
}

async fn plan_rds(
    target: &Target,
    spec: &RdsTarget,
    req: &RestoreRequest,
    rs: &RegionStore,
    entry: &PointEntry,
    identities: Option<Arc<Identities>>,
    jobs: &Jobs,
) -> Result<Decided, Error> {
    let m = &entry.manifest;
    let region_cfg = spec.regions.get(&req.region).cloned().unwrap_or_default();
    let snapshot_here = m.rds.as_ref().and_then(|r| r.snapshots.get(&req.region));
    if let (Some(arn), false) = (snapshot_here, req.from_dump) {
        let new_instance = rds::restored_instance_id(
            &region_cfg.restore_identifier,
            &spec.instance,
            entry.id.as_str(),
        );
        let api = Rds::new(&req.region, Some(&region_cfg)).await;
        if api.instance_exists(&new_instance).await? {
            return Err(Error::input(format!(
                "RDS instance {new_instance} already exists in {}: delete it, or change restore_identifier in [targets.{}.regions.{}]",
                req.region, target.name, req.region
            )));
        }
        return Ok((
            RestoreAction::RdsFromSnapshot {
                snapshot_arn: arn.clone(),
                new_instance,
                instance_class: region_cfg.instance_class.clone(),
                subnet_group: region_cfg.subnet_group.clone(),
            },
            false,
            false,
        ));
    }
    if m.data_file.is_none() {
        return Err(Error::input(format!(
            "point {} has no snapshot in {} and no dump: copy it there first (drtool copy --target {} --to {})",
            entry.id, req.region, target.name, req.region
        )));
    }
    let conn = region_cfg.database.as_ref().ok_or_else(|| {
        Error::input(format!(
            "restoring a dump needs `database = {{ host, port, user, dbname, password_env }}` in [targets.{}.regions.{}]",
            target.name, req.region
        ))
    })?;
    let db = dump::Db::resolve(conn, None)?;
    let db = db.with_dbname(req.database.as_deref().unwrap_or(&db.dbname));
    let job = jobs.start(format!("plan: verify {}", entry.id), Some(m.plaintext_size));
    let verified = through(rs, entry, identities, &job, |mut rx| async move {
        while rx.recv().await.is_some() {}
        Ok(())
    })
    .await;
    settle(&job, "verified", verified)?;
    let state = db.state().await?;
    let clean = match state {
        DbState::NotEmpty(n) if req.existing != Existing::Overwrite => {
            return Err(Error::input(format!(
                "database {db:?} already holds {n} relations: refusing to restore over them; \
                 use --database NEW to restore next to them, or --existing overwrite to drop and replace them"
            )));
        }
        DbState::NotEmpty(_) => true,
        DbState::Missing | DbState::Empty => false,
    };
    Ok((
        RestoreAction::PgRestore {
            database: format!("{db:?}"),
            dbname: db.dbname.clone(),
            state,
            clean,
        },
        clean,
        true,
    ))
}

fn read_request(
    rs: &RegionStore,
    entry: &PointEntry,
    identities: Option<Arc<Identities>>,
) -> ReadRequest {
    let m = &entry.manifest;
    ReadRequest {
        key: rs.layout.data_key(&m.target, &entry.id, m.is_encrypted()),
        encrypted: m.is_encrypted(),
        trailing_sha256: m.payload.has_trailing_sha256(),
        identities,
    }
}

/// Streams a point's plaintext into `consume` and checks its hashes once the
/// stream ends. A failed download also truncates the stream, so its error is
/// reported in preference to the consumer's.
async fn through<T, Fut>(
    rs: &RegionStore,
    entry: &PointEntry,
    identities: Option<Arc<Identities>>,
    job: &super::Job,
    consume: impl FnOnce(mpsc::Receiver<Bytes>) -> Fut,
) -> Result<T, Error>
where
    Fut: Future<Output = Result<T, SourceError>>,
{
    let (rx, handle) = pipeline::download(
        rs.store.clone(),
        read_request(rs, entry, identities),
        job.on_bytes(),
    );
    let consumed = consume(rx).await;
    let summary = finish_download(handle).await;
    match (consumed, summary) {
        (Ok(value), Ok(s)) => {
            check(rs, entry, &s)?;
            Ok(value)
        }
        (_, Err(e)) => Err(e),
        (Err(e), _) => Err(e.into()),
    }
}

/// Ends a job with the outcome of `result`.
fn settle<T>(job: &super::Job, done: &str, result: Result<T, Error>) -> Result<T, Error> {
    match &result {
        Ok(_) => job.finish(done),
        Err(e) => job.fail(e.to_string()),
    }
    result
}

async fn finish_download(
    handle: tokio::task::JoinHandle<Result<DataSummary, pipeline::PipelineError>>,
) -> Result<DataSummary, Error> {
    handle
        .await
        .map_err(|e| Error::failed(format!("download task failed: {e}")))?
        .map_err(pipeline_error)
}

fn check(rs: &RegionStore, entry: &PointEntry, found: &DataSummary) -> Result<(), Error> {
    let m = &entry.manifest;
    let expected = DataSummary {
        plaintext_size: m.plaintext_size,
        plaintext_sha256: m.plaintext_sha256.clone(),
        stored_size: m.stored_size,
        stored_sha256: m.stored_sha256.clone(),
    };
    let key = rs.layout.data_key(&m.target, &entry.id, m.is_encrypted());
    Ok(pipeline::check_summary(&key, found, &expected, true)?)
}

/// Runs a plan made by [`plan_restore`]. The caller has shown it and, if it is
/// destructive, obtained confirmation.
pub async fn execute_restore(
    cfg: &Config,
    plan: &RestorePlan,
    identities: Option<Arc<Identities>>,
    jobs: &Jobs,
) -> Vec<ItemResult> {
    let point = Some(plan.source());
    if let RestoreAction::KubeNamespace { .. } = &plan.action {
        return execute_namespace(cfg, plan, identities, jobs).await;
    }
    let result = execute(cfg, plan, identities, jobs).await;
    match result {
        Ok(message) => vec![ItemResult::ok(
            &plan.target,
            &plan.region,
            "restore",
            point,
            message,
        )],
        Err(e) => vec![ItemResult::failed(
            &plan.target,
            &plan.region,
            "restore",
            point,
            &e,
        )],
    }
}

async fn execute(
    cfg: &Config,
    plan: &RestorePlan,
    identities: Option<Arc<Identities>>,
    jobs: &Jobs,
) -> Result<String, Error> {
    let job = jobs.start(
        format!(
            "restore {} {} in {}",
            plan.target,
            plan.source(),
            plan.region
        ),
        plan.point.as_ref().map(|p| p.plaintext_size),
    );
    let result = run_action(cfg, plan, identities, &job).await;
    match &result {
        Ok(m) => job.finish(m.clone()),
        Err(e) => job.fail(e.to_string()),
    }
    result
}

async fn run_action(
    cfg: &Config,
    plan: &RestorePlan,
    identities: Option<Arc<Identities>>,
    job: &super::Job,
) -> Result<String, Error> {
    if let RestoreAction::RdsPointInTime {
        source_instance,
        at,
        new_instance,
        instance_class,
        subnet_group,
    } = &plan.action
    {
        let region_cfg = rds_region(cfg, plan)?;
        let api = Rds::new(&plan.region, Some(&region_cfg)).await;
        let phase = job.clone();
        let on_state = move |s: &str| phase.phase(format!("instance {s}"));
        let i = api
            .restore_to_time(
                source_instance,
                new_instance,
                *at,
                instance_class.as_deref(),
                subnet_group.as_deref(),
                &on_state,
            )
            .await?;
        return Ok(instance_ready(&i));
    }
    let entry = plan.entry.as_ref().ok_or_else(|| {
        Error::failed("restore plan has no point (it was not made by plan_restore)")
    })?;
    let region = cfg
        .region(&plan.region)
        .ok_or_else(|| Error::input(format!("unknown region {}", plan.region)))?;
    let rs = RegionStore::open(region).await;
    match &plan.action {
        RestoreAction::EtcdKeys {
            endpoints,
            prefix,
            existing,
            ..
        } => {
            let target = cfg
                .target(&plan.target)
                .ok_or_else(|| Error::input(format!("unknown target {}", plan.target)))?;
            let etcd_region = match &target.spec {
                TargetSpec::Etcd(spec) => spec.regions.get(&plan.region),
                _ => None,
            }
            .ok_or_else(|| Error::input(format!("no etcd endpoints for {}", plan.region)))?;
            let mut client = etcd::connect(etcd_region).await?;
            job.phase("replaying keys");
            let out = through(&rs, entry, identities, job, |rx| {
                etcd::apply_keys(
                    &mut client,
                    endpoints,
                    rx,
                    prefix.as_deref(),
                    *existing,
                    &|_| {},
                )
            })
            .await?;
            Ok(format!(
                "{} keys created, {} overwritten, {} skipped in {}",
                out.created,
                out.overwritten,
                out.skipped,
                endpoints.join(",")
            ))
        }
        RestoreAction::EtcdSnapshot {
            tool,
            cluster_token,
            members,
        } => restore_snapshot(&rs, entry, identities, tool, cluster_token, members, job).await,
        RestoreAction::RdsFromSnapshot {
            snapshot_arn,
            new_instance,
            instance_class,
            subnet_group,
        } => {
            let region_cfg = rds_region(cfg, plan)?;
            let api = Rds::new(&plan.region, Some(&region_cfg)).await;
            let phase = job.clone();
            let on_state = move |s: &str| phase.phase(format!("instance {s}"));
            job.phase(format!("restoring {new_instance}"));
            let i = api
                .restore_from_snapshot(
                    new_instance,
                    snapshot_arn,
                    instance_class.as_deref(),
                    subnet_group.as_deref(),
                    &on_state,
                )
                .await?;
            Ok(instance_ready(&i))
        }
        RestoreAction::PgRestore {
            dbname,
            state,
            clean,
            ..
        } => {
            let region_cfg = rds_region(cfg, plan)?;
            let conn = region_cfg.database.as_ref().ok_or_else(|| {
                Error::input(format!("no database configured in {}", plan.region))
            })?;
            let db = dump::Db::resolve(conn, None)?.with_dbname(dbname);
            if *state == DbState::Missing {
                job.phase(format!("creating database {dbname}"));
                db.create().await?;
            }
            job.phase("pg_restore");
            through(&rs, entry, identities, job, |rx| {
                dump::restore(&db, rx, *clean)
            })
            .await?;
            Ok(format!("dump restored into {db:?}"))
        }
        RestoreAction::RdsPointInTime { .. } | RestoreAction::KubeNamespace { .. } => {
            Err(Error::failed("this plan is run by its own executor"))
        }
    }
}

/// A namespace restore reports every object that failed, one result each.
async fn execute_namespace(
    cfg: &Config,
    plan: &RestorePlan,
    identities: Option<Arc<Identities>>,
    jobs: &Jobs,
) -> Vec<ItemResult> {
    let point = Some(plan.source());
    let failed = |e: &Error| {
        vec![ItemResult::failed(
            &plan.target,
            &plan.region,
            "restore",
            point.clone(),
            e,
        )]
    };
    let RestoreAction::KubeNamespace {
        source_namespace,
        namespace,
        existing,
        include,
        exclude,
        ..
    } = &plan.action
    else {
        return failed(&Error::failed("not a namespace plan"));
    };
    let (Some(entry), Some(TargetSpec::Namespace(spec)), Some(region)) = (
        plan.entry.as_ref(),
        cfg.target(&plan.target).map(|t| &t.spec),
        cfg.region(&plan.region),
    ) else {
        return failed(&Error::failed("restore plan does not match the config"));
    };
    let Some(kube_region) = spec.regions.get(&plan.region) else {
        return failed(&Error::input(format!(
            "no kubeconfig for region {}",
            plan.region
        )));
    };
    let job = jobs.start(
        format!(
            "restore {} {} in {}",
            plan.target,
            plan.source(),
            plan.region
        ),
        plan.point.as_ref().map(|p| p.plaintext_size),
    );
    let cluster = match kube_ns::connect(kube_region).await {
        Ok(c) => c,
        Err(e) => {
            job.fail(e.to_string());
            return failed(&e.into());
        }
    };
    let rs = RegionStore::open(region).await;
    let opts = NsRestoreOptions {
        source_namespace: source_namespace.clone(),
        namespace: namespace.clone(),
        include: include.clone(),
        exclude: exclude.clone(),
        existing: *existing,
    };
    let applied = through(&rs, entry, identities, &job, |rx| {
        kube_ns::apply(&cluster, rx, &opts, &|_| {})
    })
    .await;
    let outcome = match applied {
        Ok(o) => o,
        Err(e) => {
            job.fail(e.to_string());
            return failed(&e);
        }
    };
    let message = format!(
        "namespace {namespace}: {} created, {} updated, {} unchanged, {} skipped, {} failed",
        outcome.created,
        outcome.updated,
        outcome.unchanged,
        outcome.skipped,
        outcome.failed.len()
    );
    job.finish(message.clone());
    let mut results = vec![ItemResult::ok(
        &plan.target,
        &plan.region,
        "restore",
        point.clone(),
        message,
    )];
    for f in outcome.failed {
        let e = Error::failed(format!("{} {}: {}", f.resource, f.name, f.error));
        results.push(ItemResult::failed(
            &plan.target,
            &plan.region,
            "restore",
            point.clone(),
            &e,
        ));
    }
    results
}

fn instance_ready(i: &rds::InstanceInfo) -> String {
    format!(
        "instance {} is {} at {}:{}",
        i.id,
        i.status,
        i.endpoint.as_deref().unwrap_or("(no endpoint yet)"),
        i.port.unwrap_or(5432)
    )
}

fn rds_region(cfg: &Config, plan: &RestorePlan) -> Result<RdsRegion, Error> {
    match cfg.target(&plan.target).map(|t| &t.spec) {
        Some(TargetSpec::Rds(spec)) => {
            Ok(spec.regions.get(&plan.region).cloned().unwrap_or_default())
        }
        _ => Err(Error::input(format!(
            "target {} is not an rds target",
            plan.target
        ))),
    }
}

async fn restore_snapshot(
    rs: &RegionStore,
    entry: &PointEntry,
    identities: Option<Arc<Identities>>,
    tool: &SnapshotTool,
    cluster_token: &str,
    members: &[MemberPlan],
    job: &super::Job,
) -> Result<String, Error> {
    // The snapshot file goes next to the first data dir: same filesystem, and a
    // place the operator already chose for etcd data.
    let first = members
        .first()
        .ok_or_else(|| Error::input("no members to restore"))?;
    let work = first
        .data_dir
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&work)
        .map_err(|e| Error::failed(format!("cannot create {}: {e}", work.display())))?;
    let file = work.join(format!(".drtool-{}.snapshot.db", entry.id));
    job.phase("downloading and verifying snapshot");
    let downloaded = download_snapshot(rs, entry, identities, &file, job).await;
    if let Err(e) = downloaded {
        let _ = std::fs::remove_file(&file);
        return Err(e);
    }
    job.phase("materializing data dirs");
    let all: Vec<EtcdMember> = members
        .iter()
        .map(|m| EtcdMember {
            name: m.name.clone(),
            peer_url: m.peer_url.clone(),
            data_dir: m.data_dir.clone(),
        })
        .collect();
    let mut done = Vec::new();
    for (plan, member) in members.iter().zip(&all) {
        if let Some(aside) = &plan.move_aside_to
            && member.data_dir.exists()
        {
            std::fs::rename(&member.data_dir, aside).map_err(|e| {
                Error::failed(format!(
                    "cannot move {} aside to {}: {e}",
                    member.data_dir.display(),
                    aside.display()
                ))
            })?;
        }
        if let Err(e) = etcd::restore_member(tool, &file, member, &all, cluster_token) {
            let _ = std::fs::remove_file(&file);
            return Err(e.into());
        }
        done.push(format!("{} -> {}", member.name, member.data_dir.display()));
    }
    let _ = std::fs::remove_file(&file);
    Ok(format!(
        "data dirs ready ({}); start each member with etcd --name NAME --data-dir DIR and its peer/client URLs",
        done.join(", ")
    ))
}

async fn download_snapshot(
    rs: &RegionStore,
    entry: &PointEntry,
    identities: Option<Arc<Identities>>,
    file: &Path,
    job: &super::Job,
) -> Result<(), Error> {
    use tokio::io::AsyncWriteExt;
    let failed = |e: std::io::Error| SourceError::Failed {
        what: format!("writing {}", file.display()),
        detail: format!("{e}: free space or pick data_dir on another disk"),
    };
    through(rs, entry, identities, job, |mut rx| async move {
        let mut out = tokio::fs::File::create(file).await.map_err(failed)?;
        while let Some(chunk) = rx.recv().await {
            out.write_all(&chunk).await.map_err(failed)?;
        }
        // No fsync: the file is read back at once by etcdutl/etcdctl, which syncs
        // the data dirs it writes; a crash here only means downloading again.
        out.flush().await.map_err(failed)
    })
    .await
}
