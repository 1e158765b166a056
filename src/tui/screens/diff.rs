//! `d` on a point: compare it with the live target or another point of the
//! target in the same region (the choice first), then the changes as
//! `drtool diff` prints them, scrolling: `+` added, `-` removed, `~`
//! changed with the text diff's hunks, and the summary on top. `esc` goes
//! back to the choice, then closes.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use crate::tui::keymap::Command;
use crate::tui::model::{Failure, Loadable};
use crate::tui::theme::{ACCENT, BAD, DIM, GOOD, WARN, block, bold, highlight, style, table_state};

/// What the point is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum With {
    /// The live target in the point's region.
    Live,
    /// Another point, by id.
    Point(String),
}

/// A choice of the first step: what it compares with, and how it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub with: With,
    pub label: String,
}

/// A diff to run, with the request's number.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffAsk {
    pub seq: u64,
    pub region: String,
    pub target: String,
    pub point: String,
    pub with: With,
    pub prefix: Option<String>,
}

/// A diff's outcome as the view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    /// `N added, N removed, N changed, N the same: FROM -> TO`.
    pub summary: String,
    pub differs: bool,
    /// Lines on either side (their consistency, what was left out).
    pub about: Vec<String>,
    pub lines: Vec<String>,
    /// Changes past the lines kept, not shown.
    pub left_out: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Want {
    Nothing,
    Pass,
    Diff(DiffAsk),
    Close,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiffView {
    pub region: String,
    pub target: String,
    pub point: String,
    pub prefix: Option<String>,
    pub choices: Vec<Choice>,
    pub sel: usize,
    /// None while choosing; the comparison asked for, then its answer.
    pub asked: Option<(Choice, Loadable<Shown>)>,
    pub seq: u64,
    pub scroll: usize,
}

impl DiffView {
    pub fn new(
        (region, target, point): (&str, &str, &str),
        prefix: Option<String>,
        choices: Vec<Choice>,
    ) -> DiffView {
        DiffView {
            region: region.to_string(),
            target: target.to_string(),
            point: point.to_string(),
            prefix,
            choices,
            sel: 0,
            asked: None,
            seq: 0,
            scroll: 0,
        }
    }

    pub fn crumb(&self) -> String {
        match &self.asked {
            Some((c, _)) => format!("diff › {}", c.label),
            None => "diff".into(),
        }
    }

    /// A diff's answer; dropped unless it is the last one asked for.
    pub fn answered(&mut self, seq: u64, r: Result<Shown, Failure>) {
        if seq != self.seq {
            return;
        }
        if let Some((_, shown)) = self.asked.as_mut() {
            *shown = match r {
                Ok(s) => Loadable::Ready(s),
                Err(e) => Loadable::Failed(e.message),
            };
        }
    }

    fn lines(&self) -> usize {
        match &self.asked {
            Some((_, Loadable::Ready(s))) => s.lines.len(),
            _ => 0,
        }
    }

    pub fn command(&mut self, c: Command, seq: &mut u64) -> Want {
        if self.asked.is_some() {
            let last = self.lines().saturating_sub(1);
            match c {
                Command::Up => self.scroll = self.scroll.saturating_sub(1),
                Command::Down => self.scroll = (self.scroll + 1).min(last),
                Command::PageUp => self.scroll = self.scroll.saturating_sub(20),
                Command::PageDown => self.scroll = (self.scroll + 20).min(last),
                Command::Top => self.scroll = 0,
                Command::Bottom => self.scroll = last,
                Command::Back => {
                    self.asked = None;
                    self.scroll = 0;
                }
                Command::Refresh => return self.ask(seq),
                _ => return Want::Pass,
            }
            return Want::Nothing;
        }
        let last = self.choices.len().saturating_sub(1);
        match c {
            Command::Up => self.sel = self.sel.saturating_sub(1),
            Command::Down => self.sel = (self.sel + 1).min(last),
            Command::Top | Command::PageUp => self.sel = 0,
            Command::Bottom | Command::PageDown => self.sel = last,
            Command::Open => return self.ask(seq),
            Command::Back => return Want::Close,
            _ => return Want::Pass,
        }
        Want::Nothing
    }

    /// Runs the chosen comparison (again).
    fn ask(&mut self, seq: &mut u64) -> Want {
        let choice = match &self.asked {
            Some((c, _)) => c.clone(),
            None => match self.choices.get(self.sel) {
                Some(c) => c.clone(),
                None => return Want::Nothing,
            },
        };
        *seq += 1;
        self.seq = *seq;
        self.scroll = 0;
        self.asked = Some((choice.clone(), Loadable::Loading));
        Want::Diff(DiffAsk {
            seq: self.seq,
            region: self.region.clone(),
            target: self.target.clone(),
            point: self.point.clone(),
            with: choice.with,
            prefix: self.prefix.clone(),
        })
    }
}

/// A diff line's colour: what was added green, removed red, changed yellow.
fn line_color(l: &str) -> Color {
    let hunk = l.strip_prefix("    ");
    match (l.chars().next(), hunk.and_then(|h| h.chars().next())) {
        (Some('+'), _) | (_, Some('+')) => GOOD,
        (Some('-'), _) | (_, Some('-')) => BAD,
        (Some('~'), _) => WARN,
        (_, Some('@')) => ACCENT,
        _ => Color::Gray,
    }
}

pub fn draw(f: &mut Frame, area: Rect, v: &DiffView) {
    let under = v
        .prefix
        .as_ref()
        .map_or(String::new(), |p| format!(" under {p}"));
    let Some((choice, shown)) = &v.asked else {
        let rows: Vec<Row> = v
            .choices
            .iter()
            .map(|c| Row::new(vec![Cell::from(c.label.clone())]))
            .collect();
        let table = Table::new(rows, [Constraint::Min(10)])
            .row_highlight_style(highlight())
            .block(block(&format!(
                "compare point {} of {}{under} with",
                v.point, v.target
            )));
        f.render_stateful_widget(table, area, &mut table_state(v.sel));
        return;
    };
    let title = format!("point {}{under} -> {}", v.point, choice.label);
    let s = match shown {
        Loadable::Loading => {
            let text = "comparing: reading both sides (progress below)...";
            f.render_widget(
                Paragraph::new(Span::styled(text, style(DIM))).block(block(&title)),
                area,
            );
            return;
        }
        Loadable::Failed(e) => {
            f.render_widget(
                Paragraph::new(Span::styled(e.clone(), style(BAD)))
                    .wrap(ratatui::widgets::Wrap { trim: false })
                    .block(block(&title)),
                area,
            );
            return;
        }
        Loadable::Ready(s) => s,
    };
    // The summary wraps on a narrow screen: its sides are long.
    let summary_rows = (s.summary.chars().count() as u16 + 1).div_ceil(area.width.max(1));
    let head_rows = summary_rows + s.about.len().min(2) as u16;
    let [head, body] =
        Layout::vertical([Constraint::Length(head_rows), Constraint::Min(3)]).areas(area);
    let mut head_lines = vec![Line::from(Span::styled(
        format!(" {}", s.summary),
        bold().fg(if s.differs { WARN } else { GOOD }),
    ))];
    head_lines.extend(
        s.about
            .iter()
            .take(2)
            .map(|a| Line::from(Span::styled(format!(" {a}"), style(DIM)))),
    );
    f.render_widget(
        Paragraph::new(head_lines).wrap(ratatui::widgets::Wrap { trim: false }),
        head,
    );
    let mut lines: Vec<Line> = s
        .lines
        .iter()
        .skip(v.scroll)
        .take(body.height as usize)
        .map(|l| Line::from(Span::styled(l.clone(), style(line_color(l)))))
        .collect();
    if s.lines.is_empty() {
        lines.push(Line::from(Span::styled("no differences", style(GOOD))));
    }
    let mut title = title;
    if s.left_out > 0 {
        title.push_str(&format!(
            "  ({} more changes: drtool diff lists them all)",
            s.left_out
        ));
    }
    f.render_widget(Paragraph::new(lines).block(block(&title)), body);
}
