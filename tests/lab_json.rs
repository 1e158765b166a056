//! One output contract: every command, run with `-o json` against the lab,
//! in success and in failure, prints exactly one JSON document on stdout
//! that validates against `docs/output.schema.json`, names the command's
//! kind, carries the process's exit code, and uses machine units (times in
//! RFC 3339 UTC, durations in `*_ms`, sizes in bytes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// A command line, the exit code and kind it must give.
struct Case {
    args: Vec<String>,
    code: i32,
    kind: &'static str,
}

fn case(args: &[&str], code: i32, kind: &'static str) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        kind,
    }
}

/// Runs a case; its document.
fn run_case(lab: &Lab, cfg: &Path, c: &Case) -> Value {
    let out = lab
        .drtool(cfg)
        .args(&c.args)
        .args(["-o", "json"])
        .env("USER", "contract-test")
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{:?}: stdout is not one JSON document ({e}):\n{}\n{}",
            c.args,
            stdout(&out),
            stderr(&out)
        )
    });
    assert_eq!(
        out.status.code(),
        Some(c.code),
        "{:?}: {doc:#}\n{}",
        c.args,
        stderr(&out)
    );
    assert_eq!(doc["kind"], c.kind, "{:?}", c.args);
    assert_eq!(doc["exit_code"], c.code, "{:?}", c.args);
    machine_units(&doc, &format!("{:?}", c.args));
    doc
}

/// Times are RFC 3339 UTC; durations and sizes are numbers.
fn machine_units(v: &Value, at: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if let Some(s) = x.as_str() {
                    if k.ends_with("_at") || k == "at" || k == "since" || k == "until" {
                        assert!(
                            chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.ends_with('Z'),
                            "{at}: {k} = {s:?} is not RFC 3339 UTC"
                        );
                    }
                    assert!(
                        !(k.ends_with("_ms") || k.ends_with("_size") || k == "bytes"),
                        "{at}: {k} = {s:?} is a string, not a number"
                    );
                    assert!(
                        !matches!(k.as_str(), "rto" | "rpo" | "duration" | "size"),
                        "{at}: {k} = {s:?} is in words, not machine units"
                    );
                }
                machine_units(x, at);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| machine_units(x, at)),
        _ => {}
    }
}

const DRILL: &str = r#"
name: quick
hypothesis: the service answers again right after the fault.
objectives: { rto: 1m, rpo: 1m }
probes:
  - exec: { name: up, phase: after, command: "true", interval: 50ms }
