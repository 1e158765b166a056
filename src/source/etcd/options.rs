//! An etcd restore's own options: `--prefix`.

use serde::{Deserialize, Serialize};

use crate::engine::options::{FlagShape, FlagSpec, FlagValues, KindOptions};
use crate::error::Error;

pub const PREFIX: &str = "prefix";

pub const FLAGS: &[FlagSpec] = &[FlagSpec {
    long: PREFIX,
    value_name: "PREFIX",
    help: "etcd keys points: restore only keys under this prefix.",
    shape: FlagShape::One,
    file: false,
}];

/// What an etcd restore is asked beside `--existing`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdRestoreOptions {
    /// Keys points: only keys under this prefix.
    pub prefix: Option<String>,
}

impl EtcdRestoreOptions {
    pub fn parse(flags: &FlagValues) -> Result<KindOptions, Error> {
        KindOptions::of(
            "etcd",
            &EtcdRestoreOptions {
                prefix: flags.value(PREFIX).map(str::to_string),
            },
        )
    }
}
