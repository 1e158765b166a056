//! drtool: disaster-recovery and backup orchestration for etcd clusters,
//! Kubernetes namespaces and AWS RDS instances, writing zstd archives to S3 in
//! several regions and restoring them in another region during an outage.
//!
//! The library holds everything; `main.rs` only dispatches to [`cli`]. Layers,
//! lowest first: `config`, `store`, `archive`, `error`, `catalog`, `engine`
//! (the [`engine::Engine`] value and the [`engine::kind::TargetKind`] interface),
//! `source` (one folder per kind, registered in [`source::registry`]),
//! `drill` (failover drills over the engine) and `report` (their reports),
//! and the faces (`cli`, and `tui`, the dashboard). The core knows nothing
//! about terminals.

pub mod archive;
pub mod bbolt;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod drill;
pub mod engine;
pub mod error;
pub mod exit;
#[cfg(test)]
mod fn_length;
#[cfg(test)]
mod layering;
pub mod report;
pub mod schedule;
#[cfg(test)]
mod seam;
pub mod source;
pub mod store;
pub mod tui;
pub mod units;

pub use error::{Error, ErrorClass, Result};
