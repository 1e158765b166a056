//! What goes wrong with RDS targets and their PostgreSQL databases, with the
//! facts as fields; the message is rendered where it is shown.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::error::{ErrorClass, KindError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RdsError {
    /// A snapshot or instance reached a state RDS will not bring it back from.
    #[error(
        "{what}: reached state {state:?} after {after_secs} s: RDS will not get it to {wanted}; see the RDS events for the reason"
    )]
    StateFailed {
        what: String,
        state: String,
        after_secs: u64,
        wanted: String,
    },
    /// Still not there when the timeout ran out.
    #[error(
        "{what}: still {state:?} after {timeout_secs} s (waiting for {wanted}): raise the timeout or check the RDS console"
    )]
    StillWaiting {
        what: String,
        state: String,
        timeout_secs: u64,
        wanted: String,
    },
    /// The instance a restore would create is there already.
    #[error(
        "RDS instance {instance} already exists in {region}: delete it, or change restore_identifier{}",
        in_config(.target, .region)
    )]
    InstanceExists {
        instance: String,
        region: String,
        /// The target whose config names it, when known.
        target: Option<String>,
    },
    #[error("--pitr {} is in the future", .at.to_rfc3339())]
    PitrInFuture { at: DateTime<Utc> },
    #[error("the database password variable {var} is not set in drtool's environment")]
    PasswordEnvUnset { var: String },
    #[error("no database host: set `database.host` or let drtool read the instance endpoint")]
    NoDbHost,
    #[error("cannot read the password file {}: {reason}", .path.display())]
    PasswordFileUnreadable { path: PathBuf, reason: String },
    /// psql, pg_dump or pg_restore could not be started.
    #[error(
        "cannot run {program} ({reason}): install the PostgreSQL client tools (Debian: postgresql-client)"
    )]
    ToolMissing { program: String, reason: String },
    #[error(
        "RDS instance {instance} in {region}: not found: check `instance` of the target and the region"
    )]
    InstanceMissing { instance: String, region: String },
    #[error("RDS snapshot {snapshot} in {region}: not found")]
    SnapshotMissing { snapshot: String, region: String },
    /// drtool deletes only the snapshots it tagged as its own.
    #[error(
        "snapshot {snapshot} in {region} has no {tag}=true tag: drtool did not make it and will not delete it",
        tag = super::MANAGED_TAG
    )]
    NotManaged { snapshot: String, region: String },
    #[error("--from-dump: point {point} holds no dump (the target's mode makes snapshots only)")]
    NoDump { point: String },
    #[error(
        "point {point} has no snapshot in {region} and no dump: copy it there first (drtool copy --target {target} --to {region})"
    )]
    NothingHere {
        point: String,
        region: String,
        target: String,
    },
    /// What needs the region's `database` and has none.
    #[error("{}", needs_database(.needs, .target, .region))]
    NoDatabase {
        needs: DatabaseUse,
        target: String,
        region: String,
    },
    /// A snapshot the manifest records cannot be read or is not available.
    #[error("RDS snapshot {arn}: {detail}")]
    SnapshotUnusable { arn: String, detail: String },
    /// A SQL probe got another answer.
    #[error("SQL `{query}` on {db}: returned {found:?}, not {want:?}")]
    SqlDiffers {
        query: String,
        db: String,
        found: String,
        want: String,
    },
    /// The point's dump is not one pg_restore can read.
    #[error("the point's dump: pg_restore cannot read its table of contents ({status}): {stderr}")]
    DumpUnreadable { status: String, stderr: String },
    /// A restore test found other counts than the manifest's.
    #[error(
        "the manifest counts {tables} tables and {rows} rows; scratch database {db} holds {found_tables} tables and {found_rows} rows"
    )]
    CountsDiffer {
        db: String,
        tables: u64,
        rows: u64,
        found_tables: u64,
        found_rows: u64,
    },
    /// psql or pg_restore found no such database (a restore into it was
    /// undone, or it was never made).
    #[error("{tool} on {db}: {detail}")]
    DatabaseMissing {
        tool: String,
        db: String,
        detail: String,
    },
}

/// What a region's `database` is needed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseUse {
    Probes,
    Dump,
    RestoreDump,
}

fn needs_database(needs: &DatabaseUse, target: &str, region: &str) -> String {
    match needs {
        DatabaseUse::Probes => format!(
            "target {target} has no `database` in [targets.{target}.regions.{region}]: SQL probes and canaries need one"
        ),
        DatabaseUse::Dump => {
            format!("target {target}: dumping needs a `database` in region {region}")
        }
        DatabaseUse::RestoreDump => format!(
            "restoring a dump needs `database = {{ host, port, user, dbname, password_env }}` in [targets.{target}.regions.{region}]"
        ),
    }
}

fn in_config(target: &Option<String>, region: &str) -> String {
    target
        .as_ref()
        .map(|t| format!(" in [targets.{t}.regions.{region}]"))
        .unwrap_or_default()
}

impl KindError for RdsError {
    fn class(&self) -> ErrorClass {
        match self {
            RdsError::StateFailed { .. }
            | RdsError::StillWaiting { .. }
            | RdsError::DatabaseMissing { .. }
            | RdsError::InstanceMissing { .. }
            | RdsError::SnapshotMissing { .. }
            | RdsError::SqlDiffers { .. } => ErrorClass::Failed,
            RdsError::InstanceExists { .. }
            | RdsError::PitrInFuture { .. }
            | RdsError::PasswordEnvUnset { .. }
            | RdsError::NoDbHost
            | RdsError::PasswordFileUnreadable { .. }
            | RdsError::ToolMissing { .. }
            | RdsError::NotManaged { .. }
            | RdsError::NoDump { .. }
            | RdsError::NothingHere { .. }
            | RdsError::NoDatabase { .. } => ErrorClass::BadInput,
            RdsError::SnapshotUnusable { .. }
            | RdsError::DumpUnreadable { .. }
            | RdsError::CountsDiffer { .. } => ErrorClass::Integrity,
        }
    }
}

crate::error::kind_error_from!(RdsError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_words() {
        let exists = RdsError::InstanceExists {
            instance: "db-p".into(),
            region: "west".into(),
            target: Some("orders".into()),
        };
        assert_eq!(exists.class(), ErrorClass::BadInput);
        assert_eq!(
            exists.to_string(),
            "RDS instance db-p already exists in west: delete it, or change restore_identifier in [targets.orders.regions.west]"
        );
        let e = crate::error::Error::from(exists.clone());
        assert_eq!(e.class(), ErrorClass::BadInput);
        assert_eq!(e.kind_error::<RdsError>(), Some(&exists));
    }
}
