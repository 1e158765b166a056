//! Drawing: every screen, view and overlay from the [`App`] state alone (no
//! I/O, no mutation). Colours carry meaning and only meaning: green is good
//! (a point inside its objective, a passing drill), yellow is close, red is a
//! breach or a failure, grey is unknown or not loaded yet.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Gauge, Paragraph, Row, Sparkline, Table, Wrap,
};

use super::app::{App, LiveDrill, Overlay, SCREENS, Screen, StepState, View, Wizard, WizardStep};
use super::keymap::Command;
use super::model::{self, DrillRow, Health, Holding, Loadable, PointRow};
use super::screens::{contents, diff, logs};
pub use super::theme::{ACCENT, BAD, DIM, GOOD, WARN};
use super::theme::{block, bold, highlight, style, table_state};
use crate::catalog::CheckResult;
use crate::drill::measure::DrillVerdict;
use crate::engine::stream::RegionStream;
use crate::report::{DrillReport, StepOutcome, human_ms, opt_ms};

fn health_color(h: Health) -> Color {
    match h {
        Health::Good => GOOD,
        Health::Warn => WARN,
        Health::Breach => BAD,
        Health::Unknown => DIM,
    }
}

pub fn verdict_color(v: DrillVerdict) -> Color {
    match v {
        DrillVerdict::Pass => GOOD,
        DrillVerdict::ObjectivesMissed => WARN,
        DrillVerdict::Failed | DrillVerdict::Aborted => BAD,
    }
}

fn outcome_color(o: StepOutcome) -> Color {
    match o {
        StepOutcome::Ok => GOOD,
        StepOutcome::Skipped => DIM,
        _ => BAD,
    }
}

/// Draws the whole dashboard.
pub fn draw(f: &mut Frame, app: &App) {
    let [header, crumb, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_header(f, header, app);
    draw_crumb(f, crumb, app);
    match app.views.last() {
        Some(View::Point {
            region,
            target,
            point,
        }) => draw_point(f, body, app, region, target, point),
        Some(View::Drill { name }) => draw_drill(f, body, app, name),
        Some(View::Live) => draw_live(f, body, app),
        Some(View::Report { run }) => draw_report(f, body, app, run),
        Some(View::Wizard(w)) => draw_wizard(f, body, app, w),
        Some(View::Contents(c)) => contents::draw(f, body, c),
        Some(View::Diff(d)) => diff::draw(f, body, d),
        Some(View::Logs(l)) => logs::draw(f, body, l),
        None => match app.screen {
            Screen::Overview => draw_overview(f, body, app),
            Screen::Points => draw_points(f, body, app),
            Screen::Drills => draw_drills(f, body, app),
            Screen::Reports => draw_reports(f, body, app),
            Screen::Schedules => draw_schedules(f, body, app),
        },
    }
    draw_footer(f, footer, app);
    match &app.overlay {
        Some(Overlay::Help) => draw_help(f, app),
        Some(Overlay::Palette { input, sel, .. }) => draw_palette(f, app, input, *sel),
        Some(Overlay::Confirm(c)) => draw_box(f, &c.title, &c.lines, WARN),
        Some(Overlay::Manual { step, instruction }) => draw_box(
            f,
            &format!("MANUAL STEP {step}"),
            &[
                instruction.clone(),
                String::new(),
                "enter: done, go on    a: abort the drill".into(),
            ],
            ACCENT,
        ),
        Some(Overlay::Filter { .. }) | None => {}
    }
}

fn draw_header(f: &mut Frame, area: Rect, app: &App) {
    let mut spans = vec![
        Span::styled(" drtool ", bold().fg(Color::Black).bg(ACCENT)),
        Span::raw(" "),
    ];
    for s in SCREENS {
        let st = if s == app.screen {
            bold().fg(ACCENT)
        } else {
            style(Color::Gray)
        };
        spans.push(Span::styled(format!(" {} ", s.title()), st));
    }
    if let Some(l) = &app.live {
        let (text, c) = match l.finished {
            None if l.aborting => ("drill: aborting".to_string(), WARN),
            None => (format!("drill {}: running", l.name), ACCENT),
            Some((v, ..)) => (format!("drill {}: {}", l.name, v.label()), verdict_color(v)),
        };
        spans.push(Span::styled(format!(" {text} "), bold().fg(c)));
    }
    let right = format!(
        "{}{} ",
        if app.read_only { "read-only  " } else { "" },
        app.now.format("%H:%M UTC")
    );
    let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    let pad = (area.width as usize).saturating_sub(used + right.chars().count());
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(Span::styled(
        right,
        style(if app.read_only { WARN } else { DIM }),
    ));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_crumb(f: &mut Frame, area: Rect, app: &App) {
    let mut spans = vec![Span::styled(
        format!(" {}", app.breadcrumb()),
        style(ACCENT),
    )];
    match &app.overlay {
        Some(Overlay::Filter { input }) => {
            spans.push(Span::styled(format!("   /{input}_"), bold().fg(WARN)));
        }
        _ if !app.filter.is_empty() => spans.push(Span::styled(
            format!(
                "   filter: {}{} (esc clears)",
                if app.inverse { "!" } else { "" },
                app.filter
            ),
            style(WARN),
        )),
        _ => {}
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The keys that matter here, for the footer.
fn hints(app: &App) -> Vec<Command> {
    let mut out = match (app.views.last(), app.screen) {
        (Some(View::Point { .. }), _) => vec![
            Command::Open,
            Command::DryRun,
            Command::Verify,
            Command::Restore,
            Command::Back,
        ],
        (Some(View::Drill { .. }), _) => vec![Command::Run, Command::Back],
        // Only what still applies: abort while it runs, open once reported.
        (Some(View::Live), _) => {
            let live = app.live.as_ref();
            let mut keys = Vec::new();
            if live.is_some_and(|l| l.running() && !l.aborting) {
                keys.push(Command::Abort);
            }
            if live.is_some_and(|l| matches!(l.report, Some(Ok(_)))) {
                keys.push(Command::Open);
            }
            keys.extend([Command::Up, Command::Back]);
            keys
        }
        (Some(View::Report { .. }), _) => vec![Command::Down, Command::OpenHtml, Command::Back],
        (Some(View::Wizard(_)), _) => vec![Command::Open, Command::Back],
        (Some(View::Contents(_)), _) => vec![
            Command::Open,
            Command::Filter,
            Command::DryRun,
            Command::Restore,
            Command::Back,
        ],
        (Some(View::Diff(d)), _) if d.asked.is_some() => {
            vec![Command::Down, Command::Refresh, Command::Back]
        }
        (Some(View::Diff(_)), _) => vec![Command::Open, Command::Back],
        (Some(View::Logs(_)), _) => vec![
            Command::Filter,
            Command::NextMatch,
            Command::Logs,
            Command::Down,
            Command::Back,
        ],
        (None, Screen::Points) => vec![
            Command::Open,
            Command::NextRegion,
            Command::Verify,
            Command::Restore,
            Command::Filter,
        ],
        (None, Screen::Drills) => vec![
            Command::Open,
            Command::Run,
            Command::DryRun,
            Command::Refresh,
            Command::Filter,
        ],
        (None, Screen::Reports) => vec![
            Command::Open,
            Command::OpenHtml,
            Command::Filter,
            Command::Refresh,
        ],
        // Schedules open nothing: their rows say it all.
        (None, Screen::Schedules) => vec![Command::Filter, Command::Refresh],
        (None, _) => vec![Command::Open, Command::Filter, Command::Refresh],
    };
    out.retain(|c| !(app.read_only && c.writes()));
    out.extend([Command::Palette, Command::Help, Command::Quit]);
    out
}

fn draw_footer(f: &mut Frame, area: Rect, app: &App) {
    // Typing the name takes every key but esc and enter: the keymap's hints
    // would not apply.
    let typing = matches!(app.views.last(), Some(View::Wizard(w)) if w.step == WizardStep::Confirm);
    let line = if let Some((text, error)) = &app.status {
        Line::from(Span::styled(
            format!(" {text}"),
            style(if *error { BAD } else { GOOD }),
        ))
    } else if let Some(p) = &app.progress {
        Line::from(Span::styled(format!(" {p}"), style(ACCENT)))
    } else if typing {
        Line::from(Span::styled(
            " type the target's name  enter restore  esc back to the plan  ctrl-c quit",
            style(Color::Gray),
        ))
    } else {
        let mut spans = Vec::new();
        for c in hints(app) {
            if let Some(k) = app.keymap.keys_of(c).first() {
                spans.push(Span::styled(format!(" {k}"), bold().fg(ACCENT)));
                spans.push(Span::styled(
                    format!(" {} ", short_here(app, c)),
                    style(Color::Gray),
                ));
            }
        }
        Line::from(spans)
    };
    f.render_widget(Paragraph::new(line), area);
}

/// A command's word in the footer, where it does something else here.
fn short_here(app: &App, c: Command) -> &'static str {
    match (app.views.last(), c) {
        (Some(View::Point { .. }), Command::Open) => "contents",
        (Some(View::Point { .. } | View::Contents(_)), Command::DryRun) => "diff",
        (None, Command::DryRun) if app.screen == Screen::Points => "diff",
        (Some(View::Diff(_)), Command::Refresh) => "again",
        (Some(View::Live), Command::Up) => "log back",
        (Some(View::Logs(_)), Command::Filter) => "search",
        (Some(View::Logs(_)), Command::Logs) => "next log",
        _ => short(c),
    }
}

fn short(c: Command) -> &'static str {
    match c {
        Command::Open => "open",
        Command::Back => "back",
        Command::Filter => "filter",
        Command::Palette => "cmd",
        Command::Help => "help",
        Command::Quit => "quit",
        Command::Verify => "verify",
        Command::Copy => "copy",
        Command::Restore => "restore",
        Command::Run => "run",
        Command::DryRun => "dry-run",
        Command::OpenHtml => "html",
        Command::Abort => "abort",
        Command::NextRegion => "region",
        Command::Refresh => "reload",
        Command::Down => "scroll",
        Command::Logs => "logs",
        Command::NextMatch => "next",
        _ => c.name(),
    }
}

fn loading_line<T>(l: &Loadable<T>, what: &str) -> Option<Line<'static>> {
    match l {
        Loadable::Loading => Some(Line::from(Span::styled(
            format!("loading {what}..."),
            style(DIM),
        ))),
        Loadable::Failed(e) => Some(Line::from(Span::styled(format!("{what}: {e}"), style(BAD)))),
        Loadable::Ready(_) => None,
    }
}

fn draw_overview(f: &mut Frame, area: Rect, app: &App) {
    let rows = app.overview();
    let wide = area.width >= 120;
    let mut header = vec!["TARGET", "NEWEST", "RPO", "REGIONS", "TESTED", "LAST DRILL"];
    if wide {
        header.insert(1, "KIND");
        header.insert(6, "VERIFIED");
        header.insert(7, "NEXT RUN");
    }
    // Narrow: region names without what they all share ("us-").
    let cut = if wide {
        0
    } else {
        shared_prefix(app.regions.iter().map(|r| r.region.as_str()))
    };
    let body: Vec<Row> = rows
        .iter()
        .map(|r| overview_row(app, r, wide, cut))
        .collect();
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(16),
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(34),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Min(20),
        ]
    } else {
        vec![
            Constraint::Length(12),
            Constraint::Length(6),
            Constraint::Length(5),
            Constraint::Length(20),
            Constraint::Length(7),
            Constraint::Min(10),
        ]
    };
    let table = Table::new(body, widths)
        .header(Row::new(header).style(bold().fg(DIM)))
        .row_highlight_style(highlight())
        .block(block("Recovery posture"));
    // Tall enough: the regions and recent activity below the table.
    let table_h = (rows.len().min(500) as u16).saturating_add(3);
    let regions = regions_panel(app);
    // Its lines wrap (an error can be long): as tall as they are wrapped,
    // borders included (the width is the inside's).
    let regions_h = regions.line_count(area.width.saturating_sub(2)).min(500) as u16;
    let (top, panels, bottom) =
        if area.height >= table_h.saturating_add(regions_h).saturating_add(5) {
            let [top, regions_area, log, bottom] = Layout::vertical([
                Constraint::Length(table_h),
                Constraint::Length(regions_h),
                Constraint::Min(3),
                Constraint::Length(1),
            ])
            .areas(area);
            (top, Some((regions_area, log)), bottom)
        } else {
            let [top, bottom] =
                Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
            (top, None, bottom)
        };
    f.render_stateful_widget(table, top, &mut table_state(app.selected_in(rows.len())));
    if let Some((regions_area, log)) = panels {
        f.render_widget(regions, regions_area);
        draw_log(f, log, &app.log, "activity");
    }
    let mut legend = vec![
        Span::styled(" newest point vs RPO objective: ", style(DIM)),
        Span::styled("inside ", style(GOOD)),
        Span::styled("over 75% ", style(WARN)),
        Span::styled("breached ", style(BAD)),
        Span::styled("no objective", style(DIM)),
    ];
    if rows.iter().any(|r| r.stream_lag.is_some()) {
        legend.push(Span::styled("  ~ stream", style(DIM)));
    }
    let legend = Line::from(legend);
    f.render_widget(Paragraph::new(legend), bottom);
}

