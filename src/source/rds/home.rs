//! The RDS kind as the engine sees it: native snapshots and/or `pg_dump`
//! archives, restore plans (a pure [`route`] picks snapshot or dump, facts are
//! gathered for that route, then [`decide_snapshot`], [`decide_dump`] or
//! [`decide_pitr`] make the plan), snapshot copies, checks and deletes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::dump::{self, DbRef, DbState, Relation};
use super::options::{DATABASE, FLAGS, RdsRestoreOptions};
use super::{
    DatabaseUse, InstanceInfo, Rds, RdsError, SnapshotSource, restored_instance_id, snapshot_id,
};
use super::{RdsRegion, RdsTarget};
use crate::archive::manifest::External;
use crate::archive::{Consistency, Manifest, PayloadKind, PointId};
use crate::config::Target;
use crate::engine::events::Job;
use crate::engine::faults::{CanaryMark, KindFault, KindProbe};
use crate::engine::kind::{
    Applied, Artefacts, BackupShape, Clients, Consistent, DataSender, Discovery, Drills, KindPlan,
    Payload, PlanRequest, Reachability, Scratch, ScratchRestores, Taken, TargetKind, not_for_kind,
};
use crate::engine::options::{
    EXISTING, Existing, FlagSpec, FlagValues, KindOptions, RestoreOptions,
};
use crate::engine::point::PointData;
use crate::error::{Error, SourceError};

/// One region's RDS API, as a plan records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ApiRef {
    pub region: String,
    /// The API endpoint override (e.g. the lab's moto server).
    pub endpoint: Option<String>,
}

/// An RDS restore, decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RdsPlan {
    /// Restore a new instance from the point's snapshot copy in this region.
    RdsFromSnapshot {
        api: ApiRef,
        snapshot_arn: String,
        new_instance: String,
        instance_class: Option<String>,
        subnet_group: Option<String>,
    },
    /// Point-in-time restore from RDS's automated backups in this region.
    RdsPointInTime {
        api: ApiRef,
        source_instance: String,
        at: DateTime<Utc>,
        new_instance: String,
        instance_class: Option<String>,
        subnet_group: Option<String>,
    },
    /// pg_restore the point's dump into a database, in one transaction.
    PgRestore {
        db: DbRef,
        state: DbState,
        /// Drop the relations the dump holds first (`--existing overwrite`).
        clean: bool,
        /// The relations of the database that the dump replaces (dropped first).
        #[serde(default)]
        drops: Vec<String>,
        /// Relations of the database the dump does not hold: left as they are.
        #[serde(default)]
        kept: u64,
        /// The dump holds drill canary rows (`drtool_canary`): the table is
        /// dropped once restored (only a drill's own restore keeps it).
        #[serde(default)]
        drop_canaries: bool,
    },
}

/// How a point is restored in a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A new instance from the snapshot copy with this ARN.
    Snapshot { arn: String },
    /// `pg_restore` of the point's dump.
    Dump,
}

/// Picks snapshot or dump from what the point holds in the region and the options.
pub fn route(
    target: &str,
    region: &str,
    point: &str,
    snapshot_here: Option<&str>,
    has_dump: bool,
    options: &RestoreOptions,
) -> Result<Route, Error> {
    let own: RdsRestoreOptions = options.own()?;
    if let (Some(arn), false) = (snapshot_here, own.from_dump) {
        let why = format!(
            "point {point} is restored from its snapshot into a new instance (add --from-dump to restore its dump)"
        );
        for (flag, given) in [
            (DATABASE, own.database.is_some()),
            (EXISTING, options.existing.is_some()),
        ] {
            if given {
                return Err(RestoreOptions::not_for_point(flag, &why));
            }
        }
        return Ok(Route::Snapshot {
            arn: arn.to_string(),
        });
    }
    if !has_dump {
        let point = point.to_string();
        return Err(if own.from_dump {
            RdsError::NoDump { point }
        } else {
            RdsError::NothingHere {
                point,
                region: region.to_string(),
                target: target.to_string(),
            }
        }
        .into());
    }
    Ok(Route::Dump)
}

/// Decides a restore of a new instance from a snapshot.
pub fn decide_snapshot(
    api: ApiRef,
    arn: String,
    new_instance: String,
    instance_exists: bool,
    region_cfg: &RdsRegion,
    target: &str,
) -> Result<RdsPlan, Error> {
    if instance_exists {
        return Err(RdsError::InstanceExists {
            instance: new_instance,
            region: api.region,
            target: Some(target.to_string()),
        }
        .into());
    }
    Ok(RdsPlan::RdsFromSnapshot {
        api,
        snapshot_arn: arn,
        new_instance,
        instance_class: region_cfg.instance_class.clone(),
        subnet_group: region_cfg.subnet_group.clone(),
    })
}

/// What a dump restore finds: the database's relations and the dump's.
#[derive(Debug, Clone, Default)]
pub struct DumpFacts {
    pub existing: Vec<Relation>,
    pub in_dump: Vec<Relation>,
}

