//! A dashboard with fixed data and a frozen clock, for the snapshot tests,
//! the drill replay and the frame-time benchmark. The data is real: the
//! points listing, report and drill events were recorded from the lab
//! (`tests/fixtures/tui/`), the drills and schedules are the repository's
//! examples, loaded against a config of the lab's shape.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use drtool::archive::Manifest;
use drtool::catalog::CheckResult;
use drtool::config::Config;
use drtool::drill::runner::DrillEvent;
use drtool::report::integrity::Integrity;
use drtool::report::{DrillReport, RunEntry};
use drtool::schedule::run::ScheduleState;
use drtool::tui::app::{Action, App};
use drtool::tui::keymap::Keymap;
use drtool::tui::model::{Loadable, PointRow, ScheduleRow};

pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tui");

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The frozen clock: two seconds after the recorded drill ended.
pub fn now() -> DateTime<Utc> {
    "2026-12-01T21:30:56Z".parse().unwrap()
}

pub fn config() -> Config {
    drtool::source::load_config(Path::new(&format!("{DIR}/drtool.toml"))).unwrap()
}

/// The recorded points listing, per region.
pub fn points() -> Vec<(String, Vec<PointRow>)> {
    let text = std::fs::read_to_string(format!("{DIR}/points.json")).unwrap();
    let listed: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    listed
        .iter()
        .map(|r| {
            let region = r["region"].as_str().unwrap().to_string();
            let tests: std::collections::BTreeMap<String, CheckResult> =
                serde_json::from_value(r.get("restore_tests").cloned().unwrap_or_default())
                    .unwrap_or_default();
            let verifies: std::collections::BTreeMap<String, CheckResult> =
                serde_json::from_value(r.get("verifies").cloned().unwrap_or_default())
                    .unwrap_or_default();
            let rows = r["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let m: Manifest = serde_json::from_value(m.clone()).unwrap();
                    PointRow {
                        region: region.clone(),
                        payload_text: drtool::source::registry().describe_payload(&m.payload),
                        consistency_text: drtool::source::registry()
                            .describe_consistency(&m.consistency),
                        external: drtool::source::registry().external_lines(&m),
                        restore_test: tests.get(&m.point_id).cloned(),
                        verified: verifies.get(&m.point_id).cloned(),
                        manifest: Arc::new(m),
                    }
                })
                .collect();
            (region, rows)
        })
        .collect()
}

/// `n` points in all, made from the recorded ones with older times and
/// ids of their own (for the benchmark's 10k-point catalog).
pub fn many_points(n: usize) -> Vec<(String, Vec<PointRow>)> {
    let base = points();
    let per_region = n / base.len().max(1);
    base.into_iter()
        .map(|(region, rows)| {
            let out = (0..per_region)
                .map(|i| {
                    let mut m = (*rows[i % rows.len()].manifest).clone();
                    let back = Duration::minutes(10 * i as i64);
                    m.started_at -= back;
                    m.finished_at -= back;
                    m.point_id = format!("{}-{i:05}", m.started_at.format("%Y%m%dT%H%M%SZ"));
                    PointRow {
                        region: region.clone(),
                        payload_text: rows[i % rows.len()].payload_text.clone(),
                        consistency_text: rows[i % rows.len()].consistency_text.clone(),
                        external: rows[i % rows.len()].external.clone(),
                        restore_test: None,
                        verified: None,
                        manifest: Arc::new(m),
                    }
                })
                .collect();
            (region, out)
        })
        .collect()
}