/// One target's row of the recovery posture (`cut`: the shared start of
/// region names left out).
fn overview_row(app: &App, r: &model::OverviewRow, wide: bool, cut: usize) -> Row<'static> {
    let c = health_color(r.health);
    let newest = match (&r.newest, r.stream_lag) {
        // A stream holds changes newer than any point: its lag is the age.
        (Some((_, age)), Some(lag)) if lag < *age => format!("~{}", model::age(lag)),
        (None, Some(lag)) => format!("~{}", model::age(lag)),
        (Some((_, age)), _) => model::age(*age),
        (None, None) if r.regions.iter().any(|(_, h)| *h == Holding::Loading) => "...".into(),
        (None, None) => "none".into(),
    };
    let regions = Line::from(
        r.regions
            .iter()
            .flat_map(|(name, h)| {
                let name = name.get(cut..).unwrap_or(name);
                let (text, c) = match h {
                    Holding::Points(0) => (format!("{name}:0"), BAD),
                    Holding::Points(n) => (format!("{name}:{n}"), Color::Gray),
                    Holding::Loading => (format!("{name}:..."), DIM),
                    Holding::Unreachable if wide => (format!("{name}:unreachable"), BAD),
                    Holding::Unreachable => (format!("{name}:down"), BAD),
                };
                [Span::styled(text, style(c)), Span::raw(" ")]
            })
            .collect::<Vec<_>>(),
    );
    let tested = match r.last_restore_test {
        Some((at, true)) => Span::styled(model::age(app.now - at), style(GOOD)),
        Some((at, false)) => {
            Span::styled(format!("FAILED {}", model::age(app.now - at)), style(BAD))
        }
        None => Span::styled("never", style(DIM)),
    };
    let next = match &r.next_run {
        Some((_, at)) => format!("in {}", model::age(*at - app.now)),
        None => "-".into(),
    };
    let drill = match &r.last_drill {
        Some((name, v, rto, rpo)) => Line::from(vec![
            Span::styled(v.label(), style(verdict_color(*v))),
            Span::styled(
                format!(
                    " RTO {} RPO {}{}",
                    opt_ms(*rto),
                    opt_ms(*rpo),
                    if wide {
                        format!(" ({name})")
                    } else {
                        String::new()
                    }
                ),
                style(Color::Gray),
            ),
        ]),
        None => Line::from(Span::styled("no drill run", style(DIM))),
    };
    let mut cells = vec![
        Cell::from(Span::styled(r.target.clone(), bold().fg(c))),
        Cell::from(Span::styled(newest, style(c))),
        Cell::from(r.objective_ms.map_or("-".to_string(), human_ms)),
        Cell::from(regions),
        Cell::from(tested),
        Cell::from(drill),
    ];
    if wide {
        cells.insert(1, Cell::from(r.kind.clone()));
        cells.insert(
            6,
            Cell::from(
                r.last_verified
                    .map_or("-".to_string(), |t| model::age(app.now - t)),
            ),
        );
        cells.insert(7, Cell::from(next));
    }
    Row::new(cells)
}

