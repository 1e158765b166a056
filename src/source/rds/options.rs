//! An RDS restore's own options: `--database`, `--from-dump`, `--pitr`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::options::{FlagShape, FlagSpec, FlagValues, KindOptions, RestoreOptions};
use crate::error::Error;

pub const DATABASE: &str = "database";
pub const FROM_DUMP: &str = "from-dump";
pub const PITR: &str = "pitr";

pub const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        long: DATABASE,
        value_name: "NAME",
        help: "RDS dump points: restore into this database (created if missing).",
        shape: FlagShape::One,
        file: false,
        needs: None,
    },
    FlagSpec {
        long: FROM_DUMP,
        value_name: "",
        help: "RDS points: restore the dump even where a snapshot copy exists.",
        shape: FlagShape::Switch,
        file: false,
        needs: None,
    },
    FlagSpec {
        long: PITR,
        value_name: "TIME",
        help: "RDS: restore a new instance to this time from RDS's automated backups in \
               the region (RFC 3339 or YYYY-MM-DD, UTC), instead of from a point.",
        shape: FlagShape::One,
        file: false,
        needs: None,
    },
];

/// What an RDS restore is asked beside `--existing`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdsRestoreOptions {
    /// Dumps: restore into this database instead of the configured one.
    pub database: Option<String>,
    /// Use the point's dump even where a snapshot copy exists.
    pub from_dump: bool,
    /// Point-in-time restore from the automated backups, no point needed.
    pub pitr: Option<DateTime<Utc>>,
}

impl RdsRestoreOptions {
    pub fn parse(flags: &FlagValues) -> Result<KindOptions, Error> {
        let pitr = match flags.value(PITR) {
            None => None,
            Some(t) => Some(
                crate::catalog::parse_time(t).map_err(|e| RestoreOptions::bad_value(PITR, t, e))?,
            ),
        };
        let from_dump = flags.on(FROM_DUMP);
        if pitr.is_some() && from_dump {
            return Err(Error::input(format!(
                "--{PITR} restores from RDS's automated backups, not from a point's dump: drop --{FROM_DUMP}"
            )));
        }
        KindOptions::of(
            "rds",
            &RdsRestoreOptions {
                database: flags.value(DATABASE).map(str::to_string),
                from_dump,
                pitr,
            },
        )
    }
}
