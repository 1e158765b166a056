//! The `kind = "etcd"` section of `drtool.toml`: an etcd cluster per region,
//! reached through its client endpoints (TLS optional), with the members a
//! snapshot restore materializes data dirs for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::ConfigError;
use crate::config::duration::{parse_bounded, parse_size_bounded};
use crate::config::raw::{Ctx, check_url, kind_tables, mode, regions, target_table};
use crate::engine::stream::StreamSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdMode {
    /// The Maintenance Snapshot RPC: the exact `etcdctl snapshot save` file.
    Snapshot,
    /// The keyspace (or a prefix) at one revision, as JSON Lines.
    Keys,
}

#[derive(Debug, Clone)]
pub struct EtcdTarget {
    pub mode: EtcdMode,
    /// Only keys under this prefix (keys mode).
    pub prefix: Option<String>,
    /// Per region: how to reach the cluster there.
    pub regions: BTreeMap<String, EtcdRegion>,
    /// A continuous stream between points (`continuous = { ... }`).
    pub continuous: Option<StreamSettings>,
}

impl crate::config::KindSpec for EtcdTarget {
    fn kind(&self) -> &'static str {
        "etcd"
    }
}

#[derive(Debug, Clone)]
pub struct EtcdRegion {
    pub endpoints: Vec<String>,
    pub tls: Option<TlsFiles>,
    /// The members a snapshot restore materializes data dirs for.
    pub members: Vec<EtcdMember>,
    pub cluster_token: String,
    /// The cluster's `--max-request-bytes`: keys restores keep every
    /// transaction under it.
    pub max_request_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdMember {
    pub name: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
}

target_table!(
    /// `[targets.NAME]` of kind etcd.
    RawEtcdTable {
        mode: Option<Spanned<String>>,
        prefix: Option<Spanned<String>>,
        #[serde(default)]
        regions: BTreeMap<Spanned<String>, Spanned<RawEtcdRegion>>,
        continuous: Option<Spanned<RawContinuous>>,
    }
);

/// `continuous = { segment = "1s", max_segment = "8MiB" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContinuous {
    segment: Option<Spanned<String>>,
    max_segment: Option<Spanned<String>>,
}

/// How often a stream writes a segment while changes come in, by default,
/// and the bounds of `segment`.
pub const DEFAULT_SEGMENT: Duration = Duration::from_secs(1);
const SEGMENT_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(600));
/// The default and bounds of `max_segment`: well under etcd's and gRPC's
/// message limits, and under the size a segment is read back at.
pub const DEFAULT_MAX_SEGMENT: u64 = 8 << 20;
const MAX_SEGMENT_RANGE: (u64, u64) = (64 << 10, 64 << 20);

/// `[targets.NAME.regions.REGION]` of kind etcd.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEtcdRegion {
    endpoints: Option<Spanned<Vec<Spanned<String>>>>,
    tls: Option<Spanned<RawTls>>,
    members: Option<Spanned<Vec<RawMember>>>,
    cluster_token: Option<Spanned<String>>,
    max_request_bytes: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) ca: Option<Spanned<String>>,
    pub(super) cert: Option<Spanned<String>>,
    pub(super) key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMember {
    pub(super) name: Spanned<String>,
    pub(super) peer_url: Spanned<String>,
    pub(super) data_dir: Spanned<String>,
}

/// Reads the tables of every target of this kind (`homes`: name -> home).
pub fn parse_all(
    ctx: &Ctx,
    homes: &BTreeMap<String, String>,
    known: &BTreeSet<String>,
) -> Result<BTreeMap<String, crate::config::TargetSpec>, ConfigError> {
    kind_tables::<RawEtcdTable, _>(ctx, "etcd", homes, known, parse)
}

pub(super) fn parse(
    ctx: &Ctx,
    name: &str,
    raw: RawEtcdTable,
    known: &BTreeSet<String>,
    home: &str,
) -> Result<EtcdTarget, ConfigError> {
    let mode = mode(
        ctx,
        name,
        &raw.mode,
        &[("snapshot", EtcdMode::Snapshot), ("keys", EtcdMode::Keys)],
    )?;
    if let (EtcdMode::Snapshot, Some(p)) = (mode, &raw.prefix) {
        return Err(ctx.err(
            p.span(),
            format!(
                "target {name}: `prefix` only applies to mode = \"keys\" (a snapshot always holds the whole keyspace)"
            ),
        ));
    }
    let regions = regions(ctx, name, raw.regions, known, |region, r| {
        etcd_region(ctx, name, region, r)
    })?;
    if !regions.contains_key(home) {
        return Err(ctx.err(
            raw.home.span(),
            format!(
                "target {name}: no [targets.{name}.regions.{home}] table with the endpoints of its home region"
            ),
        ));
    }
    let continuous = match raw.continuous {
        None => None,
        Some(c) => Some(continuous(ctx, name, c)?),
    };
    Ok(EtcdTarget {
        mode,
        prefix: raw.prefix.map(Spanned::into_inner),
        regions,
        continuous,
    })
}

