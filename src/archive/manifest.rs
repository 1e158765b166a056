//! The manifest: the commit marker of a recovery point, written last.
//!
//! It carries its own `checksum` (sha256 of the manifest serialized with an empty
//! checksum) so that an edited manifest is caught by `verify` instead of being
//! trusted.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::ArchiveError;

pub const FORMAT_VERSION: u32 = 1;

/// What the plaintext payload is, so a restore knows how to read it: a name
/// the kind that wrote it owns (`etcd-keys`, `kube-namespace`, `pg-dump`,
/// ...). The kind's `TargetKind::payloads` say what each holds and whether
/// it ends with a sha256 of itself; the archive only carries the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PayloadKind(Cow<'static, str>);

impl PayloadKind {
    /// A kind's payload name, as a constant of the kind.
    pub const fn named(name: &'static str) -> PayloadKind {
        PayloadKind(Cow::Borrowed(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value in the terms of the kind that wrote it: the kind writes it
/// ([`KindJson::of`]) and reads it ([`KindJson::read`]); the archive keeps
/// its JSON as it was written, so checksums and signatures made over it hold.
/// Only drtool writes manifests, so its keys keep their order.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct KindJson(Box<RawValue>);

/// The moment the point is consistent with, in its kind's terms
/// (`{"kind":"etcd","revision":42,"observed_at":...}`).
pub type Consistency = KindJson;

/// What the kind keeps of the point outside the bucket, in its terms (RDS:
/// the instance, its engine and its snapshot in each region).
pub type External = KindJson;

impl KindJson {
    /// A kind's own value.
    pub fn of<T: Serialize>(value: &T) -> Result<KindJson, serde_json::Error> {
        RawValue::from_string(serde_json::to_string(value)?).map(KindJson)
    }

    /// The kind's own value back (an error when it is another kind's).
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The `kind` it names.
    pub fn kind(&self) -> String {
        #[derive(Deserialize)]
        struct Tag {
            kind: String,
        }
        self.read::<Tag>().map(|t| t.kind).unwrap_or_default()
    }

    /// Its JSON, compact.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for KindJson {
    fn eq(&self, other: &KindJson) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for KindJson {}

impl<'de> Deserialize<'de> for KindJson {
    /// Kept compact whatever the file's layout: a manifest is written pretty
    /// and checksummed compact.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<KindJson, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        RawValue::from_string(compact(raw.get()))
            .map(KindJson)
            .map_err(serde::de::Error::custom)
    }
}

/// JSON without the whitespace between its tokens (strings as they are).
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            out.push(c);
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    pub algorithm: String,
    pub level: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionInfo {
    pub scheme: String,
    /// sha256 fingerprints (first 16 hex digits) of the recipients, never the keys.
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub point_id: String,
    pub target: String,
    pub target_kind: String,
    pub payload: PayloadKind,
    /// The payload's file name inside the point folder; none for snapshot-only points.
    pub data_file: Option<String>,
    /// The region the backup was taken in.
    pub source_region: String,
    /// The region whose store holds this copy.
    pub region: String,
    pub copied_from: Option<String>,
    pub copied_to: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub consistency: Consistency,
    pub plaintext_size: u64,
    pub stored_size: u64,
    pub plaintext_sha256: String,
    pub stored_sha256: String,
    pub compression: Compression,
    pub encryption: Option<EncryptionInfo>,
    /// Item counts (keys, objects per kind, ...).
    pub items: BTreeMap<String, u64>,
    pub drtool_version: String,
    pub schedule: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// What the kind keeps outside the bucket (RDS snapshots); `rds` in
    /// manifests since format 1, the only kind that keeps any then.
    #[serde(rename = "rds")]
    pub external: Option<External>,
    /// The retention the point was made under: prune judges it by this, never
    /// by which schedule files a process loaded. Signed with the point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<PointRetention>,
    /// The ed25519 signature of what the point is (see [`Manifest::signed_bytes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<super::signing::ManifestSignature>,
    pub checksum: String,
}

/// The part of a manifest a signature covers: everything that says what the
/// point is, nothing that changes when it is copied (its region, where it was
/// copied from and to, the snapshot ARNs of its copies).
#[derive(Serialize)]
struct Signed<'a> {
    format_version: u32,
    point_id: &'a str,
    target: &'a str,
    target_kind: &'a str,
    payload: &'a PayloadKind,
    data_file: &'a Option<String>,
    source_region: &'a str,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    consistency: &'a Consistency,
    plaintext_size: u64,
    stored_size: u64,
    plaintext_sha256: &'a str,
    stored_sha256: &'a str,
    compression: &'a Compression,
    encryption: &'a Option<EncryptionInfo>,
    items: &'a BTreeMap<String, u64>,
    drtool_version: &'a str,
    schedule: &'a Option<String>,
    labels: &'a BTreeMap<String, String>,
    /// What the signature covers of what a kind keeps outside the bucket:
    /// its `instance` and `engine`, which a copy does not change (named
    /// `rds_instance` and `rds_engine` in signatures since format 1).
    #[serde(rename = "rds_instance")]
    external_instance: Option<&'a str>,
    #[serde(rename = "rds_engine")]
    external_engine: Option<&'a str>,
    // Absent from points made before retention was recorded: their
    // signatures cover the same bytes as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    retention: &'a Option<PointRetention>,
}

/// The facts of a point's external record a signature covers.
#[derive(Default, Deserialize)]
struct SignedExternal {
    instance: Option<String>,
    engine: Option<String>,
}

/// The retention policy a point was made under: the schedule's name, its
/// rules and time zone as they were then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointRetention {
    /// The schedule (or `drtool points retain --policy`) that named it.
    pub policy: String,
    pub rules: RetentionRules,
    /// The zone calendar buckets are cut in (IANA name).
    pub timezone: String,
    /// A fixed date until which the point is kept whatever the rules say;
    /// GFS rules count points and give none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// GFS rules as plain data (`catalog::retention::Policy` applies them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRules {
    #[serde(default)]
    pub keep_last: u32,
    #[serde(default)]
    pub keep_hourly: u32,
    #[serde(default)]
    pub keep_daily: u32,
    #[serde(default)]
    pub keep_weekly: u32,
    #[serde(default)]
    pub keep_monthly: u32,
    #[serde(default)]
    pub keep_yearly: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within_secs: Option<u64>,
}

impl Manifest {
    /// The bytes a signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let external: SignedExternal = self
            .external
            .as_ref()
            .and_then(|e| e.read().ok())
            .unwrap_or_default();
        let signed = Signed {
            format_version: self.format_version,
            point_id: &self.point_id,
            target: &self.target,
            target_kind: &self.target_kind,
            payload: &self.payload,
            data_file: &self.data_file,
            source_region: &self.source_region,
            started_at: self.started_at,
            finished_at: self.finished_at,
            consistency: &self.consistency,
            plaintext_size: self.plaintext_size,
            stored_size: self.stored_size,
            plaintext_sha256: &self.plaintext_sha256,
            stored_sha256: &self.stored_sha256,
            compression: &self.compression,
            encryption: &self.encryption,
            items: &self.items,
            drtool_version: &self.drtool_version,
            schedule: &self.schedule,
            labels: &self.labels,
            external_instance: external.instance.as_deref(),
            external_engine: external.engine.as_deref(),
            retention: &self.retention,
        };
        let mut out = b"drtool-manifest-signature-v1\n".to_vec();
        // Plain data always serializes.
        out.extend(serde_json::to_vec(&signed).unwrap_or_default());
        out
    }

    fn body_checksum(&self) -> String {
        let mut body = self.clone();
        body.checksum.clear();
        // Serializing our own struct cannot fail: every field is plain data.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }

    /// Sets `checksum` and serializes, ready to be written.
    pub fn seal(&mut self) -> Vec<u8> {
        self.checksum = self.body_checksum();
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses a manifest and checks its own checksum and format version.
    pub fn parse(key: &str, bytes: &[u8]) -> Result<Manifest, ArchiveError> {
        let bad = |detail: String| ArchiveError::BadManifest {
            key: key.to_string(),
            detail,
        };
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if m.format_version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} is not supported by this drtool (knows {FORMAT_VERSION}); upgrade drtool",
                m.format_version
            )));
        }
        let expected = m.body_checksum();
        if m.checksum != expected {
            return Err(bad(format!(
                "manifest checksum mismatch (recorded {}, computed {expected}): the manifest was edited or damaged",
                m.checksum
            )));
        }
        Ok(m)
    }

    pub fn is_encrypted(&self) -> bool {
        self.encryption.is_some()
    }
}

