//! Plans and jobs: backup, copy, restore, verify. The engine drives sources,
//! the archive pipeline, stores and the catalog, and reports progress as typed
//! events. It never prints: results go back to the caller (CLI, TUI, scheduler).

pub mod backup;
pub mod copy;
pub mod probe;
pub mod progress;
pub mod restore;
pub mod retention;
pub mod verify;

use serde::Serialize;

pub use progress::{Job, JobEvent, JobEventKind, JobId, Jobs, NoProgress, Progress};

use crate::archive::pipeline::WriteOptions;
use crate::config::Config;
use crate::error::{Error, ErrorClass};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Warning,
    Failed,
}

/// One thing a run did (or failed to do) for one target in one region.
#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    pub target: String,
    pub region: String,
    pub action: String,
    pub point: Option<String>,
    pub outcome: Outcome,
    pub message: String,
    #[serde(skip)]
    pub class: Option<ErrorClass>,
}

impl ItemResult {
    pub fn ok(
        target: &str,
        region: &str,
        action: &str,
        point: Option<String>,
        message: String,
    ) -> Self {
        ItemResult {
            target: target.into(),
            region: region.into(),
            action: action.into(),
            point,
            outcome: Outcome::Ok,
            message,
            class: None,
        }
    }

    pub fn failed(
        target: &str,
        region: &str,
        action: &str,
        point: Option<String>,
        err: &Error,
    ) -> Self {
        ItemResult {
            target: target.into(),
            region: region.into(),
            action: action.into(),
            point,
            outcome: Outcome::Failed,
            message: err.to_string(),
            class: Some(err.class()),
        }
    }
}

/// The pipeline settings from the config.
pub fn write_options(cfg: &Config) -> WriteOptions {
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
        trailing_sha256: false,
    }
}
