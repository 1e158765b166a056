//! What an RDS point's dump holds: the entries of its table of contents
//! (`pg_restore --list` on the verified stream), each with its kind
//! (`TABLE`, `TABLE DATA`, `INDEX`, `SEQUENCE`, ...), `schema.name` and
//! owner. A custom-format dump records no row counts or sizes per table:
//! `ls` shows what it holds, a restore test shows how much.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::json;
use tokio::process::Command;

use super::RdsError;
use super::dump::{toc, toc_entries};
use super::home::{PG_DUMP, RdsKind};
use crate::archive::Manifest;
use crate::engine::events::Job;
use crate::engine::kind::{Column, Contents, Filter, Item, Listed, Sink};
use crate::engine::point::PointData;
use crate::error::{Error, SourceError};

static COLUMNS: [Column; 2] = [
    Column {
        key: "kind",
        header: "KIND",
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
        let rx = stream.take();
        let list = toc(Command::new("pg_restore"), rx, job, |e| {
            SourceError::from(RdsError::ToolMissing {
                program: "pg_restore".into(),
                reason: e.to_string(),
            })
            .into()
        })
        .await;
        let list = stream.finish(list).await?;
        let entries = toc_entries(&list);
        let tables = entries.iter().filter(|e| e.kind == "TABLE").count();
        listed
            .about
            .push(format!("{} entries, {tables} tables", entries.len()));
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
