//! The real dashboard in tmux against the lab (send-keys / capture-pane):
//! open it, start the etcd region-failover drill from the palette, confirm
//! its manual step, wait for the verdict, open its report, quit; and the
//! terminal is back to normal (canonical mode and echo on, cursor shown).
//! SIGTERM puts the terminal back too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The end-to-end drill stops us-east-1 (its `east-goes-dark` fault); the
/// other tests of this file need it up: they share the region, that one
/// has it alone.
static EAST_UP: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn east_up() -> std::sync::RwLockReadGuard<'static, ()> {
    EAST_UP.read().unwrap_or_else(|e| e.into_inner())
}

/// A tmux server of its own, killed when the test ends.
struct Tmux {
    socket: String,
    dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts `drtool ui` on a 160x48 terminal, from the repository root
    /// (the drill runs lab/ scripts), with the lab's environment.
    /// `sub` is `ui`, or empty for `drtool` alone (the dashboard's flags
    /// then go before no command).
    fn start(lab: &Lab, sub: &str, drills: &str, extra: &str) -> Tmux {
        let config = PathBuf::from(&lab.env["DRTOOL_LAB_DIR"]).join("drtool.toml");
        Tmux::start_with(lab, &config, sub, drills, extra)
    }

    /// The same with a config of the test's own.
    fn start_with(lab: &Lab, config: &Path, sub: &str, drills: &str, extra: &str) -> Tmux {
        let dir = tempfile::tempdir().unwrap();
        let mut script = String::from("#!/bin/bash\n");
        for (k, v) in &lab.env {
            script.push_str(&format!("export {k}='{v}'\n"));
        }
        // Each frame drawn is a debug line in the log (the idle test counts them).
        script.push_str("export DRTOOL_LOG='info,drtool::tui=debug'\n");
        // The shell outlives a hangup (its trap runs once drtool is done), so
        // drtool's exit code is kept even when the terminal is killed.
        script.push_str(&format!(
            "trap 'true' HUP\ncd '{}'\n'{}' --config '{}' {sub} --drills '{drills}' --reports '{d}/reports' --log-file '{d}/ui.log' {extra}\n\
             rc=$?\necho \"$rc\" > '{d}/exit'\necho \"EXIT=$rc\"\nstty -a > '{d}/stty'\nsleep 600\n",
            repo().display(),
            drtool_bin().display(),
            config.display(),
            d = dir.path().display(),
        ));
        let path = dir.path().join("run.sh");
        std::fs::write(&path, script).unwrap();
        let status = Command::new("chmod").arg("+x").arg(&path).status().unwrap();
        assert!(status.success());
        let t = Tmux {
            socket: unique("tui"),
            dir,
        };
        let ok = t
            .cmd(&["new-session", "-d", "-s", "ui", "-x", "160", "-y", "48"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(ok.success(), "tmux new-session failed");
        t
    }

    /// drtool's exit code as the wrapping shell wrote it, once the file is
    /// complete (empty when it is not there within `timeout`).
    fn exit_code(&self, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let code = std::fs::read_to_string(self.path("exit")).unwrap_or_default();
            if code.ends_with('\n') || start.elapsed() > timeout {
                return code;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]).args(args);
        c
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "ui"];
        args.extend(keys);
        assert!(self.cmd(&args).status().unwrap().success());
    }

    fn text(&self, text: &str) {
        assert!(
            self.cmd(&["send-keys", "-t", "ui", "-l", text])
                .status()
                .unwrap()
                .success()
        );
    }

