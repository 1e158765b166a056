//! The CLI's handling of configs and arguments, without any service: each bad
//! config fixture gives its own message naming file, line and value, exit 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use predicates::prelude::*;

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/config/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn drtool() -> Command {
    let mut cmd = Command::cargo_bin("drtool").unwrap();
    cmd.env_remove("DRTOOL_CONFIG");
    cmd
}

#[test]
fn good_config_is_valid_offline() {
    drtool()
        .args(["--config", &fixture("good"), "config", "check", "--offline"])
        .assert()
        .success()
        .stdout(predicate::str::contains("valid (2 regions, 1 targets)"));
}

#[test]
fn each_bad_config_names_file_line_and_value() {
    let cases = [
        ("unknown-field", ":10:", "unknown field `pathstyle`"),
        (
            "unknown-region",
            ":17:",
            "copy_to refers to unknown region \"eu-west-9\"",
        ),
        (
            "bad-store-url",
            ":7:",
            "invalid store URL \"gcs://drtool-us-east-1/prod\"",
        ),
        (
            "bad-endpoint",
            ":8:",
            "invalid endpoint \"127.0.0.1:13900\"",
        ),
        (
            "bad-etcd-endpoint",
            ":20:",
            "invalid endpoint \"localhost\"",
        ),
        ("bad-mode", ":16:", "mode \"backup\" is not one of"),
        ("bad-kind", ":15:", "unknown kind \"etcd3\""),
        ("bad-level", ":3:", "compression_level = 30 is out of range"),
        (
            "bad-recipient",
            ":3:",
            "invalid age recipient \"age1notakey\"",
        ),
        (
            "missing-home-endpoints",
            ":16:",
            "no [targets.main.regions.us-east-1] table",
        ),
        ("duplicate-target", ":22:", "duplicate key `main`"),
        ("duplicate-region", ":22:", "duplicate key `us-west-2`"),
        ("not-toml", ":2:", "expected `]`"),
        (
            "ns-missing-namespace",
            ":23:",
            "`namespace` (the Kubernetes namespace to back up) is missing",
        ),
        (
            "ns-bad-name",
            ":24:",
            "namespace \"Shop_Prod\" is not a valid Kubernetes namespace name",
        ),
        (
            "ns-bad-page-size",
            ":11:",
            "target shop: page_size = 0 is out of range: use 1..=10000",
        ),
        (
            "rds-missing-instance",
            ":9:",
            "`instance` (the RDS DB instance identifier) is missing",
        ),
        (
            "rds-etcd-field",
            ":19:",
            "`endpoints` does not apply to a target of kind rds",
        ),
        (
            "rds-dump-without-database",
            ":12:",
            "mode \"both\" dumps the database",
        ),
        (
            "rds-bad-mode",
            ":10:",
            "mode \"logical\" is not one of \"snapshot\", \"dump\", \"both\"",
        ),
        (
            "lock-on-file-store",
            ":9:",
            "`object_lock` needs an s3:// store",
        ),
        (
            "lock-bad-retain",
            ":6:",
            "object_lock.retain \"a month\" is not a duration",
        ),
        (
            "lock-bad-mode",
            ":6:",
            "object_lock.mode \"legal-hold\" is not \"governance\" or \"compliance\"",
        ),
        (
            "signing-both-keys",
            ":3:",
            "signing: set key_file or key_env, not both",
        ),
    ];
    for (name, line, message) in cases {
        let file = fixture(name);
        drtool()
            .args(["--config", &file, "config", "check", "--offline"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!("{file}{line}")))
            .stderr(predicate::str::contains(message));
    }
}

#[test]
fn rds_config_is_valid_offline() {
    drtool()
        .args([
            "--config",
            &fixture("rds-good"),
            "config",
            "check",
            "--offline",
        ])
        .assert()
        .success();
}