/// What the region names all begin with, up to a dash.
fn shared_prefix<'a>(mut names: impl Iterator<Item = &'a str>) -> usize {
    let Some(first) = names.next() else {
        return 0;
    };
    let mut len = first.len();
    for n in names {
        len = first
            .bytes()
            .zip(n.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    first[..len].rfind('-').map_or(0, |i| i + 1)
}

/// Each region's store and whether it answered.
/// One line per stream: how far each region holds it, and how far behind
/// the source that is (a hole or an unreadable region in red).
fn stream_lines(app: &App) -> Vec<Line<'static>> {
    let Loadable::Ready(streams) = &app.streams else {
        return match &app.streams {
            Loadable::Failed(e) => vec![Line::from(Span::styled(
                format!("streams: {e}"),
                style(BAD),
            ))],
            _ => Vec::new(),
        };
    };
    let mut lines = Vec::new();
    if let Some(at) = app.streams_at
        && (app.streams_failed.is_some() || !app.streams_fresh())
    {
        let why = app
            .streams_failed
            .as_ref()
            .map_or(String::new(), |e| format!(": {e}"));
        lines.push(Line::from(Span::styled(
            format!(
                "streams as read at {} UTC, not since{why}",
                at.format("%H:%M:%S")
            ),
            style(BAD),
        )));
    }
    for s in streams {
        let source = match (&s.source_error, s.source_position) {
            (Some(e), _) => Span::styled(format!("source unreachable: {e}"), style(BAD)),
            (None, Some(p)) => Span::styled(format!("source at rev {p}"), style(Color::Gray)),
            (None, None) => Span::styled("source not asked", style(DIM)),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{:<14}", s.target), bold()),
            Span::styled("stream, ", style(Color::Gray)),
            source,
        ]));
        for r in &s.regions {
            let (text, c) = region_stream_words(r, app.now);
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<12}", r.region), style(Color::Gray)),
                Span::styled(text, style(c)),
            ]));
            if let Some(g) = &r.gap {
                lines.push(Line::from(vec![
                    Span::raw(format!("  {:<12}", "")),
                    Span::styled(g.clone(), style(WARN)),
                ]));
            }
        }
    }
    lines
}

/// A region's stream in a few words, and their colour.
fn region_stream_words(r: &RegionStream, now: chrono::DateTime<chrono::Utc>) -> (String, Color) {
    if let Some(e) = &r.error {
        return (format!("unreadable ({e})"), BAD);
    }
    if let Some(b) = &r.broken {
        return (format!("BROKEN {b}"), BAD);
    }
    let Some(reaches) = r.reaches else {
        return ("no segments".into(), DIM);
    };
    let lag = model::stream_lag(r, now);
    match (r.lag_revisions, lag) {
        (Some(0), _) => (format!("current (rev {reaches})"), GOOD),
        (Some(revs), Some(lag)) => {
            let c = if lag.num_seconds() < 5 { GOOD } else { WARN };
            let text = format!(
                "{} behind, {revs} revisions (rev {reaches})",
                model::lag(lag)
            );
            (text, c)
        }
        // The source cannot say how far it is: how old its newest change is.
        (None, Some(age)) => (
            format!("newest change {} ago (rev {reaches})", model::lag(age)),
            WARN,
        ),
        (_, None) => (format!("rev {reaches}"), Color::Gray),
    }
}

/// Each region's points and what it stores, then each stream per region.
fn regions_panel(app: &App) -> Paragraph<'static> {
    let streams = stream_lines(app);
    let title = if streams.is_empty() {
        "Regions"
    } else {
        "Regions and streams"
    };
    let mut lines: Vec<Line> = app
        .regions
        .iter()
        .map(|r| {
            let (state, c) = match &r.points {
                Loadable::Loading => ("listing...".to_string(), DIM),
                // An empty store is worth a look: nothing was ever copied
                // there, or the config names the wrong bucket or prefix.
                Loadable::Ready(p) if p.is_empty() => (
                    "no points: nothing stored here yet, or `store` names the wrong bucket or prefix"
                        .to_string(),
                    WARN,
                ),
                Loadable::Ready(p) => {
                    let size: u64 = p.iter().map(|p| p.manifest.stored_size).sum();
                    (
                        format!("{}, {} stored", points_n(p.len()), model::size(size)),
                        GOOD,
                    )
                }
                Loadable::Failed(e) => (format!("UNREACHABLE: {e}"), BAD),
            };
            let (summary, down) = endpoint_lines(app, &r.region);
            let mut first = vec![
                Span::styled(format!("{:<14}", r.region), bold()),
                Span::styled(state, style(c)),
            ];
            first.extend(summary);
            let mut region = vec![Line::from(first)];
            region.extend(down);
            region
        })
        .collect::<Vec<Vec<Line>>>()
        .concat();
    lines.extend(streams);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block(title))
}

/// A region's targets' endpoints: how many answer (words for the region's
/// line), and a line for each one that does not, in `drtool config check`'s
/// words.
fn endpoint_lines(app: &App, region: &str) -> (Option<Span<'static>>, Vec<Line<'static>>) {
    let probed = match &app.health {
        Loadable::Loading => {
            return (
                Some(Span::styled("; endpoints: checking...", style(DIM))),
                Vec::new(),
            );
        }
        Loadable::Failed(e) => {
            let words = format!("; endpoints not checked: {e}");
            return (Some(Span::styled(words, style(WARN))), Vec::new());
        }
        Loadable::Ready(r) => r,
    };
    let here: Vec<_> = probed
        .iter()
        .filter(|r| r.region == region && r.what != "store")
        .collect();
    if here.is_empty() {
        return (None, Vec::new());
    }
    let answering = here.iter().filter(|r| r.reachable).count();
    let summary = Span::styled(
        format!("; endpoints: {answering} of {} answer", here.len()),
        style(if answering == here.len() { GOOD } else { BAD }),
    );
    let down = here
        .iter()
        .filter(|r| !r.reachable)
        .map(|r| {
            let (word, c) = if r.misconfigured {
                ("misconfigured", WARN)
            } else {
                ("DOWN", BAD)
            };
            Line::from(vec![
                Span::raw(format!("{:<14}", "")),
                Span::styled(format!("{} {word}: {}", r.what, r.detail), style(c)),
            ])
        })
        .collect();
    (Some(summary), down)
}

/// The newest lines of a log that fit.
fn draw_log(f: &mut Frame, area: Rect, log: &std::collections::VecDeque<String>, title: &str) {
    let fit = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = log
        .iter()
        .skip(log.len().saturating_sub(fit))
        .map(|l| Line::from(Span::styled(l.clone(), style(Color::Gray))))
        .collect();
    f.render_widget(Paragraph::new(lines).block(block(title)), area);
}

