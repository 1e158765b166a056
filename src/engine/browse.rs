//! Browsing a point (the dashboard's contents view): the point's items are
//! listed once, from its verified stream, into an index file in the
//! temporary folder (`TMPDIR`, removed when the index is dropped); each
//! level of the tree and each filter is then read from that file, so moving
//! around a point of millions of keys downloads it once and holds one
//! level's rows in memory, never the whole listing.
//!
//! An item's place in the tree is its kind's browse path
//! ([`Contents::browse_path`]: an etcd key as it is, `Kind/namespace/name`
//! for an object); `/` separates the levels.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::sync::Arc;

use super::contents::{Opened, contents_of};
use super::kind::{Column, Filter, Item, Listed, TargetKind};
use super::options::FlagValues;
use crate::error::Error;

/// A point listed into a file, ready to browse.
pub struct PointIndex {
    file: tempfile::NamedTempFile,
    kind: Arc<dyn TargetKind>,
    pub point: String,
    pub columns: &'static [Column],
    /// Its items, their bytes and what the listing said of the point.
    pub listed: Listed,
}

impl std::fmt::Debug for PointIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointIndex")
            .field("point", &self.point)
            .field("items", &self.listed.items)
            .finish()
    }
}

/// One row of a level.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// Items sharing the path up to a `/`, with how many and their bytes.
    Folder {
        path: String,
        items: u64,
        bytes: u64,
        /// The restore flags that restore just these items, where the kind
        /// can (an etcd prefix).
        restore: Option<FlagValues>,
    },
    Item {
        path: String,
        item: Item,
        restore: Option<FlagValues>,
    },
}

impl Entry {
    pub fn path(&self) -> &str {
        match self {
            Entry::Folder { path, .. } | Entry::Item { path, .. } => path,
        }
    }

    pub fn restore(&self) -> Option<&FlagValues> {
        match self {
            Entry::Folder { restore, .. } | Entry::Item { restore, .. } => restore.as_ref(),
        }
    }
}

/// What one level (or one filter) of the tree holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Level {
    pub prefix: String,
    pub filter: String,
    /// Folders first, then items, each in path order.
    pub entries: Vec<Entry>,
    /// Items under the prefix (that the filter matches), shown or not.
    pub items: u64,
    pub bytes: u64,
    /// Items in no entry shown (past the limit of rows).
    pub left_out: u64,
}

/// Where a path goes at a level: the folder's path (up to and with the next
/// `/` after the first character of what follows the prefix), or None for an
/// item of the level itself.
pub fn folder_of<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.get(prefix.len()..)?;
    let (i, _) = rest.char_indices().skip(1).find(|(_, c)| *c == '/')?;
    path.get(..prefix.len() + i + 1)
}

fn index_error(e: std::io::Error) -> Error {
    Error::failed(format!(
        "cannot write the point's index in {}: {e}; set TMPDIR to a folder with room for the listing",
        std::env::temp_dir().display()
    ))
}

impl Opened {
    /// Lists the point into an index file to browse.
    pub async fn index(self) -> Result<PointIndex, Error> {
        let kind = self.kind();
        let point = self.point.id.clone();
        let columns = self.columns;
        let mut w = Writer::new(kind.clone())?;
        let listed = {
            let mut sink = |item: Item| w.push(&item);
            self.list(&Filter::default(), &mut sink).await?
        };
        w.done(point, columns, listed)
    }
}

impl PointIndex {
    /// An index of items already at hand (a listing read back, a test's):
    /// what [`Opened::index`] makes of a point's listing.
    pub fn from_items(
        kind: Arc<dyn TargetKind>,
        (point, columns): (&str, &'static [Column]),
        about: Vec<String>,
        items: impl IntoIterator<Item = Item>,
    ) -> Result<PointIndex, Error> {
        let mut w = Writer::new(kind)?;
        let mut listed = Listed {
            about,
            ..Listed::default()
        };
        for item in items {
            listed.items += 1;
            listed.bytes = listed.bytes.saturating_add(item.size.unwrap_or(0));
            w.push(&item)?;
        }
        w.done(point.to_string(), columns, listed)
    }
}

/// An index file being written.
struct Writer {
    file: tempfile::NamedTempFile,
    out: BufWriter<std::fs::File>,
    kind: Arc<dyn TargetKind>,
}

impl Writer {
    fn new(kind: Arc<dyn TargetKind>) -> Result<Writer, Error> {
        contents_of(&*kind)?;
        let file = tempfile::Builder::new()
            .prefix("drtool-browse-")
            .tempfile()
            .map_err(index_error)?;
        let out = BufWriter::new(file.reopen().map_err(index_error)?);
        Ok(Writer { file, out, kind })
    }

    fn push(&mut self, item: &Item) -> Result<(), Error> {
        let path = contents_of(&*self.kind)?.browse_path(item);
        let line = index_line(&path, item)?;
        self.out.write_all(line.as_bytes()).map_err(index_error)
    }

