//! What goes wrong with etcd targets, with the facts as fields; the message
//! is rendered where it is shown.

use std::path::PathBuf;

use crate::error::{ErrorClass, KindError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// A key probe found no key.
    #[error("etcd key {key}: not found")]
    KeyMissing { key: String },
    /// A key probe found another value (its first 80 bytes).
    #[error("etcd key {key}: is {found:?}, not {want:?}")]
    KeyDiffers {
        key: String,
        found: String,
        want: String,
    },
    #[error(
        "target {target} region {region}: a snapshot restore needs `members = [{{ name, peer_url, data_dir }}, ...]` in [targets.{target}.regions.{region}]"
    )]
    NeedsMembers { target: String, region: String },
    #[error("target {target}: no endpoints for region {region}")]
    NoEndpoints { target: String, region: String },
    #[error("point {point} holds a {payload} payload, not an etcd one")]
    NotEtcdPoint { point: String, payload: String },
    #[error(
        "data dir {} appeared after the plan was made: plan the restore again",
        .path.display()
    )]
    DataDirAppeared { path: PathBuf },
    #[error("cannot read pid file {}: {reason}", .path.display())]
    PidFileUnreadable { path: PathBuf, reason: String },
    #[error("pid file {} holds {text:?}, not a process id", .path.display())]
    NotAPid { path: PathBuf, text: String },
    /// The member a fault would stop was not running.
    #[error(
        "kill -{signal} {pid} failed: the member in {} is not running",
        .pid_file.display()
    )]
    NotRunning {
        signal: &'static str,
        pid: u32,
        pid_file: PathBuf,
    },
    #[error("sent SIG{signal} to pid {pid}, and it is still running after 10 s")]
    StillRunning { signal: &'static str, pid: u32 },
    #[error(
        "a restore test of an etcd point starts a scratch etcd, and `etcd` is not on PATH (Debian: apt-get install etcd-server; or etcd's release archive)"
    )]
    NoEtcdServer,
    #[error(
        "neither etcdutl nor etcdctl is on PATH: a snapshot restore needs one of them (Debian: apt-get install etcd-client; or etcd's release archive)"
    )]
    NoSnapshotTool,
    #[error("cannot read TLS file {}: {reason}", .path.display())]
    TlsUnreadable { path: PathBuf, reason: String },
    /// With `--existing fail`, a key written between the plan and the restore.
    #[error(
        "etcd keys restore: key {key:?} appeared in the target after the plan was made (--existing fail); {written} keys were written before it"
    )]
    KeyAppeared { key: String, written: u64 },
    #[error("the scratch etcd exited ({status}) before it answered: {log_tail}")]
    ScratchExited { status: String, log_tail: String },
    /// A keys point restored into a scratch etcd did not give back its keys.
    #[error(
        "the manifest counts {counted} keys, the restore created {created} and the scratch etcd holds {found}"
    )]
    KeysDiffer {
        counted: u64,
        created: u64,
        found: u64,
    },
    #[error("the manifest has no key count to check against")]
    NoKeyCount,
    /// A snapshot point restored into a scratch etcd is behind the point.
    #[error(
        "the restored etcd is at revision {now}, older than the point's revision {point_revision}"
    )]
    OlderRevision { now: i64, point_revision: i64 },
    #[error(
        "the manifest counts {counted} keys at revision {revision}; the restored etcd holds {found} there"
    )]
    KeysAtRevisionDiffer {
        counted: u64,
        revision: i64,
        found: u64,
    },
}

impl KindError for EtcdError {
    fn class(&self) -> ErrorClass {
        match self {
            EtcdError::NeedsMembers { .. }
            | EtcdError::NoEndpoints { .. }
            | EtcdError::NotEtcdPoint { .. }
            | EtcdError::DataDirAppeared { .. }
            | EtcdError::PidFileUnreadable { .. }
            | EtcdError::NotAPid { .. }
            | EtcdError::NoEtcdServer
            | EtcdError::NoSnapshotTool
            | EtcdError::TlsUnreadable { .. } => ErrorClass::BadInput,
            EtcdError::KeyMissing { .. }
            | EtcdError::KeyDiffers { .. }
            | EtcdError::NotRunning { .. }
            | EtcdError::StillRunning { .. }
            | EtcdError::KeyAppeared { .. }
            | EtcdError::ScratchExited { .. } => ErrorClass::Failed,
            EtcdError::KeysDiffer { .. }
            | EtcdError::NoKeyCount
            | EtcdError::OlderRevision { .. }
            | EtcdError::KeysAtRevisionDiffer { .. } => ErrorClass::Integrity,
        }
    }
}

crate::error::kind_error_from!(EtcdError);