fn draw_points(f: &mut Frame, area: Rect, app: &App) {
    let [tabs, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    draw_region_tabs(f, tabs, app);
    let Some(region) = app.regions.get(app.region) else {
        return;
    };
    if let Some(l) = loading_line(&region.points, &format!("points in {}", region.region)) {
        f.render_widget(
            Paragraph::new(l)
                .wrap(Wrap { trim: false })
                .block(block(&region.region)),
            rest,
        );
        return;
    }
    let points = app.points();
    let wide = rest.width >= 120;
    // Only the rows that show are built: a region can hold thousands.
    let sel = app.selected_in(points.len());
    let offset = window(points.len(), sel, rest.height.saturating_sub(3) as usize);
    let shown = rest.height.saturating_sub(3) as usize;
    let rows: Vec<Row> = points
        .iter()
        .skip(offset)
        .take(shown)
        .map(|p| point_row(app, p, wide))
        .collect();
    let mut header = vec!["TARGET", "POINT", "", "SIZE", "FINISHED", "TESTED"];
    let mut widths = vec![
        Constraint::Length(12),
        Constraint::Length(25),
        Constraint::Length(0),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Min(6),
    ];
    if wide {
        header[2] = "PAYLOAD";
        header.extend(["VERIFIED", "FROM", "FLAGS"]);
        widths = vec![
            Constraint::Length(18),
            Constraint::Length(27),
            Constraint::Length(14),
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Length(12),
            Constraint::Length(12),
            Constraint::Length(16),
            Constraint::Min(10),
        ];
    }
    let title = if points.len() > shown {
        format!(
            "{} in {} ({}-{})",
            points_n(points.len()),
            region.region,
            offset + 1,
            (offset + shown).min(points.len())
        )
    } else {
        format!("{} in {}", points_n(points.len()), region.region)
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(bold().fg(DIM)))
        .row_highlight_style(highlight())
        .block(block(&title));
    f.render_stateful_widget(table, rest, &mut table_state(sel - offset));
}

/// One point's row: target, id, payload, size, age, last restore test
/// (and, wide, where it came from and its flags).
fn point_row(app: &App, p: &PointRow, wide: bool) -> Row<'static> {
    let m = &p.manifest;
    let check = |c: &Option<CheckResult>| match c {
        Some(t) if t.ok => Span::styled(format!("ok {}", model::age(app.now - t.at)), style(GOOD)),
        Some(t) => Span::styled(format!("FAILED {}", model::age(app.now - t.at)), style(BAD)),
        None => Span::styled("-", style(DIM)),
    };
    let tested = check(&p.restore_test);
    let mut cells = vec![
        Cell::from(m.target.clone()),
        Cell::from(m.point_id.clone()),
        Cell::from(if wide { p.payload() } else { String::new() }),
        Cell::from(model::size(m.plaintext_size)),
        Cell::from(format!("{} ago", model::age(app.now - m.finished_at))),
        Cell::from(tested),
    ];
    if wide {
        cells.push(Cell::from(check(&p.verified)));
        cells.push(Cell::from(
            m.copied_from
                .clone()
                .map_or("taken here".into(), |f| format!("from {f}")),
        ));
        cells.push(Cell::from(
            [
                m.is_encrypted().then_some("encrypted"),
                m.signature.as_ref().map(|_| "signed"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
        ));
    }
    Row::new(cells)
}

/// The regions as tabs, each with its number of points.
fn draw_region_tabs(f: &mut Frame, tabs: Rect, app: &App) {
    let mut spans = vec![Span::styled(" regions: ", style(DIM))];
    for (i, r) in app.regions.iter().enumerate() {
        let (extra, c) = match &r.points {
            Loadable::Ready(p) => (format!(" ({})", p.len()), Color::Gray),
            Loadable::Loading => (" (loading)".into(), DIM),
            Loadable::Failed(_) => (" (unreachable)".into(), BAD),
        };
        let st = if i == app.region {
            bold().fg(ACCENT)
        } else {
            style(c)
        };
        spans.push(Span::styled(format!(" {}{extra} ", r.region), st));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), tabs);
}

fn points_n(n: usize) -> String {
    if n == 1 {
        "1 point".into()
    } else {
        format!("{n} points")
    }
}

/// The first row to show of `len` so that row `sel` is on a screen of
/// `height` rows: pages of `height`, so rows do not shift on every move.
fn window(len: usize, sel: usize, height: usize) -> usize {
    if height == 0 || len <= height {
        return 0;
    }
    (sel / height) * height
}

fn find_point<'a>(app: &'a App, region: &str, point: &str) -> Option<&'a PointRow> {
    app.regions
        .iter()
        .find(|r| r.region == region)?
        .points
        .ready()?
        .iter()
        .find(|p| p.id() == point)
}

fn draw_point(f: &mut Frame, area: Rect, app: &App, region: &str, target: &str, point: &str) {
    let Some(p) = find_point(app, region, point) else {
        let text = format!("point {point} of {target} is no longer listed in {region}");
        f.render_widget(Paragraph::new(text).block(block("point")), area);
        return;
    };
    let m = &p.manifest;
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<14}"), style(DIM)),
            Span::raw(v),
        ])
    };
    let mut lines = vec![
        kv("target", format!("{} ({})", m.target, m.target_kind)),
        kv("point", m.point_id.clone()),
        kv("payload", p.payload_text.clone()),
        kv(
            "region",
            format!("{} (taken in {})", m.region, m.source_region),
        ),
        kv("started", m.started_at.to_rfc3339()),
        kv(
            "finished",
            format!(
                "{} ({} ago)",
                m.finished_at.to_rfc3339(),
                model::age(app.now - m.finished_at)
            ),
        ),
        kv("consistency", p.consistency_text.clone()),
        kv(
            "size",
            format!(
                "{} plaintext, {} stored ({} level {})",
                model::size(m.plaintext_size),
                model::size(m.stored_size),
                m.compression.algorithm,
                m.compression.level
            ),
        ),
        kv("sha256", m.plaintext_sha256.clone()),
        kv("stored sha256", m.stored_sha256.clone()),
        kv(
            "encryption",
            m.encryption.as_ref().map_or("none".to_string(), |e| {
                format!("{} to {}", e.scheme, e.recipients.join(", "))
            }),
        ),
        kv(
            "signature",
            m.signature.as_ref().map_or("unsigned".to_string(), |s| {
                format!("{} by key {}", s.algorithm, s.key)
            }),
        ),
        kv(
            "copied from",
            m.copied_from.clone().unwrap_or_else(|| "-".into()),
        ),
        kv(
            "copied to",
            if m.copied_to.is_empty() {
                "-".into()
            } else {
                m.copied_to.join(", ")
            },
        ),
        kv("schedule", m.schedule.clone().unwrap_or_else(|| "-".into())),
    ];
    let items: Vec<String> = m.items.iter().map(|(k, v)| format!("{k} {v}")).collect();
    lines.push(kv("counts", items.join(", ")));
    if !m.labels.is_empty() {
        let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(kv("labels", labels.join(", ")));
    }
    for (label, value) in &p.external {
        lines.push(kv(label, value.clone()));
    }
    lines.push(check_line("verified", &p.verified));
    lines.push(check_line("restore test", &p.restore_test));
    let para = Paragraph::new(Text::from(lines))
        .wrap(Wrap { trim: false })
        .scroll((app.scroll, 0))
        .block(block(&format!("{target} {point}")));
    f.render_widget(para, area);
}

/// A check's last result (verify, restore test) in the point view.
fn check_line(what: &str, result: &Option<CheckResult>) -> Line<'static> {
    match result {
        Some(t) => Line::from(vec![
            Span::styled(format!("{what:<14}"), style(DIM)),
            Span::styled(
                format!(
                    "{} at {}{}{}",
                    if t.ok { "passed" } else { "FAILED" },
                    t.at.format("%Y-%m-%d %H:%M UTC"),
                    if t.message.is_empty() { "" } else { ": " },
                    t.message
                ),
                style(if t.ok { GOOD } else { BAD }),
            ),
        ]),
        None => Line::from(vec![
            Span::styled(format!("{what:<14}"), style(DIM)),
            Span::raw("never"),
        ]),
    }
}

fn last_verdict(app: &App, drill: &str) -> Option<(DrillVerdict, chrono::DateTime<chrono::Utc>)> {
    app.reports
        .ready()?
        .iter()
        .filter(|r| r.drill == drill)
        .max_by_key(|r| r.started_at)
        .map(|r| (r.verdict, r.started_at))
}

fn draw_drills(f: &mut Frame, area: Rect, app: &App) {
    if let Some(l) = loading_line(&app.drills, "drills") {
        f.render_widget(
            Paragraph::new(l)
                .wrap(Wrap { trim: false })
                .block(block("Drills")),
            area,
        );
        return;
    }
    let rows: Vec<Row> = app
        .drill_rows()
        .iter()
        .map(|d: &&DrillRow| match &d.info {
            Ok(i) => {
                let last = match last_verdict(app, &d.name) {
                    Some((v, at)) => Span::styled(
                        format!("{} {} ago", v.label(), model::age(app.now - at)),
                        style(verdict_color(v)),
                    ),
                    None => Span::styled("never run", style(DIM)),
                };
                Row::new(vec![
                    Cell::from(Span::styled(d.name.clone(), bold())),
                    Cell::from(human_ms(i.rto_ms)),
                    Cell::from(human_ms(i.rpo_ms)),
                    Cell::from(last),
                    Cell::from(i.targets.join(", ")),
                ])
            }
            Err(e) => Row::new(vec![
                Cell::from(Span::styled(d.name.clone(), bold().fg(BAD))),
                Cell::from(""),
                Cell::from(""),
                Cell::from(Span::styled("INVALID", style(BAD))),
                Cell::from(Span::styled(e.message.clone(), style(BAD))),
            ]),
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(24),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(22),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["DRILL", "RTO", "RPO", "LAST RUN", "TARGETS"]).style(bold().fg(DIM)))
    .row_highlight_style(highlight())
    .block(block("Drills"));
    f.render_stateful_widget(table, area, &mut table_state(app.selected()));
}

