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

#[test]
fn a_kinds_flag_with_a_bad_value_is_refused_by_the_kind_with_what_to_give() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "shop",
            &["--namespace-map", "shop"],
            "--namespace-map \"shop\": is not OLD=NEW (e.g. shop=shop-dr)",
        ),
        (
            "orders",
            &["--pitr", "yesterday"],
            "--pitr \"yesterday\": invalid time \"yesterday\"",
        ),
        (
            "orders",
            &["--pitr", "2026-11-01", "--from-dump"],
            "--pitr restores from RDS's automated backups, not from a point's dump: drop --from-dump",
        ),
        (
            "etcd-main",
            &["--prefix", "/a/", "--prefix", "/b/"],
            "cannot be used multiple times",
        ),
        (
            "etcd-main",
            &["--allow-encrypted", "--prefix", "/registry/"],
            "--allow-encrypted means something only with --object: add --object, or leave --allow-encrypted out",
        ),
    ];
    for (target, flags, message) in cases {
        restore(target, flags)
            .code(2)
            .stderr(predicate::str::contains(*message));
    }
}

#[test]
fn a_restore_without_a_point_refuses_a_point() {
    restore(
        "orders",
        &["--pitr", "2026-11-01", "--before", "2026-11-02"],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "this restore reads no recovery point: drop --point and --before",
    ));
}