/// Decides a dump restore from the state of the database and what the dump
/// holds; returns whether it is destructive.
pub fn decide_dump(
    db: DbRef,
    state: DbState,
    facts: &DumpFacts,
    options: &RestoreOptions,
) -> Result<(RdsPlan, bool), Error> {
    if options.existing == Some(Existing::Skip) {
        return Err(RestoreOptions::not_for_point(
            EXISTING,
            "--existing skip: a dump is restored whole, in one transaction, or not at all; \
             use --existing fail (the default) or --existing overwrite",
        ));
    }
    let clean = match state {
        DbState::NotEmpty(n) if options.existing() != Existing::Overwrite => {
            return Err(Error::exists(format!(
                "database {db} already holds {n} relations: refusing to restore over them; \
                 use --database NEW to restore next to them, or --existing overwrite to drop and replace them"
            )));
        }
        DbState::NotEmpty(_) => true,
        DbState::Missing | DbState::Empty => false,
    };
    let drops: Vec<String> = if clean {
        facts
            .existing
            .iter()
            .filter(|r| facts.in_dump.binary_search(r).is_ok())
            .map(ToString::to_string)
            .collect()
    } else {
        Vec::new()
    };
    let kept = if clean {
        (facts.existing.len() - drops.len()) as u64
    } else {
        0
    };
    let destructive = !drops.is_empty();
    let drop_canaries = !options.with_canaries
        && facts
            .in_dump
            .iter()
            .any(|r| r.name == super::drill::CANARY_TABLE);
    Ok((
        RdsPlan::PgRestore {
            db,
            state,
            clean,
            drops,
            kept,
            drop_canaries,
        },
        destructive,
    ))
}

/// Decides a point-in-time restore.
pub fn decide_pitr(
    api: ApiRef,
    source_instance: String,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    new_instance: String,
    instance_exists: bool,
    region_cfg: &RdsRegion,
) -> Result<RdsPlan, Error> {
    if at > now {
        return Err(RdsError::PitrInFuture { at }.into());
    }
    if instance_exists {
        return Err(RdsError::InstanceExists {
            instance: new_instance,
            region: api.region,
            target: None,
        }
        .into());
    }
    Ok(RdsPlan::RdsPointInTime {
        api,
        source_instance,
        at,
        new_instance,
        instance_class: region_cfg.instance_class.clone(),
        subnet_group: region_cfg.subnet_group.clone(),
    })
}

fn new_instance_lines(
    lines: &mut Vec<String>,
    name: &str,
    class: &Option<String>,
    subnet_group: &Option<String>,
    class_from: &str,
) {
    lines.push(format!("into       NEW RDS instance {name}"));
    lines.push(format!(
        "class      {} / subnet group {}",
        class
            .clone()
            .unwrap_or_else(|| format!("(the {class_from})")),
        subnet_group.as_deref().unwrap_or("(default)")
    ));
}

