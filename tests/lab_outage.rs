//! The disaster the tool exists for: us-east-1 dies, and both a keys point and a
//! snapshot point are restored in us-west-2 from us-west-2's bucket alone.
//! Alone in its own test binary because it stops a lab region.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use predicates::prelude::*;

struct Restart<'a>(&'a Lab);

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        self.0.script("start-region", &[EAST]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_in_west_while_east_is_down() {
    let lab = Lab::get();
    let name = unique("outage");
    let key_prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("restore").join("r1");
    let west_members = format!(
        "members = [{{ name = \"r1\", peer_url = \"http://127.0.0.1:22390\", data_dir = {:?} }}]\ncluster_token = \"outage-test\"",
        data_dir.display().to_string()
    );
    let config = format!(
        "{}{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("kv", "keys", Some(&key_prefix), ""),
        lab.etcd_target_toml("snap", "snapshot", None, &west_members)
    );
    let cfg = write_config(tmp.path(), &config);

    // A loaded source: 3000 keys of 1 KiB, some binary.
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    load_keys(&mut east, &key_prefix, 3000, 1024).await;
    let source = dump(&mut east, &key_prefix).await;
    assert_eq!(source.len(), 3000);

    let out = lab.drtool(&cfg).arg("backup").output().unwrap();
    assert!(
        out.status.success(),
        "backup failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let table = stdout(&out);
    assert_eq!(table.matches("OK      backup").count(), 2, "{table}");
    assert_eq!(table.matches("OK      copy").count(), 2, "{table}");

    // A DR region that is down makes a backup a partial failure: the point
    // exists in its home region, the copy is reported as failed (exit 3).
    lab.script("stop-region", &[WEST]);
    let partial = lab
        .drtool(&cfg)
        .args(["backup", "--target", "kv"])
        .output()
        .unwrap();
    lab.script("start-region", &[WEST]);
    assert_eq!(partial.status.code(), Some(3), "{}", stdout(&partial));
    assert!(stdout(&partial).contains("OK      backup"));
    assert!(stdout(&partial).contains("FAILED  copy"));
    assert!(stdout(&partial).contains("cannot reach the store"));
    // The copy can be made up for once the region is back.
    lab.drtool(&cfg)
        .args(["copy", "--target", "kv"])
        .assert()
        .success()
        .stdout(predicate::str::contains("copied from us-east-1"));

    // us-east-1 goes dark: its Garage and etcd are stopped.
    lab.script("stop-region", &[EAST]);
    let _restart = Restart(&lab);

    // Listing everything reports east as unreachable but still shows west.
    let out = lab.drtool(&cfg).arg("points").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stdout(&out).contains("UNAVAILABLE"));

    // Keys restore into west's (empty under this prefix) cluster.
    lab.drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "kv", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("create     3000"))
        .stdout(predicate::str::contains("dry run: nothing was changed"));
    lab.drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "kv"])
        .assert()
        .success()
        .stdout(predicate::str::contains("3000 keys created"));
    let mut west = etcd_client(&lab.etcd(WEST)).await;
    let restored = dump(&mut west, &key_prefix).await;
    assert_eq!(
        restored, source,
        "keys restored in us-west-2 differ from the source"
    );

    // Running it again with skip changes nothing.
    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            WEST,
            "--target",
            "kv",
            "--existing",
            "skip",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "0 keys created, 0 overwritten, 3000 skipped",
        ));

    // Snapshot restore: materialize a data dir, start etcd on it, compare.
    lab.drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "snap"])
        .assert()
        .success()
        .stdout(predicate::str::contains("data dirs ready"));
    assert!(data_dir.join("member").is_dir());
    let etcd = Command::new("etcd")
        .args(["--name", "r1", "--data-dir"])
        .arg(&data_dir)
        .args([
            "--listen-client-urls",
            "http://127.0.0.1:22391",
            "--advertise-client-urls",
            "http://127.0.0.1:22391",
            "--listen-peer-urls",
            "http://127.0.0.1:22390",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:22390",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let etcd_guard = Kill(etcd);
    let endpoints = vec!["http://127.0.0.1:22391".to_string()];
    let mut restored_cluster = None;
    for _ in 0..50 {
        if let Ok(mut c) = etcd_client::Client::connect(&endpoints, None).await
            && c.status().await.is_ok()
        {
            restored_cluster = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut restored_cluster = restored_cluster.expect("restored etcd did not start");
    let from_snapshot = dump(&mut restored_cluster, &key_prefix).await;
    assert_eq!(
        from_snapshot, source,
        "snapshot restore differs from the source"
    );

    // A second snapshot restore would replace the data dir: refused without --yes.
    lab.drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "snap"])
        .write_stdin("")
        .assert()
        .code(6)
        .stdout(predicate::str::contains("will be MOVED"))
        .stderr(predicate::str::contains("re-run with --yes"));

    // On a terminal it asks: a wrong answer changes nothing, the target's name
    // goes ahead and the old data dir is kept, moved aside.
    drop(etcd_guard);
    let on_tty = |answer: &str| {
        let cmd = format!(
            "{} restore --region {WEST} --target snap",
            assert_cmd::cargo::cargo_bin("drtool").display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .envs(&lab.env)
            .env("DRTOOL_CONFIG", &cfg)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(answer.as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let refused = on_tty("nope\n");
    assert_eq!(refused.status.code(), Some(6), "{}", stdout(&refused));
    assert!(stdout(&refused).contains("Type the target name (snap)"));
    let confirmed = on_tty("snap\n");
    assert!(confirmed.status.success(), "{}", stdout(&confirmed));
    let parent = data_dir.parent().unwrap();
    let kept: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("r1.drtool-replaced-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the replaced data dir was not kept");
    assert!(kept[0].path().join("member").is_dir());
    assert!(data_dir.join("member").is_dir());
}
