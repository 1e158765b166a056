//! A test that keeps the module graph free of import circles: it reads every
//! file under `src/` (tests left out), finds the paths it names (`use crate::`,
//! `use super::`, `crate::x::y` in code, a child module's name), and turns
//! each into an edge between the two sibling modules under their lowest
//! common ancestor (`engine::kind` naming `engine::faults` is kind -> faults;
//! `cli::drill` naming `report::facts` is cli -> report). A module naming its
//! own parent or child is no edge: that is how a folder is put together.
//! Any circle among siblings fails the test, with the lines that make it.
//!
//! It reads text, not the compiler's resolution: a path through an imported
//! module's name (`use crate::engine; engine::x::Y`) is not seen, a re-export
//! counts where it is named, and `super::` inside an inline module counts one
//! level up (an edge to a parent, which is never one of a circle anyway).
#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub(crate) type Module = Vec<String>;

/// A file: its path under `src/` and its text.
pub(crate) type File = (String, String);

/// Every `.rs` file of the library but test files, by module path
/// (`src/a/mod.rs` is `a`).
pub(crate) fn modules(src: &Path) -> BTreeMap<Module, File> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).expect("src is readable");
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(src) else {
                continue;
            };
            let Some(rel) = rel.to_str().and_then(|r| r.strip_suffix(".rs")) else {
                continue;
            };
            if rel == "main" || rel == "tests" || rel.ends_with("/tests") {
                continue;
            }
            let mut m: Module = rel.split('/').map(str::to_string).collect();
            if matches!(m.last().map(String::as_str), Some("mod" | "lib")) {
                m.pop();
            }
            let text = std::fs::read_to_string(&path).expect("source is UTF-8");
            out.insert(m, (format!("src/{rel}.rs"), text));
        }
    }
    out
}

/// The file without comments and without what `#[cfg(test)]` marks (the
/// item up to its closing brace or semicolon), blanked byte for byte so that
/// offsets still give line numbers. Braces inside strings are not told apart:
/// the test modules it skips have none at their own level that matter.
pub(crate) fn code_of(text: &str) -> String {
    let mut code: Vec<u8> = text
        .split('\n')
        .map(|l| {
            // `//` but not `://` (an address in a string).
            let cut = l.match_indices("//").find(|(i, _)| !l[..*i].ends_with(':'));
            let keep = cut.map_or(l.len(), |(i, _)| i);
            let mut b = l.as_bytes()[..keep].to_vec();
            b.resize(l.len(), b' ');
            b
        })
        .collect::<Vec<_>>()
        .join(&b'\n');
    let marker = b"#[cfg(test)]";
    let mut from = 0;
    while let Some(at) = find(&code[from..], marker).map(|i| from + i) {
        let mut end = at;
        let mut depth = 0usize;
        while end < code.len() {
            match code[end] {
                b'{' => depth += 1,
                b'}' if depth <= 1 => {
                    end += 1;
                    break;
                }
                b'}' => depth -= 1,
                b';' if depth == 0 => {
                    end += 1;
                    break;
                }
                _ => {}
            }
            end += 1;
        }
        for b in &mut code[at..end] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
        from = end;
    }
    String::from_utf8_lossy(&code).into_owned()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a `use` tree names, braces expanded, aliases dropped.
fn expand_use(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or("");
        return vec![path.replace(' ', "")];
    };
    let prefix = tree[..open].replace(' ', "");
    let close = tree.rfind('}').unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .flat_map(|i| expand_use(&format!("{prefix}{i}")))
        .collect()
}

