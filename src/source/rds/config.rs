//! The `kind = "rds"` section of `drtool.toml`: an RDS instance, its API per
//! region, and the PostgreSQL database dumps are taken from and restored into.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::ConfigError;
use crate::config::raw::{Ctx, check_url, kind_tables, mode, regions, target_table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdsMode {
    /// A native RDS snapshot, copied to the DR regions.
    Snapshot,
    /// A `pg_dump --format=custom` streamed into the archive pipeline.
    Dump,
    /// Both, in one recovery point.
    Both,
}

impl RdsMode {
    pub fn name(self) -> &'static str {
        match self {
            RdsMode::Snapshot => "snapshot",
            RdsMode::Dump => "dump",
            RdsMode::Both => "both",
        }
    }

    pub fn snapshots(self) -> bool {
        matches!(self, RdsMode::Snapshot | RdsMode::Both)
    }

    pub fn dumps(self) -> bool {
        matches!(self, RdsMode::Dump | RdsMode::Both)
    }
}

#[derive(Debug, Clone)]
pub struct RdsTarget {
    pub mode: RdsMode,
    /// The DB instance identifier in the home region.
    pub instance: String,
    pub regions: BTreeMap<String, RdsRegion>,
}

impl crate::config::KindSpec for RdsTarget {
    fn kind(&self) -> &'static str {
        "rds"
    }
}

#[derive(Debug, Clone)]
pub struct RdsRegion {
    /// RDS API endpoint override (e.g. the lab's moto server).
    pub endpoint: Option<String>,
    /// KMS key for snapshot copies into this region.
    pub kms_key: Option<String>,
    /// Instance class and subnet group for restores in this region.
    pub instance_class: Option<String>,
    pub subnet_group: Option<String>,
    /// Name of restored instances; `{instance}` and `{point}` are replaced.
    pub restore_identifier: String,
    /// The database: the dump source in the home region, the restore target elsewhere.
    pub database: Option<DbConn>,
}

impl Default for RdsRegion {
    fn default() -> Self {
        RdsRegion {
            endpoint: None,
            kms_key: None,
            instance_class: None,
            subnet_group: None,
            restore_identifier: "{instance}-{point}".to_string(),
            database: None,
        }
    }
}

/// How to reach a PostgreSQL database. The password is never in the config.
#[derive(Debug, Clone)]
pub struct DbConn {
    /// Host override; the instance's endpoint when absent.
    pub host: Option<String>,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: PasswordSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PasswordSource {
    /// The name of an environment variable holding the password.
    Env(String),
    /// A file whose first line is the password.
    File(PathBuf),
    /// No password (trust, .pgpass or PGPASSWORD of the caller).
    None,
}

target_table!(
    /// `[targets.NAME]` of kind rds.
    RawRdsTable {
        mode: Option<Spanned<String>>,
        instance: Option<Spanned<String>>,
        #[serde(default)]
        regions: BTreeMap<Spanned<String>, Spanned<RawRdsRegion>>,
    }
);

/// `[targets.NAME.regions.REGION]` of kind rds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRdsRegion {
    endpoint: Option<Spanned<String>>,
    kms_key: Option<Spanned<String>>,
    instance_class: Option<Spanned<String>>,
    subnet_group: Option<Spanned<String>>,
    restore_identifier: Option<Spanned<String>>,
    database: Option<Spanned<RawDatabase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    pub(super) host: Option<String>,
    pub(super) port: Option<Spanned<i64>>,
    pub(super) user: String,
    pub(super) dbname: String,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<Spanned<String>>,
}

/// Reads the tables of every target of this kind (`homes`: name -> home).
pub fn parse_all(
    ctx: &Ctx,
    homes: &BTreeMap<String, String>,
    known: &BTreeSet<String>,
) -> Result<BTreeMap<String, crate::config::TargetSpec>, ConfigError> {
    kind_tables::<RawRdsTable, _>(ctx, "rds", homes, known, parse)
}

pub(super) fn parse(
    ctx: &Ctx,
    name: &str,
    raw: RawRdsTable,
    known: &BTreeSet<String>,
    home: &str,
) -> Result<RdsTarget, ConfigError> {
    let mode = mode(
        ctx,
        name,
        &raw.mode,
        &[
            ("snapshot", RdsMode::Snapshot),
            ("dump", RdsMode::Dump),
            ("both", RdsMode::Both),
        ],
    )?;
    let Some(instance) = raw.instance else {
        return Err(ctx.err(
            raw.kind.span(),
            format!("target {name}: `instance` (the RDS DB instance identifier) is missing"),
        ));
    };
    let regions = regions(ctx, name, raw.regions, known, |region, r| {
        rds_region(ctx, name, region, r)
    })?;
    if mode != RdsMode::Snapshot && regions.get(home).is_none_or(|r| r.database.is_none()) {
        return Err(ctx.err(
            raw.home.span(),
            format!(
                "target {name}: mode \"{}\" dumps the database, so [targets.{name}.regions.{home}] needs \
                 `database = {{ user, dbname, password_env or password_file }}`",
                mode.name()
            ),
        ));
    }
    Ok(RdsTarget {
        mode,
        instance: instance.into_inner(),
        regions,
    })
}

fn rds_region(
    ctx: &Ctx,
    target: &str,
    region: &str,
    raw: Spanned<RawRdsRegion>,
) -> Result<RdsRegion, ConfigError> {
    let raw = raw.into_inner();
    if let Some(e) = &raw.endpoint {
        check_url(ctx, e, target, region, "endpoint")?;
    }
    let database = match raw.database {
        None => None,
        Some(d) => {
            let span = d.span();
            let d = d.into_inner();
            let password = match (d.password_env, d.password_file) {
                (Some(env), None) => PasswordSource::Env(env),
                (None, Some(file)) => PasswordSource::File(ctx.path(file.get_ref())),
                (None, None) => PasswordSource::None,
                (Some(_), Some(f)) => {
                    return Err(ctx.err(
                        f.span(),
                        format!(
                            "target {target}, region {region}: database has both password_env and password_file; keep one"
                        ),
                    ));
                }
            };
            let port = match d.port {
                None => 5432,
                Some(p) if (1..=65535).contains(p.get_ref()) => *p.get_ref() as u16,
                Some(p) => {
                    return Err(ctx.err(
                        p.span(),
                        format!(
                            "target {target}, region {region}: database.port {} is not a TCP port",
                            p.get_ref()
                        ),
                    ));
                }
            };
            if d.user.is_empty() || d.dbname.is_empty() {
                return Err(ctx.err(
                    span,
                    format!("target {target}, region {region}: database.user and database.dbname must not be empty"),
                ));
            }
            Some(DbConn {
                host: d.host,
                port,
                user: d.user,
                dbname: d.dbname,
                password,
            })
        }
    };
    Ok(RdsRegion {
        endpoint: raw.endpoint.map(Spanned::into_inner),
        kms_key: raw.kms_key.map(Spanned::into_inner),
        instance_class: raw.instance_class.map(Spanned::into_inner),
        subnet_group: raw.subnet_group.map(Spanned::into_inner),
        restore_identifier: raw
            .restore_identifier
            .map(Spanned::into_inner)
            .unwrap_or_else(|| "{instance}-{point}".to_string()),
        database,
    })
}