fn lines(plan: &RdsPlan) -> Vec<String> {
    let mut lines = Vec::new();
    match plan {
        RdsPlan::RdsFromSnapshot {
            snapshot_arn,
            new_instance,
            instance_class,
            subnet_group,
            ..
        } => {
            lines.push(format!("snapshot   {snapshot_arn}"));
            lines.push(
                "canaries   a snapshot comes back whole: drill canary rows in it (drtool_canary) come back too"
                    .into(),
            );
            new_instance_lines(
                &mut lines,
                new_instance,
                instance_class,
                subnet_group,
                "snapshot's",
            );
        }
        RdsPlan::RdsPointInTime {
            api,
            source_instance,
            at,
            new_instance,
            instance_class,
            subnet_group,
        } => {
            lines.push(format!(
                "from       automated backups of {source_instance} in {} at {}",
                api.region,
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
        RdsPlan::PgRestore {
            db,
            state,
            clean,
            drops,
            kept,
            drop_canaries,
        } => {
            lines.push(format!("into       database {db}, in one transaction"));
            if *drop_canaries {
                lines.push(
                    "left out   the dump's drill canary rows (drtool_canary; only a drill's own restore brings them back)"
                        .into(),
                );
            }
            lines.push(format!(
                "database   {}",
                match (state, clean) {
                    (DbState::Missing, _) =>
                        "does not exist: it will be CREATED (and dropped again if the restore fails)"
                            .to_string(),
                    (DbState::Empty, _) => "exists and is empty".to_string(),
                    (DbState::NotEmpty(n), true) => format!(
                        "holds {n} relations: {} held by the dump will be DROPPED and replaced, {kept} others kept",
                        drops.len()
                    ),
                    (DbState::NotEmpty(n), false) => format!("holds {n} relations"),
                }
            ));
            for name in drops.iter().take(10) {
                lines.push(format!("DROP       {name}"));
            }
            if drops.len() > 10 {
                lines.push(format!("           ... and {} more", drops.len() - 10));
            }
        }
    }
    lines
}

fn spec(target: &Target) -> Result<&RdsTarget, Error> {
    crate::engine::kind::section(target, "rds")
}

/// A region's settings of the target; defaults where it has no table.
fn region_cfg(target: Option<&Target>, region: &str) -> RdsRegion {
    target
        .and_then(|t| spec(t).ok())
        .and_then(|s| s.regions.get(region).cloned())
        .unwrap_or_default()
}

fn api_ref(target: Option<&Target>, region: &str) -> ApiRef {
    ApiRef {
        region: region.to_string(),
        endpoint: region_cfg(target, region).endpoint,
    }
}

/// The error of a failed restore into a database it created, with what
/// became of that database.
fn dropped_again(e: Error, dropped: Result<(), SourceError>, db: &DbRef) -> Error {
    e.noted(match dropped {
        Ok(()) => format!(
            "database {} was created by this restore and is dropped again",
            db.dbname
        ),
        Err(d) => format!(
            "database {} was created by this restore and could not be dropped ({d}): drop it by hand",
            db.dbname
        ),
    })
}

fn instance_ready(i: &InstanceInfo) -> String {
    format!(
        "instance {} is {} at {}:{}",
        i.id,
        i.status,
        i.endpoint.as_deref().unwrap_or("(no endpoint yet)"),
        i.port.unwrap_or(5432)
    )
}

/// RDS API clients, by region and endpoint.
#[derive(Default)]
pub struct RdsKind {
    apis: Clients<ApiRef, Rds>,
}

impl RdsKind {
    /// The region's database (`database = {...}`), connected.
    fn database(&self, target: &Target, region: &str) -> Result<dump::Db, Error> {
        let conn =
            region_cfg(Some(target), region)
                .database
                .ok_or_else(|| RdsError::NoDatabase {
                    needs: DatabaseUse::Probes,
                    target: target.name.clone(),
                    region: region.to_string(),
                })?;
        Ok(dump::Db::resolve(&conn, None)?)
    }

    async fn api(&self, api: &ApiRef) -> Rds {
        let built = self
            .apis
            .get(api, || async {
                Ok::<_, std::convert::Infallible>(
                    Rds::new(&api.region, api.endpoint.as_deref()).await,
                )
            })
            .await;
        match built {
            Ok(rds) => rds,
            Err(never) => match never {},
        }
    }

    /// Waits for a new instance RDS is making; a cancelled wait says RDS goes on.
    async fn new_instance(
        &self,
        job: &Job,
        api: &ApiRef,
        name: &str,
        making: impl std::future::Future<Output = Result<InstanceInfo, SourceError>>,
    ) -> Result<String, Error> {
        let made = job.cancellable(async { Ok(making.await?) }).await;
        match made {
            Ok(i) => Ok(instance_ready(&i)),
            Err(Error::Cancelled(m)) => Err(Error::Cancelled(format!(
                "{m}: RDS goes on creating instance {name} in {}; delete it if it is not wanted",
                api.region
            ))),
            Err(e) => Err(e),
        }
    }

    async fn plan_pitr(&self, req: &PlanRequest<'_>, at: DateTime<Utc>) -> Result<RdsPlan, Error> {
        let spec = spec(req.target)?;
        let cfg = region_cfg(Some(req.target), req.region);
        let stamp = format!("pitr-{}", at.format("%Y%m%dT%H%M%SZ"));
        let new_instance = restored_instance_id(&cfg.restore_identifier, &spec.instance, &stamp);
        let api = api_ref(Some(req.target), req.region);
        let exists = self.api(&api).await.instance_exists(&new_instance).await?;
        decide_pitr(
            api,
            spec.instance.clone(),
            at,
            Utc::now(),
            new_instance,
            exists,
            &cfg,
        )
    }

    async fn plan_point(
        &self,
        req: &PlanRequest<'_>,
        manifest: &Manifest,
        data: &PointData,
    ) -> Result<(RdsPlan, bool, bool), Error> {
        let spec = spec(req.target)?;
        let cfg = region_cfg(Some(req.target), req.region);
        let info = RdsInfo::of(manifest);
        let snapshot_here = info
            .as_ref()
            .and_then(|r| r.snapshots.get(req.region))
            .map(String::as_str);
        let chosen = route(
            &req.target.name,
            req.region,
            &manifest.point_id,
            snapshot_here,
            manifest.data_file.is_some(),
            req.options,
        )?;
        match chosen {
            Route::Snapshot { arn } => {
                let new_instance = restored_instance_id(
                    &cfg.restore_identifier,
                    &spec.instance,
                    &manifest.point_id,
                );
                let api = api_ref(Some(req.target), req.region);
                let exists = self.api(&api).await.instance_exists(&new_instance).await?;
                let plan = decide_snapshot(api, arn, new_instance, exists, &cfg, &req.target.name)?;
                Ok((plan, false, false))
            }
            Route::Dump => {
                let conn = cfg.database.as_ref().ok_or_else(|| RdsError::NoDatabase {
                    needs: DatabaseUse::RestoreDump,
                    target: req.target.name.clone(),
                    region: req.region.to_string(),
                })?;
                let base = DbRef::of(conn, None)?;
                let database = req.options.own::<RdsRestoreOptions>()?.database;
                let db = base.with_dbname(database.as_deref().unwrap_or(&base.dbname));
                req.job
                    .phase("verifying the point and reading its table of contents");
                let conn = db.open()?;
                let mut stream = data.stream().await?;
                let rx = stream.take();
                let listed = dump::dump_contents(&conn, rx, req.job).await;
                let in_dump = stream.finish(listed).await?;
                let state = conn.state().await?;
                let existing = match state {
                    DbState::NotEmpty(_) => conn.relations().await?,
                    DbState::Missing | DbState::Empty => Vec::new(),
                };
                let facts = DumpFacts { existing, in_dump };
                let (plan, destructive) = decide_dump(db, state, &facts, req.options)?;
                Ok((plan, destructive, true))
            }
        }
    }
}

/// What an RDS point keeps outside the bucket: the instance and its
/// snapshot in each region (`rds` in manifests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdsInfo {
    pub instance: String,
    pub engine: Option<String>,
    /// Region -> snapshot ARN, for every region holding a copy.
    pub snapshots: BTreeMap<String, String>,
}

impl RdsInfo {
    /// The record of a point, if it has one of this kind.
    pub fn of(manifest: &Manifest) -> Option<RdsInfo> {
        manifest.external.as_ref().and_then(|e| e.read().ok())
    }

    /// As the manifest keeps it.
    fn recorded(&self) -> Result<External, Error> {
        External::of(self)
            .map_err(|e| Error::failed(format!("cannot record the RDS snapshots: {e}")))
    }
}

/// When an RDS point is consistent (`kind: rds` in manifests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RdsConsistency {
    Rds {
        /// The snapshot's creation time, or the start of the dump (pg_dump
        /// reads one consistent database snapshot taken when it starts).
        at: DateTime<Utc>,
    },
}

/// Native RDS snapshots only: no data object, the manifest lists them.
pub const SNAPSHOT: PayloadKind = PayloadKind::named("rds-snapshot");
/// `pg_dump --format=custom` output (and, in mode "both", snapshots too).
pub const PG_DUMP: PayloadKind = PayloadKind::named("pg-dump");

static PAYLOADS: [Payload; 2] = [
    Payload {
        kind: SNAPSHOT,
        describe: "RDS snapshot",
        trailing_sha256: false,
    },
    Payload {
        kind: PG_DUMP,
        describe: "PostgreSQL dump (pg_dump custom format)",
        trailing_sha256: false,
    },
];

#[async_trait]
impl TargetKind for RdsKind {
    fn section(&self) -> crate::config::Section {
        ("rds", super::config::parse_all)
    }

    fn name(&self) -> &'static str {
        "rds"
    }

    fn payloads(&self) -> &'static [Payload] {
        &PAYLOADS
    }

    fn consistent(&self, c: &Consistency) -> Option<Consistent> {
        let RdsConsistency::Rds { at } = c.read().ok()?;
        Some(Consistent {
            at,
            text: format!("database as of {}", at.to_rfc3339()),
        })
    }

    fn backup_shape(&self, target: &Target) -> Result<BackupShape, Error> {
        let dumps = spec(target)?.mode.dumps();
        Ok(BackupShape {
            payload: if dumps { PG_DUMP } else { SNAPSHOT },
            has_data: dumps,
        })
    }

    async fn backup(
        &self,
        target: &Target,
        point: &PointId,
        data: Option<DataSender>,
        job: &Job,
    ) -> Result<Taken, Error> {
        let spec = spec(target)?;
        let home = target.home.as_str();
        let home_cfg = spec.regions.get(home);
        let api = self.api(&api_ref(Some(target), home)).await;
        let mut items = BTreeMap::new();
        let mut rds = RdsInfo {
            instance: spec.instance.clone(),
            engine: None,
            snapshots: BTreeMap::new(),
        };
        let mut at = Utc::now();
        if let Some(tx) = data {
            let conn =
                home_cfg
                    .and_then(|r| r.database.as_ref())
                    .ok_or_else(|| RdsError::NoDatabase {
                        needs: DatabaseUse::Dump,
                        target: target.name.clone(),
                        region: home.to_string(),
                    })?;
            let host = match conn.host {
                Some(_) => None,
                None => {
                    job.phase("reading the instance endpoint");
                    job.cancellable(async { Ok(api.instance(&spec.instance).await?.endpoint) })
                        .await?
                }
            };
            let db = dump::Db::resolve(conn, host.as_deref())?;
            job.phase(format!("pg_dump of {db:?}"));
            at = Utc::now();
            let dumped = dump::dump(&db, tx, job).await?;
            items.insert("dump_bytes".to_string(), dumped.bytes);
            if let Some(c) = dumped.counts {
                items.insert("tables".to_string(), c.tables);
                items.insert("rows".to_string(), c.rows);
            }
        }
        if spec.mode.snapshots() {
            let snapshot = snapshot_id(&target.name, point.as_str());
            job.phase(format!("creating RDS snapshot {snapshot}"));
            let phase = job.clone();
            let on_state = move |s: &str| phase.phase(format!("snapshot {s}"));
            let created = job
                .cancellable(async {
                    Ok(api
                        .create_snapshot(
                            &spec.instance,
                            &snapshot,
                            &target.name,
                            point.as_str(),
                            &on_state,
                        )
                        .await?)
                })
                .await
                .map_err(|e| match e {
                    Error::Cancelled(m) => Error::Cancelled(format!(
                        "{m}: RDS snapshot {snapshot} may still be in the making in {home}; it is tagged drtool:managed and belongs to no point, delete it once available"
                    )),
                    other => other,
                })?;
            if !spec.mode.dumps() {
                at = created.created_at.unwrap_or(at);
            }
            rds.engine = created.engine;
            rds.snapshots.insert(home.to_string(), created.arn);
            items.insert("snapshots".to_string(), 1);
        }
        Ok(Taken {
            consistency: Consistency::of(&RdsConsistency::Rds { at })
                .map_err(|e| Error::failed(format!("cannot record the point's time: {e}")))?,
            items,
            external: Some(rds.recorded()?),
        })
    }

    fn restore_flags(&self) -> &'static [FlagSpec] {
        FLAGS
    }

    fn restore_options(&self, flags: &FlagValues) -> Result<KindOptions, Error> {
        RdsRestoreOptions::parse(flags)
    }

    fn needs_point(&self, options: &RestoreOptions) -> bool {
        options
            .own::<RdsRestoreOptions>()
            .map_or(true, |o| o.pitr.is_none())
    }

    async fn plan_restore(&self, req: PlanRequest<'_>) -> Result<KindPlan, Error> {
        let pitr = req.options.own::<RdsRestoreOptions>()?.pitr;
        let (plan, destructive, verified) = match (&req.point, pitr) {
            (None, Some(at)) => (self.plan_pitr(&req, at).await?, false, false),
            (Some((manifest, data)), None) => self.plan_point(&req, manifest, data).await?,
            _ => {
                return Err(Error::failed(
                    "an RDS restore needs a point or --pitr, not both",
                ));
            }
        };
        KindPlan::new(&plan, lines(&plan), destructive, verified)
    }

    async fn apply(
        &self,
        plan: &KindPlan,
        point: Option<PointData>,
        job: &Job,
    ) -> Result<Applied, Error> {
        let phase = job.clone();
        let on_state = move |s: &str| phase.phase(format!("instance {s}"));
        let message = match plan.action::<RdsPlan>()? {
            RdsPlan::RdsFromSnapshot {
                api,
                snapshot_arn,
                new_instance,
                instance_class,
                subnet_group,
            } => {
                let rds = self.api(&api).await;
                job.phase(format!("restoring {new_instance}"));
                let making = rds.restore_from_snapshot(
                    &new_instance,
                    &snapshot_arn,
                    instance_class.as_deref(),
                    subnet_group.as_deref(),
                    &on_state,
                );
                self.new_instance(job, &api, &new_instance, making).await?
            }
            RdsPlan::RdsPointInTime {
                api,
                source_instance,
                at,
                new_instance,
                instance_class,
                subnet_group,
            } => {
                let rds = self.api(&api).await;
                job.phase(format!("restoring {new_instance} to {}", at.to_rfc3339()));
                let making = rds.restore_to_time(
                    &source_instance,
                    &new_instance,
                    at,
                    instance_class.as_deref(),
                    subnet_group.as_deref(),
                    &on_state,
                );
                self.new_instance(job, &api, &new_instance, making).await?
            }
            RdsPlan::PgRestore {
                db,
                state,
                clean,
                drop_canaries,
                ..
            } => {
                let data = point.ok_or_else(|| Error::failed("a dump restore needs its point"))?;
                let conn = db.open()?;
                // Opened first: a point replaced since the plan stops here,
                // before anything is created.
                let mut stream = data.stream().await?;
                let created = state == DbState::Missing;
                if created {
                    job.phase(format!("creating database {}", db.dbname));
                    conn.create().await?;
                }
                job.phase("pg_restore");
                let restored = dump::restore(&conn, &mut stream, clean, job).await;
                match stream.finish(restored).await {
                    // The dump's canary table: after a clean restore it holds
                    // only the dump's rows (a replaced or new database).
                    Ok(()) if drop_canaries => match super::drill::drop_canaries(&conn).await {
                        Ok(()) => {
                            format!("dump restored into {db} (its drill canary rows left out)")
                        }
                        Err(e) => format!(
                            "dump restored into {db}; its drill canary rows could not be dropped ({e}): DROP TABLE drtool_canary there"
                        ),
                    },
                    Ok(()) => format!("dump restored into {db}"),
                    // A database this restore made must not stay behind half made.
                    Err(e) if created => {
                        return Err(dropped_again(e, conn.drop_database().await, &db));
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(Applied {
            message,
            ..Applied::default()
        })
    }

    async fn reachability(&self, target: &Target) -> Vec<Reachability> {
        let Ok(spec) = spec(target) else {
            return Vec::new();
        };
        let checks = target.regions().map(|region| async move {
            let api = api_ref(Some(target), region);
            let rds = self.api(&api).await;
            let home = region == target.home;
            // The home region must have the instance; elsewhere the API must answer.
            let (reachable, detail) = match rds.instance_exists(&spec.instance).await {
                Ok(true) => (true, "ok".to_string()),
                Ok(false) if !home => (true, "ok".to_string()),
                Ok(false) => (false, format!("instance {} not found", spec.instance)),
                Err(e) => (false, e.to_string()),
            };
            Reachability {
                misconfigured: false,
                region: region.to_string(),
                what: format!("target {}", target.name),
                address: api.endpoint.unwrap_or_else(|| "RDS API".to_string()),
                reachable,
                detail,
            }
        });
        futures::future::join_all(checks).await
    }

    fn contents(&self) -> Option<&dyn crate::engine::kind::Contents> {
        Some(self)
    }

    fn drills(&self) -> Option<&dyn Drills> {
        Some(self)
    }

    fn artefacts(&self) -> Option<&dyn Artefacts> {
        Some(self)
    }

    fn scratch_restores(&self) -> Option<&dyn ScratchRestores> {
        Some(self)
    }

    fn discovery(&self) -> Option<&dyn Discovery> {
        Some(self)
    }
}

#[async_trait]
impl Drills for RdsKind {
    fn canary_name(&self) -> Option<&'static str> {
        Some("sql")
    }

    async fn fault(
        &self,
        target: &Target,
        region: &str,
        fault: &KindFault,
        job: &Job,
    ) -> Result<String, Error> {
        let spec = spec(target)?;
        let api = self.api(&api_ref(Some(target), region)).await;
        let on_state = |state: &str| job.phase(format!("instance is {state}"));
        let took = match fault.name() {
            super::drill::REBOOT_FAILOVER => api.reboot(&spec.instance, true, &on_state).await?,
            super::drill::STOP_INSTANCE => api.stop(&spec.instance, &on_state).await?,
            super::drill::PROMOTE_REPLICA => {
                let p: super::drill::PromoteFault = fault.get()?;
                api.promote_read_replica(&p.replica, &on_state).await?
            }
            other => return Err(not_for_kind("rds", &target.name, other)),
        };
        Ok(format!(
            "{} of {} in {region} done in {}",
            fault.name(),
            spec.instance,
            humantime::format_duration(std::time::Duration::from_secs(took.as_secs()))
        ))
    }

    fn fault_names(&self) -> &'static [&'static str] {
        super::drill::FAULTS
    }

    fn read_fault(
        &self,
        name: &str,
        at: (&str, &str),
        fields: serde_json::Value,
    ) -> Result<(KindFault, String), Error> {
        super::drill::read_fault(name, at, fields)
    }

    fn probe_names(&self) -> &'static [&'static str] {
        &[super::drill::SQL_PROBE]
    }

    fn read_probe(
        &self,
        _name: &str,
        fields: serde_json::Value,
    ) -> Result<(KindProbe, String), Error> {
        KindProbe::read(
            super::drill::SQL_PROBE,
            fields,
            |p: &super::drill::SqlProbe| format!("SQL `{}`", p.query),
        )
    }

    async fn probe(
        &self,
        target: &Target,
        region: &str,
        probe: &KindProbe,
    ) -> Result<String, Error> {
        let p: super::drill::SqlProbe = probe.get()?;
        let db = self.database(target, region)?;
        let db = match &p.database {
            Some(name) => db.with_dbname(name),
            None => db,
        };
        super::drill::probe_sql(&db, &p.query, p.expect.as_deref()).await
    }

    async fn canary_write(
        &self,
        target: &Target,
        region: &str,
        run: &str,
        mark: CanaryMark,
    ) -> Result<(), Error> {
        super::drill::canary_write(&self.database(target, region)?, run, mark).await
    }

    async fn canary_read(
        &self,
        target: &Target,
        region: &str,
        run: &str,
    ) -> Result<Vec<CanaryMark>, Error> {
        super::drill::canary_read(&self.database(target, region)?, run).await
    }

    async fn canary_clear(&self, target: &Target, region: &str, run: &str) -> Result<u64, Error> {
        super::drill::canary_clear(&self.database(target, region)?, run).await
    }

    async fn undo(&self, plan: &KindPlan, _job: &Job) -> Result<String, Error> {
        match plan.action::<RdsPlan>()? {
            RdsPlan::RdsFromSnapshot {
                api, new_instance, ..
            }
            | RdsPlan::RdsPointInTime {
                api, new_instance, ..
            } => {
                let rds = self.api(&api).await;
                // A restore stopped before RDS took its request made nothing.
                if !rds.instance_exists(&new_instance).await? {
                    return Ok(format!(
                        "instance {new_instance} in {} was never created: nothing to undo",
                        api.region
                    ));
                }
                rds.delete_instance(&new_instance).await?;
                Ok(format!(
                    "deleting instance {new_instance} in {} (no final snapshot)",
                    api.region
                ))
            }
            RdsPlan::PgRestore {
                db,
                state: DbState::Missing,
                ..
            } => {
                db.open()?.drop_database().await?;
                Ok(format!(
                    "dropped database {} that the restore created",
                    db.dbname
                ))
            }
            RdsPlan::PgRestore { db, .. } => Ok(format!(
                "database {} existed before the restore: left as restored",
                db.dbname
            )),
        }
    }
}

