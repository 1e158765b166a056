//! The library's error type, the errors sources raise, and the classes that
//! decide exit codes.
//!
//! Every error says what failed, on which target/region/key, and what to do next.
//! The class tells the front end which exit code to use and the scheduler whether
//! a retry can help; it never depends on the wording of a message.
//!
//! This module sits above `config`, `store` and `archive` (it wraps their error
//! types and classifies them here, so they need not know about classes) and
//! below everything else.

use std::fmt;

use serde::Serialize;

use crate::archive::ArchiveError;
use crate::config::ConfigError;
use crate::store::StoreError;

/// Kept in `store` (the lowest layer that needs it); errors say it everywhere.
pub use crate::store::os_words;

/// What kind of failure an error is; front ends map it to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// The config, an argument or an archive given to us is wrong: fix the input.
    BadInput,
    /// A store or endpoint could not be reached: worth retrying later.
    Unreachable,
    /// Data did not match its recorded checksum or could not be decoded.
    Integrity,
    /// A destructive step was not confirmed.
    NotConfirmed,
    /// A restore refused by its existing-policy (`--existing fail` found
    /// data there): choose skip or overwrite, or restore elsewhere.
    Exists,
    /// The run was cancelled (Ctrl-C, SIGTERM, or a front end's abort).
    Cancelled,
    /// Anything else that failed.
    Failed,
}

impl ErrorClass {
    /// Every class.
    pub const ALL: [ErrorClass; 7] = [
        ErrorClass::BadInput,
        ErrorClass::Unreachable,
        ErrorClass::Integrity,
        ErrorClass::NotConfirmed,
        ErrorClass::Exists,
        ErrorClass::Cancelled,
        ErrorClass::Failed,
    ];

    /// Its name in JSON and logs (`bad-input`, `unreachable`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::BadInput => "bad-input",
            ErrorClass::Unreachable => "unreachable",
            ErrorClass::Integrity => "integrity",
            ErrorClass::NotConfirmed => "not-confirmed",
            ErrorClass::Exists => "exists",
            ErrorClass::Cancelled => "cancelled",
            ErrorClass::Failed => "failed",
        }
    }

    /// Whether trying again later may succeed without changing anything.
    pub fn retryable(self) -> bool {
        matches!(self, ErrorClass::Unreachable)
    }
}

/// An error a kind of target defines for itself, with its facts as fields
/// (`source::rds::RdsError`, ...): the kind says which class it is; tests
/// match its variants through [`SourceError::kind_error`].
pub trait KindError: std::error::Error + Send + Sync + 'static {
    fn class(&self) -> ErrorClass;
}

/// `From` a kind's error into [`SourceError::Kind`] and [`Error`], so `?`
/// carries it either way: `crate::error::kind_error_from!(RdsError);`.
macro_rules! kind_error_from {
    ($kind:ty) => {
        impl From<$kind> for $crate::error::SourceError {
            fn from(e: $kind) -> $crate::error::SourceError {
                $crate::error::SourceError::Kind(Box::new(e))
            }
        }

        impl From<$kind> for $crate::error::Error {
            fn from(e: $kind) -> $crate::error::Error {
                $crate::error::Error::Source(e.into())
            }
        }
    };
}
pub(crate) use kind_error_from;

/// What a source (etcd, a Kubernetes API, RDS, PostgreSQL) reported.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// In the kind's own terms.
    #[error("{0}")]
    Kind(Box<dyn KindError>),
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
    /// The other end of a byte channel went away (the archive pipeline or a
    /// download stopped): whoever stopped it has the real reason.
    #[error("{0}: the other end of the data stream stopped")]
    Stopped(String),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Bad command-line input (an unknown target, region or point, ...).
    #[error("{0}")]
    Input(String),
    /// A destructive plan was not confirmed.
    #[error("{0}")]
    NotConfirmed(String),
    /// What the restore would write exists and the policy says fail.
    #[error("{0}")]
    Exists(String),
    /// The run was cancelled; the message says what was left behind, if anything.
    #[error("{0}")]
    Cancelled(String),
    #[error("{0}")]
    Failed(String),
    /// Another error with more said about it, keeping its class.
    #[error("{message}")]
    Noted { class: ErrorClass, message: String },
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_) | Error::Input(_) => ErrorClass::BadInput,
            Error::Store(e) => store_class(e),
            Error::Source(e) => source_class(e),
            Error::Archive(e) => archive_class(e),
            Error::NotConfirmed(_) => ErrorClass::NotConfirmed,
            Error::Exists(_) => ErrorClass::Exists,
            Error::Cancelled(_) => ErrorClass::Cancelled,
            Error::Failed(_) => ErrorClass::Failed,
            Error::Noted { class, .. } => *class,
        }
    }

    /// The same error, with `note` (what became of things) added to its
    /// message; the class stays.
    pub fn noted(self, note: impl fmt::Display) -> Error {
        Error::Noted {
            class: self.class(),
            message: format!("{self}; {note}"),
        }
    }

    pub fn input(msg: impl fmt::Display) -> Self {
        Error::Input(msg.to_string())
    }

    /// A restore refused by its existing-policy.
    pub fn exists(msg: impl fmt::Display) -> Self {
        Error::Exists(msg.to_string())
    }

    pub fn failed(msg: impl fmt::Display) -> Self {
        Error::Failed(msg.to_string())
    }

    pub fn cancelled(msg: impl fmt::Display) -> Self {
        Error::Cancelled(msg.to_string())
    }

    /// Data that does not match what its manifest says.
    pub fn integrity(msg: impl fmt::Display) -> Self {
        Error::Noted {
            class: ErrorClass::Integrity,
            message: msg.to_string(),
        }
    }

    /// Something that did not answer (worth retrying).
    pub fn unreachable(msg: impl fmt::Display) -> Self {
        Error::Noted {
            class: ErrorClass::Unreachable,
            message: msg.to_string(),
        }
    }

    /// Whether the other end of a data stream stopped (so its error says more).
    pub fn is_stopped_stream(&self) -> bool {
        matches!(self, Error::Source(SourceError::Stopped(_)))
    }
}

