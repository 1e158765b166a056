//! A snapshot point read as keys: downloaded and verified into a file of
//! its own folder in `TMPDIR` (both removed when the read ends, whatever
//! ends it), then read without etcd by [`super::snapfile`]. `drtool ls`
//! lists it; a key-level restore (`--prefix` on a snapshot point) reads its
//! keys as the lines of a keys payload, so it is planned and applied as a
//! keys point's restore is.

use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use tokio::sync::mpsc;

use std::collections::BTreeMap;

use super::snapfile::{SnapshotFile, StoredKv, StoredLease};
use super::{B64, KeyRecord};
use crate::bbolt::BoltError;
use crate::engine::events::Job;
use crate::engine::point::{PointData, PointStream};
use crate::error::{Error, SourceError};

/// Removes a file when dropped.
pub(super) struct Spooled(pub(super) std::path::PathBuf);

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The lines of a keys payload a key-level restore reads: a keys point's
/// own verified stream, or the live keys under a prefix of a snapshot point
/// (downloaded and verified into a file first, then read without etcd).
pub(super) enum KeyLines {
    Keys(PointStream),
    Snapshot {
        reader: tokio::task::JoinHandle<Result<(), Error>>,
        file: Spooled,
        _dir: tempfile::TempDir,
    },
}

impl KeyLines {
    /// Opens the point's keys; with `snapshot_prefix`, the point is a
    /// snapshot and only keys under the prefix are read from it.
    pub(super) async fn open(
        data: &PointData,
        snapshot_prefix: Option<&str>,
        job: &Job,
    ) -> Result<(KeyLines, mpsc::Receiver<Bytes>), Error> {
        let Some(prefix) = snapshot_prefix else {
            let mut stream = data.stream().await?;
            let rx = stream.take();
            return Ok((KeyLines::Keys(stream), rx));
        };
        let (dir, file) = spool(data, job).await?;
        job.phase("reading the keys from the snapshot");
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let (path, prefix) = (file.0.clone(), prefix.to_string());
        let reader = tokio::task::spawn_blocking(move || snapshot_lines(&path, &prefix, &tx));
        Ok((
            KeyLines::Snapshot {
                reader,
                file,
                _dir: dir,
            },
            rx,
        ))
    }

    /// Ends the read: the consumer's result, or the error that explains best
    /// what went wrong (a damaged point, a reader that failed).
    pub(super) async fn finish<T>(self, consumed: Result<T, Error>) -> Result<T, Error> {
        match self {
            KeyLines::Keys(stream) => stream.finish(consumed).await,
            KeyLines::Snapshot { reader, file, .. } => {
                let read = reader
                    .await
                    .map_err(|e| Error::failed(format!("the snapshot reader stopped: {e}")))
                    .and_then(|r| r);
                drop(file);
                match (consumed, read) {
                    (Ok(v), Ok(())) => Ok(v),
                    // The consumer stopped first: its error is the cause.
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(e),
                }
            }
        }
    }
}

/// Downloads and verifies a snapshot point into a file of its own folder
/// in `TMPDIR`; both go when dropped.
pub(super) async fn spool(
    data: &PointData,
    job: &Job,
) -> Result<(tempfile::TempDir, Spooled), Error> {
    let dir = tempfile::Builder::new()
        .prefix("drtool-snapshot-")
        .tempdir()
        .map_err(|e| {
            Error::failed(format!(
                "cannot make a folder for the snapshot in {}: {e}; set TMPDIR to a folder with room for it",
                std::env::temp_dir().display()
            ))
        })?;
    let file = Spooled(dir.path().join(format!("{}.snapshot.db", data.point().id)));
    job.phase("downloading and verifying the snapshot");
    data.stream().await?.into_file(&file.0).await?;
    Ok((dir, file))
}

/// Sends the snapshot's live keys under `prefix` as keys-payload lines,
/// with their leases and the TTL the snapshot holds for each.
fn snapshot_lines(path: &Path, prefix: &str, tx: &mpsc::Sender<Bytes>) -> Result<(), Error> {
    scan(path, None, prefix, |kv, lease_ttl| {
        let record = KeyRecord {
            key: std::str::from_utf8(&kv.key).ok().map(str::to_string),
            key_b64: B64.encode(&kv.key),
            value_b64: B64.encode(&kv.value),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
            lease_ttl,
        };
        let mut line = serde_json::to_vec(&record).unwrap_or_default();
        line.push(b'\n');
        tx.blocking_send(Bytes::from(line)).is_ok()
    })
    .map(|_| ())
}

/// Reads the snapshot at `path` and hands each live key under `prefix` (as
/// of `revision`, the newest when none) with its lease's TTL to `send`,
/// which says false once nobody reads any more: that ends the read quietly.
/// Returns lines on the file as a whole.
pub(super) fn scan(
    path: &Path,
    revision: Option<u64>,
    prefix: &str,
    mut send: impl FnMut(StoredKv, Option<i64>) -> bool,
) -> Result<Vec<String>, Error> {
    let bad = |e: BoltError| -> Error {
        SourceError::Integrity {
            what: "the snapshot".into(),
            detail: e.to_string(),
        }
        .into()
    };
    let snap = SnapshotFile::open(path).map_err(bad)?;
    let newest = snap.revision().map_err(bad)?;
    let compacted = snap.compacted().map_err(bad)?;
    let oldest = compacted.unwrap_or(1);
    if let Some(r) = revision
        && !(oldest..=newest).contains(&r)
    {
        return Err(Error::input(format!(
            "the point's snapshot holds revisions {oldest} to {newest}, not {r}: list it as of one of those, or without --revision"
        )));
    }
    let leases: BTreeMap<i64, StoredLease> = snap.leases().map_err(bad)?;
    let mut about = vec![match compacted {
        Some(c) => format!("the snapshot holds revisions {c} to {newest} (compacted at {c})"),
        None => format!("the snapshot holds revisions 1 to {newest} (never compacted)"),
    }];
    if let Some(r) = revision {
        about.push(format!("read as of revision {r}"));
    }
    about.push(format!("{} leases", leases.len()));
    let mut stopped = false;
    let result = snap.each_live(revision, prefix.as_bytes(), |kv| {
        let ttl = match kv.lease {
            0 => None,
            id => leases.get(&id).map(remaining),
        };
        if send(kv, ttl) {
            return Ok(());
        }
        stopped = true;
        Err(BoltError::Io {
            path: path.to_path_buf(),
            detail: "nobody reads the keys any more".into(),
        })
    });
    match result {
        Err(_) if stopped => Ok(about),
        other => other.map(|()| about).map_err(bad),
    }
}

/// The TTL a lease comes back with: what was left at its last checkpoint,
/// else the whole TTL it was granted with.
fn remaining(l: &StoredLease) -> i64 {
    if l.remaining_ttl > 0 {
        l.remaining_ttl
    } else {
        l.ttl
    }
}
