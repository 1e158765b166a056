//! What an etcd snapshot file holds, read without running etcd: its `key`
//! bucket maps revision keys (8-byte big-endian main revision, `_`, 8-byte
//! sub revision, and a trailing `t` for a delete's tombstone) to the
//! key-value record etcd keeps (protobuf `mvccpb.KeyValue`: key, create,
//! mod revision, version, value, lease), in revision order; `meta` holds
//! the compaction's revision and the consistent index. From them: the
//! revision the snapshot was taken at (its newest revision key, read from
//! the rightmost pages only), and the live keys at that revision or at an
//! older one still in the file's history. The `lease` bucket maps 8-byte
//! big-endian lease ids to `leasepb.Lease` (id, TTL, remaining TTL).

use std::collections::BTreeMap;
use std::path::Path;

use crate::bbolt::{BoltError, Bucket, Db, PageScan};

/// A revision key of the `key` bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RevisionKey {
    pub main: u64,
    pub sub: u64,
    pub tombstone: bool,
}

impl RevisionKey {
    pub fn parse(bytes: &[u8]) -> Option<RevisionKey> {
        let tombstone = match bytes.len() {
            17 => false,
            18 if bytes[17] == b't' => true,
            _ => return None,
        };
        if bytes[8] != b'_' {
            return None;
        }
        Some(RevisionKey {
            main: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            sub: u64::from_be_bytes(bytes[9..17].try_into().ok()?),
            tombstone,
        })
    }
}

/// A scan that reads a snapshot's revision as the snapshot streams past
/// (keeping the `key` bucket's leaves as their last keys only).
pub fn revision_scan() -> PageScan {
    PageScan::new(|k| RevisionKey::parse(k).is_some())
}

/// One key's record, as etcd stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredKv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// Reads a protobuf varint at `at`, moving it past.
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One protobuf field's value: a number or bytes (fixed-width ones are
/// skipped: `KeyValue` has none).
enum Field<'a> {
    Number(u64),
    Bytes(&'a [u8]),
}

/// Walks the fields of a protobuf message, handing each to `f` until it
/// says stop; unknown wire types and cut fields are errors.
fn walk<'a>(b: &'a [u8], mut f: impl FnMut(u64, Field<'a>) -> bool) -> Result<(), String> {
    let mut at = 0;
    let bad = |what: &str| format!("its record is malformed ({what})");
    let past = |at: usize, n: usize| at.checked_add(n).filter(|e| *e <= b.len());
    while at < b.len() {
        let tag = varint(b, &mut at).ok_or_else(|| bad("a field tag"))?;
        let value = match tag & 7 {
            0 => Field::Number(varint(b, &mut at).ok_or_else(|| bad("a number"))?),
            2 => {
                let len = varint(b, &mut at).ok_or_else(|| bad("a length"))?;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|l| past(at, l))
                    .ok_or_else(|| bad("a length past its end"))?;
                let bytes = &b[at..end];
                at = end;
                Field::Bytes(bytes)
            }
            1 => {
                at = past(at, 8).ok_or_else(|| bad("a fixed64"))?;
                continue;
            }
            5 => {
                at = past(at, 4).ok_or_else(|| bad("a fixed32"))?;
                continue;
            }
            other => return Err(bad(&format!("wire type {other}"))),
        };
        if f(tag >> 3, value) {
            break;
        }
    }
    Ok(())
}

impl StoredKv {
    /// The key of an encoded record, without copying its value.
    pub fn key_of(b: &[u8]) -> Result<&[u8], String> {
        let mut key: &[u8] = &[];
        walk(b, |field, value| match (field, value) {
            (1, Field::Bytes(k)) => {
                key = k;
                true
            }
            _ => false,
        })?;
        Ok(key)
    }

    /// Decodes `mvccpb.KeyValue`; unknown fields are skipped.
    pub fn decode(b: &[u8]) -> Result<StoredKv, String> {
        let mut kv = StoredKv::default();
        walk(b, |field, value| {
            match (field, value) {
                (1, Field::Bytes(k)) => kv.key = k.to_vec(),
                (5, Field::Bytes(v)) => kv.value = v.to_vec(),
                (2, Field::Number(n)) => kv.create_revision = n as i64,
                (3, Field::Number(n)) => kv.mod_revision = n as i64,
                (4, Field::Number(n)) => kv.version = n as i64,
                (6, Field::Number(n)) => kv.lease = n as i64,
                _ => {}
            }
            false
        })?;
        Ok(kv)
    }
}

