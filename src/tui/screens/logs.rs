//! `l`: the log viewer. This session's activity (what the dashboard did and
//! was told), the running drill's log, and the dashboard's log file
//! (`ui.log`, its newest lines), one at a time (`l`, `right` and `left`
//! switch), showing the newest lines until scrolled; `/` searches as you
//! type, `n` / `N` go to the next / previous line that holds the text (any
//! case), and every match is highlighted. `esc` clears the search, then
//! closes.

use std::cell::Cell;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::keymap::{Command, Input};
use crate::tui::model::Loadable;
use crate::tui::theme::{ACCENT, BAD, DIM, block, style};

/// One log the viewer shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    pub lines: Loadable<Vec<String>>,
}

/// What a key asked of the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Want {
    Nothing,
    /// Not one of the viewer's keys.
    Pass,
    Close,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogView {
    pub sources: Vec<Source>,
    /// The source shown.
    pub at: usize,
    /// The first line shown; ignored while following the newest.
    pub top: usize,
    pub follow: bool,
    pub query: String,
    pub typing: bool,
    /// The line of the match last gone to.
    pub hit: Option<usize>,
    /// Lines the last frame had room for (pages move by it).
    page: Cell<usize>,
}

/// The name of the dashboard's log file source.
pub const FILE: &str = "ui.log";

impl LogView {
    pub fn new(sources: Vec<Source>) -> LogView {
        LogView {
            sources,
            at: 0,
            top: 0,
            follow: true,
            query: String::new(),
            typing: false,
            hit: None,
            page: Cell::new(20),
        }
    }

    pub fn crumb(&self) -> String {
        match self.sources.get(self.at) {
            Some(s) => format!("logs › {}", s.name),
            None => "logs".into(),
        }
    }

    /// The log file's lines, read by the worker.
    pub fn file_read(&mut self, lines: Loadable<Vec<String>>) {
        if let Some(s) = self.sources.iter_mut().find(|s| s.name == FILE) {
            s.lines = lines;
        }
    }

    fn lines(&self) -> &[String] {
        match self.sources.get(self.at).map(|s| &s.lines) {
            Some(Loadable::Ready(l)) => l,
            _ => &[],
        }
    }

    /// The first line shown, as the last frame had room.
    fn first(&self) -> usize {
        let len = self.lines().len();
        let page = self.page.get().max(1);
        if self.follow {
            len.saturating_sub(page)
        } else {
            self.top.min(len.saturating_sub(1))
        }
    }

    fn scroll_to(&mut self, top: usize) {
        let len = self.lines().len();
        let page = self.page.get().max(1);
        self.top = top;
        self.follow = top + page >= len;
    }

    /// Goes to the line `hit`, in the middle of the page when it can.
    fn show(&mut self, hit: usize) {
        self.hit = Some(hit);
        let half = self.page.get() / 2;
        self.scroll_to(hit.saturating_sub(half));
        // A match near the end is still shown where it is, not followed past.
        self.follow = false;
    }

    /// The next line at or after `from` (before, backwards) that matches,
    /// wrapping around.
    fn find(&self, from: usize, forward: bool) -> Option<usize> {
        let needle = self.query.to_lowercase();
        if needle.is_empty() {
            return None;
        }
        let lines = self.lines();
        let n = lines.len();
        (0..n)
            .map(|k| {
                if forward {
                    (from + k) % n
                } else {
                    (from + n - k % n) % n
                }
            })
            .find(|&i| lines[i].to_lowercase().contains(&needle))
    }

    pub fn command(&mut self, c: Command) -> Want {
        let page = self.page.get().max(1);
        let first = self.first();
        match c {
            Command::Up => self.scroll_to(first.saturating_sub(1)),
            Command::Down => self.scroll_to(first + 1),
            Command::PageUp => self.scroll_to(first.saturating_sub(page)),
            Command::PageDown => self.scroll_to(first + page),
            Command::Top => self.scroll_to(0),
            Command::Bottom => self.follow = true,
            Command::Filter => self.typing = true,
            Command::NextMatch | Command::PrevMatch => {
                let forward = c == Command::NextMatch;
                let n = self.lines().len().max(1);
                let from = match (self.hit, forward) {
                    (Some(h), true) => (h + 1) % n,
                    (Some(h), false) => (h + n - 1) % n,
                    (None, _) => first,
                };
                match self.find(from, forward) {
                    Some(h) => self.show(h),
                    None => self.hit = None,
                }
            }
            Command::Logs | Command::NextRegion => self.switch(1),
            Command::PrevRegion => self.switch(self.sources.len().saturating_sub(1)),
            Command::Back if !self.query.is_empty() => {
                self.query.clear();
                self.hit = None;
            }
            Command::Back => return Want::Close,
            _ => return Want::Pass,
        }
        Want::Nothing
    }

