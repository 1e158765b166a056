//! `drtool diff`: what differs between a point and another point of the
//! same target, or the live target. Each side is read once, in key order,
//! into a spool file of its own (a temporary folder, removed when the diff
//! ends), then the two files are merged: memory holds one item of each
//! side, whatever the size of the points. A key on one side only is added
//! or removed; a key on both whose bodies differ is changed, with a unified
//! diff of the two when both are UTF-8 text.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::contents::ContentsRequest;
use super::events::JobSpec;
use super::kind::{Body, Filter, Item, Listed};
use super::report::Operation;
use super::root::Engine;
use crate::catalog::PointChoice;
use crate::error::Error;
use crate::units::human_bytes;

/// What the point is compared with.
#[derive(Debug, Clone)]
pub enum Against {
    /// Another point of the target in the same region.
    Point(PointChoice),
    /// The live target in this region, as it is now.
    Live(String),
}

/// What `drtool diff` asks for.
#[derive(Debug, Clone)]
pub struct DiffRequest {
    /// The region whose store holds the point(s).
    pub region: String,
    pub target: String,
    pub point: PointChoice,
    pub against: Against,
    pub filter: Filter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One side of a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub size: u64,
    pub sha256: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, Value>,
}

impl Side {
    fn of(b: &Body) -> Side {
        Side {
            size: b.body.len() as u64,
            sha256: hex::encode(Sha256::digest(&b.body)),
            details: b.item.details.clone(),
        }
    }
}

/// One item that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub change: ChangeKind,
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Side>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Side>,
    /// A unified diff of the bodies, when both are UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_diff: Option<String>,
}

impl Side {
    fn text(&self) -> String {
        format!(
            "{} sha256 {}",
            human_bytes(self.size),
            &self.sha256[..8.min(self.sha256.len())]
        )
    }
}

impl Change {
    /// How `drtool diff` and the dashboard show it: `+ name (size)`,
    /// `- name (size)`, or `~ name (from -> to)` and the text diff's hunks,
    /// indented. Keys are named by themselves, objects by kind and name.
    pub fn lines(&self) -> Vec<String> {
        let name = if self.kind == "key" {
            self.name.clone()
        } else {
            format!("{} {}", self.kind, self.name)
        };
        match (self.change, &self.from, &self.to) {
            (ChangeKind::Added, _, Some(to)) => {
                vec![format!("+ {name}  ({})", human_bytes(to.size))]
            }
            (ChangeKind::Removed, Some(from), _) => {
                vec![format!("- {name}  ({})", human_bytes(from.size))]
            }
            (ChangeKind::Changed, Some(from), Some(to)) => {
                let mut out = vec![format!("~ {name}  ({} -> {})", from.text(), to.text())];
                if let Some(diff) = &self.text_diff {
                    // The file header is the summary's; the hunks are indented.
                    out.extend(
                        diff.lines()
                            .filter(|l| !l.starts_with("--- ") && !l.starts_with("+++ "))
                            .map(|l| format!("    {l}")),
                    );
                }
                out
            }
            _ => vec![format!("? {name}")],
        }
    }
}

/// What a diff compared and found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Compared {
    pub from: String,
    pub to: String,
    pub about_from: Vec<String>,
    pub about_to: Vec<String>,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub same: u64,
}

impl Compared {
    pub fn differs(&self) -> bool {
        self.added + self.removed + self.changed > 0
    }

    /// `N added, N removed, N changed, N the same: FROM -> TO`.
    pub fn summary(&self) -> String {
        format!(
            "{} added, {} removed, {} changed, {} the same: {} -> {}",
            self.added, self.removed, self.changed, self.same, self.from, self.to
        )
    }
}

/// Where changes go, one at a time, in key order.
pub type ChangeSink<'a> = &'a mut (dyn FnMut(Change) -> Result<(), Error> + Send);

/// A text diff longer than this is cut (a changed 1.5 MiB value).
const MAX_TEXT_DIFF: usize = 64 * 1024;

impl Engine {
    /// Compares the point `req` names with another point or the live
    /// target; hands each change to `sink` (with text diffs when
    /// `text_diffs`).
    pub async fn diff(
        &self,
        req: &DiffRequest,
        text_diffs: bool,
        sink: ChangeSink<'_>,
    ) -> Result<Compared, Error> {
        let dir = tempfile::Builder::new()
            .prefix("drtool-diff-")
            .tempdir()
            .map_err(|e| {
                Error::failed(format!(
                    "cannot make a folder for the diff in {}: {e}; set TMPDIR to a folder with room for both sides",
                    std::env::temp_dir().display()
                ))
            })?;
        let point = |choice: &PointChoice| ContentsRequest {
            region: req.region.clone(),
            target: req.target.clone(),
            point: choice.clone(),
            filter: req.filter.clone(),
        };
        let from = self.open_point(&point(&req.point)).await?;
        let mut compared = Compared {
            from: format!("point {} in {}", from.point.id, req.region),
            ..Compared::default()
        };
        let from_file = dir.path().join("from");
        let mut spool = Spool::create(&from_file, &compared.from)?;
        compared.about_from = from
            .bodies(&req.filter, &mut |b| spool.push(&b))
            .await?
            .about;
        spool.finish()?;
        let to_file = dir.path().join("to");
        let listed = match &req.against {
            Against::Point(choice) => {
                let to = self.open_point(&point(choice)).await?;
                compared.to = format!("point {} in {}", to.point.id, req.region);
                let mut spool = Spool::create(&to_file, &compared.to)?;
                let listed = to.bodies(&req.filter, &mut |b| spool.push(&b)).await?;
                spool.finish()?;
                listed
            }
            Against::Live(region) => {
                compared.to = format!("live in {region}");
                let mut spool = Spool::create(&to_file, &compared.to)?;
                let listed = self
                    .live_bodies(&req.target, region, &req.filter, &mut |b| spool.push(&b))
                    .await?;
                spool.finish()?;
                listed
            }
        };
        compared.about_to = listed.about;
        merge(&from_file, &to_file, text_diffs, &mut compared, sink)?;
        Ok(compared)
    }