/// A lease as the snapshot holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredLease {
    pub id: i64,
    /// The TTL it was granted with, in seconds.
    pub ttl: i64,
    /// The TTL left at the last checkpoint, if etcd checkpointed it (0:
    /// none; the lease then restarts with its whole TTL).
    pub remaining_ttl: i64,
}

/// `etcdctl snapshot status` of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub hash: u32,
    pub revision: u64,
    pub total_key: u64,
    pub total_size: u64,
}

/// CRC-32C (Castagnoli), as Go's `crc32.MakeTable(crc32.Castagnoli)`.
struct Crc32c {
    table: [u32; 256],
    crc: u32,
}

impl Crc32c {
    fn new() -> Crc32c {
        let mut table = [0u32; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        Crc32c { table, crc: !0 }
    }

    fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.crc = self.table[((self.crc ^ u32::from(*b)) & 0xff) as usize] ^ (self.crc >> 8);
        }
    }

    fn finish(&self) -> u32 {
        !self.crc
    }
}

/// Reads everything a snapshot file offers, as `drtool ls` would: the
/// fuzz target's and the damage tests' one entry point. The number of
/// live keys, or the first error.
#[doc(hidden)]
pub fn read_all(path: &Path) -> Result<usize, BoltError> {
    let snap = SnapshotFile::open(path)?;
    snap.compacted()?;
    snap.consistent_index()?;
    snap.leases()?;
    snap.status()?;
    let mut n = 0;
    snap.each_live(None, b"", |_| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// An etcd snapshot (or data) file, open for reading.
pub struct SnapshotFile {
    db: Db,
    keys: Bucket,
    meta: Option<Bucket>,
}

impl SnapshotFile {
    pub fn open(path: &Path) -> Result<SnapshotFile, BoltError> {
        SnapshotFile::of(Db::open(path)?)
    }

    /// A scan of a snapshot as it streams ([`revision_scan`]); `label`
    /// names it in errors. Only the revision and the compaction can be
    /// read from it.
    pub fn of_scan(scan: PageScan, label: &Path) -> Result<SnapshotFile, BoltError> {
        SnapshotFile::of(scan.finish(label)?)
    }

    fn of(db: Db) -> Result<SnapshotFile, BoltError> {
        let path = db.path();
        let keys = db.bucket(b"key")?.ok_or_else(|| BoltError::Malformed {
            path: path.to_path_buf(),
            at: "root bucket".into(),
            detail: "it has no `key` bucket: not an etcd snapshot".into(),
        })?;
        let meta = db.bucket(b"meta")?;
        Ok(SnapshotFile { db, keys, meta })
    }

    fn bad(&self, at: String, detail: String) -> BoltError {
        BoltError::Malformed {
            path: self.db.path().to_path_buf(),
            at,
            detail,
        }
    }

    fn revision_key(&self, bytes: &[u8]) -> Result<RevisionKey, BoltError> {
        RevisionKey::parse(bytes).ok_or_else(|| {
            self.bad(
                "key bucket".into(),
                format!("{} is not a revision key", hex::encode(bytes)),
            )
        })
    }

    /// The revision the snapshot holds the cluster at: its newest change
    /// (0 for a cluster never written to).
    pub fn revision(&self) -> Result<u64, BoltError> {
        match self.db.last(&self.keys)? {
            Some(e) => Ok(self.revision_key(&e.key)?.main),
            None => Ok(0),
        }
    }

    /// A `meta` bucket value.
    fn meta_value(&self, name: &[u8]) -> Result<Option<Vec<u8>>, BoltError> {
        let Some(meta) = &self.meta else {
            return Ok(None);
        };
        let mut c = self.db.cursor(meta);
        while let Some(e) = c.next_entry()? {
            if e.key == name {
                return Ok(Some(e.value));
            }
        }
        Ok(None)
    }

    /// The cluster's revision when the snapshot was taken, exactly: its
    /// newest revision key, or the compaction's revision when that is newer
    /// (a compaction removes a trailing delete's tombstone, and no change
    /// can follow it unseen: it would have a key of its own).
    pub fn cluster_revision(&self) -> Result<u64, BoltError> {
        Ok(self.revision()?.max(self.compacted()?.unwrap_or(0)))
    }

    /// The revision the history was compacted at (none: never compacted).
    pub fn compacted(&self) -> Result<Option<u64>, BoltError> {
        match self.meta_value(b"finishedCompactRev")? {
            Some(v) => Ok(Some(self.revision_key(&v)?.main)),
            None => Ok(None),
        }
    }

    /// The Raft index the backend had applied (etcd's `consistent_index`).
    pub fn consistent_index(&self) -> Result<Option<u64>, BoltError> {
        Ok(self
            .meta_value(b"consistent_index")?
            .and_then(|v| v.try_into().ok().map(u64::from_be_bytes)))
    }

    /// What `etcdctl snapshot status` (`etcdutl` since etcd 3.5) says of
    /// the file, computed the way it does: a CRC-32C of every top-level
    /// bucket's name and every key and value in it, the newest revision,
    /// the number of entries of all buckets, and the size of the data.
    pub fn status(&self) -> Result<Status, BoltError> {
        let mut crc = Crc32c::new();
        let mut total_key = 0u64;
        let mut names = self.db.cursor(&self.db.root());
        while let Some(top) = names.next_entry()? {
            if !top.bucket {
                return Err(self.bad(
                    "root bucket".into(),
                    format!(
                        "{} is a value, not a bucket",
                        String::from_utf8_lossy(&top.key)
                    ),
                ));
            }
            crc.update(&top.key);
            let bucket = self.db.bucket_of(&top.value)?;
            let mut c = self.db.cursor(&bucket);
            while let Some(e) = c.next_entry()? {
                crc.update(&e.key);
                if !e.bucket {
                    crc.update(&e.value);
                }
                total_key += 1;
            }
        }
        let meta = self.db.meta();
        Ok(Status {
            hash: crc.finish(),
            revision: self.revision()?,
            total_key,
            total_size: meta.high_water.saturating_mul(u64::from(meta.page_size)),
        })
    }

    /// The leases the snapshot holds, by id (none: the file has no
    /// `lease` bucket, as a cluster that never granted one).
    pub fn leases(&self) -> Result<BTreeMap<i64, StoredLease>, BoltError> {
        let mut out = BTreeMap::new();
        let Some(bucket) = self.db.bucket(b"lease")? else {
            return Ok(out);
        };
        let mut c = self.db.cursor(&bucket);
        while let Some(e) = c.next_entry()? {
            let id: [u8; 8] = e.key.as_slice().try_into().map_err(|_| {
                self.bad(
                    "lease bucket".into(),
                    format!("{} is not a lease id", hex::encode(&e.key)),
                )
            })?;
            let mut lease = StoredLease {
                id: i64::from_be_bytes(id),
                ..StoredLease::default()
            };
            walk(&e.value, |field, value| {
                if let Field::Number(n) = value {
                    match field {
                        1 => lease.id = n as i64,
                        2 => lease.ttl = n as i64,
                        3 => lease.remaining_ttl = n as i64,
                        _ => {}
                    }
                }
                false
            })
            .map_err(|d| self.bad(format!("lease {:x}", i64::from_be_bytes(id)), d))?;
            out.insert(lease.id, lease);
        }
        Ok(out)
    }

    /// The live keys under `prefix` at revision `at` (the newest: none),
    /// in key order, collected (see [`SnapshotFile::each_live`]).
    pub fn live(&self, at: Option<u64>, prefix: &[u8]) -> Result<Vec<StoredKv>, BoltError> {
        let mut out = Vec::new();
        self.each_live(at, prefix, |kv| {
            out.push(kv);
            Ok(())
        })?;
        Ok(out)
    }

    /// Hands each live key under `prefix` at revision `at` (the newest:
    /// none) to `f`, in key order. Memory holds the keys and where their
    /// newest record is, never the values: each value is read when its key
    /// is handed on. A revision the file's history no longer holds (below
    /// its compaction, or past its newest) is refused.
    pub fn each_live(
        &self,
        at: Option<u64>,
        prefix: &[u8],
        mut f: impl FnMut(StoredKv) -> Result<(), BoltError>,
    ) -> Result<(), BoltError> {
        let newest = self.revision()?;
        let at = at.unwrap_or(newest);
        let compacted = self.compacted()?.unwrap_or(0);
        if at > newest || (at < compacted) {
            return Err(self.bad(
                format!("revision {at}"),
                format!("the file holds revisions {compacted} to {newest}"),
            ));
        }
        // Each key's newest record at `at`: the revision key to read it by.
        let mut live: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut c = self.db.cursor(&self.keys);
        while let Some(e) = c.next_entry()? {
            let rev = self.revision_key(&e.key)?;
            if rev.main > at {
                break;
            }
            let key = StoredKv::key_of(&e.value)
                .map_err(|d| self.bad(format!("revision {}.{}", rev.main, rev.sub), d))?;
            if !key.starts_with(prefix) {
                continue;
            }
            if rev.tombstone {
                live.remove(key);
            } else {
                live.insert(key.to_vec(), e.key);
            }
        }
        for (key, rev) in live {
            let at = || format!("key {}", String::from_utf8_lossy(&key));
            let record = self
                .db
                .get(&self.keys, &rev)?
                .ok_or_else(|| self.bad(at(), "its record vanished between two reads".into()))?;
            let kv = StoredKv::decode(&record.value).map_err(|d| self.bad(at(), d))?;
            f(kv)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real snapshot (etcd 3.4: 30 keys, a lease, a delete, a compaction,
    /// a binary key; etcd's sha256 trailer after the pages).
    const SEED: &[u8] = include_bytes!("../../../fuzz/seeds/snapshot_file/small-cluster.db");

    fn scanned(bytes: &[u8], chunk: usize) -> Result<u64, BoltError> {
        let mut scan = revision_scan();
        for c in bytes.chunks(chunk) {
            scan.feed(c);
        }
        SnapshotFile::of_scan(scan, Path::new("scan"))?.cluster_revision()
    }

    #[test]
    fn a_streaming_scan_reads_the_revision_the_file_holds() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("seed.db");
        std::fs::write(&file, SEED)?;
        let whole = SnapshotFile::open(&file)?.cluster_revision()?;
        assert!(whole > 0);
        for chunk in [1, 15, 16, 17, 4095, 4096, 4097, 32 * 1024, SEED.len()] {
            assert_eq!(scanned(SEED, chunk)?, whole, "chunks of {chunk}");
        }
        // A stream cut short, or one that is not bbolt: an error naming it.
        for cut in [0, 100, 4096 * 2 + 7, SEED.len() / 2] {
            let e = scanned(&SEED[..cut], 4096).map_err(|e| e.to_string());
            assert!(
                e.as_ref().is_err_and(|e| e.contains("scan")),
                "{cut}: {e:?}"
            );
        }
        let e = scanned(&[7u8; 20_000], 1000).map_err(|e| e.to_string());
        assert!(e.is_err(), "{e:?}");
        Ok(())
    }

    #[test]
    fn crc32c_matches_the_castagnoli_check_value() {
        let mut c = Crc32c::new();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.finish(), 0xE306_9283);
    }

    #[test]
    fn revision_keys_read_main_sub_and_tombstone() {
        let mut k = 7u64.to_be_bytes().to_vec();
        k.push(b'_');
        k.extend(3u64.to_be_bytes());
        assert_eq!(
            RevisionKey::parse(&k),
            Some(RevisionKey {
                main: 7,
                sub: 3,
                tombstone: false
            })
        );
        k.push(b't');
        assert!(RevisionKey::parse(&k).is_some_and(|r| r.tombstone));
        k.push(b't');
        assert_eq!(RevisionKey::parse(&k), None, "19 bytes");
        let mut bad = k[..17].to_vec();
        bad[8] = b'-';
        assert_eq!(RevisionKey::parse(&bad), None);
        assert_eq!(RevisionKey::parse(b""), None);
    }

    #[test]
    fn a_key_value_record_decodes_and_a_cut_one_is_refused() {
        // key "/a", create 5, mod 9, version 2, value "xyz", lease 300, and
        // an unknown field 9 (a fixed32) skipped.
        let rec = [
            0x0a, 2, b'/', b'a', 0x10, 5, 0x18, 9, 0x20, 2, 0x2a, 3, b'x', b'y', b'z', 0x30, 0xac,
            0x02, 0x4d, 1, 2, 3, 4,
        ];
        let kv = StoredKv::decode(&rec).unwrap_or_default();
        assert_eq!(
            kv,
            StoredKv {
                key: b"/a".to_vec(),
                value: b"xyz".to_vec(),
                create_revision: 5,
                mod_revision: 9,
                version: 2,
                lease: 300,
            }
        );
        assert_eq!(StoredKv::key_of(&rec), Ok(&b"/a"[..]));
        for cut in 1..rec.len() - 4 {
            if let Ok(kv) = StoredKv::decode(&rec[..cut]) {
                // A cut between fields decodes to fewer fields, never more.
                assert!(kv.value.len() <= 3, "cut at {cut}");
            }
        }
        assert!(
            StoredKv::decode(&[0x2a, 200, 1]).is_err(),
            "a length past the end"
        );
        assert!(StoredKv::decode(&[0x0b]).is_err(), "wire type 3");
        assert!(
            StoredKv::decode(&[
                0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ])
            .is_err()
        );
    }
}
