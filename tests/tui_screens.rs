//! Every screen of the dashboard at 80x24 and 160x48, drawn from fixed data
//! with a frozen clock (insta snapshots of the text), and the colours that
//! carry meaning checked on the buffer's cells, since text drops styles.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "tui/fixture.rs"]
mod fixture;

use std::sync::Arc;

use drtool::engine::stream::{RegionStream, StreamStatus};
use drtool::error::ErrorClass;
use drtool::tui::app::{Action, App, Effect, Input, PlanView, Screen, View, WizardStep};
use drtool::tui::keymap::Command;
use drtool::tui::model::{Failure, Loadable};
use drtool::tui::view::{ACCENT, BAD, GOOD, WARN};

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn snap(name: &str, app: &App) {
    for (w, h) in SIZES {
        let t = fixture::draw(app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), t.backend());
    }
}

fn cmd(app: &mut App, c: Command) -> Vec<Effect> {
    app.update(Action::Cmd(c))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Action::Input(Input::Char(c)));
    }
}

#[test]
fn overview() {
    let app = fixture::app();
    snap("overview", &app);
    let t = fixture::draw(&app, 160, 48);
    // lab-keys' newest point is 24s old against a 30s objective: amber;
    // lab-shop's is minutes old against 30s: red; the recorded drill passed.
    assert_eq!(fixture::colour_of(&t, "lab-keys"), Some(WARN));
    assert_eq!(fixture::colour_of(&t, "lab-shop"), Some(BAD));
    assert_eq!(fixture::colour_of(&t, "PASS"), Some(GOOD));
    // Ten seconds after that point was taken it was well inside: green.
    let mut early = fixture::app();
    early.update(Action::Tick("2026-12-01T21:30:42Z".parse().unwrap()));
    let t = fixture::draw(&early, 80, 24);
    assert_eq!(fixture::colour_of(&t, "lab-keys"), Some(GOOD));
}

#[test]
fn last_verified_is_the_newest_passed_verify_of_a_schedule_or_a_point() {
    let verified_at: chrono::DateTime<chrono::Utc> = "2026-12-01T21:30:50.120Z".parse().unwrap();
    let keys = |app: &App| {
        app.overview()
            .into_iter()
            .find(|r| r.target == "lab-keys")
            .unwrap()
    };
    // lab-keys' newest point was verified after its schedule's hash verify.
    assert_eq!(keys(&fixture::app()).last_verified, Some(verified_at));
    // A verify that failed proves nothing: it is not the last verify.
    let mut points = fixture::points();
    for (_, rows) in &mut points {
        for p in rows.iter_mut() {
            if let Some(v) = p.verified.as_mut() {
                v.ok = false;
            }
        }
    }
    let app = fixture::app_with(points, false);
    assert!(
        keys(&app).last_verified.is_none_or(|at| at < verified_at),
        "{:?}",
        keys(&app).last_verified
    );
}

/// lab-keys followed by a stream: the home region current, the DR region
/// a little behind, as `drtool stream status` reads them.
fn streams(west: RegionStream, source_error: Option<&str>) -> Action {
    let east = RegionStream {
        region: "us-east-1".into(),
        base: Some("20261201T212950Z-7f3a".into()),
        base_position: Some(1_180),
        segments: 31,
        reaches: Some(1_412),
        newest_at: Some("2026-12-01T21:30:55.600Z".parse().unwrap()),
        lag_revisions: source_error.is_none().then_some(0),
        lag_seconds: source_error.is_none().then_some(0.0),
        ..RegionStream::default()
    };
    Action::Streams(Loadable::Ready(vec![StreamStatus {
        target: "lab-keys".into(),
        source_position: source_error.is_none().then_some(1_412),
        source_error: source_error.map(str::to_string),
        regions: vec![east, west],
    }]))
}

fn west_behind() -> RegionStream {
    RegionStream {
        region: "us-west-2".into(),
        base: Some("20261201T212950Z-7f3a".into()),
        base_position: Some(1_180),
        segments: 30,
        reaches: Some(1_398),
        newest_at: Some("2026-12-01T21:30:54.600Z".parse().unwrap()),
        lag_revisions: Some(14),
        lag_seconds: Some(1.4),
        ..RegionStream::default()
    }
}

