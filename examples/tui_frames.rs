//! Frame time of the dashboard: `cargo run --release --example tui_frames --
//! [POINTS] [SECONDS]` (default 10 000 points, 10 s of drill), from the
//! repository root. A 160x48 terminal (ratatui's crossterm backend writing
//! to a sink, so the escape sequences are made as for a real terminal), the
//! catalog holding POINTS points, and a drill sending 100 events a second
//! (the recorded lab drill's events, replayed round and round). Each frame
//! is what the dashboard does on an event: `update` with it, then a redraw.
//! Frames are timed on the overview, the points screen and the live drill;
//! the median and 99th percentile of each are printed, then peak RSS.
//! lab/bench-tui runs it.

#[path = "../tests/tui/fixture.rs"]
mod fixture;

use std::time::{Duration, Instant};

use drtool::tui::app::{Action, Input};
use drtool::tui::keymap::Command;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{TerminalOptions, Viewport};

const EVENTS_PER_SECOND: u64 = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let points = args.first().copied().unwrap_or(10_000) as usize;
    let seconds = args.get(1).copied().unwrap_or(10);
    let mut app = fixture::app_with(fixture::many_points(points), false);
    let held: usize = app
        .regions
        .iter()
        .filter_map(|r| r.points.ready().map(Vec::len))
        .sum();
    let events = fixture::drill_events();
    // The drill starts as the dashboard starts one.
    app.update(Action::Cmd(Command::Palette));
    for c in "drill etcd-region-failover".chars() {
        app.update(Action::Input(Input::Char(c)));
    }
    app.update(Action::Input(Input::Enter));
    app.update(Action::Cmd(Command::Run));
    app.update(Action::Input(Input::Char('y')));
    let mut terminal = Terminal::with_options(
        CrosstermBackend::new(std::io::sink()),
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, 160, 48)),
        },
    )?;
    println!(
        "160x48, {held} points in {} regions, a drill sending {EVENTS_PER_SECOND} events/s for {seconds}s per screen",
        app.regions.len()
    );
    let frames = (EVENTS_PER_SECOND * seconds) as usize;
    let mut n = 0usize;
    // Screens are changed as a user does, through the palette.
    for (name, go) in [
        ("live drill", None),
        ("overview", Some("overview")),
        ("points", Some("points")),
    ] {
        if let Some(line) = go {
            app.update(Action::Cmd(Command::Palette));
            for c in line.chars() {
                app.update(Action::Input(Input::Char(c)));
            }
            app.update(Action::Input(Input::Enter));
        }
        let mut times = Vec::with_capacity(frames);
        let start = Instant::now();
        for i in 0..frames as u64 {
            let mut e = events[n % events.len()].clone();
            // Time goes on across the replays.
            e.at_ms += (n / events.len()) as u64 * 30_000;
            n += 1;
            let t = Instant::now();
            app.update(Action::Drill(Box::new(e)));
            terminal.draw(|f| drtool::tui::view::draw(f, &app))?;
            times.push(t.elapsed());
            // Paced at 100 events a second, as the drill sends them.
            let due = start + Duration::from_millis(1000 * (i + 1) / EVENTS_PER_SECOND);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        times.sort();
        println!(
            "{name:<11} frames {:>5}  median {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            times.len(),
            percentile(&times, 0.5).as_secs_f64() * 1000.0,
            percentile(&times, 0.99).as_secs_f64() * 1000.0,
            times.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        );
    }
    println!("peak RSS {:.1} MiB", peak_rss_kib() as f64 / 1024.0);
    Ok(())
}
