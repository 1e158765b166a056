//! A ratchet on the kind seam (issue #19): how many lines of code outside a
//! kind's own place (`src/source/<kind>/`, its config section included) still
//! name kind-specific things. The counts may only go down: a file whose count
//! grows, or a new file that names a kind, fails the test with its lines;
//! a file whose count fell below its allowance fails too, so the table is
//! lowered in the same change that moved the code into its kind.
//!
//! A kind-specific word is an identifier or a word of a string with a part
//! (`EtcdKey`: etcd, key) that is `etcd`, `rds`, `kube`, `kubectl`,
//! `kubeconfig` or `pitr`, one holding `from_dump` or `namespace_map`, or an
//! identifier beginning with `Namespace`. Comments and `#[cfg(test)]` items
//! are left out (`layering::code_of`).
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use crate::layering::{code_of, modules};

/// Where kinds may be named.
fn is_kind_home(file: &str) -> bool {
    file.starts_with("src/source/")
}

fn names_a_kind(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    lower.contains("from_dump")
        || lower.contains("namespace_map")
        || word.starts_with("Namespace")
        || sub_words(word).iter().any(|w| {
            matches!(
                w.as_str(),
                "etcd" | "rds" | "kube" | "kubectl" | "kubeconfig" | "pitr"
            )
        })
}

/// `EtcdKey` -> etcd, key; `aws_sdk_rds` -> aws, sdk, rds (so `records`
/// is no `rds`).
fn sub_words(word: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in word.chars() {
        let boundary = c == '_' || (c.is_ascii_uppercase() && prev_lower);
        if boundary && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if c != '_' {
            cur.push(c.to_ascii_lowercase());
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The lines of `code` that name a kind: (line number, line).
fn kind_lines(code: &str) -> Vec<(usize, String)> {
    code.lines()
        .enumerate()
        .filter(|(_, l)| {
            l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(names_a_kind)
        })
        .map(|(i, l)| (i + 1, l.trim().to_string()))
        .collect()
}

/// What each file may still have. Lower a number when a change moves code
/// into its kind; never raise one.
const ALLOWED: &[(&str, usize)] = &[
    // The wire names manifests and signatures have used since format 1
    // (`rds`, `rds_instance`, `rds_engine`): they stay.
    ("src/archive/manifest.rs", 3),
    // `drtool --help`'s one line on what drtool backs up: documentation.
    ("src/cli/mod.rs", 1),
];

/// The proof of the seam (#19): the test-only `dir` kind is its folder and
/// its line in the registry. Its names (the module, its types, its payload)
/// appear nowhere else in `src/`, tests and comments included.
#[test]
fn the_fourth_kind_is_one_folder_and_a_registry_line() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut outside = Vec::new();
    for (file, text) in modules(&src).into_values() {
        if file.starts_with("src/source/dir/") || file == "src/seam.rs" {
            continue;
        }
        for line in text.lines() {
            let named = [
                "mod dir;",
                "dir::",
                "DirKind",
                "DirTarget",
                "dir-files",
                "kind = \"dir\"",
            ]
            .iter()
            .any(|w| line.contains(w));
            if named {
                outside.push(format!("{file}: {}", line.trim()));
            }
        }
    }
    assert_eq!(
        outside,
        [
            // The module and the registry line.
            "src/source/mod.rs: pub mod dir;",
            "src/source/mod.rs: Arc::new(dir::DirKind),",
            // The registry's own test lists every payload name.
            "src/source/mod.rs: \"dir-files\","
        ],
        "the dir kind is named outside its folder"
    );
    assert!(crate::source::registry().get("dir").is_ok());
}

#[test]
fn kind_names_outside_the_kinds_only_go_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, usize> = ALLOWED.iter().copied().collect();
    let mut found: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (file, text) in modules(&src).into_values() {
        if is_kind_home(&file) || file == "src/seam.rs" {
            continue;
        }
        let lines = kind_lines(&code_of(&text));
        if !lines.is_empty() {
            found.insert(file, lines);
        }
    }
    let mut wrong = Vec::new();
    for (file, lines) in &found {
        let may = allowed.get(file.as_str()).copied().unwrap_or(0);
        if lines.len() != may {
            let shown: Vec<String> = lines.iter().map(|(n, l)| format!("    {n}: {l}")).collect();
            wrong.push(format!(
                "{file}: {} lines name a kind, the table allows {may}\n{}",
                lines.len(),
                shown.join("\n")
            ));
        }
    }
    for (file, may) in &allowed {
        if !found.contains_key(*file) && *may > 0 {
            wrong.push(format!(
                "{file}: names no kind any more: take it out of ALLOWED"
            ));
        }
    }
    let table: Vec<String> = found
        .iter()
        .map(|(f, l)| format!("    (\"{f}\", {}),", l.len()))
        .collect();
    assert!(
        wrong.is_empty(),
        "{}\n\nthe table as it is now:\n{}",
        wrong.join("\n\n"),
        table.join("\n")
    );
}

#[test]
fn the_ratchet_sees_kind_words_and_nothing_else() {
    let code = "let a = EtcdPlan::new();\nlet b = \"copy the rds snapshot\";\nlet c = store.prefix;\nlet d = NamespaceTarget {};\nlet e = namespaces(records);\nuse aws_sdk_rds;";
    let lines: Vec<usize> = kind_lines(code).into_iter().map(|(n, _)| n).collect();
    assert_eq!(lines, [1, 2, 4, 6]);
    assert_eq!(sub_words("EtcdKey"), ["etcd", "key"]);
    assert_eq!(sub_words("aws_sdk_rds"), ["aws", "sdk", "rds"]);
}
