//! Restore options: the one every kind shares (what to do with what already
//! exists) and the kinds' own, which each kind declares as flags and parses
//! into its own typed value.
//!
//! Options are parsed once, where they are given: `drtool restore` builds every
//! kind's flags into its command line and has the target's kind read the ones
//! given; a drill step's `options:` goes the same way when the drill is
//! checked; the dashboard's toggles are a kind's switches. A flag the target's
//! kind does not declare is an error naming the flag, the target and the kind,
//! before anything is read.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
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

/// The flag every kind takes.
pub const EXISTING: &str = "existing";

/// A command-line flag a kind adds (to `drtool init` or `drtool restore`):
/// the CLI builds it, the kind reads its values from [`FlagValues`].
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    /// `--long`.
    pub long: &'static str,
    pub value_name: &'static str,
    pub help: &'static str,
    pub shape: FlagShape,
    /// Its value is a file (shells complete it as one).
    pub file: bool,
    /// A switch that means something only with this other flag given
    /// (`--allow-encrypted` with `--object`): alone it is an error, and the
    /// dashboard's wizard, which never gives that flag, does not offer it.
    pub needs: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagShape {
    /// Given at most once.
    One,
    /// Repeatable.
    Many,
    /// Repeatable and comma-separated (`--include a,b --include c`).
    List,
    /// On or off, no value (`--from-dump`; `from_dump: true` in a drill).
    Switch,
    /// Repeatable `REGION=VALUE`: each names a region to set up.
    RegionPairs,
}

/// Each long name once, the first declaration describing it (two kinds may
/// share a flag).
pub fn once_each(specs: impl Iterator<Item = FlagSpec>) -> Vec<FlagSpec> {
    let mut out: Vec<FlagSpec> = Vec::new();
    for spec in specs {
        if !out.iter().any(|s| s.long == spec.long) {
            out.push(spec);
        }
    }
    out
}

/// The values of a kind's flags, by long name. A switch that is on has the
/// one value `true`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagValues(pub BTreeMap<String, Vec<String>>);

impl FlagValues {
    /// Every value given (repeatable flags), in order.
    pub fn values(&self, long: &str) -> &[String] {
        self.0.get(long).map(Vec::as_slice).unwrap_or_default()
    }

    /// The value of a flag given once.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.values(long).last().map(String::as_str)
    }

    /// Whether a switch is on.
    pub fn on(&self, long: &str) -> bool {
        self.0.contains_key(long)
    }

    /// Turns a switch on.
    pub fn switch(self, long: &str) -> FlagValues {
        self.with(long, "true")
    }

    /// Gives a flag one value (a restore of one part: `--prefix P`).
    pub fn with(mut self, long: &str, value: &str) -> FlagValues {
        self.0.insert(long.to_string(), vec![value.to_string()]);
        self
    }

    /// The `REGION=VALUE` pairs of a flag (the CLI checked their shape),
    /// the first given for a region winning.
    pub fn pairs(&self, long: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (r, v) in self.values(long).iter().filter_map(|v| v.split_once('=')) {
            if !out.iter().any(|(x, _)| x == r) {
                out.push((r.to_string(), v.to_string()));
            }
        }
        out
    }

    /// Whether the values of `spec` have its shape (a drill's options are
    /// read from YAML, so a switch may be given text).
    pub fn check_shape(&self, spec: &FlagSpec) -> Result<(), Error> {
        let values = self.values(spec.long);
        let fits = match spec.shape {
            FlagShape::Switch => values.is_empty() || values == ["true"],
            FlagShape::One => values.len() <= 1,
            FlagShape::Many | FlagShape::List | FlagShape::RegionPairs => true,
        };
        if fits {
            return Ok(());
        }
        Err(Error::input(match spec.shape {
            FlagShape::Switch => format!(
                "--{} is on or off, not {:?}: give it alone (true or false in a drill)",
                spec.long,
                values.join(",")
            ),
            _ => format!(
                "--{} takes one {}, not {} ({})",
                spec.long,
                spec.value_name,
                values.len(),
                values.join(", ")
            ),
        }))
    }

    /// The given flags that `accepted` does not declare, as `--long`.
    pub fn undeclared(&self, accepted: &[FlagSpec]) -> Vec<String> {
        self.0
            .keys()
            .filter(|f| !accepted.iter().any(|s| s.long == f.as_str()))
            .map(|f| format!("--{f}"))
            .collect()
    }
}

