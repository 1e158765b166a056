//! Sources: what drtool backs up and restores. One module per kind; they never
//! import each other. Each produces a plaintext byte stream plus metadata for a
//! backup, and knows how to plan and apply a restore of its own payloads.

pub mod etcd;
pub mod kube;
pub mod rds;

use crate::error::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "cannot reach {what} at {endpoints}: {detail}. Check that it is up and the endpoints in the config are right."
    )]
    Unreachable {
        what: String,
        endpoints: String,
        detail: String,
    },
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
    #[error("{what}: {detail}")]
    Integrity { what: String, detail: String },
    #[error("{0}")]
    Input(String),
}

impl SourceError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::Unreachable { .. } => ErrorClass::Unreachable,
            SourceError::Failed { .. } => ErrorClass::Failed,
            SourceError::Integrity { .. } => ErrorClass::Integrity,
            SourceError::Input(_) => ErrorClass::BadInput,
        }
    }
}