#[test]
fn a_verify_key_that_cannot_be_read_is_named() {
    let file = fixture("signing-missing-verify-key");
    drtool()
        .args(["--config", &file, "config", "check", "--offline"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read verify key"))
        .stderr(predicate::str::contains("keys/nowhere.pub.pem"))
        .stderr(predicate::str::contains("signing.verify_keys"));
}

#[test]
fn missing_config_says_how_to_pass_one() {
    drtool()
        .args(["--config", "/nonexistent/drtool.toml", "points"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read config /nonexistent/drtool.toml",
        ))
        .stderr(predicate::str::contains("DRTOOL_CONFIG"));
}

#[test]
fn config_comes_from_the_environment() {
    drtool()
        .env("DRTOOL_CONFIG", fixture("good"))
        .args(["config", "check", "--offline"])
        .assert()
        .success();
}

#[test]
fn unknown_names_are_bad_input() {
    let good = fixture("good");
    drtool()
        .args([
            "--config",
            &good,
            "restore",
            "--region",
            "eu-west-9",
            "--target",
            "main",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown region \"eu-west-9\""))
        .stderr(predicate::str::contains("us-east-1, us-west-2"));
    drtool()
        .args(["--config", &good, "backup", "--target", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown target \"nope\""));
    drtool()
        .args([
            "--config",
            &good,
            "restore",
            "--region",
            "us-west-2",
            "--target",
            "main",
            "--point",
            "latest",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid point id \"latest\""));
    drtool()
        .args([
            "--config",
            &good,
            "restore",
            "--region",
            "us-west-2",
            "--target",
            "main",
            "--before",
            "yesterday",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid time \"yesterday\""));
}

#[test]
fn restore_requires_region_and_target() {
    drtool()
        .args(["--config", &fixture("good"), "restore", "--target", "main"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--region"));
}

#[test]
fn help_documents_exit_codes() {
    drtool()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes: 0 ok"))
        .stdout(predicate::str::contains("3 partial failure"));
}

#[test]
fn an_unreachable_etcd_is_said_in_words_not_a_library_dump() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("st")).unwrap();
    let cfg = dir.path().join("drtool.toml");
    std::fs::write(
        &cfg,
        format!(
            "[regions.r]\nstore = \"file://{}\"\n[targets.kv]\nkind = \"etcd\"\nmode = \"keys\"\nhome = \"r\"\n[targets.kv.regions.r]\nendpoints = [\"http://127.0.0.1:9\"]\n",
            dir.path().join("st").display()
        ),
    )
    .unwrap();
    let out = Command::cargo_bin("drtool")
        .unwrap()
        .args([
            "--config",
            &cfg.display().to_string(),
            "backup",
            "--target",
            "kv",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("cannot reach etcd at http://127.0.0.1:9: connection refused"),
        "{all}"
    );
    assert!(!all.contains("tonic::") && !all.contains("Os {"), "{all}");
}

#[test]
fn completions_are_generated_for_every_shell_from_the_commands() {
    for (shell, marker) in [
        ("bash", "_drtool()"),
        ("zsh", "#compdef drtool"),
        ("fish", "complete -c drtool"),
    ] {
        drtool()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains(marker))
            .stdout(predicate::str::contains("restore-test"));
    }
    drtool()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("possible values"));
}

#[test]
fn the_man_page_is_generated_and_one_per_command_on_request() {
    drtool()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(".ie"))
        .stdout(predicate::str::contains(".TH drtool 1"))
        .stdout(predicate::str::contains("Exit codes"));
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    drtool()
        .args(["man", "--dir"])
        .arg(&pages)
        .assert()
        .success();
    for page in [
        "drtool.1",
        "drtool-backup.1",
        "drtool-restore.1",
        "drtool-drill-run.1",
    ] {
        let text = std::fs::read_to_string(pages.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
}

#[test]
fn quiet_and_verbose_exclude_each_other() {
    drtool()
        .args([
            "--config",
            &fixture("good"),
            "config",
            "check",
            "--offline",
            "-q",
            "-v",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn errors_before_the_command_runs_are_json_when_json_is_asked() {
    let out = drtool()
        .args([
            "--config",
            &fixture("not-toml"),
            "config",
            "check",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "ConfigCheck");
    assert_eq!(doc["errors"][0]["class"], "bad-input");
    assert!(
        doc["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not-toml.toml"),
        "{doc}"
    );
}

#[test]
fn a_signing_key_that_cannot_sign_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sign.pem");
    std::fs::write(&key, "not a key\n").unwrap();
    let cfg = dir.path().join("drtool.toml");
    std::fs::write(
        &cfg,
        format!(
            "[signing]\nkey_file = \"{}\"\n\n[regions.r]\nstore = \"file://{}\"\n",
            key.display(),
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    drtool()
        .arg("--config")
        .arg(&cfg)
        .args(["config", "check", "--offline"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("sign.pem"))
        .stderr(predicate::str::contains("every backup would fail"));
}