/// The fingerprint recorded for an age recipient.
pub fn recipient_fingerprint(recipient: &str) -> String {
    hex::encode(&Sha256::digest(recipient.as_bytes())[..8])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Manifest {
        let t = DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        Manifest {
            format_version: FORMAT_VERSION,
            point_id: "20261122T020000Z-0badcafe".into(),
            target: "etcd-main".into(),
            target_kind: "etcd".into(),
            payload: PayloadKind::named("etcd-snapshot"),
            data_file: Some("data.zst".into()),
            source_region: "us-east-1".into(),
            region: "us-east-1".into(),
            copied_from: None,
            copied_to: vec![],
            started_at: t,
            finished_at: t,
            consistency: Consistency::of(&serde_json::json!({
                "kind": "etcd", "revision": 42, "observed_at": t,
            }))
            .unwrap_or_else(|e| panic!("{e}")),
            plaintext_size: 10,
            stored_size: 5,
            plaintext_sha256: "aa".into(),
            stored_sha256: "bb".into(),
            compression: Compression {
                algorithm: "zstd".into(),
                level: 3,
            },
            encryption: None,
            items: BTreeMap::from([("keys".to_string(), 3)]),
            drtool_version: "0.1.0".into(),
            schedule: None,
            labels: BTreeMap::new(),
            external: None,
            retention: None,
            signature: None,
            checksum: String::new(),
        }
    }

    #[test]
    fn sealed_manifest_parses_and_edits_are_caught() -> Result<(), ArchiveError> {
        let mut m = sample();
        let bytes = m.seal();
        assert_eq!(Manifest::parse("k", &bytes)?, m);
        let text = String::from_utf8_lossy(&bytes).replace("\"revision\":42", "\"revision\":43");
        let err = Manifest::parse("k", text.as_bytes()).err();
        assert!(
            matches!(&err, Some(ArchiveError::BadManifest { detail, .. }) if detail.contains("checksum mismatch")),
            "{err:?}"
        );
        Ok(())
    }

    /// A manifest as the drtool before the kinds owned their consistency
    /// wrote it (pretty, the typed enum's key order): it still parses, its
    /// checksum holds, and sealing it again writes the same checksum.
    #[test]
    fn manifests_written_before_keep_their_checksum() -> Result<(), ArchiveError> {
        let old = include_str!("testdata/manifest-format1.json");
        let m = Manifest::parse("k", old.as_bytes())?;
        assert_eq!(m.consistency.kind(), "kube");
        assert_eq!(
            m.consistency.as_json(),
            r#"{"kind":"kube","at":"2026-12-01T21:30:31.838449656Z","lists":{"configmaps":"811","secrets":"812"},"resumed":{"secrets":"410 Gone at page 2"}}"#
        );
        let mut again = m.clone();
        let checksum = m.checksum.clone();
        let bytes = again.seal();
        assert_eq!(again.checksum, checksum);
        assert_eq!(Manifest::parse("k", &bytes)?, m);
        // One the lab wrote before the change, as it was stored.
        let real = include_str!("testdata/manifest-etcd-format1.json");
        let m = Manifest::parse("k", real.as_bytes())?;
        assert_eq!(m.consistency.kind(), "etcd");
        let mut again = m.clone();
        again.seal();
        assert_eq!(again.checksum, m.checksum);
        Ok(())
    }

    #[test]
    fn compacting_keeps_strings_whole() {
        assert_eq!(
            compact("{ \"a b\" : [ 1 , \"x \\\" y\" ] ,\n \"c\":\t{} }"),
            r#"{"a b":[1,"x \" y"],"c":{}}"#
        );
    }

    /// What a kind keeps outside the bucket is kept as it wrote it, under
    /// the names manifests and signatures have used since format 1.
    #[test]
    fn an_external_record_keeps_its_wire_names_and_signed_facts() {
        let mut m = sample();
        let none = String::from_utf8_lossy(&m.signed_bytes()).into_owned();
        assert!(
            none.contains(r#""rds_instance":null,"rds_engine":null"#),
            "{none}"
        );
        m.external = Some(
            serde_json::from_str::<External>(
                r#"{ "instance": "orders", "engine": "postgres", "snapshots": { "us-east-1": "arn:1" } }"#,
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let signed = String::from_utf8_lossy(&m.signed_bytes()).into_owned();
        assert!(
            signed.contains(r#""rds_instance":"orders","rds_engine":"postgres""#),
            "{signed}"
        );
        assert!(
            !signed.contains("arn:1"),
            "a copy's snapshots are not signed"
        );
        let bytes = m.seal();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains(r#""rds": {"instance":"orders","engine":"postgres","snapshots":{"us-east-1":"arn:1"}}"#),
            "{text}"
        );
    }
}