    /// The live target's items with their bodies.
    async fn live_bodies(
        &self,
        target: &str,
        region: &str,
        filter: &Filter,
        sink: super::kind::BodySink<'_>,
    ) -> Result<Listed, Error> {
        self.region(region)?;
        self.check_reachable(region)?;
        let target = self.target(target)?;
        let kind = self.kind_of(target)?;
        let contents = kind.contents().ok_or_else(|| {
            Error::input(format!(
                "target {}: kind {} cannot be compared yet",
                target.name,
                kind.name()
            ))
        })?;
        let job = self.job(
            JobSpec::new(Operation::List)
                .target(&target.name)
                .region(region),
        );
        let listed = contents
            .live_bodies(target, region, filter, sink, &job)
            .await;
        job.settle(listed, |l| format!("{} live items", l.items))
    }
}

/// One side's items in key order, framed: key, body, item (JSON), each
/// length-prefixed.
struct Spool {
    out: BufWriter<File>,
    path: PathBuf,
    side: String,
    last: Option<Vec<u8>>,
}

fn spool_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::failed(format!(
        "the diff's spool file {}: {e} (free space in TMPDIR, or point TMPDIR at a larger disk)",
        path.display()
    ))
}

impl Spool {
    fn create(path: &Path, side: &str) -> Result<Spool, Error> {
        let file = File::create(path).map_err(|e| spool_error(path, e))?;
        Ok(Spool {
            out: BufWriter::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            side: side.to_string(),
            last: None,
        })
    }

    fn push(&mut self, b: &Body) -> Result<(), Error> {
        if self.last.as_ref().is_some_and(|l| *l >= b.key) {
            return Err(Error::failed(format!(
                "{} handed {} out of key order: the diff cannot merge it",
                self.side, b.item.name
            )));
        }
        let item = serde_json::to_vec(&b.item).map_err(|e| spool_error(&self.path, e))?;
        for part in [&b.key[..], &b.body[..], &item[..]] {
            self.out
                .write_all(&(part.len() as u64).to_le_bytes())
                .and_then(|()| self.out.write_all(part))
                .map_err(|e| spool_error(&self.path, e))?;
        }
        self.last = Some(b.key.clone());
        Ok(())
    }

    fn finish(mut self) -> Result<(), Error> {
        self.out.flush().map_err(|e| spool_error(&self.path, e))
    }
}

/// Reads a spool back.
struct Unspool {
    from: BufReader<File>,
    path: PathBuf,
}

impl Unspool {
    fn open(path: &Path) -> Result<Unspool, Error> {
        let file = File::open(path).map_err(|e| spool_error(path, e))?;
        Ok(Unspool {
            from: BufReader::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
        })
    }

    fn part(&mut self, first: bool) -> Result<Option<Vec<u8>>, Error> {
        let mut len = [0u8; 8];
        match self.from.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if first && e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(spool_error(&self.path, e)),
        }
        let mut part = vec![0; u64::from_le_bytes(len) as usize];
        self.from
            .read_exact(&mut part)
            .map_err(|e| spool_error(&self.path, e))?;
        Ok(Some(part))
    }

    fn next(&mut self) -> Result<Option<Body>, Error> {
        let Some(key) = self.part(true)? else {
            return Ok(None);
        };
        let body = self.part(false)?.unwrap_or_default();
        let item = self.part(false)?.unwrap_or_default();
        let item: Item = serde_json::from_slice(&item).map_err(|e| spool_error(&self.path, e))?;
        Ok(Some(Body { key, item, body }))
    }
}

