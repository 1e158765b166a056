//! Copying points between regions, listing them, and probing the config.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use predicates::prelude::*;
use serde_json::Value;

fn points_json(lab: &Lab, cfg: &std::path::Path, region: &str) -> Vec<Value> {
    points_in(lab, cfg, region)["points"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_fills_the_dr_region_once() {
    let lab = Lab::get();
    let name = unique("copy");
    let key_prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("kv", "keys", Some(&key_prefix), "")
    );
    let cfg = write_config(tmp.path(), &config);
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    load_keys(&mut east, &key_prefix, 300, 100).await;

    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy", "--label", "env=test"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let point = point_of(&stdout(&out));
    assert!(points_json(&lab, &cfg, WEST).is_empty());

    lab.drtool(&cfg)
        .args(["copy", "--target", "kv"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "OK      copy     kv               {WEST}"
        )))
        .stdout(predicate::str::contains(&point));
    let west = points_json(&lab, &cfg, WEST);
    assert_eq!(west.len(), 1);
    assert_eq!(west[0]["point_id"], point.as_str());
    assert_eq!(west[0]["region"], WEST);
    assert_eq!(west[0]["copied_from"], EAST);
    assert_eq!(west[0]["labels"]["env"], "test");
    assert_eq!(west[0]["items"]["keys"], 300);
    let east_points = points_json(&lab, &cfg, EAST);
    assert_eq!(east_points[0]["copied_to"], serde_json::json!([WEST]));
    assert_eq!(east_points[0]["stored_sha256"], west[0]["stored_sha256"]);

    // A second copy has nothing to do.
    lab.drtool(&cfg)
        .args(["copy", "--target", "kv", "--from", EAST, "--to", WEST])
        .assert()
        .success()
        .stdout(predicate::str::contains("already present"));
    lab.drtool(&cfg)
        .args(["verify", "--region", WEST, "-o", "json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"outcome\": \"ok\""));
    // Copying a point that does not exist is bad input.
    lab.drtool(&cfg)
        .args([
            "copy",
            "--target",
            "kv",
            "--point",
            "20200101T000000Z-00000000",
        ])
        .assert()
        .code(2)
        .stdout(predicate::str::contains(
            "holds no point 20200101T000000Z-00000000",
        ));
}

#[tokio::test(flavor = "multi_thread")]
async fn config_check_probes_every_region() {
    let lab = Lab::get();
    let name = unique("probe");
    let tmp = tempfile::tempdir().unwrap();
    let good = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("kv", "keys", Some("/probe/"), "")
    );
    let cfg = write_config(tmp.path(), &good);
    lab.drtool(&cfg)
        .args(["config", "check"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("{EAST}    store")))
        .stdout(predicate::str::contains("reachable").count(4));

    let dead = format!(
        "{good}\n[regions.eu-west-1]\nstore = \"s3://drtool-eu-west-1/x\"\nendpoint = \"http://127.0.0.1:1\"\npath_style = true\n"
    );
    let cfg = write_config(tmp.path(), &dead);
    lab.drtool(&cfg)
        .args(["config", "check"])
        .assert()
        .code(4)
        .stdout(predicate::str::contains(
            "eu-west-1    store                    UNREACHABLE",
        ));
    let out = lab
        .drtool(&cfg)
        .args(["config", "check", "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let unreachable: Vec<&Value> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["reachable"] == false)
        .collect();
    assert_eq!(unreachable.len(), 1);
    assert_eq!(unreachable[0]["region"], "eu-west-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_file_holds_typed_json_lines_linking_the_copy_to_its_backup() {
    let lab = Lab::get();
    let name = unique("events");
    let key_prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("kv", "keys", Some(&key_prefix), "")
    );
    let cfg = write_config(tmp.path(), &config);
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    load_keys(&mut east, &key_prefix, 400, 4096).await;
    let events = tmp.path().join("events.jsonl");
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--events", events.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let point = point_of(&stdout(&out));

    let text = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 6, "{text}");
    for e in &lines {
        for field in [
            "job",
            "parent",
            "operation",
            "target",
            "region",
            "point",
            "phase",
            "mono_ms",
            "at",
            "event",
        ] {
            assert!(e.get(field).is_some(), "{field} missing in {e}");
        }
        chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap();
    }
    let backup = lines
        .iter()
        .find(|e| e["operation"] == "backup" && e["event"] == "started")
        .unwrap();
    let copy = lines
        .iter()
        .find(|e| e["operation"] == "copy" && e["event"] == "started")
        .unwrap();
    assert_eq!(copy["parent"], backup["job"], "{copy}");
    assert_eq!(backup["parent"], Value::Null);
    assert_eq!(copy["region"], WEST);
    assert_eq!(copy["point"], point.as_str());
    for (op, region) in [("backup", EAST), ("copy", WEST)] {
        let done = lines
            .iter()
            .find(|e| e["operation"] == op && e["event"] == "finished")
            .unwrap_or_else(|| panic!("no finished {op} in {text}"));
        assert_eq!(done["outcome"], "ok", "{done}");
        assert_eq!(done["region"], region);
        assert_eq!(done["point"], point.as_str());
    }
    // Monotonic time never goes back, and progress is coalesced: far fewer
    // progress events than the 400 keys or the 1.6 MB streamed.
    let mono: Vec<u64> = lines
        .iter()
        .map(|e| e["mono_ms"].as_u64().unwrap())
        .collect();
    assert!(mono.windows(2).all(|w| w[0] <= w[1]), "{mono:?}");
    let progress = lines.iter().filter(|e| e["event"] == "progress").count();
    assert!(progress < 40, "{progress} progress events");
}
