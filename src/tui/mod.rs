//! The terminal dashboard (`drtool` on a terminal, or `drtool ui`).
//!
//! Shape (ratatui's component pattern): this task owns the terminal. Keys,
//! a once-a-second tick and what background tasks send arrive as
//! [`app::Action`]s; [`app::App::update`] is the only mutator and returns
//! [`app::Effect`]s, which the [`worker`] turns into engine calls on
//! background tasks (each with a timeout) whose results come back over a
//! bounded channel. [`view::draw`] draws from the state only. The screen is
//! redrawn only when something changed.
//!
//! While the dashboard is up, logs go to a file; a panic hook and a drop
//! guard put the terminal back, and SIGTERM stops the dashboard the same way
//! (aborting a running drill and waiting for its cleanup first).

pub mod app;
pub mod keymap;
pub mod model;
pub mod screens;
pub mod theme;
pub mod view;
mod worker;

pub use worker::{load_drills, load_schedules};

use std::io::{IsTerminal, Write};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind};
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::engine::{Engine, Registry};
use crate::error::Error;
use crate::exit;
use app::{Action, App, Effect, Input};
use keymap::{Key, Keymap};
use model::TargetInfo;

/// Where the dashboard finds what it shows.
#[derive(Debug, Clone)]
pub struct Options {
    pub read_only: bool,
    pub keymap: Option<PathBuf>,
    pub drills: PathBuf,
    pub reports: PathBuf,
    pub schedules: PathBuf,
    /// The dashboard's log file (the log viewer reads its end).
    pub log_file: Option<PathBuf>,
}

/// Actions queued from background tasks before the oldest is handled.
const QUEUE: usize = 1024;

/// The targets and regions of the config, as the dashboard lists them.
pub fn targets_of(cfg: &Config, kinds: &Registry) -> (Vec<TargetInfo>, Vec<String>) {
    let targets = cfg
        .targets
        .iter()
        .map(|(name, t)| TargetInfo {
            name: name.clone(),
            kind: t.spec.kind().to_string(),
            home: t.home.clone(),
            copy_to: t.copy_to.clone(),
            switches: kinds
                .restore_switches(t.spec.kind())
                .into_iter()
                .map(str::to_string)
                .collect(),
            streams: kinds
                .get(t.spec.kind())
                .is_ok_and(|k| k.streams().and_then(|s| s.stream_settings(t)).is_some()),
        })
        .collect();
    (targets, cfg.regions.keys().cloned().collect())
}

/// Turns a key into what `update` takes: typed text while an overlay takes
/// text, else the keymap's command.
pub fn action_of(app: &App, key: &KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    // Quits whatever the keymap or an overlay says (the keymap may not rebind it).
    if Key::of(key) == Some(keymap::CTRL_C) {
        return Some(Action::Cmd(keymap::Command::Quit));
    }
    if app.wants_text() {
        let input = match key.code {
            KeyCode::Char(c) => Input::Char(c),
            KeyCode::Backspace => Input::Backspace,
            KeyCode::Enter => Input::Enter,
            KeyCode::Esc => Input::Esc,
            KeyCode::Tab => Input::Tab,
            KeyCode::Up => Input::Up,
            KeyCode::Down => Input::Down,
            _ => return None,
        };
        return Some(Action::Input(input));
    }
    let k = Key::of(key)?;
    app.keymap.command(&k).map(Action::Cmd)
}

/// Puts the terminal back however the dashboard ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn restore_terminal() {
    // try_: the terminal may be gone (SIGHUP); nothing to report then.
    let _ = ratatui::try_restore();
    let _ = crossterm::execute!(std::io::stdout(), crossterm::cursor::Show);
}

