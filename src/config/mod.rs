//! `drtool.toml`: regions, their stores, targets and pipeline defaults.
//!
//! Parsing is strict: unknown fields, bad URLs, unknown region references and
//! duplicate names are errors that name the file, the line and the value. An
//! invalid config is never replaced by defaults. This module does no network I/O;
//! probing endpoints belongs to the engine.
//!
//! What every target has is read here; each kind's own fields are read by
//! its section (`source/<kind>/config.rs`), which the kinds' registry passes
//! in. `raw.rs` holds the TOML shape and the helpers sections use.

pub mod duration;
mod parse;
pub mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use parse::parse_str;

/// Where a config problem is, as `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// Where byte `offset` of `text` (the file `file`) is.
    pub fn of(file: &Path, text: &str, offset: usize) -> Location {
        let upto = &text[..offset.min(text.len())];
        let line = upto.matches('\n').count() + 1;
        let column = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location {
            file: file.to_path_buf(),
            line,
            column,
        }
    }
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
    pub signing: Option<Signing>,
    pub regions: BTreeMap<String, Region>,
    pub targets: BTreeMap<String, Target>,
}

/// Pipeline settings shared by every backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// zstd level, 1..=19 (with `compression_adapt`, the highest used).
    pub compression_level: i32,
    /// Lower the level while compression is what a backup waits on.
    pub compression_adapt: bool,
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
            compression_adapt: true,
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

/// Where the ed25519 keys that sign and check manifests are (PEM: PKCS#8
/// private keys, SubjectPublicKeyInfo public keys, as `openssl genpkey
/// -algorithm ed25519` and `openssl pkey -pubout` write them). Loaded by the
/// engine, not here: this module reads no files but the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signing {
    /// The private key new manifests are signed with.
    pub key: Option<KeySource>,
    /// Public keys a point must be signed by to be verified or restored.
    pub verify_keys: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    /// The PEM text itself is in this environment variable.
    Env(String),
}

/// S3 Object Lock retention put on every object of a recovery point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLock {
    pub mode: LockMode,
    pub retain: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` can still delete.
    Governance,
    /// Nobody can delete or shorten it until it expires, not even the root user.
    Compliance,
}

impl LockMode {
    pub fn name(self) -> &'static str {
        match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        }
    }
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
    /// Retention for the objects of every point written here (s3:// only).
    pub object_lock: Option<ObjectLock>,
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
    /// Free labels (`labels = { tier = "prod" }`): schedules select targets by them.
    pub labels: BTreeMap<String, String>,
    pub spec: TargetSpec,
}

/// A kind's section of `drtool.toml`: its `kind = "..."` and how it reads
/// its targets' tables (name -> home region, the known regions); each kind
/// has its own (`source/<kind>/config.rs`) and the registry lists them.
pub type Section = (&'static str, ParseSection);

pub type ParseSection = fn(
    &raw::Ctx,
    &BTreeMap<String, String>,
    &std::collections::BTreeSet<String>,
) -> Result<BTreeMap<String, TargetSpec>, ConfigError>;

/// A target's own section, as its kind parsed it (the kind reads it back
/// with [`TargetSpec::get`]).
pub trait KindSpec: std::fmt::Debug + Send + Sync + std::any::Any {
    /// The `kind = "..."` it was parsed for.
    fn kind(&self) -> &'static str;
}

#[derive(Debug, Clone)]
pub struct TargetSpec(std::sync::Arc<dyn KindSpec>);

impl TargetSpec {
    pub fn new<T: KindSpec>(spec: T) -> TargetSpec {
        TargetSpec(std::sync::Arc::new(spec))
    }

    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    /// The section as its kind's type; none for a target of another kind.
    pub fn get<T: KindSpec>(&self) -> Option<&T> {
        let any: &dyn std::any::Any = self.0.as_ref();
        any.downcast_ref()
    }
}

impl Config {
    /// Reads and validates a config file, each target through its kind's
    /// section (`crate::source::load_config` passes every kind's).
    pub fn load(path: &Path, sections: &[Section]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        parse_str(&text, path, sections)
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
