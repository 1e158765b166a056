//! What a backup tool is trusted for, against the lab: a restore applies only
//! bytes it verified, a point replaced after its plan writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use drtool::catalog::{PointChoice, RegionStore};
use drtool::engine::{Engine, EngineOptions, Existing, Outcome, RestoreOptions, RestoreRequest};
use drtool::error::ErrorClass;
use drtool::store::Keep;

fn engine(cfg: &std::path::Path) -> Engine {
    let config = drtool::source::load_config(cfg).unwrap();
    Engine::new(config, drtool::source::registry(), EngineOptions::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_point_replaced_between_plan_and_execution_writes_nothing() {
    let lab = Lab::get();
    let name = unique("pinned");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("kv", "keys", Some(&prefix), "")
    );
    let cfg = write_config(tmp.path(), &config);
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    load_keys(&mut east, &prefix, 300, 4 * 1024).await;
    let mut points = Vec::new();
    for _ in 0..2 {
        let out = lab.drtool(&cfg).arg("backup").output().unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        points.push(point_of(&stdout(&out)));
        // The second point holds one more key.
        load_keys(&mut east, &format!("{prefix}more/"), 1, 64).await;
    }

    let engine = engine(&cfg);
    let plan = engine
        .plan_restore(&RestoreRequest {
            region: WEST.into(),
            target: "kv".into(),
            point: PointChoice::Id(points[0].parse().unwrap()),
            options: RestoreOptions {
                existing: Some(Existing::Fail),
                ..RestoreOptions::default()
            },
        })
        .await
        .unwrap();
    let pinned = plan.point.as_ref().and_then(|p| p.data_version.clone());
    assert!(pinned.is_some(), "the plan records the version it verified");

    // Someone with write access to the bucket swaps the data under the plan:
    // valid zstd, another point's bytes.
    let cfg_loaded = drtool::source::load_config(&cfg).unwrap();
    let rs = RegionStore::open(cfg_loaded.region(WEST).unwrap()).await;
    let key = |p: &str| rs.layout.data_key("kv", &p.parse().unwrap(), false);
    let other = rs.store.get(&key(&points[1])).await.unwrap();
    rs.store
        .put(&key(&points[0]), other, Keep::Normal)
        .await
        .unwrap();

    let report = engine.execute(&plan).await;
    let item = &report.items[0];
    assert_eq!(item.outcome, Outcome::Failed, "{item:?}");
    assert_eq!(item.error_class, Some(ErrorClass::Integrity), "{item:?}");
    assert!(
        item.message.contains("was replaced after it was verified")
            && item.message.contains("nothing was written"),
        "{}",
        item.message
    );
    let mut west = etcd_client(&lab.etcd(WEST)).await;
    assert!(
        dump(&mut west, &prefix).await.is_empty(),
        "keys were written from unverified bytes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_a_dr_copy_that_is_missing_or_lost_its_manifest() {
    let lab = Lab::get();
    let name = unique("gaps");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("kv", "keys", Some(&prefix), "")
    );
    let cfg = write_config(tmp.path(), &config);
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    load_keys(&mut east, &prefix, 50, 2 * 1024).await;
    let mut points = Vec::new();
    for _ in 0..3 {
        let out = lab.drtool(&cfg).arg("backup").output().unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        points.push(point_of(&stdout(&out)));
    }
    lab.drtool(&cfg).arg("verify").assert().success();

    let parsed = drtool::source::load_config(&cfg).unwrap();
    let west = RegionStore::open(parsed.region(WEST).unwrap()).await;
    let id = |p: &str| p.parse::<drtool::archive::PointId>().unwrap();
    // The first copy lost its manifest; the second is gone altogether.
    west.store
        .delete(&west.layout.manifest_key("kv", &id(&points[0])))
        .await
        .unwrap();
    for key in [
        west.layout.manifest_key("kv", &id(&points[1])),
        west.layout.data_key("kv", &id(&points[1]), false),
    ] {
        west.store.delete(&key).await.unwrap();
    }
    let out = lab.drtool(&cfg).arg("verify").output().unwrap();
    let text = stdout(&out);
    // A recorded copy that is not a recovery point is an integrity failure,
    // and an integrity failure anywhere in a run wins over "partial".
    assert_eq!(out.status.code(), Some(5), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "records a copy in {WEST}, but {WEST} holds its data but no manifest"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "records a copy in {WEST}, but {WEST} does not hold it"
        )),
        "{text}"
    );
    // The gone copy's verify result (from the first verify) is no copy: a
    // leftover, which gc removes.
    let listed = points_in(&lab, &cfg, WEST);
    let left: Vec<&str> = listed["leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["key"].as_str())
        .collect();
    let result = west.layout.verify_keys("kv", &id(&points[1]), true).0;
    assert!(left.contains(&result.as_str()), "{listed}");
    // Asked for by id in that region: a failure, not "no points matched".
    lab.drtool(&cfg)
        .args(["verify", "--region", WEST, "--point", &points[0]])
        .assert()
        .code(5)
        .stdout(predicates::str::contains("data without a manifest"));
    // And in the region alone, the leftover is still shown.
    let out = lab
        .drtool(&cfg)
        .args(["verify", "--region", WEST])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("WARN") && stdout(&out).contains("data without a manifest"),
        "{}",
        stdout(&out)
    );
}

