//! `update` driven directly: navigation, the filter, the palette's
//! completion, the restore wizard, typed confirmation, aborting a drill,
//! read-only mode. The points are the lab listing recorded in
//! tests/fixtures/tui/points.json.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::archive::Manifest;
use crate::drill::runner::DrillEvent;

const POINTS: &str = include_str!("../../../tests/fixtures/tui/points.json");

fn now() -> DateTime<Utc> {
    "2026-12-01T21:30:56Z".parse().unwrap()
}

fn target(name: &str, kind: &str) -> TargetInfo {
    TargetInfo {
        name: name.into(),
        kind: kind.into(),
        home: "us-east-1".into(),
        copy_to: vec!["us-west-2".into()],
        // As the RDS kind declares its restore flags.
        switches: if kind == "rds" {
            vec!["from-dump".into()]
        } else {
            Vec::new()
        },
        streams: false,
    }
}

fn drill(name: &str) -> DrillRow {
    DrillRow {
        file: PathBuf::from(format!("drills/{name}.yaml")),
        name: name.into(),
        info: Ok(DrillInfo {
            hypothesis: format!("{name} recovers"),
            rto_ms: 120_000,
            rpo_ms: 30_000,
            targets: vec!["lab-keys".into()],
            regions: vec!["us-east-1".into(), "us-west-2".into()],
            probes: vec![("west".into(), "after".into())],
            steps: vec![
                StepLine {
                    name: "lose-east".into(),
                    kind: "fault".into(),
                    depth: 0,
                    summary: "FAULT: lose region us-east-1".into(),
                    restores: None,
                },
                StepLine {
                    name: "restore-west".into(),
                    kind: "restore".into(),
                    depth: 0,
                    summary: "restore lab-keys in us-west-2".into(),
                    restores: Some(("lab-keys".into(), "us-west-2".into())),
                },
            ],
        }),
    }
}

fn app_with(read_only: bool) -> App {
    let targets = vec![
        target("lab-etcd", "etcd"),
        target("lab-keys", "etcd"),
        target("lab-orders", "rds"),
        target("lab-shop", "namespace"),
    ];
    let mut app = App::new(
        now(),
        targets,
        vec!["us-east-1".into(), "us-west-2".into()],
        Keymap::default(),
        read_only,
    );
    let listed: Vec<serde_json::Value> = serde_json::from_str(POINTS).unwrap();
    for r in listed {
        let region = r["region"].as_str().unwrap().to_string();
        let rows = r["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| PointRow {
                region: region.clone(),
                payload_text: String::new(),
                consistency_text: String::new(),
                external: Vec::new(),
                manifest: Arc::new(serde_json::from_value::<Manifest>(m.clone()).unwrap()),
                restore_test: None,
                verified: None,
            })
            .collect();
        app.update(Action::Region(region, Loadable::Ready(rows)));
    }
    app.update(Action::Drills(Loadable::Ready(vec![
        drill("etcd-region-failover"),
        drill("namespace-loss"),
    ])));
    app.update(Action::Reports(Loadable::Ready(Vec::new())));
    app.update(Action::Schedules(Loadable::Ready(Vec::new())));
    app
}

fn app() -> App {
    app_with(false)
}

fn cmd(app: &mut App, c: Command) -> Vec<Effect> {
    app.update(Action::Cmd(c))
}

fn input(app: &mut App, i: Input) -> Vec<Effect> {
    app.update(Action::Input(i))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        input(app, Input::Char(c));
    }
}

fn palette(app: &mut App, line: &str) -> Vec<Effect> {
    cmd(app, Command::Palette);
    typed(app, line);
    input(app, Input::Enter)
}

fn error(app: &App) -> Option<&str> {
    app.status
        .as_ref()
        .filter(|(_, e)| *e)
        .map(|(t, _)| t.as_str())
}

#[test]
fn tab_walks_the_screens_and_wraps() {
    let mut app = app();
    let mut seen = vec![app.screen];
    for _ in 0..5 {
        cmd(&mut app, Command::NextScreen);
        seen.push(app.screen);
    }
    assert_eq!(
        seen,
        [
            Screen::Overview,
            Screen::Points,
            Screen::Drills,
            Screen::Reports,
            Screen::Schedules,
            Screen::Overview
        ]
    );
    cmd(&mut app, Command::PrevScreen);
    assert_eq!(app.screen, Screen::Schedules);
}

#[test]
fn rows_move_within_bounds_and_open_and_back_follow_the_breadcrumb() {
    let mut app = app();
    cmd(&mut app, Command::NextScreen);
    assert_eq!(app.breadcrumb(), "Points › us-east-1");
    cmd(&mut app, Command::Up);
    assert_eq!(app.selected(), 0, "up at the top stays");
    cmd(&mut app, Command::Bottom);
    assert_eq!(app.selected(), app.points().len() - 1);
    cmd(&mut app, Command::Down);
    assert_eq!(
        app.selected(),
        app.points().len() - 1,
        "down at the bottom stays"
    );
    cmd(&mut app, Command::Top);
    let newest = app.points()[0].id().to_string();
    cmd(&mut app, Command::Open);
    assert_eq!(app.breadcrumb(), format!("Points › us-east-1 › {newest}"));
    cmd(&mut app, Command::Back);
    assert!(app.views.is_empty());
    cmd(&mut app, Command::NextRegion);
    assert_eq!(app.breadcrumb(), "Points › us-west-2");
    cmd(&mut app, Command::NextRegion);
    assert_eq!(app.breadcrumb(), "Points › us-east-1", "regions wrap");
}

