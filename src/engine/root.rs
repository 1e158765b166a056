//! The [`Engine`] value: built once from the config, the registry of kinds and
//! the identities; caches region stores; hands out jobs on its event bus; owns
//! the token that cancels everything it runs.
//!
//! The operations themselves (backup, copy, verify, points, restore, delete,
//! reachability) are in their own files, as methods of this value.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::events::{EventBus, Job, JobEvent, JobSpec};
use super::kind::{Registry, TargetKind};
use super::point::{KindRead, PointData, PointRef};
use crate::archive::Manifest;
use crate::archive::pipeline::{Identities, WriteOptions};
use crate::archive::signing::{self, KeyError, ManifestSigner, SignatureCheck, TrustedKey};
use crate::catalog::{PointEntry, RegionStore};
use crate::config::{Config, KeySource, Region, Target};
use crate::error::{Error, SourceError};

/// What an engine is built with besides the config and the kinds.
#[derive(Clone, Default)]
pub struct EngineOptions {
    /// age identities to decrypt encrypted points (restore, verify).
    pub identities: Option<Arc<Identities>>,
}

pub struct Engine {
    config: Arc<Config>,
    kinds: Registry,
    identities: Option<Arc<Identities>>,
    signing: Arc<Signing>,
    bus: Arc<EventBus>,
    stores: Arc<tokio::sync::Mutex<HashMap<String, RegionStore>>>,
    cancel: CancellationToken,
    /// Regions a drill declared lost: nothing in them is contacted.
    lost: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    /// Regions with `object_lock` whose bucket was found to have Object Lock,
    /// and those where a written object was read back under retention: each
    /// checked once per run.
    protected: Arc<std::sync::Mutex<std::collections::BTreeSet<(String, bool)>>>,
}

/// Which regions and target a listing looks at (none = all).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub region: Option<String>,
    pub target: Option<String>,
}

/// The keys of `[signing]`, loaded.
#[derive(Default)]
struct Signing {
    /// The key new manifests are signed with; an error says why it cannot be
    /// used (only a backup needs it).
    signer: Option<Result<Arc<ManifestSigner>, KeyError>>,
    /// Keys whose signatures are trusted: the verify keys and the signer's own.
    trusted: Vec<TrustedKey>,
    /// Whether every point must be signed by a trusted key (verify keys set).
    required: bool,
}

impl Signing {
    fn load(config: &Config) -> Result<Signing, Error> {
        let Some(cfg) = &config.signing else {
            return Ok(Signing::default());
        };
        let mut trusted = Vec::new();
        for path in &cfg.verify_keys {
            trusted.push(TrustedKey::from_file(path).map_err(|e| {
                Error::input(format!(
                    "{e} (signing.verify_keys in {})",
                    config.path.display()
                ))
            })?);
        }
        let signer = cfg.key.as_ref().map(|source| {
            let loaded = match source {
                KeySource::File(path) => ManifestSigner::from_file(path),
                KeySource::Env(var) => match std::env::var(var) {
                    Ok(pem) => ManifestSigner::from_pem(&pem, &format!("${var}")),
                    Err(_) => Err(KeyError::EnvNotSet {
                        var: var.to_string(),
                    }),
                },
            };
            loaded.map(Arc::new)
        });
        if let Some(Ok(s)) = &signer {
            let own = s.trusted();
            if !trusted.iter().any(|k| k.fingerprint == own.fingerprint) {
                trusted.push(own);
            }
        }
        Ok(Signing {
            signer,
            required: !cfg.verify_keys.is_empty(),
            trusted,
        })
    }
}

