//! What an etcd point holds, without etcd: a keys point is read line by
//! line from its verified stream; a snapshot point is downloaded and
//! verified into a file in the temporary folder (`TMPDIR`) and read with
//! the snapshot reader ([`super::snapfile`]), as of its newest revision or
//! an older one its history still holds. The file is removed when the
//! listing ends, whatever ends it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::mpsc;

use super::home::EtcdKind;
use super::home::spec;
use super::options::{KEY, PREFIX};
use super::restore::Lines;
use super::snapfile::StoredKv;
use super::snapkeys::{scan, spool};
use super::{Connection, EtcdError, KEYS_NAME, KeyRecord, SNAPSHOT_NAME, key_text};
use crate::archive::Manifest;
use crate::config::Target;
use crate::engine::events::Job;
use crate::engine::kind::{Body, BodySink, Column, Contents, Filter, Item, Listed, Sink};
use crate::engine::options::FlagValues;
use crate::engine::point::PointData;
use crate::error::{Error, SourceError};
use bytes::Bytes;

static COLUMNS: [Column; 3] = [
    Column {
        key: "mod_revision",
        header: "REVISION",
    },
    Column {
        key: "lease",
        header: "LEASE",
    },
    Column {
        key: "lease_ttl",
        header: "TTL",
    },
];

/// A key's item; `lease_ttl` is what the point knew of its lease's TTL.
fn key_item(kv: &StoredKv, lease_ttl: Option<i64>) -> Item {
    let mut details = BTreeMap::new();
    details.insert("mod_revision".into(), json!(kv.mod_revision));
    details.insert("create_revision".into(), json!(kv.create_revision));
    details.insert("version".into(), json!(kv.version));
    if kv.lease != 0 {
        details.insert("lease".into(), json!(format!("{:x}", kv.lease)));
        if let Some(ttl) = lease_ttl {
            details.insert("lease_ttl".into(), json!(ttl));
        }
    }
    if std::str::from_utf8(&kv.key).is_err() || key_text(&kv.key).len() != kv.key.len() {
        details.insert("key_hex".into(), json!(hex::encode(&kv.key)));
    }
    Item {
        kind: "key".into(),
        name: key_text(&kv.key),
        size: Some(kv.value.len() as u64),
        details,
    }
}

/// A key's item with its value, for diffs.
fn key_body(kv: StoredKv, lease_ttl: Option<i64>) -> Body {
    Body {
        item: key_item(&kv, lease_ttl),
        key: kv.key,
        body: kv.value,
    }
}

fn unreadable(point: &str, detail: String) -> Error {
    SourceError::Integrity {
        what: format!("point {point}"),
        detail: format!("{detail}: the point is not a payload drtool wrote"),
    }
    .into()
}

/// Where a point's keys go, one at a time: each record with its lease's TTL.
type KeySink<'a> = &'a mut (dyn FnMut(StoredKv, Option<i64>) -> Result<(), Error> + Send);

#[async_trait]
impl Contents for EtcdKind {
    fn columns(&self, _manifest: &Manifest) -> &'static [Column] {
        &COLUMNS
    }

    /// The key as it is: etcd's own `/` levels.
    fn browse_path(&self, item: &Item) -> String {
        item.name.clone()
    }

    /// A folder is a `--prefix`, a key a `--key`; not a key named with
    /// escapes (its bytes are not the text shown).
    fn restore_selection(&self, path: &str, folder: bool, _sample: &Item) -> Option<FlagValues> {
        if path.contains('\\') {
            return None;
        }
        let flag = if folder { PREFIX } else { KEY };
        Some(FlagValues::default().with(flag, path))
    }

    async fn list(
        &self,
        manifest: &Manifest,
        data: PointData,
        filter: &Filter,
        sink: Sink<'_>,
        job: &Job,
    ) -> Result<Listed, Error> {
        let mut listed = Listed::default();
        let about = self
            .each_key(manifest, data, filter, job, &mut |kv, ttl| {
                listed.send(sink, key_item(&kv, ttl))
            })
            .await?;
        listed.about = about;
        Ok(listed)
    }

    async fn bodies(
        &self,
        manifest: &Manifest,
        data: PointData,
        filter: &Filter,
        sink: BodySink<'_>,
        job: &Job,
    ) -> Result<Listed, Error> {
        let mut listed = Listed::default();
        let about = self
            .each_key(manifest, data, filter, job, &mut |kv, ttl| {
                listed.send_body(sink, key_body(kv, ttl))
            })
            .await?;
        listed.about = about;
        Ok(listed)
    }

    async fn live_bodies(
        &self,
        target: &Target,
        region: &str,
        filter: &Filter,
        sink: BodySink<'_>,
        job: &Job,
    ) -> Result<Listed, Error> {
        live_keys(self, target, region, filter, sink, job).await
    }
}

impl EtcdKind {
    /// Hands each live key of the point `filter` wants to `sink`, in key
    /// order; returns lines on the point as a whole.
    async fn each_key(
        &self,
        manifest: &Manifest,
        data: PointData,
        filter: &Filter,
        job: &Job,
        sink: KeySink<'_>,
    ) -> Result<Vec<String>, Error> {
        let mut about = Vec::new();
        match manifest.payload.as_str() {
            KEYS_NAME => each_in_keys(manifest, data, filter, sink, job).await?,
            SNAPSHOT_NAME => about.extend(each_in_snapshot(data, filter, sink, job).await?),
            other => {
                return Err(Error::input(format!(
                    "point {} holds a {other} payload, which this drtool cannot read",
                    manifest.point_id
                )));
            }
        }
        Ok(about)
    }
}

