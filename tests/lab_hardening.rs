//! What a backup tool is trusted for, against the lab: a restore applies only
//! bytes it verified, a point replaced after its plan writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use drtool::catalog::{PointChoice, RegionStore};
use drtool::config::Config;
use drtool::engine::{Engine, EngineOptions, Existing, Outcome, RestoreOptions, RestoreRequest};
use drtool::error::ErrorClass;
use drtool::store::Keep;

fn engine(cfg: &std::path::Path) -> Engine {
    let config = Config::load(cfg).unwrap();
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
    let cfg_loaded = Config::load(&cfg).unwrap();
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

    let parsed = Config::load(&cfg).unwrap();
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
    assert_eq!(out.status.code(), Some(3), "{text}{}", stderr(&out));
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