#[test]
fn open_on_the_overview_shows_that_targets_points() {
    let mut app = app();
    cmd(&mut app, Command::Down);
    let target = app.overview()[1].target.clone();
    cmd(&mut app, Command::Open);
    assert_eq!(app.screen, Screen::Points);
    assert!(!app.points().is_empty());
    assert!(app.points().iter().all(|p| p.target() == target));
}

#[test]
fn the_filter_keeps_matches_and_bang_inverts_it() {
    let mut app = app();
    cmd(&mut app, Command::NextScreen);
    let all = app.points().len();
    cmd(&mut app, Command::Filter);
    typed(&mut app, "orders");
    input(&mut app, Input::Enter);
    let orders = app.points().len();
    assert!(orders > 0 && orders < all);
    assert!(app.points().iter().all(|p| p.target() == "lab-orders"));
    cmd(&mut app, Command::Filter);
    typed(&mut app, "!orders");
    input(&mut app, Input::Enter);
    assert_eq!(app.points().len(), all - orders);
    assert!(app.points().iter().all(|p| p.target() != "lab-orders"));
    cmd(&mut app, Command::Back);
    assert_eq!(app.points().len(), all, "esc clears the filter");
    cmd(&mut app, Command::Filter);
    typed(&mut app, "xyz");
    assert!(app.points().is_empty(), "it applies as typed");
    input(&mut app, Input::Esc);
    assert_eq!(app.points().len(), all, "esc drops it");
}

#[test]
fn the_palette_completes_commands_and_their_arguments() {
    let app = app();
    assert_eq!(app.completions("dr"), ["drills", "drill"]);
    assert_eq!(
        app.completions("points "),
        ["points us-east-1", "points us-west-2"]
    );
    assert_eq!(app.completions("points us-w"), ["points us-west-2"]);
    assert_eq!(
        app.completions("drill "),
        ["drill etcd-region-failover", "drill namespace-loss"]
    );
    assert_eq!(app.completions("drill n"), ["drill namespace-loss"]);
    assert!(app.completions("zzz").is_empty());
}

#[test]
fn the_palette_runs_what_it_completes_to() {
    let mut app = app();
    palette(&mut app, "points us-w");
    assert_eq!(app.breadcrumb(), "Points › us-west-2");
    palette(&mut app, "drill etc");
    assert_eq!(app.breadcrumb(), "Drills › drill etcd-region-failover");
    // Tab fills in the selected completion; down picks the next one.
    cmd(&mut app, Command::Palette);
    typed(&mut app, "drill ");
    input(&mut app, Input::Down);
    input(&mut app, Input::Tab);
    assert!(
        matches!(&app.overlay, Some(Overlay::Palette { input, .. }) if input == "drill namespace-loss")
    );
    // Another tab cycles through what "drill " completes to.
    input(&mut app, Input::Tab);
    assert!(
        matches!(&app.overlay, Some(Overlay::Palette { input, .. }) if input == "drill etcd-region-failover"),
        "{:?}",
        app.overlay
    );
    input(&mut app, Input::Tab);
    assert!(
        matches!(&app.overlay, Some(Overlay::Palette { input, .. }) if input == "drill namespace-loss")
    );
    input(&mut app, Input::Enter);
    assert_eq!(app.breadcrumb(), "Drills › drill namespace-loss");
    palette(&mut app, "bogus");
    assert!(
        error(&app).is_some_and(|e| e.contains("unknown command \"bogus\"")),
        "{:?}",
        app.status
    );
    palette(&mut app, "points mars-1");
    assert_eq!(
        error(&app),
        Some("no region mars-1: the config has us-east-1, us-west-2")
    );
    palette(&mut app, "q");
    assert!(app.quit);
}

fn wizard(app: &App) -> &Wizard {
    match app.views.last() {
        Some(View::Wizard(w)) => w,
        other => panic!("the wizard is not open: {other:?}"),
    }
}

fn plan_view(target: &str) -> PlanView {
    let plan: RestorePlan =
        serde_json::from_str(include_str!("../../../tests/fixtures/tui/plan.json")).unwrap();
    PlanView {
        lines: plan.describe(),
        destructive: plan.destructive,
        target: target.into(),
        plan: Arc::new(plan),
    }
}

