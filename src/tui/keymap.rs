//! Key bindings as data: one table maps keys to commands and is the single
//! source for handling keys and for the help screen. Users override it from
//! a TOML file (`[keys] verify = "V"`); a bad key or command is an error with
//! the file, line and the bad value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;

use crate::config::Location;

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    Quit,
    Help,
    Palette,
    Filter,
    NextScreen,
    PrevScreen,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    Back,
    NextRegion,
    PrevRegion,
    Refresh,
    Verify,
    Copy,
    Restore,
    Run,
    DryRun,
    Abort,
    Yank,
    OpenHtml,
    Logs,
    NextMatch,
    PrevMatch,
}

impl Command {
    /// Every command: its name in the keymap file, what help says, and
    /// whether it changes anything (hidden in read-only mode).
    pub const ALL: &'static [(Command, &'static str, &'static str, bool)] = &[
        (Command::Quit, "quit", "quit", false),
        (Command::Help, "help", "this help", false),
        (
            Command::Palette,
            "palette",
            "command palette (:points us-west-2, :drill NAME)",
            false,
        ),
        (
            Command::Filter,
            "filter",
            "filter the list (/! inverts)",
            false,
        ),
        (Command::NextScreen, "next_screen", "next screen", false),
        (Command::PrevScreen, "prev_screen", "previous screen", false),
        (Command::Up, "up", "up", false),
        (Command::Down, "down", "down", false),
        (Command::PageUp, "page_up", "page up", false),
        (Command::PageDown, "page_down", "page down", false),
        (Command::Top, "top", "first row", false),
        (Command::Bottom, "bottom", "last row", false),
        (Command::Open, "open", "open / confirm", false),
        (
            Command::Back,
            "back",
            "back along the breadcrumb / cancel",
            false,
        ),
        (
            Command::NextRegion,
            "next_region",
            "next region (points)",
            false,
        ),
        (
            Command::PrevRegion,
            "prev_region",
            "previous region (points)",
            false,
        ),
        (
            Command::Refresh,
            "refresh",
            "reload from the stores (and validate the drill files again)",
            false,
        ),
        (
            Command::Verify,
            "verify",
            "verify the point (download, check every hash)",
            true,
        ),
        (
            Command::Copy,
            "copy",
            "copy the point to the target's copy_to regions",
            true,
        ),
        (Command::Restore, "restore", "restore wizard", true),
        (Command::Run, "run", "run the drill (asks first)", true),
        (
            Command::DryRun,
            "dry_run",
            "dry-run the drill (changes nothing); on a point: diff it",
            false,
        ),
        (
            Command::Abort,
            "abort",
            "abort the running drill (asks first)",
            true,
        ),
        (Command::Yank, "yank", "copy the id (clipboard)", false),
        (Command::OpenHtml, "open_html", "open report.html", false),
        (
            Command::Logs,
            "logs",
            "the logs: this session's activity, the drill's, ui.log (/ searches)",
            false,
        ),
        (Command::NextMatch, "next_match", "next match (logs)", false),
        (
            Command::PrevMatch,
            "prev_match",
            "previous match (logs)",
            false,
        ),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(c, ..)| *c == self)
            .map_or("?", |(_, n, ..)| n)
    }

    pub fn help(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(c, ..)| *c == self)
            .map_or("?", |(_, _, h, _)| h)
    }

    /// Whether the command changes anything (refused with --read-only).
    pub fn writes(self) -> bool {
        Self::ALL
            .iter()
            .find(|(c, ..)| *c == self)
            .is_some_and(|(.., w)| *w)
    }

    fn named(name: &str) -> Option<Command> {
        Self::ALL
            .iter()
            .find(|(_, n, ..)| *n == name)
            .map(|(c, ..)| *c)
    }
}

/// Typed text and editing keys, for the overlay that takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Char(char),
    Backspace,
    Enter,
    Esc,
    Tab,
    Up,
    Down,
}

/// A key with its modifiers, as the keymap names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub code: KeyName,
    pub ctrl: bool,
    pub alt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyName {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Backspace,
    F(u8),
}