#[async_trait]
impl Artefacts for RdsKind {
    async fn copy_external(
        &self,
        target: &Target,
        manifest: &Manifest,
        from: &str,
        to: &str,
        job: &Job,
    ) -> Result<Manifest, Error> {
        let Some(mut info) = RdsInfo::of(manifest) else {
            return Ok(manifest.clone());
        };
        let Some(arn) = info.snapshots.get(from).cloned() else {
            return Ok(manifest.clone());
        };
        let arn = &arn;
        let to_cfg = region_cfg(Some(target), to);
        let source = api_ref(Some(target), from);
        let rds = self.api(&api_ref(Some(target), to)).await;
        let id = snapshot_id(&manifest.target, &manifest.point_id);
        let copied_arn = match rds.snapshot(&id).await {
            // A copy an earlier run made is reused.
            Ok(existing) if existing.status == "available" => existing.arn,
            _ => {
                job.phase(format!("copying RDS snapshot to {to}"));
                let phase = job.clone();
                let on_state = move |s: &str| phase.phase(format!("snapshot copy {s}"));
                job.cancellable(async {
                    Ok(rds
                        .copy_snapshot_from(
                            &SnapshotSource {
                                arn,
                                region: from,
                                endpoint: source.endpoint.as_deref(),
                            },
                            &id,
                            to_cfg.kms_key.as_deref(),
                            (&manifest.target, &manifest.point_id),
                            &on_state,
                        )
                        .await?)
                })
                .await?
                .arn
            }
        };
        let mut updated = manifest.clone();
        info.snapshots.insert(to.to_string(), copied_arn);
        updated.external = Some(info.recorded()?);
        Ok(updated)
    }