#[test]
fn the_restore_wizard_walks_region_target_point_options_plan() {
    let mut app = app();
    cmd(&mut app, Command::Restore);
    assert_eq!(wizard(&app).step, WizardStep::Region);
    assert_eq!(app.wizard_choices(wizard(&app)), ["us-east-1", "us-west-2"]);
    cmd(&mut app, Command::Down);
    cmd(&mut app, Command::Open);
    assert_eq!(wizard(&app).region.as_deref(), Some("us-west-2"));
    assert_eq!(wizard(&app).step, WizardStep::Target);
    cmd(&mut app, Command::Down);
    cmd(&mut app, Command::Open);
    assert_eq!(wizard(&app).target.as_deref(), Some("lab-keys"));
    let choices = app.wizard_choices(wizard(&app));
    assert_eq!(choices[0], "newest point");
    assert!(
        choices.len() > 2,
        "lab-keys' points in us-west-2 are listed: {choices:?}"
    );
    // esc goes back one step, keeping what was chosen.
    cmd(&mut app, Command::Back);
    assert_eq!(wizard(&app).step, WizardStep::Target);
    cmd(&mut app, Command::Down);
    cmd(&mut app, Command::Open);
    cmd(&mut app, Command::Down);
    cmd(&mut app, Command::Open);
    let picked = choices[1].clone();
    assert_eq!(wizard(&app).point.as_deref(), Some(picked.as_str()));
    assert_eq!(wizard(&app).step, WizardStep::Options);
    // Options: the existing-data policy cycles; rds targets get from_dump.
    cmd(&mut app, Command::Open);
    assert_eq!(wizard(&app).existing, Some(Existing::Skip));
    cmd(&mut app, Command::Open);
    assert_eq!(wizard(&app).existing, Some(Existing::Overwrite));
    assert_eq!(
        app.wizard_choices(wizard(&app)).len(),
        2,
        "no from-dump for etcd"
    );
    cmd(&mut app, Command::Bottom);
    let effects = cmd(&mut app, Command::Open);
    let [Effect::PlanRestore(1, req)] = effects.as_slice() else {
        panic!("making the plan asks the engine: {effects:?}")
    };
    assert_eq!(
        (req.region.as_str(), req.target.as_str()),
        ("us-west-2", "lab-keys")
    );
    assert_eq!(req.point, PointChoice::Id(picked.parse().unwrap()));
    assert_eq!(req.existing, Some(Existing::Overwrite));
    assert_eq!(wizard(&app).step, WizardStep::Plan);
    assert_eq!(wizard(&app).plan, Loadable::Loading);
    // Enter does nothing until there is a plan; a failed plan says why.
    cmd(&mut app, Command::Open);
    assert_eq!(wizard(&app).step, WizardStep::Plan);
    app.update(Action::Plan(1, Err("us-west-2 is unreachable".into())));
    assert_eq!(
        wizard(&app).plan,
        Loadable::Failed("us-west-2 is unreachable".into())
    );
    cmd(&mut app, Command::Open);
    assert_eq!(
        wizard(&app).step,
        WizardStep::Plan,
        "no confirming a failed plan"
    );
}

#[test]
fn the_wizard_offers_the_switches_of_the_targets_kind_and_sends_those_on() {
    let mut app = app();
    cmd(&mut app, Command::Restore);
    cmd(&mut app, Command::Open);
    let at = app
        .wizard_choices(wizard(&app))
        .iter()
        .position(|t| t == "lab-orders")
        .expect("lab-orders is offered");
    for _ in 0..at {
        cmd(&mut app, Command::Down);
    }
    cmd(&mut app, Command::Open);
    assert_eq!(wizard(&app).target.as_deref(), Some("lab-orders"));
    cmd(&mut app, Command::Open);
    assert_eq!(wizard(&app).step, WizardStep::Options);
    assert_eq!(
        app.wizard_choices(wizard(&app)),
        [
            "existing: fail if anything exists (the default; enter: skip, overwrite)",
            "from dump: no",
            "make the plan"
        ]
    );
    cmd(&mut app, Command::Down);
    cmd(&mut app, Command::Open);
    assert_eq!(app.wizard_choices(wizard(&app))[1], "from dump: yes");
    cmd(&mut app, Command::Open);
    assert_eq!(app.wizard_choices(wizard(&app))[1], "from dump: no");
    cmd(&mut app, Command::Open);
    cmd(&mut app, Command::Bottom);
    let effects = cmd(&mut app, Command::Open);
    let [Effect::PlanRestore(_, ask)] = effects.as_slice() else {
        panic!("making the plan asks the engine: {effects:?}")
    };
    assert_eq!(ask.target, "lab-orders");
    assert_eq!(ask.flags, FlagValues::default().switch("from-dump"));
    assert_eq!(ask.existing, None);
    // Back to the targets: another target starts with its kind's switches off.
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Back);
    assert_eq!(wizard(&app).step, WizardStep::Target);
    cmd(&mut app, Command::Top);
    cmd(&mut app, Command::Open);
    assert_eq!(wizard(&app).on, FlagValues::default());
}