async fn each_in_keys(
    manifest: &Manifest,
    data: PointData,
    filter: &Filter,
    sink: KeySink<'_>,
    job: &Job,
) -> Result<(), Error> {
    if let Some(rev) = filter.revision {
        return Err(Error::input(format!(
            "point {} is a keys point: it holds one revision, not a history to read revision {rev} from; \
             list it without --revision, or restore to a revision with `drtool restore --revision` when a stream follows it",
            manifest.point_id
        )));
    }
    job.phase("reading keys");
    let mut stream = data.stream().await?;
    let mut lines = Lines::new(stream.take());
    let read = job
        .cancellable(async {
            while let Some((no, line)) = lines.next().await {
                let bad = |e: String| {
                    unreadable(&manifest.point_id, format!("keys payload line {no}: {e}"))
                };
                let record: KeyRecord =
                    serde_json::from_slice(&line).map_err(|e| bad(e.to_string()))?;
                if let Some((kv, ttl)) = record_kv(&record, filter).map_err(bad)? {
                    sink(kv, ttl)?;
                }
            }
            Ok(())
        })
        .await;
    drop(lines);
    stream.finish(read).await
}

/// A keys-payload record as a stored key, if `filter` wants it.
fn record_kv(
    record: &KeyRecord,
    filter: &Filter,
) -> Result<Option<(StoredKv, Option<i64>)>, String> {
    let key = record.key_bytes().map_err(|e| e.to_string())?;
    if !filter.wants(&key) {
        return Ok(None);
    }
    let kv = StoredKv {
        value: record.value_bytes().map_err(|e| e.to_string())?,
        key,
        create_revision: record.create_revision,
        mod_revision: record.mod_revision,
        version: record.version,
        lease: record.lease,
    };
    Ok(Some((kv, record.lease_ttl)))
}

/// The live keys of the target in `region` now, read as a keys backup
/// reads them (pages in key order at one revision), never written anywhere.
async fn live_keys(
    kind: &EtcdKind,
    target: &Target,
    region: &str,
    filter: &Filter,
    sink: BodySink<'_>,
    job: &Job,
) -> Result<Listed, Error> {
    if filter.revision.is_some() {
        return Err(Error::input(
            "the live cluster is compared as it is now: drop --revision",
        ));
    }
    let spec = spec(target)?;
    let region_spec = spec
        .regions
        .get(region)
        .ok_or_else(|| EtcdError::NoEndpoints {
            target: target.name.clone(),
            region: region.to_string(),
        })?;
    let connection = Connection::of(region_spec);
    let mut client = kind.client(&connection).await?;
    // The narrower of the target's prefix and the filter's.
    let prefix = match (&spec.prefix, &filter.prefix) {
        (_, Some(f)) => Some(f.clone()),
        (Some(p), None) => Some(p.clone()),
        (None, None) => None,
    };
    job.phase("reading the live keys");
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
    let endpoints = connection.endpoints.clone();
    let reading = super::keys(&mut client, &endpoints, prefix.as_deref(), tx, job);
    // The consumer owns the receiver: when it stops, the reader's next send
    // fails and the read ends.
    let consume = async move {
        let mut listed = Listed::default();
        crate::source::each_line(&mut rx, "the live keys", |line| {
            let record: KeyRecord = serde_json::from_slice(line)
                .map_err(|e| Error::failed(format!("a live key did not read back: {e}")))?;
            if let Some((kv, ttl)) = record_kv(&record, filter).map_err(Error::failed)? {
                listed.send_body(sink, key_body(kv, ttl))?;
            }
            Ok(())
        })
        .await?;
        Ok::<Listed, Error>(listed)
    };
    let (read, consumed) = tokio::join!(reading, consume);
    let mut listed = consumed?;
    let meta = read.map_err(Error::from)?;
    listed.about.push(format!(
        "live in {region} at etcd revision {} ({})",
        meta.revision,
        connection.endpoints.join(",")
    ));
    Ok(listed)
}

async fn each_in_snapshot(
    data: PointData,
    filter: &Filter,
    sink: KeySink<'_>,
    job: &Job,
) -> Result<Vec<String>, Error> {
    let (_dir, file) = spool(&data, job).await?;
    job.phase("reading the snapshot");
    let (tx, mut rx) = mpsc::channel::<(StoredKv, Option<i64>)>(256);
    let path = file.0.clone();
    let (revision, prefix) = (filter.revision, filter.prefix.clone().unwrap_or_default());
    let reader = tokio::task::spawn_blocking(move || {
        scan(&path, revision, &prefix, |kv, ttl| {
            tx.blocking_send((kv, ttl)).is_ok()
        })
    });
    let mut failed = None;
    while let Some((kv, ttl)) = rx.recv().await {
        if let Err(e) = job.check_cancelled().and_then(|()| sink(kv, ttl)) {
            failed = Some(e);
            break;
        }
    }
    // Gone, the receiver stops the reader at its next key.
    drop(rx);
    let about = reader
        .await
        .map_err(|e| Error::failed(format!("the snapshot reader stopped: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    drop(file);
    about
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_show_binary_bytes_escaped_and_never_as_another_key() {
        assert_eq!(key_text(b"/registry/a"), "/registry/a");
        assert_eq!(key_text(b"a\\x00"), "a\\\\x00");
        assert_eq!(key_text(&[b'a', 0, 0xff]), "a\\x00\\xff");
        let item = key_item(
            &StoredKv {
                key: vec![b'k', 0xff],
                value: vec![0; 5],
                lease: 0x2a,
                ..StoredKv::default()
            },
            Some(30),
        );
        assert_eq!(item.size, Some(5));
        assert_eq!(item.details["key_hex"], json!("6bff"));
        assert_eq!(item.details["lease"], json!("2a"));
        assert_eq!(item.details["lease_ttl"], json!(30));
    }
}
