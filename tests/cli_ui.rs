//! `drtool` and `drtool ui` without a terminal, and bad keymaps: clear
//! errors, exit 2, before anything is drawn. (The dashboard itself runs in
//! tmux in tests/lab_tui.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use predicates::prelude::*;

const DIR: &str = "tests/fixtures/tui";

fn drtool(log: &tempfile::TempDir) -> Command {
    let mut cmd = Command::cargo_bin("drtool").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("XDG_STATE_HOME", log.path())
        .env_remove("DRTOOL_KEYMAP")
        .args(["--config", &format!("{DIR}/drtool.toml")]);
    cmd
}

#[test]
fn no_command_off_a_terminal_says_so() {
    let log = tempfile::tempdir().unwrap();
    let mut cmd = Command::cargo_bin("drtool").unwrap();
    cmd.env("XDG_STATE_HOME", log.path())
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no command given and this is not a terminal, so no dashboard: see drtool --help",
        ));
}

#[test]
fn the_dashboard_needs_a_terminal() {
    let log = tempfile::tempdir().unwrap();
    drtool(&log)
        .arg("ui")
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the dashboard needs a terminal"));
}

#[test]
fn a_bad_keymap_names_the_file_line_and_key() {
    let log = tempfile::tempdir().unwrap();
    drtool(&log)
        .args(["ui", "--keymap", &format!("{DIR}/bad-keymap.toml")])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad-keymap.toml:4:"))
        .stderr(predicate::str::contains("\"super-q\" is not a key"));
    drtool(&log)
        .args([
            "ui",
            "--keymap",
            &format!("{DIR}/unknown-command-keymap.toml"),
        ])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown-command-keymap.toml:2:1:"))
        .stderr(predicate::str::contains("unknown command \"vreify\""));
    drtool(&log)
        .args(["ui", "--keymap", &format!("{DIR}/missing.toml")])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("missing.toml"))
        .stderr(predicate::str::contains("cannot read the keymap"));
}

#[test]
fn logs_go_to_the_file_named() {
    let log = tempfile::tempdir().unwrap();
    let file = log.path().join("sub/ui.log");
    drtool(&log)
        .args(["ui", "--log-file"])
        .arg(&file)
        .write_stdin("")
        .assert()
        .code(2);
    assert!(file.exists(), "the log file is made before anything else");
}

#[test]
fn dashboard_options_before_another_command_are_refused() {
    let log = tempfile::tempdir().unwrap();
    drtool(&log)
        .args(["--read-only", "points"])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--read-only, --keymap, --log-file, --drills, --reports and --schedules before the command are the dashboard's",
        ));
    // Before no command they are the dashboard's (which needs a terminal).
    drtool(&log)
        .args(["--read-only", "--keymap", &format!("{DIR}/bad-keymap.toml")])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no command given and this is not a terminal",
        ));
}