#[test]
fn a_restore_runs_only_after_the_target_name_is_typed_exactly() {
    let mut app = app();
    cmd(&mut app, Command::NextScreen);
    cmd(&mut app, Command::Restore);
    let w = wizard(&app);
    assert_eq!(
        w.step,
        WizardStep::Options,
        "a selected point skips to the options"
    );
    assert!(w.region.is_some() && w.target.is_some() && w.point.is_some());
    cmd(&mut app, Command::Bottom);
    cmd(&mut app, Command::Open);
    app.update(Action::Plan(1, Ok(plan_view("lab-keys"))));
    cmd(&mut app, Command::Open);
    assert_eq!(wizard(&app).step, WizardStep::Confirm);
    assert!(app.wants_text(), "keys go to the confirmation");
    typed(&mut app, "lab-key");
    assert!(
        input(&mut app, Input::Enter).is_empty(),
        "a prefix is not the name"
    );
    assert!(error(&app).is_some_and(|e| e.contains("type lab-keys exactly")));
    assert_eq!(wizard(&app).typed, "", "a wrong name is cleared");
    typed(&mut app, "LAB-KEYS");
    assert!(input(&mut app, Input::Enter).is_empty(), "case matters");
    typed(&mut app, "lab-keyss");
    input(&mut app, Input::Backspace);
    let effects = input(&mut app, Input::Enter);
    assert!(
        matches!(effects.as_slice(), [Effect::Restore(_)]),
        "{effects:?}"
    );
    assert_eq!(wizard(&app).step, WizardStep::Running);
    // Esc while it runs does not close the wizard; the result does.
    cmd(&mut app, Command::Back);
    assert_eq!(wizard(&app).step, WizardStep::Running);
    let effects = app.update(Action::Restored(Ok(vec![
        "OK restore lab-keys: 18 keys written".into(),
    ])));
    assert!(
        matches!(effects.as_slice(), [Effect::LoadAll]),
        "the points are reloaded"
    );
    assert!(matches!(&wizard(&app).result, Loadable::Ready(l) if l.len() == 1));
    cmd(&mut app, Command::Open);
    assert!(app.views.is_empty(), "enter closes the finished wizard");
}

fn running(app: &mut App) {
    palette(app, "drills");
    cmd(app, Command::Run);
    assert!(
        matches!(&app.overlay, Some(Overlay::Confirm(c)) if c.title.contains("etcd-region-failover"))
    );
    let effects = input(app, Input::Char('y'));
    assert!(
        matches!(effects.as_slice(), [Effect::RunDrill(f)] if f.ends_with("etcd-region-failover.yaml"))
    );
    assert_eq!(app.views.last(), Some(&View::Live));
}

fn event(kind: DrillEventKind) -> Action {
    Action::Drill(Box::new(DrillEvent {
        run: "20261201t213031z-7ada72c3".into(),
        at_ms: 1_000,
        at: now(),
        kind,
    }))
}

#[test]
fn running_a_drill_asks_first_and_no_does_nothing() {
    let mut app = app();
    palette(&mut app, "drills");
    cmd(&mut app, Command::Run);
    assert!(input(&mut app, Input::Char('n')).is_empty());
    assert!(app.overlay.is_none() && app.live.is_none());
    cmd(&mut app, Command::Run);
    assert!(input(&mut app, Input::Esc).is_empty());
    assert!(app.live.is_none());
    running(&mut app);
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Run);
    assert!(error(&app).is_some_and(|e| e.contains("already running")));
}

#[test]
fn abort_asks_then_shows_the_cleanup_running() {
    let mut app = app();
    running(&mut app);
    // The drill waits before its next step while the dialog is up.
    let effects = cmd(&mut app, Command::Abort);
    assert!(matches!(effects.as_slice(), [Effect::HoldDrill(true)]));
    assert!(matches!(&app.overlay, Some(Overlay::Confirm(c)) if c.then == ConfirmThen::AbortDrill));
    let effects = input(&mut app, Input::Char('n'));
    assert!(
        matches!(effects.as_slice(), [Effect::HoldDrill(false)]),
        "no lets it go on: {effects:?}"
    );
    assert!(!app.live.as_ref().unwrap().aborting);
    cmd(&mut app, Command::Abort);
    let effects = input(&mut app, Input::Char('y'));
    assert!(matches!(effects.as_slice(), [Effect::AbortDrill]));
    assert!(app.live.as_ref().unwrap().aborting);
    app.update(event(DrillEventKind::Cleanup {
        what: "canary etcd:lab-keys in us-east-1".into(),
        ok: true,
        message: "11 markers removed".into(),
    }));
    let log = &app.live.as_ref().unwrap().log;
    assert!(
        log.back()
            .is_some_and(|l| l.contains("cleanup canary etcd:lab-keys")),
        "{log:?}"
    );
    app.update(event(DrillEventKind::Finished {
        verdict: DrillVerdict::Aborted,
        rto_ms: None,
        rpo_ms: None,
    }));
    assert!(!app.live.as_ref().unwrap().running());
    cmd(&mut app, Command::Abort);
    assert!(error(&app).is_some_and(|e| e.contains("no drill is running")));
}

