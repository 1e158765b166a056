//! Continuous etcd streams against the lab: `drtool stream run` follows the
//! home cluster and writes segments to both regions; `drtool restore
//! --revision N` in the other region gives exactly the state etcd had at N.
//! What the world does to a stream: SIGKILL mid-run, a member restart, a
//! network cut, a compaction past it; what a damaged chain does to a restore.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use drtool::catalog::RegionStore;
use etcd_client::{Client, DeleteOptions, PutOptions, Txn, TxnOp};
use serde_json::Value;

/// Every key and value under a prefix.
type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// 1-20 KiB, as most of a real /registry.
fn size_of(i: usize) -> usize {
    1024 * (1 + (i * 7) % 20)
}

/// A config with one keys target `s` under `prefix`, streaming, homed in
/// us-east-1 at `east` and copied to us-west-2.
fn stream_config(lab: &Lab, name: &str, prefix: &str, east: Option<&str>) -> String {
    let mut target = lab.etcd_target_toml("s", "keys", Some(prefix), "").replace(
        "mode = \"keys\"\n",
        "mode = \"keys\"\ncontinuous = { segment = \"300ms\" }\n",
    );
    if let Some(east) = east {
        target = target.replace(&format!("{:?}", lab.etcd(EAST)), &format!("[{east:?}]"));
    }
    format!("{}{target}", lab.regions_toml(name))
}

/// Puts in one transaction; the revision it made.
async fn txn(client: &mut Client, ops: Vec<TxnOp>) -> u64 {
    let resp = client.txn(Txn::new().and_then(ops)).await.unwrap();
    resp.header().unwrap().revision() as u64
}

fn put(prefix: &str, key: &str, value: Vec<u8>) -> TxnOp {
    TxnOp::put(format!("{prefix}{key}"), value, None)
}