const NAMED: &[(&str, KeyName)] = &[
    ("enter", KeyName::Enter),
    ("esc", KeyName::Esc),
    ("tab", KeyName::Tab),
    ("backtab", KeyName::BackTab),
    ("up", KeyName::Up),
    ("down", KeyName::Down),
    ("left", KeyName::Left),
    ("right", KeyName::Right),
    ("pgup", KeyName::PageUp),
    ("pgdn", KeyName::PageDown),
    ("home", KeyName::Home),
    ("end", KeyName::End),
    ("backspace", KeyName::Backspace),
    ("space", KeyName::Char(' ')),
];

/// A key name that names no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a key: use one character (q, G, ?), f1-f12, {keys}, with ctrl- or alt- in front if needed",
    keys = named_keys()
)]
pub struct NotAKey(pub String);

fn named_keys() -> String {
    NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

impl Key {
    /// `q`, `G`, `ctrl-c`, `alt-x`, `enter`, `pgdn`, `f5`, ...
    pub fn parse(text: &str) -> Result<Key, NotAKey> {
        let mut rest = text;
        let (mut ctrl, mut alt) = (false, false);
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                alt = true;
                rest = r;
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyName::Char(c),
            _ => {
                if let Some((_, k)) = NAMED.iter().find(|(n, _)| *n == rest) {
                    *k
                } else if let Some(n) = rest
                    .strip_prefix('f')
                    .and_then(|n| n.parse::<u8>().ok())
                    .filter(|n| (1..=12).contains(n))
                {
                    KeyName::F(n)
                } else {
                    return Err(NotAKey(text.to_string()));
                }
            }
        };
        Ok(Key { code, ctrl, alt })
    }

    pub fn of(e: &KeyEvent) -> Option<Key> {
        let code = match e.code {
            KeyCode::Char(c) => KeyName::Char(c),
            KeyCode::Enter => KeyName::Enter,
            KeyCode::Esc => KeyName::Esc,
            KeyCode::Tab => KeyName::Tab,
            KeyCode::BackTab => KeyName::BackTab,
            KeyCode::Up => KeyName::Up,
            KeyCode::Down => KeyName::Down,
            KeyCode::Left => KeyName::Left,
            KeyCode::Right => KeyName::Right,
            KeyCode::PageUp => KeyName::PageUp,
            KeyCode::PageDown => KeyName::PageDown,
            KeyCode::Home => KeyName::Home,
            KeyCode::End => KeyName::End,
            KeyCode::Backspace => KeyName::Backspace,
            KeyCode::F(n) => KeyName::F(n),
            _ => return None,
        };
        Some(Key {
            code,
            ctrl: e.modifiers.contains(KeyModifiers::CONTROL),
            alt: e.modifiers.contains(KeyModifiers::ALT),
        })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            write!(f, "ctrl-")?;
        }
        if self.alt {
            write!(f, "alt-")?;
        }
        match self.code {
            KeyName::Char(' ') => write!(f, "space"),
            KeyName::Char(c) => write!(f, "{c}"),
            KeyName::F(n) => write!(f, "f{n}"),
            other => {
                let name = NAMED
                    .iter()
                    .find(|(_, k)| *k == other)
                    .map_or("?", |(n, _)| n);
                write!(f, "{name}")
            }
        }
    }
}

const DEFAULTS: &[(&str, Command)] = &[
    ("q", Command::Quit),
    ("ctrl-c", Command::Quit),
    ("?", Command::Help),
    (":", Command::Palette),
    ("/", Command::Filter),
    ("tab", Command::NextScreen),
    ("backtab", Command::PrevScreen),
    ("k", Command::Up),
    ("up", Command::Up),
    ("j", Command::Down),
    ("down", Command::Down),
    ("pgup", Command::PageUp),
    ("pgdn", Command::PageDown),
    ("g", Command::Top),
    ("home", Command::Top),
    ("G", Command::Bottom),
    ("end", Command::Bottom),
    ("enter", Command::Open),
    ("esc", Command::Back),
    ("l", Command::Logs),
    ("n", Command::NextMatch),
    ("N", Command::PrevMatch),
    ("right", Command::NextRegion),
    ("h", Command::PrevRegion),
    ("left", Command::PrevRegion),
    ("r", Command::Refresh),
    ("v", Command::Verify),
    ("c", Command::Copy),
    ("R", Command::Restore),
    ("x", Command::Run),
    ("d", Command::DryRun),
    ("a", Command::Abort),
    ("y", Command::Yank),
    ("o", Command::OpenHtml),
];