#[test]
fn quitting_during_a_drill_aborts_it_first_and_quits_after_its_report() {
    let mut app = app();
    running(&mut app);
    let effects = cmd(&mut app, Command::Quit);
    assert!(matches!(effects.as_slice(), [Effect::HoldDrill(true)]));
    assert!(!app.quit);
    assert!(
        matches!(&app.overlay, Some(Overlay::Confirm(c)) if c.then == ConfirmThen::AbortAndQuit)
    );
    let effects = input(&mut app, Input::Char('y'));
    assert!(matches!(effects.as_slice(), [Effect::AbortDrill]));
    assert!(!app.quit, "not before the cleanup is over");
    app.update(Action::DrillReported(
        Ok("20261201t213031z-7ada72c3".into()),
    ));
    assert!(app.quit);
}

#[test]
fn a_manual_step_is_answered_on_screen() {
    let mut app = app();
    running(&mut app);
    app.update(Action::Manual {
        step: "declare-outage".into(),
        instruction: "Declare the outage.".into(),
    });
    assert!(app.wants_text());
    assert!(
        input(&mut app, Input::Char('x')).is_empty(),
        "other keys wait"
    );
    let effects = input(&mut app, Input::Enter);
    assert!(matches!(effects.as_slice(), [Effect::AnswerManual(true)]));
    assert!(app.overlay.is_none());
    app.update(Action::Manual {
        step: "declare-outage".into(),
        instruction: "Declare the outage.".into(),
    });
    // a asks first (the drill already waits on the step); no brings the
    // prompt back, yes aborts.
    assert!(input(&mut app, Input::Char('a')).is_empty());
    assert!(matches!(&app.overlay, Some(Overlay::Confirm(c)) if c.then == ConfirmThen::AbortDrill));
    input(&mut app, Input::Char('n'));
    assert!(
        matches!(&app.overlay, Some(Overlay::Manual { .. })),
        "{:?}",
        app.overlay
    );
    input(&mut app, Input::Char('a'));
    let effects = input(&mut app, Input::Char('y'));
    assert!(matches!(effects.as_slice(), [Effect::AbortDrill]));
    assert!(app.live.as_ref().unwrap().aborting);
    assert!(app.overlay.is_none() && app.manual.is_none());
}

#[test]
fn a_manual_step_waits_behind_the_palette_so_its_enter_is_not_taken() {
    let mut app = app();
    running(&mut app);
    cmd(&mut app, Command::Palette);
    typed(&mut app, "overview");
    app.update(Action::Manual {
        step: "declare-outage".into(),
        instruction: "Declare the outage.".into(),
    });
    assert!(matches!(&app.overlay, Some(Overlay::Palette { .. })));
    let effects = input(&mut app, Input::Enter);
    assert!(
        effects.is_empty(),
        "the enter ran the palette, not the step: {effects:?}"
    );
    assert_eq!(app.screen, Screen::Overview);
    assert!(matches!(&app.overlay, Some(Overlay::Manual { step, .. }) if step == "declare-outage"));
    let effects = input(&mut app, Input::Enter);
    assert!(matches!(effects.as_slice(), [Effect::AnswerManual(true)]));
}

#[test]
fn a_plan_that_is_no_longer_asked_for_is_dropped() {
    let mut app = app();
    cmd(&mut app, Command::NextScreen);
    cmd(&mut app, Command::Restore);
    cmd(&mut app, Command::Bottom);
    cmd(&mut app, Command::Open);
    // Back to the options, a different choice, a new plan asked for.
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Top);
    cmd(&mut app, Command::Open);
    cmd(&mut app, Command::Bottom);
    let effects = cmd(&mut app, Command::Open);
    assert!(
        matches!(effects.as_slice(), [Effect::PlanRestore(2, _)]),
        "{effects:?}"
    );
    app.update(Action::Plan(1, Ok(plan_view("lab-keys"))));
    assert_eq!(
        wizard(&app).plan,
        Loadable::Loading,
        "the first plan's late answer is not shown"
    );
    app.update(Action::Plan(2, Ok(plan_view("lab-keys"))));
    assert!(matches!(wizard(&app).plan, Loadable::Ready(_)));
}

#[test]
fn a_drill_that_ends_without_its_finished_event_still_ends() {
    let mut app = app();
    running(&mut app);
    app.update(Action::DrillReported(Err(
        "cannot read the drill file".into()
    )));
    assert!(!app.live.as_ref().unwrap().running());
    cmd(&mut app, Command::Quit);
    assert!(app.quit, "no abort to confirm");
}

#[test]
fn the_finished_drills_report_opens_with_enter() {
    let mut app = app();
    running(&mut app);
    app.update(Action::DrillReported(
        Ok("20261201t213031z-7ada72c3".into()),
    ));
    let effects = cmd(&mut app, Command::Open);
    assert!(
        matches!(effects.as_slice(), [Effect::LoadReport(r)] if r == "20261201t213031z-7ada72c3")
    );
    assert!(matches!(app.views.last(), Some(View::Report { .. })));
}

