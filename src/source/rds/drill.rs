//! What drills do to an RDS target's database: the SQL probe, and canary rows
//! in a `drtool_canary` table of the database, which a dump carries along.

use chrono::{DateTime, Utc};

use super::RdsError;
use super::dump::Db;
use crate::engine::faults::{CanaryMark, KindFault, NoFields};
use crate::error::Error;

/// The faults, as drill files name them.
pub const REBOOT_FAILOVER: &str = "reboot_failover";
pub const STOP_INSTANCE: &str = "stop_instance";
pub const PROMOTE_REPLICA: &str = "promote_replica";
pub const FAULTS: &[&str] = &[REBOOT_FAILOVER, STOP_INSTANCE, PROMOTE_REPLICA];

/// `promote_replica: { target, region, replica }`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteFault {
    pub replica: String,
}

/// Reads a drill's RDS fault.
pub fn read_fault(
    name: &str,
    (target, region): (&str, &str),
    fields: serde_json::Value,
) -> Result<(KindFault, String), Error> {
    match name {
        REBOOT_FAILOVER => KindFault::read(name, fields, |_: &NoFields| {
            format!("reboot {target} in {region} with failover")
        }),
        STOP_INSTANCE => KindFault::read(name, fields, |_: &NoFields| {
            format!("stop the instance of {target} in {region}")
        }),
        _ => KindFault::read(name, fields, |p: &PromoteFault| {
            format!("promote replica {} of {target} in {region}", p.replica)
        }),
    }
}

/// The SQL probe, as drill files name it.
pub const SQL_PROBE: &str = "sql";

/// `sql: { ..., query: SELECT 1, expect: 1 }`: the query runs (and its
/// first value is `expect`, when given).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlProbe {
    pub query: String,
    /// The first column of the first row must be this (default: the query runs).
    #[serde(default)]
    pub expect: Option<String>,
    /// Another database than the region's `database` (one a dump was restored into).
    #[serde(default)]
    pub database: Option<String>,
}

/// The SQL probe: the query runs, and its first value is `expect` when given.
pub async fn probe_sql(db: &Db, query: &str, expect: Option<&str>) -> Result<String, Error> {
    let out = db.query(query).await?;
    let first = out
        .lines()
        .next()
        .unwrap_or("")
        .split('|')
        .next()
        .unwrap_or("")
        .to_string();
    match expect {
        Some(want) if first != want => Err(RdsError::SqlDiffers {
            query: query.to_string(),
            db: format!("{db:?}"),
            found: first.to_string(),
            want: want.to_string(),
        }
        .into()),
        Some(_) => Ok(format!("`{query}` returned {first:?}")),
        None => Ok(format!("`{query}` ran")),
    }
}

/// Quoted as an SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub async fn canary_write(db: &Db, run: &str, mark: CanaryMark) -> Result<(), Error> {
    db.query(&format!(
        "CREATE TABLE IF NOT EXISTS drtool_canary (run text NOT NULL, seq bigint NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (run, seq)); \
         INSERT INTO drtool_canary VALUES ({}, {}, {})",
        literal(run),
        mark.seq,
        literal(&mark.at.to_rfc3339())
    ))
    .await?;
    Ok(())
}

pub async fn canary_read(db: &Db, run: &str) -> Result<Vec<CanaryMark>, Error> {
    let exists = db
        .query("SELECT count(*) FROM pg_class WHERE relname = 'drtool_canary'")
        .await?;
    if exists == "0" {
        return Ok(Vec::new());
    }
    let out = db
        .query(&format!(
            "SELECT seq || '|' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.USZ') FROM drtool_canary WHERE run = {} ORDER BY seq",
            literal(run)
        ))
        .await?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let (seq, at) = l.split_once('|')?;
            Some(CanaryMark {
                seq: seq.parse().ok()?,
                at: DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
            })
        })
        .collect())
}

/// The table canary rows are written to.
pub const CANARY_TABLE: &str = "drtool_canary";

/// Drops the canary table a dump brought back (a restore that is not a drill's).
pub async fn drop_canaries(db: &Db) -> Result<(), Error> {
    db.query("DROP TABLE IF EXISTS drtool_canary").await?;
    Ok(())
}

pub async fn canary_clear(db: &Db, run: &str) -> Result<u64, Error> {
    let exists = db
        .query("SELECT count(*) FROM pg_class WHERE relname = 'drtool_canary'")
        .await;
    match exists {
        Ok(n) if n == "0" => return Ok(0),
        Ok(_) => {}
        // The database is gone (a restore into it was undone): so are its rows.
        Err(e)
            if matches!(
                e.kind_error::<RdsError>(),
                Some(RdsError::DatabaseMissing { .. })
            ) =>
        {
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    }
    let out = db
        .query(&format!(
            "WITH d AS (DELETE FROM drtool_canary WHERE run = {} RETURNING 1) SELECT count(*) FROM d",
            literal(run)
        ))
        .await?;
    // Leave no empty table of ours behind.
    let _ = db
        .query("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM drtool_canary) THEN DROP TABLE drtool_canary; END IF; END $$")
        .await;
    Ok(out.trim().parse().unwrap_or(0))
}