impl Engine {
    /// Checks that every configured target's kind is registered and loads
    /// the keys of `[signing]`.
    pub fn new(config: Config, kinds: Registry, options: EngineOptions) -> Result<Engine, Error> {
        for t in config.targets.values() {
            kinds.get(t.spec.kind())?;
        }
        let signing = Signing::load(&config)?;
        Ok(Engine {
            config: Arc::new(config),
            kinds,
            identities: options.identities,
            signing: Arc::new(signing),
            bus: EventBus::new(),
            stores: Arc::new(tokio::sync::Mutex::new(HashMap::new())),
            cancel: CancellationToken::new(),
            lost: Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new())),
            protected: Arc::default(),
        })
    }

    /// The same engine (config, kinds, clients, event bus, lost regions) with
    /// a cancellation of its own: what runs on it is not cancelled with this
    /// one. A drill cleans up on a detached engine after an abort.
    pub fn detached(&self) -> Engine {
        Engine {
            config: self.config.clone(),
            kinds: self.kinds.clone(),
            identities: self.identities.clone(),
            signing: self.signing.clone(),
            bus: self.bus.clone(),
            stores: self.stores.clone(),
            cancel: CancellationToken::new(),
            lost: self.lost.clone(),
            protected: self.protected.clone(),
        }
    }

    /// The same engine with a cancellation that follows this one's (a
    /// SIGTERM stops it too) but can also be cancelled alone: one schedule
    /// run that times out stops without stopping the others.
    pub fn child(&self) -> Engine {
        let mut e = self.detached();
        e.cancel = self.cancel.child_token();
        e
    }

    pub(crate) fn mark_lost(&self, region: &str) {
        if let Ok(mut lost) = self.lost.lock() {
            lost.insert(region.to_string());
        }
    }

    pub(crate) fn mark_regained(&self, region: &str) {
        if let Ok(mut lost) = self.lost.lock() {
            lost.remove(region);
        }
    }

    /// The regions a drill declared lost.
    pub fn lost_regions(&self) -> Vec<String> {
        self.lost
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A region's store to write points to. With `object_lock`, the bucket is
    /// checked first (once per run): a bucket without Object Lock refuses the
    /// write before anything is written, never a silently unprotected point.
    pub async fn writable_store(&self, region: &str) -> Result<RegionStore, Error> {
        let rs = self.store(region).await?;
        if self.region(region)?.object_lock.is_none() || self.was_protected(region, false) {
            return Ok(rs);
        }
        rs.store.probe().await?;
        self.mark_protected(region, false);
        Ok(rs)
    }

    /// After a point's manifest is written: with `object_lock`, reads it back
    /// (once per run and region) and fails when the store kept no retention
    /// on it.
    pub async fn check_retention_took(&self, rs: &RegionStore, key: &str) -> Result<(), Error> {
        let Some(lock) = self.region(&rs.region)?.object_lock else {
            return Ok(());
        };
        if self.was_protected(&rs.region, true) {
            return Ok(());
        }
        let until = rs.store.retained_until(key).await?;
        let soon = chrono::Utc::now()
            + chrono::Duration::from_std(lock.retain / 2)
                .unwrap_or_else(|_| chrono::Duration::days(1));
        match until {
            Some(u) if u >= soon => {
                self.mark_protected(&rs.region, true);
                Ok(())
            }
            other => Err(crate::store::StoreError::Misconfigured {
                store: rs.store.describe(),
                detail: format!(
                    "{key} was written with Object Lock retention but the store keeps {}: the point exists, it is NOT immutable; \
                     check the bucket's Object Lock and versioning, or remove object_lock from region {}",
                    match other {
                        Some(u) => format!("it only until {}", u.format("%Y-%m-%d %H:%M UTC")),
                        None => "none on it".to_string(),
                    },
                    rs.region
                ),
            }
            .into()),
        }
    }

    fn was_protected(&self, region: &str, read_back: bool) -> bool {
        self.protected
            .lock()
            .map(|p| p.contains(&(region.to_string(), read_back)))
            .unwrap_or(false)
    }

    fn mark_protected(&self, region: &str, read_back: bool) {
        if let Ok(mut p) = self.protected.lock() {
            p.insert((region.to_string(), read_back));
        }
    }

    /// Refuses a region a drill declared lost.
    pub fn check_reachable(&self, region: &str) -> Result<(), Error> {
        let lost = self
            .lost
            .lock()
            .map(|l| l.contains(region))
            .unwrap_or(false);
        if lost {
            return Err(crate::store::StoreError::Unreachable {
                store: format!("region {region}"),
                detail: "the drill declared this region lost: drtool contacts nothing in it".into(),
            }
            .into());
        }
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The keys whose signatures are trusted (verify keys and the signer's own).
    pub fn trusted_keys(&self) -> &[TrustedKey] {
        &self.signing.trusted
    }

    /// Whether this config signs or requires signatures: then an unsigned
    /// report is not to be trusted.
    pub fn signatures_expected(&self) -> bool {
        self.signing.required || self.signing.signer.is_some()
    }

    pub fn kinds(&self) -> &Registry {
        &self.kinds
    }

    /// A new consumer of every job event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.bus.subscribe()
    }

    /// Cancels everything running and everything started later.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    pub(crate) fn identities(&self) -> Option<Arc<Identities>> {
        self.identities.clone()
    }

    /// The key new manifests are signed with, if one is configured.
    pub(crate) fn signer(&self) -> Result<Option<Arc<ManifestSigner>>, Error> {
        match &self.signing.signer {
            None => Ok(None),
            Some(Ok(s)) => Ok(Some(s.clone())),
            Some(Err(e)) => Err(Error::input(e)),
        }
    }

    /// Checks a point's signature: the key that signed it when a trusted one
    /// did; an integrity error when the signature does not match, or when
    /// verify keys are configured and no trusted key signed it.
    pub fn check_signature(&self, m: &Manifest, region: &str) -> Result<Option<String>, Error> {
        let refused = |detail: String| {
            Err(Error::from(SourceError::Integrity {
                what: format!("point {} of {} in region {region}", m.point_id, m.target),
                detail,
            }))
        };
        let trusted: Vec<&str> = self
            .signing
            .trusted
            .iter()
            .map(|k| k.fingerprint.as_str())
            .collect();
        match signing::check(m, &self.signing.trusted) {
            SignatureCheck::Valid(key) => Ok(Some(key)),
            SignatureCheck::Mismatch(key) => refused(format!(
                "its manifest does not match the signature by key {key}: it was changed after it was signed (forged or damaged); do not restore it"
            )),
            SignatureCheck::Unsigned if self.signing.required => refused(format!(
                "it is not signed, and [signing] verify_keys requires a signature by one of {}",
                trusted.join(", ")
            )),
            SignatureCheck::UnknownKey(key) if self.signing.required => refused(format!(
                "it is signed by key {key}, which is not one of the trusted keys ({})",
                trusted.join(", ")
            )),
            SignatureCheck::Unsigned | SignatureCheck::UnknownKey(_) => Ok(None),
        }
    }

    /// A root job, cancelled with the engine.
    pub(crate) fn job(&self, spec: JobSpec) -> Job {
        self.bus.start(spec.cancel(&self.cancel), None)
    }

    pub fn target(&self, name: &str) -> Result<&Target, Error> {
        self.config.target(name).ok_or_else(|| {
            Error::input(format!(
                "unknown target {name:?}: the config {} defines {}",
                self.config.path.display(),
                self.config
                    .targets
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// The options of a restore of `target`, read by its kind (see
    /// [`Registry::restore_options`]).
    pub fn restore_options(
        &self,
        target: &str,
        existing: Option<super::Existing>,
        flags: &super::kind::FlagValues,
    ) -> Result<super::RestoreOptions, Error> {
        let t = self.target(target)?;
        self.kinds
            .restore_options((&t.name, t.spec.kind()), existing, flags)
    }

    pub fn region(&self, name: &str) -> Result<&Region, Error> {
        self.config.region(name).ok_or_else(|| {
            Error::input(format!(
                "unknown region {name:?}: the config {} defines {}",
                self.config.path.display(),
                self.config
                    .regions
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    pub(crate) fn kind_of(&self, target: &Target) -> Result<Arc<dyn TargetKind>, Error> {
        self.kinds.get(target.spec.kind()).cloned()
    }

    pub(crate) fn kind_named(&self, name: &str) -> Result<Arc<dyn TargetKind>, Error> {
        self.kinds.get(name).cloned()
    }

    /// The reference of a listed point, its payload described by its kind.
    pub(crate) fn point_ref(&self, rs: &RegionStore, entry: &PointEntry) -> PointRef {
        let m = &entry.manifest;
        let consistent = self.kinds.consistent(&m.consistency);
        let read = KindRead {
            payload_text: self.kinds.describe_payload(&m.payload),
            consistent_at: consistent.as_ref().map(|c| c.at),
            consistency_text: consistent
                .map_or_else(|| m.consistency.as_json().to_string(), |c| c.text),
        };
        PointRef::from_entry(rs, entry, read)
    }

    /// A reader of a point's data, cutting off the trailing sha256 where
    /// its kind's payload has one.
    pub(crate) fn point_data(&self, rs: &RegionStore, point: PointRef, job: &Job) -> PointData {
        let trailing = self.kinds.trailing_sha256(&point.payload);
        PointData::new(
            rs.store.clone(),
            trailing,
            point,
            self.identities(),
            job.clone(),
        )
    }

    /// The store of a region, built once.
    pub async fn store(&self, region: &str) -> Result<RegionStore, Error> {
        self.check_reachable(region)?;
        let mut stores = self.stores.lock().await;
        if let Some(rs) = stores.get(region) {
            return Ok(rs.clone());
        }
        let rs = RegionStore::open(self.region(region)?).await;
        stores.insert(region.to_string(), rs.clone());
        Ok(rs)
    }

    /// The pipeline settings of the config.
    pub(crate) fn write_options(&self, trailing_sha256: bool) -> WriteOptions {
        let cfg = &self.config;
        WriteOptions {
            level: cfg.defaults.compression_level,
            adapt: cfg.defaults.compression_adapt,
            threads: cfg.defaults.compression_threads,
            part_size: cfg.defaults.part_size,
            parts_in_flight: cfg.defaults.parts_in_flight,
            recipients: cfg
                .encryption
                .as_ref()
                .map(|e| e.recipients.clone())
                .unwrap_or_default(),
            trailing_sha256,
        }
    }

    /// Checks a scope's names against the config.
    pub fn check_scope(&self, scope: &Scope) -> Result<(), Error> {
        if let Some(t) = &scope.target {
            self.target(t)?;
        }
        if let Some(r) = &scope.region {
            self.region(r)?;
        }
        Ok(())
    }

    /// The regions in scope, in config order.
    pub(crate) fn scoped_regions(&self, scope: &Scope) -> Vec<String> {
        self.config
            .regions
            .keys()
            .filter(|r| scope.region.as_ref().is_none_or(|name| name == *r))
            .cloned()
            .collect()
    }
}
