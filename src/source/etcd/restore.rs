//! etcd restores: replaying a `keys` point into a cluster in batched transactions,
//! and materializing member data dirs from a snapshot with etcdutl/etcdctl.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use bytes::Bytes;
use etcd_client::{Client, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::mpsc;

use super::EtcdMember;
use super::lease::{Granted, SourceLease, lease_missing};
use super::{DEFAULT_MAX_REQUEST_BYTES, EtcdError, KeyRecord, MAX_TXN_OPS, map_err};
use crate::engine::events::Job;
use crate::engine::options::Existing;
use crate::error::{Error, SourceError};

/// What replaying a keys point would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysPlan {
    /// Keys in the point.
    pub in_point: u64,
    /// Keys selected by the prefix filter.
    pub selected: u64,
    /// Selected keys absent from the target: they will be created.
    pub create: u64,
    /// Selected keys present in the target.
    pub existing: u64,
    /// A few of the existing keys, for the plan.
    pub existing_examples: Vec<String>,
    /// Drill canary markers in the point, left out (only a drill's own
    /// restore brings them back).
    #[serde(default)]
    pub canaries_left_out: u64,
    /// Keys asked for by name (`--key`, `--object`) that the point lacks.
    #[serde(default)]
    pub missing: Vec<String>,
    /// Selected keys whose values Kubernetes encrypted at rest
    /// (`k8s:enc:...`), and a few of them.
    #[serde(default)]
    pub encrypted: u64,
    #[serde(default)]
    pub encrypted_examples: Vec<String>,
    /// Existing keys whose value in the target is the point's already.
    #[serde(default)]
    pub identical: u64,
    /// Existing keys whose value in the target differs from the point's.
    #[serde(default)]
    pub differ: u64,
    /// The first of those, with how they differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differing: Vec<KeyDiff>,
}

/// An existing key whose value differs from the point's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDiff {
    pub key: String,
    pub live_size: u64,
    pub point_size: u64,
    /// Live (`---`) against the point (`+++`), when both are UTF-8 text.
    pub text_diff: Option<String>,
}

/// Key diffs kept in a plan, and how long each may be.
const KEY_DIFFS: usize = 10;
const MAX_KEY_DIFF: usize = 4096;

/// Which keys of a payload a restore reads: those under `prefix`, or
/// exactly `keys` (when any), never those under `leave_out` (drill canary
/// markers).
#[derive(Debug, Clone, Copy, Default)]
pub struct Select<'a> {
    pub prefix: Option<&'a str>,
    pub keys: &'a [String],
    pub leave_out: Option<&'a str>,
}

/// What Kubernetes writes before a value it encrypted at rest.
pub const ENCRYPTED_AT_REST: &[u8] = b"k8s:enc:";

/// What replaying did.
#[derive(Debug, Default)]
pub struct KeysOutcome {
    pub created: u64,
    pub overwritten: u64,
    pub skipped: u64,
    /// The leases granted for the keys written, and the keys written unleased.
    pub leases: Granted,
}

/// One key of a point, as a restore writes it.
#[derive(Debug)]
struct Kv {
    key: Vec<u8>,
    value: Vec<u8>,
    lease: Option<SourceLease>,
}

/// Splits a chunk stream into lines without holding more than one line extra.
pub(super) struct Lines {
    rx: mpsc::Receiver<Bytes>,
    buf: Vec<u8>,
    line_no: u64,
    done: bool,
}

impl Lines {
    pub(super) fn new(rx: mpsc::Receiver<Bytes>) -> Lines {
        Lines {
            rx,
            buf: Vec::new(),
            line_no: 0,
            done: false,
        }
    }

    pub(super) async fn next(&mut self) -> Option<(u64, Vec<u8>)> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).take(pos).collect();
                self.line_no += 1;
                if line.is_empty() {
                    continue;
                }
                return Some((self.line_no, line));
            }
            if self.done {
                if self.buf.is_empty() {
                    return None;
                }
                self.line_no += 1;
                return Some((self.line_no, std::mem::take(&mut self.buf)));
            }
            match self.rx.recv().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => self.done = true,
            }
        }
    }
}

/// Room kept in every transaction for its framing and the per-put overhead.
const REQUEST_MARGIN: usize = 16 * 1024;
const PER_OP_OVERHEAD: usize = 32;

