//! The library's error type and the classes that decide exit codes.
//!
//! Every error says what failed, on which target/region/key, and what to do next.
//! The class tells the CLI which exit code to use and the scheduler whether a retry
//! can help; it must not depend on the wording of a message.

use std::fmt;

/// What kind of failure an error is; the CLI maps it to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The config, an argument or an archive given to us is wrong: fix the input.
    BadInput,
    /// A store or endpoint could not be reached: worth retrying later.
    Unreachable,
    /// Data did not match its recorded checksum or could not be decoded.
    Integrity,
    /// A destructive step was not confirmed.
    NotConfirmed,
    /// Anything else that failed.
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// Bad command-line input (an unknown target, region or point, ...).
    #[error("{0}")]
    Input(String),
    /// A destructive plan was not confirmed.
    #[error("{0}")]
    NotConfirmed(String),
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_) | Error::Input(_) => ErrorClass::BadInput,
            Error::Store(e) => e.class(),
            Error::Source(e) => e.class(),
            Error::Archive(e) => e.class(),
            Error::NotConfirmed(_) => ErrorClass::NotConfirmed,
            Error::Failed(_) => ErrorClass::Failed,
        }
    }

    pub fn input(msg: impl fmt::Display) -> Self {
        Error::Input(msg.to_string())
    }

    pub fn failed(msg: impl fmt::Display) -> Self {
        Error::Failed(msg.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