fn draw_drill(f: &mut Frame, area: Rect, app: &App, name: &str) {
    let Some(d) = app
        .drills
        .ready()
        .and_then(|d| d.iter().find(|r| r.name == name))
    else {
        f.render_widget(
            Paragraph::new(format!("no drill {name}")).block(block("drill")),
            area,
        );
        return;
    };
    let mut lines = Vec::new();
    match &d.info {
        Err(e) => lines.push(Line::from(Span::styled(e.message.clone(), style(BAD)))),
        Ok(i) => {
            lines.push(Line::from(vec![
                Span::styled("hypothesis  ", style(DIM)),
                Span::raw(i.hypothesis.clone()),
            ]));
            lines.push(Line::from(vec![
                Span::styled("objectives  ", style(DIM)),
                Span::raw(format!(
                    "RTO {}, RPO {}",
                    human_ms(i.rto_ms),
                    human_ms(i.rpo_ms)
                )),
            ]));
            lines.push(Line::from(vec![
                Span::styled("targets     ", style(DIM)),
                Span::raw(format!(
                    "{} in {}",
                    i.targets.join(", "),
                    i.regions.join(", ")
                )),
            ]));
            let probes: Vec<String> = i.probes.iter().map(|(n, p)| format!("{n} [{p}]")).collect();
            lines.push(Line::from(vec![
                Span::styled("probes      ", style(DIM)),
                Span::raw(probes.join(", ")),
            ]));
            lines.push(Line::from(Span::styled(
                format!("file        {}", d.file.display()),
                style(DIM),
            )));
            lines.push(Line::from(""));
            lines.push(Line::from(Span::styled(
                "steps (dry run: nothing is changed until x runs it)",
                bold(),
            )));
            for s in &i.steps {
                let c = match s.kind.as_str() {
                    "fault" => BAD,
                    "manual" => ACCENT,
                    _ => Color::Gray,
                };
                lines.push(Line::from(vec![
                    Span::raw(format!("{}{:<20} ", "  ".repeat(s.depth + 1), s.name)),
                    Span::styled(s.summary.clone(), style(c)),
                ]));
                if let Some((target, region)) = &s.restores {
                    let (text, c) = newest_in(app, target, region);
                    lines.push(Line::from(Span::styled(
                        format!("{}{:<20} {text}", "  ".repeat(s.depth + 1), ""),
                        style(c),
                    )));
                }
            }
        }
    }
    let para = Paragraph::new(Text::from(lines))
        .wrap(Wrap { trim: false })
        .scroll((app.scroll, 0))
        .block(block(&format!("drill {name}")));
    f.render_widget(para, area);
}

/// What a restore step would restore now: the newest point of `target` in
/// `region`, as the listing shows it.
fn newest_in(app: &App, target: &str, region: &str) -> (String, Color) {
    match app
        .regions
        .iter()
        .find(|r| r.region == region)
        .map(|r| &r.points)
    {
        Some(Loadable::Ready(points)) => match model::filtered(points, "", false)
            .into_iter()
            .find(|p| p.target() == target)
        {
            Some(p) => (
                format!(
                    "newest point there now: {} ({} ago)",
                    p.id(),
                    model::age(app.now - p.manifest.finished_at)
                ),
                DIM,
            ),
            None => (format!("no point of {target} in {region} yet"), WARN),
        },
        Some(Loadable::Failed(e)) => (format!("{region} unreachable: {e}"), BAD),
        Some(Loadable::Loading) | None => (format!("listing {region}..."), DIM),
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64).clamp(0.0, 1.0)
    }
}

fn draw_live(f: &mut Frame, area: Rect, app: &App) {
    let Some(l) = &app.live else {
        f.render_widget(
            Paragraph::new("no drill has run in this session").block(block("drill")),
            area,
        );
        return;
    };
    let wide = area.width >= 120;
    let [gauges, middle, log] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(5),
        Constraint::Length(if area.height > 30 { 10 } else { 5 }),
    ])
    .areas(area);
    draw_gauges(f, gauges, l);
    let [steps, probes] = if wide {
        Layout::horizontal([Constraint::Percentage(64), Constraint::Percentage(36)]).areas(middle)
    } else {
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(middle)
    };
    draw_live_steps(f, steps, l, wide);
    draw_live_probes(f, probes, l, wide);
    draw_live_log(f, log, l, app.scroll as usize);
}

/// The drill's steps, the running one (else the last one done) in sight.
fn draw_live_steps(f: &mut Frame, steps: Rect, l: &LiveDrill, wide: bool) {
    // The step running (else the last one done) stays in sight.
    let focus = l
        .steps
        .iter()
        .position(|s| matches!(s.state, StepState::Running { .. }))
        .or_else(|| {
            l.steps
                .iter()
                .rposition(|s| matches!(s.state, StepState::Done { .. }))
        })
        .unwrap_or(0);
    let fit = steps.height.saturating_sub(3) as usize;
    // Sliding: the focus and the step after it show, the rest fills up.
    let offset = if l.steps.len() <= fit {
        0
    } else {
        (focus + 2).saturating_sub(fit).min(l.steps.len() - fit)
    };
    let rows: Vec<Row> = l
        .steps
        .iter()
        .skip(offset)
        .take(fit.max(1))
        .map(|s| {
            let (state, c, took, detail) = match &s.state {
                StepState::Pending => ("pending".to_string(), DIM, String::new(), &s.line.summary),
                StepState::Running { since_ms } => (
                    "running".into(),
                    ACCENT,
                    human_ms(l.now_ms.saturating_sub(*since_ms)),
                    &s.line.summary,
                ),
                StepState::Done {
                    outcome,
                    ms,
                    message,
                } => (
                    outcome.label().to_string(),
                    outcome_color(*outcome),
                    human_ms(*ms),
                    message,
                ),
            };
            let mut cells = vec![
                Cell::from(format!("{}{}", "  ".repeat(s.line.depth), s.line.name)),
                Cell::from(s.line.kind.clone()),
                Cell::from(Span::styled(state, style(c))),
                Cell::from(took),
            ];
            if wide {
                cells.push(Cell::from(Span::styled(detail.clone(), style(Color::Gray))));
            }
            Row::new(cells)
        })
        .collect();
    let widths = if wide {
        vec![
            Constraint::Length(20),
            Constraint::Length(14),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Min(10),
        ]
    } else {
        vec![
            Constraint::Min(14),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(8),
        ]
    };
    let table = Table::new(rows, widths)
        .header(Row::new(["STEP", "KIND", "STATE", "TIME", "DETAIL"]).style(bold().fg(DIM)))
        .block(block(&if l.steps.len() > fit {
            format!(
                "{} steps {}-{} of {}",
                l.name,
                offset + 1,
                (offset + fit).min(l.steps.len()),
                l.steps.len()
            )
        } else {
            format!("{} {}", l.name, l.run.clone().unwrap_or_default())
        }));
    f.render_widget(table, steps);
}

/// Every probe's last result and the canaries' markers.
fn draw_live_probes(f: &mut Frame, probes: Rect, l: &LiveDrill, wide: bool) {
    let mut prows: Vec<Row> = l
        .probes
        .iter()
        .map(|((probe, phase), p)| {
            let (text, c) = match p.last_ok {
                Some(true) => (format!("pass x{}", p.streak), GOOD),
                Some(false) => (format!("FAIL x{}", p.streak), BAD),
                None => ("not run".into(), DIM),
            };
            Row::new(vec![
                Cell::from(probe.clone()),
                Cell::from(phase.clone()),
                Cell::from(Span::styled(text, style(c))),
                Cell::from(format!("{}/{}", p.passes, p.passes + p.failures)),
            ])
        })
        .collect();
    // Probes with no result yet are listed too.
    for (probe, phase) in &l.info.probes {
        if !l.probes.contains_key(&(probe.clone(), phase.clone())) {
            prows.push(Row::new(vec![
                Cell::from(probe.clone()),
                Cell::from(phase.clone()),
                Cell::from(Span::styled("not run yet", style(DIM))),
                Cell::from(""),
            ]));
        }
    }
    for (canary, n) in &l.canaries {
        prows.push(Row::new(vec![
            Cell::from(format!("canary {canary}")),
            Cell::from("written"),
            Cell::from(Span::styled(format!("{n} markers"), style(ACCENT))),
            Cell::from(""),
        ]));
    }
    let pwidths = if wide {
        [
            Constraint::Min(12),
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Length(8),
        ]
    } else {
        [
            Constraint::Min(10),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(7),
        ]
    };
    let ptable = Table::new(prows, pwidths)
        .header(Row::new(["PROBE", "PHASE", "LAST", "PASSED"]).style(bold().fg(DIM)))
        .block(block("probes and canaries"));
    f.render_widget(ptable, probes);
}

