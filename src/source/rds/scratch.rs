//! Restore tests for RDS dump points: the dump is restored into a scratch
//! database on the home region's server (`drtool_rt_<random>`), its tables and
//! rows are counted against the manifest (counted in pg_dump's own snapshot at
//! backup time), and the database is dropped. Snapshot-only points are not
//! restore-tested here: that makes a whole new instance, which is a drill.

use async_trait::async_trait;

use super::RdsError;
use super::RdsTarget;
use super::dump::DbRef;
use super::options::RdsRestoreOptions;
use crate::archive::Manifest;
use crate::config::Target;
use crate::engine::kind::{Applied, KindPlan, Scratch, ScratchGuard};
use crate::engine::options::{KindOptions, RestoreOptions};
use crate::error::Error;

struct RdsScratch {
    db: DbRef,
}

/// A scratch database for `manifest`'s dump, or none when it has no dump or
/// the home region names no database server.
pub fn scratch(
    (target, region): (&Target, &str),
    spec: &RdsTarget,
    manifest: &Manifest,
) -> Result<Option<Scratch>, Error> {
    if manifest.data_file.is_none() {
        return Ok(None);
    }
    // The tested copy's region's database server, else the home one.
    let has_db = |r: &str| spec.regions.get(r).and_then(|r| r.database.as_ref());
    let (region, conn) = match (has_db(region), has_db(&target.home)) {
        (Some(c), _) => (region, c),
        (None, Some(c)) => (target.home.as_str(), c),
        (None, None) => return Ok(None),
    };
    let base = DbRef::of(conn, None)?;
    let name = format!("drtool_rt_{:08x}", rand::random::<u32>());
    let options = RestoreOptions {
        kind: KindOptions::of(
            "rds",
            &RdsRestoreOptions {
                database: Some(name.clone()),
                from_dump: true,
                pitr: None,
            },
        )?,
        // A restore test reproduces the point exactly, canary rows too.
        with_canaries: true,
        ..RestoreOptions::default()
    };
    Ok(Some(Scratch {
        target: target.clone(),
        region: region.to_string(),
        options,
        guard: Box::new(RdsScratch {
            db: base.with_dbname(&name),
        }),
    }))
}

#[async_trait]
impl ScratchGuard for RdsScratch {
    async fn check(
        &self,
        manifest: &Manifest,
        _plan: &KindPlan,
        _applied: &Applied,
    ) -> Result<String, Error> {
        let db = self.db.open()?;
        let found = db.row_counts().await?;
        let (tables, rows) = (manifest.items.get("tables"), manifest.items.get("rows"));
        match (tables, rows) {
            (Some(&t), Some(&r)) if t == found.tables && r == found.rows => Ok(format!(
                "{} tables and {} rows restored into scratch database {}, as the manifest counts",
                found.tables, found.rows, self.db.dbname
            )),
            (Some(&t), Some(&r)) => Err(RdsError::CountsDiffer {
                db: self.db.dbname.clone(),
                tables: t,
                rows: r,
                found_tables: found.tables,
                found_rows: found.rows,
            }
            .into()),
            _ => Ok(format!(
                "the dump restored into scratch database {} ({} tables, {} rows; the point has no row counts to compare)",
                self.db.dbname, found.tables, found.rows
            )),
        }
    }

    async fn remove(self: Box<Self>) -> Result<(), Error> {
        self.db.open()?.drop_database().await?;
        Ok(())
    }
}
