//! Issue #19 item 6: no function in `src/` (tests left out) runs over about
//! 100 lines. Renderers are split per section, parsers per table, the
//! dashboard's dispatch per view; this keeps it so.
#![allow(clippy::expect_used)]

use std::path::Path;

use crate::layering::{code_of, modules};

/// The most lines a function may take, its signature and braces included.
const MOST: usize = 100;

/// The name of the function a line declares, if it declares one.
fn declared(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    loop {
        match words.next()? {
            "fn" => break,
            w if w == "pub" || w.starts_with("pub(") => {}
            "async" | "const" | "unsafe" | "extern" => {}
            _ => return None,
        }
    }
    let name: String = words
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// (line, name, length in lines) of every function body in `code`; a
/// declaration without a body (a trait's) has none.
fn lengths(code: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = declared(line) else {
            continue;
        };
        let mut depth = 0usize;
        let mut end = None;
        'scan: for (j, l) in lines.iter().enumerate().skip(i) {
            for c in l.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = Some(j);
                            break 'scan;
                        }
                    }
                    ';' if depth == 0 => break 'scan,
                    _ => {}
                }
            }
        }
        if let Some(end) = end {
            out.push((i + 1, name, end - i + 1));
        }
    }
    out
}

#[test]
fn no_function_runs_over_a_hundred_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long = Vec::new();
    for (file, text) in modules(&src).into_values() {
        // Test-only readers whose code is made of brace characters.
        if matches!(
            file.as_str(),
            "src/layering.rs" | "src/seam.rs" | "src/fn_length.rs"
        ) {
            continue;
        }
        for (line, name, n) in lengths(&code_of(&text)) {
            if n > MOST {
                long.push(format!("{file}:{line} {name}: {n} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these into parts (issue #19 item 6):\n{}",
        long.join("\n")
    );
}

#[test]
fn a_body_runs_from_its_signature_to_its_closing_brace() {
    let code = "pub(crate) async fn a(x: u8) -> u8 {\n    if x > 1 {\n        x\n    } else { 0 }\n}\nfn b();\n    fn c() { format!(\"{x}\") }\nlet fn_x = 1;\n";
    assert_eq!(
        lengths(code),
        [(1, "a".to_string(), 5), (7, "c".to_string(), 1)]
    );
}
