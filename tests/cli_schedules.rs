//! `drtool schedule check|list|export`, `backup --schedule` and `prune` on
//! fixtures, without services: good schedules, one bad schedule per rule (each
//! named with its file, line and column), next runs in a time zone with DST
//! notes, and the CronJobs an export prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use predicates::prelude::*;

const DIR: &str = "tests/fixtures/schedules";

fn drtool() -> Command {
    let mut cmd = Command::cargo_bin("drtool").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DRTOOL_SCHEDULES")
        .args(["--config", &format!("{DIR}/drtool.toml")]);
    cmd
}

fn dir(name: &str) -> String {
    format!("{DIR}/{name}")
}

#[test]
fn good_schedules_check() {
    drtool()
        .args(["schedule", "check", "--schedules", &dir("good")])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok  kv-hourly"))
        .stdout(
            predicate::str::contains("ok  nightly").and(predicate::str::contains("(2 targets)")),
        );
}

#[test]
fn each_bad_schedule_names_file_line_column_and_the_rule() {
    let cases = [
        (
            "bad-cron",
            "s.toml:2:11:",
            "field 2 (hour): hour 25 is out of range 0-23",
        ),
        (
            "bad-dow",
            "s.toml:2:17:",
            "field 5 (day of week): day of week 8 is out of range 0-7",
        ),
        (
            "unknown-target",
            "s.toml:3:18:",
            "unknown target \"orders\" (the config defines kv, shop)",
        ),
        (
            "duplicate",
            "b.toml:1:1:",
            "schedule name \"kv-hourly\" is already used by",
        ),
        (
            "empty-retention",
            "s.toml:4:1:",
            "[retention] keeps nothing",
        ),
        (
            "bad-timezone",
            "s.toml:3:12:",
            "\"Europe/Springfield\" is not an IANA time zone name",
        ),
        ("unknown-field", "s.toml:4:1:", "unknown field `retries`"),
    ];
    for (case, at, message) in cases {
        drtool()
            .args(["schedule", "check", "--schedules", &dir(case)])
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains(format!("{case}/{at}"))
                    .and(predicate::str::contains(message)),
            );
    }
}

#[test]
fn list_shows_next_runs_in_the_time_zone_and_dst_notes() {
    drtool()
        .args([
            "schedule",
            "list",
            "--schedules",
            &dir("good"),
            "--count",
            "3",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("schedule nightly  [PAUSED]"))
        .stdout(predicate::str::contains(
            "cron       30 2 * * 1-5  in Europe/Berlin",
        ))
        .stdout(predicate::str::contains(
            "retention  keep hourly 24, daily 7",
        ))
        .stdout(
            predicate::str::is_match(
                r"next runs  (Mon|Tue|Wed|Thu|Fri) \d{4}-\d\d-\d\d 02:30 CES?T",
            )
            .unwrap(),
        );
    drtool()
        .args(["schedule", "list", "--schedules", &dir("dst")])
        .assert()
        .success()
        .stdout(predicate::str::contains("02:30: falls in a DST gap"));
    let out = drtool()
        .args(["schedule", "list", "--schedules", &dir("dst"), "-o", "json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["kind"], "ScheduleList");
    assert_eq!(listed["items"][0]["timezone"], "Europe/Berlin");
    assert_eq!(
        listed["items"][0]["next_runs"].as_array().map(Vec::len),
        Some(5)
    );
}

#[test]
fn export_prints_one_cron_job_per_schedule() {
    let out = drtool()
        .args([
            "schedule",
            "export",
            "--kubernetes",
            "--image",
            "registry.example/drtool:1",
            "--schedules",
            &dir("good"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("kind: CronJob").count(), 2, "{text}");
    for want in [
        "name: drtool-kv-hourly",
        "name: drtool-nightly",
        "concurrencyPolicy: Forbid",
        "timeZone: Europe/Berlin",
        "timeZone: UTC",
        "suspend: true",
        "startingDeadlineSeconds: 1800",
        "image: registry.example/drtool:1",
        "- --schedule",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // --kubernetes is the one format: without it, nothing is printed.
    drtool()
        .args([
            "schedule",
            "export",
            "--image",
            "x",
            "--schedules",
            &dir("good"),
        ])
        .assert()
        .code(2);
}

#[test]
fn backup_and_prune_name_a_missing_schedule_or_folder() {
    drtool()
        .args([
            "backup",
            "--schedule",
            "weekly",
            "--schedules",
            &dir("good"),
        ])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("no schedule named \"weekly\"")
                .and(predicate::str::contains("kv-hourly, nightly")),
        );
    drtool()
        .args(["points", "retain", "--target", "kv", "--policy", "nightly"])
        .args(["--schedules", &dir("nonexistent")])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read the schedules folder"));
    drtool()
        .args(["backup", "--schedule", "nightly", "--target", "kv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn a_reader_that_stops_early_ends_the_listing_quietly() {
    // `| head -c 1` and `| head -12` (a Berlin schedule): exit 0, no panic.
    let bin = assert_cmd::cargo::cargo_bin("drtool");
    for (head, folder) in [("-c 1", "good"), ("-12", "dst")] {
        let script = format!(
            "'{}' --config {DIR}/drtool.toml schedule list --schedules {DIR}/{folder} --count 1000 | head {head} >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
            bin.display()
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("DRTOOL_SCHEDULES")
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code, "0", "head {head}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    drtool()
        .args([
            "schedule",
            "list",
            "--schedules",
            &dir("good"),
            "--count",
            "100000000",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("100000000 is not in 1..=1000"));
}

#[test]
fn a_select_matching_nothing_beside_targets_is_a_warning() {
    for cmd in ["check", "list"] {
        drtool()
            .args(["schedule", cmd, "--schedules", &dir("select-nothing")])
            .assert()
            .success()
            .stdout(predicate::str::contains(
                "select tier=dev matches no target today: only the targets named run (kv)",
            ));
    }
}