pub fn report() -> DrillReport {
    let text = std::fs::read_to_string(format!("{DIR}/report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The recorded run and four earlier ones of the same drill (for the
/// sparkline), and a failed namespace drill.
pub fn runs() -> Vec<RunEntry> {
    let r = report();
    let mut out = Vec::new();
    for (i, (rto, rpo)) in [
        (41_200u64, 5_100u64),
        (35_800, 3_900),
        (52_300, 7_700),
        (29_900, 2_600),
    ]
    .into_iter()
    .enumerate()
    {
        let started = r.started_at - Duration::days(7 * (4 - i as i64));
        out.push(RunEntry {
            drill: r.drill.clone(),
            run_id: format!("{}-earlier{i}", started.format("%Y%m%dt%H%M%Sz")),
            started_at: started,
            verdict: r.verdict,
            rto_ms: Some(rto),
            rpo_ms: Some(rpo),
            objectives: (r.objectives.rto_ms, r.objectives.rpo_ms),
            path: PathBuf::from("reports"),
            integrity: Integrity::Unsigned,
            trusted: true,
        });
    }
    out.push(RunEntry::of(
        &r,
        PathBuf::from("reports"),
        Integrity::Unsigned,
        true,
    ));
    out.push(RunEntry {
        drill: "namespace-loss".into(),
        run_id: "20261130t101500z-5f0c1d2e".into(),
        started_at: "2026-11-30T10:15:00Z".parse().unwrap(),
        verdict: drtool::drill::measure::DrillVerdict::Failed,
        rto_ms: None,
        rpo_ms: None,
        objectives: (300_000, 3_600_000),
        path: PathBuf::from("reports"),
        integrity: Integrity::Unsigned,
        trusted: true,
    });
    out
}

pub fn schedules(cfg: &Config) -> Vec<ScheduleRow> {
    let schedules = drtool::schedule::spec::load_dir(Path::new("schedules"), cfg).unwrap();
    schedules
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let state = (i == 0).then(|| ScheduleState {
                last_run: Some(now() - Duration::minutes(32)),
                last_outcome: Some(drtool::engine::Verdict::Ok),
                last_success: Some(now() - Duration::minutes(32)),
                last_failure: None,
                last_hash_verify: Some(now() - Duration::hours(5)),
                last_restore_test: Some(now() - Duration::hours(29)),
                last_duration_ms: Some(1_840),
            });
            ScheduleRow::of(s, state, now())
        })
        .collect()
}

pub fn drill_events() -> Vec<DrillEvent> {
    let text = std::fs::read_to_string(format!("{DIR}/drill-events.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The dashboard with everything loaded.
pub fn app_with(points: Vec<(String, Vec<PointRow>)>, read_only: bool) -> App {
    let cfg = config();
    let (targets, regions) = drtool::tui::targets_of(&cfg, &drtool::source::registry());
    let mut app = App::new(now(), targets, regions, Keymap::default(), read_only);
    for (region, rows) in points {
        app.update(Action::Region(region, Loadable::Ready(rows)));
    }
    app.update(Action::Drills(drtool::tui::load_drills(
        Path::new("drills"),
        &cfg,
        &drtool::source::registry(),
    )));
    app.update(Action::Reports(Loadable::Ready(runs())));
    app.update(Action::Schedules(Loadable::Ready(schedules(&cfg))));
    app
}

pub fn app() -> App {
    app_with(points(), false)
}

/// A restore plan made by `restore --dry-run -o json` in the lab.
pub fn plan() -> drtool::engine::RestorePlan {
    let text = std::fs::read_to_string(format!("{DIR}/plan.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Draws the dashboard on a test terminal of `w` x `h`.
pub fn draw(app: &App, w: u16, h: u16) -> ratatui::Terminal<ratatui::backend::TestBackend> {
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
    t.draw(|f| drtool::tui::view::draw(f, app)).unwrap();
    t
}

/// The foreground colour of the first cell of `text` on the screen.
pub fn colour_of(
    t: &ratatui::Terminal<ratatui::backend::TestBackend>,
    text: &str,
) -> Option<ratatui::style::Color> {
    let rows = 0..t.backend().buffer().area.height;
    rows.into_iter().find_map(|y| colour_in_row(t, y, text))
}

/// The foreground colour of `text` on row `y`.
pub fn colour_in_row(
    t: &ratatui::Terminal<ratatui::backend::TestBackend>,
    y: u16,
    text: &str,
) -> Option<ratatui::style::Color> {
    let buf = t.backend().buffer();
    let area = buf.area;
    {
        let line: String = (0..area.width)
            .map(|x| buf[(x, y)].symbol().to_string())
            .collect();
        if let Some(byte) = line.find(text) {
            let x = line[..byte].chars().count() as u16;
            return buf[(x, y)].fg.into();
        }
    }
    None
}
