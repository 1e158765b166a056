//! Leases across a backup and a restore. A backup (or a stream) reads the
//! remaining TTL of each lease its keys are attached to; a restore grants
//! the lease in the target under the same id with that TTL and attaches the
//! keys to it, so keys that expire in the source expire in the restored
//! cluster too (a service's registration, a Kubernetes Event), instead of
//! living for ever.
//!
//! The TTL is the one read when the backup (or the stream) saw the lease.
//! A lease kept alive by its holder shows its full TTL; one left to run out
//! shows what it had left. A restore starts that clock again at the grant,
//! with at least [`MIN_GRANT_TTL`]: no restore revokes a key earlier than
//! its source would have. A lease whose TTL cannot be read (no permission
//! on all its keys, no answer) is not a failed backup: its keys come back
//! unleased, and the backup and the restore say how many.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use etcd_client::{Client, LeaseGrantOptions};
use futures::StreamExt;

use super::map_err;
use crate::error::SourceError;

/// A stream reads a lease's TTL again once its reading is this old.
const STALE: Duration = Duration::from_secs(10);
/// How long one TTL read or grant may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// TTL reads and grants in flight at once (one round trip each).
const AT_ONCE: usize = 32;
/// etcd's largest lease TTL (`MaxLeaseTTL`).
const MAX_TTL: i64 = 9_000_000_000;
/// The shortest TTL a restore grants: a lease read with seconds left (or
/// none) would otherwise run out between its grant and the transaction
/// that attaches its keys. Keys then live a little longer than they would
/// have in the source, never shorter.
pub const MIN_GRANT_TTL: i64 = 60;
/// Readings a long stream keeps before the old ones are dropped.
const KEEP: usize = 100_000;

/// The remaining TTLs of the leases a backup or a stream has met.
#[derive(Debug, Default)]
pub struct Ttls {
    read: HashMap<i64, (Option<i64>, Instant)>,
    /// Reads that failed (no permission on the lease's keys, no answer in
    /// time): those keys carry no TTL and come back unleased.
    pub unread: u64,
}

impl Ttls {
    /// Reads the remaining TTL of each of `ids` not read yet (or, `fresh`,
    /// read over [`STALE`] ago), a few at once. A lease the cluster no
    /// longer knows reads 0; one that cannot be read reads as unknown. Only
    /// an unreachable cluster is an error.
    pub async fn read(
        &mut self,
        client: &Client,
        endpoints: &[String],
        ids: impl IntoIterator<Item = i64>,
        fresh: bool,
    ) -> Result<(), SourceError> {
        let wanted: BTreeSet<i64> = ids
            .into_iter()
            .filter(|id| *id != 0)
            .filter(|id| match self.read.get(id) {
                Some((_, at)) => fresh && at.elapsed() >= STALE,
                None => true,
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let results: Vec<(i64, Result<Option<i64>, SourceError>)> = futures::stream::iter(wanted)
            .map(|id| {
                let mut client = client.clone();
                async move { (id, read_one(&mut client, endpoints, id).await) }
            })
            .buffer_unordered(AT_ONCE)
            .collect()
            .await;
        for (id, ttl) in results {
            let ttl = ttl?;
            if ttl.is_none() {
                self.unread += 1;
            }
            self.read.insert(id, (ttl, Instant::now()));
        }
        if self.read.len() > KEEP {
            self.read.retain(|_, (_, at)| at.elapsed() < STALE * 6);
        }
        Ok(())
    }

    /// The TTL last read for lease `id` (none: not read, or unreadable).
    pub fn known(&self, id: i64) -> Option<i64> {
        self.read.get(&id).and_then(|(ttl, _)| *ttl)
    }
}

async fn read_one(
    client: &mut Client,
    endpoints: &[String],
    id: i64,
) -> Result<Option<i64>, SourceError> {
    match tokio::time::timeout(CALL_TIMEOUT, client.lease_time_to_live(id, None)).await {
        Err(_) => Ok(None),
        // A lease that is gone reads -1 (etcd 3.5) or not found (3.4).
        Ok(Ok(r)) => Ok(Some(r.ttl().clamp(0, MAX_TTL))),
        Ok(Err(e)) if lease_missing(&e) => Ok(Some(0)),
        Ok(Err(e)) => match map_err(endpoints, "lease TTL read", e) {
            unreachable @ SourceError::Unreachable { .. } => Err(unreachable),
            _ => Ok(None),
        },
    }
}

/// A key's lease in the source: its id and the TTL read with it (none in
/// points and segments written before drtool carried leases, or when the
/// read failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLease {
    pub id: i64,
    pub ttl: Option<i64>,
}

impl SourceLease {
    /// The lease of a record's fields (none for `lease == 0`).
    pub fn of(id: i64, ttl: Option<i64>) -> Option<SourceLease> {
        (id != 0).then_some(SourceLease { id, ttl })
    }

    /// The lease id a key is written with: its own when its TTL is known,
    /// else none (the key comes back unleased).
    pub fn attached(lease: Option<SourceLease>) -> i64 {
        lease.filter(|l| l.ttl.is_some()).map_or(0, |l| l.id)
    }
}

/// The leases a restore has granted in the target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted {
    /// Granted (or found) and not known to have run out since.
    alive: HashSet<i64>,
    counted: HashSet<i64>,
    /// Leases granted under their source id with their TTL.
    pub leases: u64,
    /// Leases found in the target under that id, used as they are.
    pub reused: u64,
    /// Keys written without their lease: their point or segment holds no
    /// TTL for it (written before drtool carried leases, or unreadable).
    pub unleased: u64,
}

