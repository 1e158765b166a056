//! Restore options shared by every kind, and which of them a kind accepts.
//!
//! Options live here, not in one source: several kinds share them (the policy
//! for what already exists), and the engine checks every given option against
//! the kind of the target before anything is read, so a flag that does not apply
//! is an error instead of being silently ignored.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What to do with what already exists in the target (keys, objects, a database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Existing {
    /// Leave what exists as it is.
    Skip,
    /// Replace what exists with the point's version.
    Overwrite,
    /// Refuse the restore if anything selected already exists (and differs).
    #[default]
    Fail,
}

/// A policy name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not one of skip, overwrite, update, fail")]
pub struct UnknownExisting;

impl std::str::FromStr for Existing {
    type Err = UnknownExisting;

    /// `skip`, `overwrite` (or `update`, as namespaces say it), `fail`.
    fn from_str(s: &str) -> Result<Existing, UnknownExisting> {
        match s {
            "skip" => Ok(Existing::Skip),
            "overwrite" | "update" => Ok(Existing::Overwrite),
            "fail" => Ok(Existing::Fail),
            _ => Err(UnknownExisting),
        }
    }
}

impl Existing {
    pub fn name(self) -> &'static str {
        match self {
            Existing::Skip => "skip",
            Existing::Overwrite => "overwrite",
            Existing::Fail => "fail",
        }
    }
}

/// One restore option, named as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreFlag {
    Prefix,
    Existing,
    Database,
    FromDump,
    Pitr,
    NamespaceMap,
    Include,
    Exclude,
}

impl RestoreFlag {
    pub fn flag(self) -> &'static str {
        match self {
            RestoreFlag::Prefix => "--prefix",
            RestoreFlag::Existing => "--existing",
            RestoreFlag::Database => "--database",
            RestoreFlag::FromDump => "--from-dump",
            RestoreFlag::Pitr => "--pitr",
            RestoreFlag::NamespaceMap => "--namespace-map",
            RestoreFlag::Include => "--include",
            RestoreFlag::Exclude => "--exclude",
        }
    }
}

impl fmt::Display for RestoreFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.flag())
    }
}

/// Every restore option; each kind reads the ones it accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestoreOptions {
    /// etcd keys points: only keys under this prefix.
    pub prefix: Option<String>,
    /// What to do with what exists; `None` means the default (fail).
    pub existing: Option<Existing>,
    /// RDS dumps: restore into this database instead of the configured one.
    pub database: Option<String>,
    /// RDS: use the point's dump even where a snapshot copy exists.
    pub from_dump: bool,
    /// RDS: point-in-time restore from the automated backups, no point needed.
    pub pitr: Option<DateTime<Utc>>,
    /// Namespaces: restore namespace `.0` into namespace `.1`.
    pub namespace_map: Option<(String, String)>,
    /// Namespaces: only / never these resources (plural or plural.group).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Bring back the canary markers drills write (only a drill's own
    /// restore does: any other restore leaves them out).
    pub with_canaries: bool,
}

impl RestoreOptions {
    /// The options that were given, in flag order.
    pub fn given(&self) -> Vec<RestoreFlag> {
        let set = [
            (RestoreFlag::Prefix, self.prefix.is_some()),
            (RestoreFlag::Existing, self.existing.is_some()),
            (RestoreFlag::Database, self.database.is_some()),
            (RestoreFlag::FromDump, self.from_dump),
            (RestoreFlag::Pitr, self.pitr.is_some()),
            (RestoreFlag::NamespaceMap, self.namespace_map.is_some()),
            (RestoreFlag::Include, !self.include.is_empty()),
            (RestoreFlag::Exclude, !self.exclude.is_empty()),
        ];
        set.into_iter()
            .filter(|(_, on)| *on)
            .map(|(f, _)| f)
            .collect()
    }

    pub fn existing(&self) -> Existing {
        self.existing.unwrap_or_default()
    }

    /// Fails on the first given option that `accepted` does not list.
    pub fn check(&self, accepted: &[RestoreFlag], target: &str, kind: &str) -> Result<(), Error> {
        match self.given().into_iter().find(|f| !accepted.contains(f)) {
            None => Ok(()),
            Some(flag) => {
                let valid: Vec<&str> = accepted.iter().map(|f| f.flag()).collect();
                Err(Error::input(format!(
                    "{flag} does not apply to target {target} (kind {kind}); restore options for {kind} targets: {}",
                    if valid.is_empty() {
                        "none".to_string()
                    } else {
                        valid.join(", ")
                    }
                )))
            }
        }
    }

    /// An error for an option that the kind accepts but this point cannot use.
    pub fn not_for_point(flag: RestoreFlag, why: &str) -> Error {
        Error::input(format!("{flag} does not apply here: {why}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_of_another_kind_is_named_with_the_target_and_kind() {
        let opts = RestoreOptions {
            namespace_map: Some(("a".into(), "b".into())),
            ..RestoreOptions::default()
        };
        let err = opts
            .check(
                &[RestoreFlag::Prefix, RestoreFlag::Existing],
                "etcd-main",
                "etcd",
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("--namespace-map does not apply to target etcd-main (kind etcd)"),
            "{err}"
        );
        assert!(err.contains("--prefix, --existing"), "{err}");
        assert!(RestoreOptions::default().check(&[], "t", "k").is_ok());
    }

    #[test]
    fn given_lists_every_set_option() {
        let opts = RestoreOptions {
            prefix: Some("/a".into()),
            from_dump: true,
            exclude: vec!["secrets".into()],
            ..RestoreOptions::default()
        };
        assert_eq!(
            opts.given(),
            [
                RestoreFlag::Prefix,
                RestoreFlag::FromDump,
                RestoreFlag::Exclude
            ]
        );
        assert_eq!(opts.existing(), Existing::Fail);
    }
}