    fn done(
        mut self,
        point: String,
        columns: &'static [Column],
        listed: Listed,
    ) -> Result<PointIndex, Error> {
        self.out.flush().map_err(index_error)?;
        Ok(PointIndex {
            file: self.file,
            kind: self.kind,
            point,
            columns,
            listed,
        })
    }
}

/// `SIZE \t "PATH" \t ITEM-JSON`: the path as JSON so that no key breaks
/// the line; the item is parsed only for rows shown.
fn index_line(path: &str, item: &Item) -> Result<String, Error> {
    let path = serde_json::to_string(path).map_err(|e| Error::failed(e.to_string()))?;
    let json = serde_json::to_string(item).map_err(|e| Error::failed(e.to_string()))?;
    Ok(format!("{}\t{path}\t{json}\n", item.size.unwrap_or(0)))
}

/// One line of the index, its item not parsed yet.
struct Line<'a> {
    size: u64,
    path: String,
    json: &'a str,
}

fn parse_line(line: &str) -> Result<Line<'_>, Error> {
    let bad = || Error::failed(format!("the point's index holds a damaged line: {line:?}"));
    let (size, rest) = line.split_once('\t').ok_or_else(bad)?;
    let end = path_end(rest).ok_or_else(bad)?;
    let path: String = serde_json::from_str(&rest[..end]).map_err(|_| bad())?;
    let json = rest[end..].strip_prefix('\t').ok_or_else(bad)?;
    Ok(Line {
        size: size.parse().map_err(|_| bad())?,
        path,
        json: json.trim_end_matches('\n'),
    })
}

/// Where the JSON string at the start of `s` ends (after its closing quote).
fn path_end(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn parse_item(json: &str) -> Result<Item, Error> {
    serde_json::from_str(json)
        .map_err(|e| Error::failed(format!("the point's index holds a damaged item: {e}")))
}

/// A folder while a level is read.
struct Gathered {
    items: u64,
    bytes: u64,
    sample: Item,
}

impl PointIndex {
    /// The rows under `prefix`: its folders and items, or, with a `filter`,
    /// every item under it whose path holds the filter (any case), at most
    /// `limit` rows.
    pub fn level(&self, prefix: &str, filter: &str, limit: usize) -> Result<Level, Error> {
        let contents = contents_of(&*self.kind)?;
        let reader = BufReader::new(self.file.reopen().map_err(index_error)?);
        let needle = filter.to_lowercase();
        let mut level = Level {
            prefix: prefix.to_string(),
            filter: filter.to_string(),
            ..Level::default()
        };
        let mut folders: BTreeMap<String, Gathered> = BTreeMap::new();
        let mut items: Vec<(String, Item)> = Vec::new();
        for line in reader.lines() {
            let line = line.map_err(index_error)?;
            let l = parse_line(&line)?;
            if !l.path.starts_with(prefix)
                || (!needle.is_empty() && !l.path.to_lowercase().contains(&needle))
            {
                continue;
            }
            level.items += 1;
            level.bytes = level.bytes.saturating_add(l.size);
            let folder = if needle.is_empty() {
                folder_of(&l.path, prefix)
            } else {
                None
            };
            let room = folders.len() + items.len() < limit;
            match folder {
                Some(f) => match folders.get_mut(f) {
                    Some(g) => {
                        g.items += 1;
                        g.bytes = g.bytes.saturating_add(l.size);
                    }
                    None if room => {
                        let g = Gathered {
                            items: 1,
                            bytes: l.size,
                            sample: parse_item(l.json)?,
                        };
                        folders.insert(f.to_string(), g);
                    }
                    None => level.left_out += 1,
                },
                None if room => {
                    items.push((l.path.clone(), parse_item(l.json)?));
                }
                None => level.left_out += 1,
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        level.entries = folders
            .into_iter()
            .map(|(path, g)| Entry::Folder {
                restore: contents.restore_selection(&path, true, &g.sample),
                path,
                items: g.items,
                bytes: g.bytes,
            })
            .chain(items.into_iter().map(|(path, item)| Entry::Item {
                restore: contents.restore_selection(&path, false, &item),
                path,
                item,
            }))
            .collect();
        Ok(level)
    }

    /// The index file (tests check it goes away with the index).
    pub fn file_path(&self) -> &std::path::Path {
        self.file.path()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_folder_is_the_path_up_to_the_next_slash_after_the_prefix() {
        let cases = [
            ("/registry/pods/a", "", Some("/registry/")),
            ("/registry/pods/a", "/registry/", Some("/registry/pods/")),
            ("/registry/pods/a", "/registry/pods/", None),
            ("/registry/pods/", "/registry/", Some("/registry/pods/")),
            ("app/config/x", "", Some("app/")),
            ("plain", "", None),
            ("/", "", None),
            // A multi-byte first character is not cut.
            ("/é/x", "/", Some("/é/")),
            ("ü/x", "", Some("ü/")),
            (
                "ConfigMap/shop/settings",
                "ConfigMap/",
                Some("ConfigMap/shop/"),
            ),
        ];
        for (path, prefix, want) in cases {
            assert_eq!(folder_of(path, prefix), want, "{path} under {prefix}");
        }
    }

    #[test]
    fn an_index_line_reads_back_whatever_the_key_holds() {
        let item = Item {
            kind: "key".into(),
            name: "/a\tb\n\"c\\".into(),
            size: Some(7),
            details: BTreeMap::new(),
        };
        let line = index_line(&item.name, &item).unwrap();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let l = parse_line(line.trim_end()).unwrap();
        assert_eq!(l.path, item.name);
        assert_eq!(l.size, 7);
        assert_eq!(parse_item(l.json).unwrap(), item);
        assert!(parse_line("7\t\"unterminated").is_err());
        assert!(parse_line("x\t\"a\"\t{}").is_err());
    }
}
