//! etcd: snapshot and keys backups, keys replay and snapshot materialization.
//!
//! Backups stream: `snapshot` mode forwards the Maintenance Snapshot RPC and checks
//! its trailing sha256 on the way; `keys` mode pages through the keyspace at one
//! fixed revision and writes JSON Lines. Restores never touch a cluster before
//! the point's checksums are verified. [`EtcdKind`] (in `home.rs`) is what the
//! engine sees.

mod backup;
mod config;
mod contents;
pub mod drill;
mod error;
mod event;
mod home;
mod init;
mod lease;
mod options;
mod replay;
mod restore;
mod scratch;
pub mod snapfile;
mod snapkeys;
pub mod stream;

pub use config::{
    DEFAULT_MAX_REQUEST_BYTES, EtcdMember, EtcdMode, EtcdRegion, EtcdTarget, TlsFiles,
};

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use serde::{Deserialize, Serialize};

use crate::archive::PayloadKind;
use crate::engine::kind::Payload;

pub use backup::{BackupMeta, keys, snapshot};
pub use error::EtcdError;
pub use home::{
    EtcdConsistency, EtcdKind, EtcdPlan, MemberPlan, SnapshotFacts, decide_keys, decide_snapshot,
};
pub use restore::{
    KeysOutcome, KeysPlan, SnapshotTool, apply_keys, find_snapshot_tool, plan_keys, restore_member,
};

/// A point of every key at one revision, as JSON Lines.
pub const KEYS_NAME: &str = "etcd-keys";
pub const KEYS: PayloadKind = PayloadKind::named(KEYS_NAME);
/// The exact file `etcdctl snapshot save` writes (bbolt + trailing sha256).
pub const SNAPSHOT_NAME: &str = "etcd-snapshot";
pub const SNAPSHOT: PayloadKind = PayloadKind::named(SNAPSHOT_NAME);

static PAYLOADS: [Payload; 2] = [
    Payload {
        kind: SNAPSHOT,
        describe: "etcd snapshot (etcdctl snapshot save format)",
        trailing_sha256: true,
    },
    Payload {
        kind: KEYS,
        describe: "etcd keys (JSON Lines)",
        trailing_sha256: false,
    },
];

use crate::error::SourceError;

/// How to reach one region's cluster: what a plan records (paths, never keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub endpoints: Vec<String>,
    pub tls: Option<TlsFiles>,
}

impl Connection {
    pub fn of(region: &EtcdRegion) -> Connection {
        Connection {
            endpoints: region.endpoints.clone(),
            tls: region.tls.clone(),
        }
    }
}

/// etcd refuses transactions with more operations than this (`--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// One key of a `keys` point: one JSON object per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// The key as text, when it is valid UTF-8 (for people; restores use `key_b64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub key_b64: String,
    pub value_b64: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
    /// The lease's remaining TTL in seconds when the backup read it (absent
    /// in points written before drtool carried leases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl: Option<i64>,
}

impl KeyRecord {
    pub fn from_kv(kv: &etcd_client::KeyValue) -> KeyRecord {
        KeyRecord {
            key: std::str::from_utf8(kv.key()).ok().map(str::to_string),
            key_b64: B64.encode(kv.key()),
            value_b64: B64.encode(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
            lease_ttl: None,
        }
    }

    pub fn key_bytes(&self) -> Result<Vec<u8>, BadBase64> {
        decode_field("key_b64", &self.key_b64)
    }

    pub fn value_bytes(&self) -> Result<Vec<u8>, BadBase64> {
        decode_field("value_b64", &self.value_b64)
    }
}

/// A record's field that is not base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {field}: {reason}")]
pub struct BadBase64 {
    pub field: &'static str,
    pub reason: String,
}

fn decode_field(field: &'static str, text: &str) -> Result<Vec<u8>, BadBase64> {
    B64.decode(text).map_err(|e| BadBase64 {
        field,
        reason: e.to_string(),
    })
}

/// A key for people: printable ASCII as it is, other bytes as `\xNN`
/// (`\` itself as `\\`), so a binary key is never shown as another one.
pub fn key_text(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(*b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The end of the range holding every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): the range runs to the end of the keyspace.
    vec![0]
}

pub(crate) fn describe(endpoints: &[String]) -> String {
    endpoints.join(",")
}

pub(crate) fn map_err(endpoints: &[String], what: &str, e: etcd_client::Error) -> SourceError {
    use etcd_client::Error as E;
    let unreachable = match &e {
        E::TransportError(_) | E::IoError(_) => true,
        E::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
        ),
        _ => false,
    };
    if unreachable {
        SourceError::Unreachable {
            what: "etcd".into(),
            endpoints: describe(endpoints),
            detail: in_words(&e),
        }
    } else {
        SourceError::Failed {
            what: format!("etcd {what} at {}", describe(endpoints)),
            detail: in_words(&e),
        }
    }
}

