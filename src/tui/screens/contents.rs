//! A point's contents, browsed as a tree (`enter` on a point): folders of
//! keys (etcd's `/` levels, or an object's kind and namespace) with how
//! many items and bytes each holds, and the items of the level with their
//! kind's columns. `enter` goes into a folder, `esc` back up; `/` filters
//! as you type (every item under the level whose path holds the text;
//! `enter` on one goes to its folder);
//! `d` compares the point, `R` restores the selected folder or item (an
//! etcd prefix or key, a namespace's resource) through the wizard.
//!
//! The point is listed once into an index file by the worker; each level
//! is read from it on request, the answers numbered so a late one for a
//! level left since is dropped.

use std::sync::Arc;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use crate::engine::browse::{Entry, Level, PointIndex};
use crate::engine::kind::Column;
use crate::engine::options::FlagValues;
use crate::tui::keymap::{Command, Input};
use crate::tui::model::{self, Failure, Loadable};
use crate::tui::theme::{ACCENT, BAD, DIM, WARN, block, bold, highlight, style, table_state};

/// Rows a level holds at most (the rest are counted).
pub const LEVEL_ROWS: usize = 5_000;

/// A browsed point's index, shared with the worker that reads its levels;
/// two are equal when they are the same index.
#[derive(Clone)]
pub struct Index(pub Arc<PointIndex>);

impl PartialEq for Index {
    fn eq(&self, other: &Index) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A level to read, with the request's number.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelAsk {
    pub seq: u64,
    pub index: Index,
    pub prefix: String,
    pub filter: String,
}