    fn screen(&self) -> String {
        let out = self
            .cmd(&["capture-pane", "-p", "-t", "ui"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `what`; fails with the screen.
    fn wait_for(&self, what: &str, within: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                start.elapsed() < within,
                "no {what:?} on the screen after {within:?}:\n{s}\nlog:\n{}",
                std::fs::read_to_string(self.dir.path().join("ui.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The terminal after the dashboard exited: `stty -a` in the same pane.
    fn stty(&self) -> String {
        let start = Instant::now();
        while !self.path("stty").exists() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(200));
        std::fs::read_to_string(self.path("stty"))
            .unwrap_or_else(|e| panic!("no stty output: {e}\n{}", self.screen()))
    }

    fn cursor_shown(&self) -> bool {
        let out = self
            .cmd(&["display-message", "-p", "-t", "ui", "#{cursor_flag}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).status();
    }
}

fn assert_terminal_restored(t: &Tmux) {
    let stty = t.stty();
    let flags: Vec<&str> = stty.split_whitespace().collect();
    for want in ["icanon", "echo", "isig", "icrnl", "opost"] {
        assert!(flags.contains(&want), "{want} is not back on:\n{stty}");
    }
    assert!(t.cursor_shown(), "the cursor is hidden:\n{}", t.screen());
    let s = t.screen();
    assert!(
        !s.contains("Recovery posture"),
        "the alternate screen was left:\n{s}"
    );
}

fn reports_written(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for r in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            out.push(r.path());
        }
    }
    out
}

#[test]
fn a_drill_run_from_the_dashboard_end_to_end() {
    let _east = EAST_UP.write().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::get();
    // A lab-shop point of its own (on a fresh lab no other test made one yet).
    kube_load(&lab.env["LAB_KUBE_US_EAST_1"], "lab-shop", 40);
    let config = PathBuf::from(&lab.env["DRTOOL_LAB_DIR"]).join("drtool.toml");
    let out = lab
        .drtool(&config)
        .args(["backup", "--target", "lab-shop"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let t = Tmux::start(&lab, "ui", "drills", "");
    t.wait_for("Recovery posture", Duration::from_secs(20));
    t.wait_for("us-west-2     ", Duration::from_secs(30));
    // A point of lab-shop: verify it, copy it (it is there already), and
    // restore it through the wizard with existing objects skipped.
    t.keys(&["Tab", "/"]);
    t.text("lab-shop");
    t.keys(&["Enter"]);
    t.wait_for("filter: lab-shop", Duration::from_secs(5));
    // A point is listed (and selected) before `v`: the listing may still be
    // on its way.
    t.wait_for("taken here", Duration::from_secs(30));
    t.keys(&["v"]);
    t.wait_for("verify ok:", Duration::from_secs(60));
    // The verify is kept next to the point: its manifest view shows it.
    t.keys(&["Enter"]);
    t.wait_for("verified      passed at", Duration::from_secs(30));
    t.keys(&["Escape"]);
    // Apart from the escape, or the two read as alt-c.
    std::thread::sleep(Duration::from_millis(500));
    t.keys(&["c"]);
    t.wait_for("copy ok:", Duration::from_secs(60));
    t.keys(&["R"]);
    t.wait_for("choose the options", Duration::from_secs(5));
    t.keys(&["Enter"]);
    t.wait_for("existing: skip what exists", Duration::from_secs(5));
    t.keys(&["G", "Enter"]);
    t.wait_for("enter: confirm this plan", Duration::from_secs(60));
    t.keys(&["Enter"]);
    t.wait_for("Type the target's name (lab-shop)", Duration::from_secs(5));
    t.text("lab-shop");
    t.keys(&["Enter"]);
    let s = t.wait_for("enter: close", Duration::from_secs(120));
    assert!(s.contains("restore lab-shop"), "{s}");
    assert!(!s.contains("FAILED"), "{s}");
    t.keys(&["Enter"]);
    t.keys(&[":"]);
    t.text("drill etcd-region-failover");
    t.keys(&["Enter"]);
    t.wait_for("steps (dry run", Duration::from_secs(10));
    t.keys(&["x"]);
    t.wait_for("Run drill etcd-region-failover?", Duration::from_secs(5));
    t.keys(&["y"]);
    let s = t.wait_for("MANUAL STEP declare-outage", Duration::from_secs(90));
    assert!(s.contains("east-goes-dark"), "{s}");
    t.keys(&["Enter"]);
    let s = t.wait_for("drill etcd-region-failover: PASS", Duration::from_secs(180));
    assert!(s.contains("RTO "), "{s}");
    let s = t.wait_for("enter opens it", Duration::from_secs(60));
    assert!(s.contains("drill finished: PASS"), "{s}");
    t.keys(&["Enter"]);
    let s = t.wait_for("timeline (", Duration::from_secs(10));
    assert!(s.contains("PASS  RTO"), "the report opened:\n{s}");
    assert!(s.contains("declare-outage"), "{s}");
    t.keys(&["q"]);
    let s = t.wait_for("EXIT=0", Duration::from_secs(20));
    // The verdict and the report's path stay on the normal screen.
    assert!(s.contains("drill etcd-region-failover: PASS"), "{s}");
    assert!(s.contains("report.md"), "{s}");
    assert_terminal_restored(&t);
    let runs = reports_written(&t.path("reports"));
    assert_eq!(runs.len(), 1, "{runs:?}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs[0].join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["verdict"], "pass");
    let manual = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "declare-outage")
        .cloned()
        .unwrap();
    assert_eq!(manual["outcome"], "ok", "{manual}");
    let log = std::fs::read_to_string(t.path("ui.log")).unwrap();
    assert!(
        log.contains("drill report written"),
        "logs went to the file:\n{log}"
    );
}

#[test]
fn sigterm_puts_the_terminal_back() {
    let _east = east_up();
    let lab = Lab::get();
    // drtool alone opens the dashboard; its flags go before no command.
    let t = Tmux::start(&lab, "", "drills", "--read-only");
    t.wait_for("read-only", Duration::from_secs(20));
    t.wait_for("us-west-2     ", Duration::from_secs(30));
    // Idle, it redraws for the clock's tick only: about once a second.
    std::thread::sleep(Duration::from_secs(1));
    let frames = || {
        std::fs::read_to_string(t.path("ui.log"))
            .unwrap_or_default()
            .matches("frame drawn")
            .count()
    };
    let before = frames();
    std::thread::sleep(Duration::from_secs(4));
    let idle = frames() - before;
    assert!((3..=6).contains(&idle), "{idle} frames in 4 idle seconds");
    signal(drtool_pid(&t), "TERM");
    t.wait_for("EXIT=143", Duration::from_secs(20));
    assert_terminal_restored(&t);
}

/// The dashboard's process (its command line names the test's log file).
fn drtool_pid(t: &Tmux) -> u32 {
    let out = Command::new("pgrep")
        .args(["-f", &t.path("ui.log").display().to_string()])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&out.stdout).into_owned();
    pids.lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "drtool")
        })
        .unwrap_or_else(|| panic!("no drtool process among {pids:?}"))
}

#[test]
fn sigterm_during_a_drill_aborts_it_cleans_up_and_puts_the_terminal_back() {
    let _east = east_up();
    let lab = Lab::get();
    let drills = tempfile::tempdir().unwrap();
    let t = start_held(&lab, drills.path(), "tui-term");
    signal(drtool_pid(&t), "TERM");
    let s = t.wait_for("EXIT=143", Duration::from_secs(60));
    assert!(s.contains("aborting the running drill"), "{s}");
    assert_terminal_restored(&t);
    let runs = reports_written(&t.path("reports"));
    assert_eq!(
        runs.len(),
        1,
        "the aborted drill's report was written: {runs:?}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs[0].join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["verdict"], "aborted", "{}", report["verdict"]);
    let cleaned: Vec<String> = report["cleanup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert!(
        cleaned.iter().any(|c| c.contains("canary")),
        "the canaries were cleaned up: {cleaned:?}"
    );
}

/// Opens the dashboard on `dir`'s `held.yaml`, starts it from the palette and
/// waits at its manual step.
fn start_held(lab: &Lab, dir: &Path, name: &str) -> Tmux {
    let key = format!("/lab/{}", unique(name));
    held_drill(dir, &key);
    let t = Tmux::start(lab, "ui", &dir.display().to_string(), "");
    t.wait_for("Recovery posture", Duration::from_secs(20));
    t.keys(&[":"]);
    t.text("drill held");
    t.keys(&["Enter"]);
    t.wait_for("steps (dry run", Duration::from_secs(10));
    t.keys(&["x"]);
    t.wait_for("Run drill held?", Duration::from_secs(5));
    t.keys(&["y"]);
    t.wait_for("MANUAL STEP decide", Duration::from_secs(60));
    t
}

/// Writes `held.yaml` (lab-keys restored in us-west-2 once its manual step
/// is confirmed) under `dir`; its probe reads `key`.
fn held_drill(dir: &Path, key: &str) {
    std::fs::write(
        dir.join("held.yaml"),
        format!(
            r#"
name: held
hypothesis: lab-keys comes back in us-west-2 once the operator says so.
objectives: {{ rto: 5m, rpo: 1m }}
targets: [lab-keys]
regions: [us-west-2]
canaries:
  - etcd: {{ target: lab-keys, interval: 200ms }}
probes:
  - etcd_key: {{ name: west-key, phase: after, target: lab-keys, region: us-west-2, key: {key}, interval: 200ms }}
steps:
  - exec: {{ name: seed, command: "etcdctl --endpoints \"$LAB_ETCD_US_EAST_1\" put {key} here >/dev/null" }}
  - backup: {{ name: backup }}
  - fault: {{ name: lose-east, lose_region: us-east-1 }}
  - manual: {{ name: decide, instruction: "Approve the failover.", timeout: 5m }}
  - restore: {{ name: restore-west, target: lab-keys, region: us-west-2, options: {{ existing: overwrite }} }}
  - verify: {{ name: west-serves, timeout: 1m }}
"#
        ),
    )
    .unwrap();
}

#[test]
fn killing_the_terminal_mid_drill_aborts_it_cleans_up_and_reports() {
    let _east = east_up();
    let lab = Lab::get();
    let drills = tempfile::tempdir().unwrap();
    let t = start_held(&lab, drills.path(), "tui-hup");
    let pid = drtool_pid(&t);
    // The SSH session drops: the terminal and everything on it is gone.
    assert!(
        t.cmd(&["kill-session", "-t", "ui"])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "drtool is still running 90 s after its terminal was killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The shell writes the exit code just after drtool is gone: wait for it.
    let code = t.exit_code(Duration::from_secs(10));
    let log = std::fs::read_to_string(t.path("ui.log")).unwrap_or_default();
    assert_eq!(
        code.trim(),
        "129",
        "the exit code of a lost terminal; log:\n{log}"
    );
    assert!(!log.contains("panic"), "{log}");
    let runs = reports_written(&t.path("reports"));
    assert_eq!(runs.len(), 1, "the aborted drill's report: {runs:?}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs[0].join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["verdict"], "aborted", "{}", report["verdict"]);
    let run = report["run_id"].as_str().unwrap().to_string();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        for region in [EAST, WEST] {
            let mut client = etcd_client(&lab.etcd(region)).await;
            assert!(
                dump(&mut client, &format!("/lab/drtool-canary/{run}/"))
                    .await
                    .is_empty(),
                "canary markers left in {region}"
            );
        }
    });
}

/// Looking inside a snapshot point from the dashboard: its contents, a
/// filter to one key and enter to its folder, `d` against the live
/// cluster (the keys deleted since show as removed), then `R` on the folder
/// restores just that prefix through the wizard's plan and typed
/// confirmation; etcd then holds those keys as the point had them, and a
/// key outside the prefix keeps its newer value.
#[test]
fn a_prefix_found_in_a_points_contents_is_diffed_and_restored() {
    let _east = east_up();
    let lab = Lab::get();
    let name = unique("tui-ls");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &format!(
            "{}{}",
            lab.regions_toml(&name),
            lab.etcd_target_toml("snap", "snapshot", None, "")
        ),
    );
    let app = format!("/{name}/app/");
    let other = format!("/{name}/other/x");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let values: Vec<Vec<u8>> = (0..30)
        .map(|i| object_value(i, 1024 + (i * 2311) % 19_456))
        .collect();
    rt.block_on(async {
        let mut c = etcd_client(&lab.etcd(EAST)).await;
        for (i, v) in values.iter().enumerate() {
            c.put(format!("{app}k{i:03}"), v.clone(), None)
                .await
                .unwrap();
        }
        c.put(other.clone(), "before", None).await.unwrap();
    });
    let out = lab
        .drtool(&cfg)
        .args(["backup", "-t", "snap"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let point = point_of(&stdout(&out));
    rt.block_on(async {
        let mut c = etcd_client(&lab.etcd(EAST)).await;
        c.delete(
            app.clone(),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
        c.put(other.clone(), "after", None).await.unwrap();
    });

    let t = Tmux::start_with(&lab, &cfg, "ui", "drills", "");
    t.wait_for("Recovery posture", Duration::from_secs(20));
    t.keys(&["Tab"]);
    t.wait_for(&point, Duration::from_secs(30));
    t.keys(&["Enter"]);
    t.wait_for("enter contents", Duration::from_secs(5));
    t.keys(&["Enter"]);
    // The root level is read (its folder may be below the fold on a lab
    // other tests filled: the filter finds it).
    t.wait_for("REVISION", Duration::from_secs(60));
    t.keys(&["/"]);
    t.text(&format!("{name}/app/k01"));
    t.wait_for("k019", Duration::from_secs(10));
    t.keys(&["Enter"]);
    // Enter on the filtered key: its folder, the key selected.
    t.keys(&["Enter"]);
    t.wait_for(&format!("contents {app}"), Duration::from_secs(10));
    t.wait_for("R restores --key", Duration::from_secs(5));
    t.keys(&["d"]);
    t.wait_for("the live target snap", Duration::from_secs(5));
    t.keys(&["Enter"]);
    let s = t.wait_for("30 removed", Duration::from_secs(60));
    assert!(s.contains(&format!("- {app}k000")), "{s}");
    assert!(s.contains("0 the same"), "{s}");
    // Back to the choice, to the folder, up to its parent.
    for _ in 0..3 {
        t.keys(&["Escape"]);
        std::thread::sleep(Duration::from_millis(500));
    }
    t.wait_for(
        &format!("R restores --prefix {app}"),
        Duration::from_secs(10),
    );
    t.keys(&["R"]);
    t.wait_for(&format!("only --prefix {app}"), Duration::from_secs(5));
    t.keys(&["G", "Enter"]);
    let s = t.wait_for("enter: confirm this plan", Duration::from_secs(60));
    assert!(s.contains(&app), "the plan names the prefix:\n{s}");
    t.keys(&["Enter"]);
    t.wait_for("Type the target's name (snap)", Duration::from_secs(5));
    t.text("snap");
    t.keys(&["Enter"]);
    let s = t.wait_for("enter: close", Duration::from_secs(120));
    assert!(!s.contains("FAILED"), "{s}");
    t.keys(&["Enter"]);
    t.keys(&["q"]);
    t.wait_for("EXIT=0", Duration::from_secs(20));
    assert_terminal_restored(&t);

    rt.block_on(async {
        let mut c = etcd_client(&lab.etcd(EAST)).await;
        let got = c
            .get(
                app.clone(),
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .unwrap();
        let back: Vec<(String, Vec<u8>)> = got
            .kvs()
            .iter()
            .map(|kv| (kv.key_str().unwrap().to_string(), kv.value().to_vec()))
            .collect();
        let want: Vec<(String, Vec<u8>)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{app}k{i:03}"), v.clone()))
            .collect();
        assert_eq!(back.len(), want.len());
        assert!(back == want, "the prefix came back as the point had it");
        let x = c.get(other.clone(), None).await.unwrap();
        assert_eq!(
            x.kvs()[0].value(),
            b"after",
            "outside the prefix: untouched"
        );
    });
}

/// An etcd endpoint nobody answers at: the Overview says so under its
/// region in `config check`'s words, and `l` shows the dashboard's own log.
#[test]
fn a_dead_endpoint_shows_on_the_overview_and_the_log_viewer_reads_ui_log() {
    let _east = east_up();
    let lab = Lab::get();
    let name = unique("tui-health");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let target = lab
        .etcd_target_toml("dead", "keys", Some("/x/"), "")
        .replace(&format!("{:?}", lab.etcd(WEST)), &format!("[{dead:?}]"));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &format!("{}{target}", lab.regions_toml(&name)));
    let t = Tmux::start_with(&lab, &cfg, "ui", "drills", "--read-only");
    let s = t.wait_for("target dead DOWN", Duration::from_secs(40));
    assert!(s.contains("endpoints: 0 of 1 answer"), "{s}");
    assert!(s.contains("endpoints: 1 of 1 answer"), "east answers: {s}");
    assert!(
        s.contains(&dead["http://".len()..]),
        "the address is named: {s}"
    );
    // The log viewer: this session's activity, then ui.log.
    t.keys(&["l"]);
    t.wait_for("[activity]", Duration::from_secs(10));
    t.keys(&["l"]);
    let s = t.wait_for("[ui.log]", Duration::from_secs(10));
    t.keys(&["/"]);
    t.text("frame drawn");
    t.keys(&["Enter"]);
    let s2 = t.wait_for("/frame drawn", Duration::from_secs(10));
    assert!(!s2.contains("(not found)"), "{s}\n{s2}");
    // One esc clears the search, the next closes (sent apart: two at once
    // read as one escape sequence).
    t.keys(&["Escape"]);
    std::thread::sleep(Duration::from_millis(300));
    t.keys(&["Escape"]);
    t.wait_for("Recovery posture", Duration::from_secs(10));
    t.keys(&["q"]);
    t.wait_for("EXIT=0", Duration::from_secs(20));
}
