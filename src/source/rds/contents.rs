//! What an RDS point's dump holds: the entries of its table of contents
//! (`pg_restore --list` on the verified stream), each with its kind
//! (`TABLE`, `TABLE DATA`, `INDEX`, `SEQUENCE`, ...), `schema.name` and
//! owner, and each table's rows. A custom-format table of contents records
//! no row counts: they are counted from the dump's data as the same stream
//! goes by (`rows.rs`: a second `pg_restore`, `--data-only`), exact for the
//! dump's one snapshot of the database. Sizes per table are not recorded
//! anywhere in a dump; a restore test shows them.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;
use tokio::process::Command;
use tokio::sync::mpsc;

use super::RdsError;
use super::dump::{toc, toc_entries};
use super::home::{PG_DUMP, RdsKind};
use super::rows;
use crate::archive::Manifest;
use crate::engine::events::Job;
use crate::engine::kind::{Column, Contents, Filter, Item, Listed, Sink};
use crate::engine::point::PointData;
use crate::error::{Error, SourceError};

static COLUMNS: [Column; 3] = [
    Column {
        key: "kind",
        header: "KIND",
    },
    Column {
        key: "rows",
        header: "ROWS",
    },
    Column {
        key: "owner",
        header: "OWNER",
    },
];

#[async_trait]
impl Contents for RdsKind {
    fn columns(&self, _manifest: &Manifest) -> &'static [Column] {
        &COLUMNS
    }

    async fn list(
        &self,
        manifest: &Manifest,
        data: PointData,
        filter: &Filter,
        sink: Sink<'_>,
        job: &Job,
    ) -> Result<Listed, Error> {
        if manifest.payload != PG_DUMP {
            return Err(Error::input(format!(
                "point {} holds no dump to list (a {} point)",
                manifest.point_id,
                manifest.payload.as_str()
            )));
        }
        if filter.revision.is_some() {
            return Err(Error::input(
                "a dump holds one state of its database: list it without --revision",
            ));
        }
        let mut listed = Listed::default();
        job.phase("reading the dump's table of contents");
        let mut stream = data.stream().await?;
        let (to_list, to_count) = tee(stream.take());
        let listing = toc(Command::new("pg_restore"), to_list, job, |e| {
            SourceError::from(RdsError::ToolMissing {
                program: "pg_restore".into(),
                reason: e.to_string(),
            })
            .into()
        });
        let (list, counted) =
            tokio::join!(listing, rows::count(Command::new("pg_restore"), to_count));
        let list = stream.finish(list).await?;
        let entries = toc_entries(&list);
        let tables = entries.iter().filter(|e| e.kind == "TABLE").count();
        let counts = match counted {
            Ok(c) => {
                let rows: u64 = c.counts.values().sum();
                listed.about.push(format!(
                    "{} entries, {tables} tables, {rows} rows",
                    entries.len()
                ));
                c.counts
            }
            Err(e) => {
                listed
                    .about
                    .push(format!("{} entries, {tables} tables", entries.len()));
                listed.about.push(format!("rows not counted: {e}"));
                BTreeMap::new()
            }
        };
        for e in entries {
            let name = match &e.schema {
                Some(schema) => format!("{schema}.{}", e.name),
                None => e.name.clone(),
            };
            if !filter.wants(name.as_bytes()) {
                continue;
            }
            let mut details = BTreeMap::new();
            if let Some(owner) = &e.owner {
                details.insert("owner".into(), json!(owner));
            }
            if matches!(e.kind.as_str(), "TABLE" | "TABLE DATA")
                && let Some(rows) = counts.get(&name)
            {
                details.insert("rows".into(), json!(rows));
            }
            listed.send(
                sink,
                Item {
                    kind: e.kind,
                    name,
                    size: None,
                    details,
                },
            )?;
        }
        Ok(listed)
    }
}

/// Two receivers of every chunk of `rx`: the table of contents' reader
/// (which stops early and drains the rest) and the rows' counter.
fn tee(mut rx: mpsc::Receiver<Bytes>) -> (mpsc::Receiver<Bytes>, mpsc::Receiver<Bytes>) {
    let (a_tx, a_rx) = mpsc::channel(4);
    let (b_tx, b_rx) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            // Bytes clone by reference count; a side gone takes no more.
            let a = a_tx.send(chunk.clone());
            let b = b_tx.send(chunk);
            let (a, b) = tokio::join!(a, b);
            if a.is_err() && b.is_err() {
                break;
            }
        }
    });
    (a_rx, b_rx)
}
