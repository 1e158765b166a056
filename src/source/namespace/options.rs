//! A namespace restore's own options: `--namespace-map`, `--include`,
//! `--exclude`.

use serde::{Deserialize, Serialize};

use crate::engine::options::{FlagShape, FlagSpec, FlagValues, KindOptions, RestoreOptions};
use crate::error::Error;

pub const NAMESPACE_MAP: &str = "namespace-map";
pub const INCLUDE: &str = "include";
pub const EXCLUDE: &str = "exclude";

pub const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        long: NAMESPACE_MAP,
        value_name: "OLD=NEW",
        help: "Namespaces: restore namespace OLD into NEW.",
        shape: FlagShape::One,
        file: false,
        needs: None,
    },
    FlagSpec {
        long: INCLUDE,
        value_name: "RESOURCES",
        help: "Namespaces: only these resources (plural or plural.group; repeatable, comma-separated).",
        shape: FlagShape::List,
        file: false,
        needs: None,
    },
    FlagSpec {
        long: EXCLUDE,
        value_name: "RESOURCES",
        help: "Namespaces: never these resources.",
        shape: FlagShape::List,
        file: false,
        needs: None,
    },
];

/// What a namespace restore is asked beside `--existing`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceRestoreOptions {
    /// Restore namespace `.0` into namespace `.1`.
    pub namespace_map: Option<(String, String)>,
    /// Only / never these resources (plural or plural.group).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl NamespaceRestoreOptions {
    pub fn parse(flags: &FlagValues) -> Result<KindOptions, Error> {
        let namespace_map = match flags.value(NAMESPACE_MAP) {
            None => None,
            Some(m) => match m.split_once('=') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() => {
                    Some((a.to_string(), b.to_string()))
                }
                _ => {
                    return Err(RestoreOptions::bad_value(
                        NAMESPACE_MAP,
                        m,
                        "is not OLD=NEW (e.g. shop=shop-dr)",
                    ));
                }
            },
        };
        KindOptions::of(
            "namespace",
            &NamespaceRestoreOptions {
                namespace_map,
                include: flags.values(INCLUDE).to_vec(),
                exclude: flags.values(EXCLUDE).to_vec(),
            },
        )
    }
}