/// What a key asks of the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Want {
    /// Nothing more (the view changed itself).
    Nothing,
    /// Not a key of this view: the dashboard's own (quit, help, tab...).
    Pass,
    Level(LevelAsk),
    Close,
    /// Compare the point (under the level's prefix).
    Diff(Option<String>),
    /// Restore the selected part (None: only the whole point can be).
    Restore(Option<FlagValues>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContentsView {
    pub region: String,
    pub target: String,
    pub point: String,
    pub index: Loadable<Index>,
    /// The request number of the index or level asked for last.
    pub seq: u64,
    pub prefix: String,
    pub filter: String,
    /// Keys go to the filter.
    pub typing: bool,
    pub level: Loadable<Level>,
    pub sel: usize,
    /// The folder to select once its parent's level is read (after `esc`).
    reselect: Option<String>,
}

impl ContentsView {
    pub fn new(region: &str, target: &str, point: &str, seq: u64) -> ContentsView {
        ContentsView {
            region: region.to_string(),
            target: target.to_string(),
            point: point.to_string(),
            index: Loadable::Loading,
            seq,
            prefix: String::new(),
            filter: String::new(),
            typing: false,
            level: Loadable::Loading,
            sel: 0,
            reselect: None,
        }
    }

    pub fn crumb(&self) -> String {
        if self.prefix.is_empty() {
            "contents".to_string()
        } else {
            format!("contents {}", self.prefix)
        }
    }

    fn entries(&self) -> &[Entry] {
        self.level.ready().map_or(&[], |l| l.entries.as_slice())
    }

    pub fn selected(&self) -> Option<&Entry> {
        let e = self.entries();
        e.get(self.sel.min(e.len().saturating_sub(1)))
    }

    /// The index is ready (or not): the first level is asked for.
    pub fn indexed(&mut self, r: Result<Index, Failure>, seq: &mut u64) -> Want {
        match r {
            Ok(i) => {
                self.index = Loadable::Ready(i);
                self.ask(seq)
            }
            Err(e) => {
                self.index = Loadable::Failed(e.message.clone());
                self.level = Loadable::Failed(e.message);
                Want::Nothing
            }
        }
    }

    /// A level read; dropped unless it answers the last request.
    pub fn leveled(&mut self, seq: u64, r: Result<Level, Failure>) {
        if seq != self.seq {
            return;
        }
        self.level = match r {
            Ok(l) => {
                self.sel = match self.reselect.take() {
                    Some(p) => l.entries.iter().position(|e| e.path() == p).unwrap_or(0),
                    None => self.sel.min(l.entries.len().saturating_sub(1)),
                };
                Loadable::Ready(l)
            }
            Err(e) => Loadable::Failed(e.message),
        };
    }

    /// Asks for the level of the prefix and filter now set.
    fn ask(&mut self, seq: &mut u64) -> Want {
        let Loadable::Ready(index) = &self.index else {
            return Want::Nothing;
        };
        *seq += 1;
        self.seq = *seq;
        Want::Level(LevelAsk {
            seq: self.seq,
            index: index.clone(),
            prefix: self.prefix.clone(),
            filter: self.filter.clone(),
        })
    }

    pub fn command(&mut self, c: Command, seq: &mut u64) -> Want {
        let rows = self.entries().len();
        let last = rows.saturating_sub(1);
        match c {
            Command::Up => self.sel = self.sel.min(last).saturating_sub(1),
            Command::Down => self.sel = (self.sel + 1).min(last),
            Command::PageUp => self.sel = self.sel.min(last).saturating_sub(10),
            Command::PageDown => self.sel = (self.sel + 10).min(last),
            Command::Top => self.sel = 0,
            Command::Bottom => self.sel = last,
            Command::Open => match self.selected().cloned() {
                Some(Entry::Folder { path, .. }) => {
                    self.prefix = path;
                    self.filter.clear();
                    self.sel = 0;
                    return self.ask(seq);
                }
                // A filtered item: to its folder, where it is selected.
                Some(Entry::Item { path, .. }) if !self.filter.is_empty() => {
                    self.prefix = parent(&path);
                    self.reselect = Some(path);
                    self.filter.clear();
                    return self.ask(seq);
                }
                Some(Entry::Item { .. }) | None => {}
            },
            Command::Back if !self.filter.is_empty() => {
                self.filter.clear();
                self.sel = 0;
                return self.ask(seq);
            }
            Command::Back if !self.prefix.is_empty() => {
                self.reselect = Some(std::mem::take(&mut self.prefix));
                self.prefix = self.reselect.as_deref().map(parent).unwrap_or_default();
                return self.ask(seq);
            }
            Command::Back => return Want::Close,
            Command::Filter => self.typing = true,
            Command::Refresh => return self.ask(seq),
            // `d`: the drills' dry run, here a diff.
            Command::DryRun => {
                return Want::Diff(Some(self.prefix.clone()).filter(|p| !p.is_empty()));
            }
            Command::Restore => {
                return Want::Restore(self.selected().and_then(Entry::restore).cloned());
            }
            _ => return Want::Pass,
        }
        Want::Nothing
    }

    /// Typed text while the filter takes keys: the level follows each key.
    pub fn typed(&mut self, i: Input, seq: &mut u64) -> Want {
        match i {
            Input::Char(c) => self.filter.push(c),
            Input::Backspace => {
                if self.filter.pop().is_none() {
                    return Want::Nothing;
                }
            }
            Input::Enter | Input::Tab | Input::Down => {
                self.typing = false;
                return Want::Nothing;
            }
            Input::Esc => {
                self.typing = false;
                if self.filter.is_empty() {
                    return Want::Nothing;
                }
                self.filter.clear();
            }
            Input::Up => return Want::Nothing,
        }
        self.sel = 0;
        self.ask(seq)
    }
}

/// The level above `prefix`: `/registry/pods/` -> `/registry/`, `/registry/` -> ``.
pub fn parent(prefix: &str) -> String {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    match trimmed
        .char_indices()
        .skip(1)
        .filter(|(_, c)| *c == '/')
        .last()
    {
        Some((i, _)) => trimmed[..=i].to_string(),
        None => String::new(),
    }
}

/// What `R` does with the selected row, in words.
fn restore_words(e: &Entry) -> String {
    let Some(flags) = e.restore() else {
        return "R restores the whole point (this part cannot be restored alone)".into();
    };
    let said: Vec<String> = flags
        .0
        .iter()
        .map(|(k, v)| format!("--{k} {}", v.join(",")))
        .collect();
    format!("R restores {}", said.join(" "))
}

pub fn draw(f: &mut Frame, area: Rect, v: &ContentsView) {
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(2),
    ])
    .areas(area);
    let about = match (&v.index, &v.level) {
        (Loadable::Ready(i), _) => {
            let l = &i.0.listed;
            let mut text = format!(" {} items, {}", l.items, model::size(l.bytes));
            if let Some(first) = l.about.first() {
                text.push_str(&format!("  ·  {first}"));
            }
            Span::styled(text, style(Color::Gray))
        }
        (Loadable::Loading, _) => Span::styled(
            format!(
                " listing point {} of {} in {}: download and verify...",
                v.point, v.target, v.region
            ),
            style(DIM),
        ),
        (Loadable::Failed(_), _) => Span::styled(" the point could not be listed", style(BAD)),
    };
    f.render_widget(Paragraph::new(Line::from(about)), head);
    let title = level_title(v);
    match &v.level {
        Loadable::Ready(level) => draw_level(f, body, v, level, &title),
        Loadable::Loading => f.render_widget(
            Paragraph::new(Span::styled("reading...", style(DIM))).block(block(&title)),
            body,
        ),
        Loadable::Failed(e) => f.render_widget(
            Paragraph::new(Span::styled(e.clone(), style(BAD)))
                .wrap(ratatui::widgets::Wrap { trim: false })
                .block(block(&title)),
            body,
        ),
    }
    let mut lines = Vec::new();
    if v.typing {
        lines.push(Line::from(Span::styled(
            format!(" /{}_   (enter keeps it, esc clears)", v.filter),
            bold().fg(WARN),
        )));
    }
    if let Some(e) = v.selected() {
        lines.push(Line::from(Span::styled(
            format!(" {}", e.path()),
            style(ACCENT),
        )));
        lines.push(Line::from(Span::styled(
            format!(" {}", restore_words(e)),
            style(DIM),
        )));
    }
    f.render_widget(Paragraph::new(lines), foot);
}