#[test]
fn read_only_refuses_every_change_and_still_navigates() {
    let mut app = app_with(true);
    cmd(&mut app, Command::NextScreen);
    for c in [Command::Verify, Command::Copy, Command::Restore] {
        assert!(cmd(&mut app, c).is_empty(), "{c:?}");
        assert!(
            error(&app).is_some_and(|e| e.starts_with("read-only")),
            "{c:?}: {:?}",
            app.status
        );
        assert!(app.views.is_empty(), "{c:?} opened nothing");
    }
    cmd(&mut app, Command::Open);
    assert!(
        matches!(app.views.last(), Some(View::Point { .. })),
        "opening a point reads only"
    );
    cmd(&mut app, Command::Back);
    palette(&mut app, "drills");
    assert!(cmd(&mut app, Command::Run).is_empty());
    assert!(
        app.overlay.is_none(),
        "no confirmation to run is even offered"
    );
    assert!(cmd(&mut app, Command::Abort).is_empty());
    cmd(&mut app, Command::DryRun);
    assert!(
        matches!(app.views.last(), Some(View::Drill { .. })),
        "a dry run changes nothing"
    );
    assert!(
        !app.keymap
            .help(true)
            .iter()
            .any(|(_, h)| h.contains("restore"))
    );
}

#[test]
fn a_region_that_fails_to_list_is_shown_in_place() {
    let mut app = app();
    app.update(Action::Region(
        "us-west-2".into(),
        Loadable::Failed("connection refused".into()),
    ));
    let rows = app.overview();
    assert!(rows.iter().all(|r| {
        r.regions
            .iter()
            .any(|(n, h)| n == "us-west-2" && *h == model::Holding::Unreachable)
    }));
    assert!(
        app.log
            .back()
            .is_some_and(|l| l.contains("us-west-2: connection refused"))
    );
    cmd(&mut app, Command::Refresh);
    assert!(
        app.regions.iter().all(|r| r.points == Loadable::Loading),
        "reload shows loading"
    );
}

#[test]
fn a_reload_on_the_drills_screen_says_how_many_are_valid() {
    let mut app = app();
    palette(&mut app, "drills");
    let effects = cmd(&mut app, Command::Refresh);
    assert!(matches!(effects.as_slice(), [Effect::LoadAll]));
    let mut rows = vec![drill("etcd-region-failover")];
    rows.push(DrillRow {
        file: PathBuf::from("drills/bad.yaml"),
        name: "bad".into(),
        info: Err("drills/bad.yaml:3:1: unknown field `stepz`".into()),
    });
    app.update(Action::Drills(Loadable::Ready(rows)));
    assert_eq!(
        error(&app),
        Some("2 drill files validated: 1 valid, 1 invalid")
    );
    // A reload elsewhere says nothing of drills.
    palette(&mut app, "overview");
    cmd(&mut app, Command::Refresh);
    app.update(Action::Drills(Loadable::Ready(vec![drill(
        "etcd-region-failover",
    )])));
    assert!(app.status.is_none());
}

#[test]
fn a_plan_asked_by_a_closed_wizard_is_not_shown_in_the_next() {
    let mut app = app();
    cmd(&mut app, Command::NextScreen);
    cmd(&mut app, Command::Restore);
    cmd(&mut app, Command::Bottom);
    assert!(matches!(
        cmd(&mut app, Command::Open).as_slice(),
        [Effect::PlanRestore(1, _)]
    ));
    cmd(&mut app, Command::Quit);
    assert!(app.views.is_empty(), "q closes the first wizard");
    assert!(!app.quit);
    cmd(&mut app, Command::Restore);
    cmd(&mut app, Command::Bottom);
    assert!(matches!(
        cmd(&mut app, Command::Open).as_slice(),
        [Effect::PlanRestore(2, _)]
    ));
    app.update(Action::Plan(1, Ok(plan_view("lab-keys"))));
    assert_eq!(wizard(&app).plan, Loadable::Loading);
}

fn step_finished(step: &str) -> Action {
    event(DrillEventKind::StepFinished {
        step: step.into(),
        outcome: crate::report::StepOutcome::Failed,
        message: "timed out".into(),
        duration_ms: 1000,
    })
}

#[test]
fn a_manual_prompt_goes_when_its_step_ends_and_the_next_shows_its_own_text() {
    let mut app = app();
    running(&mut app);
    app.update(Action::Manual {
        step: "first".into(),
        instruction: "Do the first thing.".into(),
    });
    app.update(step_finished("first"));
    assert!(
        app.overlay.is_none() && app.manual.is_none(),
        "a timed-out step asks no more"
    );
    app.update(Action::Manual {
        step: "first".into(),
        instruction: "Do the first thing.".into(),
    });
    app.update(Action::Manual {
        step: "second".into(),
        instruction: "Do the second thing.".into(),
    });
    assert!(
        matches!(&app.overlay, Some(Overlay::Manual { step, instruction }) if step == "second" && instruction == "Do the second thing.")
    );
}