steps:
  - fault: { name: nothing-really, exec: "true" }
  - verify: {}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn every_command_speaks_one_json_contract_in_success_and_failure() {
    let lab = Lab::get();
    let name = unique("json");
    let tmp = tempfile::tempdir().unwrap();
    let prefix = format!("/{name}/");
    let cfg = write_config(
        tmp.path(),
        &format!(
            "{}{}",
            lab.regions_toml(&name),
            lab.etcd_target_toml("kv", "keys", Some(&prefix), "")
        ),
    );
    let mut etcd = etcd_client(&lab.etcd(EAST)).await;
    for i in 0..20 {
        let value = vec![b'v'; 1024 + i * 700];
        etcd.put(format!("{prefix}key-{i:03}"), value, None)
            .await
            .unwrap();
    }
    let schedules = tmp.path().join("schedules");
    std::fs::create_dir_all(&schedules).unwrap();
    std::fs::write(
        schedules.join("kv.toml"),
        "name = \"kv-hourly\"\ncron = \"0 * * * *\"\ntargets = [\"kv\"]\n\n[retention]\nkeep_last = 5\n",
    )
    .unwrap();
    let drills = tmp.path().join("drills");
    std::fs::create_dir_all(&drills).unwrap();
    std::fs::write(drills.join("quick.yaml"), DRILL).unwrap();
    std::fs::write(
        drills.join("bad.yaml"),
        "name: bad\nsteps: [ { nope: {} } ]\n",
    )
    .unwrap();
    let reports = tmp.path().join("reports");
    let (s, d, r) = (
        schedules.display().to_string(),
        drills.display().to_string(),
        reports.display().to_string(),
    );
    let mut docs: Vec<(String, Value)> = Vec::new();
    let mut check = |c: Case| -> Value {
        let doc = run_case(&lab, &cfg, &c);
        docs.push((c.args.join(" "), doc.clone()));
        doc
    };

    // What the rest needs: a point and a drill report.
    let backup = check(case(&["backup", "-t", "kv"], 0, "Backup"));
    let point = backup["items"][0]["point"].as_str().unwrap().to_string();
    assert_eq!(backup["items"][0]["counts"]["keys"], 20, "{backup}");
    let p = point.as_str();
    // A listing streams its items inside the one document.
    let listed = check(case(&["ls", "-t", "kv"], 0, "Ls"));
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 20, "{listed}");
    assert_eq!(listed["total"]["items"], 20, "{listed}");
    assert_eq!(items[3]["name"], format!("{prefix}key-003"));
    assert_eq!(items[3]["size"], 1024 + 3 * 700);
    assert_eq!(listed["point"]["id"], p);
    let drill = check(case(
        &[
            "drill",
            "run",
            "quick",
            "--yes",
            "--drills",
            &d,
            "--reports",
            &r,
        ],
        0,
        "DrillRun",
    ));
    let run_id = drill["items"][0]["run_id"].as_str().unwrap().to_string();
    let run = run_id.as_str();
    assert!(
        run.parse::<drtool::archive::PointId>().is_ok(),
        "{run}: one spelling of ids"
    );

    // Tables give sizes for people; --bytes the exact counts.
    let table = |extra: &[&str]| {
        let out = lab
            .drtool(&cfg)
            .args(["points", "-r", EAST])
            .args(extra)
            .output()
            .unwrap();
        stdout(&out)
    };
    let size = backup["items"][0]["bytes"].as_u64().unwrap();
    assert!(table(&[]).contains(" KiB "), "{}", table(&[]));
    assert!(
        table(&["--bytes"]).contains(&format!(" {size} ")),
        "{}",
        table(&["--bytes"])
    );

    let missing = "20200101T000000Z-00000000";
    for c in [
        case(&["config", "check"], 0, "ConfigCheck"),
        case(&["config", "check", "--offline"], 0, "ConfigCheck"),
        case(&["backup", "-t", "nope"], 2, "Backup"),
        case(&["backup", "-t", "kv", "--dry-run"], 0, "Backup"),
        case(
            &[
                "backup",
                "--schedule",
                "kv-hourly",
                "--schedules",
                &s,
                "--dry-run",
            ],
            0,
            "Backup",
        ),
        case(&["copy", "-t", "kv", "--dry-run"], 0, "Copy"),
        case(&["restore-test", "-t", "kv", "--dry-run"], 0, "RestoreTest"),
        case(
            &["restore-test", "-t", "kv", "--point", missing, "--dry-run"],
            2,
            "RestoreTest",
        ),
        case(&["points"], 0, "Points"),
        case(&["points", "-r", "nowhere"], 2, "Points"),
        case(
            &["ls", "-t", "kv", "-r", WEST, "--prefix", &prefix],
            0,
            "Ls",
        ),
        case(&["ls", "-t", "kv", "--point", missing], 2, "Ls"),
        case(&["diff", "-t", "kv", "--live"], 0, "Diff"),
        case(&["diff", "-t", "kv", "--against", p], 0, "Diff"),
        case(
            &["diff", "-t", "kv", "--live", "--point", missing],
            2,
            "Diff",
        ),
        case(&["ls", "-t", "kv", "--revision", "5"], 2, "Ls"),
        case(
            &[
                "points",
                "retain",
                "-t",
                "kv",
                "--point",
                p,
                "--until",
                "2099-01-01",
            ],
            0,
            "PointsRetain",
        ),
        case(
            &[
                "points",
                "retain",
                "-t",
                "kv",
                "--point",
                "x",
                "--until",
                "2099-01-01",
            ],
            2,
            "PointsRetain",
        ),
        case(&["verify", "-t", "kv", "--point", p], 0, "Verify"),
        case(&["verify", "-t", "kv", "--point", missing], 2, "Verify"),
        case(
            &[
                "copy", "-t", "kv", "--point", p, "--from", EAST, "--to", WEST,
            ],
            0,
            "Copy",
        ),
        case(&["copy", "-t", "kv", "--point", missing], 2, "Copy"),
        case(
            &["restore", "-t", "kv", "-r", WEST, "--dry-run"],
            0,
            "Restore",
        ),
        case(&["restore", "-t", "kv", "-r", WEST, "--yes"], 0, "Restore"),
        case(
            &[
                "restore",
                "-t",
                "kv",
                "-r",
                WEST,
                "--existing",
                "fail",
                "--yes",
            ],
            9,
            "Restore",
        ),
        case(
            &["restore-test", "-t", "kv", "--point", p],
            0,
            "RestoreTest",
        ),
        case(
            &["restore-test", "-t", "kv", "--point", missing],
            2,
            "RestoreTest",
        ),
        case(&["gc", "--dry-run"], 0, "Gc"),
        case(&["prune", "--dry-run"], 0, "Prune"),
        case(&["prune", "--dry-run", "-r", "nowhere"], 2, "Prune"),
        case(&["schedule", "list", "--schedules", &s], 0, "ScheduleList"),
        case(
            &["schedule", "list", "--schedules", "/nonexistent"],
            2,
            "ScheduleList",
        ),
        case(
            &["schedule", "check", "--schedules", &s],
            0,
            "ScheduleCheck",
        ),
        case(
            &["schedule", "check", "--schedules", &d],
            2,
            "ScheduleCheck",
        ),
        case(
            &[
                "schedule",
                "export",
                "--kubernetes",
                "--image",
                "drtool:1",
                "--schedules",
                &s,
            ],
            0,
            "ScheduleExport",
        ),
        case(
            &["schedule", "run", "--schedules", "/nonexistent"],
            2,
            "ScheduleRun",
        ),
        case(&["drill", "list", "--drills", &d], 0, "DrillList"),
        case(
            &["drill", "validate", "quick", "--drills", &d],
            0,
            "DrillValidate",
        ),
        case(
            &["drill", "validate", "bad", "--drills", &d],
            2,
            "DrillValidate",
        ),
        case(
            &["drill", "run", "quick", "--dry-run", "--drills", &d],
            0,
            "DrillRun",
        ),
        case(
            &["drill", "run", "nope", "--yes", "--drills", &d],
            2,
            "DrillRun",
        ),
        case(
            &["drill", "cleanup", run, "--reports", &r],
            0,
            "DrillCleanup",
        ),
        case(
            &["drill", "cleanup", "nope", "--reports", &r],
            2,
            "DrillCleanup",
        ),
        case(&["report", "list", "--reports", &r], 0, "ReportList"),
        case(&["report", "show", run, "--reports", &r], 0, "ReportShow"),
        case(
            &["report", "show", "nope", "--reports", &r],
            2,
            "ReportShow",
        ),
        case(
            &["report", "history", "quick", "--reports", &r],
            0,
            "ReportHistory",
        ),
        case(
            &["report", "history", "nope", "--reports", &r],
            2,
            "ReportHistory",
        ),
        case(
            &["report", "note", run, "checked", "--reports", &r],
            0,
            "ReportNote",
        ),
        case(
            &["report", "verify", run, "--reports", &r],
            0,
            "ReportVerify",
        ),
        case(&["report", "schema"], 0, "ReportSchema"),
        case(&["points", "--no-such-flag"], 2, "Usage"),
        case(&["--config", "/nonexistent.toml", "points"], 2, "Points"),
    ] {
        check(c);
    }
    // A region that does not answer: listed as an error, the others still
    // listed (partial, exit 3).
    std::fs::create_dir_all(tmp.path().join("dead")).unwrap();
    let dead = write_config(
        &tmp.path().join("dead"),
        &format!(
            "{}{}\n[regions.eu-west-1]\nstore = \"s3://drtool-eu-west-1/x\"\nendpoint = \"http://127.0.0.1:1\"\npath_style = true\n",
            lab.regions_toml(&name),
            lab.etcd_target_toml("kv", "keys", Some(&prefix), "")
        ),
    );
    let c = case(&["points"], 3, "Points");
    let doc = run_case(&lab, &dead, &c);
    assert_eq!(doc["errors"][0]["region"], "eu-west-1", "{doc:#}");
    assert_eq!(doc["errors"][0]["class"], "unreachable", "{doc:#}");
    docs.push(("points (a dead region)".into(), doc));
    let c = case(&["config", "check"], 4, "ConfigCheck");
    let doc = run_case(&lab, &dead, &c);
    docs.push(("config check (a dead region)".into(), doc));
    validate_against_schema(&docs, tmp.path());
    etcd.delete(
        prefix.as_str(),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await
    .unwrap();
    let mut west = etcd_client(&lab.etcd(WEST)).await;
    west.delete(
        prefix.as_str(),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await
    .unwrap();
}
