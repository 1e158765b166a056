//! Reports that defend themselves, end to end on the real binary (no lab: an
//! exec-only drill on file stores): a signed run verifies; an edited measure,
//! an edited page, an untrusted key each fail `report verify` with exit 5;
//! an edited report is marked and never trended; a note carries its author
//! and keeps the report verifiable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("sign.pem");
        let made = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success(), "openssl genpkey");
        std::fs::create_dir_all(dir.path().join("east")).unwrap();
        let s = Setup { dir };
        s.write_config(true);
        std::fs::write(
            s.path("quick.yaml"),
            r#"
name: quick
hypothesis: the service answers again right after the fault.
objectives: { rto: 1m, rpo: 1m }
probes:
  - exec: { name: up, phase: after, command: "true", interval: 50ms }
steps:
  - fault: { name: nothing-really, exec: "true" }
  - verify: {}
"#,
        )
        .unwrap();
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The config, with or without the signing key.
    fn write_config(&self, signing: bool) {
        let mut text = format!(
            "[regions.us-east-1]\nstore = \"file://{}\"\n",
            self.path("east").display()
        );
        if signing {
            text = format!(
                "[signing]\nkey_file = \"{}\"\n\n{text}",
                self.path("sign.pem").display()
            );
        }
        std::fs::write(self.path("drtool.toml"), text).unwrap();
    }

    fn drtool(&self) -> Command {
        let mut c = Command::cargo_bin("drtool").unwrap();
        c.args(["--config", &self.path("drtool.toml").display().to_string()])
            .env("USER", "auditor-test");
        c
    }

    fn reports(&self) -> String {
        self.path("reports").display().to_string()
    }

    /// Runs the drill; its run id and report folder.
    fn run(&self) -> (String, PathBuf) {
        self.drtool()
            .args(["drill", "run"])
            .arg(self.path("quick.yaml"))
            .args(["--yes", "--reports", &self.reports()])
            .assert()
            .success()
            .stdout(predicate::str::contains("drill quick: PASS"));
        let drill = self.path("reports").join("quick");
        let folder = std::fs::read_dir(&drill)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.is_dir())
            .unwrap();
        let run = folder.file_name().unwrap().to_string_lossy().into_owned();
        (run, folder)
    }

    fn verify(&self, what: &str) -> assert_cmd::assert::Assert {
        self.drtool()
            .args(["report", "verify", what, "--reports", &self.reports()])
            .assert()
    }
}

fn edit(file: &Path, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{from} not in {}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
    text
}

#[test]
fn a_signed_report_verifies_and_any_edit_is_caught() {
    let s = Setup::new();
    let (run, folder) = s.run();
    s.verify(&run)
        .success()
        .stdout(predicate::str::contains(
            "verified: signed by trusted ed25519 key",
        ))
        .stdout(predicate::str::contains("ran by auditor-test on"))
        .stdout(predicate::str::contains("OK"));
    // A note by its author keeps the report verifiable, and reaches its pages.
    s.drtool()
        .args(["report", "note", &run, "DNS took long", "--author", "alice"])
        .args(["--reports", &s.reports()])
        .assert()
        .success()
        .stdout(predicate::str::contains("note by alice added"));
    s.verify(&folder.display().to_string()).success();
    let md = std::fs::read_to_string(folder.join("report.md")).unwrap();
    assert!(md.contains(", alice: DNS took long"), "{md}");

    // The measure people quote, made to look better.
    let json = folder.join("report.json");
    let rto = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&json).unwrap())
        .unwrap()["rto"]["rto_ms"]
        .as_u64()
        .unwrap();
    let original = edit(
        &json,
        &format!("\"rto_ms\": {rto},"),
        &format!("\"rto_ms\": {},", rto / 2),
    );
    s.verify(&run)
        .code(5)
        .stdout(predicate::str::contains("EDITED after it was written"))
        .stdout(predicate::str::contains("NOT VERIFIED"));
    s.drtool()
        .args(["report", "list", "--reports", &s.reports()])
        .assert()
        .success()
        .stdout(predicate::str::contains("[EDITED: not trended]"));
    s.drtool()
        .args(["report", "history", "quick", "--reports", &s.reports()])
        .assert()
        .success()
        .stdout(predicate::str::contains("1 run(s) left out of the trends"));
    std::fs::write(&json, original).unwrap();
    s.verify(&run).success();

    // The page people read, edited.
    edit(&folder.join("report.html"), "PASS", "PASS!");
    s.verify(&run)
        .code(5)
        .stdout(predicate::str::contains("EDITED: report.html"));
}