/// Cuts the selected records of a keys payload into transactions etcd accepts:
/// at most [`MAX_TXN_OPS`] puts and at most the server's request size; a key
/// larger than that goes alone (and the server says if it is too large).
struct Batches {
    lines: Lines,
    prefix: Option<Vec<u8>>,
    /// Exactly these keys, when any; those met are taken out.
    keys: std::collections::BTreeSet<Vec<u8>>,
    only_keys: bool,
    /// Keys under this are drill canary markers: not restored.
    leave_out: Option<Vec<u8>>,
    left_out: u64,
    budget: usize,
    /// A record read for the previous batch that did not fit in it.
    carry: Option<Kv>,
    in_point: u64,
}

impl Batches {
    fn new(
        plaintext: mpsc::Receiver<Bytes>,
        select: Select<'_>,
        max_request_bytes: u64,
    ) -> Batches {
        Batches {
            lines: Lines::new(plaintext),
            prefix: select.prefix.map(|p| p.as_bytes().to_vec()),
            keys: select.keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            only_keys: !select.keys.is_empty(),
            leave_out: select.leave_out.map(|p| p.as_bytes().to_vec()),
            left_out: 0,
            budget: (max_request_bytes as usize)
                .saturating_sub(REQUEST_MARGIN)
                .max(1),
            carry: None,
            in_point: 0,
        }
    }

    /// The next selected record, or none at the end of the payload.
    async fn record(&mut self) -> Result<Option<Kv>, SourceError> {
        if let Some(r) = self.carry.take() {
            return Ok(Some(r));
        }
        while let Some((no, line)) = self.lines.next().await {
            let bad = |detail: String| SourceError::Integrity {
                what: format!("keys payload line {no}"),
                detail: format!(
                    "{detail}: the point is not a payload drtool wrote; restore another point"
                ),
            };
            let record: KeyRecord =
                serde_json::from_slice(&line).map_err(|e| bad(e.to_string()))?;
            self.in_point += 1;
            let key = record.key_bytes().map_err(|e| bad(e.to_string()))?;
            if self.prefix.as_ref().is_some_and(|p| !key.starts_with(p)) {
                continue;
            }
            if self.only_keys && !self.keys.remove(&key) {
                continue;
            }
            if self.leave_out.as_ref().is_some_and(|p| key.starts_with(p)) {
                self.left_out += 1;
                continue;
            }
            let value = record.value_bytes().map_err(|e| bad(e.to_string()))?;
            return Ok(Some(Kv {
                key,
                value,
                lease: SourceLease::of(record.lease, record.lease_ttl),
            }));
        }
        Ok(None)
    }

    /// The next transaction's records; empty at the end of the payload.
    async fn next(&mut self) -> Result<Vec<Kv>, SourceError> {
        let mut batch = Vec::with_capacity(MAX_TXN_OPS);
        let mut bytes = 0;
        while batch.len() < MAX_TXN_OPS {
            let Some(record) = self.record().await? else {
                break;
            };
            let size = record.key.len() + record.value.len() + PER_OP_OVERHEAD;
            if !batch.is_empty() && bytes + size > self.budget {
                self.carry = Some(record);
                break;
            }
            bytes += size;
            batch.push(record);
        }
        Ok(batch)
    }
}

/// Which keys of a batch exist in the target, in one read-only transaction.
async fn existing_in(
    client: &mut Client,
    endpoints: &[String],
    batch: &[Kv],
) -> Result<Vec<bool>, SourceError> {
    let ops: Vec<TxnOp> = batch
        .iter()
        .map(|kv| TxnOp::get(kv.key.clone(), Some(GetOptions::new().with_count_only())))
        .collect();
    let resp = client
        .txn(Txn::new().and_then(ops))
        .await
        .map_err(|e| map_err(endpoints, "existence check", e))?;
    Ok(resp
        .op_responses()
        .into_iter()
        .map(|r| matches!(r, TxnOpResponse::Get(g) if g.count() > 0))
        .collect())
}

/// The values the target holds for `keys` (none: absent), in one
/// read-only transaction.
async fn values_in(
    client: &mut Client,
    endpoints: &[String],
    keys: &[Kv],
) -> Result<Vec<Option<Vec<u8>>>, SourceError> {
    let ops: Vec<TxnOp> = keys
        .iter()
        .map(|kv| TxnOp::get(kv.key.clone(), None))
        .collect();
    let resp = client
        .kv_client()
        .max_decoding_message_size(256 << 20)
        .txn(Txn::new().and_then(ops))
        .await
        .map_err(|e| map_err(endpoints, "reading existing values", e))?;
    Ok(resp
        .op_responses()
        .into_iter()
        .map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        })
        .collect())
}