    /// Shows the source `by` places on, at its newest lines.
    fn switch(&mut self, by: usize) {
        if !self.sources.is_empty() {
            self.at = (self.at + by) % self.sources.len();
        }
        self.follow = true;
        self.hit = None;
    }

    /// A key while the search is typed: it searches as it changes.
    pub fn typed(&mut self, i: Input) -> Want {
        match i {
            Input::Char(c) => self.query.push(c),
            Input::Backspace => {
                self.query.pop();
            }
            Input::Enter | Input::Tab => {
                self.typing = false;
                return Want::Nothing;
            }
            Input::Esc => {
                self.typing = false;
                self.query.clear();
                self.hit = None;
                return Want::Nothing;
            }
            _ => return Want::Nothing,
        }
        let from = self.hit.unwrap_or_else(|| self.first());
        match self.find(from, true) {
            Some(h) => self.show(h),
            None => self.hit = None,
        }
        Want::Nothing
    }
}

/// `line` with every case-insensitive occurrence of `needle` marked.
fn marked(line: &str, needle: &str, current: bool) -> Line<'static> {
    let base = if current {
        style(Color::White).add_modifier(Modifier::BOLD)
    } else {
        style(Color::Gray)
    };
    let found = style(Color::Black).bg(ACCENT);
    let lower = line.to_lowercase();
    // Lowercasing can change byte lengths (rare outside ASCII): then the
    // line is marked as a whole.
    if needle.is_empty() || lower.len() != line.len() {
        let whole = !needle.is_empty() && lower.contains(needle);
        return Line::from(Span::styled(
            line.to_string(),
            if whole { found } else { base },
        ));
    }
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(k) = lower[at..].find(needle) {
        let start = at + k;
        let end = start + needle.len();
        if start > at {
            spans.push(Span::styled(line[at..start].to_string(), base));
        }
        spans.push(Span::styled(line[start..end].to_string(), found));
        at = end;
    }
    if at < line.len() {
        spans.push(Span::styled(line[at..].to_string(), base));
    }
    Line::from(spans)
}

pub fn draw(f: &mut Frame, area: Rect, v: &LogView) {
    let rows = area.height.saturating_sub(2) as usize;
    v.page.set(rows.max(1));
    let names: Vec<String> = v
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if i == v.at {
                format!("[{}]", s.name)
            } else {
                s.name.clone()
            }
        })
        .collect();
    let mut title = names.join(" ");
    let Some(source) = v.sources.get(v.at) else {
        f.render_widget(Paragraph::new("").block(block("logs")), area);
        return;
    };
    let lines = match &source.lines {
        Loadable::Loading => {
            let p = Paragraph::new(Span::styled("reading...", style(DIM)));
            f.render_widget(p.block(block(&title)), area);
            return;
        }
        Loadable::Failed(e) => {
            let p = Paragraph::new(Span::styled(e.clone(), style(BAD)))
                .wrap(ratatui::widgets::Wrap { trim: false });
            f.render_widget(p.block(block(&title)), area);
            return;
        }
        Loadable::Ready(l) => l,
    };
    let first = v.first();
    let needle = v.query.to_lowercase();
    let shown: Vec<Line> = lines
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .map(|(i, l)| marked(l, &needle, v.hit == Some(i)))
        .collect();
    let last = (first + shown.len()).min(lines.len());
    title.push_str(&format!(
        "  lines {}-{last} of {}{}",
        (first + 1).min(last),
        lines.len(),
        if v.follow { ", newest" } else { "" }
    ));
    if v.typing || !v.query.is_empty() {
        let found = if v.hit.is_some() { "" } else { " (not found)" };
        let cursor = if v.typing { "_" } else { "" };
        title.push_str(&format!("  /{}{cursor}{found}", v.query));
    }
    if lines.is_empty() {
        let p = Paragraph::new(Span::styled("nothing logged yet", style(DIM)));
        f.render_widget(p.block(block(&title)), area);
        return;
    }
    f.render_widget(Paragraph::new(shown).block(block(&title)), area);
}
