//! `drtool ls --target T`: what a point holds, without restoring it. Rows
//! go to stdout as the point is read (a point of a million keys starts
//! printing at once and never sits in memory); what the point is and a
//! summary go to stderr after them. `-o json` streams the items inside the
//! envelope.

use std::path::PathBuf;

use serde_json::json;

use super::{Ctx, output};
use crate::archive::PointId;
use crate::catalog::{PointChoice, parse_time};
use crate::engine::Verdict;
use crate::engine::contents::ContentsRequest;
use crate::engine::kind::{Column, Filter, Item};
use crate::error::Error;
use crate::report::human_bytes;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, short = 't')]
    pub target: String,
    /// The region whose store is read (default: the target's home region).
    #[arg(long, short = 'r')]
    pub region: Option<String>,
    /// This point (default: the newest valid one).
    #[arg(long, conflicts_with = "before")]
    pub point: Option<PointId>,
    /// The newest point finished before this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    pub before: Option<String>,
    /// Only names that start with this: an etcd key prefix, or
    /// `namespace/name` of namespace objects.
    #[arg(long)]
    pub prefix: Option<String>,
    /// etcd snapshot points: the keys as of this older revision, where the
    /// snapshot's history still holds it (a snapshot is downloaded to
    /// $TMPDIR to be read).
    #[arg(long, value_name = "N")]
    pub revision: Option<u64>,
    /// Sizes as exact byte counts instead of KiB/MiB/GiB.
    #[arg(long)]
    pub bytes: bool,
    /// age identity file for encrypted points.
    #[arg(long, env = "DRTOOL_AGE_IDENTITY")]
    pub identity: Option<PathBuf>,
}

/// Rows kept before the first is printed, to size the columns.
const SIZING_ROWS: usize = 200;

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let region = match &args.region {
        Some(r) => r.clone(),
        None => ctx.engine.target(&args.target)?.home.clone(),
    };
    let point = match (&args.point, &args.before) {
        (Some(id), _) => PointChoice::Id(id.clone()),
        (None, Some(t)) => PointChoice::Before(parse_time(t)?),
        (None, None) => PointChoice::Newest,
    };
    let filter = Filter {
        prefix: args.prefix.clone(),
        revision: args.revision,
    };
    let req = ContentsRequest {
        region: region.clone(),
        target: args.target.clone(),
        point,
        filter: filter.clone(),
    };
    let opened = ctx.engine.open_point(&req).await?;
    let p = opened.point.clone();
    let mut table = Table::new(opened.columns, args.bytes);
    // Points whose items have no sizes (a dump's entries) total no bytes.
    let mut any_size = false;
    let listed = {
        let mut sink = |item: Item| -> Result<(), Error> {
            any_size |= item.size.is_some();
            if ctx.json() {
                ctx.emit(|e| e.stream_item("Ls", &item));
            } else {
                table.push(item);
            }
            match output::stdout_failure() {
                None => Ok(()),
                Some(kind) => Err(Error::failed(format!("stdout failed ({kind})"))),
            }
        };
        opened.list(&filter, &mut sink).await
    };
    // A reader that stopped reading (`| head`) has what it wanted.
    if listed.is_err() && output::stdout_failure() == Some(std::io::ErrorKind::BrokenPipe) {
        return Ok(Verdict::Ok);
    }
    // The progress display's last line is out before the table's first.
    ctx.sync().await;
    if !ctx.json() {
        table.flush();
    }
    let listed = listed?;
    if ctx.json() {
        ctx.emit(|e| {
            e.field("point", &p);
            e.field("about", &listed.about);
            e.field(
                "total",
                json!({"items": listed.items, "bytes": listed.bytes}),
            );
        });
    } else {
        note(
            ctx,
            &format!(
                "point {} of {} in {} ({}, {}, finished {})",
                p.id,
                p.target,
                region,
                p.payload_line(),
                human_bytes(p.plaintext_size),
                p.finished_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        );
        for line in &listed.about {
            note(ctx, line);
        }
        let bytes = if any_size {
            format!(", {}", size_text(listed.bytes, args.bytes))
        } else {
            String::new()
        };
        note(
            ctx,
            &format!(
                "{} items{bytes}{}",
                listed.items,
                match &args.prefix {
                    Some(prefix) => format!(" under {prefix:?}"),
                    None => String::new(),
                }
            ),
        );
    }
    Ok(Verdict::Ok)
}

fn note(ctx: &Ctx, line: &str) {
    if !ctx.quiet {
        errln!("{line}");
    }
}

fn size_text(n: u64, exact: bool) -> String {
    if exact { n.to_string() } else { human_bytes(n) }
}

/// Rows printed as they come, their columns sized on the first ones.
struct Table {
    columns: &'static [Column],
    exact: bool,
    widths: Option<Vec<usize>>,
    held: Vec<Vec<String>>,
    /// Whether any row held had a size: a listing without sizes (a dump's
    /// table of contents) has no SIZE column.
    sized: bool,
}

impl Table {
    fn new(columns: &'static [Column], exact: bool) -> Table {
        Table {
            columns,
            exact,
            widths: None,
            held: Vec::new(),
            sized: false,
        }
    }

    fn header(&self) -> Vec<String> {
        std::iter::once("SIZE".to_string())
            .chain(self.columns.iter().map(|c| c.header.to_string()))
            .chain(std::iter::once("NAME".to_string()))
            .collect()
    }

    fn push(&mut self, item: Item) {
        if self.widths.is_none() && item.size.is_some() {
            self.sized = true;
        }
        let mut row: Vec<String> = std::iter::once(match item.size {
            Some(n) => size_text(n, self.exact),
            None => "-".into(),
        })
        .chain(self.columns.iter().map(|c| item.text(c)))
        .collect();
        row.push(item.name);
        match &self.widths {
            Some(_) => self.print(&row),
            None => {
                self.held.push(row);
                if self.held.len() >= SIZING_ROWS {
                    self.flush();
                }
            }
        }
    }

    /// Sizes the columns on the rows held (at the end: all of them) and
    /// prints them.
    fn flush(&mut self) {
        if self.widths.is_some() {
            return;
        }
        let header = self.header();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &self.held {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        self.widths = Some(widths);
        self.print(&header);
        for row in std::mem::take(&mut self.held) {
            self.print(&row);
        }
    }

    fn print(&self, row: &[String]) {
        let Some(widths) = &self.widths else {
            return;
        };
        let last = row.len().saturating_sub(1);
        let first = usize::from(!self.sized);
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate().skip(first) {
            if i == last {
                line.push_str(c);
            } else if i == 0 {
                line.push_str(&format!("{c:>w$}  "));
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        outln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    static COLUMNS: [Column; 2] = [
        Column {
            key: "mod_revision",
            header: "REVISION",
        },
        Column {
            key: "lease_ttl",
            header: "TTL",
        },
    ];

    #[test]
    fn cells_show_numbers_ttls_and_missing_details() {
        let mut details = BTreeMap::new();
        details.insert("mod_revision".to_string(), json!(42));
        details.insert("lease_ttl".to_string(), json!(60));
        let item = Item {
            kind: "key".into(),
            name: "/a".into(),
            size: Some(2048),
            details,
        };
        assert_eq!(item.text(&COLUMNS[0]), "42");
        assert_eq!(item.text(&COLUMNS[1]), "60s");
        let bare = Item {
            details: BTreeMap::new(),
            ..item
        };
        assert_eq!(bare.text(&COLUMNS[1]), "-");
        assert_eq!(
            bare.text(&Column {
                key: "kind",
                header: "KIND"
            }),
            "key"
        );
    }
}
