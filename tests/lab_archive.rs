//! Archive integrity against the lab's Garage and etcd: verify catches damage,
//! failed uploads leave nothing, encryption round-trips, and the format can be
//! recovered with standard tools alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use drtool::archive::pipeline::{self, WriteOptions};
use drtool::catalog::RegionStore;
use drtool::store::Keep;
use predicates::prelude::*;

async fn region_store(cfg_path: &std::path::Path, region: &str) -> RegionStore {
    let cfg = drtool::source::load_config(cfg_path).unwrap();
    RegionStore::open(cfg.region(region).unwrap()).await
}

/// Writes a config with one keys target and backs it up (no copy).
async fn backed_up(
    lab: &Lab,
    name: &str,
    extra: &str,
) -> (tempfile::TempDir, std::path::PathBuf, String, String) {
    let key_prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{extra}{}{}",
        lab.regions_toml(name),
        lab.etcd_target_toml("kv", "keys", Some(&key_prefix), "")
    );
    let cfg = write_config(tmp.path(), &config);
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    load_keys(&mut east, &key_prefix, 500, 200).await;
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let point = point_of(&stdout(&out));
    (tmp, cfg, point, key_prefix)
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_catches_a_flipped_byte_and_an_edited_manifest() {
    let lab = Lab::get();
    let name = unique("verify");
    let (_tmp, cfg, point, _) = backed_up(&lab, &name, "").await;
    lab.drtool(&cfg)
        .args(["verify", "--region", EAST])
        .assert()
        .success()
        .stdout(predicate::str::contains("OK      verify"));
    // The result is kept next to the point, and listings show it.
    let verified = &points_in(&lab, &cfg, EAST)["verifies"][&point];
    assert_eq!(verified["ok"], true, "{verified}");
    let at: chrono::DateTime<chrono::Utc> = verified["at"].as_str().unwrap().parse().unwrap();
    let age = chrono::Utc::now() - at;
    assert!(
        age.num_seconds().abs() < 120,
        "verified {age} ago: {verified}"
    );
    lab.drtool(&cfg)
        .args(["points", "--region", EAST])
        .assert()
        .success()
        .stdout(predicate::str::contains(" verified at "));

    let rs = region_store(&cfg, EAST).await;
    let id = point.parse().unwrap();
    let data_key = rs.layout.data_key("kv", &id, false);
    let mut data = rs.store.get(&data_key).await.unwrap().to_vec();
    let mid = data.len() / 2;
    data[mid] ^= 0x40;
    rs.store
        .put(&data_key, Bytes::from(data), Keep::Normal)
        .await
        .unwrap();
    lab.drtool(&cfg)
        .args(["verify", "--region", EAST])
        .assert()
        .code(5)
        .stdout(predicate::str::contains("FAILED"))
        .stdout(predicate::str::contains(&point));
    // A failed verify replaces the good one: the point is no longer known good.
    let verified = &points_in(&lab, &cfg, EAST)["verifies"][&point];
    assert_eq!(verified["ok"], false, "{verified}");
    let why = verified["message"].as_str().unwrap();
    assert!(
        !why.is_empty() && !why.starts_with("ok"),
        "the failed verify says why: {verified}"
    );
    lab.drtool(&cfg)
        .args(["points", "--region", EAST])
        .assert()
        .success()
        .stdout(predicate::str::contains(" VERIFY FAILED at "));

    // A second point whose manifest is edited (a size changed by hand).
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    let second = point_of(&stdout(&out));
    let manifest_key = rs.layout.manifest_key("kv", &second.parse().unwrap());
    let text = String::from_utf8(rs.store.get(&manifest_key).await.unwrap().to_vec()).unwrap();
    let edited = text.replace(
        "\"items\": {\n    \"keys\": 500",
        "\"items\": {\n    \"keys\": 501",
    );
    assert_ne!(edited, text, "test did not edit the manifest");
    rs.store
        .put(&manifest_key, Bytes::from(edited), Keep::Normal)
        .await
        .unwrap();
    lab.drtool(&cfg)
        .args(["verify", "--region", EAST, "--point", &second])
        .assert()
        .code(5)
        .stdout(predicate::str::contains("checksum mismatch"));
    // An edited manifest is not offered for restore either: asked for by id,
    // it is an integrity failure that says why and what to do.
    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            EAST,
            "--target",
            "kv",
            "--point",
            &second,
            "--dry-run",
        ])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("manifest checksum mismatch"))
        .stderr(predicate::str::contains("restore another point"));
    // Asked for the newest point: the edited one is passed over, then the
    // first one fails its checks while planning; nothing older is left.
    lab.drtool(&cfg)
        .args(["restore", "--region", EAST, "--target", "kv", "--dry-run"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains(
            "no recovery point passed its checks",
        ))
        .stderr(predicate::str::contains(format!(
            "{second}: damaged manifest"
        )))
        .stderr(predicate::str::contains(format!(
            "{point}: failed its checks"
        )));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_upload_leaves_no_point_and_no_multipart_upload() {
    let lab = Lab::get();
    let name = unique("abort");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &lab.regions_toml(&name));
    let rs = region_store(&cfg, EAST).await;
    let key = rs.layout.data_key(
        "kv",
        &drtool::archive::PointId::new(chrono::Utc::now()),
        false,
    );
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        // Two full parts reach the store before the source breaks.
        for i in 0..12u8 {
            let chunk: Vec<u8> = (0..1024 * 1024)
                .map(|j| (j as u8).wrapping_mul(i))
                .collect();
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Err(io::Error::other("source died"))).await;
    });
    let opts = WriteOptions {
        level: 1,
        adapt: false,
        threads: 1,
        part_size: 5 * 1024 * 1024,
        parts_in_flight: 2,
        recipients: vec![],
        trailing_sha256: false,
    };
    let r = pipeline::upload(
        rs.store.as_ref(),
        &key,
        rx,
        &opts,
        Arc::new(|_| {}),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    assert!(r.is_err());
    let prefix = rs.layout.points_prefix(None);
    assert!(rs.store.list(&prefix).await.unwrap().is_empty());
    assert!(rs.store.unfinished(&prefix).await.unwrap().is_empty());

    // Through the CLI: an unreachable etcd fails with exit 4 and leaves nothing.
    let config = format!(
        "{}\n[targets.dead]\nkind = \"etcd\"\nhome = \"{EAST}\"\n[targets.dead.regions.{EAST}]\nendpoints = [\"http://127.0.0.1:1\"]\n",
        lab.regions_toml(&name)
    );
    let cfg = write_config(tmp.path(), &config);
    lab.drtool(&cfg)
        .arg("backup")
        .assert()
        .code(4)
        .stdout(predicate::str::contains("cannot reach etcd"));
    assert!(rs.store.list(&prefix).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_point_needs_its_identity() {
    let lab = Lab::get();
    let name = unique("age");
    let key = age::x25519::Identity::generate();
    let tmp_keys = tempfile::tempdir().unwrap();
    let identity = tmp_keys.path().join("key.txt");
    use age::secrecy::ExposeSecret;
    std::fs::write(
        &identity,
        format!("# test key\n{}\n", key.to_string().expose_secret()),
    )
    .unwrap();
    let extra = format!("[encryption]\nrecipients = [\"{}\"]\n", key.to_public());
    let (_tmp, cfg, point, key_prefix) = backed_up(&lab, &name, &extra).await;
    let rs = region_store(&cfg, EAST).await;
    let id = point.parse().unwrap();
    assert!(
        rs.store
            .get(&rs.layout.data_key("kv", &id, true))
            .await
            .is_ok()
    );

    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            EAST,
            "--target",
            "kv",
            "--existing",
            "skip",
            "--dry-run",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --identity FILE"));
    // Without the identity verify can only check stored bytes: a warning.
    lab.drtool(&cfg)
        .args(["verify", "--region", EAST])
        .assert()
        .success()
        .stdout(predicate::str::contains("WARN"));
    lab.drtool(&cfg)
        .args(["verify", "--region", EAST, "--identity"])
        .arg(&identity)
        .assert()
        .success()
        .stdout(predicate::str::contains("plaintext bytes match"));

    // Delete the keys, restore them with the identity, compare.
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    let before = dump(&mut east, &key_prefix).await;
    east.delete(
        key_prefix.as_str(),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await
    .unwrap();
    lab.drtool(&cfg)
        .args(["restore", "--region", EAST, "--target", "kv", "--identity"])
        .arg(&identity)
        .assert()
        .success()
        .stdout(predicate::str::contains("500 keys created"));
    assert_eq!(dump(&mut east, &key_prefix).await, before);

    // A wrong identity is refused with a clear message.
    let other = tmp_keys.path().join("other.txt");
    let wrong = age::x25519::Identity::generate();
    std::fs::write(&other, wrong.to_string().expose_secret()).unwrap();
    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            EAST,
            "--target",
            "kv",
            "--existing",
            "skip",
            "--dry-run",
            "--identity",
        ])
        .arg(&other)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot decrypt"));
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_recovers_with_aws_zstd_and_etcdctl_alone() {
    let lab = Lab::get();
    let name = unique("manual");
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("snap", "snapshot", None, "")
    );
    let cfg = write_config(tmp.path(), &config);
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let point = point_of(&stdout(&out));
    let archive = tmp.path().join("data.zst");
    let s3_key = format!("s3://drtool-{EAST}/{name}/points/snap/{point}/data.zst");
    let status = Command::new("aws")
        .envs(&lab.env)
        .args([
            "--endpoint-url",
            &lab.s3(EAST),
            "s3",
            "cp",
            "--only-show-errors",
            &s3_key,
        ])
        .arg(&archive)
        .status()
        .unwrap();
    assert!(status.success(), "aws s3 cp failed");
    let db = tmp.path().join("snapshot.db");
    let status = Command::new("zstd")
        .arg("-qd")
        .arg(&archive)
        .arg("-o")
        .arg(&db)
        .status()
        .unwrap();
    assert!(status.success(), "zstd -d failed");
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "restore"])
        .arg(&db)
        .arg("--data-dir")
        .arg(tmp.path().join("member-data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "etcdctl snapshot restore refused it: {}",
        stderr(&out)
    );
    assert!(tmp.path().join("member-data/member/snap/db").is_file());

    // drtool's own snapshot restore needs etcdutl or etcdctl, and says so.
    // (The config ends with the us-west-2 table of the target.)
    let members = format!(
        "{config}members = [{{ name = \"m1\", peer_url = \"http://127.0.0.1:19999\", data_dir = \"m1\" }}]\n"
    );
    let cfg = write_config(tmp.path(), &members);
    lab.drtool(&cfg)
        .args(["copy", "--target", "snap"])
        .assert()
        .success();
    lab.drtool(&cfg)
        .env("PATH", "/nonexistent")
        .args(["restore", "--region", WEST, "--target", "snap", "--dry-run"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "neither etcdutl nor etcdctl is on PATH",
        ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_of_the_newest_point_falls_back_past_a_damaged_one_and_says_so() {
    let lab = Lab::get();
    let name = unique("fallback");
    let (_tmp, cfg, older, key_prefix) = backed_up(&lab, &name, "").await;
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let newest = point_of(&stdout(&out));
    let rs = region_store(&cfg, EAST).await;
    let data_key = rs.layout.data_key("kv", &newest.parse().unwrap(), false);
    let mut data = rs.store.get(&data_key).await.unwrap().to_vec();
    let mid = data.len() / 2;
    data[mid] ^= 0x01;
    rs.store
        .put(&data_key, Bytes::from(data), Keep::Normal)
        .await
        .unwrap();
    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            EAST,
            "--target",
            "kv",
            "--prefix",
            &key_prefix,
            "--existing",
            "skip",
            "--dry-run",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("point      {older}")))
        .stdout(predicate::str::contains(format!(
            "NOT USED   newer point {newest}: failed its checks"
        )));
    // Asked for by id, the damaged point is refused: no silent substitute.
    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            EAST,
            "--target",
            "kv",
            "--point",
            &newest,
            "--dry-run",
        ])
        .assert()
        .code(5);
}