/// Runs the dashboard until the user quits; the exit code.
pub async fn run(engine: Engine, opts: Options) -> Result<u8, Error> {
    let keymap = match &opts.keymap {
        Some(p) => Keymap::load(p).map_err(|e| Error::input(e.to_string()))?,
        None => Keymap::default(),
    };
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Error::input(
            "the dashboard needs a terminal: run drtool on one, or use a subcommand (drtool --help)",
        ));
    }
    let (targets, regions) = targets_of(engine.config(), engine.kinds());
    let mut app = App::new(Utc::now(), targets, regions, keymap, opts.read_only);
    let (tx, mut rx) = mpsc::channel::<Action>(QUEUE);
    let worker = worker::Worker::new(engine, opts.clone(), tx.clone());
    worker.effect(Effect::LoadAll);

    // Before the terminal changes: a signal from now on is handled.
    let mut signals = signals();
    // The guard first: a half-done setup is undone too.
    let restore = Restore;
    let mut terminal = ratatui::try_init()
        .map_err(|e| Error::Failed(format!("cannot set up the terminal: {e}")))?;
    watch_panics();
    // A panic in the loop itself still reaches the drill's cleanup below.
    let ended = AssertUnwindSafe(event_loop(
        &mut app,
        &mut terminal,
        &mut rx,
        &mut signals,
        &worker,
    ))
    .catch_unwind()
    .await;
    let (stopped_by, failed) = ended.unwrap_or_else(|_| {
        (
            None,
            Some(Error::Failed(
                "the dashboard panicked (see the log file); the terminal was put back".into(),
            )),
        )
    });
    // Not dropped: ratatui's Terminal shows the cursor on drop and eprintln!s
    // (a panic, then an abort) when the terminal is gone. `restore` shows the
    // cursor without printing anything.
    std::mem::forget(terminal);
    drop(restore);
    // Nothing reads the queue from here on: senders must not wait on it.
    drop(rx);
    // The terminal may be gone (SIGHUP): what is said here may go nowhere.
    let say = |text: &str| {
        let _ = writeln!(std::io::stderr(), "drtool: {text}");
    };
    if worker.drill_running() {
        let finished = app.live.as_ref().is_some_and(|l| l.finished.is_some());
        if !finished {
            say("aborting the running drill; its cleanup runs first...");
            worker.effect(Effect::AbortDrill);
        } else {
            say("writing the drill's report...");
        }
        worker.wait_drill().await;
    }
    let jobs = worker.jobs_running();
    if jobs > 0 {
        say(&format!(
            "stopping {jobs} running job(s) (verify, copy or restore) cleanly..."
        ));
    }
    worker.stop_jobs().await;
    // What the drill did stays on the normal screen once the dashboard is gone.
    for line in worker.drill_ended() {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(stopped_by.unwrap_or(0)),
    }
}

/// Keys, the tick, background results and signals, until a quit, a signal
/// or an error: the signal's exit code, or the error.
async fn event_loop(
    app: &mut App,
    terminal: &mut ratatui::DefaultTerminal,
    rx: &mut mpsc::Receiver<Action>,
    signals: &mut mpsc::Receiver<u8>,
    worker: &worker::Worker,
) -> (Option<u8>, Option<Error>) {
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    loop {
        if PANICKED.load(Ordering::SeqCst) {
            let e = "a background task of the dashboard panicked (see the log file); the terminal was put back";
            return (None, Some(Error::Failed(e.into())));
        }
        if dirty {
            if let Err(e) = terminal.draw(|f| view::draw(f, app)) {
                // The terminal is gone (a closed pty, an SSH drop): a hangup.
                tracing::warn!("cannot draw on the terminal ({e}): stopping as on SIGHUP");
                return (Some(exit::SIGHUP), None);
            }
            dirty = false;
            tracing::debug!("frame drawn");
        }
        if app.quit {
            return (None, None);
        }
        let mut actions = Vec::new();
        tokio::select! {
            ev = keys.next() => match ev {
                Some(Ok(Event::Key(k))) => actions.extend(action_of(app, &k)),
                Some(Ok(Event::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                // EIO, a closed pty: the terminal is gone, as on SIGHUP.
                Some(Err(e)) => {
                    tracing::warn!("cannot read the terminal ({e}): stopping as on SIGHUP");
                    return (Some(exit::SIGHUP), None);
                }
                None => {
                    tracing::warn!("the terminal's input ended: stopping as on SIGHUP");
                    return (Some(exit::SIGHUP), None);
                }
            },
            a = rx.recv() => {
                actions.extend(a);
                // Take what else is queued, so a burst is one redraw.
                while actions.len() < 256 {
                    match rx.try_recv() {
                        Ok(a) => actions.push(a),
                        Err(_) => break,
                    }
                }
            }
            _ = tick.tick() => actions.push(Action::Tick(Utc::now())),
            code = signals.recv() => {
                tracing::warn!(exit_code = ?code, "signal: stopping the dashboard");
                return (code, None);
            }
        }
        for a in actions {
            dirty = true;
            for e in app.update(a) {
                match e {
                    Effect::Clipboard(text) => clipboard(&text),
                    e => worker.effect(e),
                }
            }
        }
    }
}

/// Puts `text` on the clipboard of the terminal the dashboard runs in,
/// wherever that is (OSC 52: the terminal emulator does it, over SSH too;
/// in tmux, with `set-clipboard on`).
fn clipboard(text: &str) {
    let mut out = std::io::stdout();
    let _ = out.write_all(osc52(text).as_bytes());
    let _ = out.flush();
}

/// The escape sequence that sets the clipboard to `text`.
fn osc52(text: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    format!("\x1b]52;c;{encoded}\x07")
}

/// Set by the panic hook: any task's panic ends the dashboard (the hook
/// ratatui installs has already put the terminal back by then).
static PANICKED: AtomicBool = AtomicBool::new(false);

fn watch_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        tracing::error!("panic: {info}");
        previous(info);
    }));
}