/// Compares a batch's keys that exist in the target (`live`: each key's
/// value there, none when absent) with the point's values.
fn compare_existing(batch: &[Kv], live: &[Option<Vec<u8>>], plan: &mut KeysPlan) {
    for (kv, value) in batch.iter().zip(live) {
        match value {
            Some(v) if *v == kv.value => plan.identical += 1,
            Some(v) => {
                plan.differ += 1;
                if plan.differing.len() < KEY_DIFFS {
                    let text_diff = crate::engine::diff::text_diff(v, &kv.value, ("live", "point"))
                        .map(|mut d| {
                            if d.len() > MAX_KEY_DIFF {
                                let cut = d[..MAX_KEY_DIFF].rfind('\n').unwrap_or(0);
                                d.truncate(cut + 1);
                                d.push_str("... (cut)\n");
                            }
                            d
                        });
                    plan.differing.push(KeyDiff {
                        key: super::key_text(&kv.key),
                        live_size: v.len() as u64,
                        point_size: kv.value.len() as u64,
                        text_diff,
                    });
                }
            }
            None => {}
        }
    }
}

/// Counts what a replay would create or meet as existing, and how the
/// existing keys differ. Reads the target only.
pub async fn plan_keys(
    client: &mut Client,
    endpoints: &[String],
    plaintext: mpsc::Receiver<Bytes>,
    select: Select<'_>,
    job: &Job,
) -> Result<KeysPlan, Error> {
    let mut batches = Batches::new(plaintext, select, DEFAULT_MAX_REQUEST_BYTES);
    let mut plan = KeysPlan::default();
    loop {
        job.check_cancelled()?;
        let batch = batches.next().await?;
        plan.in_point = batches.in_point;
        plan.canaries_left_out = batches.left_out;
        if batch.is_empty() {
            plan.missing = batches
                .keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            return Ok(plan);
        }
        // One read gives both: whether each key exists, and its value.
        let live = values_in(client, endpoints, &batch).await?;
        compare_existing(&batch, &live, &mut plan);
        for (kv, e) in batch.iter().zip(live.iter().map(Option::is_some)) {
            plan.selected += 1;
            if kv.value.starts_with(ENCRYPTED_AT_REST) {
                plan.encrypted += 1;
                if plan.encrypted_examples.len() < 5 {
                    plan.encrypted_examples.push(super::key_text(&kv.key));
                }
            }
            if e {
                plan.existing += 1;
                if plan.existing_examples.len() < 5 {
                    plan.existing_examples.push(super::key_text(&kv.key));
                }
            } else {
                plan.create += 1;
            }
        }
    }
}