/// The newest lines of the drill's log.
/// The drill's log, following its end unless scrolled back (`k`/`pgup`
/// go back, `G` follows again); long lines wrap.
fn draw_live_log(f: &mut Frame, log: Rect, l: &LiveDrill, back: usize) {
    let height = log.height.saturating_sub(2) as usize;
    let width = log.width.saturating_sub(2).max(1) as usize;
    let back = back.min(l.log.len().saturating_sub(1));
    let end = l.log.len() - back;
    // From the end line back, as many as fill the box once wrapped.
    let mut shown: Vec<&String> = Vec::new();
    let mut rows = 0;
    for line in l.log.iter().take(end).rev() {
        let need = line.chars().count().div_ceil(width).max(1);
        if rows + need > height && !shown.is_empty() {
            break;
        }
        rows += need;
        shown.push(line);
    }
    let lines: Vec<Line> = shown
        .into_iter()
        .rev()
        .map(|s| Line::from(s.clone()))
        .collect();
    let mut title = match (&l.finished, &l.report) {
        (Some(_), Some(Ok(run))) => format!("log  (report {run}: enter opens it)"),
        _ => "log".into(),
    };
    if back > 0 {
        title.push_str(&format!("  (back {back} lines: G follows)"));
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(&title)),
        log,
    );
}

fn draw_gauges(f: &mut Frame, area: Rect, l: &LiveDrill) {
    let [rto, rpo] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let obj_rto = l.info.rto_ms;
    let (value, label) = match (l.rto_ms, l.since_fault_ms) {
        (Some(r), _) => (r, format!("RTO {} of {}", human_ms(r), human_ms(obj_rto))),
        // Over without a recovery: the gauge stops, and says so.
        (None, Some(s)) if l.finished.is_some() => (
            s,
            format!(
                "not recovered: ended {} after the fault (objective {})",
                human_ms(s),
                human_ms(obj_rto)
            ),
        ),
        (None, None) if l.finished.is_some() => {
            (0, "RTO not measured: no fault was injected".to_string())
        }
        (None, Some(s)) => (
            s,
            format!(
                "{} since the fault (objective {})",
                human_ms(s),
                human_ms(obj_rto)
            ),
        ),
        (None, None) => (0, format!("no fault yet (objective {})", human_ms(obj_rto))),
    };
    let c = if value > obj_rto
        || (l.finished.is_some() && l.since_fault_ms.is_some() && l.rto_ms.is_none())
    {
        BAD
    } else if l.rto_ms.is_some() {
        GOOD
    } else if l.finished.is_some() {
        DIM
    } else {
        ACCENT
    };
    f.render_widget(
        Gauge::default()
            .block(block("RTO"))
            .gauge_style(style(c))
            .ratio(ratio(value, obj_rto))
            .label(label),
        rto,
    );
    let obj_rpo = l.info.rpo_ms;
    let (r, label, c) = match l.finished {
        Some((_, _, Some(rpo))) => (
            ratio(rpo, obj_rpo),
            format!("RPO {} of {}", human_ms(rpo), human_ms(obj_rpo)),
            if rpo > obj_rpo { BAD } else { GOOD },
        ),
        Some((_, _, None)) => (0.0, "RPO not measured".into(), DIM),
        None => (
            0.0,
            format!(
                "measured after recovery ({} markers written)",
                l.canaries.values().sum::<u64>()
            ),
            DIM,
        ),
    };
    f.render_widget(
        Gauge::default()
            .block(block("RPO"))
            .gauge_style(style(c))
            .ratio(r)
            .label(label),
        rpo,
    );
}

fn draw_reports(f: &mut Frame, area: Rect, app: &App) {
    if let Some(l) = loading_line(&app.reports, "reports") {
        f.render_widget(Paragraph::new(l).block(block("Reports")), area);
        return;
    }
    let wide = area.width >= 120;
    let rows: Vec<Row> = app
        .report_rows()
        .iter()
        .map(|r| {
            let rto_bad = r.rto_ms.is_none_or(|v| v > r.objectives.0);
            let rpo_bad = r.rpo_ms.is_none_or(|v| v > r.objectives.1);
            Row::new(vec![
                Cell::from(r.started_at.format("%Y-%m-%d %H:%M").to_string()),
                Cell::from(r.drill.clone()),
                Cell::from(Span::styled(
                    r.verdict.label(),
                    style(verdict_color(r.verdict)),
                )),
                Cell::from(Span::styled(
                    opt_ms(r.rto_ms),
                    style(if rto_bad { BAD } else { GOOD }),
                )),
                Cell::from(Span::styled(
                    opt_ms(r.rpo_ms),
                    style(if rpo_bad { BAD } else { GOOD }),
                )),
                Cell::from(Span::styled(
                    if wide {
                        r.run_id.clone()
                    } else {
                        String::new()
                    },
                    style(DIM),
                )),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(16),
            Constraint::Length(22),
            Constraint::Length(17),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Min(0),
        ],
    )
    .header(
        Row::new([
            "STARTED",
            "DRILL",
            "VERDICT",
            "RTO",
            "RPO",
            if wide { "RUN" } else { "" },
        ])
        .style(bold().fg(DIM)),
    )
    .row_highlight_style(highlight())
    .block(block("Drill runs"));
    f.render_stateful_widget(table, area, &mut table_state(app.selected()));
}

fn draw_report(f: &mut Frame, area: Rect, app: &App, run: &str) {
    let report = match &app.report {
        Some((r, Loadable::Ready(rep))) if r == run => rep,
        Some((r, Loadable::Failed(e))) if r == run => {
            f.render_widget(
                Paragraph::new(Span::styled(e.clone(), style(BAD))).block(block("report")),
                area,
            );
            return;
        }
        _ => {
            f.render_widget(
                Paragraph::new(Span::styled("loading the report...", style(DIM)))
                    .block(block("report")),
                area,
            );
            return;
        }
    };
    let [top, history, rest] = Layout::vertical([
        Constraint::Length(report.summary.len().min(4) as u16 + 3),
        Constraint::Length(4),
        Constraint::Min(4),
    ])
    .areas(area);
    let mut lines = vec![Line::from(vec![
        Span::styled(
            report.verdict.label(),
            bold().fg(verdict_color(report.verdict)),
        ),
        Span::raw(format!(
            "  RTO {} (objective {})  RPO {} (objective {}), {} markers lost",
            opt_ms(report.rto.rto_ms),
            human_ms(report.objectives.rto_ms),
            opt_ms(report.rpo.judged_ms()),
            human_ms(report.objectives.rpo_ms),
            report.rpo.lost_markers
        )),
    ])];
    lines.extend(report.summary.iter().take(4).map(|s| Line::from(s.clone())));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(&format!("{} {}", report.drill, report.run_id))),
        top,
    );
    draw_history(f, history, app, &report.drill);
    draw_timeline(f, rest, app, report);
}

fn draw_history(f: &mut Frame, area: Rect, app: &App, drill: &str) {
    let runs = app
        .reports
        .ready()
        .map(|r| model::history(r, drill))
        .unwrap_or_default();
    // Runs that measured nothing (aborted before recovery) are not zeros.
    let rto: Vec<u64> = runs.iter().filter_map(|r| r.rto_ms).collect();
    let rpo: Vec<u64> = runs.iter().filter_map(|r| r.rpo_ms).collect();
    let [a, b] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let title = |what: &str, v: &[u64]| {
        let unmeasured = runs.len() - v.len();
        format!(
            "{what} over {} runs (last {}){}",
            v.len(),
            v.last().map_or("-".to_string(), |x| human_ms(*x)),
            if unmeasured > 0 {
                format!(", {unmeasured} not measured")
            } else {
                String::new()
            }
        )
    };
    f.render_widget(
        Sparkline::default()
            .block(block(&title("RTO", &rto)))
            .data(&rto)
            .style(style(ACCENT)),
        a,
    );
    f.render_widget(
        Sparkline::default()
            .block(block(&title("RPO", &rpo)))
            .data(&rpo)
            .style(style(WARN)),
        b,
    );
}

