//! The dashboard's colours and the few styles every screen shares. Colours
//! carry meaning and only meaning: green is good, yellow is close, red is a
//! breach or a failure, grey is unknown or not loaded yet.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, TableState};

pub const GOOD: Color = Color::Green;
pub const WARN: Color = Color::Yellow;
pub const BAD: Color = Color::Red;
pub const DIM: Color = Color::DarkGray;
pub const ACCENT: Color = Color::Cyan;

pub fn style(c: Color) -> Style {
    Style::default().fg(c)
}

pub fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

pub fn block(title: &str) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(style(DIM))
        .title(Span::styled(format!(" {title} "), bold()))
}

pub fn table_state(sel: usize) -> TableState {
    TableState::default().with_selected(Some(sel))
}

pub fn highlight() -> Style {
    Style::default()
        .bg(Color::Rgb(40, 44, 52))
        .add_modifier(Modifier::BOLD)
}
