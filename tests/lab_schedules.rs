//! Schedules against the lab: the daemon with a one-minute schedule (two runs,
//! two points; a second daemon on the same bucket runs nothing twice; its
//! metrics scraped and parsed), SIGTERM in the middle of a backup, the
//! missed-run policy after downtime, prune (the dry run is exactly what a
//! real prune removes; orphans go; the newest and a held point stay), restore
//! tests of every kind on good and damaged points, webhooks on failure and
//! recovery, and exported CronJobs created in the lab's Kubernetes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn write_schedule(dir: &Path, file: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(file), text).unwrap();
}

fn point_ids(lab: &Lab, cfg: &Path, region: &str) -> Vec<String> {
    points_in(lab, cfg, region)["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["point_id"].as_str().unwrap().to_string())
        .collect()
}

/// A daemon whose stderr (its log) is collected line by line.
struct Daemon {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(lab: &Lab, cfg: &Path, args: &[&str]) -> Daemon {
        let mut all = vec!["schedule", "run", "--log-format", "json"];
        all.extend_from_slice(args);
        let mut child = lab.spawn_drtool(cfg, &all, None);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Daemon {
            child: Some(child),
            lines,
        }
    }

    fn logs(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON log line: {l}")))
            .collect()
    }

    fn count(&self, message: &str) -> usize {
        self.logs()
            .iter()
            .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(message)))
            .count()
    }

    fn wait_for(&self, message: &str, n: usize, within: Duration) {
        let started = Instant::now();
        while self.count(message) < n {
            assert!(
                started.elapsed() < within,
                "no {n}x {message:?} within {within:?}; log:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then its exit code.
    fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        signal(child.id(), "TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return status.code();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the daemon did not stop within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn keys_config(lab: &Lab, name: &str, prefix: &str) -> String {
    format!(
        "{}{}",
        lab.regions_toml(name),
        lab.etcd_target_toml("kv", "keys", Some(prefix), "")
    )
}

/// The README's example alert rules, evaluated by `promtool test rules` on
/// series with the names and labels a daemon exported (`scraped`).
fn alert_rules_fire_on_these_series(scraped: &str) {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let rules = readme
        .split("```yaml\ngroups:\n  - name: drtool\n")
        .nth(1)
        .and_then(|r| r.split("```").next())
        .map(|r| format!("groups:\n  - name: drtool\n{r}"))
        .expect("the README's alert rules");
    // The label sets exactly as scraped.
    let series = |name: &str| -> String {
        scraped
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit_once(' '))
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|| panic!("{name} not scraped:\n{scraped}"))
    };
    let tests = format!(
        r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: '{status}'
        values: '0x60'
    alert_rule_test:
      - eval_time: 40m
        alertname: DrtoolBackupFailing
        exp_alerts:
          - exp_labels: {{schedule: every-minute, target: kv}}
  - interval: 1m
    input_series:
      - series: '{last_ok}'
        values: '0x60'
      - series: '{interval}'
        values: '60x60'
    alert_rule_test:
      - eval_time: 30m
        alertname: DrtoolBackupTooOld
        exp_alerts:
          - exp_labels: {{schedule: every-minute, target: kv}}
  - interval: 1d
    input_series:
      - series: '{drill}'
        values: '0x100'
    alert_rule_test:
      - eval_time: 91d
        alertname: DrtoolNoPassingDrill
        exp_alerts:
          - exp_labels: {{drill: never-ran}}
"#,
        status = series("drtool_backup_last_status"),
        last_ok = series("drtool_backup_last_successful_timestamp"),
        interval = series("drtool_schedule_expected_interval_seconds"),
        // The test's own drill: the reports folder the daemon reads may
        // hold other drills' series too (DRTOOL_REPORTS of the lab).
        drill = scraped
            .lines()
            .find(|l| l.starts_with("drtool_drill_last_success_timestamp{drill=\"never-ran\"}"))
            .and_then(|l| l.rsplit_once(' '))
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|| panic!("the never-ran drill's series is not scraped:\n{scraped}")),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    std::fs::write(dir.path().join("tests.yml"), tests).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules", "tests.yml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// The value of one sample of the exposition text, by name and labels.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        let all = labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        (n == name && all).then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minute_schedule_runs_twice_once_across_two_daemons_and_is_measured() {
    let lab = Lab::get();
    let name = unique("sched-daemon");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &keys_config(&lab, &name, &prefix));
    load_keys(
        &mut etcd_client(&lab.etcd(EAST)).await,
        &prefix,
        50,
        8 * 1024,
    )
    .await;
    let dir = tmp.path().join("schedules");
    write_schedule(
        &dir,
        "every-minute.toml",
        "name = \"every-minute\"\ncron = \"* * * * *\"\ntargets = [\"kv\"]\nstart_window = \"50s\"\n[retention]\nkeep_last = 10\n",
    );
    // Both daemons must be up before the next minute starts.
    use chrono::Timelike;
    while !(3..50).contains(&chrono::Utc::now().second()) {
        std::thread::sleep(Duration::from_millis(200));
    }
    // A drill that never ran: its series is there from the first scrape.
    let drills = tmp.path().join("drills");
    std::fs::create_dir_all(&drills).unwrap();
    std::fs::write(
        drills.join("never-ran.yaml"),
        "name: never-ran\nhypothesis: h.\nobjectives: { rto: 1m, rpo: 1m }\nsteps:\n  - exec: { command: \"true\" }\n",
    )
    .unwrap();
    let drills_arg = drills.display().to_string();
    let (port, port_b) = (free_port(), free_port());
    let dir_arg = dir.display().to_string();
    let addr = format!("127.0.0.1:{port}");
    let addr_b = format!("127.0.0.1:{port_b}");
    let mut a = Daemon::start(
        &lab,
        &cfg,
        &[
            "--schedules",
            &dir_arg,
            "--metrics-addr",
            &addr,
            "--drills",
            &drills_arg,
        ],
    );
    let mut b = Daemon::start(
        &lab,
        &cfg,
        &[
            "--schedules",
            &dir_arg,
            "--metrics-addr",
            &addr_b,
            "--drills",
            &drills_arg,
        ],
    );
    // Two minute boundaries: two runs, each by one of the daemons.
    let started = Instant::now();
    while a.count("run finished") + b.count("run finished") < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "two runs did not finish in 150 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The other daemon's turn at each boundary ends within a few seconds.
    std::thread::sleep(Duration::from_secs(4));
    let finished = a.count("run finished") + b.count("run finished");
    let skipped = a.count("not run here") + b.count("not run here");
    assert_eq!(finished, 2, "A:\n{:?}\nB:\n{:?}", a.logs(), b.logs());
    // Log fields are words and numbers, never text to parse again.
    for l in a.logs().iter().chain(b.logs().iter()) {
        if l["message"] == "run finished" {
            assert_eq!(l["verdict"], "ok", "{l}");
            let points = l["points"].as_str().unwrap();
            assert!(points.starts_with("kv=") && !points.contains('{'), "{l}");
            assert!(l["duration_ms"].is_u64(), "{l}");
        }
    }
    assert_eq!(
        skipped, 2,
        "each boundary: one daemon ran, the other saw it"
    );
    let points = point_ids(&lab, &cfg, EAST);
    assert_eq!(points.len(), 2, "two runs make two points: {points:?}");
    assert_eq!(point_ids(&lab, &cfg, WEST).len(), 2, "and each was copied");
    // Every log line is JSON with the schedule named.
    assert!(
        a.logs()
            .iter()
            .any(|l| l["schedule"] == "every-minute" && l["message"] == "next run")
    );

    let text = scrape(port);
    let text_b = scrape(port_b);
    // Both daemons say the same of the schedule (its state in the bucket),
    // whichever of them ran it; counters are each daemon's own, from 0.
    let l = [("schedule", "every-minute"), ("target", "kv")];
    for name in [
        "drtool_backup_last_status",
        "drtool_backup_last_successful_timestamp",
    ] {
        assert!(sample(&text, name, &l).is_some(), "{name}: {text}");
        assert_eq!(sample(&text, name, &l), sample(&text_b, name, &l), "{name}");
    }
    let attempts = |t: &str| {
        sample(
            t,
            "drtool_backup_attempt_total",
            &[("schedule", "every-minute"), ("region", EAST)],
        )
    };
    assert_eq!(
        attempts(&text).unwrap_or(-1.0) + attempts(&text_b).unwrap_or(-1.0),
        2.0,
        "A:\n{text}\nB:\n{text_b}"
    );
    assert_eq!(
        sample(
            &text,
            "drtool_drill_last_success_timestamp",
            &[("drill", "never-ran")]
        ),
        Some(0.0),
        "{text}"
    );
    alert_rules_fire_on_these_series(&text);
    let ran_here = a.count("run finished") as f64;
    let l = [("schedule", "every-minute"), ("target", "kv")];
    if ran_here > 0.0 {
        let attempts = sample(
            &text,
            "drtool_backup_attempt_total",
            &[("schedule", "every-minute"), ("region", EAST)],
        );
        assert_eq!(attempts, Some(ran_here), "{text}");
        assert_eq!(
            sample(&text, "drtool_backup_last_status", &l),
            Some(1.0),
            "{text}"
        );
        assert!(sample(&text, "drtool_backup_last_successful_timestamp", &l).unwrap() > 1.7e9);
        assert_eq!(
            sample(&text, "drtool_backup_duration_seconds_count", &l),
            Some(ran_here)
        );
    }
    assert_eq!(
        sample(
            &text,
            "drtool_schedule_expected_interval_seconds",
            &[("schedule", "every-minute")]
        ),
        Some(60.0),
        "{text}"
    );
    // A family appears once it has a sample: in the daemon that ran a backup.
    assert!(
        [&text, &text_b]
            .iter()
            .any(|t| t.contains("# TYPE drtool_backup_duration_seconds histogram"))
    );
    assert!(text.contains("# TYPE drtool_drill_last_success_timestamp gauge"));
    assert_eq!(
        a.stop(),
        Some(143),
        "a SIGTERM stops the daemon cleanly, with SIGTERM's exit code"
    );
    assert_eq!(b.stop(), Some(143));
    assert!(a.count("scheduler stopped") == 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_in_the_middle_of_a_backup_leaves_no_partial_point() {
    let lab = Lab::get();
    let name = unique("sched-term");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &keys_config(&lab, &name, &prefix));
    // About 80 MiB of keys: long enough to be stopped while uploading.
    let mut etcd = etcd_client(&lab.etcd(EAST)).await;
    load_keys(&mut etcd, &prefix, 4000, 20 * 1024).await;
    let dir = tmp.path().join("schedules");
    write_schedule(
        &dir,
        "big.toml",
        "name = \"big\"\ncron = \"0 3 * * *\"\ntargets = [\"kv\"]\n[retention]\nkeep_last = 3\n",
    );
    let events = tmp.path().join("events.jsonl");
    let dir_arg = dir.display().to_string();
    let events_arg = events.display().to_string();
    // Never ran, so `--once` runs it now.
    let mut d = Daemon::start(
        &lab,
        &cfg,
        &["--schedules", &dir_arg, "--once", "--events", &events_arg],
    );
    let _ = d.pid();
    wait_for_event(&events, "backup progress", |e| {
        e["operation"] == "backup"
            && e["event"] == "progress"
            && e["bytes"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(d.stop(), Some(143));
    assert!(d.count("stopping") >= 1, "{:?}", d.logs());
    let east = points_in(&lab, &cfg, EAST);
    assert_eq!(
        east["points"],
        serde_json::json!([]),
        "no point from a stopped backup"
    );
    assert_eq!(
        east["orphans"],
        serde_json::json!([]),
        "no data without a manifest"
    );
    assert_eq!(
        east["leftovers"],
        serde_json::json!([]),
        "the upload was aborted: {east}"
    );
    // A cancelled run is not remembered as run: the next start makes up for it.
    let out = lab
        .drtool(&cfg)
        .args(["schedule", "list", "--schedules", &dir_arg, "-o", "json"])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed["items"][0]["last_run"], Value::Null, "{listed}");
    etcd.delete(
        prefix.as_str(),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await
    .unwrap();
}

async fn engine_of(cfg: &Path) -> drtool::engine::Engine {
    let parsed = drtool::source::load_config(cfg).unwrap();
    drtool::engine::Engine::new(parsed, drtool::source::registry(), Default::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn after_downtime_a_missed_run_is_made_up_once_or_skipped() {
    use drtool::schedule::run::ScheduleState;
    let lab = Lab::get();
    let name = unique("sched-missed");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &keys_config(&lab, &name, &prefix));
    load_keys(&mut etcd_client(&lab.etcd(EAST)).await, &prefix, 20, 4096).await;
    let engine = engine_of(&cfg).await;
    // Both schedules last ran three hours ago: the daemon was down since.
    let three_hours_ago = chrono::Utc::now() - chrono::Duration::hours(3);
    for (file, missed) in [("catch-up", "run_once"), ("skipper", "skip")] {
        write_schedule(
            &tmp.path().join(file),
            "s.toml",
            &format!(
                "name = \"{file}\"\ncron = \"0 * * * *\"\ntargets = [\"kv\"]\nmissed = \"{missed}\"\n[retention]\nkeep_last = 5\n"
            ),
        );
        let state = ScheduleState {
            last_run: Some(three_hours_ago),
            ..ScheduleState::default()
        };
        engine
            .save_schedule_state(EAST, file, &state)
            .await
            .unwrap();
    }
    let skip_dir = tmp.path().join("skipper").display().to_string();
    let mut skip = Daemon::start(&lab, &cfg, &["--schedules", &skip_dir]);
    skip.wait_for("skipped (missed = \"skip\")", 1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(skip.count("run started"), 0);
    assert_eq!(skip.stop(), Some(143));
    assert!(point_ids(&lab, &cfg, EAST).is_empty(), "skip: nothing ran");

    let catch_dir = tmp.path().join("catch-up").display().to_string();
    let mut catch = Daemon::start(&lab, &cfg, &["--schedules", &catch_dir]);
    catch.wait_for("run finished", 1, Duration::from_secs(60));
    assert_eq!(catch.count("running once now"), 1, "{:?}", catch.logs());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        catch.count("run started"),
        1,
        "three missed runs are made up by one"
    );
    assert_eq!(catch.stop(), Some(143));
    assert_eq!(point_ids(&lab, &cfg, EAST).len(), 1);
}

fn removals(plan: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for r in plan["regions"].as_array().unwrap() {
        for t in r["targets"].as_array().unwrap() {
            for i in t["items"].as_array().unwrap() {
                if i["action"] == "remove" {
                    out.insert((
                        r["region"].as_str().unwrap().to_string(),
                        i["point"].as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_removes_exactly_its_dry_run_plan_and_orphans_but_never_the_newest_or_a_held_point() {
    let lab = Lab::get();
    let name = unique("sched-prune");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &keys_config(&lab, &name, &prefix));
    load_keys(&mut etcd_client(&lab.etcd(EAST)).await, &prefix, 30, 2048).await;
    let dir = tmp.path().join("schedules");
    write_schedule(
        &dir,
        "s.toml",
        "name = \"nightly\"\ncron = \"@daily\"\ntargets = [\"kv\"]\n[retention]\nkeep_last = 2\n",
    );
    let mut made = Vec::new();
    for _ in 0..5 {
        let out = lab
            .drtool(&cfg)
            .args(["backup", "--target", "kv"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        made.push(point_of(&stdout(&out)));
    }
    let (oldest, newest) = (made[0].clone(), made[4].clone());
    // Made outside a schedule, they carry no retention: prune keeps them
    // all until one is given to them by hand.
    let dir_arg = dir.display().to_string();
    let out = lab
        .drtool(&cfg)
        .args(["prune", "--dry-run", "--grace", "0s"])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("no retention recorded"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("REMOVE 2"), "{}", stdout(&out));
    let out = lab
        .drtool(&cfg)
        .args(["points", "retain", "--target", "kv", "--policy", "nightly"])
        .args(["--schedules", &dir_arg])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // Verified points keep their result next to them: a pruned point's
    // result goes with it (else it would be left over below).
    let out = lab.drtool(&cfg).args(["verify"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let engine = engine_of(&cfg).await;
    engine
        .hold_point(EAST, "kv", &oldest, "a drill of the test")
        .await
        .unwrap();
    // Data without a manifest: an interrupted backup's leftover.
    let parsed = drtool::source::load_config(&cfg).unwrap();
    let rs = drtool::catalog::RegionStore::open(parsed.region(EAST).unwrap()).await;
    let orphan: drtool::archive::PointId = "20200101T000000Z-0badf00d".parse().unwrap();
    let orphan_key = rs.layout.data_key("kv", &orphan, false);
    rs.store
        .put(
            &orphan_key,
            bytes::Bytes::from_static(b"half a backup"),
            drtool::store::Keep::Normal,
        )
        .await
        .unwrap();

    let out = lab
        .drtool(&cfg)
        .args(["prune", "--dry-run", "--grace", "0s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("keep   {newest}")), "{text}");
    assert!(text.contains("held by a drill of the test until"), "{text}");
    assert!(text.contains(&format!("REMOVE {}", made[1])), "{text}");
    assert!(
        text.contains("dry run: nothing was removed (5 points and 1 leftovers would be)"),
        "{text}"
    );

    let out = lab
        .drtool(&cfg)
        .args(["prune", "--dry-run", "--grace", "0s", "-o", "json"])
        .output()
        .unwrap();
    let planned: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let want = removals(&planned["plan"]);
    // East keeps the newest two and the held oldest; west (not held) the newest two.
    assert_eq!(want.len(), 5, "{want:?}");

    let out = lab
        .drtool(&cfg)
        .args(["prune", "--yes", "--grace", "0s", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let done: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let removed: BTreeSet<(String, String)> = done["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["operation"] == "delete" && i["outcome"] == "ok")
        .map(|i| {
            (
                i["region"].as_str().unwrap().to_string(),
                i["point"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        removed, want,
        "the real prune removes exactly the dry run's plan"
    );
    let east = point_ids(&lab, &cfg, EAST);
    assert_eq!(
        east,
        vec![oldest.clone(), made[3].clone(), newest.clone()],
        "newest two and the held one"
    );
    let west = point_ids(&lab, &cfg, WEST);
    assert_eq!(west, vec![made[3].clone(), newest.clone()]);
    let listed = points_in(&lab, &cfg, EAST);
    assert_eq!(
        listed["verifies"].as_object().map(|v| v.len()),
        Some(3),
        "the kept points' verifies stay: {listed}"
    );
    assert_eq!(
        listed["leftovers"],
        serde_json::json!([]),
        "the orphan is gone: {listed}"
    );
    engine.release_point(EAST, "kv", &oldest).await.unwrap();
}

fn kubectl(lab: &Lab, args: &[&str]) -> std::process::Output {
    Command::new(&lab.env["LAB_KUBECTL"])
        .args([
            "--kubeconfig",
            &lab.env["LAB_KUBECONFIG"],
            "--context",
            &format!("lab-{EAST}"),
        ])
        .args(args)
        .output()
        .unwrap()
}

/// `drtool restore-test`'s one line, and its exit code.
fn restore_test(lab: &Lab, cfg: &Path, target: &str, point: Option<&str>) -> (Option<i32>, String) {
    let mut args = vec!["restore-test", "--target", target];
    if let Some(p) = point {
        args.extend(["--point", p]);
    }
    let out = lab.drtool(cfg).args(&args).output().unwrap();
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains("restore-test"))
        .unwrap_or_else(|| panic!("no result line: {}{}", stdout(&out), stderr(&out)))
        .to_string();
    (out.status.code(), line)
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_tests_pass_on_good_points_of_every_kind_and_fail_on_a_damaged_one() {
    let lab = Lab::get();
    let name = unique("sched-rt");
    let prefix = format!("/{name}/");
    let ns = name.clone();
    let db = name.replace('-', "_");
    let tmp = tempfile::tempdir().unwrap();
    psql(&lab, "postgres", &format!("CREATE DATABASE {db}"));
    psql(
        &lab,
        &db,
        "CREATE TABLE a (id int PRIMARY KEY, v jsonb); INSERT INTO a SELECT g, jsonb_build_object('n', g) FROM generate_series(1, 3000) g; \
         CREATE SCHEMA s; CREATE TABLE s.b (id int, t text); INSERT INTO s.b SELECT g, repeat('x', g % 300) FROM generate_series(1, 700) g; \
         CREATE TABLE empty_one (id int)",
    );
    kube_load(&lab.env["LAB_KUBE_US_EAST_1"], &ns, 40);
    load_keys(
        &mut etcd_client(&lab.etcd(EAST)).await,
        &prefix,
        200,
        8 * 1024,
    )
    .await;
    let config = format!(
        r#"{regions}{keys}
[targets.snap]
kind = "etcd"
mode = "snapshot"
home = "{EAST}"
[targets.snap.regions.{EAST}]
endpoints = {east:?}

[targets.app]
kind = "namespace"
namespace = "{ns}"
home = "{EAST}"
[targets.app.regions.{EAST}]
kubeconfig = "{kc}"
context = "lab-{EAST}"

[targets.db]
kind = "rds"
mode = "dump"
instance = "unused"
home = "{EAST}"
[targets.db.regions.{EAST}]
endpoint = "{moto}"
database = {{ host = "127.0.0.1", port = {port}, user = "postgres", dbname = "{db}", password_env = "LAB_PG_PASSWORD" }}
"#,
        regions = lab.regions_toml(&name),
        keys = lab.etcd_target_toml("kv", "keys", Some(&prefix), ""),
        east = lab.etcd(EAST),
        kc = lab.env["LAB_KUBECONFIG"],
        moto = lab.env["LAB_RDS_ENDPOINT"],
        port = lab.env["LAB_PG_PORT"],
    );
    let cfg = write_config(tmp.path(), &config);
    for t in ["kv", "snap", "app", "db"] {
        let out = lab
            .drtool(&cfg)
            .args(["backup", "--no-copy", "--target", t])
            .output()
            .unwrap();
        assert!(out.status.success(), "backup {t}: {}", stderr(&out));
    }

    let (code, line) = restore_test(&lab, &cfg, "kv", None);
    assert_eq!(code, Some(0), "{line}");
    assert!(
        line.contains("200 keys restored into a scratch etcd, as the manifest counts"),
        "{line}"
    );
    let (code, line) = restore_test(&lab, &cfg, "snap", None);
    assert_eq!(code, Some(0), "{line}");
    assert!(
        line.contains("the snapshot started as an etcd holding")
            && line.contains("as the manifest counts"),
        "{line}"
    );
    let (code, line) = restore_test(&lab, &cfg, "app", None);
    assert_eq!(code, Some(0), "{line}");
    assert!(
        line.contains("restored into scratch namespace drtool-rt-") && line.contains("listed back"),
        "{line}"
    );
    let scratch_ns = line
        .split("scratch namespace ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let gone = kubectl(&lab, &["get", "namespace", &scratch_ns]);
    assert!(
        !gone.status.success(),
        "the scratch namespace {scratch_ns} is removed"
    );
    let (code, line) = restore_test(&lab, &cfg, "db", None);
    assert_eq!(code, Some(0), "{line}");
    assert!(
        line.contains("3 tables and 3700 rows restored into scratch database drtool_rt_"),
        "{line}"
    );
    let scratch_db = line
        .split("scratch database ")
        .nth(1)
        .unwrap()
        .split([',', ' '])
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        psql(
            &lab,
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{scratch_db}'")
        ),
        "0"
    );

    // Recorded next to each point, and shown by `points`.
    let out = lab
        .drtool(&cfg)
        .args(["points", "--region", EAST])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out).matches("restore-tested at").count(),
        4,
        "{}",
        stdout(&out)
    );

    // A point whose payload lost a key, with every hash fixed up to match:
    // verify passes, the restore test does not.
    let kv_point = points_in(&lab, &cfg, EAST)["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["target"] == "kv")
        .map(|m| m["point_id"].as_str().unwrap().to_string())
        .unwrap();
    rewrite_point(&cfg, EAST, "kv", &kv_point, |plain| {
        let text = String::from_utf8(plain).unwrap();
        text.lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes()
    })
    .await;
    lab.drtool(&cfg)
        .args(["verify", "--target", "kv", "--region", EAST])
        .assert()
        .success();
    let (code, line) = restore_test(&lab, &cfg, "kv", Some(&kv_point));
    assert_eq!(code, Some(5), "{line}");
    assert!(
        line.contains("the manifest counts 200 keys, the restore created 199"),
        "{line}"
    );
    let out = lab
        .drtool(&cfg)
        .args(["points", "--region", EAST, "--target", "kv"])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("RESTORE TEST FAILED at"),
        "{}",
        stdout(&out)
    );
    psql(
        &lab,
        "postgres",
        &format!("DROP DATABASE {db} WITH (FORCE)"),
    );
    let _ = kubectl(&lab, &["delete", "namespace", &ns]);
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_tell_a_failure_and_the_recovery_once() {
    let lab = Lab::get();
    let name = unique("sched-hook");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    load_keys(&mut etcd_client(&lab.etcd(EAST)).await, &prefix, 10, 1024).await;
    let (url, got) = webhook_server();
    let dir = tmp.path().join("schedules");
    write_schedule(
        &dir,
        "s.toml",
        &format!(
            "name = \"hourly\"\ncron = \"@hourly\"\ntargets = [\"kv\"]\n[retention]\nkeep_last = 3\n[notify]\nwebhook = \"{url}\"\n"
        ),
    );
    let dir_arg = dir.display().to_string();
    let good = keys_config(&lab, &name, &prefix);
    // etcd down: the run fails, and the webhook hears it.
    let east = lab.etcd(EAST);
    let broken = good.replace(&format!("{east:?}"), "[\"http://127.0.0.1:1\"]");
    let cfg = write_config(tmp.path(), &broken);
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--schedule", "hourly", "--schedules", &dir_arg])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    let cfg = write_config(tmp.path(), &good);
    for _ in 0..2 {
        let out = lab
            .drtool(&cfg)
            .args(["backup", "--schedule", "hourly", "--schedules", &dir_arg])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let bodies = got.lock().unwrap().clone();
    let events: Vec<&str> = bodies
        .iter()
        .map(|b| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["schedule_failed", "schedule_recovered"],
        "{bodies:?}"
    );
    assert_eq!(bodies[0]["schedule"], "hourly");
    assert!(
        bodies[0]["failures"][0]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:1"),
        "{}",
        bodies[0]
    );
    assert!(bodies[1]["points"]["kv"].is_string(), "{}", bodies[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn exported_cron_jobs_are_created_and_read_back_by_kubectl() {
    let lab = Lab::get();
    let name = unique("sched-cj");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &keys_config(&lab, &name, &format!("/{name}/")));
    let dir = tmp.path().join("schedules");
    write_schedule(
        &dir,
        "a.toml",
        "name = \"keys-hourly\"\ncron = \"5 * * * *\"\ntimezone = \"Europe/Berlin\"\ntargets = [\"kv\"]\n[retention]\nkeep_hourly = 24\n",
    );
    write_schedule(
        &dir,
        "b.toml",
        "name = \"keys-weekly\"\ncron = \"@weekly\"\ntargets = [\"kv\"]\npaused = true\n[retention]\nkeep_weekly = 8\n",
    );
    let out = lab
        .drtool(&cfg)
        .args([
            "schedule",
            "export",
            "--kubernetes",
            "--image",
            "registry.example/drtool:1",
            "--namespace",
            &name,
            "--schedules",
            &dir.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let manifests = tmp.path().join("cronjobs.yaml");
    std::fs::write(&manifests, stdout(&out)).unwrap();
    let created = kubectl(&lab, &["create", "namespace", &name]);
    assert!(created.status.success(), "{}", stderr(&created));
    let applied = kubectl(&lab, &["create", "-f", &manifests.display().to_string()]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert!(
        stdout(&applied).contains("cronjob.batch/drtool-keys-hourly created"),
        "{}",
        stdout(&applied)
    );
    let got = kubectl(
        &lab,
        &[
            "get",
            "cronjob",
            "drtool-keys-hourly",
            "-n",
            &name,
            "-o",
            "json",
        ],
    );
    assert!(got.status.success(), "{}", stderr(&got));
    let cj: Value = serde_json::from_str(&stdout(&got)).unwrap();
    assert_eq!(cj["spec"]["schedule"], "5 * * * *");
    assert_eq!(cj["spec"]["timeZone"], "Europe/Berlin");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(cj["spec"]["startingDeadlineSeconds"], 3600);
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["resources"]["requests"]["memory"], "256Mi");
    // The API server kept the restricted security context.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{pod}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let sc = &container["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{sc}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{sc}");
    assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{sc}");
    assert!(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--once-per-slot")
    );
    let weekly = kubectl(
        &lab,
        &[
            "get",
            "cronjob",
            "drtool-keys-weekly",
            "-n",
            &name,
            "-o",
            "json",
        ],
    );
    let cj: Value = serde_json::from_str(&stdout(&weekly)).unwrap();
    assert_eq!(cj["spec"]["suspend"], true);
    assert_eq!(cj["spec"]["schedule"], "@weekly");
    let _ = kubectl(&lab, &["delete", "namespace", &name]);
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_tests_reach_every_copy_and_an_unknown_point_writes_nothing() {
    let lab = Lab::get();
    let name = unique("rt-copies");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    load_keys(
        &mut etcd_client(&lab.etcd(EAST)).await,
        &prefix,
        50,
        4 * 1024,
    )
    .await;
    let config = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("kv", "keys", Some(&prefix), ""),
    );
    let cfg = write_config(tmp.path(), &config);
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--target", "kv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Every region that holds it, the DR copy first.
    let out = lab
        .drtool(&cfg)
        .args(["restore-test", "--target", "kv"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("restore-test"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains(WEST) && lines[1].contains(EAST), "{text}");
    for region in [EAST, WEST] {
        let listed = lab
            .drtool(&cfg)
            .args(["points", "--region", region])
            .output()
            .unwrap();
        assert!(
            stdout(&listed).contains("restore-tested at"),
            "{region}: {}",
            stdout(&listed)
        );
    }
    // --region: that copy only.
    let out = lab
        .drtool(&cfg)
        .args(["restore-test", "--target", "kv", "--region", WEST])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        stdout(&out).matches("restore-test").count(),
        1,
        "{}",
        stdout(&out)
    );
    // A point nobody took: refused, and no result appears anywhere.
    let out = lab
        .drtool(&cfg)
        .args([
            "restore-test",
            "--target",
            "kv",
            "--point",
            "20991231T000000Z-deadbeef",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    for region in [EAST, WEST] {
        let listed = points_in(&lab, &cfg, region);
        assert!(
            listed["leftovers"].as_array().is_none_or(|l| l.is_empty()),
            "{region}: {}",
            listed["leftovers"]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_travels_with_each_point_whatever_schedule_folder_a_run_loads() {
    let lab = Lab::get();
    let name = unique("two-folders");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &keys_config(&lab, &name, &prefix));
    load_keys(&mut etcd_client(&lab.etcd(EAST)).await, &prefix, 20, 2048).await;
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_schedule(
        &a,
        "minutely.toml",
        "name = \"minutely\"\ncron = \"* * * * *\"\ntargets = [\"kv\"]\n[retention]\nkeep_last = 2\n",
    );
    write_schedule(
        &b,
        "once.toml",
        "name = \"once\"\ncron = \"@daily\"\ntargets = [\"kv\"]\n[retention]\nkeep_last = 1\n",
    );
    let run = |dir: &Path, schedule: &str| {
        let out = lab
            .drtool(&cfg)
            .args(["backup", "--schedule", schedule, "--schedules"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        point_of(&stdout(&out))
    };
    let a1 = run(&a, "minutely");
    let a2 = run(&a, "minutely");
    // A drill report in us-east-1's store cites a1: it stays as evidence.
    lab.put_object(
        EAST,
        &format!("{name}/drills/20261205t000000z-cafecafe/report.json"),
        format!(
            r#"{{"run_id":"20261205t000000z-cafecafe","drill":"etcd-region-failover","restores":[{{"target":"kv","point":"{a1}"}}]}}"#
        )
        .as_bytes(),
    );
    let a3 = run(&a, "minutely");
    let a4 = run(&a, "minutely");
    // Another folder's schedule, keeping 1: it judges its own point only.
    let b1 = run(&b, "once");
    let mut left = point_ids(&lab, &cfg, EAST);
    left.sort();
    let mut want = vec![a1.clone(), a3, a4, b1];
    want.sort();
    assert_eq!(left, want, "a2 went by minutely's keep_last 2; a1 is cited");
    assert!(!left.contains(&a2));
    let out = lab
        .drtool(&cfg)
        .args(["prune", "--dry-run", "--region", EAST])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("cited by drill report 20261205t000000z-cafecafe (etcd-region-failover)"),
        "{text}"
    );
    assert!(text.contains("points made under minutely, once"), "{text}");
    // The policy is in the signed manifest.
    let listed = points_in(&lab, &cfg, EAST);
    let m = listed["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["point_id"] == a1.as_str())
        .unwrap()
        .clone();
    assert_eq!(m["retention"]["policy"], "minutely", "{m}");
    assert_eq!(m["retention"]["rules"]["keep_last"], 2, "{m}");
    // Kept by hand past its policy: recorded next to it, with who.
    let out = lab
        .drtool(&cfg)
        .args([
            "points",
            "retain",
            "--target",
            "kv",
            "--point",
            &a1,
            "--until",
            "2099-01-01",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = lab
        .drtool(&cfg)
        .args(["points", "--region", EAST])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("retention minutely, kept until 2099-01-01 00:00 UTC"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_lock_is_held_until_gc_force_unlocks_it() {
    let lab = Lab::get();
    let name = unique("sched-badlock");
    let prefix = format!("/{name}/");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &keys_config(&lab, &name, &prefix));
    load_keys(&mut etcd_client(&lab.etcd(EAST)).await, &prefix, 20, 4096).await;
    let dir = tmp.path().join("schedules");
    write_schedule(
        &dir,
        "s.toml",
        &format!(
            "name = \"{name}\"\ncron = \"0 3 * * *\"\ntargets = [\"kv\"]\n[retention]\nkeep_last = 5\n"
        ),
    );
    let dir = dir.display().to_string();
    // A lock cut short by a crash mid-write (or put there by another tool).
    let lock = format!("schedule.{name}");
    let key = format!("{name}/locks/{lock}");
    lab.put_object(EAST, &key, b"{\"name\": \"schedule.x\", \"own");
    let run_once = || {
        lab.drtool(&cfg)
            .args(["schedule", "run", "--once", "--schedules", &dir])
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap()
    };
    let out = run_once();
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("lock {key} in {EAST} cannot be read")),
        "{said}"
    );
    assert!(said.contains(&format!("--force-unlock {lock}")), "{said}");
    assert!(lab.object_exists(EAST, &key), "never taken over");
    assert!(point_ids(&lab, &cfg, EAST).is_empty(), "nothing ran");

    // The way out: a plan first, then the removal.
    let plan = lab
        .drtool(&cfg)
        .args(["gc", "--region", EAST, "--force-unlock", &lock, "--dry-run"])
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", stderr(&plan));
    let text = stdout(&plan);
    assert!(
        text.contains(&format!("REMOVE lock: {key}")) && text.contains("cannot be read"),
        "{text}"
    );
    assert!(lab.object_exists(EAST, &key), "a dry run removes nothing");
    let bad = lab
        .drtool(&cfg)
        .args(["gc", "--region", EAST, "--force-unlock", "a/b", "--yes"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("--force-unlock \"a/b\": not a lock name"));
    let gc = lab
        .drtool(&cfg)
        .args(["gc", "--region", EAST, "--force-unlock", &lock, "--yes"])
        .output()
        .unwrap();
    assert!(gc.status.success(), "{}{}", stdout(&gc), stderr(&gc));
    assert!(!lab.object_exists(EAST, &key));

    let out = run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(point_ids(&lab, &cfg, EAST).len(), 1);
    assert!(!lab.object_exists(EAST, &key), "released after the run");
}
