//! The fourth kind, end to end through the engine on folder stores: its
//! config section, backup, copy, plan and restore, all from its folder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use super::*;
use crate::catalog::PointChoice;
use crate::engine::{
    BackupRequest, Engine, EngineOptions, RestoreOptions, RestoreRequest, Verdict,
};
use crate::error::ErrorClass;

pub(super) fn config(root: &Path, extra_region_field: &str) -> String {
    let r = root.display();
    format!(
        r#"
[regions.east]
store = "file://{r}/store-east"
[regions.west]
store = "file://{r}/store-west"

[targets.docs]
kind = "dir"
home = "east"
copy_to = ["west"]
[targets.docs.regions.east]
path = "{r}/east"
[targets.docs.regions.west]
path = "{r}/west"
{extra_region_field}
"#
    )
}

async fn restore(engine: &Engine, existing: Option<Existing>) -> Result<RunReport, Error> {
    let options = engine.restore_options("docs", existing, &FlagValues::default())?;
    let plan = engine
        .plan_restore(&RestoreRequest {
            region: "west".into(),
            target: "docs".into(),
            point: PointChoice::Newest,
            options,
        })
        .await?;
    Ok(engine.execute(&plan).await)
}

use crate::engine::RunReport;

#[tokio::test]
async fn a_kind_in_one_folder_is_backed_up_copied_and_restored_through_the_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("east")).unwrap();
    // Text, 10 KiB of every byte value, and an empty file.
    let binary: Vec<u8> = (0..10 * 1024).map(|i| (i % 256) as u8).collect();
    std::fs::write(root.join("east/a.txt"), "alpha\n").unwrap();
    std::fs::write(root.join("east/b.bin"), &binary).unwrap();
    std::fs::write(root.join("east/empty"), "").unwrap();
    let cfg = crate::source::parse_config(&config(root, ""), &root.join("drtool.toml")).unwrap();
    let engine = Engine::new(cfg, crate::source::registry(), EngineOptions::default()).unwrap();

    let backup = engine
        .backup(&BackupRequest {
            targets: vec!["docs".into()],
            ..BackupRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(backup.verdict(), Verdict::Ok, "{backup:?}");

    let restored = restore(&engine, None).await.unwrap();
    assert_eq!(restored.verdict(), Verdict::Ok, "{restored:?}");
    assert_eq!(std::fs::read(root.join("west/b.bin")).unwrap(), binary);
    assert_eq!(
        std::fs::read_to_string(root.join("west/a.txt")).unwrap(),
        "alpha\n"
    );
    assert_eq!(std::fs::read(root.join("west/empty")).unwrap(), b"");

    // What exists is refused by default, left with skip, replaced with overwrite.
    std::fs::write(root.join("west/a.txt"), "changed").unwrap();
    let refused = restore(&engine, None).await.err().map(|e| e.class());
    assert_eq!(refused, Some(ErrorClass::Exists));
    let skipped = restore(&engine, Some(Existing::Skip)).await.unwrap();
    assert_eq!(skipped.verdict(), Verdict::Ok);
    assert_eq!(
        std::fs::read_to_string(root.join("west/a.txt")).unwrap(),
        "changed"
    );
    restore(&engine, Some(Existing::Overwrite)).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("west/a.txt")).unwrap(),
        "alpha\n"
    );

    // Options another kind read are refused before anything is read.
    let theirs = RestoreOptions {
        kind: KindOptions::of("etcd", &BTreeMap::from([("prefix", "/a")])).unwrap(),
        ..RestoreOptions::default()
    };
    let refused = engine
        .plan_restore(&RestoreRequest {
            region: "west".into(),
            target: "docs".into(),
            point: PointChoice::Newest,
            options: theirs,
        })
        .await
        .err()
        .map(|e| (e.class(), e.to_string()));
    assert_eq!(
        refused,
        Some((
            ErrorClass::BadInput,
            "the restore options were read for a target of kind etcd, and target docs is of kind dir: \
             read them again for it"
                .to_string()
        ))
    );
}

#[test]
fn what_the_kind_does_not_read_is_refused_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let err =
        crate::source::parse_config(&config(root, "endpoints = []"), &root.join("drtool.toml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
    assert!(
        err.contains(
            "`endpoints` does not apply to a target of kind dir here (the fields here: path)"
        ),
        "{err}"
    );
    let cfg = crate::source::parse_config(&config(root, ""), &root.join("drtool.toml")).unwrap();
    let engine = Engine::new(cfg, crate::source::registry(), EngineOptions::default()).unwrap();
    let flags = FlagValues(BTreeMap::from([(
        "prefix".to_string(),
        vec!["/a".to_string()],
    )]));
    let err = engine
        .restore_options("docs", None, &flags)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with(
            "--prefix does not apply to target docs (kind dir); restore options for dir targets: --existing"
        ),
        "{err}"
    );
}

#[test]
fn a_point_naming_a_path_outside_the_directory_is_refused() {
    for name in ["../x", "a/b", "..", "/etc/passwd"] {
        let line = serde_json::to_vec(&File {
            name: name.into(),
            data: String::new(),
        })
        .unwrap();
        assert!(parse_line(&line).is_err(), "{name}");
    }
    let ok = serde_json::to_vec(&File {
        name: "a.txt".into(),
        data: "YQ==".into(),
    })
    .unwrap();
    assert_eq!(
        parse_line(&ok).unwrap(),
        ("a.txt".to_string(), b"a".to_vec())
    );
}