fn draw_timeline(f: &mut Frame, area: Rect, app: &App, r: &DrillReport) {
    let total = r.duration_ms.max(1);
    let bar_width = (area.width as usize)
        .saturating_sub(2 + 22 + 10 + 9)
        .max(10);
    let mut lines: Vec<Line> = Vec::new();
    for s in &r.steps {
        // u128: a report file's times are outside input.
        let at = |ms: u64| {
            (ms as u128 * bar_width as u128 / total as u128).min(bar_width as u128) as usize
        };
        let start = at(s.start_ms);
        let end = at(s.end_ms).clamp(start + 1, bar_width.max(start + 1));
        let bar = format!("{}{}", " ".repeat(start), "█".repeat(end - start));
        lines.push(Line::from(vec![
            Span::raw(format!(
                "{:<22}",
                s.name.chars().take(21).collect::<String>()
            )),
            Span::styled(
                format!("{bar:<bar_width$}"),
                style(outcome_color(s.outcome)),
            ),
            Span::raw(format!(
                " {:>8}",
                human_ms(s.end_ms.saturating_sub(s.start_ms))
            )),
            Span::styled(
                format!(" {}", s.outcome.label()),
                style(outcome_color(s.outcome)),
            ),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("probes", bold())));
    for p in &r.probes {
        let (text, c) = if !p.executed {
            ("not executed".to_string(), DIM)
        } else if p.failures == 0 {
            (format!("{} of {} passed", p.passes, p.runs), GOOD)
        } else {
            (
                format!("{} of {} passed", p.passes, p.runs),
                if p.phase.name() == "during" {
                    WARN
                } else {
                    BAD
                },
            )
        };
        let extra = match (p.met_at_ms, p.availability) {
            (Some(ms), _) => format!(", met {} after the fault", human_ms(ms)),
            (_, Some(a)) => format!(", availability {:.1}%", a * 100.0),
            _ => String::new(),
        };
        lines.push(Line::from(vec![
            Span::raw(format!("  {:<20} {:<7} ", p.probe, p.phase.name())),
            Span::styled(format!("{text}{extra}"), style(c)),
        ]));
    }
    for e in &r.errors {
        lines.push(Line::from(Span::styled(format!("error: {e}"), style(BAD))));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        format!(
            "{:<22}{:<10}{:<9}{:>8}  WHAT HAPPENED",
            "STEP", "KIND", "OUTCOME", "TIME"
        ),
        bold(),
    )));
    for s in &r.steps {
        lines.push(Line::from(vec![
            Span::raw(format!(
                "{:<22}{:<10}",
                s.name.chars().take(21).collect::<String>(),
                s.kind.chars().take(9).collect::<String>()
            )),
            Span::styled(
                format!("{:<9}", s.outcome.label()),
                style(outcome_color(s.outcome)),
            ),
            Span::raw(format!(
                "{:>8}  {}",
                human_ms(s.end_ms.saturating_sub(s.start_ms)),
                s.message
            )),
        ]));
    }
    lines.extend(cleanup_lines(r));
    let para = Paragraph::new(lines)
        .scroll((app.scroll, 0))
        .block(block(&format!(
            "timeline ({} in all)",
            human_ms(r.duration_ms)
        )));
    f.render_widget(para, area);
}

/// What the run undid, and what it could not (report.md's cleanup).
fn cleanup_lines(r: &DrillReport) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(""), Line::from(Span::styled("cleanup", bold()))];
    if r.cleanup.is_empty() {
        lines.push(Line::from(Span::styled("  nothing to undo", style(DIM))));
    }
    for c in &r.cleanup {
        let (word, colour) = match (c.ok, c.left_behind) {
            (_, true) => ("LEFT BEHIND", BAD),
            (true, false) => ("ok", GOOD),
            (false, false) => ("FAILED", BAD),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("  {word:<12}"), style(colour)),
            Span::raw(format!("{}: {}", c.what, c.message)),
        ]));
    }
    lines
}

fn draw_schedules(f: &mut Frame, area: Rect, app: &App) {
    if let Some(l) = loading_line(&app.schedules, "schedules") {
        f.render_widget(
            Paragraph::new(l)
                .wrap(Wrap { trim: false })
                .block(block("Schedules")),
            area,
        );
        return;
    }
    let wide = area.width >= 120;
    let rows_data = app.schedule_rows();
    let rows: Vec<Row> = rows_data
        .iter()
        .map(|s| {
            let (last, c) = match s
                .state
                .as_ref()
                .and_then(|st| st.last_run.map(|at| (at, st.last_outcome)))
            {
                Some((at, Some(crate::engine::Verdict::Ok))) => {
                    (format!("ok {} ago", model::age(app.now - at)), GOOD)
                }
                Some((at, Some(_))) => (format!("FAILED {} ago", model::age(app.now - at)), BAD),
                Some((at, None)) => (format!("{} ago", model::age(app.now - at)), Color::Gray),
                None => ("never".into(), DIM),
            };
            let next = if s.paused {
                Span::styled("paused", style(WARN))
            } else {
                Span::raw(s.next_runs.first().cloned().unwrap_or_else(|| "-".into()))
            };
            Row::new(vec![
                Cell::from(Span::styled(s.name.clone(), bold())),
                Cell::from(if wide {
                    format!("{} {}", s.cron, s.timezone)
                } else {
                    s.cron.clone()
                }),
                Cell::from(next),
                Cell::from(Span::styled(last, style(c))),
                Cell::from(s.targets.join(", ")),
            ])
        })
        .collect();
    let [top, glance] = Layout::vertical([Constraint::Min(4), Constraint::Length(4)]).areas(area);
    let table = Table::new(
        rows,
        [
            Constraint::Length(18),
            Constraint::Length(if wide { 28 } else { 12 }),
            Constraint::Length(20),
            Constraint::Length(14),
            Constraint::Min(8),
        ],
    )
    .header(Row::new(["SCHEDULE", "CRON", "NEXT RUN", "LAST RUN", "TARGETS"]).style(bold().fg(DIM)))
    .row_highlight_style(highlight())
    .block(block("Schedules"));
    f.render_stateful_widget(table, top, &mut table_state(app.selected()));
    let lines = schedules_glance(app);
    let [a, b] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(glance);
    f.render_widget(Paragraph::new(lines), a);
    if let Some(s) = rows_data.get(app.selected()) {
        let detail = vec![
            Line::from(Span::styled(s.name.clone(), bold())),
            Line::from(s.retention.clone()),
            Line::from(format!("next: {}", s.next_runs.join(", "))),
        ];
        f.render_widget(Paragraph::new(detail).wrap(Wrap { trim: true }), b);
    }
}

/// The Schedules screen's summary: how many, which fail, the last restore test.
fn schedules_glance(app: &App) -> Vec<Line<'static>> {
    let all = app.schedules.ready().map(Vec::as_slice).unwrap_or_default();
    let paused = all.iter().filter(|s| s.paused).count();
    let failing: Vec<&str> = all
        .iter()
        .filter(|s| {
            s.state.as_ref().is_some_and(
                |st| matches!(st.last_outcome, Some(v) if v != crate::engine::Verdict::Ok),
            )
        })
        .map(|s| s.name.as_str())
        .collect();
    let tested = all
        .iter()
        .filter_map(|s| s.state.as_ref().and_then(|st| st.last_restore_test))
        .max();
    let mut lines = vec![
        Line::from(format!("{} schedules, {} paused", all.len(), paused)),
        Line::from(Span::styled(
            if failing.is_empty() {
                "no schedule failing".to_string()
            } else {
                format!("failing: {}", failing.join(", "))
            },
            style(if failing.is_empty() { GOOD } else { BAD }),
        )),
    ];
    lines.push(Line::from(format!(
        "last restore test: {}",
        tested.map_or("never".to_string(), |t| format!(
            "{} ago",
            model::age(app.now - t)
        ))
    )));
    lines
}