/// `drtool stream status -o json` for target `s`.
fn status(lab: &Lab, cfg: &Path) -> Value {
    let out = lab
        .drtool(cfg)
        .args(["-o", "json", "stream", "status", "--target", "s"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    v["items"][0].clone()
}

/// Waits until both regions hold the stream up to `rev` without a hole.
fn wait_reaches(lab: &Lab, cfg: &Path, rev: u64) -> Value {
    let started = Instant::now();
    loop {
        let s = status(lab, cfg);
        let regions = s["regions"].as_array().cloned().unwrap_or_default();
        let held = regions
            .iter()
            .all(|r| r["reaches"].as_u64().is_some_and(|x| x >= rev));
        if regions.len() == 2 && held {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stream did not reach revision {rev} in both regions in 60 s: {s:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Deletes every key under `prefix` in the west cluster.
async fn wipe_west(lab: &Lab, prefix: &str) {
    let mut west = etcd_client(&lab.etcd(WEST)).await;
    west.delete(prefix, Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
}

fn restore(lab: &Lab, cfg: &Path, extra: &[&str]) -> std::process::Output {
    lab.drtool(cfg)
        .args(["restore", "--region", WEST, "--target", "s", "-y"])
        .args(extra)
        .output()
        .unwrap()
}

/// The lab, a unique name, its etcd prefix and a folder for its config.
fn setup(tag: &str) -> (Lab, String, String, tempfile::TempDir) {
    let name = unique(tag);
    let prefix = format!("/{name}/");
    (Lab::get(), name, prefix, tempfile::tempdir().unwrap())
}

/// Stops a stream (or daemon) with `sig`; it must exit 0: it wrote what it had.
fn stop(child: std::process::Child, sig: &str) -> (String, String) {
    signal(child.id(), sig);
    let (code, out, err) = finish(child);
    assert_eq!(code, Some(0), "{out}{err}");
    (out, err)
}

/// Removes a test's keys from the home cluster.
async fn forget(east: &mut Client, prefix: &str) {
    east.delete(prefix, Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
}

/// A command that must fail with `code`, saying `says`.
fn refused(out: &std::process::Output, code: i32, says: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stdout(out),
        stderr(out)
    );
    assert!(stderr(out).contains(says), "{}", stderr(out));
}

fn backup(lab: &Lab, cfg: &Path) {
    let out = lab
        .drtool(cfg)
        .args(["backup", "--target", "s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_restores_any_revision_in_the_other_region_exactly() {
    let (lab, name, prefix, tmp) = setup("stream");
    let cfg = write_config(tmp.path(), &stream_config(&lab, &name, &prefix, None));
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    for chunk in (0..300).collect::<Vec<_>>().chunks(40) {
        let ops = chunk
            .iter()
            .map(|i| {
                put(
                    &prefix,
                    &format!("cm/{i:04}"),
                    object_value(*i, size_of(*i)),
                )
            })
            .collect();
        txn(&mut east, ops).await;
    }
    txn(
        &mut east,
        vec![put(&prefix, "secret/big", object_value(1, 1_400_000))],
    )
    .await;
    // A key under a lease in the base point; after it, another key on the
    // same lease and one on a lease granted later.
    let base_lease = east.lease_grant(600, None).await.unwrap().id();
    let leased = |key: &str, id: i64| {
        TxnOp::put(
            format!("{prefix}leased/{key}"),
            object_value(7, 2048),
            Some(PutOptions::new().with_lease(id)),
        )
    };
    txn(&mut east, vec![leased("base", base_lease)]).await;
    backup(&lab, &cfg);
    let stream = lab.spawn_drtool(&cfg, &["stream", "run", "--target", "s"], None);
    let late_lease = east.lease_grant(300, None).await.unwrap().id();
    txn(
        &mut east,
        vec![leased("again", base_lease), leased("late", late_lease)],
    )
    .await;

    // Three moments, each a revision and the state it left.
    let mut marks: Vec<(u64, State)> = Vec::new();
    let mut rev = 0;
    for i in 0..60 {
        rev = txn(
            &mut east,
            vec![put(
                &prefix,
                &format!("cm/{:04}", i * 3),
                object_value(1000 + i, size_of(i + 5)),
            )],
        )
        .await;
    }
    marks.push((rev, dump(&mut east, &prefix).await));
    // One revision that changes several keys, a large value, and deletes.
    txn(
        &mut east,
        vec![
            put(&prefix, "cm/0001", object_value(5000, 3000)),
            put(&prefix, "cm/0002", object_value(5001, 18_000)),
            TxnOp::delete(format!("{prefix}cm/0003"), None),
        ],
    )
    .await;
    txn(
        &mut east,
        vec![put(&prefix, "secret/big", object_value(2, 1_450_000))],
    )
    .await;
    rev = txn(
        &mut east,
        vec![TxnOp::delete(format!("{prefix}cm/0004"), None)],
    )
    .await;
    marks.push((rev, dump(&mut east, &prefix).await));
    let resp = east
        .delete(
            format!("{prefix}cm/01"),
            Some(DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert_eq!(resp.deleted(), 100);
    rev = txn(
        &mut east,
        vec![put(&prefix, "cm/9999", object_value(9, 20_000))],
    )
    .await;
    marks.push((rev, dump(&mut east, &prefix).await));

    let s = wait_reaches(&lab, &cfg, rev);
    assert!(s["regions"][1]["broken"].is_null(), "{s:#}");
    // `drtool points` shows the stream under the point it follows.
    let listed = points_in(&lab, &cfg, WEST);
    let streamed: Vec<&Value> = listed["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["stream"].is_object())
        .collect();
    assert_eq!(streamed.len(), 1, "{listed:#}");
    assert!(streamed[0]["stream"]["reaches"].as_u64().unwrap() >= rev);
    let out = lab
        .drtool(&cfg)
        .args(["points", "--region", WEST])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("+ stream of"), "{}", stdout(&out));
    let (out, _) = stop(stream, "INT");
    assert!(out.contains("stream of s stopped"), "{out}");

    // The plan says what it replays, and how far the region holds.
    let (mid, _) = &marks[1];
    let out = lab
        .drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "s", "--dry-run"])
        .args(["--revision", &mid.to_string()])
        .output()
        .unwrap();
    let plan = stdout(&out);
    assert!(out.status.success(), "{plan}{}", stderr(&out));
    assert!(plan.contains(&format!("up to revision {mid}")), "{plan}");
    let held: u64 = plan
        .split("holds the stream up to revision ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the plan says how far the region holds: {plan}"));
    assert!(held >= marks[2].0, "{plan}");

    let mut west = etcd_client(&lab.etcd(WEST)).await;
    for (n, expected) in &marks {
        wipe_west(&lab, &prefix).await;
        let out = restore(&lab, &cfg, &["--revision", &n.to_string()]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        assert!(
            stdout(&out).contains(&format!("stream replayed up to revision {n}")),
            "{}",
            stdout(&out)
        );
        let got = dump(&mut west, &prefix).await;
        assert_eq!(got.len(), expected.len(), "keys at revision {n}");
        assert!(&got == expected, "values differ at revision {n}");
    }
    // Without --revision: everything the region holds.
    wipe_west(&lab, &prefix).await;
    let out = restore(&lab, &cfg, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(dump(&mut west, &prefix).await == marks[2].1);
    // Leased keys come back on their leases, with the TTL left in the
    // source; revoking a lease in the restored cluster takes its keys.
    let leased_key = |key: &str| format!("{prefix}leased/{key}").into_bytes();
    assert_eq!(
        west.get(leased_key("again"), None).await.unwrap().kvs()[0].lease(),
        base_lease
    );
    assert_leased_then_revoke(&mut west, leased_key("base"), base_lease, 600).await;
    assert_leased_then_revoke(&mut west, leased_key("late"), late_lease, 300).await;
    assert!(
        west.get(leased_key("again"), None)
            .await
            .unwrap()
            .kvs()
            .is_empty()
    );
    east.lease_revoke(late_lease).await.unwrap();
    east.lease_revoke(base_lease).await.unwrap();
    // A revision the region does not hold yet is refused, saying how far it goes.
    wipe_west(&lab, &prefix).await;
    let out = restore(&lab, &cfg, &["--revision", &(rev + 1_000_000).to_string()]);
    refused(&out, 2, "up to revision");
    wipe_west(&lab, &prefix).await;
    forget(&mut east, &prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_stream_leaves_whole_segments_and_resumes_after_them() {
    let (lab, name, prefix, tmp) = setup("stream-kill");
    let cfg = write_config(tmp.path(), &stream_config(&lab, &name, &prefix, None));
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    txn(&mut east, vec![put(&prefix, "a", object_value(0, 4096))]).await;
    backup(&lab, &cfg);
    let stream = lab.spawn_drtool(&cfg, &["stream", "run", "--target", "s"], None);
    let mut last = 0;
    for i in 0..40 {
        last = txn(
            &mut east,
            vec![put(
                &prefix,
                &format!("k{:02}", i % 13),
                object_value(i, size_of(i)),
            )],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        if i == 10 {
            wait_reaches(&lab, &cfg, last);
        }
        if i == 20 {
            signal(stream.id(), "KILL");
        }
    }
    let _ = finish(stream);
    // What was stored is whole: no partial segment, no hole.
    let s = status(&lab, &cfg);
    for r in s["regions"].as_array().unwrap() {
        assert!(r["broken"].is_null() && r["error"].is_null(), "{s:#}");
        assert!(r["segments"].as_u64().unwrap() >= 1, "{s:#}");
    }
    // Its lock outlives it: a second run is refused, naming the way out.
    let out = lab
        .drtool(&cfg)
        .args(["stream", "run", "--target", "s"])
        .output()
        .unwrap();
    refused(&out, 9, "already written by");
    let out = lab
        .drtool(&cfg)
        .args(["gc", "--region", EAST, "--force-unlock", "stream-s", "-y"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let stream = lab.spawn_drtool(
        &cfg,
        &["-o", "json", "stream", "run", "--target", "s"],
        None,
    );
    last = last.max(
        txn(
            &mut east,
            vec![put(&prefix, "after", object_value(77, 9000))],
        )
        .await,
    );
    let held = wait_reaches(&lab, &cfg, last);
    let (out, _) = stop(stream, "TERM");
    let run: Value = serde_json::from_str(&out).unwrap();
    let bases = run["items"][0]["bases"].as_array().unwrap();
    assert_eq!(bases.len(), 1, "it resumed under the same base: {run:#}");
    assert_eq!(held["regions"][0]["base"], held["regions"][1]["base"]);

    wipe_west(&lab, &prefix).await;
    let out = restore(&lab, &cfg, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut west = etcd_client(&lab.etcd(WEST)).await;
    assert!(dump(&mut west, &prefix).await == dump(&mut east, &prefix).await);
    wipe_west(&lab, &prefix).await;
    forget(&mut east, &prefix).await;
}

/// An etcd of this test's own (it restarts and compacts it).
struct OwnEtcd {
    dir: PathBuf,
    child: Option<std::process::Child>,
}

const OWN_CLIENT: &str = "127.0.0.1:32779";
const OWN_PEER: &str = "http://127.0.0.1:32780";

impl OwnEtcd {
    async fn start(dir: &Path) -> OwnEtcd {
        let mut e = OwnEtcd {
            dir: dir.to_path_buf(),
            child: None,
        };
        e.up().await;
        e
    }

    async fn up(&mut self) {
        let client = format!("http://{OWN_CLIENT}");
        let child = Command::new("etcd")
            .args(["--name", "own", "--data-dir"])
            .arg(self.dir.join("etcd"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                OWN_PEER,
                "--initial-advertise-peer-urls",
                OWN_PEER,
            ])
            .args(["--initial-cluster", &format!("own={OWN_PEER}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(mut c) = Client::connect([client.as_str()], None).await
                && c.status().await.is_ok()
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "own etcd did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnEtcd {
    fn drop(&mut self) {
        self.down();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_survives_a_restart_and_a_cut_and_starts_a_new_base_after_a_compaction() {
    let (lab, name, prefix, tmp) = setup("stream-world");
    let mut etcd = OwnEtcd::start(tmp.path()).await;
    let proxy = Proxy::start(OWN_CLIENT);
    let cfg = write_config(
        tmp.path(),
        &stream_config(&lab, &name, &prefix, Some(&proxy.url())),
    );
    let own = vec![format!("http://{OWN_CLIENT}")];
    let mut direct = etcd_client(&own).await;
    txn(
        &mut direct,
        vec![put(&prefix, "base", object_value(0, 2048))],
    )
    .await;
    backup(&lab, &cfg);
    let stream = lab.spawn_drtool(&cfg, &["stream", "run", "--target", "s"], None);
    let rev = txn(&mut direct, vec![put(&prefix, "a", object_value(1, 5000))]).await;
    wait_reaches(&lab, &cfg, rev);
    // A compaction racing the watch changes nothing for a watch that is there.
    direct.compact(rev as i64, None).await.unwrap();

    // The member restarts.
    etcd.down();
    tokio::time::sleep(Duration::from_millis(500)).await;
    etcd.up().await;
    let mut direct = etcd_client(&own).await;
    let rev = txn(&mut direct, vec![put(&prefix, "b", object_value(2, 7000))]).await;
    wait_reaches(&lab, &cfg, rev);

    // The network between drtool and etcd is cut, then mended.
    proxy.cut();
    let rev = txn(&mut direct, vec![put(&prefix, "c", object_value(3, 9000))]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.mend();
    wait_reaches(&lab, &cfg, rev);
    let (out, _) = stop(stream, "INT");
    assert!(out.contains(" 0 gaps"), "no base was lost: {out}");
    assert!(!out.contains(" 0 restarts"), "it followed again: {out}");

    // While it is stopped, etcd compacts past it: it starts a new base and says so.
    let old_base = status(&lab, &cfg)["regions"][0]["base"].clone();
    txn(&mut direct, vec![put(&prefix, "d", object_value(4, 3000))]).await;
    let rev = txn(&mut direct, vec![put(&prefix, "d2", object_value(6, 3000))]).await;
    direct
        .compact(
            rev as i64,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();
    let stream = lab.spawn_drtool(&cfg, &["stream", "run", "--target", "s"], None);
    let s = {
        let started = Instant::now();
        loop {
            let s = status(&lab, &cfg);
            if s["regions"][1]["base"] != old_base && !s["regions"][1]["base"].is_null() {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no new base: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let rev = txn(&mut direct, vec![put(&prefix, "e", object_value(5, 1500))]).await;
    wait_reaches(&lab, &cfg, rev);
    let (out, err) = stop(stream, "INT");
    assert!(err.contains("compacted"), "the gap is said: {out}{err}");
    assert!(out.contains(" 1 gaps"), "{out}");
    assert_ne!(s["regions"][0]["base"], old_base);
    // Both regions keep saying why the new base was taken, and from where.
    let s = status(&lab, &cfg);
    for r in s["regions"].as_array().unwrap() {
        let gap = r["gap"].as_str().unwrap_or_default();
        assert!(
            gap.contains("after a gap") && gap.contains("compacted"),
            "{s:#}"
        );
    }

    wipe_west(&lab, &prefix).await;
    let out = restore(&lab, &cfg, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut west = etcd_client(&lab.etcd(WEST)).await;
    assert!(dump(&mut west, &prefix).await == dump(&mut direct, &prefix).await);
    wipe_west(&lab, &prefix).await;
}

async fn west_store(cfg: &Path) -> RegionStore {
    let parsed = drtool::source::load_config(cfg).unwrap();
    RegionStore::open(parsed.region(WEST).unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_damaged_segment_stops_a_restore_naming_it() {
    let (lab, name, prefix, tmp) = setup("stream-damage");
    let cfg = write_config(tmp.path(), &stream_config(&lab, &name, &prefix, None));
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    txn(&mut east, vec![put(&prefix, "base", object_value(0, 2048))]).await;
    backup(&lab, &cfg);
    let stream = lab.spawn_drtool(&cfg, &["stream", "run", "--target", "s"], None);
    let mut revs = Vec::new();
    for i in 0..8 {
        revs.push(
            txn(
                &mut east,
                vec![put(&prefix, &format!("k{i}"), object_value(i, size_of(i)))],
            )
            .await,
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let last = *revs.last().unwrap();
    wait_reaches(&lab, &cfg, last);
    stop(stream, "INT");

    let rs = west_store(&cfg).await;
    let mut segments: Vec<String> = rs
        .store
        .list(&rs.layout.stream_prefix("s", None))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    segments.sort();
    assert!(segments.len() >= 4, "{segments:?}");
    let victim = segments[segments.len() / 2].clone();
    let name_of = drtool::archive::segment::name_of(&victim).unwrap();

    // Damaged: another segment's bytes under its name.
    let other = rs.store.get(&segments[0]).await.unwrap();
    let original = rs.store.get(&victim).await.unwrap();
    rs.store
        .put(&victim, other, drtool::store::Keep::Normal)
        .await
        .unwrap();
    let out = restore(&lab, &cfg, &["--revision", &last.to_string(), "--dry-run"]);
    refused(&out, 5, &victim);

    // Damaged inside: the right name and head, other events (a changed
    // value): the next segment's record of its hash no longer matches.
    let (head, lines) = drtool::archive::segment::open(&victim, &original).unwrap();
    let forged =
        String::from_utf8(lines)
            .unwrap()
            .replacen("\"value_b64\":\"", "\"value_b64\":\"AAAA", 1);
    let resealed = drtool::archive::segment::seal(&head, forged.as_bytes()).unwrap();
    rs.store
        .put(&victim, resealed.bytes, drtool::store::Keep::Normal)
        .await
        .unwrap();
    let out = restore(&lab, &cfg, &["--revision", &last.to_string(), "--dry-run"]);
    refused(&out, 5, "does not follow");

    // Missing: a hole in the chain.
    rs.store.delete(&victim).await.unwrap();
    let out = restore(&lab, &cfg, &["--revision", &last.to_string(), "--dry-run"]);
    refused(&out, 5, "in no segment");
    // The newest state, with a hole before it, is refused too: never silently less.
    let out = restore(&lab, &cfg, &["--dry-run"]);
    refused(&out, 5, "");
    // Before it, a restore still works; by time, it stops at the hole and says so.
    let before = name_of.from - 1;
    let out = restore(
        &lab,
        &cfg,
        &["--revision", &before.to_string(), "--dry-run"],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = restore(&lab, &cfg, &["--before", "2999-01-01", "--dry-run"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("STOPS SHORT"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!("up to revision {before}")),
        "{}",
        stdout(&out)
    );
    let s = status(&lab, &cfg);
    assert!(s["regions"][1]["broken"].as_str().is_some(), "{s:#}");
    // Put back, the chain is whole again.
    rs.store
        .put(&victim, original, drtool::store::Keep::Normal)
        .await
        .unwrap();
    let out = restore(&lab, &cfg, &["--revision", &last.to_string(), "--dry-run"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    forget(&mut east, &prefix).await;
}

#[test]
fn what_cannot_stream_says_why() {
    let lab = Lab::get();
    let name = unique("stream-refused");
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("s", "keys", Some("/x/"), "")
    );
    let cfg = write_config(tmp.path(), &config);
    let out = lab
        .drtool(&cfg)
        .args(["stream", "run", "--target", "s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no `continuous` setting"),
        "{}",
        stderr(&out)
    );
    let out = lab
        .drtool(&cfg)
        .args([
            "restore",
            "--region",
            WEST,
            "--target",
            "s",
            "--revision",
            "5",
            "--point",
            "20261122T020000Z-0badcafe",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Reads `GET /metrics` of a daemon.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_follows_the_streams_and_shows_them_in_its_metrics() {
    let (lab, name, prefix, tmp) = setup("stream-daemon");
    let cfg = write_config(tmp.path(), &stream_config(&lab, &name, &prefix, None));
    let schedules = tmp.path().join("schedules");
    std::fs::create_dir(&schedules).unwrap();
    std::fs::write(
        schedules.join("yearly.toml"),
        "name = \"yearly\"\ncron = \"0 0 1 1 *\"\ntargets = [\"s\"]\n[retention]\nkeep_last = 3\n",
    )
    .unwrap();
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    txn(&mut east, vec![put(&prefix, "a", object_value(0, 3000))]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = schedules.display().to_string();
    let daemon = lab.spawn_drtool(
        &cfg,
        &[
            "schedule",
            "run",
            "--schedules",
            &dir,
            "--metrics-addr",
            &addr,
        ],
        None,
    );
    // No point yet: the daemon's stream takes its base, then follows.
    let rev = txn(&mut east, vec![put(&prefix, "b", object_value(1, 9000))]).await;
    wait_reaches(&lab, &cfg, rev);
    let started = Instant::now();
    let text = loop {
        let text = scrape(&addr);
        // The gauges come from each region's store and the source, read at
        // each scrape: on a busy machine a scrape may miss one of them.
        if text.contains(&format!(
            "drtool_stream_revision{{target=\"s\",region=\"{WEST}\"}}"
        )) && text.contains("drtool_stream_lag_seconds{")
        {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no stream series: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        text.contains("drtool_stream_segments_total{target=\"s\"}"),
        "{text}"
    );
    assert!(
        text.contains("drtool_stream_gaps_total{target=\"s\"} 0"),
        "{text}"
    );
    assert!(text.contains("drtool_stream_lag_seconds{"), "{text}");
    // A schedule's backup (here by hand) becomes the stream's base within
    // 30 s; the old base and its segments can then go together.
    let old = status(&lab, &cfg)["regions"][0]["base"]
        .as_str()
        .unwrap()
        .to_string();
    backup(&lab, &cfg);
    let started = Instant::now();
    let rev = loop {
        let rev = txn(
            &mut east,
            vec![put(&prefix, "moved", object_value(3, 2000))],
        )
        .await;
        let s = status(&lab, &cfg);
        let segments = s["regions"][0]["segments"].as_u64().unwrap_or(0);
        if s["regions"][0]["base"].as_str() != Some(old.as_str()) && segments > 0 {
            break rev;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stream kept its old base: {s:#}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    wait_reaches(&lab, &cfg, rev);
    let config = drtool::source::load_config(&cfg).unwrap();
    let engine = drtool::engine::Engine::new(
        config,
        drtool::source::registry(),
        drtool::engine::EngineOptions::default(),
    )
    .unwrap();
    let report = engine
        .delete_point("s", &old.parse().unwrap())
        .await
        .unwrap();
    assert!(
        report
            .items
            .iter()
            .all(|i| i.message.contains("stream segments")),
        "{report:?}"
    );
    for region in [EAST, WEST] {
        let rs = RegionStore::open(engine.config().region(region).unwrap()).await;
        let left = rs
            .store
            .list(&rs.layout.stream_prefix("s", Some(&old.parse().unwrap())))
            .await
            .unwrap();
        assert!(left.is_empty(), "{region}: {left:?}");
    }
    signal(daemon.id(), "TERM");
    let (code, out, err) = finish(daemon);
    assert_eq!(code, Some(143), "{out}{err}");
    assert!(err.contains("stream stopped"), "{err}");
    // It let go of the stream's lock: a stream starts at once.
    let stream = lab.spawn_drtool(&cfg, &["stream", "run", "--target", "s"], None);
    let rev = txn(&mut east, vec![put(&prefix, "c", object_value(2, 1000))]).await;
    wait_reaches(&lab, &cfg, rev);
    stop(stream, "INT");
    forget(&mut east, &prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn under_encryption_segments_are_age_encrypted_and_restore_with_the_identity() {
    use age::secrecy::ExposeSecret;
    let (lab, name, prefix, tmp) = setup("stream-age");
    let key = age::x25519::Identity::generate();
    let identity = tmp.path().join("key.txt");
    std::fs::write(&identity, format!("{}\n", key.to_string().expose_secret())).unwrap();
    let config = format!(
        "[encryption]\nrecipients = [\"{}\"]\n{}",
        key.to_public(),
        stream_config(&lab, &name, &prefix, None)
    );
    let cfg = write_config(tmp.path(), &config);
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    txn(&mut east, vec![put(&prefix, "base", object_value(0, 2048))]).await;
    backup(&lab, &cfg);
    let stream = lab.spawn_drtool(&cfg, &["stream", "run", "--target", "s"], None);
    let secret = b"a secret only the identity reads";
    let rev = txn(&mut east, vec![put(&prefix, "secret", secret.to_vec())]).await;
    wait_reaches(&lab, &cfg, rev);
    stop(stream, "INT");
    // Stored as age, not as zstd of the clear value.
    let rs = west_store(&cfg).await;
    let segments = rs
        .store
        .list(&rs.layout.stream_prefix("s", None))
        .await
        .unwrap();
    assert!(!segments.is_empty());
    for s in &segments {
        let bytes = rs.store.get(&s.key).await.unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/"), "{}", s.key);
    }
    // Without the identity a restore says what to pass; with it, it restores.
    wipe_west(&lab, &prefix).await;
    let out = restore(&lab, &cfg, &[]);
    refused(&out, 2, "--identity");
    let id = identity.display().to_string();
    let out = restore(&lab, &cfg, &["--identity", &id]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut west = etcd_client(&lab.etcd(WEST)).await;
    assert!(dump(&mut west, &prefix).await == dump(&mut east, &prefix).await);
    wipe_west(&lab, &prefix).await;
    forget(&mut east, &prefix).await;
}

/// A snapshot target streams too: its base revision is read from the
/// snapshot's own pages, and a restore to a revision replays the segments
/// on a scratch etcd before the members' data dirs are made from it.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_stream_restores_a_revision_into_new_data_dirs() {
    let (lab, name, prefix, tmp) = setup("snapstream");
    let data_dir = tmp.path().join("restore").join("m1");
    let peer = free_port();
    let members = format!(
        "members = [{{ name = \"m1\", peer_url = \"http://127.0.0.1:{peer}\", data_dir = {:?} }}]\ncluster_token = \"snapstream\"",
        data_dir.display().to_string()
    );
    let target = lab
        .etcd_target_toml("s", "snapshot", None, &members)
        .replace(
            "mode = \"snapshot\"\n",
            "mode = \"snapshot\"\ncontinuous = { segment = \"300ms\" }\n",
        );
    let cfg = write_config(tmp.path(), &format!("{}{target}", lab.regions_toml(&name)));
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    for chunk in (0..120).collect::<Vec<_>>().chunks(40) {
        let ops = chunk
            .iter()
            .map(|i| {
                put(
                    &prefix,
                    &format!("cm/{i:04}"),
                    object_value(*i, size_of(*i)),
                )
            })
            .collect();
        txn(&mut east, ops).await;
    }
    let before = txn(&mut east, vec![put(&prefix, "mark", b"before".to_vec())]).await;
    backup(&lab, &cfg);
    let after = txn(&mut east, vec![put(&prefix, "mark", b"after".to_vec())]).await;
    let stream = lab.spawn_drtool(&cfg, &["stream", "run", "--target", "s"], None);
    let lease = east.lease_grant(600, None).await.unwrap().id();
    let mut marks: Vec<(u64, State)> = Vec::new();
    let mut rev = 0;
    for i in 0..30 {
        rev = txn(
            &mut east,
            vec![put(
                &prefix,
                &format!("cm/{:04}", i * 2),
                object_value(500 + i, size_of(i + 3)),
            )],
        )
        .await;
    }
    marks.push((rev, dump(&mut east, &prefix).await));
    txn(
        &mut east,
        vec![
            put(&prefix, "secret/big", object_value(3, 1_400_000)),
            TxnOp::delete(format!("{prefix}cm/0005"), None),
        ],
    )
    .await;
    rev = txn(
        &mut east,
        vec![TxnOp::put(
            format!("{prefix}leased/k"),
            object_value(8, 4096),
            Some(PutOptions::new().with_lease(lease)),
        )],
    )
    .await;
    marks.push((rev, dump(&mut east, &prefix).await));
    // The stream starts after the revision read from the snapshot itself.
    let s = wait_reaches(&lab, &cfg, rev);
    let base = s["regions"][0]["base_position"].as_u64().unwrap();
    assert!(
        before <= base && base < after,
        "{before} <= {base} < {after}: {s:#}"
    );
    stop(stream, "TERM");

    // The plan names the replay; the restore says it ran on a scratch etcd.
    let (mid, expected) = &marks[0];
    let out = restore(&lab, &cfg, &["--revision", &mid.to_string()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let said = stdout(&out);
    assert!(said.contains(&format!("up to revision {mid}")), "{said}");
    assert!(said.contains("on a scratch etcd"), "{said}");
    {
        let (_etcd, mut restored) = start_restored_member("m1", &data_dir, peer).await;
        assert!(
            &dump(&mut restored, &prefix).await == expected,
            "keys at revision {mid}"
        );
    }
    // Nothing of the scratch etcd or its files is left beside the data dir.
    let left: Vec<_> = std::fs::read_dir(data_dir.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".drtool-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // The newest the region holds, over the first restore (moved aside).
    let out = restore(&lab, &cfg, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (_etcd, mut restored) = start_restored_member("m1", &data_dir, peer).await;
    let got = dump(&mut restored, &prefix).await;
    let newest = &marks[1].1;
    for (k, v) in newest {
        assert_eq!(got.get(k), Some(v), "{}", String::from_utf8_lossy(k));
    }
    assert_eq!(got.len(), newest.len());
    let key = format!("{prefix}leased/k").into_bytes();
    assert_leased_then_revoke(&mut restored, key, lease, 600).await;
    east.lease_revoke(lease).await.unwrap();
    forget(&mut east, &prefix).await;
}
