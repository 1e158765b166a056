//! A scripted drill run: the event sequence a real etcd region-failover
//! drill sent in the lab (recorded with `drill run --drill-events`) is fed
//! into `update`, as the dashboard receives it, with a snapshot of the live
//! view after each step; the manual step is answered on screen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "tui/fixture.rs"]
mod fixture;

use drtool::drill::measure::DrillVerdict;
use drtool::drill::runner::DrillEventKind;
use drtool::tui::app::{Action, Effect, Input, StepState, View};
use drtool::tui::keymap::Command;
use drtool::tui::view::{BAD, GOOD};

#[test]
fn a_recorded_drill_replays_step_by_step() {
    let mut app = fixture::app();
    app.update(Action::Cmd(Command::Palette));
    for c in "drill etcd-region-failover".chars() {
        app.update(Action::Input(Input::Char(c)));
    }
    app.update(Action::Input(Input::Enter));
    app.update(Action::Cmd(Command::Run));
    let effects = app.update(Action::Input(Input::Char('y')));
    assert!(
        matches!(effects.as_slice(), [Effect::RunDrill(_)]),
        "{effects:?}"
    );
    assert_eq!(app.views.last(), Some(&View::Live));
    insta::assert_snapshot!("replay_00_started", fixture::draw(&app, 160, 48).backend());

    let events = fixture::drill_events();
    assert!(events.len() > 100, "the recording holds the whole run");
    let mut finished_steps = 0;
    let mut saw_failing_probe = false;
    for e in events {
        let kind = e.kind.clone();
        app.update(Action::Drill(Box::new(e)));
        match kind {
            DrillEventKind::StepFinished { step, .. } => {
                finished_steps += 1;
                let small = fixture::draw(&app, 80, 24);
                insta::assert_snapshot!(
                    format!("replay_{finished_steps:02}_{step}_80x24"),
                    small.backend()
                );
                let t = fixture::draw(&app, 160, 48);
                insta::assert_snapshot!(format!("replay_{finished_steps:02}_{step}"), t.backend());
                let live = app.live.as_ref().unwrap();
                let s = live.steps.iter().find(|s| s.line.name == step).unwrap();
                assert!(
                    matches!(s.state, StepState::Done { .. }),
                    "{step}: {:?}",
                    s.state
                );
                if step == "east-goes-dark" {
                    // us-east-1's etcd is down: its during-probe fails, in red.
                    assert_eq!(fixture::colour_of(&t, "FAIL"), Some(BAD));
                    saw_failing_probe = true;
                    // Abort asks first, the drill held before its next
                    // step meanwhile; no lets it go on.
                    let held = app.update(Action::Cmd(Command::Abort));
                    assert!(
                        matches!(held.as_slice(), [Effect::HoldDrill(true)]),
                        "{held:?}"
                    );
                    insta::assert_snapshot!(
                        "replay_abort_confirm_80x24",
                        fixture::draw(&app, 80, 24).backend()
                    );
                    insta::assert_snapshot!(
                        "replay_abort_confirm",
                        fixture::draw(&app, 160, 48).backend()
                    );
                    let going = app.update(Action::Input(Input::Char('n')));
                    assert!(
                        matches!(going.as_slice(), [Effect::HoldDrill(false)]),
                        "{going:?}"
                    );
                    assert!(app.overlay.is_none());
                }
            }
            DrillEventKind::Manual { step, instruction } => {
                // What the dashboard's operator sends when the runner asks.
                app.update(Action::Manual { step, instruction });
                insta::assert_snapshot!(
                    "replay_manual_prompt_80x24",
                    fixture::draw(&app, 80, 24).backend()
                );
                insta::assert_snapshot!(
                    "replay_manual_prompt",
                    fixture::draw(&app, 160, 48).backend()
                );
                let effects = app.update(Action::Input(Input::Enter));
                assert!(matches!(effects.as_slice(), [Effect::AnswerManual(true)]));
            }
            _ => {}
        }
    }
    assert_eq!(finished_steps, 14);
    assert!(saw_failing_probe);
    let live = app.live.as_ref().unwrap();
    let (verdict, rto, rpo) = live.finished.unwrap();
    assert_eq!(verdict, DrillVerdict::Pass);
    assert_eq!(rto, fixture::report().rto.rto_ms);
    assert_eq!(rpo, fixture::report().rpo.judged_ms());
    let effects = app.update(Action::DrillReported(Ok(fixture::report().run_id)));
    assert!(matches!(effects.as_slice(), [Effect::LoadAll]));
    insta::assert_snapshot!(
        "replay_99_verdict_80x24",
        fixture::draw(&app, 80, 24).backend()
    );
    let t = fixture::draw(&app, 160, 48);
    insta::assert_snapshot!("replay_99_verdict", t.backend());
    assert_eq!(fixture::colour_of(&t, "PASS"), Some(GOOD));
    // Enter opens the report it wrote.
    let effects = app.update(Action::Cmd(Command::Open));
    assert!(matches!(effects.as_slice(), [Effect::LoadReport(_)]));
}