fn level_title(v: &ContentsView) -> String {
    let at = if v.prefix.is_empty() {
        "/".to_string()
    } else {
        v.prefix.clone()
    };
    match v.level.ready() {
        Some(l) if !l.filter.is_empty() => format!(
            "{at}  matching \"{}\": {} items, {}",
            l.filter,
            l.items,
            model::size(l.bytes)
        ),
        Some(l) => format!("{at}  {} items, {}", l.items, model::size(l.bytes)),
        None => at,
    }
}

/// Cuts `text` to `width` characters from the left (`…` first): the end
/// of a key is what tells it from its neighbours.
fn tail(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width || width == 0 {
        return text.to_string();
    }
    let keep: String = text.chars().skip(n - (width - 1)).collect();
    format!("…{keep}")
}

/// Columns after the name, as many as fit beside a name of `NAME_MIN`,
/// the kind's details dropped first, then the items count.
const NAME_MIN: u16 = 24;
/// A detail column's widest.
const DETAIL_MAX: usize = 24;

/// The columns after NAME that fit beside it in `inner` columns, as
/// (header, width), and NAME's width.
fn fit_columns(level: &Level, details: &[Column], inner: u16) -> (Vec<(String, u16)>, u16) {
    // (header, width) after NAME, in the order they drop last to first.
    let mut after: Vec<(String, u16)> = vec![("SIZE".into(), 9), ("ITEMS".into(), 6)];
    // A detail column is as wide as its widest cell on this level (a lease
    // id is never cut), at most DETAIL_MAX.
    after.extend(details.iter().map(|c| {
        let widest = level
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Item { item, .. } => Some(item.text(c).chars().count()),
                Entry::Folder { .. } => None,
            })
            .max()
            .unwrap_or(0)
            .max(c.header.len())
            .min(DETAIL_MAX);
        (c.header.to_string(), widest as u16)
    }));
    while !after.is_empty() {
        let used: u16 = after.iter().map(|(_, w)| w + 1).sum();
        if inner >= NAME_MIN + used {
            break;
        }
        after.pop();
    }
    let name_w = inner.saturating_sub(after.iter().map(|(_, w)| w + 1).sum::<u16>());
    (after, name_w)
}