/// The signals that stop the dashboard, as the exit code each stands for:
/// SIGTERM 143, SIGINT 130 (sent from outside: on the dashboard's own
/// terminal Ctrl-C is a key), SIGHUP 129 (the terminal went away).
fn signals() -> mpsc::Receiver<u8> {
    let (tx, rx) = mpsc::channel(4);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        for (kind, code) in [
            (SignalKind::terminate(), exit::SIGTERM),
            (SignalKind::interrupt(), exit::SIGINT),
            (SignalKind::hangup(), exit::SIGHUP),
        ] {
            // Registered here, before the terminal changes.
            let Ok(mut s) = signal(kind) else { continue };
            let tx = tx.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    let _ = tx.send(code).await;
                }
            });
        }
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    #[test]
    fn the_clipboard_gets_the_text_base64_in_one_osc_52_sequence() {
        // "20261201T213031Z-337d78ee" in base64, between ESC ] 52 ; c ; and BEL.
        assert_eq!(
            osc52("20261201T213031Z-337d78ee"),
            "\x1b]52;c;MjAyNjEyMDFUMjEzMDMxWi0zMzdkNzhlZQ==\x07"
        );
        assert_eq!(osc52(""), "\x1b]52;c;\x07");
    }

    #[test]
    fn a_panic_on_any_thread_is_noticed_by_the_loop() {
        watch_panics();
        assert!(!PANICKED.load(Ordering::SeqCst));
        let died = std::thread::spawn(|| panic!("a background task dies")).join();
        assert!(died.is_err());
        assert!(
            PANICKED.load(Ordering::SeqCst),
            "the loop ends on its next turn"
        );
    }

    #[test]
    fn keys_become_commands_or_typed_text_and_ctrl_c_always_quits() {
        let mut app = App::new(Utc::now(), Vec::new(), Vec::new(), Keymap::default(), false);
        let key = |c: char, m: KeyModifiers| KeyEvent::new(KeyCode::Char(c), m);
        assert_eq!(
            action_of(&app, &key('?', KeyModifiers::NONE)),
            Some(Action::Cmd(keymap::Command::Help))
        );
        app.update(Action::Cmd(keymap::Command::Palette));
        assert_eq!(
            action_of(&app, &key('q', KeyModifiers::NONE)),
            Some(Action::Input(Input::Char('q'))),
            "the palette takes q as text"
        );
        assert_eq!(
            action_of(&app, &key('c', KeyModifiers::CONTROL)),
            Some(Action::Cmd(keymap::Command::Quit))
        );
    }
}