#[test]
fn a_report_signed_by_a_key_this_config_does_not_trust_is_unverified() {
    let s = Setup::new();
    let (run, _) = s.run();
    s.write_config(false);
    s.verify(&run)
        .code(5)
        .stdout(predicate::str::contains("which this config does not trust"));
}

#[test]
fn an_unsigned_report_is_intact_and_can_be_required_signed() {
    let s = Setup::new();
    s.write_config(false);
    let (run, _) = s.run();
    s.verify(&run)
        .success()
        .stdout(predicate::str::contains("intact but unsigned"));
    s.drtool()
        .args(["report", "verify", &run, "--require-signature"])
        .args(["--reports", &s.reports()])
        .assert()
        .code(5);
    s.verify("20200101t000000z-00000000")
        .code(2)
        .stderr(predicate::str::contains("no report of run"));
}

#[test]
fn a_guard_probe_stops_the_drill_and_its_cleanup_still_runs() {
    let s = Setup::new();
    let flag = s.path("service-degraded");
    std::fs::write(
        s.path("guarded.yaml"),
        format!(
            r#"
name: guarded
hypothesis: the drill never harms the protected service.
objectives: {{ rto: 1m, rpo: 1m }}
probes:
  - exec: {{ name: protected, phase: guard, command: "test ! -e {f}", interval: 50ms, failure_threshold: 2 }}
  - exec: {{ name: up, phase: after, command: "true", interval: 50ms }}
steps:
  - fault: {{ name: harmless, exec: "true" }}
  - exec: {{ name: harms-it, command: "touch {f}" }}
  - wait: {{ name: long, for: 1m }}
  - verify: {{}}
  - cleanup: {{ name: heal, exec: ["rm -f {f}"] }}
"#,
            f = flag.display()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    s.drtool()
        .args(["drill", "run"])
        .arg(s.path("guarded.yaml"))
        .args(["--yes", "--reports", &s.reports()])
        .assert()
        .code(8)
        .stdout(predicate::str::contains("drill guarded: FAILED"))
        .stdout(predicate::str::contains("guard probe protected"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the guard stopped the minute-long wait"
    );
    assert!(!flag.exists(), "the cleanup step ran as the rollback");
}

#[test]
fn rollback_never_keeps_what_the_drill_made_but_still_runs_its_cleanup_commands() {
    let s = Setup::new();
    let flag = s.path("stopped-region");
    std::fs::write(
        s.path("kept.yaml"),
        format!(
            r#"
name: kept
hypothesis: a failing drill with rollback never keeps its state for a post-mortem.
objectives: {{ rto: 1m, rpo: 1m }}
rollback: never
probes:
  - exec: {{ name: up, phase: after, command: "true", interval: 50ms }}
steps:
  - fault: {{ name: stop-something, exec: "touch {f}" }}
  - exec: {{ name: breaks, command: "false" }}
  - verify: {{}}
  - cleanup: {{ name: start-it-again, exec: ["rm -f {f}"] }}
"#,
            f = flag.display()
        ),
    )
    .unwrap();
    s.drtool()
        .args(["drill", "run"])
        .arg(s.path("kept.yaml"))
        .args(["--yes", "--reports", &s.reports()])
        .assert()
        .code(8);
    assert!(!flag.exists(), "the skipped cleanup step's command ran");
    let drill = s.path("reports").join("kept");
    let folder = std::fs::read_dir(&drill)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let md = std::fs::read_to_string(folder.join("report.json")).unwrap();
    assert!(
        md.contains("rollback: never: what the drill made was left in place"),
        "{md}"
    );
}

#[test]
fn a_detached_drill_survives_its_terminal() {
    let s = Setup::new();
    std::fs::write(
        s.path("slow.yaml"),
        r#"
name: slow
hypothesis: the drill outlives the terminal it was started from.
objectives: { rto: 1m, rpo: 1m }
probes:
  - exec: { name: up, phase: after, command: "true", interval: 50ms }
steps:
  - wait: { name: a-while, for: 3s }
  - fault: { name: harmless, exec: "true" }
  - verify: {}
"#,
    )
    .unwrap();
    let script = s.path("run.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\n'{}' --config '{}' drill run '{}' --yes --detach --reports '{}'\nsleep 600\n",
            assert_cmd::cargo::cargo_bin("drtool").display(),
            s.path("drtool.toml").display(),
            s.path("slow.yaml").display(),
            s.reports()
        ),
    )
    .unwrap();
    let socket = format!("detach-{}", std::process::id());
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap()
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        "d",
        "bash",
        &script.display().to_string(),
    ]);
    assert!(started.status.success(), "tmux: {started:?}");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let screen =
            String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "d"]).stdout).into_owned();
        if screen.contains("runs in the background: pid") {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "never detached:\n{screen}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The terminal goes away while the drill is in its wait.
    tmux(&["kill-server"]);
    // The detached run's log ends with its verdict once its report is written.
    let drill = s.path("reports").join("slow");
    let log = || {
        std::fs::read_dir(&drill)
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("detached-"))
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !log().unwrap_or_default().contains("drill slow: PASS") {
        assert!(
            std::time::Instant::now() < until,
            "the detached drill never finished: {:?}",
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn quiet_runs_say_only_their_result() {
    let s = Setup::new();
    let run = |extra: &[&str]| {
        s.drtool()
            .args(["drill", "run"])
            .arg(s.path("quick.yaml"))
            .args(["--yes", "--reports", &s.reports()])
            .args(extra)
            .output()
            .unwrap()
    };
    let loud = run(&[]);
    assert!(loud.status.success());
    assert!(
        String::from_utf8_lossy(&loud.stderr).contains("nothing-really"),
        "progress without -q"
    );
    let quiet = run(&["-q"]);
    assert!(quiet.status.success());
    assert_eq!(String::from_utf8_lossy(&quiet.stderr).trim(), "", "-q");
    assert!(String::from_utf8_lossy(&quiet.stdout).contains("drill quick: PASS"));
}

#[test]
fn a_report_of_renderer_1_keeps_its_pages_checked_and_a_note_keeps_their_form() {
    let s = Setup::new();
    let (run, folder) = s.run();
    // A report as a drtool of renderer 1 filed it: no `renderer` field,
    // sealed, unsigned (this config does not sign), its pages in that form.
    let json = folder.join("report.json");
    let mut r: drtool::report::DrillReport =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    r.renderer = 1;
    r.signature = None;
    r.seal_now();
    let v1 = |r: &drtool::report::DrillReport| {
        std::fs::write(
            folder.join("report.json"),
            serde_json::to_vec_pretty(r).unwrap(),
        )
        .unwrap();
        let pages = [
            ("report.md", drtool::report::v1::markdown::render(r)),
            ("report.html", drtool::report::v1::html::render(r)),
            ("junit.xml", drtool::report::v1::junit::render(r)),
        ];
        for (name, body) in pages {
            std::fs::write(folder.join(name), body).unwrap();
        }
    };
    v1(&r);
    assert!(
        !std::fs::read_to_string(&json)
            .unwrap()
            .contains("\"renderer\"")
    );
    s.write_config(false);
    s.verify(&run)
        .success()
        .stdout(predicate::str::contains("OK"));
    // A note writes the pages in the same form: still comparable.
    s.drtool()
        .args(["report", "note", &run, "old run", "--reports", &s.reports()])
        .assert()
        .success();
    let md = std::fs::read_to_string(folder.join("report.md")).unwrap();
    assert!(md.contains(": old run"), "{md}");
    s.verify(&run).success();
    // An edit to an old page is caught as it was.
    edit(
        &folder.join("junit.xml"),
        "<testsuites",
        "<testsuites data-x=\"1\"",
    );
    s.verify(&run)
        .code(5)
        .stdout(predicate::str::contains("EDITED: junit.xml"));
    // A report of a renderer this drtool does not have: its JSON is checked,
    // its pages are said not to be.
    r.renderer = 99;
    r.notes.clear();
    r.seal_now();
    v1(&r);
    let out = s
        .drtool()
        .args([
            "report",
            "verify",
            &run,
            "--reports",
            &s.reports(),
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["items"][0]["pages_compared"], false, "{doc}");
    s.verify(&run).success().stdout(predicate::str::contains(
        "pages not compared: renderer 99 wrote them",
    ));
}