/// The recipe block of the README's "Recovering without drtool".
fn readme_recipe() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("### Recovering without drtool")
        .nth(1)
        .expect("README has a recovery recipe");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the recipe is a sh block");
    block.to_string()
}

/// Sets `VAR=value` in the recipe's own assignment lines.
fn set_var(recipe: &str, var: &str, value: &str) -> String {
    recipe
        .lines()
        .map(|l| {
            let mut words: Vec<String> = l.split(' ').map(str::to_string).collect();
            for w in words.iter_mut() {
                if w.starts_with(&format!("{var}=")) {
                    *w = format!("{var}={value}");
                }
            }
            words.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_recipe_recovers_a_dr_copy_as_written() {
    let lab = Lab::get();
    let name = unique("recipe");
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("snap", "snapshot", None, "")
    );
    let cfg = write_config(tmp.path(), &config);
    let out = lab.drtool(&cfg).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let point = point_of(&stdout(&out));

    // The block as written; only what a user fills in is filled in: the
    // region, its store, the target and point, the endpoint of an
    // S3-compatible store, and where the member data goes.
    let mut recipe = readme_recipe();
    for (var, value) in [
        ("REGION", WEST.to_string()),
        ("STORE", format!("s3://drtool-{WEST}/{name}")),
        ("TARGET", "snap".to_string()),
        ("POINT", point.clone()),
    ] {
        recipe = set_var(&recipe, var, &value);
    }
    recipe = recipe
        .replace(
            "S3=\"aws s3 --region $REGION\"",
            &format!(
                "S3=\"aws s3 --only-show-errors --endpoint-url {} --region $REGION\"",
                lab.s3(WEST)
            ),
        )
        .replace("/var/lib/etcd-restore/m1", "restored/m1");
    assert!(recipe.contains("--region $REGION"), "{recipe}");
    let run = |recipe: &str| {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", recipe])
            .current_dir(tmp.path())
            .envs(&lab.env)
            // The primary region is what the environment points at: the
            // recipe must not depend on it.
            .env("AWS_REGION", EAST)
            .env("AWS_DEFAULT_REGION", EAST)
            .output()
            .unwrap()
    };
    let out = run(&recipe);
    assert!(
        out.status.success(),
        "the recipe failed:\n{recipe}\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("snapshot.db: OK"), "{}", stdout(&out));
    assert!(tmp.path().join("restored/m1/member/snap/db").is_file());

    // Without --region the same commands fail against the DR store: the
    // reason the recipe says it.
    let _ = std::fs::remove_dir_all(tmp.path().join("restored"));
    let unsigned = recipe.replace(" --region $REGION", "");
    let out = run(&unsigned);
    assert!(!out.status.success(), "{}", stdout(&out));
}