/// An etcd client error as an operator reads it: the operating system's
/// words for a failed connection ("connection refused"), or the gRPC
/// status and its message; never the client library's Debug dump.
pub(crate) fn in_words(e: &etcd_client::Error) -> String {
    let mut said: Option<String> = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            let text = io.to_string();
            let text = text
                .split(" (os error")
                .next()
                .unwrap_or(&text)
                .to_lowercase();
            return match said {
                Some(s) if !s.is_empty() => format!("{text} ({s})"),
                _ => text,
            };
        }
        if let Some(st) = c.downcast_ref::<tonic::Status>() {
            said = Some(format!("{}: {}", code_words(st.code()), st.message()));
        }
        cur = c.source();
    }
    // Some transports keep the OS error only in their Debug text: take its
    // words from there ("Connection refused"), not the dump.
    let dump = format!("{e:?}");
    let os = dump
        .split_once("Os {")
        .and_then(|(_, rest)| rest.split_once("message: \""))
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(msg, _)| msg.to_lowercase());
    match (os, said, e) {
        (Some(os), Some(s), _) => format!("{os} ({s})"),
        (Some(os), None, _) => os,
        (None, Some(s), _) => s,
        (None, None, etcd_client::Error::GRpcStatus(st)) => {
            format!("{}: {}", code_words(st.code()), st.message())
        }
        (None, None, other) => other.to_string(),
    }
}

fn code_words(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Unavailable => "unavailable",
        C::DeadlineExceeded => "no answer in time",
        C::Unauthenticated => "not authenticated",
        C::PermissionDenied => "permission denied",
        C::ResourceExhausted => "resource exhausted (too large a request, or rate-limited)",
        C::InvalidArgument => "invalid argument",
        C::NotFound => "not found",
        C::FailedPrecondition => "failed precondition",
        C::OutOfRange => "out of range (compacted?)",
        C::Cancelled => "cancelled",
        _ => "error",
    }
}

/// Connects to one region's cluster, with TLS client certificates if configured.
pub async fn connect(region: &Connection) -> Result<Client, SourceError> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10));
    if let Some(tls) = &region.tls {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| {
                SourceError::from(EtcdError::TlsUnreadable {
                    path: p.to_path_buf(),
                    reason: e.to_string(),
                })
            })
        };
        let mut t = TlsOptions::new();
        if let Some(ca) = &tls.ca {
            t = t.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            t = t.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        opts = opts.with_tls(t);
    }
    let mut client = Client::connect(region.endpoints.clone(), Some(opts))
        .await
        .map_err(|e| map_err(&region.endpoints, "connect", e))?;
    // connect() is lazy on some transports: ask for status so a dead cluster fails here.
    tokio::time::timeout(Duration::from_secs(10), client.status())
        .await
        .map_err(|_| SourceError::Unreachable {
            what: "etcd".into(),
            endpoints: describe(&region.endpoints),
            detail: "no answer within 10 s".into(),
        })?
        .map_err(|e| map_err(&region.endpoints, "status", e))?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_covers_the_prefix() {
        assert_eq!(prefix_end(b"/app/"), b"/app0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn record_round_trips_binary_keys() -> Result<(), String> {
        let r = KeyRecord {
            key: None,
            key_b64: B64.encode([0u8, 255, 3]),
            value_b64: B64.encode(b"v"),
            create_revision: 1,
            mod_revision: 2,
            version: 1,
            lease: 0,
            lease_ttl: None,
        };
        let line = serde_json::to_string(&r).map_err(|e| e.to_string())?;
        assert!(!line.contains("\"key\""));
        let back: KeyRecord = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        assert_eq!(
            back.key_bytes().map_err(|e| e.to_string())?,
            vec![0, 255, 3]
        );
        let broken = KeyRecord {
            value_b64: "not base64!".into(),
            ..back
        };
        assert!(matches!(
            broken.value_bytes(),
            Err(BadBase64 {
                field: "value_b64",
                ..
            })
        ));
        Ok(())
    }
}
