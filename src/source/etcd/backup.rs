//! etcd backups as plaintext streams.

use std::collections::BTreeMap;
use std::io;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use etcd_client::{Client, GetOptions};
use tokio::sync::mpsc;

use super::lease::Ttls;
use super::{KeyRecord, map_err, prefix_end};
use crate::engine::events::Job;
use crate::error::SourceError;

/// A `keys` page aims at this many bytes of keys and values.
const PAGE_BYTES: usize = 4 << 20;
/// Keys per page at most, and for the first page, before sizes are known.
const MAX_PAGE_KEYS: i64 = 1000;
const FIRST_PAGE_KEYS: i64 = 16;
/// The largest response the client accepts: a page and one value as large as
/// an etcd can be configured to store (its default limit is 1.5 MiB).
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// What a backup learned about the cluster.
#[derive(Debug, Clone)]
pub struct BackupMeta {
    pub revision: i64,
    /// A snapshot's revision read from its own bytes, or why it could not
    /// be (none for keys).
    pub snapshot_revision: Option<Result<i64, String>>,
    pub observed_at: DateTime<Utc>,
    pub items: BTreeMap<String, u64>,
}

async fn fail(tx: &mpsc::Sender<io::Result<Bytes>>, e: SourceError) -> SourceError {
    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
    e
}

async fn forward(tx: &mpsc::Sender<io::Result<Bytes>>, chunk: Bytes) -> Result<(), SourceError> {
    tx.send(Ok(chunk))
        .await
        .map_err(|_| SourceError::Stopped("etcd backup".into()))
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
    // The key count at that revision: what a restore test checks the
    // restored snapshot against.
    let counted = client
        .get(
            vec![0],
            Some(
                GetOptions::new()
                    .with_range(vec![0])
                    .with_count_only()
                    .with_revision(revision),
            ),
        )
        .await;
    let mut items = BTreeMap::new();
    if let Ok(c) = counted {
        items.insert("keys".to_string(), c.count() as u64);
    }
    let mut stream = match client.snapshot().await {
        Ok(s) => s,
        Err(e) => return Err(fail(&tx, map_err(endpoints, "snapshot", e)).await),
    };
    // The trailing sha256 is checked by the archive pipeline while it streams.
    // The revision the snapshot holds is read from its own pages as they go
    // by: a Status call before it (`revision`) only says "at least".
    let mut scan = super::snapfile::revision_scan();
    let mut size = 0u64;
    loop {
        match stream.message().await {
            Ok(Some(msg)) => {
                scan.feed(msg.blob());
                let blob = Bytes::copy_from_slice(msg.blob());
                size += blob.len() as u64;
                forward(&tx, blob).await?;
            }
            Ok(None) => break,
            Err(e) => return Err(fail(&tx, map_err(endpoints, "snapshot stream", e)).await),
        }
    }
    items.insert("snapshot_bytes".to_string(), size);
    let read = super::snapfile::SnapshotFile::of_scan(scan, std::path::Path::new("the snapshot"))
        .and_then(|f| f.cluster_revision());
    let snapshot_revision = Some(match read {
        Ok(r) => i64::try_from(r).map_err(|_| format!("revision {r} is out of range")),
        Err(e) => Err(e.to_string()),
    });
    Ok(BackupMeta {
        revision,
        snapshot_revision,
        observed_at,
        items,
    })
}

/// Streams every key under `prefix` (or all keys) at one revision as JSON Lines.
pub async fn keys(
    client: &mut Client,
    endpoints: &[String],
    prefix: Option<&str>,
    tx: mpsc::Sender<io::Result<Bytes>>,
    job: &Job,
) -> Result<BackupMeta, SourceError> {
    let (mut start, end) = match prefix {
        Some(p) if !p.is_empty() => (p.as_bytes().to_vec(), prefix_end(p.as_bytes())),
        _ => (vec![0], vec![0]),
    };
    let mut revision = 0i64;
    let mut observed_at = Utc::now();
    let mut count = 0u64;
    // Pages are sized by bytes: as many keys as the largest key and value seen
    // so far allow in PAGE_BYTES, so 1 MiB Secrets do not make 1 GiB pages.
    let mut kv = client
        .kv_client()
        .max_decoding_message_size(MAX_RESPONSE_BYTES);
    let mut limit = FIRST_PAGE_KEYS;
    let mut largest = 0usize;
    let mut ttls = Ttls::default();
    loop {
        let mut opts = GetOptions::new().with_range(end.clone()).with_limit(limit);
        if revision > 0 {
            // Every page reads the revision of the first one: one consistent view.
            opts = opts.with_revision(revision);
        }
        let page = match kv.get(start.clone(), Some(opts)).await {
            Ok(p) => p,
            // Still too large for the client: fewer keys per page.
            Err(e) if too_large(&e) && limit > 1 => {
                limit = (limit / 4).max(1);
                continue;
            }
            Err(e) => return Err(fail(&tx, map_err(endpoints, "range read", e)).await),
        };
        if revision == 0 {
            revision = page.header().map_or(0, |h| h.revision());
            observed_at = Utc::now();
        }
        let leases = page.kvs().iter().map(etcd_client::KeyValue::lease);
        if let Err(e) = ttls.read(client, endpoints, leases, false).await {
            return Err(fail(&tx, e).await);
        }
        let mut lines = Vec::with_capacity(page.kvs().len() * 128);
        for kv in page.kvs() {
            largest = largest.max(kv.key().len() + kv.value().len());
            let mut record = KeyRecord::from_kv(kv);
            if record.lease != 0 {
                record.lease_ttl = ttls.known(record.lease);
            }
            // Serializing a struct of strings and integers cannot fail.
            serde_json::to_writer(&mut lines, &record).unwrap_or_default();
            lines.push(b'\n');
            count += 1;
        }
        if !lines.is_empty() {
            forward(&tx, Bytes::from(lines)).await?;
        }
        job.items(count, None);
        limit = (PAGE_BYTES / largest.max(1)).clamp(1, MAX_PAGE_KEYS as usize) as i64;
        match (page.more(), page.kvs().last()) {
            (true, Some(last)) => {
                start = last.key().to_vec();
                start.push(0);
            }
            _ => break,
        }
    }
    let mut items = BTreeMap::from([("keys".to_string(), count)]);
    if ttls.unread > 0 {
        job.warn(format!(
            "the TTL of {} leases could not be read (etcd asks for read permission on every key of a lease): \
             their keys will be restored without a lease; grant the backup's user read on those keys to carry them",
            ttls.unread
        ));
        items.insert("lease_ttls_unread".to_string(), ttls.unread);
    }
    Ok(BackupMeta {
        revision,
        snapshot_revision: None,
        observed_at,
        items,
    })
}

/// Whether a read failed because its response exceeded the client's limit.
fn too_large(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if matches!(s.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted)
            // etcd's "required revision has been compacted" is OutOfRange too.
            && !s.message().contains("compacted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compacted_revision_is_not_a_page_too_large() {
        let status = |code, words: &str| {
            etcd_client::Error::GRpcStatus(tonic::Status::new(code, words.to_string()))
        };
        assert!(too_large(&status(
            tonic::Code::ResourceExhausted,
            "grpc: received message larger than max"
        )));
        assert!(too_large(&status(
            tonic::Code::OutOfRange,
            "message length too large"
        )));
        assert!(!too_large(&status(
            tonic::Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted"
        )));
    }
}