#[test]
fn a_manual_prompt_waits_while_a_restore_confirmation_is_typed() {
    let mut app = app();
    running(&mut app);
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Back);
    palette(&mut app, "points");
    cmd(&mut app, Command::Restore);
    cmd(&mut app, Command::Bottom);
    cmd(&mut app, Command::Open);
    app.update(Action::Plan(1, Ok(plan_view("lab-keys"))));
    cmd(&mut app, Command::Open);
    typed(&mut app, "lab-");
    app.update(Action::Manual {
        step: "decide".into(),
        instruction: "Approve.".into(),
    });
    assert!(app.overlay.is_none(), "not over the typed confirmation");
    typed(&mut app, "keys");
    assert_eq!(
        wizard(&app).typed,
        "lab-keys",
        "every key went to the confirmation"
    );
    let effects = input(&mut app, Input::Enter);
    assert!(
        matches!(effects.as_slice(), [Effect::Restore(_)]),
        "{effects:?}"
    );
    assert!(
        matches!(&app.overlay, Some(Overlay::Manual { .. })),
        "asked once the typing is done"
    );
}

#[test]
fn quitting_once_the_drill_is_over_needs_no_abort() {
    let mut app = app();
    running(&mut app);
    cmd(&mut app, Command::Quit);
    assert!(
        matches!(&app.overlay, Some(Overlay::Confirm(c)) if c.then == ConfirmThen::AbortAndQuit)
    );
    app.update(event(DrillEventKind::Finished {
        verdict: DrillVerdict::Pass,
        rto_ms: Some(1),
        rpo_ms: Some(1),
    }));
    assert!(
        app.overlay.is_none(),
        "the abort question is gone with the drill"
    );
    cmd(&mut app, Command::Quit);
    assert!(app.quit);
}

#[test]
fn no_new_drill_until_the_last_ones_report_is_written() {
    let mut app = app();
    running(&mut app);
    app.update(event(DrillEventKind::Finished {
        verdict: DrillVerdict::Pass,
        rto_ms: Some(1),
        rpo_ms: Some(1),
    }));
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Back);
    assert!(cmd(&mut app, Command::Run).is_empty());
    assert_eq!(
        error(&app),
        Some("the last drill is still writing its report")
    );
    app.update(Action::DrillReported(
        Ok("20261201t213031z-7ada72c3".into()),
    ));
    cmd(&mut app, Command::Run);
    assert!(
        matches!(&app.overlay, Some(Overlay::Confirm(_))),
        "now it asks to run"
    );
}

#[test]
fn verify_and_copy_act_on_the_selected_point_and_reload_after() {
    let mut app = app();
    cmd(&mut app, Command::NextScreen);
    cmd(&mut app, Command::Down);
    let p = app.points()[1];
    let want = (p.region.clone(), p.target().to_string(), p.id().to_string());
    let effects = cmd(&mut app, Command::Verify);
    assert!(
        matches!(effects.as_slice(), [Effect::Verify { region, target, point }] if (region.clone(), target.clone(), point.clone()) == want),
        "{effects:?}"
    );
    let effects = cmd(&mut app, Command::Copy);
    assert!(
        matches!(effects.as_slice(), [Effect::Copy { region, target, point }] if (region.clone(), target.clone(), point.clone()) == want),
        "{effects:?}"
    );
    let effects = app.update(Action::Done(Err(
        "copy failed: lab-keys in us-west-2: no space".into(),
    )));
    assert!(
        matches!(effects.as_slice(), [Effect::LoadAll]),
        "the listing is reloaded"
    );
    assert_eq!(
        error(&app),
        Some("copy failed: lab-keys in us-west-2: no space")
    );
    // Nothing selected: it says where to go.
    palette(&mut app, "drills");
    assert!(cmd(&mut app, Command::Verify).is_empty());
    assert_eq!(error(&app), Some("select a point first (Points screen)"));
}

#[test]
fn a_drill_that_ended_shows_what_it_did_not_run_as_skipped() {
    let mut app = app();
    running(&mut app);
    app.update(event(DrillEventKind::StepStarted {
        step: "lose-east".into(),
        kind: "fault".into(),
    }));
    app.update(event(DrillEventKind::Finished {
        verdict: DrillVerdict::Aborted,
        rto_ms: None,
        rpo_ms: None,
    }));
    let l = app.live.as_ref().unwrap();
    assert!(!l.running());
    for s in &l.steps {
        assert!(
            matches!(&s.state, StepState::Done { outcome: StepOutcome::Skipped, message, .. }
                if message == crate::drill::runner::SKIPPED),
            "{}: {:?}",
            s.line.name,
            s.state
        );
    }
    // Nothing is left to abort.
    let effects = cmd(&mut app, Command::Abort);
    assert!(effects.is_empty());
    assert!(error(&app).is_some_and(|e| e.contains("no drill is running")));
}

#[test]
fn the_run_confirmation_lists_every_step_that_changes_something_or_waits() {
    let mut app = app();
    palette(&mut app, "drills");
    cmd(&mut app, Command::Run);
    let Some(Overlay::Confirm(c)) = &app.overlay else {
        panic!("{:?}", app.overlay)
    };
    let text = c.lines.join("\n");
    for step in ["lose-east", "restore-west"] {
        assert!(text.contains(step), "{step}: {text}");
    }
}

