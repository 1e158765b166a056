//! The `kind = "namespace"` section of `drtool.toml`: one Kubernetes namespace,
//! reached through a kubeconfig context per region.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::ConfigError;
use crate::config::raw::{Ctx, kind_tables, regions, target_table};

/// A Kubernetes namespace, reached through a kubeconfig context per region.
#[derive(Debug, Clone)]
pub struct NamespaceTarget {
    pub namespace: String,
    /// Only these resources (plural, or plural.group); all when empty.
    pub include: Vec<String>,
    /// Never these resources.
    pub exclude: Vec<String>,
    /// Only objects matching this label selector.
    pub label_selector: Option<String>,
    /// Keep the kubectl last-applied-configuration annotation.
    pub keep_last_applied: bool,
    /// Objects per list page of a backup.
    pub page_size: u32,
    pub regions: BTreeMap<String, NamespaceRegion>,
}

impl crate::config::KindSpec for NamespaceTarget {
    fn kind(&self) -> &'static str {
        "namespace"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NamespaceRegion {
    pub kubeconfig: PathBuf,
    /// The kubeconfig context; its current context when absent.
    pub context: Option<String>,
}

/// Objects per list page when the target does not say: kubectl's chunk size.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// A page is one response held in memory; the API server caps nothing.
const PAGE_SIZES: std::ops::RangeInclusive<u32> = 1..=10_000;

target_table!(
    /// `[targets.NAME]` of kind namespace.
    RawNamespaceTable {
        namespace: Option<Spanned<String>>,
        include: Option<Spanned<Vec<String>>>,
        exclude: Option<Spanned<Vec<String>>>,
        label_selector: Option<Spanned<String>>,
        keep_last_applied: Option<Spanned<bool>>,
        page_size: Option<Spanned<i64>>,
        #[serde(default)]
        regions: BTreeMap<Spanned<String>, Spanned<RawNamespaceRegion>>,
    }
);

/// `[targets.NAME.regions.REGION]` of kind namespace.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNamespaceRegion {
    kubeconfig: Option<Spanned<String>>,
    context: Option<Spanned<String>>,
}

/// Reads the tables of every target of this kind (`homes`: name -> home).
pub fn parse_all(
    ctx: &Ctx,
    homes: &BTreeMap<String, String>,
    known: &BTreeSet<String>,
) -> Result<BTreeMap<String, crate::config::TargetSpec>, ConfigError> {
    kind_tables::<RawNamespaceTable, _>(ctx, "namespace", homes, known, parse)
}

pub(super) fn parse(
    ctx: &Ctx,
    name: &str,
    raw: RawNamespaceTable,
    known: &BTreeSet<String>,
    home: &str,
) -> Result<NamespaceTarget, ConfigError> {
    let Some(namespace) = raw.namespace else {
        return Err(ctx.err(
            raw.kind.span(),
            format!("target {name}: `namespace` (the Kubernetes namespace to back up) is missing"),
        ));
    };
    if !is_dns_label(namespace.get_ref()) {
        return Err(ctx.err(
            namespace.span(),
            format!(
                "target {name}: namespace {:?} is not a valid Kubernetes namespace name (lowercase letters, digits, '-', at most 63)",
                namespace.get_ref()
            ),
        ));
    }
    let regions = regions(ctx, name, raw.regions, known, |region, r| {
        let table = r.span();
        let r = r.into_inner();
        let Some(kubeconfig) = r.kubeconfig else {
            return Err(ctx.err(
                table,
                format!("target {name}, region {region}: `kubeconfig` (path of the kubeconfig file) is missing"),
            ));
        };
        Ok(NamespaceRegion {
            kubeconfig: ctx.path(kubeconfig.get_ref()),
            context: r.context.map(Spanned::into_inner),
        })
    })?;
    if !regions.contains_key(home) {
        return Err(ctx.err(
            raw.home.span(),
            format!("target {name}: no [targets.{name}.regions.{home}] table with the kubeconfig of its home region"),
        ));
    }
    let page_size = match raw.page_size {
        None => DEFAULT_PAGE_SIZE,
        Some(v) => match u32::try_from(*v.get_ref()) {
            Ok(n) if PAGE_SIZES.contains(&n) => n,
            _ => {
                return Err(ctx.err(
                    v.span(),
                    format!(
                        "target {name}: page_size = {} is out of range: use {}..={} objects per list page (default {DEFAULT_PAGE_SIZE})",
                        v.get_ref(),
                        PAGE_SIZES.start(),
                        PAGE_SIZES.end()
                    ),
                ));
            }
        },
    };
    Ok(NamespaceTarget {
        namespace: namespace.into_inner(),
        include: raw.include.map(Spanned::into_inner).unwrap_or_default(),
        exclude: raw.exclude.map(Spanned::into_inner).unwrap_or_default(),
        label_selector: raw.label_selector.map(Spanned::into_inner),
        keep_last_applied: raw.keep_last_applied.is_some_and(|k| *k.get_ref()),
        page_size,
        regions,
    })
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