#[test]
fn overview_with_a_stream_judges_the_rpo_on_its_lag() {
    // The newest point is 24s old against 30s (amber); the stream's DR copy
    // is 1.4s behind: green, the age shown as the stream's.
    // The base was taken after a gap: said under the region, in amber.
    let mut app = fixture::app();
    let west = RegionStream {
        gap: Some(
            "started again at revision 1180 on 2026-12-01 21:29:50Z after a gap in the stream of \
             20261201T202950Z-1c2d (compacted at 1175)"
                .into(),
        ),
        ..west_behind()
    };
    app.update(streams(west, None));
    snap("overview_streams", &app);
    let t = fixture::draw(&app, 160, 48);
    assert_eq!(fixture::colour_of(&t, "lab-keys"), Some(GOOD));
    assert_eq!(fixture::colour_of(&t, "started again"), Some(WARN));
    let text = format!("{}", t.backend());
    assert!(text.contains("~0.0s") || text.contains("~0s"), "{text}");
    assert!(
        text.contains("1.4s behind, 14 revisions (rev 1398)"),
        "{text}"
    );
    assert!(text.contains("~ stream"), "{text}");

    // The source is gone (the outage): the age is that of the newest change
    // stored, which grows; a region whose chain has a hole says where, in red.
    let mut app = fixture::app();
    let broken = RegionStream {
        broken: Some("segment 00000000000000001300-00000000000000001320 is missing".into()),
        reaches: Some(1_299),
        lag_revisions: None,
        lag_seconds: None,
        newest_at: Some("2026-12-01T21:29:50Z".parse().unwrap()),
        ..west_behind()
    };
    app.update(Action::Tick("2026-12-01T21:31:40Z".parse().unwrap()));
    app.update(streams(
        broken,
        Some("etcd at 127.0.0.1:2379: connection refused"),
    ));
    snap("overview_streams_source_down", &app);
    let t = fixture::draw(&app, 160, 48);
    assert_eq!(fixture::colour_of(&t, "lab-keys"), Some(BAD));
    assert_eq!(fixture::colour_of(&t, "BROKEN"), Some(BAD));
    assert_eq!(fixture::colour_of(&t, "source unreachable"), Some(BAD));
    let text = format!("{}", t.backend());
    assert!(
        text.contains("newest change 44.4s ago (rev 1412)"),
        "{text}"
    );
    let row = app
        .overview()
        .into_iter()
        .find(|r| r.target == "lab-keys")
        .unwrap();
    assert_eq!(row.stream_lag, Some(chrono::Duration::milliseconds(44_400)));
}

#[test]
fn the_overview_asks_for_streams_every_few_seconds_and_only_when_answered() {
    let mut app = fixture::app();
    let asks = |effects: Vec<Effect>| effects.iter().any(|e| matches!(e, Effect::LoadStreams));
    // The fixture's config has no continuous target: nothing to ask.
    assert!(!asks(app.update(Action::Tick(fixture::now()))));
    app.targets[0].streams = true;
    let at = |s: i64| Action::Tick(fixture::now() + chrono::Duration::seconds(s));
    assert!(asks(app.update(at(1))));
    assert!(!asks(app.update(at(9))), "an answer is still due");
    app.update(streams(west_behind(), None));
    assert!(
        !asks(app.update(at(2))),
        "answered 1s after asking: not yet"
    );
    assert!(asks(app.update(at(6))));
    // A failed refresh keeps the last answer on screen, marked as old (the
    // failure is logged); the target is still judged on it for a while.
    app.update(Action::Streams(Loadable::Failed("timed out".into())));
    assert!(app.streams.ready().is_some_and(|s| s.len() == 1));
    assert!(app.log.iter().any(|l| l.contains("streams: timed out")));
    let keys = |app: &App| {
        app.overview()
            .into_iter()
            .find(|r| r.target == "lab-keys")
            .unwrap()
    };
    assert!(keys(&app).stream_lag.is_some());
    let text = format!("{}", fixture::draw(&app, 160, 48).backend());
    assert!(
        text.contains("streams as read at 21:31:05 UTC, not since: timed out"),
        "{text}"
    );
    // Half a minute on, a lag read then says nothing of now: back to points.
    app.update(at(40));
    assert!(keys(&app).stream_lag.is_none());
    assert_eq!(keys(&app).health, drtool::tui::model::Health::Breach);
}

