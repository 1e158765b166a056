//! Sources: what drtool backs up and restores, one folder per kind of target.
//!
//! Each kind implements the engine's [`TargetKind`](crate::engine::kind::TargetKind)
//! in its folder: it produces a plaintext byte stream plus metadata for a
//! backup, plans and applies restores of its own payloads, and handles what it
//! keeps outside the bucket. Kinds talk to the engine through byte channels and
//! the job handle only, and never import each other.

pub mod etcd;
pub mod namespace;
pub mod rds;

use std::sync::Arc;

use crate::engine::kind::Registry;

/// Every kind this drtool knows. A new kind is a new folder and one line here.
pub fn registry() -> Registry {
    Registry::new(vec![
        Arc::new(etcd::EtcdKind::default()),
        Arc::new(namespace::NamespaceKind::default()),
        Arc::new(rds::RdsKind::default()),
    ])
}