impl Granted {
    /// Grants each of `leases` with a known TTL that is not granted yet,
    /// under its source id, a few at once: before the keys attached to
    /// them are written. A lease with that id already in the target (a
    /// restore into the cluster that holds it, or a replay after its base)
    /// is used as it is.
    pub async fn grant(
        &mut self,
        client: &Client,
        endpoints: &[String],
        leases: &[SourceLease],
    ) -> Result<(), SourceError> {
        let todo: BTreeMap<i64, i64> = leases
            .iter()
            .filter(|l| !self.alive.contains(&l.id))
            .filter_map(|l| Some((l.id, l.ttl?)))
            .collect();
        let results: Vec<(i64, Result<bool, etcd_client::Error>)> = futures::stream::iter(todo)
            .map(|(id, ttl)| {
                let mut client = client.clone();
                async move { (id, grant_one(&mut client, id, ttl).await) }
            })
            .buffer_unordered(AT_ONCE)
            .collect()
            .await;
        for (id, granted) in results {
            let fresh = granted.map_err(|e| {
                let e = map_err(endpoints, "lease grant", e);
                match e {
                    SourceError::Failed { what, detail } => SourceError::Failed {
                        what,
                        detail: format!("{detail} (lease {id:x})"),
                    },
                    other => other,
                }
            })?;
            self.alive.insert(id);
            if self.counted.insert(id) {
                if fresh {
                    self.leases += 1;
                } else {
                    self.reused += 1;
                }
            }
        }
        Ok(())
    }

    /// Forgets `ids`' grants, after a transaction found one of them gone
    /// (it ran out in the target): the next grant makes them again.
    pub fn forget(&mut self, ids: impl IntoIterator<Item = i64>) {
        for id in ids {
            self.alive.remove(&id);
        }
    }

    /// What a restore says of leases, or nothing when no key had one.
    pub fn in_words(&self) -> Option<String> {
        let mut said = Vec::new();
        if self.leases > 0 {
            said.push(format!(
                "{} leases granted with their remaining TTL (at least {MIN_GRANT_TTL} s)",
                self.leases
            ));
        }
        if self.reused > 0 {
            said.push(format!(
                "{} leases already in the target used as they are",
                self.reused
            ));
        }
        if self.unleased > 0 {
            said.push(format!(
                "{} keys written without their lease (their point holds no lease TTL: back up again to carry leases)",
                self.unleased
            ));
        }
        (!said.is_empty()).then(|| said.join("; "))
    }
}

/// Grants lease `id`: true when made, false when the target had it.
async fn grant_one(client: &mut Client, id: i64, ttl: i64) -> Result<bool, etcd_client::Error> {
    let options = LeaseGrantOptions::new().with_id(id);
    let ttl = ttl.clamp(MIN_GRANT_TTL, MAX_TTL);
    match tokio::time::timeout(CALL_TIMEOUT, client.lease_grant(ttl, Some(options))).await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) if lease_exists(&e) => Ok(false),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(etcd_client::Error::GRpcStatus(
            tonic::Status::deadline_exceeded(format!(
                "no answer to a lease grant within {}s",
                CALL_TIMEOUT.as_secs()
            )),
        )),
    }
}

fn status_says(e: &etcd_client::Error, code: tonic::Code, words: &str) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.code() == code && s.message().contains(words))
}

/// etcd's "requested lease not found".
pub fn lease_missing(e: &etcd_client::Error) -> bool {
    status_says(e, tonic::Code::NotFound, "lease not found")
}

/// etcd's "lease already exists".
fn lease_exists(e: &etcd_client::Error) -> bool {
    status_says(e, tonic::Code::FailedPrecondition, "lease already exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcds_lease_errors_are_told_apart_by_code_and_words() {
        let status = |code, words: &str| {
            etcd_client::Error::GRpcStatus(tonic::Status::new(code, words.to_string()))
        };
        let missing = status(
            tonic::Code::NotFound,
            "etcdserver: requested lease not found",
        );
        assert!(lease_missing(&missing));
        assert!(!lease_exists(&missing));
        let exists = status(
            tonic::Code::FailedPrecondition,
            "etcdserver: lease already exists",
        );
        assert!(lease_exists(&exists));
        assert!(!lease_missing(&exists));
        assert!(!lease_missing(&status(
            tonic::Code::NotFound,
            "key not found"
        )));
    }

    #[test]
    fn a_restore_says_what_it_did_with_leases() {
        assert_eq!(Granted::default().in_words(), None);
        let g = Granted {
            leases: 2,
            reused: 1,
            unleased: 3,
            ..Granted::default()
        };
        let said = g.in_words().unwrap_or_default();
        assert!(
            said.starts_with(
                "2 leases granted with their remaining TTL (at least 60 s); \
                 1 leases already in the target used as they are; \
                 3 keys written without their lease"
            ),
            "{said}"
        );
        assert_eq!(SourceLease::of(0, Some(5)), None);
        // A key whose lease TTL is unknown is written unleased.
        assert_eq!(SourceLease::attached(SourceLease::of(7, None)), 0);
        assert_eq!(SourceLease::attached(SourceLease::of(7, Some(0))), 7);
    }
}
