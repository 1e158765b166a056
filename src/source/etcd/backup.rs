//! etcd backups as plaintext streams.

use std::collections::BTreeMap;
use std::io;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use etcd_client::{Client, GetOptions};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{KeyRecord, map_err, prefix_end};
use crate::source::SourceError;

/// Keys read per request in `keys` mode.
const PAGE: i64 = 1000;

/// What a backup learned about the cluster.
#[derive(Debug, Clone)]
pub struct BackupMeta {
    pub revision: i64,
    pub observed_at: DateTime<Utc>,
    pub items: BTreeMap<String, u64>,
}

/// Checks the sha256 that etcd appends to every snapshot while bytes stream by.
///
/// The last 32 bytes of the stream are the sha256 of everything before them;
/// since we do not know where the stream ends, the newest 32 bytes are held back
/// from the hash until the next chunk arrives.
#[derive(Default)]
pub struct SnapshotCheck {
    hasher: Sha256,
    tail: Vec<u8>,
    size: u64,
}

impl SnapshotCheck {
    pub fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > 32 {
            let cut = self.tail.len() - 32;
            self.hasher.update(&self.tail[..cut]);
            self.tail.drain(..cut);
        }
    }

    /// Ok with the snapshot size if the trailing hash matches.
    pub fn finish(self) -> Result<u64, String> {
        if self.tail.len() < 32 {
            return Err(format!(
                "snapshot is only {} bytes: too short to hold its sha256 trailer",
                self.size
            ));
        }
        let computed = self.hasher.finalize();
        if computed.as_slice() == self.tail.as_slice() {
            Ok(self.size)
        } else {
            Err(format!(
                "snapshot sha256 trailer {} does not match its content ({})",
                hex::encode(&self.tail),
                hex::encode(computed)
            ))
        }
    }
}

async fn fail(tx: &mpsc::Sender<io::Result<Bytes>>, e: SourceError) -> SourceError {
    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
    e
}

async fn forward(tx: &mpsc::Sender<io::Result<Bytes>>, chunk: Bytes) -> Result<(), SourceError> {
    tx.send(Ok(chunk)).await.map_err(|_| SourceError::Failed {
        what: "backup".into(),
        detail: "the archive pipeline stopped".into(),
    })
}

/// Streams a Maintenance Snapshot into `tx`, failing it if the trailer is wrong.
pub async fn snapshot(
    client: &mut Client,
    endpoints: &[String],
    tx: mpsc::Sender<io::Result<Bytes>>,
) -> Result<BackupMeta, SourceError> {
    let status = match client.status().await {
        Ok(s) => s,
        Err(e) => return Err(fail(&tx, map_err(endpoints, "status", e)).await),
    };
    let observed_at = Utc::now();
    let revision = status.header().map_or(0, |h| h.revision());
    let mut stream = match client.snapshot().await {
        Ok(s) => s,
        Err(e) => return Err(fail(&tx, map_err(endpoints, "snapshot", e)).await),
    };
    let mut check = SnapshotCheck::default();
    loop {
        match stream.message().await {
            Ok(Some(msg)) => {
                let blob = Bytes::copy_from_slice(msg.blob());
                check.update(&blob);
                forward(&tx, blob).await?;
            }
            Ok(None) => break,
            Err(e) => return Err(fail(&tx, map_err(endpoints, "snapshot stream", e)).await),
        }
    }
    let size = match check.finish() {
        Ok(size) => size,
        Err(detail) => {
            let e = SourceError::Integrity {
                what: format!("etcd snapshot from {}", endpoints.join(",")),
                detail,
            };
            return Err(fail(&tx, e).await);
        }
    };
    Ok(BackupMeta {
        revision,
        observed_at,
        items: BTreeMap::from([("snapshot_bytes".to_string(), size)]),
    })
}

/// Streams every key under `prefix` (or all keys) at one revision as JSON Lines.
pub async fn keys(
    client: &mut Client,
    endpoints: &[String],
    prefix: Option<&str>,
    tx: mpsc::Sender<io::Result<Bytes>>,
) -> Result<BackupMeta, SourceError> {
    let (mut start, end) = match prefix {
        Some(p) if !p.is_empty() => (p.as_bytes().to_vec(), prefix_end(p.as_bytes())),
        _ => (vec![0], vec![0]),
    };
    let mut revision = 0i64;
    let mut observed_at = Utc::now();
    let mut count = 0u64;
    loop {
        let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if revision > 0 {
            // Every page reads the revision of the first one: one consistent view.
            opts = opts.with_revision(revision);
        }
        let page = match client.get(start.clone(), Some(opts)).await {
            Ok(p) => p,
            Err(e) => return Err(fail(&tx, map_err(endpoints, "range read", e)).await),
        };
        if revision == 0 {
            revision = page.header().map_or(0, |h| h.revision());
            observed_at = Utc::now();
        }
        let mut lines = Vec::with_capacity(page.kvs().len() * 128);
        for kv in page.kvs() {
            let record = KeyRecord::from_kv(kv);
            // Serializing a struct of strings and integers cannot fail.
            serde_json::to_writer(&mut lines, &record).unwrap_or_default();
            lines.push(b'\n');
            count += 1;
        }
        if !lines.is_empty() {
            forward(&tx, Bytes::from(lines)).await?;
        }
        match (page.more(), page.kvs().last()) {
            (true, Some(last)) => {
                start = last.key().to_vec();
                start.push(0);
            }
            _ => break,
        }
    }
    Ok(BackupMeta {
        revision,
        observed_at,
        items: BTreeMap::from([("keys".to_string(), count)]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_trailer(body: &[u8]) -> Vec<u8> {
        let mut v = body.to_vec();
        v.extend_from_slice(&Sha256::digest(body));
        v
    }

    #[test]
    fn trailer_checked_across_chunk_boundaries() {
        let data = with_trailer(&[7u8; 1000]);
        for split in [1, 31, 32, 33, 500, 1031] {
            let mut c = SnapshotCheck::default();
            for chunk in data.chunks(split) {
                c.update(chunk);
            }
            assert_eq!(c.finish(), Ok(1032), "split {split}");
        }
    }

    #[test]
    fn flipped_byte_fails_the_check() {
        let mut data = with_trailer(&[7u8; 1000]);
        data[10] ^= 1;
        let mut c = SnapshotCheck::default();
        c.update(&data);
        assert!(c.finish().is_err());
        let mut short = SnapshotCheck::default();
        short.update(b"tiny");
        assert!(short.finish().is_err());
    }
}