fn merge(
    from: &Path,
    to: &Path,
    text_diffs: bool,
    compared: &mut Compared,
    sink: ChangeSink<'_>,
) -> Result<(), Error> {
    let (mut a, mut b) = (Unspool::open(from)?, Unspool::open(to)?);
    let (mut x, mut y) = (a.next()?, b.next()?);
    loop {
        let order = match (&x, &y) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(p), Some(q)) => p.key.cmp(&q.key),
        };
        match order {
            Ordering::Less => {
                if let Some(p) = x.take() {
                    compared.removed += 1;
                    sink(Change {
                        change: ChangeKind::Removed,
                        from: Some(Side::of(&p)),
                        to: None,
                        text_diff: None,
                        kind: p.item.kind,
                        name: p.item.name,
                    })?;
                }
                x = a.next()?;
            }
            Ordering::Greater => {
                if let Some(q) = y.take() {
                    compared.added += 1;
                    sink(Change {
                        change: ChangeKind::Added,
                        from: None,
                        to: Some(Side::of(&q)),
                        text_diff: None,
                        kind: q.item.kind,
                        name: q.item.name,
                    })?;
                }
                y = b.next()?;
            }
            Ordering::Equal => {
                if let (Some(p), Some(q)) = (x.take(), y.take()) {
                    if p.body == q.body {
                        compared.same += 1;
                    } else {
                        compared.changed += 1;
                        let text_diff = text_diffs
                            .then(|| text_diff(&p.body, &q.body, (&compared.from, &compared.to)))
                            .flatten();
                        sink(Change {
                            change: ChangeKind::Changed,
                            from: Some(Side::of(&p)),
                            to: Some(Side::of(&q)),
                            text_diff,
                            kind: q.item.kind,
                            name: q.item.name,
                        })?;
                    }
                }
                x = a.next()?;
                y = b.next()?;
            }
        }
    }
}

/// A unified diff of two UTF-8 bodies (none when either is not text), cut
/// at [`MAX_TEXT_DIFF`] on a line.
pub fn text_diff(a: &[u8], b: &[u8], (from, to): (&str, &str)) -> Option<String> {
    let (a, b) = (std::str::from_utf8(a).ok()?, std::str::from_utf8(b).ok()?);
    let mut text = similar::TextDiff::from_lines(a, b)
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string();
    if text.len() > MAX_TEXT_DIFF {
        let cut = text[..MAX_TEXT_DIFF].rfind('\n').unwrap_or(0);
        let total = text.len();
        text.truncate(cut + 1);
        text.push_str(&format!(
            "... (the diff is cut at {cut} of its {total} bytes)\n"
        ));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(key: &str, value: &str) -> Body {
        Body {
            key: key.as_bytes().to_vec(),
            item: Item {
                kind: "key".into(),
                name: key.into(),
                size: Some(value.len() as u64),
                details: BTreeMap::new(),
            },
            body: value.as_bytes().to_vec(),
        }
    }

    fn spooled(dir: &Path, name: &str, bodies: &[Body]) -> PathBuf {
        let path = dir.join(name);
        let mut s = Spool::create(&path, name).unwrap_or_else(|e| panic!("{e}"));
        for b in bodies {
            s.push(b).unwrap_or_else(|e| panic!("{e}"));
        }
        s.finish().unwrap_or_else(|e| panic!("{e}"));
        path
    }

    #[test]
    fn two_sides_merge_into_added_removed_changed_and_same() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let from = spooled(
            dir.path(),
            "a",
            &[body("/a", "1\n"), body("/b", "x\ny\n"), body("/c", "same")],
        );
        let to = spooled(
            dir.path(),
            "b",
            &[body("/b", "x\nz\n"), body("/c", "same"), body("/d", "new")],
        );
        let mut changes = Vec::new();
        let mut compared = Compared {
            from: "point A".into(),
            to: "live".into(),
            ..Compared::default()
        };
        merge(&from, &to, true, &mut compared, &mut |c| {
            changes.push(c);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<(ChangeKind, &str)> = changes
            .iter()
            .map(|c| (c.change, c.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ChangeKind::Removed, "/a"),
                (ChangeKind::Changed, "/b"),
                (ChangeKind::Added, "/d")
            ]
        );
        assert_eq!(
            (
                compared.added,
                compared.removed,
                compared.changed,
                compared.same
            ),
            (1, 1, 1, 1)
        );
        let diff = changes[1].text_diff.clone().unwrap_or_default();
        assert!(
            diff.contains("--- point A") && diff.contains("-y\n+z\n"),
            "{diff}"
        );
        assert!(compared.differs());
    }

    #[test]
    fn a_side_out_of_key_order_is_refused_not_merged_wrong() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut s =
            Spool::create(&dir.path().join("x"), "point X").unwrap_or_else(|e| panic!("{e}"));
        s.push(&body("/b", "")).unwrap_or_else(|e| panic!("{e}"));
        let e = s
            .push(&body("/a", ""))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("point X handed /a out of key order"), "{e}");
    }

    #[test]
    fn binary_bodies_have_no_text_diff_and_long_ones_are_cut() {
        assert_eq!(text_diff(&[0xff], b"x", ("a", "b")), None);
        let a: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let b: String = (0..20_000).map(|i| format!("LINE {i}\n")).collect();
        let d = text_diff(a.as_bytes(), b.as_bytes(), ("a", "b")).unwrap_or_default();
        assert!(d.len() < MAX_TEXT_DIFF + 200, "{}", d.len());
        assert!(d.ends_with("bytes)\n"), "{}", &d[d.len() - 80..]);
    }
}