fn continuous(
    ctx: &Ctx,
    name: &str,
    raw: Spanned<RawContinuous>,
) -> Result<StreamSettings, ConfigError> {
    let raw = raw.into_inner();
    let segment = match raw.segment {
        None => DEFAULT_SEGMENT,
        Some(s) => parse_bounded(s.get_ref(), SEGMENT_RANGE.0, SEGMENT_RANGE.1)
            .map_err(|e| ctx.err(s.span(), format!("target {name}: continuous.segment {e}")))?,
    };
    let max_segment = match raw.max_segment {
        None => DEFAULT_MAX_SEGMENT,
        Some(s) => parse_size_bounded(s.get_ref(), MAX_SEGMENT_RANGE.0, MAX_SEGMENT_RANGE.1)
            .map_err(|e| {
                ctx.err(
                    s.span(),
                    format!("target {name}: continuous.max_segment {e}"),
                )
            })?,
    };
    Ok(StreamSettings {
        segment,
        max_segment,
    })
}

fn etcd_region(
    ctx: &Ctx,
    target: &str,
    region: &str,
    raw: Spanned<RawEtcdRegion>,
) -> Result<EtcdRegion, ConfigError> {
    let table = raw.span();
    let raw = raw.into_inner();
    let Some(raw_endpoints) = raw.endpoints else {
        return Err(ctx.err(
            table,
            format!("target {target}, region {region}: `endpoints` is missing (the etcd client URLs there)"),
        ));
    };
    if raw_endpoints.get_ref().is_empty() {
        return Err(ctx.err(
            raw_endpoints.span(),
            format!("target {target}, region {region}: endpoints is empty"),
        ));
    }
    let mut endpoints = Vec::new();
    for e in raw_endpoints.into_inner() {
        check_url(ctx, &e, target, region, "endpoint")?;
        endpoints.push(e.into_inner());
    }
    let tls = raw
        .tls
        .map(|t| tls(ctx, target, region, t.into_inner()))
        .transpose()?;
    let mut members = Vec::new();
    let mut names = BTreeSet::new();
    for m in raw.members.map(Spanned::into_inner).unwrap_or_default() {
        check_url(ctx, &m.peer_url, target, region, "peer_url")?;
        if !names.insert(m.name.get_ref().clone()) {
            return Err(ctx.err(
                m.name.span(),
                format!(
                    "target {target}, region {region}: duplicate member name {:?}",
                    m.name.get_ref()
                ),
            ));
        }
        members.push(EtcdMember {
            name: m.name.into_inner(),
            peer_url: m.peer_url.into_inner(),
            data_dir: ctx.path(m.data_dir.get_ref()),
        });
    }
    Ok(EtcdRegion {
        endpoints,
        tls,
        members,
        cluster_token: raw
            .cluster_token
            .map(Spanned::into_inner)
            .unwrap_or_else(|| format!("drtool-{target}-{region}")),
        max_request_bytes: match raw.max_request_bytes {
            None => DEFAULT_MAX_REQUEST_BYTES,
            Some(v) if (65_536..=(2i64 << 30)).contains(v.get_ref()) => *v.get_ref() as u64,
            Some(v) => {
                return Err(ctx.err(
                    v.span(),
                    format!(
                        "target {target}, region {region}: max_request_bytes = {} is out of range: \
                         use the cluster's --max-request-bytes, 65536..=2147483648 (etcd's default is {DEFAULT_MAX_REQUEST_BYTES})",
                        v.get_ref()
                    ),
                ));
            }
        },
    })
}

/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1_572_864;

fn tls(ctx: &Ctx, target: &str, region: &str, raw: RawTls) -> Result<TlsFiles, ConfigError> {
    let file = |v: &Option<Spanned<String>>, what: &str| -> Result<Option<PathBuf>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let p = ctx.path(v.get_ref());
        if p.is_file() {
            Ok(Some(p))
        } else {
            Err(ctx.err(
                v.span(),
                format!(
                    "target {target}, region {region}: tls.{what} file {} does not exist",
                    p.display()
                ),
            ))
        }
    };
    let files = TlsFiles {
        ca: file(&raw.ca, "ca")?,
        cert: file(&raw.cert, "cert")?,
        key: file(&raw.key, "key")?,
    };
    if files.cert.is_some() != files.key.is_some() {
        let span = raw
            .cert
            .as_ref()
            .or(raw.key.as_ref())
            .map_or(0..0, Spanned::span);
        return Err(ctx.err(
            span,
            format!("target {target}, region {region}: tls needs both `cert` and `key` for a client certificate"),
        ));
    }
    Ok(files)
}