/// Every path of two or more segments in `code`, with its byte offset.
fn paths_of(code: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    // `use` trees first, then the code without them.
    let mut rest = String::with_capacity(code.len());
    let mut i = 0;
    while i < code.len() {
        let at_use = code[i..].starts_with("use ")
            && !code[..i].ends_with(|c: char| is_ident(c) || c == ':');
        // A use tree has nothing but paths, braces, commas and `*` (the word
        // "use " in a string or message is no statement).
        let tree_end = at_use.then(|| code[i..].find(';')).flatten().filter(|end| {
            code[i + 4..i + end]
                .chars()
                .all(|c| is_ident(c) || c.is_whitespace() || ":{},*".contains(c))
        });
        if let Some(end) = tree_end {
            for p in expand_use(&code[i + 4..i + end]) {
                out.push((i, p.split("::").map(str::to_string).collect()));
            }
            // Blank the statement, newlines kept.
            rest.extend(
                code[i..i + end]
                    .bytes()
                    .map(|b| if b == b'\n' { '\n' } else { ' ' }),
            );
            i += end;
            continue;
        }
        let c = code[i..].chars().next().unwrap_or(' ');
        rest.push(c);
        i += c.len_utf8();
    }
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = (bytes[i] as char).is_ascii_alphabetic() || bytes[i] == b'_';
        let after_ident = i > 0 && (is_ident(bytes[i - 1] as char) || bytes[i - 1] == b':');
        if !starts || after_ident {
            i += 1;
            continue;
        }
        let start = i;
        let mut segs = Vec::new();
        loop {
            let s = i;
            while i < bytes.len() && is_ident(bytes[i] as char) {
                i += 1;
            }
            segs.push(rest[s..i].to_string());
            let more = rest[i..].starts_with("::")
                && rest[i + 2..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
            if !more {
                break;
            }
            i += 2;
        }
        if segs.len() > 1 {
            out.push((start, segs));
        }
    }
    out
}

/// The module a path in `from` names (the longest prefix that is a module),
/// or none for paths into other crates.
fn resolve<T>(mods: &BTreeMap<Module, T>, from: &Module, path: &[String]) -> Option<Module> {
    let (mut base, mut segs) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("super" | "self") => (from.clone(), path),
        Some(first) => {
            let mut child = from.clone();
            child.push(first.to_string());
            if !mods.contains_key(&child) {
                return None;
            }
            (from.clone(), path)
        }
        None => return None,
    };
    while let Some(s) = segs.first() {
        match s.as_str() {
            "super" => {
                base.pop();
            }
            "self" => {}
            _ => break,
        }
        segs = &segs[1..];
    }
    base.extend(segs.iter().cloned());
    while !mods.contains_key(&base) {
        base.pop()?;
    }
    Some(base)
}

/// Sibling edges, each with the `file:line`s that make it.
fn edges(mods: &BTreeMap<Module, File>) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (from, (file, text)) in mods {
        let code = code_of(text);
        for (at, path) in paths_of(&code) {
            let Some(to) = resolve(mods, from, &path) else {
                continue;
            };
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue;
            }
            let name = |m: &Module| m[..=common].join("::");
            let line = code[..at].matches('\n').count() + 1;
            out.entry((name(from), name(&to)))
                .or_default()
                .push(format!("{file}:{line}"));
        }
    }
    out
}

/// The circles: each edge whose target reaches back to its source.
fn circles(edges: &BTreeMap<(String, String), Vec<String>>) -> Vec<String> {
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().insert(b);
    }
    let reaches = |from: &str, to: &str| {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![from]);
        while let Some(n) = todo.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n) {
                todo.extend(next.get(n).into_iter().flatten());
            }
        }
        false
    };
    edges
        .iter()
        .filter(|((a, b), _)| reaches(b, a))
        .map(|((a, b), at)| format!("{a} -> {b} ({})", at.join(", ")))
        .collect()
}

#[test]
fn no_module_imports_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let found = circles(&edges(&mods));
    assert!(
        found.is_empty(),
        "import circles (each edge is part of one):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_reader_sees_what_makes_a_circle() {
    let m = |s: &str| s.split("::").map(str::to_string).collect::<Module>();
    let file = |text: &str| (String::from("f.rs"), text.to_string());
    let mods = BTreeMap::from([
        (Vec::new(), file("")),
        (m("a"), file("")),
        (
            m("a::x"),
            file("use super::y::{self, Thing as T};\nfn f() { crate::b::go(\"s3://é\"); }"),
        ),
        (m("a::y"), file("fn g() { super::x::h() }\n// crate::c::no")),
        (m("b"), file("pub use crate::a::x::{h, z::{Q}};")),
        (
            m("c"),
            file("use std::fmt;\n#[cfg(test)]\nmod tests {\n    use crate::b::Q;\n}\n"),
        ),
    ]);
    let e = edges(&mods);
    let keys: Vec<_> = e.keys().map(|(a, b)| format!("{a}->{b}")).collect();
    assert_eq!(keys, ["a->b", "a::x->a::y", "a::y->a::x", "b->a"]);
    assert_eq!(e[&("a".to_string(), "b".to_string())], ["f.rs:2"]);
    assert_eq!(circles(&e).len(), 4);
}
