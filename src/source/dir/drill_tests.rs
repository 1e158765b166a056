//! The drill runner carried by this kind (a test of the runner, here because
//! only this folder may name the kind). A drill held by its operator (the dashboard's quit or abort dialog is
//! up) waits before its next step and goes on once let go; aborted while
//! held, it runs no more steps, and each one it did not run is reported
//! and sent as an event as skipped, so a face ends where the report does.
//! No lab: a `dir` target (the kind for tests) on folder stores and `exec`
//! steps that leave a file each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::drill::runner::{self, DrillEventKind, RunOptions, Unattended};
use crate::engine::{Engine, EngineOptions};
use crate::report::StepOutcome;

fn setup(root: &Path) -> (Engine, crate::drill::spec::Drill) {
    let r = root.display();
    let config = super::tests::config(root, "");
    std::fs::create_dir_all(root.join("east")).unwrap();
    let cfg_path = root.join("drtool.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let drill = format!(
        r#"
name: held
hypothesis: the steps run one after the other.
objectives: {{ rto: 5m, rpo: 1m }}
targets: [docs]
regions: [east, west]
steps:
  - exec: {{ name: first, command: "touch {r}/first; sleep 1" }}
  - exec: {{ name: second, command: "touch {r}/second" }}
  - exec: {{ name: third, command: "touch {r}/third" }}
"#
    );
    let drill_path = root.join("held.yaml");
    std::fs::write(&drill_path, drill).unwrap();
    let cfg = crate::source::load_config(&cfg_path).unwrap();
    let kinds = crate::source::registry();
    let drill = crate::drill::spec::load(&drill_path, &cfg, &kinds).unwrap();
    let engine = Engine::new(cfg, kinds, EngineOptions::default()).unwrap();
    (engine, drill)
}

/// The drill running on its own task, as the dashboard runs it.
fn start(
    engine: &Arc<Engine>,
    drill: crate::drill::spec::Drill,
    opts: RunOptions,
    events: broadcast::Sender<runner::DrillEvent>,
) -> tokio::task::JoinHandle<crate::report::DrillReport> {
    let engine = engine.clone();
    tokio::spawn(
        async move { runner::run(&engine, &drill, opts, Arc::new(Unattended), events).await },
    )
}

async fn wait_for(what: &Path) {
    for _ in 0..100 {
        if what.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never appeared", what.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_drill_waits_before_its_next_step_and_goes_on_when_let_go() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (engine, drill) = setup(root);
    let (hold, held) = watch::channel(true);
    let (events, _) = broadcast::channel(256);
    let opts = RunOptions {
        via: "a test".into(),
        hold: Some(held),
        ..RunOptions::default()
    };
    let engine = Arc::new(engine);
    let run = start(&engine, drill, opts, events);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!root.join("first").exists(), "a step ran while held");
    hold.send_replace(false);
    let report = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap()
        .unwrap();
    for step in ["first", "second", "third"] {
        assert!(root.join(step).exists(), "{step} did not run");
    }
    assert!(
        report.steps.iter().all(|s| s.outcome == StepOutcome::Ok),
        "{:?}",
        report.steps
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn aborted_while_held_it_runs_no_more_steps_and_says_each_was_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (engine, drill) = setup(root);
    let (hold, held) = watch::channel(false);
    let (events, mut seen) = broadcast::channel(256);
    let opts = RunOptions {
        via: "a test".into(),
        hold: Some(held),
        ..RunOptions::default()
    };
    let engine = Arc::new(engine);
    let run = start(&engine, drill, opts, events);
    // Held while the first step runs (it sleeps a second after its file):
    // the dialog is up before the second.
    wait_for(&root.join("first")).await;
    hold.send_replace(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!root.join("second").exists(), "a step ran while held");
    engine.cancel();
    let report = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap()
        .unwrap();
    assert!(!root.join("second").exists());
    assert!(!root.join("third").exists());
    let skipped: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| s.outcome == StepOutcome::Skipped)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(skipped, ["second", "third"], "{:?}", report.steps);
    let mut sent = Vec::new();
    while let Ok(e) = seen.try_recv() {
        if let DrillEventKind::StepFinished {
            step,
            outcome: StepOutcome::Skipped,
            message,
            ..
        } = e.kind
        {
            assert_eq!(message, runner::SKIPPED);
            sent.push(step);
        }
    }
    assert_eq!(sent, ["second", "third"]);
}