#[test]
fn overview_with_a_region_down_and_one_loading() {
    let cfg = fixture::config();
    let (targets, regions) = drtool::tui::targets_of(&cfg, &drtool::source::registry());
    let mut app = App::new(fixture::now(), targets, regions, Default::default(), false);
    let mut points = fixture::points();
    let (east, rows) = points.remove(0);
    app.update(Action::Region(east, Loadable::Ready(rows)));
    app.update(Action::Region(
        "us-west-2".into(),
        Loadable::Failed("s3 us-west-2: connection refused (tcp connect error)".into()),
    ));
    snap("overview_region_down", &app);
    let t = fixture::draw(&app, 160, 48);
    assert_eq!(fixture::colour_of(&t, "us-west-2:unreachable"), Some(BAD));
    // Nothing waited: the drills and schedules still show as loading.
    let text = format!("{}", t.backend());
    assert!(text.contains("us-east-1:"), "{text}");
}

#[test]
fn points_point_and_filter() {
    let mut app = fixture::app();
    cmd(&mut app, Command::NextScreen);
    assert_eq!(app.screen, Screen::Points);
    snap("points_us_east_1", &app);
    cmd(&mut app, Command::NextRegion);
    cmd(&mut app, Command::Filter);
    typed(&mut app, "lab-orders");
    app.update(Action::Input(Input::Enter));
    snap("points_us_west_2_filtered", &app);
    assert!(app.points().iter().all(|p| p.target() == "lab-orders"));
    cmd(&mut app, Command::Open);
    assert!(matches!(app.views.last(), Some(View::Point { .. })));
    snap("point_manifest", &app);
    // Its last verify in this region passed: green.
    let t = fixture::draw(&app, 160, 48);
    assert_eq!(
        fixture::colour_of(&t, "passed at 2026-12-01 21:29 UTC"),
        Some(GOOD)
    );
}

#[test]
fn drills_and_a_drill() {
    let mut app = fixture::app();
    app.update(Action::Cmd(Command::Palette));
    typed(&mut app, "drills");
    app.update(Action::Input(Input::Enter));
    assert_eq!(app.screen, Screen::Drills);
    snap("drills", &app);
    cmd(&mut app, Command::Open);
    snap("drill", &app);
    cmd(&mut app, Command::Run);
    snap("drill_confirm_run", &app);
}

#[test]
fn reports_and_a_report() {
    let mut app = fixture::app();
    for _ in 0..3 {
        cmd(&mut app, Command::NextScreen);
    }
    assert_eq!(app.screen, Screen::Reports);
    snap("reports", &app);
    let t = fixture::draw(&app, 160, 48);
    assert_eq!(fixture::colour_of(&t, "FAILED"), Some(BAD));
    let effects = cmd(&mut app, Command::Open);
    let Some(Effect::LoadReport(run)) = effects.first() else {
        panic!("opening a run loads its report: {effects:?}")
    };
    snap("report_loading", &app);
    app.update(Action::Report(
        run.clone(),
        Loadable::Ready(Box::new(fixture::report())),
    ));
    snap("report", &app);
}

#[test]
fn schedules() {
    let mut app = fixture::app();
    cmd(&mut app, Command::PrevScreen);
    assert_eq!(app.screen, Screen::Schedules);
    snap("schedules", &app);
}

#[test]
fn help_and_palette() {
    let mut app = fixture::app();
    cmd(&mut app, Command::Help);
    snap("help", &app);
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Palette);
    typed(&mut app, "points ");
    snap("palette_regions", &app);
}

#[test]
fn read_only_hides_what_writes() {
    let mut app = fixture::app_with(fixture::points(), true);
    cmd(&mut app, Command::NextScreen);
    snap("points_read_only", &app);
    cmd(&mut app, Command::Help);
    snap("help_read_only", &app);
}