/// Replays the keys into the cluster, one transaction per batch of at most
/// [`MAX_TXN_OPS`] puts. A key with a lease comes back attached to it, the
/// lease granted first under its source id with the TTL the point holds.
/// A cancellation stops between transactions; the error says how many keys
/// were already written.
pub async fn apply_keys(
    client: &mut Client,
    endpoints: &[String],
    plaintext: mpsc::Receiver<Bytes>,
    (select, existing, max_request_bytes): (Select<'_>, Existing, u64),
    job: &Job,
) -> Result<KeysOutcome, Error> {
    let mut batches = Batches::new(plaintext, select, max_request_bytes);
    let mut out = KeysOutcome::default();
    loop {
        if job.is_cancelled() {
            return Err(Error::cancelled(format!(
                "etcd keys restore cancelled after {} keys were written ({} created, {} overwritten); \
                 run the restore again with --existing overwrite or skip to finish it",
                out.created + out.overwritten,
                out.created,
                out.overwritten
            )));
        }
        let batch = batches.next().await?;
        if batch.is_empty() {
            return Ok(out);
        }
        let exists = existing_in(client, endpoints, &batch).await?;
        let before = out.created + out.overwritten;
        let last_key = batch.last().map(|kv| kv.key.clone()).unwrap_or_default();
        let mut puts = Vec::with_capacity(batch.len());
        for (kv, e) in batch.into_iter().zip(exists) {
            match (e, existing) {
                (false, _) => out.created += 1,
                (true, Existing::Overwrite) => out.overwritten += 1,
                (true, Existing::Skip) => {
                    out.skipped += 1;
                    continue;
                }
                (true, Existing::Fail) => {
                    return Err(EtcdError::KeyAppeared {
                        key: super::key_text(&kv.key),
                        written: out.created + out.overwritten,
                    }
                    .into());
                }
            }
            puts.push(kv);
        }
        out.leases.unleased += puts
            .iter()
            .filter(|kv| kv.lease.is_some_and(|l| l.ttl.is_none()))
            .count() as u64;
        if !puts.is_empty() {
            let written = out.created + out.overwritten;
            let leased = put_leased(client, endpoints, puts, &mut out.leases).await;
            let leased = leased.map_err(|e| {
                Error::from(e).noted(format!(
                    "{before} keys were written before it; run the restore again with --existing overwrite or skip to finish it"
                ))
            })?;
            leased.map_err(|e| {
                let e = map_err(endpoints, "put transaction", e);
                match e {
                    SourceError::Failed { what, detail } => Error::from(SourceError::Failed {
                        what,
                        detail: format!(
                            "{detail} (a transaction of {puts} puts up to {last}; {done} keys were written before it; \
                             a single key larger than the server's --max-request-bytes cannot be restored: raise it on the server \
                             and max_request_bytes in the region's config)",
                            puts = written - before,
                            last = String::from_utf8_lossy(&last_key),
                            done = before,
                        ),
                    }),
                    other => Error::from(other).noted(format!(
                        "{before} keys were written before it; run the restore again with --existing overwrite or skip to finish it"
                    )),
                }
            })?;
        }
        job.items(out.created + out.overwritten + out.skipped, None);
    }
}

/// Writes the keys in one transaction, attached to their leases (granted
/// first). When a lease ran out in the target since it was granted, its
/// grant is made again and the transaction sent once more. A lease grant
/// that fails is the outer error, the transaction's the inner one.
async fn put_leased(
    client: &mut Client,
    endpoints: &[String],
    puts: Vec<Kv>,
    granted: &mut Granted,
) -> Result<Result<(), etcd_client::Error>, SourceError> {
    let leases: Vec<SourceLease> = puts.iter().filter_map(|kv| kv.lease).collect();
    let ops: Vec<TxnOp> = puts
        .into_iter()
        .map(|kv| {
            let id = SourceLease::attached(kv.lease);
            let options = (id != 0).then(|| PutOptions::new().with_lease(id));
            TxnOp::put(kv.key, kv.value, options)
        })
        .collect();
    let mut again = true;
    loop {
        granted.grant(client, endpoints, &leases).await?;
        match client.txn(Txn::new().and_then(ops.clone())).await {
            Err(e) if again && lease_missing(&e) => {
                granted.forget(leases.iter().map(|l| l.id));
                again = false;
            }
            other => return Ok(other.map(|_| ())),
        }
    }
}

/// The program that turns a snapshot file into a member data dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTool {
    pub program: PathBuf,
    /// `etcdutl` (etcd 3.5+) or `etcdctl` (3.4, with ETCDCTL_API=3).
    pub name: String,
}

/// Finds `etcdutl`, else `etcdctl`, on PATH.
pub fn find_snapshot_tool() -> Result<SnapshotTool, SourceError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["etcdutl", "etcdctl"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(SnapshotTool {
                    program: candidate,
                    name: name.to_string(),
                });
            }
        }
    }
    Err(EtcdError::NoSnapshotTool.into())
}

