//! What a namespace point holds: its objects, read line by line from the
//! verified stream, named `namespace/name` (`name` for the namespace and
//! custom resource definitions), with their kind, API version and size.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::json;

use super::ObjectRecord;
use super::home::NamespaceKind;
use super::restore::Records;
use crate::archive::Manifest;
use crate::engine::events::Job;
use crate::engine::kind::{Column, Contents, Filter, Item, Listed, Sink, TargetKind};
use crate::engine::point::PointData;
use crate::error::Error;

static COLUMNS: [Column; 2] = [
    Column {
        key: "kind",
        header: "KIND",
    },
    Column {
        key: "api_version",
        header: "API VERSION",
    },
];

/// An object's item.
pub fn object_item(r: &ObjectRecord) -> Item {
    let name = match r.object["metadata"]["namespace"].as_str() {
        Some(ns) if r.namespaced => format!("{ns}/{}", r.name()),
        _ => r.name().to_string(),
    };
    let api_version = if r.group.is_empty() {
        r.version.clone()
    } else {
        format!("{}/{}", r.group, r.version)
    };
    let mut details = BTreeMap::new();
    details.insert("api_version".into(), json!(api_version));
    details.insert("resource".into(), json!(r.resource()));
    Item {
        kind: r.kind.clone(),
        name,
        size: serde_json::to_vec(&r.object).ok().map(|b| b.len() as u64),
        details,
    }
}

#[async_trait]
impl Contents for NamespaceKind {
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
        if filter.revision.is_some() {
            return Err(Error::input(
                "a namespace point holds one state of its objects: list it without --revision",
            ));
        }
        let mut listed = Listed::default();
        if let Some(c) = self.consistent(&manifest.consistency) {
            listed.about.push(format!("consistent: {}", c.text));
        }
        job.phase("reading objects");
        let mut stream = data.stream().await?;
        let mut records = Records::new(stream.take());
        let read = job
            .cancellable(async {
                while let Some(record) = records.next().await {
                    let item = object_item(&record?);
                    if filter.wants(item.name.as_bytes()) {
                        listed.send(sink, item)?;
                    }
                }
                Ok(())
            })
            .await;
        drop(records);
        stream.finish(read).await?;
        Ok(listed)
    }
}
