//! Replaying a stream's events into a cluster after its base point was
//! restored, in revision order. A transaction holds whole revisions of the
//! source, never part of one (unless one revision alone is larger than the
//! target takes in a request): every commit leaves the cluster in a state
//! the source had. Consecutive revisions that touch different keys go into
//! one transaction (etcd refuses a key twice in one), up to etcd's op and
//! byte limits: one round trip per revision would cap a replay at the
//! target's serial write rate (under 1 000 revisions/s on the lab).

use std::collections::HashSet;

use std::collections::BTreeMap;

use etcd_client::{Client, PutOptions, Txn, TxnOp};
use tokio::sync::mpsc;

use super::event::{EventOp, EventRecord};
use super::lease::{Granted, SourceLease, lease_missing};
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
    /// The leases granted for the puts, and the puts written unleased.
    pub leases: Granted,
    /// Events outside the restore's prefix, or drill canary markers.
    pub left_out: u64,
    /// The last revision replayed (read into a transaction).
    pub reached: u64,
    /// The last revision of the last transaction the target took.
    pub committed: u64,
    /// Transactions sent, and revisions that had to be split over several.
    pub transactions: u64,
    pub split: u64,
}

impl Replayed {
    pub fn applied(&self) -> Applied {
        let mut message = format!(
            "stream replayed up to revision {}: {} revisions, {} puts, {} deletes",
            self.reached, self.revisions, self.puts, self.deletes
        );
        message.push_str(&format!(" in {} transactions", self.transactions));
        if self.split > 0 {
            message.push_str(&format!(
                " ({} revisions were larger than one request and were written in parts)",
                self.split
            ));
        }
        if let Some(leases) = self.leases.in_words() {
            message.push_str(&format!(" ({leases})"));
        }
        Applied {
            message,
            counts: BTreeMap::from([
                ("replayed_revisions".to_string(), self.revisions),
                ("replayed_puts".to_string(), self.puts),
                ("replayed_deletes".to_string(), self.deletes),
                ("replay_transactions".to_string(), self.transactions),
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

/// One operation of a revision, with its key, size and the lease it needs.
struct Op {
    key: Vec<u8>,
    op: TxnOp,
    size: usize,
    lease: Option<SourceLease>,
}

/// The transaction being filled: whole revisions with disjoint keys.
#[derive(Default)]
struct Batch {
    ops: Vec<TxnOp>,
    keys: HashSet<Vec<u8>>,
    bytes: usize,
    /// The leases its puts are attached to: granted before it is sent.
    leases: Vec<SourceLease>,
}

impl Batch {
    fn takes(&self, rev: &[Op], budget: usize) -> bool {
        let bytes: usize = rev.iter().map(|o| o.size).sum();
        self.ops.len() + rev.len() <= MAX_TXN_OPS
            && self.bytes + bytes <= budget
            && rev.iter().all(|o| !self.keys.contains(&o.key))
    }

    fn add(&mut self, rev: Vec<Op>) {
        for o in rev {
            self.bytes += o.size;
            self.keys.insert(o.key);
            self.ops.push(o.op);
            self.leases.extend(o.lease);
        }
    }
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
    let mut batch = Batch::default();
    // The revision being read, and its operations.
    let mut current: (u64, Vec<Op>) = (0, Vec::new());
    let mut w = Writer {
        client,
        endpoints,
        budget,
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
            let rev = u64::try_from(ev.rev).ok().filter(|r| *r > 0).ok_or_else(|| {
                Error::from(SourceError::Integrity {
                    what: "a stream segment's event".into(),
                    detail: format!(
                        "revision {} is not one etcd gives: the segment is not one drtool wrote",
                        ev.rev
                    ),
                })
            })?;
            if rev > to {
                break 'segments;
            }
            if rev != current.0 {
                let done = std::mem::replace(&mut current, (rev, Vec::new()));
                w.revision(&mut batch, done, &mut out).await?;
                if out.revisions % 256 == 0 {
                    job.items(out.revisions, None);
                    stop_if_cancelled(job, &out)?;
                }
            }
            if let Some(op) = op_of(&ev, &scope, &mut out)? {
                current.1.push(op);
            }
        }
    }
    w.revision(&mut batch, current, &mut out).await?;
    w.flush(&mut batch, &mut out).await?;
    job.items(out.revisions, None);
    Ok(out)
}

struct Writer<'c> {
    client: &'c mut Client,
    endpoints: &'c [String],
    budget: usize,
}

impl Writer<'_> {
    /// Adds a whole revision (`0`: none yet) to the batch, sending the batch
    /// first when the revision does not fit in it.
    async fn revision(
        &mut self,
        batch: &mut Batch,
        (rev, ops): (u64, Vec<Op>),
        out: &mut Replayed,
    ) -> Result<(), Error> {
        if rev == 0 {
            return Ok(());
        }
        if !batch.takes(&ops, self.budget) {
            self.flush(batch, out).await?;
        }
        if batch.takes(&ops, self.budget) {
            batch.add(ops);
        } else {
            // One revision larger than a request: in parts, each under it.
            out.split += 1;
            for op in ops {
                if !batch.takes(std::slice::from_ref(&op), self.budget) {
                    self.flush(batch, out).await?;
                }
                batch.add(vec![op]);
            }
        }
        out.revisions += 1;
        out.reached = rev;
        Ok(())
    }

    async fn flush(&mut self, batch: &mut Batch, out: &mut Replayed) -> Result<(), Error> {
        if batch.ops.is_empty() {
            return Ok(());
        }
        let Batch { ops, leases, .. } = std::mem::take(batch);
        out.transactions += 1;
        let done = out.reached;
        // A lease granted earlier may have run out since (a short TTL during
        // a long replay): then it is granted again and the transaction sent
        // once more.
        let mut again = true;
        loop {
            out.leases
                .grant(self.client, self.endpoints, &leases)
                .await
                .map_err(|e| {
                    Error::from(e).noted(format!(
                        "the transaction ending at revision {done} was not written; restore again to finish"
                    ))
                })?;
            match self.client.txn(Txn::new().and_then(ops.clone())).await {
                Ok(_) => {
                    out.committed = done;
                    return Ok(());
                }
                Err(e) if again && lease_missing(&e) => {
                    out.leases.forget(leases.iter().map(|l| l.id));
                    again = false;
                }
                Err(e) => {
                    return Err(Error::from(map_err(self.endpoints, "replay transaction", e))
                        .noted(format!(
                            "the transaction ending at revision {done} was not written; restore again to finish"
                        )));
                }
            }
        }
    }
}

/// Stops a cancelled replay, saying the state the target holds: that of
/// the last transaction it took (revisions read into the next one were not
/// written).
fn stop_if_cancelled(job: &Job, out: &Replayed) -> Result<(), Error> {
    if !job.is_cancelled() {
        return Ok(());
    }
    let holds = match out.committed {
        0 => "no replayed change was written: the cluster holds the base point's state".to_string(),
        rev => format!("the cluster holds the state of revision {rev}"),
    };
    Err(Error::cancelled(format!(
        "the stream's replay was cancelled; {holds}; restore again to replay the rest"
    )))
}

/// The operation of one event, or none when it is outside the restore.
fn op_of(ev: &EventRecord, scope: &Scope<'_>, out: &mut Replayed) -> Result<Option<Op>, Error> {
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
        lease_ttl: None,
    };
    let key = record.key_bytes().map_err(bad)?;
    let outside = scope.prefix.is_some_and(|p| !key.starts_with(p.as_bytes()));
    let canary = scope
        .leave_out
        .is_some_and(|p| key.starts_with(p.as_bytes()));
    if outside || canary {
        out.left_out += 1;
        return Ok(None);
    }
    Ok(Some(match ev.op {
        EventOp::Put => {
            let value = record.value_bytes().map_err(bad)?;
            out.puts += 1;
            // A lease is granted under its source id (see `lease`).
            let lease = SourceLease::of(ev.lease, ev.lease_ttl).filter(|l| l.ttl.is_some());
            if ev.lease != 0 && lease.is_none() {
                out.leases.unleased += 1;
            }
            let options = lease.map(|l| PutOptions::new().with_lease(l.id));
            Op {
                size: key.len() + value.len() + PER_OP_OVERHEAD,
                op: TxnOp::put(key.clone(), value, options),
                key,
                lease,
            }
        }
        EventOp::Delete => {
            out.deletes += 1;
            Op {
                size: key.len() + PER_OP_OVERHEAD,
                op: TxnOp::delete(key.clone(), None),
                key,
                lease: None,
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(key: &str, size: usize) -> Op {
        Op {
            key: key.as_bytes().to_vec(),
            op: TxnOp::delete(key, None),
            size,
            lease: None,
        }
    }

    #[test]
    fn a_cancelled_replay_names_the_last_revision_the_target_took() {
        use crate::engine::Operation;
        use crate::engine::events::Job;
        let job = Job::unobserved(Operation::Restore);
        let out = Replayed {
            reached: 120,
            committed: 100,
            ..Replayed::default()
        };
        assert!(stop_if_cancelled(&job, &out).is_ok());
        job.cancel_token().cancel();
        let said = stop_if_cancelled(&job, &out)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(said.contains("holds the state of revision 100;"), "{said}");
        assert!(!said.contains("120"), "{said}");
        let none = Replayed::default();
        let said = stop_if_cancelled(&job, &none)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(said.contains("holds the base point's state"), "{said}");
    }

    #[test]
    fn a_transaction_takes_whole_revisions_with_keys_it_does_not_hold_yet() {
        let mut b = Batch::default();
        assert!(b.takes(&[op("a", 10), op("b", 10)], 100));
        b.add(vec![op("a", 10), op("b", 10)]);
        assert!(!b.takes(&[op("c", 10), op("a", 10)], 100), "a again");
        assert!(b.takes(&[op("c", 80)], 100));
        assert!(!b.takes(&[op("c", 81)], 100), "over the byte budget");
        let many: Vec<Op> = (0..MAX_TXN_OPS - 1)
            .map(|i| op(&format!("k{i}"), 0))
            .collect();
        assert!(!b.takes(&many, usize::MAX), "over etcd's op limit");
        assert!(Batch::default().takes(&many, usize::MAX));
    }
}