/// Quits whatever the keymap says (it reaches the dashboard before the keymap).
pub const CTRL_C: Key = Key {
    code: KeyName::Char('c'),
    ctrl: true,
    alt: false,
};

/// Keys to commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: BTreeMap<Key, Command>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeymap {
    keys: BTreeMap<String, toml::Spanned<OneOrMany>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A keymap file that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct KeymapError {
    pub location: Location,
    pub message: String,
}

impl Default for Keymap {
    fn default() -> Keymap {
        let mut bindings = BTreeMap::new();
        for (k, c) in DEFAULTS {
            if let Ok(key) = Key::parse(k) {
                bindings.insert(key, *c);
            }
        }
        Keymap { bindings }
    }
}

impl Keymap {
    pub fn command(&self, key: &Key) -> Option<Command> {
        self.bindings.get(key).copied()
    }

    /// The keys of a command, for help and the footer.
    /// Plain characters first (the footer shows the first).
    pub fn keys_of(&self, c: Command) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .bindings
            .iter()
            .filter(|(_, b)| **b == c)
            .map(|(k, _)| *k)
            .collect();
        keys.sort_by_key(|k| (k.ctrl || k.alt, !matches!(k.code, KeyName::Char(_)), *k));
        keys
    }

    /// The help screen's lines: every command with its keys; write
    /// commands left out in read-only mode.
    pub fn help(&self, read_only: bool) -> Vec<(String, &'static str)> {
        Command::ALL
            .iter()
            .filter(|(c, .., w)| !(self.keys_of(*c).is_empty() || read_only && *w))
            .map(|(c, _, h, _)| {
                let keys: Vec<String> = self.keys_of(*c).iter().map(Key::to_string).collect();
                (keys.join(" "), *h)
            })
            .collect()
    }

    /// The defaults with the file's overrides: a command named in the file
    /// gets exactly the keys given there.
    pub fn load(path: &Path) -> Result<Keymap, KeymapError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeymapError {
            location: Location {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
            },
            message: format!("cannot read the keymap: {e}"),
        })?;
        Keymap::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Keymap, KeymapError> {
        let err = |offset: usize, message: String| KeymapError {
            location: Location::of(path, text, offset),
            message,
        };
        let raw: RawKeymap = toml::from_str(text).map_err(|e| {
            err(
                e.span().map_or(0, |s| s.start),
                e.message().trim_end().replace('\n', ": "),
            )
        })?;
        let mut map = Keymap::default();
        for (name, keys) in &raw.keys {
            let at = keys.span().start;
            let Some(command) = Command::named(name) else {
                let known: Vec<&str> = Command::ALL.iter().map(|(_, n, ..)| *n).collect();
                let offset = text[..at].rfind(name.as_str()).unwrap_or(at);
                return Err(err(
                    offset,
                    format!("unknown command {name:?} (commands: {})", known.join(", ")),
                ));
            };
            let list = match keys.get_ref() {
                OneOrMany::One(k) => vec![k.clone()],
                OneOrMany::Many(v) => v.clone(),
            };
            if list.is_empty() {
                return Err(err(
                    at,
                    format!(
                        "keys.{name}: no keys: give at least one, or leave {name} out for its default"
                    ),
                ));
            }
            map.bindings.retain(|_, c| *c != command);
            for k in list {
                let key = Key::parse(&k).map_err(|m| err(at, format!("keys.{name}: {m}")))?;
                if key == CTRL_C && command != Command::Quit {
                    return Err(err(
                        at,
                        format!(
                            "keys.{name}: ctrl-c always quits (asking first while a drill runs): pick another key"
                        ),
                    ));
                }
                if let Some(other) = map.bindings.get(&key).copied().filter(|o| *o != command) {
                    // Taking another command's key is refused when the file
                    // binds that command too, or when it was its only key.
                    let also_named = raw.keys.contains_key(other.name());
                    if also_named || map.keys_of(other).len() < 2 {
                        let hint = if also_named {
                            String::new()
                        } else {
                            format!(", or give {} other keys in this file", other.name())
                        };
                        return Err(err(
                            at,
                            format!(
                                "keys.{name}: {k:?} is {}bound to {}: pick another key{hint}",
                                if also_named { "also " } else { "" },
                                other.name(),
                            ),
                        ));
                    }
                }
                map.bindings.insert(key, command);
            }
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_print_back() {
        for k in [
            "q", "G", "?", "ctrl-c", "alt-x", "enter", "pgdn", "f5", "space",
        ] {
            assert_eq!(Key::parse(k).map(|k| k.to_string()), Ok(k.to_string()));
        }
        assert_eq!(Key::parse("hyper-q"), Err(NotAKey("hyper-q".into())));
        assert_eq!(Key::parse("f13"), Err(NotAKey("f13".into())));
    }

    #[test]
    fn overrides_replace_a_commands_keys_and_errors_name_the_line() {
        let p = Path::new("keys.toml");
        let map = Keymap::parse("[keys]\nverify = \"V\"\nquit = [\"q\", \"ctrl-q\"]\n", p)
            .unwrap_or_else(|e| panic!("{e}"));
        let key = |s: &str| Key::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(map.command(&key("V")), Some(Command::Verify));
        assert_eq!(map.command(&key("v")), None, "the default key is gone");
        assert_eq!(map.command(&key("ctrl-q")), Some(Command::Quit));
        let bad = Keymap::parse("[keys]\nverify = \"V\"\nquit = \"super-q\"\n", p)
            .err()
            .map(|e| e.to_string());
        assert!(
            bad.as_deref().is_some_and(
                |m| m.starts_with("keys.toml:3:") && m.contains("\"super-q\" is not a key")
            ),
            "{bad:?}"
        );
        let bad = Keymap::parse("[keys]\nvreify = \"V\"\n", p)
            .err()
            .map(|e| e.to_string());
        assert!(
            bad.as_deref().is_some_and(
                |m| m.starts_with("keys.toml:2:1:") && m.contains("unknown command \"vreify\"")
            ),
            "{bad:?}"
        );
        let bad = Keymap::parse("[keys]\nverify = \"x\"\nrun = \"x\"\n", p)
            .err()
            .map(|e| e.to_string());
        assert!(
            bad.as_deref()
                .is_some_and(|m| m.contains("is also bound to")),
            "{bad:?}"
        );
        // Taking quit's plain key while quit keeps ctrl-c is allowed...
        let map = Keymap::parse("[keys]\nverify = \"q\"\n", p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(map.command(&key("q")), Some(Command::Verify));
        assert_eq!(map.command(&key("ctrl-c")), Some(Command::Quit));
        // ...taking a command's only key is not: it would have none left.
        let bad = Keymap::parse("[keys]\nverify = \"?\"\n", p)
            .err()
            .map(|e| e.to_string());
        assert!(
            bad.as_deref().is_some_and(|m| m.starts_with("keys.toml:2:")
                && m.contains("\"?\" is bound to help: pick another key, or give help other keys")),
            "{bad:?}"
        );
        let bad = Keymap::parse("[keys]\nhelp = \"ctrl-c\"\n", p)
            .err()
            .map(|e| e.to_string());
        assert!(
            bad.as_deref()
                .is_some_and(|m| m.contains("ctrl-c always quits")),
            "{bad:?}"
        );
        let bad = Keymap::parse("[keys]\nback = []\n", p)
            .err()
            .map(|e| e.to_string());
        assert!(
            bad.as_deref()
                .is_some_and(|m| m.contains("keys.back: no keys")),
            "{bad:?}"
        );
    }

    #[test]
    fn help_comes_from_the_table_and_hides_writes_when_read_only() {
        let map = Keymap::default();
        let all = map.help(false);
        let ro = map.help(true);
        assert!(all.iter().any(|(k, h)| k == "v" && h.starts_with("verify")));
        assert!(!ro.iter().any(|(_, h)| h.starts_with("verify")));
        assert!(ro.iter().any(|(k, _)| k.contains('q')));
    }
}