#[test]
fn the_restore_wizard() {
    let mut app = fixture::app();
    // The wizard from scratch: region, target, point, options.
    cmd(&mut app, Command::Restore);
    snap("wizard_region", &app);
    cmd(&mut app, Command::Down);
    cmd(&mut app, Command::Open);
    snap("wizard_target", &app);
    cmd(&mut app, Command::Down);
    cmd(&mut app, Command::Open);
    snap("wizard_point", &app);
    cmd(&mut app, Command::Open);
    snap("wizard_options", &app);
    cmd(&mut app, Command::Bottom);
    let effects = cmd(&mut app, Command::Open);
    assert!(
        matches!(effects.as_slice(), [Effect::PlanRestore(1, r)] if r.region == "us-west-2" && r.target == "lab-keys"),
        "{effects:?}"
    );
    snap("wizard_planning", &app);
    let plan = fixture::plan();
    app.update(Action::Plan(
        1,
        Ok(PlanView {
            lines: plan.describe(),
            destructive: plan.destructive,
            target: plan.target.clone(),
            plan: Arc::new(plan),
        }),
    ));
    snap("wizard_plan", &app);
    cmd(&mut app, Command::Open);
    typed(&mut app, "lab-k");
    snap("wizard_confirm", &app);
    let Some(View::Wizard(w)) = app.views.last() else {
        panic!("the wizard is open")
    };
    assert_eq!(w.step, WizardStep::Confirm);
    typed(&mut app, "eys");
    let effects = app.update(Action::Input(Input::Enter));
    assert!(matches!(effects.as_slice(), [Effect::Restore(_)]));
    snap("wizard_restoring", &app);
    app.update(Action::Restored(Ok(vec![
        "ok restore lab-keys: 18 keys created, 0 updated, 0 skipped (4866 bytes) in 41 ms".into(),
    ])));
    snap("wizard_restored", &app);
}

#[test]
fn status_colours() {
    let mut app = fixture::app();
    app.update(Action::Done(Err(Failure::new(
        ErrorClass::Integrity,
        "verify failed: lab-keys in us-west-2: sha256 mismatch",
    ))));
    let t = fixture::draw(&app, 80, 24);
    assert_eq!(fixture::colour_in_row(&t, 23, "verify failed"), Some(BAD));
    app.update(Action::Done(Ok(
        "verify ok: us-west-2: 1 point verified".into()
    )));
    let t = fixture::draw(&app, 80, 24);
    assert_eq!(fixture::colour_in_row(&t, 23, "verify ok"), Some(GOOD));
}

#[test]
fn an_invalid_drill_shows_its_error_in_place() {
    let mut app = fixture::app();
    let mut rows = app.drills.ready().cloned().unwrap();
    let bad = std::path::PathBuf::from("tests/fixtures/drills/bad-step-kind.yaml");
    let cfg =
        drtool::source::load_config(std::path::Path::new("tests/fixtures/drills/drtool.toml"))
            .unwrap();
    let error = drtool::drill::spec::load(&bad, &cfg, &drtool::source::registry())
        .err()
        .unwrap()
        .to_string();
    rows.push(drtool::tui::model::DrillRow {
        file: bad,
        name: "bad-step-kind".into(),
        info: Err(Failure::new(ErrorClass::BadInput, error)),
    });
    app.update(Action::Drills(Loadable::Ready(rows)));
    app.update(Action::Cmd(Command::Palette));
    typed(&mut app, "drills");
    app.update(Action::Input(Input::Enter));
    cmd(&mut app, Command::Bottom);
    snap("drills_with_an_invalid_one", &app);
    let t = fixture::draw(&app, 160, 48);
    assert_eq!(fixture::colour_of(&t, "INVALID"), Some(BAD));
    cmd(&mut app, Command::Open);
    let t = fixture::draw(&app, 160, 48);
    let text = format!("{}", t.backend());
    assert!(text.contains("bad-step-kind.yaml:10:5:"), "{text}");
    assert!(
        cmd(&mut app, Command::Run).is_empty(),
        "an invalid drill does not run"
    );
    assert!(
        app.status
            .as_ref()
            .is_some_and(|(s, e)| *e && s.contains("not valid"))
    );
}