fn draw_level(f: &mut Frame, area: Rect, v: &ContentsView, level: &Level, title: &str) {
    let details = v.index.ready().map_or(&[][..], |i| i.0.columns);
    let (after, name_w) = fit_columns(level, details, area.width.saturating_sub(2));
    let show = |h: &str| after.iter().any(|(x, _)| x == h);
    let rows: Vec<Row> = level
        .entries
        .iter()
        .map(|e| {
            let shown = |p: &str| {
                let rel = p.strip_prefix(&level.prefix).unwrap_or(p);
                tail(rel, name_w as usize)
            };
            let (name, items, size, item) = match e {
                Entry::Folder {
                    path, items, bytes, ..
                } => (
                    Cell::from(Span::styled(shown(path), bold().fg(ACCENT))),
                    items.to_string(),
                    model::size(*bytes),
                    None,
                ),
                Entry::Item { path, item, .. } => (
                    Cell::from(shown(path)),
                    String::new(),
                    item.size.map_or("-".into(), model::size),
                    Some(item),
                ),
            };
            let mut cells = vec![name];
            for (h, _) in &after {
                let text = match h.as_str() {
                    "SIZE" => size.clone(),
                    "ITEMS" => items.clone(),
                    _ => match (item, details.iter().find(|c| c.header == h)) {
                        (Some(i), Some(c)) => i.text(c),
                        _ => String::new(),
                    },
                };
                cells.push(Cell::from(text));
            }
            Row::new(cells)
        })
        .collect();
    let mut header = vec!["NAME".to_string()];
    header.extend(after.iter().map(|(h, _)| h.clone()));
    let mut widths = vec![Constraint::Length(name_w)];
    widths.extend(after.iter().map(|(_, w)| Constraint::Length(*w)));
    let mut title = title.to_string();
    if level.left_out > 0 {
        title.push_str(&format!(
            "  ({} more items not shown: type / to narrow)",
            level.left_out
        ));
    }
    if !show("SIZE") && !level.entries.is_empty() {
        title.push_str("  (wider for sizes)");
    }
    if level.entries.is_empty() {
        let text = if level.filter.is_empty() {
            "nothing here".to_string()
        } else {
            format!("nothing under this level matches \"{}\"", level.filter)
        };
        f.render_widget(
            Paragraph::new(Span::styled(text, style(DIM))).block(block(&title)),
            area,
        );
        return;
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(bold().fg(DIM)))
        .row_highlight_style(highlight())
        .block(block(&title));
    let sel = v.sel.min(level.entries.len().saturating_sub(1));
    f.render_stateful_widget(table, area, &mut table_state(sel));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_of_a_level() {
        for (p, want) in [
            ("/registry/pods/", "/registry/"),
            ("/registry/", ""),
            ("", ""),
            ("app/config/", "app/"),
            ("app/", ""),
            ("/", ""),
            ("ConfigMap/shop/", "ConfigMap/"),
            ("/é/ü/", "/é/"),
        ] {
            assert_eq!(parent(p), want, "{p}");
        }
    }

    #[test]
    fn a_long_name_keeps_its_end() {
        assert_eq!(tail("/registry/configmaps/x", 40), "/registry/configmaps/x");
        assert_eq!(tail("/registry/configmaps/x", 10), "…figmaps/x");
        assert_eq!(tail("/é/ü/kube-root-ca.crt", 8).chars().count(), 8);
        assert_eq!(tail("abc", 0), "abc");
    }
}
