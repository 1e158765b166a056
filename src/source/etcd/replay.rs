//! Replaying a stream's events into a cluster after its base point was
//! restored: one transaction per revision of the source (split only when a
//! revision is larger than the target takes in one request), in revision
//! order, so the cluster passes through states that existed.

use std::collections::BTreeMap;

use etcd_client::{Client, Txn, TxnOp};
use tokio::sync::mpsc;

use super::event::{EventOp, EventRecord};
use super::{MAX_TXN_OPS, map_err};
use crate::engine::events::Job;
use crate::engine::kind::Applied;
use crate::error::{Error, SourceError};

/// Room kept in every transaction for its framing and per-op overhead.
const REQUEST_MARGIN: usize = 16 * 1024;
const PER_OP_OVERHEAD: usize = 32;

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    pub revisions: u64,
    pub puts: u64,
    pub deletes: u64,
    /// Puts of keys that had a lease in the source: written without one.
    pub unleased: u64,
    /// Events outside the restore's prefix, or drill canary markers.
    pub left_out: u64,
    /// The last revision replayed.
    pub reached: u64,
}

impl Replayed {
    pub fn applied(&self) -> Applied {
        let mut message = format!(
            "stream replayed up to revision {}: {} revisions, {} puts, {} deletes",
            self.reached, self.revisions, self.puts, self.deletes
        );
        if self.unleased > 0 {
            message.push_str(&format!(
                " ({} keys had a lease in the source and were written without one)",
                self.unleased
            ));
        }
        Applied {
            message,
            counts: BTreeMap::from([
                ("replayed_revisions".to_string(), self.revisions),
                ("replayed_puts".to_string(), self.puts),
                ("replayed_deletes".to_string(), self.deletes),
            ]),
            failures: Vec::new(),
        }
    }
}

/// Which keys a replay writes, and how large its transactions may be.
pub struct Scope<'a> {
    pub prefix: Option<&'a str>,
    pub leave_out: Option<&'a str>,
    pub max_request_bytes: u64,
}

struct Batch {
    ops: Vec<TxnOp>,
    bytes: usize,
    revision: Option<u64>,
}

/// Replays the segments' events up to revision `to` into the cluster.
pub async fn replay(
    client: &mut Client,
    endpoints: &[String],
    mut segments: mpsc::Receiver<Result<Vec<u8>, Error>>,
    to: u64,
    scope: Scope<'_>,
    job: &Job,
) -> Result<Replayed, Error> {
    let budget = (scope.max_request_bytes as usize)
        .saturating_sub(REQUEST_MARGIN)
        .max(1);
    let mut out = Replayed::default();
    let mut batch = Batch {
        ops: Vec::new(),
        bytes: 0,
        revision: None,
    };
    'segments: while let Some(lines) = segments.recv().await {
        let lines = lines?;
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let ev: EventRecord = serde_json::from_slice(line).map_err(|e| {
                Error::from(SourceError::Integrity {
                    what: "a stream segment's event".into(),
                    detail: format!("{e}: the segment is not one drtool wrote"),
                })
            })?;
            let rev = u64::try_from(ev.rev).unwrap_or(0);
            if rev > to {
                break 'segments;
            }
            if batch.revision != Some(rev) {
                flush(client, endpoints, &mut batch, &out).await?;
                batch.revision = Some(rev);
                out.revisions += 1;
                out.reached = rev;
                if out.revisions % 256 == 0 {
                    job.items(out.revisions, None);
                    stop_if_cancelled(job, &out)?;
                }
            }
            add(client, endpoints, &mut batch, &ev, &scope, budget, &mut out).await?;
        }
    }
    flush(client, endpoints, &mut batch, &out).await?;
    job.items(out.revisions, None);
    Ok(out)
}

fn stop_if_cancelled(job: &Job, out: &Replayed) -> Result<(), Error> {
    if job.is_cancelled() {
        return Err(Error::cancelled(format!(
            "the stream's replay was cancelled after revision {} ({} revisions replayed); \
             the cluster holds the state of that revision",
            out.reached, out.revisions
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn add(
    client: &mut Client,
    endpoints: &[String],
    batch: &mut Batch,
    ev: &EventRecord,
    scope: &Scope<'_>,
    budget: usize,
    out: &mut Replayed,
) -> Result<(), Error> {
    let bad = |e: super::BadBase64| {
        Error::from(SourceError::Integrity {
            what: format!("a stream event of revision {}", ev.rev),
            detail: e.to_string(),
        })
    };
    let record = super::KeyRecord {
        key: None,
        key_b64: ev.key_b64.clone(),
        value_b64: ev.value_b64.clone(),
        create_revision: 0,
        mod_revision: 0,
        version: 0,
        lease: 0,
    };
    let key = record.key_bytes().map_err(bad)?;
    let outside = scope.prefix.is_some_and(|p| !key.starts_with(p.as_bytes()));
    let canary = scope
        .leave_out
        .is_some_and(|p| key.starts_with(p.as_bytes()));
    if outside || canary {
        out.left_out += 1;
        return Ok(());
    }
    let (op, size) = match ev.op {
        EventOp::Put => {
            let value = record.value_bytes().map_err(bad)?;
            let size = key.len() + value.len() + PER_OP_OVERHEAD;
            out.puts += 1;
            if ev.lease != 0 {
                out.unleased += 1;
            }
            (TxnOp::put(key, value, None), size)
        }
        EventOp::Delete => {
            out.deletes += 1;
            let size = key.len() + PER_OP_OVERHEAD;
            (TxnOp::delete(key, None), size)
        }
    };
    if !batch.ops.is_empty() && (batch.ops.len() >= MAX_TXN_OPS || batch.bytes + size > budget) {
        flush(client, endpoints, batch, out).await?;
    }
    batch.bytes += size;
    batch.ops.push(op);
    Ok(())
}

async fn flush(
    client: &mut Client,
    endpoints: &[String],
    batch: &mut Batch,
    out: &Replayed,
) -> Result<(), Error> {
    if batch.ops.is_empty() {
        return Ok(());
    }
    let ops = std::mem::take(&mut batch.ops);
    batch.bytes = 0;
    client.txn(Txn::new().and_then(ops)).await.map_err(|e| {
        Error::from(map_err(endpoints, "replay transaction", e)).noted(format!(
            "the stream was replayed up to revision {} before it; restore again to finish",
            out.reached.saturating_sub(1)
        ))
    })?;
    Ok(())
}