fn store_class(e: &StoreError) -> ErrorClass {
    match e {
        StoreError::NotFound { .. } => ErrorClass::BadInput,
        StoreError::Unreachable { .. } => ErrorClass::Unreachable,
        StoreError::Credentials { .. } | StoreError::Misconfigured { .. } => ErrorClass::BadInput,
        StoreError::Changed { .. } => ErrorClass::Integrity,
        StoreError::Retained { .. } | StoreError::Failed { .. } => ErrorClass::Failed,
    }
}

impl SourceError {
    /// The kind's own error, when this is one of type `E`.
    pub fn kind_error<E: KindError>(&self) -> Option<&E> {
        match self {
            SourceError::Kind(e) => {
                let e: &(dyn std::error::Error + 'static) = &**e;
                e.downcast_ref::<E>()
            }
            _ => None,
        }
    }
}

impl Error {
    /// The kind's own error, when this is one of type `E`.
    pub fn kind_error<E: KindError>(&self) -> Option<&E> {
        match self {
            Error::Source(e) => e.kind_error(),
            _ => None,
        }
    }
}

fn source_class(e: &SourceError) -> ErrorClass {
    match e {
        SourceError::Kind(e) => e.class(),
        SourceError::Unreachable { .. } => ErrorClass::Unreachable,
        SourceError::Failed { .. } | SourceError::Stopped(_) => ErrorClass::Failed,
        SourceError::Integrity { .. } => ErrorClass::Integrity,
        SourceError::Input(_) => ErrorClass::BadInput,
    }
}

fn archive_class(e: &ArchiveError) -> ErrorClass {
    match e {
        ArchiveError::BadPointId(_)
        | ArchiveError::NeedsIdentity { .. }
        | ArchiveError::Decrypt { .. }
        | ArchiveError::Identity { .. } => ErrorClass::BadInput,
        ArchiveError::BadManifest { .. }
        | ArchiveError::Mismatch { .. }
        | ArchiveError::Decode { .. }
        | ArchiveError::Missing { .. } => ErrorClass::Integrity,
        ArchiveError::Read { .. } => ErrorClass::Unreachable,
        ArchiveError::Cancelled { .. } => ErrorClass::Cancelled,
        ArchiveError::Pipeline { .. } | ArchiveError::ConsumerStopped { .. } => ErrorClass::Failed,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_their_json_names() {
        for c in ErrorClass::ALL {
            assert_eq!(
                serde_json::to_value(c).ok(),
                Some(serde_json::json!(c.name()))
            );
        }
    }

    #[test]
    fn classes_follow_the_variant_not_the_message() {
        let unreachable = Error::from(SourceError::Unreachable {
            what: "etcd".into(),
            endpoints: "x".into(),
            detail: "integrity".into(),
        });
        assert_eq!(unreachable.class(), ErrorClass::Unreachable);
        assert!(unreachable.class().retryable());
        let stopped = Error::from(SourceError::Stopped("etcd backup".into()));
        assert!(stopped.is_stopped_stream());
        assert_eq!(Error::cancelled("x").class(), ErrorClass::Cancelled);
        assert!(!ErrorClass::Integrity.retryable());
    }

    #[derive(Debug, PartialEq, thiserror::Error)]
    #[error("lab thing {0} is gone")]
    struct Gone(u32);

    impl KindError for Gone {
        fn class(&self) -> ErrorClass {
            ErrorClass::Unreachable
        }
    }

    #[test]
    fn a_kinds_own_error_keeps_its_class_words_and_variant() {
        let e = Error::from(SourceError::Kind(Box::new(Gone(7))));
        assert_eq!(e.class(), ErrorClass::Unreachable);
        assert_eq!(e.to_string(), "lab thing 7 is gone");
        assert_eq!(e.kind_error::<Gone>(), Some(&Gone(7)));
        assert_eq!(Error::input("x").kind_error::<Gone>(), None);
    }
}
