//! Cancellation: Ctrl-C (SIGINT) and SIGTERM while a 300 MB etcd snapshot is
//! streamed to Garage and to a file:// store, and while a restore's child
//! process (etcdctl snapshot restore) runs. Each run exits 130 or 143 and
//! leaves no point, no open multipart upload, no temporary file; the child is
//! gone and the moved-aside data dir is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use drtool::catalog::RegionStore;
use futures::StreamExt;
use serde_json::Value;

const CLIENT: &str = "http://127.0.0.1:32679";
const PEER: &str = "http://127.0.0.1:32680";
/// About 300 MB of values, like a real /registry: mostly 1-20 KiB, some 1 MiB.
const TOTAL_BYTES: usize = 300 * 1024 * 1024;

fn start_etcd(dir: &Path) -> Kill {
    let etcd = Command::new("etcd")
        .args(["--name", "big", "--data-dir"])
        .arg(dir.join("etcd"))
        .args([
            "--listen-client-urls",
            CLIENT,
            "--advertise-client-urls",
            CLIENT,
        ])
        .args([
            "--listen-peer-urls",
            PEER,
            "--initial-advertise-peer-urls",
            PEER,
        ])
        .args(["--initial-cluster", &format!("big={PEER}")])
        .args(["--quota-backend-bytes", "4294967296"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Kill(etcd)
}

/// A value that looks like a serialized object: text with varying digits.
fn value(i: usize, size: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(size + 64);
    let mut n = i as u64 * 2_654_435_761;
    while v.len() < size {
        n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        v.extend_from_slice(format!("{{\"k{}\":\"{:x}\",", n % 97, n >> 20).as_bytes());
    }
    v.truncate(size);
    v
}

async fn load(endpoint: &str) {
    let started = Instant::now();
    let mut client = loop {
        if let Ok(mut c) = etcd_client::Client::connect([endpoint], None).await
            && c.status().await.is_ok()
        {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the test etcd did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Batches of at most 100 keys and 1 MiB: under etcd's request limits.
    let mut batches = Vec::new();
    let (mut batch, mut batch_bytes, mut total, mut i) = (Vec::new(), 0, 0, 0);
    while total < TOTAL_BYTES {
        let size = if i % 400 == 399 {
            1024 * 1024
        } else {
            1024 + (i * 7919) % (19 * 1024)
        };
        if batch.len() == 100 || batch_bytes + size > 1024 * 1024 {
            batches.push(std::mem::take(&mut batch));
            batch_bytes = 0;
        }
        batch.push((
            format!("/registry/configmaps/ns-{}/cm-{i:06}", i % 40),
            i,
            size,
        ));
        batch_bytes += size;
        total += size;
        i += 1;
    }
    batches.push(batch);
    let writes = futures::stream::iter(batches.into_iter().map(|b| {
        let mut c = client.clone();
        async move {
            let ops = b
                .into_iter()
                .map(|(k, i, size)| etcd_client::TxnOp::put(k, value(i, size), None))
                .collect::<Vec<_>>();
            c.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
        }
    }))
    .buffer_unordered(4);
    writes.collect::<Vec<()>>().await;
    client.status().await.unwrap();
}

fn config(regions: &str, extra: &str) -> String {
    format!(
        r#"{regions}
[targets.big]
kind = "etcd"
mode = "snapshot"
home = "{EAST}"

[targets.big.regions.{EAST}]
endpoints = ["{CLIENT}"]
{extra}
"#
    )
}

fn file_regions(root: &Path) -> String {
    format!("[regions.{EAST}]\nstore = \"file://{}\"\n", root.display())
}

fn garage_regions(lab: &Lab, prefix: &str) -> String {
    format!(
        "[regions.{EAST}]\nstore = \"s3://drtool-{EAST}/{prefix}\"\nendpoint = \"{}\"\npath_style = true\n",
        lab.s3(EAST)
    )
}

/// Nothing of a backup may remain: no point, no orphan, no open upload.
async fn assert_nothing_left(lab: &Lab, cfg: &Path) {
    let out = lab
        .drtool(cfg)
        .args(["points", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = region_view(&v, EAST);
    assert!(v["points"].as_array().unwrap().is_empty(), "{v}");
    assert!(v["orphans"].as_array().unwrap().is_empty(), "{v}");
    let parsed = drtool::source::load_config(cfg).unwrap();
    let rs = RegionStore::open(parsed.region(EAST).unwrap()).await;
    let prefix = rs.layout.points_prefix(None);
    assert!(rs.store.list(&prefix).await.unwrap().is_empty());
    assert!(rs.store.unfinished(&prefix).await.unwrap().is_empty());
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Starts a backup, signals it once bytes flow, checks the exit code.
fn cancel_backup(lab: &Lab, cfg: &Path, events: &Path, sig: &str) -> String {
    // A fresh log: the wait below must not see the previous run's events.
    let _ = std::fs::remove_file(events);
    let child = lab.spawn_drtool(cfg, &["backup", "--events", events.to_str().unwrap()], None);
    wait_for_event(events, "backup progress", |e| {
        e["operation"] == "backup" && e["event"] == "progress" && e["bytes"].as_u64() > Some(0)
    });
    signal(child.id(), sig);
    let (code, _, err) = finish(child);
    let want = if sig == "INT" { 130 } else { 143 };
    assert_eq!(code, Some(want), "{err}");
    assert!(err.contains("cancelling"), "{err}");
    let finished = read_events(events)
        .into_iter()
        .find(|e| e["operation"] == "backup" && e["event"] == "finished")
        .unwrap();
    assert_eq!(finished["outcome"], "cancelled", "{finished}");
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn signals_cancel_backups_and_restores_cleanly() {
    let lab = Lab::get();
    let tmp = tempfile::tempdir().unwrap();
    let _etcd = start_etcd(tmp.path());
    load(CLIENT).await;
    let events = tmp.path().join("events.jsonl");

    // Backups, to Garage and to a file:// store, by Ctrl-C and by SIGTERM.
    for (i, sig) in ["INT", "TERM"].into_iter().enumerate() {
        let name = unique(&format!("cancel{i}"));
        let cfg = write_config(tmp.path(), &config(&garage_regions(&lab, &name), ""));
        cancel_backup(&lab, &cfg, &events, sig);
        assert_nothing_left(&lab, &cfg).await;

        let root = tmp.path().join(format!("store-{i}"));
        let cfg = write_config(tmp.path(), &config(&file_regions(&root), ""));
        cancel_backup(&lab, &cfg, &events, sig);
        assert_nothing_left(&lab, &cfg).await;
        let left = files_under(&root);
        assert!(left.is_empty(), "files left in the store: {left:?}");
    }

    // A restore signalled while etcdctl materializes the data dir.
    let root = tmp.path().join("store-restore");
    let data_dir = tmp.path().join("restore").join("m1");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(
        data_dir.join("original"),
        b"the member's data before the restore",
    )
    .unwrap();
    let members = format!(
        "members = [{{ name = \"m1\", peer_url = \"http://127.0.0.1:32690\", data_dir = \"{}\" }}]",
        data_dir.display()
    );
    let cfg = write_config(tmp.path(), &config(&file_regions(&root), &members));
    let out = lab.drtool(&cfg).args(["backup"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let tools = tmp.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let pidfile = tmp.path().join("tool.pid");
    // Named etcdutl so it is found first; it runs the real etcdctl after 30 s.
    delayed_tool(&tools, "etcdutl", &which("etcdctl"), &pidfile, 30);
    let child = lab.spawn_drtool(
        &cfg,
        &[
            "restore",
            "--region",
            EAST,
            "--target",
            "big",
            "--yes",
            "--events",
            events.to_str().unwrap(),
        ],
        Some(&tools),
    );
    let started = Instant::now();
    while !pidfile.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the tool never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let tool_pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(child.id(), "INT");
    let (code, _, err) = finish(child);
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("original data dir put back"), "{err}");
    let gone = Instant::now();
    while alive(tool_pid) {
        assert!(
            gone.elapsed() < Duration::from_secs(5),
            "the tool {tool_pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        data_dir.join("original").is_file(),
        "the data dir is not back"
    );
    let restore_dir = data_dir.parent().unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(restore_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "m1")
        .collect();
    assert!(
        leftovers.is_empty(),
        "left next to the data dir: {leftovers:?}"
    );
}