fn draw_wizard(f: &mut Frame, area: Rect, app: &App, w: &Wizard) {
    let steps = [
        WizardStep::Region,
        WizardStep::Target,
        WizardStep::Point,
        WizardStep::Options,
        WizardStep::Plan,
        WizardStep::Confirm,
    ];
    let mut progress = vec![Span::styled(" restore: ", style(DIM))];
    for s in steps {
        let st = if s == w.step {
            bold().fg(ACCENT)
        } else {
            style(DIM)
        };
        progress.push(Span::styled(format!("{} ", s.title()), st));
        if s != WizardStep::Confirm {
            progress.push(Span::styled("› ", style(DIM)));
        }
    }
    let chosen = format!(
        " region {}  target {}  point {}",
        w.region.as_deref().unwrap_or("?"),
        w.target.as_deref().unwrap_or("?"),
        w.point.as_deref().unwrap_or("newest")
    );
    let [head, picked, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(Line::from(progress)), head);
    f.render_widget(
        Paragraph::new(Span::styled(chosen, style(Color::Gray))),
        picked,
    );
    match w.step {
        WizardStep::Region | WizardStep::Target | WizardStep::Point | WizardStep::Options => {
            let rows: Vec<Row> = app
                .wizard_choices(w)
                .into_iter()
                .map(|c| Row::new(vec![Cell::from(c)]))
                .collect();
            let table = Table::new(rows, [Constraint::Min(10)])
                .row_highlight_style(highlight())
                .block(block(&format!("choose the {}", w.step.title())));
            f.render_stateful_widget(table, body, &mut table_state(w.sel));
        }
        WizardStep::Plan | WizardStep::Confirm => draw_wizard_plan(f, body, app, w),
        WizardStep::Running => {
            let lines = match &w.result {
                Loadable::Loading => vec![Line::from(Span::styled("restoring...", style(ACCENT)))],
                Loadable::Ready(l) => {
                    let mut out: Vec<Line> = l
                        .iter()
                        .map(|s| Line::from(Span::styled(s.clone(), style(GOOD))))
                        .collect();
                    out.push(Line::from("enter: close"));
                    out
                }
                Loadable::Failed(e) => vec![
                    Line::from(Span::styled(e.clone(), style(BAD))),
                    Line::from("enter: close"),
                ],
            };
            f.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(block("restore")),
                body,
            );
        }
    }
}

/// The wizard's plan, scrolling, with the confirmation prompt below it.
fn draw_wizard_plan(f: &mut Frame, body: Rect, app: &App, w: &Wizard) {
    let lines: Vec<Line> = match &w.plan {
        Loadable::Loading => vec![Line::from(Span::styled(
            "planning: reading and verifying the point...",
            style(DIM),
        ))],
        Loadable::Failed(e) => vec![Line::from(Span::styled(e.clone(), style(BAD)))],
        Loadable::Ready(p) => p
            .lines
            .iter()
            .map(|l| {
                let loud = l.contains("REPLACE")
                    || l.contains("DROP")
                    || l.contains("OVERWRITE")
                    || l.contains("UPDATE");
                Line::from(Span::styled(
                    l.clone(),
                    style(if loud { WARN } else { Color::Gray }),
                ))
            })
            .collect(),
    };
    // The prompt stays in sight below the plan, which scrolls (j/k).
    let [plan_area, prompt_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(3)]).areas(body);
    let mut prompt = Vec::new();
    if let (WizardStep::Confirm, Loadable::Ready(p)) = (w.step, &w.plan) {
        prompt.push(Line::from(vec![
            Span::styled(
                format!(
                    "{}Type the target's name ({}) and enter to restore: ",
                    if p.destructive {
                        "This plan replaces or overwrites existing data. "
                    } else {
                        ""
                    },
                    p.target
                ),
                bold().fg(if p.destructive { BAD } else { WARN }),
            ),
            Span::styled(format!("{}_", w.typed), bold()),
        ]));
    } else if let Loadable::Ready(_) = &w.plan {
        prompt.push(Line::from(Span::styled(
            "enter: confirm this plan    esc: back    j/k: scroll the plan",
            style(ACCENT),
        )));
    }
    let para = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .scroll((app.scroll, 0))
        .block(block("the plan, as restore --dry-run prints it"));
    f.render_widget(para, plan_area);
    f.render_widget(
        Paragraph::new(prompt).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::TOP)
                .border_style(style(DIM)),
        ),
        prompt_area,
    );
}

/// A rectangle of `w` x `h` in the middle of `area` (clipped to it).
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_box(f: &mut Frame, title: &str, lines: &[String], c: Color) {
    let width = lines
        .iter()
        .map(|l| l.chars().count())
        .chain(std::iter::once(title.chars().count()))
        .max()
        .unwrap_or(20)
        .min(u16::MAX as usize / 2) as u16
        + 4;
    let inner = width.max(30).min(f.area().width).saturating_sub(2).max(1) as usize;
    let rows: usize = lines
        .iter()
        .map(|l| l.chars().count().div_ceil(inner).max(1))
        .sum();
    let rows = rows.min(u16::MAX as usize / 2) as u16;
    let area = centered(f.area(), width.max(30), rows + 2);
    f.render_widget(Clear, area);
    let text: Vec<Line> = lines.iter().map(|l| Line::from(l.clone())).collect();
    f.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(style(c))
                .title(Span::styled(format!(" {title} "), bold().fg(c))),
        ),
        area,
    );
}

fn draw_help(f: &mut Frame, app: &App) {
    let help = app.keymap.help(app.read_only);
    let mut lines: Vec<String> = help.iter().map(|(k, h)| format!("{k:<16} {h}")).collect();
    // A short terminal: two columns, each entry cut to fit.
    if lines.len() + 8 > f.area().height as usize {
        let col = (f.area().width.saturating_sub(6) / 2) as usize;
        let cut = |(k, h): &(String, &str)| {
            let k = format!("{k:<10} ");
            let room = col.saturating_sub(1 + k.chars().count());
            let mut e = format!("{k}{}", fit_words(h, room));
            while e.chars().count() < col {
                e.push(' ');
            }
            e
        };
        let half = help.len().div_ceil(2);
        lines = (0..half)
            .map(|i| {
                let right = help.get(i + half).map(cut).unwrap_or_default();
                format!("{}{}", cut(&help[i]), right).trim_end().to_string()
            })
            .collect();
    }
    lines.push(String::new());
    lines.push(":points REGION  :drill NAME  :reports [DRILL]  :schedules  :overview  :q".into());
    lines.push("dialogs: y yes, n/esc no   manual step: enter done, a abort (asks)".into());
    if app.read_only {
        lines.push("read-only: actions that change anything are hidden".into());
    }
    lines.push("esc or ? closes this help".into());
    draw_box(f, "keys", &lines, ACCENT);
}

/// `text` in at most `width` columns: whole, or cut after its last word
/// that fits, with `…` (never in the middle of a word, unless the first
/// word alone is too long).
pub fn fit_words(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let room = width.saturating_sub(1);
    let head: String = text.chars().take(room).collect();
    let at_word = match text.chars().nth(room) {
        Some(' ') => Some(head.len()),
        _ => head.rfind(' '),
    };
    let kept = match at_word {
        Some(i) if i > 0 => head[..i].trim_end(),
        _ => head.as_str(),
    };
    if width == 0 {
        return String::new();
    }
    format!("{kept}…")
}

fn draw_palette(f: &mut Frame, app: &App, input: &str, sel: usize) {
    let options = app.completions(input);
    let area = f.area();
    let height = (options.len().min(8) + 3) as u16;
    let rect = Rect {
        x: area.x + 2,
        y: area.y + 2,
        width: area.width.saturating_sub(4).min(70),
        height: height.min(area.height.saturating_sub(2)),
    };
    f.render_widget(Clear, rect);
    let mut lines = vec![Line::from(vec![
        Span::styled(":", bold().fg(ACCENT)),
        Span::styled(format!("{input}_"), bold()),
    ])];
    for (i, o) in options.iter().take(8).enumerate() {
        let st = if i == sel {
            highlight().fg(ACCENT)
        } else {
            style(Color::Gray)
        };
        lines.push(Line::from(Span::styled(format!("  {o}"), st)));
    }
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(style(ACCENT))
                .title(" command (tab completes, enter runs) "),
        ),
        rect,
    );
}
