//! The README keeps its word: every fenced block marked ```` ```sh runnable ````
//! runs against the lab, in a fresh bash from the repository root
//! (`set -euo pipefail`, the drtool this test built first on PATH), and must
//! succeed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// The runnable blocks of a markdown text, with the line each starts at.
fn runnable_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```sh runnable") => {
                current = Some((n + 1, String::new()));
            }
            Some((_, body)) if line.trim_start().starts_with("```") => {
                let body = std::mem::take(body);
                if let Some((at, _)) = current.take() {
                    blocks.push((at, body));
                }
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "a runnable block is not closed");
    blocks
}

#[test]
fn blocks_are_found_with_their_lines() {
    let md = "a\n```sh runnable\necho one\necho two\n```\n```sh\nnot me\n```\n";
    assert_eq!(
        runnable_blocks(md),
        vec![(2, "echo one\necho two\n".to_string())]
    );
}

#[test]
fn every_runnable_readme_block_runs_against_the_lab() {
    let _lab = Lab::get();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = runnable_blocks(&readme);
    assert!(!blocks.is_empty(), "README.md marks no block runnable");
    let bin = drtool_bin();
    let bin_dir = bin.parent().unwrap();
    for (line, body) in blocks {
        // The env file puts target/release first; this test's binary goes
        // before it, so a stale release build cannot answer instead.
        let first = format!("export PATH=\"{}:$PATH\"", bin_dir.display());
        let script = format!(
            "set -euo pipefail\n{first}\n{}",
            body.replace("source .lab/env", &format!("source .lab/env; {first}"))
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(repo())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README.md block at line {line} failed ({}):\n{body}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
    }
}