fn openssl_key(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    for args in [
        vec![
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            private.to_str().unwrap(),
        ],
        vec![
            "pkey",
            "-in",
            private.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ],
    ] {
        let status = std::process::Command::new("openssl")
            .args(&args)
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    }
    (private, public)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_point_is_refused_under_a_verification_key() {
    let lab = Lab::get();
    let name = unique("signed");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = openssl_key(tmp.path(), "sign");
    let (other_key, _) = openssl_key(tmp.path(), "other");
    let body = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("kv", "keys", Some(&prefix), "")
    );
    let signing = |sign: &std::path::Path| {
        format!(
            "[signing]\nkey_file = {:?}\nverify_keys = [{:?}]\n{body}",
            sign.display().to_string(),
            public.display().to_string()
        )
    };
    let dirs: Vec<_> = ["signed", "plain", "other", "checks"]
        .iter()
        .map(|d| {
            let p = tmp.path().join(d);
            std::fs::create_dir_all(&p).unwrap();
            p
        })
        .collect();
    let signed_cfg = write_config(&dirs[0], &signing(&key));
    let plain_cfg = write_config(&dirs[1], &body);
    let other_cfg = write_config(
        &dirs[2],
        &format!(
            "[signing]\nkey_file = {:?}\n{body}",
            other_key.display().to_string()
        ),
    );
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    load_keys(&mut east, &prefix, 40, 1024).await;
    let backup = |cfg: &std::path::Path| {
        let out = lab
            .drtool(cfg)
            .args(["backup", "--no-copy"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        point_of(&stdout(&out))
    };
    let unsigned = backup(&plain_cfg);
    let foreign = backup(&other_cfg);
    let good = backup(&signed_cfg);
    // Other contents, so the forgery below really changes the bytes.
    load_keys(&mut east, &format!("{prefix}extra/"), 5, 100).await;
    let forged = backup(&signed_cfg);

    // Someone who can write to the bucket replaces the data of a signed point
    // with other bytes and recomputes every hash and the manifest checksum.
    let parsed = drtool::source::load_config(&plain_cfg).unwrap();
    let rs = RegionStore::open(parsed.region(EAST).unwrap()).await;
    let id = |p: &str| p.parse::<drtool::archive::PointId>().unwrap();
    let data = rs
        .store
        .get(&rs.layout.data_key("kv", &id(&unsigned), false))
        .await
        .unwrap();
    let unsigned_manifest = drtool::archive::Manifest::parse(
        "m",
        &rs.store
            .get(&rs.layout.manifest_key("kv", &id(&unsigned)))
            .await
            .unwrap(),
    )
    .unwrap();
    let key_m = rs.layout.manifest_key("kv", &id(&forged));
    let mut m =
        drtool::archive::Manifest::parse("m", &rs.store.get(&key_m).await.unwrap()).unwrap();
    assert!(
        m.signature.is_some(),
        "backups with a signing key are signed"
    );
    m.stored_sha256 = unsigned_manifest.stored_sha256.clone();
    m.stored_size = unsigned_manifest.stored_size;
    m.plaintext_sha256 = unsigned_manifest.plaintext_sha256.clone();
    m.plaintext_size = unsigned_manifest.plaintext_size;
    rs.store
        .put(
            &rs.layout.data_key("kv", &id(&forged), false),
            data,
            Keep::Normal,
        )
        .await
        .unwrap();
    rs.store
        .put(&key_m, m.seal().into(), Keep::Normal)
        .await
        .unwrap();

    // Without a verification key, the forgery passes every hash check: the
    // reason signing exists.
    lab.drtool(&plain_cfg)
        .args(["verify", "--region", EAST, "--point", &forged])
        .assert()
        .success();
    // With one, verify and restore refuse it, and what is not signed by a
    // trusted key.
    let checks = write_config(&dirs[3], &signing(&key));
    for (point, why) in [
        (&forged, "does not match the signature"),
        (&unsigned, "it is not signed"),
        (&foreign, "which is not one of the trusted keys"),
    ] {
        lab.drtool(&checks)
            .args(["verify", "--region", EAST, "--point", point])
            .assert()
            .code(5)
            .stdout(predicates::str::contains(why));
        lab.drtool(&checks)
            .args([
                "restore",
                "--region",
                EAST,
                "--target",
                "kv",
                "--point",
                point,
                "--dry-run",
            ])
            .assert()
            .code(5)
            .stderr(predicates::str::contains(why));
    }
    let fingerprint = {
        let out = lab
            .drtool(&checks)
            .args(["verify", "--region", EAST, "--point", &good])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stdout(&out));
        let text = stdout(&out);
        let fp = text
            .split("signed by key ")
            .nth(1)
            .unwrap()
            .trim()
            .to_string();
        assert_eq!(fp.len(), 16, "{text}");
        fp
    };
    // The newest point is the forgery: a restore passes over it and says which
    // key signed the one it uses.
    lab.drtool(&checks)
        .args([
            "restore",
            "--region",
            EAST,
            "--target",
            "kv",
            "--prefix",
            &prefix,
            "--existing",
            "skip",
            "--dry-run",
        ])
        .assert()
        .success()
        .stdout(predicates::str::contains(format!("point      {good}")))
        .stdout(predicates::str::contains(format!(
            "NOT USED   newer point {forged}"
        )))
        .stdout(predicates::str::contains(format!(
            "signed     by ed25519 key {fingerprint}"
        )));
    // A copy keeps the signature.
    lab.drtool(&signed_cfg)
        .args(["copy", "--point", &good])
        .assert()
        .success();
    lab.drtool(&checks)
        .args(["verify", "--region", WEST, "--point", &good])
        .assert()
        .success()
        .stdout(predicates::str::contains(format!(
            "signed by key {fingerprint}"
        )));
}

async fn moto_s3(lab: &Lab) -> aws_sdk_s3::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(EAST))
        .load()
        .await;
    let conf = aws_sdk_s3::config::Builder::from(&shared)
        .endpoint_url(&lab.env["LAB_RDS_ENDPOINT"])
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread")]
async fn object_lock_keeps_points_from_being_deleted_early() {
    let lab = Lab::get();
    let name = unique("locked");
    let prefix = format!("/{name}/");
    let s3 = moto_s3(&lab).await;
    let (locked, unlocked) = (format!("{name}-lock"), format!("{name}-plain"));
    s3.create_bucket()
        .bucket(&locked)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    s3.create_bucket().bucket(&unlocked).send().await.unwrap();
    let config = |bucket: &str| {
        format!(
            r#"
[regions.{EAST}]
store = "s3://{bucket}/dr"
endpoint = "{moto}"
path_style = true
object_lock = {{ mode = "governance", retain = "2d" }}

[regions.{WEST}]
store = "s3://drtool-{WEST}/{name}"
endpoint = "{west}"
path_style = true
{target}"#,
            moto = lab.env["LAB_RDS_ENDPOINT"],
            west = lab.s3(WEST),
            target = lab.etcd_target_toml("kv", "keys", Some(&prefix), "")
        )
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let cfg = write_config(&a, &config(&locked));
    let plain = write_config(&b, &config(&unlocked));
    // config check tells a bucket without Object Lock before any backup fails on it.
    lab.drtool(&plain)
        .args(["config", "check"])
        .assert()
        .code(2)
        .stdout(predicates::str::contains("MISCONFIGURED"))
        .stdout(predicates::str::contains("has no Object Lock enabled"));
    // A backup into it is refused before anything is written (never an
    // unprotected point that looks protected).
    load_keys(&mut etcd_client(&lab.etcd(EAST)).await, &prefix, 5, 512).await;
    let out = lab
        .drtool(&plain)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("bucket {unlocked} has no Object Lock enabled")),
        "{}",
        stdout(&out)
    );
    let written = s3.list_objects_v2().bucket(&unlocked).send().await.unwrap();
    assert_eq!(written.key_count(), Some(0), "nothing was written");
    lab.drtool(&cfg)
        .args(["config", "check"])
        .assert()
        .success();

    let mut east = etcd_client(&lab.etcd(EAST)).await;
    load_keys(&mut east, &prefix, 20, 1024).await;
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let point = point_of(&stdout(&out));
    for file in ["manifest.json", "data.zst"] {
        let key = format!("dr/points/kv/{point}/{file}");
        let head = s3
            .head_object()
            .bucket(&locked)
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.object_lock_mode(),
            Some(&aws_sdk_s3::types::ObjectLockMode::Governance),
            "{key}"
        );
        let until = head.object_lock_retain_until_date().unwrap().secs();
        let now = chrono::Utc::now().timestamp();
        assert!(
            (until - now - 2 * 86_400).abs() < 600,
            "{key} retained until {until}, not about two days from {now}"
        );
    }

    // A delete (what prune will do) is refused by the store; the point stays.
    let engine = engine(&cfg);
    let report = engine
        .delete_point("kv", &point.parse().unwrap())
        .await
        .unwrap();
    let east_item = report.items.iter().find(|i| i.region == EAST).unwrap();
    assert_eq!(east_item.outcome, Outcome::Failed, "{east_item:?}");
    assert!(
        east_item.message.contains("under retention"),
        "{}",
        east_item.message
    );
    lab.drtool(&cfg)
        .args(["verify", "--region", EAST, "--point", &point])
        .assert()
        .success();
}