    async fn verify_external(
        &self,
        target: Option<&Target>,
        manifest: &Manifest,
        region: &str,
        _job: &Job,
    ) -> Result<Option<String>, Error> {
        let info = RdsInfo::of(manifest);
        let Some(arn) = info.as_ref().and_then(|r| r.snapshots.get(region)) else {
            return Ok(None);
        };
        let rds = self.api(&api_ref(target, region)).await;
        let id = snapshot_id(&manifest.target, &manifest.point_id);
        let snapshot = rds
            .snapshot(&id)
            .await
            .map_err(|e| RdsError::SnapshotUnusable {
                arn: arn.clone(),
                detail: format!("it is recorded in the manifest but cannot be read: {e}"),
            })?;
        if snapshot.status != "available" {
            return Err(RdsError::SnapshotUnusable {
                arn: arn.clone(),
                detail: format!("status is {:?}, not available", snapshot.status),
            }
            .into());
        }
        Ok(Some(format!("RDS snapshot {id} available")))
    }

    async fn delete_external(
        &self,
        target: Option<&Target>,
        manifest: &Manifest,
        region: &str,
    ) -> Result<Vec<String>, Error> {
        if !RdsInfo::of(manifest).is_some_and(|r| r.snapshots.contains_key(region)) {
            return Ok(Vec::new());
        }
        let rds = self.api(&api_ref(target, region)).await;
        let id = snapshot_id(&manifest.target, &manifest.point_id);
        if rds.delete_managed_snapshot(&id).await? {
            Ok(vec![format!("snapshot {id}")])
        } else {
            Ok(vec![format!("snapshot {id} (gone already)")])
        }
    }

