//! drtool: disaster-recovery and backup orchestration for etcd (and, later,
//! Kubernetes namespaces and RDS), writing zstd archives to S3 in several regions.
//!
//! The library holds everything; `main.rs` only dispatches to [`cli`]. The core
//! (engine, sources, archive, store, catalog) knows nothing about terminals.

pub mod archive;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod source;
pub mod store;

pub use error::{Error, ErrorClass, Result};