/// Materializes one member's data dir from a verified snapshot file (every
/// caller has checked its sha256, etcd's trailer included, as it wrote the
/// file: the tool is told to skip reading it all again, which was half of
/// its time). The tool runs as a child process that is killed (and waited
/// for) when the job is cancelled.
pub async fn restore_member(
    tool: &SnapshotTool,
    snapshot: &Path,
    member: &EtcdMember,
    members: &[EtcdMember],
    cluster_token: &str,
    job: &Job,
) -> Result<(), Error> {
    let initial_cluster = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url))
        .collect::<Vec<_>>()
        .join(",");
    let mut child = Command::new(&tool.program)
        .env("ETCDCTL_API", "3")
        .arg("snapshot")
        .arg("restore")
        .arg(snapshot)
        .arg("--name")
        .arg(&member.name)
        .arg("--initial-cluster")
        .arg(&initial_cluster)
        .arg("--initial-cluster-token")
        .arg(cluster_token)
        .arg("--initial-advertise-peer-urls")
        .arg(&member.peer_url)
        .arg("--data-dir")
        .arg(&member.data_dir)
        .arg("--skip-hash-check")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SourceError::Failed {
            what: format!("running {}", tool.program.display()),
            detail: e.to_string(),
        })?;
    let mut stderr = child.stderr.take();
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut text).await;
        }
        text
    });
    let status = tokio::select! {
        status = child.wait() => status,
        _ = job.cancel_token().cancelled() => {
            // Kill and reap it before anyone touches the data dir again.
            let _ = child.kill().await;
            return Err(Error::cancelled(format!(
                "{} snapshot restore of member {} was stopped",
                tool.name, member.name
            )));
        }
    }
    .map_err(|e| SourceError::Failed {
        what: format!("waiting for {}", tool.program.display()),
        detail: e.to_string(),
    })?;
    let stderr = errors.await.unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(SourceError::Failed {
            what: format!("{} snapshot restore for member {}", tool.name, member.name),
            detail: format!("exit {status}: {}", stderr.trim()),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn record(key: &str, size: usize) -> String {
        let r = KeyRecord {
            key: Some(key.to_string()),
            key_b64: base64::engine::general_purpose::STANDARD.encode(key),
            value_b64: base64::engine::general_purpose::STANDARD.encode(vec![b'v'; size]),
            create_revision: 1,
            mod_revision: 1,
            version: 1,
            lease: 0,
            lease_ttl: None,
        };
        serde_json::to_string(&r).unwrap_or_default() + "\n"
    }

    /// The sizes of the transactions a payload is cut into.
    async fn cut(sizes: &[(usize, usize)], max_request_bytes: u64) -> Vec<(usize, usize)> {
        let (tx, rx) = mpsc::channel(4);
        let payload: String = sizes
            .iter()
            .flat_map(|&(count, size)| {
                (0..count).map(move |i| record(&format!("/k/{size}/{i:05}"), size))
            })
            .collect();
        tokio::spawn(async move {
            for chunk in payload.into_bytes().chunks(100_000) {
                let _ = tx.send(Bytes::copy_from_slice(chunk)).await;
            }
        });
        let mut batches = Batches::new(rx, Select::default(), max_request_bytes);
        let mut out = Vec::new();
        loop {
            let b = batches.next().await.unwrap_or_default();
            if b.is_empty() {
                return out;
            }
            out.push((
                b.len(),
                b.iter().map(|kv| kv.key.len() + kv.value.len()).sum(),
            ));
        }
    }

    #[tokio::test]
    async fn transactions_stay_under_the_op_and_byte_limits() {
        let limit = super::super::DEFAULT_MAX_REQUEST_BYTES;
        let small = cut(&[(2000, 8 * 1024)], limit).await;
        assert!(small.iter().all(|(ops, _)| *ops <= MAX_TXN_OPS));
        assert_eq!(small.iter().map(|(ops, _)| ops).sum::<usize>(), 2000);
        let medium = cut(&[(300, 20 * 1024)], limit).await;
        assert!(
            medium.iter().all(|(_, bytes)| *bytes as u64 <= limit),
            "{medium:?}"
        );
        assert_eq!(medium.iter().map(|(ops, _)| ops).sum::<usize>(), 300);
        // 1.4 MiB values go one per transaction; a value above the limit goes
        // alone too (the server then names the problem).
        let large = cut(&[(2, 10), (3, 1_468_006), (1, 2 << 20), (2, 10)], limit).await;
        let ops: Vec<usize> = large.iter().map(|(ops, _)| *ops).collect();
        assert_eq!(ops, [3, 1, 1, 1, 2], "{large:?}");
    }

    #[tokio::test]
    async fn lines_split_across_chunks() {
        let (tx, rx) = mpsc::channel(8);
        for part in ["a\nbb", "b\n\nc", "cc"] {
            let _ = tx.send(Bytes::from(part)).await;
        }
        drop(tx);
        let mut lines = Lines::new(rx);
        let mut got = Vec::new();
        while let Some((no, l)) = lines.next().await {
            got.push((no, String::from_utf8_lossy(&l).into_owned()));
        }
        assert_eq!(
            got,
            vec![(1, "a".into()), (2, "bbb".into()), (4, "ccc".into())]
        );
    }
}