    fn external_lines(&self, manifest: &Manifest) -> Vec<(String, String)> {
        RdsInfo::of(manifest)
            .map(|info| {
                info.snapshots
                    .into_iter()
                    .map(|(r, arn)| ("rds snapshot".to_string(), format!("{r}: {arn}")))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl ScratchRestores for RdsKind {
    async fn scratch(
        &self,
        target: &Target,
        region: &str,
        manifest: &Manifest,
        _job: &Job,
    ) -> Result<Option<Scratch>, Error> {
        super::scratch::scratch((target, region), spec(target)?, manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::rds::PasswordSource;

    fn opts() -> RestoreOptions {
        RestoreOptions::default()
    }

    #[test]
    fn routes() {
        let own = |o: RdsRestoreOptions| RestoreOptions {
            kind: KindOptions::of("rds", &o).unwrap_or_else(|e| panic!("{e}")),
            ..opts()
        };
        let from_dump = own(RdsRestoreOptions {
            from_dump: true,
            ..RdsRestoreOptions::default()
        });
        let with_db = own(RdsRestoreOptions {
            database: Some("copy".into()),
            ..RdsRestoreOptions::default()
        });
        type Case<'a> = (
            Option<&'a str>,
            bool,
            RestoreOptions,
            Result<Route, &'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                Some("arn:s"),
                true,
                opts(),
                Ok(Route::Snapshot {
                    arn: "arn:s".into(),
                }),
            ),
            (
                Some("arn:s"),
                false,
                opts(),
                Ok(Route::Snapshot {
                    arn: "arn:s".into(),
                }),
            ),
            (Some("arn:s"), true, from_dump.clone(), Ok(Route::Dump)),
            (None, true, opts(), Ok(Route::Dump)),
            (
                None,
                false,
                opts(),
                Err("no snapshot in west and no dump: copy it there first"),
            ),
            (
                Some("arn:s"),
                false,
                from_dump.clone(),
                Err("holds no dump"),
            ),
            (
                Some("arn:s"),
                true,
                with_db.clone(),
                Err("--database does not apply here"),
            ),
            (None, true, with_db, Ok(Route::Dump)),
        ];
        for (snapshot, dump, options, want) in cases {
            let got = route("db", "west", "p", snapshot, dump, &options);
            match (got, want) {
                (Ok(r), Ok(w)) => assert_eq!(r, w),
                (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{e}"),
                (got, want) => panic!("{snapshot:?} {dump}: got {got:?}, want {want:?}"),
            }
        }
        let nothing = route("db", "west", "p", None, false, &opts()).err();
        assert_eq!(
            nothing.as_ref().and_then(Error::kind_error::<RdsError>),
            Some(&RdsError::NothingHere {
                point: "p".into(),
                region: "west".into(),
                target: "db".into(),
            })
        );
        let no_dump = route("db", "west", "p", Some("arn:s"), false, &from_dump).err();
        assert!(matches!(
            no_dump.as_ref().and_then(Error::kind_error::<RdsError>),
            Some(RdsError::NoDump { .. })
        ));
    }

    fn db() -> DbRef {
        DbRef {
            host: "h".into(),
            port: 5432,
            user: "u".into(),
            dbname: "orders".into(),
            password: PasswordSource::Env("PW".into()),
        }
    }

    fn rel(schema: &str, name: &str) -> Relation {
        Relation {
            schema: schema.into(),
            name: name.into(),
        }
    }

    #[test]
    fn dump_decisions() {
        let overwrite = RestoreOptions {
            existing: Some(Existing::Overwrite),
            ..opts()
        };
        type Case<'a> = (DbState, RestoreOptions, Result<(bool, bool), &'a str>);
        let cases: Vec<Case> = vec![
            (DbState::Missing, opts(), Ok((false, false))),
            (DbState::Empty, opts(), Ok((false, false))),
            (
                DbState::NotEmpty(4),
                opts(),
                Err("already holds 4 relations"),
            ),
            (
                DbState::NotEmpty(4),
                RestoreOptions {
                    existing: Some(Existing::Skip),
                    ..opts()
                },
                Err("a dump is restored whole"),
            ),
            (DbState::NotEmpty(4), overwrite, Ok((true, true))),
        ];
        for (state, options, want) in cases {
            let facts = DumpFacts {
                existing: vec![
                    rel("public", "a"),
                    rel("public", "b"),
                    rel("s", "c"),
                    rel("s", "x"),
                ],
                in_dump: vec![rel("public", "a"), rel("public", "b"), rel("s", "c")],
            };
            match (decide_dump(db(), state, &facts, &options), want) {
                (
                    Ok((
                        RdsPlan::PgRestore {
                            clean, drops, kept, ..
                        },
                        d,
                    )),
                    Ok((c, w)),
                ) => {
                    assert_eq!((clean, d), (c, w), "{state:?}");
                    if clean {
                        assert_eq!(drops, ["public.a", "public.b", "s.c"]);
                        assert_eq!(kept, 1, "s.x is not in the dump: --clean leaves it");
                    } else {
                        assert!(drops.is_empty());
                    }
                }
                (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{e}"),
                (got, want) => panic!("{state:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn new_instance_decisions() {
        let api = ApiRef {
            region: "west".into(),
            endpoint: None,
        };
        let cfg = RdsRegion::default();
        let taken = decide_snapshot(api.clone(), "arn".into(), "db-p".into(), true, &cfg, "db");
        assert!(taken.is_err_and(|e| matches!(
            e.kind_error::<RdsError>(),
            Some(RdsError::InstanceExists { instance, region, .. }) if instance == "db-p" && region == "west"
        )));
        assert!(
            decide_snapshot(api.clone(), "arn".into(), "db-p".into(), false, &cfg, "db").is_ok()
        );
        let now = Utc::now();
        let future = decide_pitr(
            api.clone(),
            "db".into(),
            now + chrono::Duration::hours(1),
            now,
            "x".into(),
            false,
            &cfg,
        );
        assert!(future.is_err_and(|e| matches!(
            e.kind_error::<RdsError>(),
            Some(RdsError::PitrInFuture { .. })
        )));
        let exists = decide_pitr(api.clone(), "db".into(), now, now, "x".into(), true, &cfg);
        assert!(exists.is_err_and(|e| matches!(
            e.kind_error::<RdsError>(),
            Some(RdsError::InstanceExists { target: None, .. })
        )));
        assert!(decide_pitr(api, "db".into(), now, now, "x".into(), false, &cfg).is_ok());
    }

    #[test]
    fn plans_never_hold_secret_values() -> Result<(), Error> {
        // SAFETY: a variable only this test reads.
        unsafe { std::env::set_var("DRTOOL_TEST_PLAN_PW", "hunter2") };
        let db = DbRef {
            password: PasswordSource::Env("DRTOOL_TEST_PLAN_PW".into()),
            ..db()
        };
        let (plan, _) = decide_dump(db, DbState::Missing, &DumpFacts::default(), &opts())?;
        let text = serde_json::to_string(&plan).map_err(Error::failed)?;
        assert!(
            text.contains("DRTOOL_TEST_PLAN_PW") && !text.contains("hunter2"),
            "{text}"
        );
        Ok(())
    }
}