#[test]
fn the_log_viewer_shows_the_newest_lines_and_searches_as_you_type() {
    let mut app = fixture::app();
    for i in 0..60 {
        let line = match i % 20 {
            7 => format!("warning: store of us-west-2 did not answer (try {i})"),
            _ => format!("verify of 20261201T2129{i:02}Z-7f3a: ok, 2 objects checked"),
        };
        app.update(Action::Log(line));
    }
    let effects = cmd(&mut app, Command::Logs);
    assert!(
        effects.iter().any(|e| matches!(e, Effect::ReadLogFile)),
        "the log file is read in the background"
    );
    assert_eq!(app.breadcrumb(), "Overview › logs › activity");
    // The newest lines, as `tail -f` would show them.
    let text = format!("{}", fixture::draw(&app, 80, 24).backend());
    assert!(text.contains("T212959Z"), "{text}");
    assert!(!text.contains("T212900Z"), "{text}");
    assert!(text.contains("of 60, newest"), "{text}");
    snap("logs_newest", &app);

    // `/` searches as it is typed, from the first line shown on.
    fixture::draw(&app, 80, 24);
    cmd(&mut app, Command::Filter);
    assert!(app.wants_text());
    typed(&mut app, "DID NOT");
    let hit = |app: &App| match app.views.last() {
        Some(View::Logs(l)) => l.hit,
        _ => None,
    };
    assert_eq!(hit(&app), Some(47), "the match among the lines shown");
    app.update(Action::Input(Input::Enter));
    assert!(!app.wants_text());
    let t = fixture::draw(&app, 80, 24);
    insta::assert_snapshot!("logs_search_80x24", t.backend());
    // Marked: black on the accent colour.
    assert_eq!(
        fixture::colour_of(&t, "did not"),
        Some(ratatui::style::Color::Black)
    );
    let marked = t
        .backend()
        .buffer()
        .content()
        .iter()
        .skip(80) // the title bar's " drtool "
        .filter(|c| c.bg == ACCENT)
        .count();
    assert_eq!(marked, "did not".len(), "one match on screen, marked");
    cmd(&mut app, Command::NextMatch);
    assert_eq!(hit(&app), Some(7), "n wraps round to the first");
    cmd(&mut app, Command::PrevMatch);
    assert_eq!(hit(&app), Some(47), "N wraps round backwards");
    cmd(&mut app, Command::PrevMatch);
    assert_eq!(hit(&app), Some(27));
    let text = format!("{}", fixture::draw(&app, 80, 24).backend());
    assert!(
        text.contains("(try 27)"),
        "the match is scrolled to: {text}"
    );
    cmd(&mut app, Command::Filter);
    typed(&mut app, "x-nowhere");
    app.update(Action::Input(Input::Enter));
    let text = format!("{}", fixture::draw(&app, 80, 24).backend());
    assert!(text.contains("(not found)"), "{text}");

    // `l` again: the log file, as read.
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Logs);
    assert_eq!(app.breadcrumb(), "Overview › logs › ui.log");
    let text = format!("{}", fixture::draw(&app, 60, 15).backend());
    assert!(text.contains("reading..."), "{text}");
    app.update(Action::LogFile(Err(Failure {
        class: drtool::error::ErrorClass::Failed,
        message: "cannot read /var/log/ui.log: No such file or directory (os error 2)".into(),
    })));
    let text = format!("{}", fixture::draw(&app, 60, 15).backend());
    assert!(text.contains("No such file"), "{text}");
    app.update(Action::LogFile(Ok(vec![
        "2026-12-01T21:30:00Z  INFO drtool: dashboard started".into(),
    ])));
    let t = fixture::draw(&app, 60, 15);
    insta::assert_snapshot!("logs_file_60x15", t.backend());
    // esc closes it (no search left to clear).
    cmd(&mut app, Command::Back);
    assert_eq!(app.breadcrumb(), "Overview");
}

