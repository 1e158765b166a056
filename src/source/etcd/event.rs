//! One event of an etcd stream segment: a JSON line per put or delete, with
//! the key's revisions and lease (what the stream writes and a replay reads).

use serde::{Deserialize, Serialize};

/// One event of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    /// The revision that made it (its `mod_revision`; a delete's revision).
    pub rev: i64,
    pub op: EventOp,
    /// The key as text, when it is valid UTF-8 (for people).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub key_b64: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value_b64: String,
    #[serde(default)]
    pub create_revision: i64,
    #[serde(default)]
    pub version: i64,
    /// The lease the key is attached to (0: none).
    #[serde(default)]
    pub lease: i64,
    /// The lease's remaining TTL in seconds when the stream read it (absent
    /// in segments written before drtool carried leases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventOp {
    Put,
    Delete,
}
