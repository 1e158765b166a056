//! `drtool.toml`: regions, their stores, targets and pipeline defaults.
//!
//! Parsing is strict: unknown fields, bad URLs, unknown region references and
//! duplicate names are errors that name the file, the line and the value. An
//! invalid config is never replaced by defaults. This module does no network I/O;
//! probing endpoints belongs to the engine.

mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use raw::parse_str;

/// Where a config problem is, as `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read config {}: {source}. Pass --config PATH or set DRTOOL_CONFIG.",
        path.display()
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{location}: {message}")]
    Invalid { location: Location, message: String },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub defaults: Defaults,
    pub encryption: Option<Encryption>,
    pub regions: BTreeMap<String, Region>,
    pub targets: BTreeMap<String, Target>,
}

/// Pipeline settings shared by every backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// zstd level, 1..=19.
    pub compression_level: i32,
    /// zstd worker threads; 0 means one per core.
    pub compression_threads: u32,
    /// Multipart part size in bytes.
    pub part_size: usize,
    /// Parts uploaded concurrently.
    pub parts_in_flight: usize,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            compression_level: 3,
            compression_threads: 0,
            part_size: 8 * 1024 * 1024,
            parts_in_flight: 4,
        }
    }
}

/// age recipients every new point is encrypted to.
#[derive(Debug, Clone)]
pub struct Encryption {
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    pub store: StoreUrl,
    /// Endpoint override for S3-compatible stores.
    pub endpoint: Option<String>,
    pub path_style: bool,
    /// The signing region; defaults to the region's name.
    pub s3_region: String,
    /// AWS profile to take credentials from; the standard chain otherwise.
    pub profile: Option<String>,
}

/// Where a region keeps its recovery points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    S3 { bucket: String, prefix: String },
    File { root: PathBuf, prefix: String },
}

impl StoreUrl {
    pub fn prefix(&self) -> &str {
        match self {
            StoreUrl::S3 { prefix, .. } | StoreUrl::File { prefix, .. } => prefix,
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            StoreUrl::File { root, .. } => write!(f, "file://{}", root.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// The region backups land in first.
    pub home: String,
    /// Regions every new point is copied to.
    pub copy_to: Vec<String>,
    pub spec: TargetSpec,
}

#[derive(Debug, Clone)]
pub enum TargetSpec {
    Etcd(EtcdTarget),
    Rds(RdsTarget),
    Namespace(NamespaceTarget),
}

impl TargetSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            TargetSpec::Etcd(_) => "etcd",
            TargetSpec::Rds(_) => "rds",
            TargetSpec::Namespace(_) => "namespace",
        }
    }
}

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
    pub regions: BTreeMap<String, KubeRegion>,
}

#[derive(Debug, Clone)]
pub struct KubeRegion {
    pub kubeconfig: PathBuf,
    /// The kubeconfig context; its current context when absent.
    pub context: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdsMode {
    /// A native RDS snapshot, copied to the DR regions.
    Snapshot,
    /// A `pg_dump --format=custom` streamed into the archive pipeline.
    Dump,
    /// Both, in one recovery point.
    Both,
}

impl RdsMode {
    pub fn name(self) -> &'static str {
        match self {
            RdsMode::Snapshot => "snapshot",
            RdsMode::Dump => "dump",
            RdsMode::Both => "both",
        }
    }

    pub fn snapshots(self) -> bool {
        matches!(self, RdsMode::Snapshot | RdsMode::Both)
    }

    pub fn dumps(self) -> bool {
        matches!(self, RdsMode::Dump | RdsMode::Both)
    }
}

#[derive(Debug, Clone)]
pub struct RdsTarget {
    pub mode: RdsMode,
    /// The DB instance identifier in the home region.
    pub instance: String,
    pub regions: BTreeMap<String, RdsRegion>,
}

#[derive(Debug, Clone)]
pub struct RdsRegion {
    /// RDS API endpoint override (e.g. the lab's moto server).
    pub endpoint: Option<String>,
    /// KMS key for snapshot copies into this region.
    pub kms_key: Option<String>,
    /// Instance class and subnet group for restores in this region.
    pub instance_class: Option<String>,
    pub subnet_group: Option<String>,
    /// Name of restored instances; `{instance}` and `{point}` are replaced.
    pub restore_identifier: String,
    /// The database: the dump source in the home region, the restore target elsewhere.
    pub database: Option<DbConn>,
}

impl Default for RdsRegion {
    fn default() -> Self {
        RdsRegion {
            endpoint: None,
            kms_key: None,
            instance_class: None,
            subnet_group: None,
            restore_identifier: "{instance}-{point}".to_string(),
            database: None,
        }
    }
}

/// How to reach a PostgreSQL database. The password is never in the config.
#[derive(Debug, Clone)]
pub struct DbConn {
    /// Host override; the instance's endpoint when absent.
    pub host: Option<String>,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: PasswordSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// The name of an environment variable holding the password.
    Env(String),
    /// A file whose first line is the password.
    File(PathBuf),
    /// No password (trust, .pgpass or PGPASSWORD of the caller).
    None,
}

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
}

#[derive(Debug, Clone)]
pub struct EtcdRegion {
    pub endpoints: Vec<String>,
    pub tls: Option<TlsFiles>,
    /// The members a snapshot restore materializes data dirs for.
    pub members: Vec<EtcdMember>,
    pub cluster_token: String,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct EtcdMember {
    pub name: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        parse_str(&text, path)
    }

    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.get(name)
    }

    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.get(name)
    }
}

impl Target {
    /// Every region this target's points should live in, home first.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.home.as_str()).chain(self.copy_to.iter().map(String::as_str))
    }
}