/// What `drtool config check` found, as the dashboard's probe returns it.
fn probed(west_etcd_down: bool) -> Action {
    use drtool::engine::kind::Reachability;
    let r = |region: &str, what: &str, reachable: bool, detail: &str| Reachability {
        region: region.into(),
        what: what.into(),
        address: "127.0.0.1".into(),
        reachable,
        misconfigured: false,
        detail: detail.into(),
    };
    Action::Health(Loadable::Ready(vec![
        r("us-east-1", "store", true, "ok"),
        r("us-east-1", "target lab-etcd", true, "ok"),
        r("us-east-1", "target lab-keys", true, "ok"),
        r("us-west-2", "store", true, "ok"),
        r(
            "us-west-2",
            "target lab-etcd",
            !west_etcd_down,
            if west_etcd_down {
                "etcd at http://127.0.0.1:22379: connection refused (is etcd running there?)"
            } else {
                "ok"
            },
        ),
        r("us-west-2", "target lab-keys", true, "ok"),
    ]))
}

#[test]
fn the_overview_shows_every_endpoint_that_does_not_answer_in_config_checks_words() {
    let mut app = fixture::app();
    // Asked at once, then every 15 s once answered, never twice at a time.
    let asks = |e: Vec<Effect>| e.iter().any(|e| matches!(e, Effect::LoadHealth));
    assert!(asks(app.update(Action::Tick(fixture::now()))));
    let later = fixture::now() + chrono::Duration::seconds(20);
    assert!(!asks(app.update(Action::Tick(later))), "not while one runs");
    let text = format!("{}", fixture::draw(&app, 160, 48).backend());
    assert!(text.contains("; endpoints: checking..."), "{text}");
    app.update(probed(false));
    assert!(asks(app.update(Action::Tick(later))));
    app.update(probed(false));
    let t = fixture::draw(&app, 160, 48);
    assert_eq!(
        fixture::colour_of(&t, "endpoints: 2 of 2 answer"),
        Some(GOOD)
    );

    // The west etcd is killed: said in red under its region, and in the log.
    let much_later = later + chrono::Duration::seconds(20);
    assert!(asks(app.update(Action::Tick(much_later))));
    app.update(probed(true));
    snap("overview_endpoint_down", &app);
    let t = fixture::draw(&app, 160, 48);
    assert_eq!(
        fixture::colour_of(&t, "endpoints: 1 of 2 answer"),
        Some(BAD)
    );
    assert_eq!(fixture::colour_of(&t, "target lab-etcd DOWN"), Some(BAD));
    let text = format!("{}", t.backend());
    assert!(
        text.contains("connection refused (is etcd running there?)"),
        "{text}"
    );
    assert!(
        app.log
            .iter()
            .any(|l| l.contains("target lab-etcd in us-west-2 stopped answering")),
        "{:?}",
        app.log
    );
}

#[test]
fn text_that_does_not_fit_is_cut_after_a_whole_word() {
    use drtool::tui::view::fit_words;
    assert_eq!(
        fit_words("filter the list (/! inverts)", 40),
        "filter the list (/! inverts)"
    );
    assert_eq!(
        fit_words("filter the list (/! inverts)", 22),
        "filter the list (/!…"
    );
    assert_eq!(
        fit_words("filter the list (/! inverts)", 16),
        "filter the list…"
    );
    assert_eq!(fit_words("reload from the stores", 11), "reload…");
    assert_eq!(fit_words("reload from the stores", 12), "reload from…");
    assert_eq!(fit_words("superlongword and more", 6), "super…");
    assert_eq!(fit_words("anything", 0), "");
    // The help on a short terminal: two columns, no description cut inside a word.
    let mut app = fixture::app();
    cmd(&mut app, Command::Help);
    let text = format!("{}", fixture::draw(&app, 80, 24).backend());
    assert!(
        text.contains("filter the list…") || text.contains("filter the list (/!"),
        "{text}"
    );
    assert!(!text.contains("inver "), "{text}");
}

#[test]
fn an_empty_store_is_said_in_amber_not_as_zero_bytes() {
    let mut points = fixture::points();
    for (_, rows) in points.iter_mut().filter(|(r, _)| r == "us-west-2") {
        rows.clear();
    }
    let app = fixture::app_with(points, false);
    let t = fixture::draw(&app, 160, 48);
    let text = format!("{}", t.backend());
    assert!(!text.contains("0 points, 0 B"), "{text}");
    assert_eq!(
        fixture::colour_of(&t, "no points: nothing stored here yet"),
        Some(WARN)
    );
}
