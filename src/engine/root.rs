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
use crate::archive::pipeline::{Identities, WriteOptions};
use crate::catalog::RegionStore;
use crate::config::{Config, Region, Target};
use crate::error::Error;

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
    bus: Arc<EventBus>,
    stores: tokio::sync::Mutex<HashMap<String, RegionStore>>,
    cancel: CancellationToken,
}

/// Which regions and target a listing looks at (none = all).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub region: Option<String>,
    pub target: Option<String>,
}

impl Engine {
    /// Checks that every configured target's kind is registered.
    pub fn new(config: Config, kinds: Registry, options: EngineOptions) -> Result<Engine, Error> {
        for t in config.targets.values() {
            kinds.get(t.spec.kind())?;
        }
        Ok(Engine {
            config: Arc::new(config),
            kinds,
            identities: options.identities,
            bus: EventBus::new(),
            stores: tokio::sync::Mutex::new(HashMap::new()),
            cancel: CancellationToken::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
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

    /// The store of a region, built once.
    pub async fn store(&self, region: &str) -> Result<RegionStore, Error> {
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
