//! The `kind = "dir"` section of `drtool.toml`: a directory per region.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::config::ConfigError;
use crate::config::raw::{Ctx, kind_tables, regions, target_table};

target_table!(
    /// `[targets.NAME]` of kind dir.
    RawDirTable {
        #[serde(default)]
        regions: BTreeMap<Spanned<String>, Spanned<RawDirRegion>>,
    }
);

/// `[targets.NAME.regions.REGION]` of kind dir.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirRegion {
    path: Spanned<String>,
}

/// A directory's files, per region.
#[derive(Debug, Clone)]
pub struct DirTarget {
    pub regions: BTreeMap<String, PathBuf>,
}

impl crate::config::KindSpec for DirTarget {
    fn kind(&self) -> &'static str {
        super::NAME
    }
}

/// Reads the tables of every target of this kind (`homes`: name -> home).
pub fn parse_all(
    ctx: &Ctx,
    homes: &BTreeMap<String, String>,
    known: &BTreeSet<String>,
) -> Result<BTreeMap<String, crate::config::TargetSpec>, ConfigError> {
    kind_tables::<RawDirTable, _>(ctx, super::NAME, homes, known, parse)
}

fn parse(
    ctx: &Ctx,
    name: &str,
    raw: RawDirTable,
    known: &BTreeSet<String>,
    home: &str,
) -> Result<DirTarget, ConfigError> {
    let regions = regions(ctx, name, raw.regions, known, |_, r| {
        Ok(ctx.path(r.get_ref().path.get_ref()))
    })?;
    if !regions.contains_key(home) {
        return Err(ctx.err(
            raw.home.span(),
            format!("target {name}: no [targets.{name}.regions.{home}] table with its `path`"),
        ));
    }
    Ok(DirTarget { regions })
}
