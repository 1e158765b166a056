//! The snapshot file reader against a real etcd: a throwaway etcd (the
//! lab's etcd program, on free ports) gets keys of the sizes a real cluster
//! holds (1-20 KiB values, Secrets near the 1.5 MiB limit, binary keys,
//! leases, overwrites and deletes, a compaction), its snapshot is read
//! without etcd, and what the reader says is what etcd serves at the same
//! revisions. Then the file is cut and bytes are flipped: every damage is
//! an error or a reading, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use drtool::source::etcd::snapfile::{SnapshotFile, StoredKv, read_all, revision_scan};
use etcd_client::{Client, CompactionOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp};

/// An etcd of its own, killed when dropped.
struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_etcd() -> (Etcd, Client) {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new(which("etcd"))
        .args(["--name", "b1", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("b1={peer_url}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let etcd = Etcd { child, _dir: dir };
    let started = Instant::now();
    loop {
        if let Ok(mut c) = Client::connect([url.as_str()], None).await
            && c.status().await.is_ok()
        {
            return (etcd, c);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "etcd did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// etcd's own view of every key under `prefix` at `rev` (0: newest).
async fn served(client: &mut Client, prefix: &[u8], rev: i64) -> Vec<StoredKv> {
    let mut opts = GetOptions::new().with_prefix();
    if rev > 0 {
        opts = opts.with_revision(rev);
    }
    let resp = client
        .kv_client()
        .max_decoding_message_size(256 << 20)
        .get(prefix, Some(opts))
        .await
        .unwrap();
    resp.kvs()
        .iter()
        .map(|kv| StoredKv {
            key: kv.key().to_vec(),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        })
        .collect()
}

async fn save_snapshot(client: &mut Client, path: &Path) {
    let mut stream = client.snapshot().await.unwrap();
    let mut bytes = Vec::new();
    while let Some(msg) = stream.message().await.unwrap() {
        bytes.extend_from_slice(msg.blob());
    }
    std::fs::write(path, bytes).unwrap();
}

/// The cluster revision a streaming scan reads from `bytes` fed in chunks.
fn scanned(bytes: &[u8], chunk: usize) -> u64 {
    let mut scan = revision_scan();
    for c in bytes.chunks(chunk) {
        scan.feed(c);
    }
    SnapshotFile::of_scan(scan, Path::new("scan"))
        .unwrap()
        .cluster_revision()
        .unwrap()
}

async fn rev_of(client: &mut Client) -> i64 {
    client.status().await.unwrap().header().unwrap().revision()
}

/// Writes the data: returns a revision after the compaction to read at,
/// and the compaction's revision.
async fn write_history(c: &mut Client, prefix: &str) -> (i64, i64) {
    let key = |rest: &str| format!("{prefix}{rest}");
    for chunk in (0..300).collect::<Vec<_>>().chunks(30) {
        let ops = chunk
            .iter()
            .map(|i| {
                TxnOp::put(
                    key(&format!("cm/{i:04}")),
                    object_value(*i, 1024 + (i * 613) % 19_456),
                    None,
                )
            })
            .collect::<Vec<_>>();
        c.txn(Txn::new().and_then(ops)).await.unwrap();
    }
    for i in 0..3 {
        c.put(
            key(&format!("secret/big{i}")),
            object_value(i, 1_400_000 + i * 10_000),
            None,
        )
        .await
        .unwrap();
    }
    for b in 0u8..=255 {
        c.put(
            [prefix.as_bytes(), b"bin/", &[b, 0, 255 - b]].concat(),
            vec![b; 3],
            None,
        )
        .await
        .unwrap();
    }
    c.put(key("empty"), Vec::new(), None).await.unwrap();
    let lease = c.lease_grant(3600, None).await.unwrap().id();
    for i in 0..10 {
        let opts = PutOptions::new().with_lease(lease);
        c.put(
            key(&format!("leased/{i}")),
            object_value(i, 300),
            Some(opts),
        )
        .await
        .unwrap();
    }
    // History: overwrites and deletes, then a compaction in its middle.
    for round in 0..3 {
        for i in (0..300).step_by(7) {
            c.put(
                key(&format!("cm/{i:04}")),
                object_value(round * 1000 + i, 2048),
                None,
            )
            .await
            .unwrap();
        }
    }
    let compact_at = rev_of(c).await;
    c.delete(key("cm/01"), Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    let mid = rev_of(c).await;
    c.compact(compact_at, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    c.put(key("secret/big1"), object_value(9, 1_450_000), None)
        .await
        .unwrap();
    c.delete(key("leased/3"), None).await.unwrap();
    c.put(key("cm/0002"), object_value(77, 20_000), None)
        .await
        .unwrap();
    (mid, compact_at)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reader_sees_what_etcd_serves_at_every_revision_the_file_holds() {
    let (etcd, mut c) = start_etcd().await;
    let prefix = "/registry/bbolt/";
    let (mid, compacted) = write_history(&mut c, prefix).await;
    let newest = rev_of(&mut c).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.db");
    save_snapshot(&mut c, &file).await;

    let snap = SnapshotFile::open(&file).unwrap();
    assert_eq!(snap.revision().unwrap(), newest as u64);
    assert_eq!(snap.compacted().unwrap(), Some(compacted as u64));
    // A backup reads the same revision from the pages as they stream past,
    // in chunks of any size (a 1.4 MiB value spans overflow pages).
    let bytes = std::fs::read(&file).unwrap();
    for chunk in [1000, 4096, 32 * 1024, 3 << 20] {
        assert_eq!(scanned(&bytes, chunk), newest as u64, "chunks of {chunk}");
    }
    assert!(snap.consistent_index().unwrap().is_some_and(|i| i > 0));
    let now = snap.live(None, prefix.as_bytes()).unwrap();
    assert_eq!(now.len(), 300 - 100 + 3 + 256 + 1 + 10 - 1);
    assert!(
        now == served(&mut c, prefix.as_bytes(), 0).await,
        "the newest keys differ"
    );
    let then = snap.live(Some(mid as u64), prefix.as_bytes()).unwrap();
    assert!(
        then == served(&mut c, prefix.as_bytes(), mid).await,
        "keys at {mid} differ"
    );
    let at_compaction = snap
        .live(Some(compacted as u64), prefix.as_bytes())
        .unwrap();
    assert!(at_compaction == served(&mut c, prefix.as_bytes(), compacted).await);
    // Before the compaction the file no longer holds the history: refused.
    let e = snap
        .live(Some(compacted as u64 - 1), b"/")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("holds revisions {compacted} to {newest}")),
        "{e}"
    );
    // A prefix reads only its keys; everything reads the whole cluster.
    let big = snap
        .live(None, format!("{prefix}secret/").as_bytes())
        .unwrap();
    assert_eq!(big.len(), 3);
    assert_eq!(big[1].value.len(), 1_450_000);
    assert!(snap.live(None, b"").unwrap().len() >= now.len());
    // The one lease is there with its TTL, as the leased keys name it.
    let leases = snap.leases().unwrap();
    let leased = now.iter().find(|kv| kv.key.ends_with(b"leased/0")).unwrap();
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[&leased.lease].ttl, 3600);
    // etcd's own tool says the same of the file.
    let status = snap.status().unwrap();
    let theirs = etcd_status(&file);
    assert_eq!(theirs["revision"], status.revision, "{theirs}");
    assert_eq!(theirs["totalKey"], status.total_key, "{theirs}");
    assert_eq!(theirs["totalSize"], status.total_size, "{theirs}");
    assert_eq!(theirs["hash"], status.hash, "{theirs}");

    // A delete compacted at its own revision leaves no key of that
    // revision: the compaction's revision says where the cluster stood.
    c.delete(format!("{prefix}leased/0"), None).await.unwrap();
    let top = rev_of(&mut c).await;
    c.compact(top, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    let after = dir.path().join("after.db");
    save_snapshot(&mut c, &after).await;
    let snap = SnapshotFile::open(&after).unwrap();
    assert!(snap.revision().unwrap() < top as u64);
    assert_eq!(snap.cluster_revision().unwrap(), top as u64);
    assert_eq!(scanned(&std::fs::read(&after).unwrap(), 4096), top as u64);
    drop(etcd);
}

/// `snapshot status -w json` of `etcdutl` (etcd 3.5 and later) or, where
/// there is none, of `etcdctl`.
fn etcd_status(file: &Path) -> serde_json::Value {
    let tool = ["etcdutl", "etcdctl"]
        .into_iter()
        .find(|t| {
            Command::new(t)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("etcdutl or etcdctl");
    let out = Command::new(tool)
        .args(["snapshot", "status", "-w", "json"])
        .arg(file)
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_or_damaged_file_is_an_error_naming_it_never_a_panic() {
    let (etcd, mut c) = start_etcd().await;
    write_history(&mut c, "/d/").await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    save_snapshot(&mut c, &good).await;
    drop(etcd);
    let bytes = std::fs::read(&good).unwrap();
    let damaged = dir.path().join("damaged.db");
    let read = |b: &[u8]| {
        std::fs::write(&damaged, b).unwrap();
        read_all(&damaged)
    };
    assert!(read(&bytes).is_ok());
    // Cut anywhere: the meta pages say how long the data is.
    for len in [
        0,
        15,
        100,
        4096,
        8192,
        8200,
        bytes.len() / 2,
        bytes.len() - 4096,
    ] {
        let e = read(&bytes[..len]).expect_err("a cut file").to_string();
        assert!(e.contains("damaged.db"), "{e}");
    }
    // Garbage instead of a file.
    assert!(read(&vec![0xA5; 64 * 1024]).is_err());
    // Bytes flipped in page headers and elements (where a reader trusts
    // offsets): errors or readings, never a panic or a read out of bounds.
    let pages = bytes.len() / 4096;
    let mut n = 0x9E37_79B9_7F4A_7C15u64;
    let mut errors = 0;
    for _ in 0..300 {
        n = n
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let page = (n >> 33) as usize % pages;
        let at = page * 4096 + (n >> 13) as usize % 96;
        let mut b = bytes.clone();
        b[at] ^= 1 << (n % 8);
        if read(&b).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 0, "no flip was noticed");
}
