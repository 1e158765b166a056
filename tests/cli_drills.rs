//! `drtool drill validate` on fixtures: a good drill, and one bad drill per
//! rule, each named with its file, line and column.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use predicates::prelude::*;

const DIR: &str = "tests/fixtures/drills";

fn drtool() -> Command {
    let mut cmd = Command::cargo_bin("drtool").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--config", &format!("{DIR}/drtool.toml")]);
    cmd
}

#[test]
fn a_good_drill_validates() {
    drtool()
        .args(["drill", "validate", &format!("{DIR}/good.yaml")])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "good.yaml: valid (4 steps, 1 probes, 1 canaries)",
        ));
}

#[test]
fn each_bad_drill_names_file_line_column_and_the_rule() {
    let cases = [
        (
            "bad-step-kind",
            ":10:5:",
            "unknown kind `snapshot`, expected one of backup, copy, fault",
        ),
        (
            "bad-probe-kind",
            ":8:5:",
            "unknown kind `ping`, expected one of http, tcp, exec, etcd_key, kube, sql",
        ),
        (
            "bad-duration",
            ":3:20:",
            "objectives.rto \"soon\" is not a duration",
        ),
        ("bad-target", ":4:15:", "unknown target \"orders\""),
        (
            "bad-field",
            ":2:1:",
            "unknown field `hypotheses`, expected one of name, description, hypothesis",
        ),
        (
            "bad-threshold",
            ":8:",
            "success_threshold must be at least 1",
        ),
        (
            "bad-fault",
            ":11:5:",
            "fault: say which fault to inject: one of lose_region",
        ),
        (
            "bad-phase",
            ":8:",
            "`later` is not one of before, during, after",
        ),
        ("bad-region", ":11:27:", "unknown region \"mars-1\""),
        (
            "bad-point",
            ":12:",
            "point.random_within \"often\" is not a duration",
        ),
        (
            "bad-option",
            ":13:16:",
            "options: --from-dump does not apply to target kv (kind etcd)",
        ),
        (
            "bad-huge-wait",
            ":6:18:",
            "wait.for \"18446744073709551615s\" is out of range: it must be at most 7days",
        ),
        (
            "bad-objective",
            ":3:20:",
            "objectives.rto \"99999999h\" is out of range: it must be between 1ms and 1year",
        ),
    ];
    for (name, at, message) in cases {
        let file = format!("{DIR}/{name}.yaml");
        drtool()
            .args(["drill", "validate", &file])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!("{file}{at}")))
            .stderr(predicate::str::contains(message));
    }
}

#[test]
fn the_dry_run_prints_the_plan_and_its_pre_flight_and_changes_nothing() {
    // Stores that exist; etcd endpoints where nothing listens: the pre-flight
    // names the endpoint the restore would need after the fault.
    let tmp = tempfile::tempdir().unwrap();
    let fixture = std::fs::read_to_string(format!("{DIR}/drtool.toml")).unwrap();
    let config = fixture
        .replace("/var/backups", &tmp.path().display().to_string())
        .replace("127.0.0.1:12379", "127.0.0.1:9")
        .replace("127.0.0.1:22379", "127.0.0.1:9");
    for region in ["drtool-east", "drtool-west"] {
        std::fs::create_dir_all(tmp.path().join(region)).unwrap();
    }
    let path = tmp.path().join("drtool.toml");
    std::fs::write(&path, config).unwrap();
    Command::cargo_bin("drtool")
        .unwrap()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--config", &path.display().to_string()])
        .args(["drill", "run", &format!("{DIR}/good.yaml"), "--dry-run"])
        .assert()
        .code(4)
        .stdout(predicate::str::contains("FAULT: lose region us-east-1"))
        .stdout(predicate::str::contains(
            "restore kv in us-west-2 from the point this drill's backup makes",
        ))
        .stdout(predicate::str::contains("pre-flight  FAILS"))
        .stdout(predicate::str::contains(
            "target kv in us-west-2 (http://127.0.0.1:9)",
        ))
        .stdout(predicate::str::contains("dry run: nothing was changed"));
}

#[test]
fn the_report_schema_is_printed() {
    let out = drtool().args(["report", "schema"]).output().unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "DrillReport");
}

#[test]
fn the_example_configs_are_valid() {
    for file in ["examples/aws-drtool.toml", "examples/lab-drtool.toml"] {
        Command::cargo_bin("drtool")
            .unwrap()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["--config", file, "config", "check", "--offline"])
            .assert()
            .success()
            .stdout(predicate::str::contains(": valid ("));
    }
}

#[test]
fn the_example_drills_check_against_the_lab_config() {
    for drill in [
        "etcd-region-failover",
        "namespace-loss",
        "rds-region-failover",
        "full-region",
    ] {
        Command::cargo_bin("drtool")
            .unwrap()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "--config",
                "examples/lab-drtool.toml",
                "drill",
                "validate",
                &format!("drills/{drill}.yaml"),
            ])
            .assert()
            .success();
    }
}

#[test]
fn a_manual_step_needs_an_operator_or_yes() {
    let reports = tempfile::tempdir().unwrap();
    let run = |yes: bool| {
        let mut cmd = drtool();
        cmd.args(["drill", "run", &format!("{DIR}/manual.yaml"), "--reports"])
            .arg(reports.path());
        if yes {
            cmd.arg("--yes");
        }
        cmd.write_stdin("").assert()
    };
    // No terminal and no --yes: the step fails and says how to go on.
    run(false)
        .code(8)
        .stdout(predicate::str::contains("drill manual-decision: FAILED"))
        .stdout(predicate::str::contains(
            "needs an operator: run on a terminal, or with --yes",
        ));
    // --yes confirms it at once; its time is decision time.
    run(true)
        .success()
        .stdout(predicate::str::contains("drill manual-decision: PASS"));
}

#[test]
fn a_drill_is_found_by_its_file_stem_or_its_name_in_the_drills_folder() {
    for given in ["good", "kv-failover"] {
        drtool()
            .args(["drill", "validate", given, "--drills", DIR])
            .assert()
            .success()
            .stdout(predicate::str::contains("valid (4 steps"));
    }
    drtool()
        .env("DRTOOL_DRILLS", DIR)
        .args(["drill", "validate", "no-such-drill"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no drill file no-such-drill and no drill named \"no-such-drill\" in tests/fixtures/drills",
        ));
    // `--dir` still names the folder for `drill list`.
    drtool()
        .args(["drill", "list", "--dir", DIR])
        .assert()
        .success()
        .stdout(predicate::str::contains("kv-failover"));
}
