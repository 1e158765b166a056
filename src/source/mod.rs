//! Sources: what drtool backs up and restores, one folder per kind of target.
//!
//! Each kind implements the engine's [`TargetKind`](crate::engine::kind::TargetKind)
//! in its folder: it produces a plaintext byte stream plus metadata for a
//! backup, plans and applies restores of its own payloads, and handles what it
//! keeps outside the bucket. Kinds talk to the engine through byte channels and
//! the job handle only, and never import each other.
//!
//! A kind's own failures are an enum in its folder (`rds::RdsError`,
//! `namespace::NamespaceError`) with the facts as fields: it implements
//! [`KindError`](crate::error::KindError), which says its class (and so the
//! exit code), and converts into `SourceError::Kind`; tests match its
//! variants through `kind_error::<E>()`, never the words.

pub mod etcd;
pub mod namespace;
pub mod rds;

use std::sync::Arc;

use crate::engine::kind::Registry;

/// Every kind this drtool knows: a new kind is a new folder and one line
/// here, plus (until issue #19 is done) the places `seam.rs` still counts.
pub fn registry() -> Registry {
    Registry::new(vec![
        Arc::new(etcd::EtcdKind::default()),
        Arc::new(namespace::NamespaceKind::default()),
        Arc::new(rds::RdsKind::default()),
    ])
}
