//! Restore options are per kind: a flag that does not apply to the target's
//! kind is bad input (exit 2) naming the flag, the target and its kind, before
//! anything is contacted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use predicates::prelude::*;

fn restore(target: &str, flag: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("drtool")
        .unwrap()
        .env_remove("DRTOOL_AGE_IDENTITY")
        .args(["--config", "tests/fixtures/config/three-kinds.toml"])
        .args([
            "restore",
            "--region",
            "us-west-2",
            "--target",
            target,
            "--dry-run",
        ])
        .args(flag)
        .assert()
}

#[test]
fn every_flag_of_another_kind_is_refused_by_name() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("etcd-main", "etcd", &["--database", "orders_copy"]),
        ("etcd-main", "etcd", &["--from-dump"]),
        ("etcd-main", "etcd", &["--pitr", "2026-11-01"]),
        ("etcd-main", "etcd", &["--namespace-map", "shop=shop-dr"]),
        ("etcd-main", "etcd", &["--include", "configmaps"]),
        ("etcd-main", "etcd", &["--exclude", "secrets"]),
        ("shop", "namespace", &["--prefix", "/registry/"]),
        ("shop", "namespace", &["--database", "orders_copy"]),
        ("shop", "namespace", &["--from-dump"]),
        ("shop", "namespace", &["--pitr", "2026-11-01"]),
        ("orders", "rds", &["--prefix", "/registry/"]),
        ("orders", "rds", &["--namespace-map", "shop=shop-dr"]),
        ("orders", "rds", &["--include", "configmaps"]),
        ("orders", "rds", &["--exclude", "secrets"]),
    ];
    for (target, kind, flag) in cases {
        restore(target, flag)
            .code(2)
            .stderr(predicate::str::contains(format!(
                "{} does not apply to target {target} (kind {kind})",
                flag[0]
            )));
    }
}

#[test]
fn the_error_lists_what_the_kind_accepts() {
    restore("orders", &["--prefix", "/a/"])
        .code(2)
        .stderr(predicate::str::contains(
            "restore options for rds targets: --existing, --database, --from-dump, --pitr",
        ));
}
