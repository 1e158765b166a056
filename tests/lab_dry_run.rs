//! `--dry-run` on backup, copy and restore-test: each says what it would do,
//! checks what it can without writing (sources answer, stores take writes,
//! the point is there), fails as the real run would, and writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn point_ids(lab: &Lab, cfg: &std::path::Path, region: &str) -> Vec<String> {
    let listed = points_in(lab, cfg, region);
    listed["points"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["point"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every object key under the test's prefix in a region's bucket.
async fn keys_in(cfg: &std::path::Path, region: &str, name: &str) -> Vec<String> {
    let parsed = drtool::source::load_config(cfg).unwrap();
    let rs = drtool::catalog::RegionStore::open(parsed.region(region).unwrap()).await;
    rs.store
        .list(&format!("{name}/"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_say_what_they_would_do_and_write_nothing() {
    let lab = Lab::get();
    let name = unique("dry");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &format!(
            "{}{}",
            lab.regions_toml(&name),
            lab.etcd_target_toml("kv", "keys", Some(&prefix), "")
        ),
    );
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    load_keys(&mut east, &prefix, 30, 6 * 1024).await;

    // backup: a plan per region, nothing in either bucket.
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--dry-run"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("PLAN    backup   kv"), "{text}");
    assert!(
        text.contains(&format!("from {}", lab.etcd(EAST)[0])),
        "{text}"
    );
    assert!(text.contains("PLAN    copy     kv"), "{text}");
    assert!(text.contains("dry run: nothing was written"), "{text}");
    assert_eq!(keys_in(&cfg, EAST, &name).await, Vec::<String>::new());
    assert_eq!(keys_in(&cfg, WEST, &name).await, Vec::<String>::new());

    // A schedule's run, planned: its backup and its retention.
    let schedules = tmp.path().join("schedules");
    std::fs::create_dir_all(&schedules).unwrap();
    std::fs::write(
        schedules.join("kv.toml"),
        "name = \"kv-hourly\"\ncron = \"0 * * * *\"\ntargets = [\"kv\"]\n\n[retention]\nkeep_last = 2\n",
    )
    .unwrap();
    let sched = schedules.display().to_string();
    let out = lab
        .drtool(&cfg)
        .args([
            "backup",
            "--schedule",
            "kv-hourly",
            "--schedules",
            &sched,
            "--dry-run",
        ])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("PLAN    backup   kv") && text.contains("retention of kv-hourly"),
        "{text}"
    );
    assert!(keys_in(&cfg, EAST, &name).await.is_empty());

    // A source that does not answer: the plan fails as the backup would (4).
    std::fs::create_dir_all(tmp.path().join("dead")).unwrap();
    let dead = write_config(
        &tmp.path().join("dead"),
        &format!(
            "{}{}",
            lab.regions_toml(&name),
            lab.etcd_target_toml("kv", "keys", Some(&prefix), "")
                .replacen(
                    &format!("{:?}", lab.etcd(EAST)),
                    "[\"http://127.0.0.1:9\"]",
                    1
                )
        ),
    );
    let out = lab
        .drtool(&dead)
        .args(["backup", "--dry-run"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}{}", stderr(&out));
    assert!(
        text.contains("FAILED  backup   kv") && text.contains("127.0.0.1:9"),
        "{text}"
    );

    // copy: the points the DR region lacks, with their sizes; none copied.
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let point = point_of(&stdout(&out));
    let out = lab
        .drtool(&cfg)
        .args(["copy", "--dry-run", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["dry_run"], true, "{doc}");
    let item = &doc["items"][0];
    assert!(
        item["outcome"] == "planned" && item["point"] == point.as_str() && item["region"] == WEST,
        "{doc}"
    );
    assert!(item["bytes"].as_u64().unwrap() > 0, "{doc}");
    assert!(point_ids(&lab, &cfg, WEST).is_empty());

    // restore-test: which point in which regions; nothing held or recorded.
    let before = keys_in(&cfg, EAST, &name).await;
    let out = lab
        .drtool(&cfg)
        .args(["restore-test", "-t", "kv", "--dry-run"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("PLAN    restore-test kv") && text.contains(&point),
        "{text}"
    );
    assert_eq!(
        keys_in(&cfg, EAST, &name).await,
        before,
        "a dry run wrote into the store"
    );
    lab.drtool(&cfg)
        .args([
            "restore-test",
            "-t",
            "kv",
            "--dry-run",
            "--point",
            "20200101T000000Z-00000000",
        ])
        .assert()
        .code(2);
}