/// A kind's own restore options: its typed value, parsed once where the
/// options were given and carried serialized (as a plan's action is), so
/// generic code holds them without knowing their type, with the name of the
/// kind that read them. None given: no kind, `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindOptions {
    kind: String,
    value: serde_json::Value,
}

impl KindOptions {
    /// Records kind `kind`'s typed options.
    pub fn of<T: Serialize>(kind: &str, options: &T) -> Result<KindOptions, Error> {
        serde_json::to_value(options)
            .map(|value| KindOptions {
                kind: kind.to_string(),
                value,
            })
            .map_err(|e| Error::failed(format!("cannot record the restore options: {e}")))
    }

    /// The kind that read them; none when none were given.
    pub fn kind(&self) -> Option<&str> {
        Some(self.kind.as_str()).filter(|k| !k.is_empty())
    }

    /// Reads them back as the kind's type (its default when none were given).
    pub fn get<T: DeserializeOwned + Default>(&self) -> Result<T, Error> {
        if self.value.is_null() {
            return Ok(T::default());
        }
        serde_json::from_value(self.value.clone()).map_err(|e| {
            Error::failed(format!(
                "the restore options are another kind's ({e}): parse them with the target's kind"
            ))
        })
    }
}

/// The options of one restore.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestoreOptions {
    /// What to do with what exists; `None` means the default (fail).
    pub existing: Option<Existing>,
    /// The target kind's own options.
    pub kind: KindOptions,
    /// Bring back the canary markers drills write (only a drill's own
    /// restore does: any other restore leaves them out).
    pub with_canaries: bool,
}

impl RestoreOptions {
    pub fn existing(&self) -> Existing {
        self.existing.unwrap_or_default()
    }

    /// The kind's own options, as its type.
    pub fn own<T: DeserializeOwned + Default>(&self) -> Result<T, Error> {
        self.kind.get()
    }

    /// An error for an option that the kind accepts but this point cannot use.
    pub fn not_for_point(flag: &str, why: &str) -> Error {
        Error::input(format!("--{flag} does not apply here: {why}"))
    }

    /// An error for a value a kind cannot read.
    pub fn bad_value(flag: &str, value: &str, why: impl std::fmt::Display) -> Error {
        Error::input(format!("--{flag} {value:?}: {why}"))
    }
}

/// The error for flags the target's kind does not declare.
pub fn undeclared(flag: &str, target: &str, kind: &str, accepted: &[FlagSpec]) -> Error {
    let valid: Vec<String> = std::iter::once(EXISTING)
        .chain(accepted.iter().map(|s| s.long))
        .map(|f| format!("--{f}"))
        .collect();
    Error::input(format!(
        "{flag} does not apply to target {target} (kind {kind}); restore options for {kind} targets: {}",
        valid.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[FlagSpec {
        long: "prefix",
        value_name: "PREFIX",
        help: "",
        shape: FlagShape::One,
        file: false,
        needs: None,
    }];

    #[test]
    fn a_flag_of_another_kind_is_named_with_the_target_and_what_the_kind_takes() {
        let given = FlagValues::default().switch("from-dump");
        assert_eq!(given.undeclared(SPECS), ["--from-dump"]);
        assert_eq!(
            undeclared("--from-dump", "etcd-main", "etcd", SPECS).to_string(),
            "--from-dump does not apply to target etcd-main (kind etcd); \
             restore options for etcd targets: --existing, --prefix"
        );
        let ok = FlagValues(BTreeMap::from([("prefix".into(), vec!["/a".into()])]));
        assert!(ok.undeclared(SPECS).is_empty());
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Mine {
        prefix: Option<String>,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Theirs {
        database: Option<String>,
    }

    #[test]
    fn a_kinds_options_read_back_as_written_and_as_default_when_none_were_given() {
        let mine = Mine {
            prefix: Some("/a".into()),
        };
        let opts = RestoreOptions {
            kind: KindOptions::of("mine", &mine).unwrap_or_else(|e| panic!("{e}")),
            ..RestoreOptions::default()
        };
        assert_eq!(opts.own::<Mine>().ok(), Some(mine));
        assert_eq!(opts.kind.kind(), Some("mine"));
        assert_eq!(RestoreOptions::default().kind.kind(), None);
        assert_eq!(
            RestoreOptions::default().own::<Mine>().ok(),
            Some(Mine::default())
        );
        assert!(opts.own::<Theirs>().is_err());
        assert_eq!(opts.existing(), Existing::Fail);
    }
}
