//! The archive format: point ids, the object key layout, the manifest and the
//! streaming pipeline (sha256 -> zstd -> age -> multipart upload, and back).
//!
//! Every object key is built in [`layout`]; no other module formats keys. This
//! module knows nothing about sources or terminals.

pub mod adapt;
pub mod digest;
pub mod layout;
pub mod manifest;
pub mod pipeline;
pub mod point;
pub mod segment;
pub mod signing;

pub use digest::PlainDigest;
pub use layout::Layout;
pub use manifest::{Consistency, Manifest, PayloadKind};
pub use point::PointId;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("invalid point id {0:?}: expected YYYYMMDDTHHMMSSZ-xxxxxxxx")]
    BadPointId(String),
    #[error("manifest {key}: {detail}")]
    BadManifest { key: String, detail: String },
    #[error("{what} for {key}: expected {expected}, found {found}")]
    Mismatch {
        key: String,
        what: &'static str,
        expected: String,
        found: String,
    },
    #[error("cannot decode {key}: {detail}")]
    Decode { key: String, detail: String },
    /// Reading the stored bytes broke off (a reset connection, a store error).
    #[error("reading {key} broke off: {detail}; the store may be unreachable, try again")]
    Read { key: String, detail: String },
    /// The data object a manifest names is not in the store.
    #[error(
        "{store}: the data object {key} of this point is missing although its manifest exists: the point is damaged; restore another point or copy it again from another region"
    )]
    Missing { key: String, store: String },
    #[error(
        "point {key} is encrypted with age: pass --identity FILE with a matching identity (age-keygen format)"
    )]
    NeedsIdentity { key: String },
    #[error(
        "cannot decrypt {key}: {detail}. Check that --identity matches one of the point's recipients."
    )]
    Decrypt { key: String, detail: String },
    #[error("cannot read identity file {path}: {detail}")]
    Identity { path: String, detail: String },
    #[error("{key}: cancelled before it was complete; nothing was left behind")]
    Cancelled { key: String },
    /// A download's consumer stopped reading (it failed or was cancelled).
    #[error("{key}: the consumer of the data stopped reading")]
    ConsumerStopped { key: String },
    #[error("pipeline for {key} failed: {detail}")]
    Pipeline { key: String, detail: String },
}
