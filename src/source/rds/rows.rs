//! The rows of each table in a dump, counted from the dump itself: its data
//! as `pg_restore --data-only -f -` writes it (one `COPY schema.table (...)
//! FROM stdin;` block per table, one line per row, `\.` at the end), read
//! as it streams, never held. A custom-format table of contents records no
//! row counts; this is how `drtool ls` shows them (the listing reads the
//! whole verified stream anyway, to check its hash).

use std::collections::BTreeMap;
use std::process::Stdio;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

/// How much of a line is kept to tell what it is: a `COPY` line's start
/// (its table's name) or `\.`; a row's bytes past this are only counted.
const HEAD: usize = 4096;

/// Counts the rows of each `COPY` block of a plain-text dump fed in chunks.
#[derive(Debug, Default)]
pub struct CopyCounter {
    head: Vec<u8>,
    /// The table of the block being read and its rows so far.
    block: Option<(String, u64)>,
    pub counts: BTreeMap<String, u64>,
}

impl CopyCounter {
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.keep(&chunk[..i]);
                    self.line_ended();
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.keep(chunk);
                    chunk = &[];
                }
            }
        }
    }

    fn keep(&mut self, part: &[u8]) {
        let room = HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn line_ended(&mut self) {
        let line = std::mem::take(&mut self.head);
        match self.block.as_mut() {
            Some(_) if line == b"\\." => {
                if let Some((table, rows)) = self.block.take() {
                    *self.counts.entry(table).or_default() += rows;
                }
            }
            Some((_, rows)) => *rows += 1,
            None => {
                if let Some(table) = copy_table(&line) {
                    self.block = Some((table, 0));
                }
            }
        }
    }
}

/// `COPY public.orders (id, total) FROM stdin;` -> `public.orders`
/// (quotes dropped, as the table of contents names it).
fn copy_table(line: &[u8]) -> Option<String> {
    // A line cut at HEAD may end inside a character.
    let text = String::from_utf8_lossy(line);
    let rest = text.strip_prefix("COPY ")?;
    if !text.ends_with("FROM stdin;") && line.len() < HEAD {
        return None;
    }
    let mut name = String::new();
    let mut quoted = false;
    for c in rest.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => break,
            c => name.push(c),
        }
    }
    Some(name).filter(|n| !n.is_empty())
}

/// Runs `cmd` (`pg_restore`) over the dump's bytes from `rx` and counts
/// each table's rows; an error says why (the listing goes on without them).
pub async fn count(mut cmd: Command, mut rx: mpsc::Receiver<Bytes>) -> Result<CopyCounter, String> {
    let mut child = cmd
        .args(["--data-only", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("pg_restore could not start: {e}"))?;
    let (Some(mut stdout), Some(mut stderr), Some(mut stdin)) =
        (child.stdout.take(), child.stderr.take(), child.stdin.take())
    else {
        return Err("no pipes to pg_restore".into());
    };
    let feed = async move {
        while let Some(chunk) = rx.recv().await {
            if stdin.write_all(&chunk).await.is_err() {
                // pg_restore stopped: the rest is drained, its status says why.
                while rx.recv().await.is_some() {}
                break;
            }
        }
    };
    let read = async move {
        let mut counter = CopyCounter::default();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = stdout.read(&mut buf).await {
            if n == 0 {
                break;
            }
            counter.feed(&buf[..n]);
        }
        counter
    };
    let errors = async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    };
    let ((), counter, errors) = tokio::join!(feed, read, errors);
    let status = child.wait().await.map_err(|e| format!("pg_restore: {e}"))?;
    if !status.success() {
        let said: String = errors.trim().chars().take(500).collect();
        return Err(format!("pg_restore --data-only {status}: {said}"));
    }
    Ok(counter)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- Data for Name: orders; Type: TABLE DATA; Schema: public; Owner: app\n--\n\n\
COPY public.orders (id, total, note) FROM stdin;\n1\t10.00\tfirst\n2\t20.00\t\\N\n3\t30.00\ta\\nb\n\\.\n\n\
COPY public.\"Order Items\" (id) FROM stdin;\n1\n\\.\n\n\
COPY shop.empty (id) FROM stdin;\n\\.\n\n\
SELECT pg_catalog.setval('public.orders_id_seq', 3, true);\n";

    #[test]
    fn rows_are_counted_per_table_whatever_the_chunks() {
        let want: BTreeMap<String, u64> = [
            ("public.orders".to_string(), 3),
            ("public.Order Items".to_string(), 1),
            ("shop.empty".to_string(), 0),
        ]
        .into();
        for size in [1, 2, 3, 7, 64, DUMP.len()] {
            let mut c = CopyCounter::default();
            for chunk in DUMP.as_bytes().chunks(size) {
                c.feed(chunk);
            }
            assert_eq!(c.counts, want, "chunks of {size}");
        }
    }

    #[test]
    fn a_row_longer_than_what_is_kept_counts_once() {
        let mut c = CopyCounter::default();
        c.feed(b"COPY public.blobs (b) FROM stdin;\n");
        c.feed(&vec![b'x'; 3 * HEAD]);
        c.feed(b"\n\\.\n");
        assert_eq!(c.counts.get("public.blobs"), Some(&1));
        // A row reading "\." only as its start is a row, not the end.
        let mut c = CopyCounter::default();
        c.feed(b"COPY t.x (a) FROM stdin;\n\\.x\n\\.\n");
        assert_eq!(c.counts.get("t.x"), Some(&1));
    }

    #[test]
    fn lines_that_only_look_like_copy_are_not_blocks() {
        let mut c = CopyCounter::default();
        c.feed(b"COPY is a word in a comment\n-- COPY public.x (a) FROM stdin;\n");
        assert!(c.counts.is_empty());
        assert!(c.block.is_none());
    }
}