/// A tmpfs mounted on `dir` (as `/var/lib/etcd` often is), unmounted on drop.
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn tmpfs(dir: &std::path::Path) -> Mounted {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "drtool-test", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount tmpfs on {} (the lab runs as root)",
            dir.display()
        );
        Mounted(dir.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_restores_into_a_mount_point_and_a_failed_member_is_reported() {
    let lab = Lab::get();
    let name = unique("mounted");
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("var-lib-etcd");
    let mount = Mounted::tmpfs(&data_dir);
    std::fs::create_dir_all(data_dir.join("member")).unwrap();
    std::fs::write(data_dir.join("member/original"), b"the old member").unwrap();
    let members = |list: &str| format!("members = [{list}]\ncluster_token = \"mount-test\"");
    let one = format!(
        "{{ name = \"m1\", peer_url = \"http://127.0.0.1:22391\", data_dir = {:?} }}",
        data_dir.display().to_string()
    );
    let config = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("snap", "snapshot", None, &members(&one))
    );
    let cfg = write_config(tmp.path(), &config);
    let out = lab.drtool(&cfg).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    lab.drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "snap", "--dry-run"])
        .assert()
        .success()
        .stdout(predicates::str::contains("the data dir is a mount point"));
    let out = lab
        .drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "snap", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // Still the mount, now holding the restored member; the old one inside it.
    {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &std::path::Path| std::fs::metadata(p).unwrap().dev();
        assert_ne!(dev(&data_dir), dev(tmp.path()), "still the mount");
    }
    assert!(
        data_dir.join("member/snap/db").is_file(),
        "no restored member"
    );
    let aside: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".drtool-replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(aside[0].join("member/original")).unwrap(),
        b"the old member"
    );

    // Two members, the second of which cannot be made: the first is rolled
    // back and the report says where every data dir is.
    let plain = tmp.path().join("plain-m1");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("original"), b"m1 before").unwrap();
    let two = format!(
        "{{ name = \"m1\", peer_url = \"http://127.0.0.1:22391\", data_dir = {:?} }}, {{ name = \"m2\", peer_url = \"http://127.0.0.1:22392\", data_dir = \"/proc/drtool-cannot/m2\" }}",
        plain.display().to_string()
    );
    let config = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("snap", "snapshot", None, &members(&two))
    );
    let second = tmp.path().join("two-members");
    std::fs::create_dir_all(&second).unwrap();
    let cfg2 = write_config(&second, &config);
    let out = lab
        .drtool(&cfg2)
        .args(["restore", "--region", WEST, "--target", "snap", "--yes"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{}{err}", stdout(&out));
    assert!(err.contains("member 2 of 2 (m2) failed"), "{err}");
    assert!(
        err.contains(&format!(
            "m1: original data dir put back at {}",
            plain.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(plain.join("original")).unwrap(), b"m1 before");
    drop(mount);
}

#[test]
fn object_lock_on_a_store_that_cannot_keep_it_fails_the_backup_before_writing() {
    // Garage accepts the lock headers and keeps nothing: the backup must say
    // so instead of printing OK.
    let lab = Lab::get();
    let name = unique("garage-lock");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &format!(
            r#"
[regions.{EAST}]
store = "s3://drtool-{EAST}/{name}"
endpoint = "{east}"
path_style = true
object_lock = {{ mode = "compliance", retain = "2d" }}

[regions.{WEST}]
store = "s3://drtool-{WEST}/{name}"
endpoint = "{west}"
path_style = true
{target}"#,
            east = lab.s3(EAST),
            west = lab.s3(WEST),
            target = lab.etcd_target_toml("kv", "keys", Some(&prefix), "")
        ),
    );
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("no Object Lock enabled"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("Debug") && !stdout(&out).contains("SdkError"));
    let listed = points_in(&lab, &cfg, EAST);
    assert!(listed["points"].as_array().unwrap().is_empty(), "{listed}");
    assert!(
        listed["leftovers"].as_array().unwrap().is_empty(),
        "{listed}"
    );
    lab.drtool(&cfg)
        .args(["config", "check"])
        .assert()
        .code(2)
        .stdout(predicates::str::contains("MISCONFIGURED"));
    // gc on such a store: deleting every version needs ListObjectVersions,
    // which Garage does not implement; said in words, with the way out.
    let parsed = drtool::source::load_config(&cfg).unwrap();
    let east = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let rs = RegionStore::open(parsed.region(EAST).unwrap()).await;
        let id: drtool::archive::PointId = "20200101T000000Z-0badf00d".parse().unwrap();
        let key = rs.layout.data_key("kv", &id, false);
        rs.store
            .put(&key, bytes::Bytes::from_static(b"half"), Keep::Normal)
            .await
            .unwrap();
        key
    });
    let out = lab
        .drtool(&cfg)
        .args(["gc", "--region", EAST, "--older-than", "0s", "--yes"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_ne!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("keeps no object versions, which object_lock needs")
            && text.contains("remove object_lock from the region"),
        "{text}"
    );
    assert!(
        !text.contains("SdkError") && !text.contains("Debug"),
        "{text}"
    );
    assert!(east.contains(&name));
}