#[test]
fn existing_cycles_through_each_policy_once() {
    let mut app = app();
    cmd(&mut app, Command::Restore);
    cmd(&mut app, Command::Open);
    cmd(&mut app, Command::Open);
    cmd(&mut app, Command::Open);
    assert_eq!(wizard(&app).step, WizardStep::Options);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(app.wizard_choices(wizard(&app))[0].clone());
        cmd(&mut app, Command::Open);
    }
    assert_eq!(
        seen,
        [
            "existing: fail if anything exists (the default; enter: skip, overwrite)",
            "existing: skip what exists",
            "existing: overwrite what exists",
        ]
    );
    assert_eq!(wizard(&app).existing, None, "back to the default");
}

#[test]
fn esc_goes_back_to_the_overview_a_target_was_opened_from() {
    let mut app = app();
    cmd(&mut app, Command::Open);
    assert_eq!(app.screen, Screen::Points);
    assert!(!app.filter.is_empty());
    cmd(&mut app, Command::Back);
    assert_eq!(
        app.screen,
        Screen::Points,
        "the first esc clears the filter"
    );
    assert!(app.filter.is_empty());
    cmd(&mut app, Command::Back);
    assert_eq!(app.screen, Screen::Overview);
    // Points reached with tab stay put.
    cmd(&mut app, Command::NextScreen);
    cmd(&mut app, Command::Back);
    assert_eq!(app.screen, Screen::Points);
}

#[test]
fn the_live_log_scrolls_back_and_follows_again() {
    let mut app = app();
    running(&mut app);
    for i in 0..30 {
        app.update(event(DrillEventKind::StepStarted {
            step: format!("step-{i}"),
            kind: "wait".into(),
        }));
    }
    cmd(&mut app, Command::Up);
    cmd(&mut app, Command::PageUp);
    assert_eq!(app.scroll, 11);
    cmd(&mut app, Command::Top);
    let oldest = app.live.as_ref().unwrap().log.len() - 1;
    assert_eq!(app.scroll as usize, oldest);
    cmd(&mut app, Command::Up);
    assert_eq!(app.scroll as usize, oldest, "not past the oldest line");
    cmd(&mut app, Command::Bottom);
    assert_eq!(app.scroll, 0, "G follows the newest line again");
}

#[test]
fn y_copies_the_selected_id_to_the_clipboard() {
    let mut app = app();
    cmd(&mut app, Command::NextScreen);
    let id = app.points()[0].id().to_string();
    let effects = cmd(&mut app, Command::Yank);
    assert!(
        matches!(effects.as_slice(), [Effect::Clipboard(t)] if *t == id),
        "{effects:?}"
    );
    assert!(
        app.status
            .as_ref()
            .is_some_and(|(s, e)| s.contains(&id) && !e)
    );
    // Read-only too: copying changes nothing.
    let mut ro = app_with(true);
    cmd(&mut ro, Command::NextScreen);
    assert!(matches!(
        cmd(&mut ro, Command::Yank).as_slice(),
        [Effect::Clipboard(_)]
    ));
}

#[test]
fn the_filter_applies_as_you_type_and_esc_drops_it() {
    let mut app = app();
    cmd(&mut app, Command::NextScreen);
    let all = app.points().len();
    cmd(&mut app, Command::Filter);
    typed(&mut app, "lab-or");
    assert!(app.points().len() < all);
    assert!(app.points().iter().all(|p| p.target() == "lab-orders"));
    input(&mut app, Input::Backspace);
    input(&mut app, Input::Esc);
    assert!(app.filter.is_empty());
    assert_eq!(app.points().len(), all);
    cmd(&mut app, Command::Filter);
    typed(&mut app, "!lab-or");
    input(&mut app, Input::Enter);
    assert!(app.inverse);
    assert!(app.points().iter().all(|p| p.target() != "lab-orders"));
}

#[test]
fn o_opens_the_selected_or_open_report() {
    let mut app = app();
    assert!(cmd(&mut app, Command::OpenHtml).is_empty());
    assert!(error(&app).is_some_and(|e| e.contains("report first")));
    let run = RunEntry {
        drill: "etcd-region-failover".into(),
        run_id: "20261201t213031z-7ada72c3".into(),
        started_at: now(),
        verdict: DrillVerdict::Pass,
        rto_ms: Some(41_200),
        rpo_ms: Some(5_100),
        objectives: (120_000, 30_000),
        path: PathBuf::from("reports"),
        integrity: crate::report::integrity::Integrity::Unsigned,
        trusted: true,
    };
    app.update(Action::Reports(Loadable::Ready(vec![run])));
    palette(&mut app, "reports");
    let effects = cmd(&mut app, Command::OpenHtml);
    assert!(
        matches!(effects.as_slice(), [Effect::OpenHtml { drill, run }]
            if drill == "etcd-region-failover" && run == "20261201t213031z-7ada72c3"),
        "{effects:?}"
    );
}
