//! What a namespace point holds: its objects, read line by line from the
//! verified stream, named `namespace/name` (`name` for the namespace and
//! custom resource definitions), with their kind, API version and size.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use super::ObjectRecord;
use super::home::NamespaceKind;
use super::home::spec;
use super::options::INCLUDE;
use super::restore::{Records, comparable};
use crate::archive::Manifest;
use crate::config::Target;
use crate::engine::events::Job;
use crate::engine::kind::{Body, BodySink, Column, Contents, Filter, Item, Listed, Sink};
use crate::engine::options::FlagValues;
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

    /// A kind's folder is its resource (`--include configmaps`); single
    /// objects and one namespace's part of a kind come back with the
    /// whole point.
    fn restore_selection(&self, path: &str, folder: bool, sample: &Item) -> Option<FlagValues> {
        let resource = sample.details.get("resource")?.as_str()?;
        if !folder || path != format!("{}/", sample.kind) {
            return None;
        }
        Some(FlagValues::default().with(INCLUDE, resource))
    }

    async fn list(
        &self,
        _manifest: &Manifest,
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

    async fn bodies(
        &self,
        _manifest: &Manifest,
        data: PointData,
        filter: &Filter,
        sink: BodySink<'_>,
        job: &Job,
    ) -> Result<Listed, Error> {
        let listed = Listed::default();
        job.phase("reading objects");
        let mut stream = data.stream().await?;
        let mut records = Records::new(stream.take());
        let mut all = Vec::new();
        let read = job
            .cancellable(async {
                while let Some(record) = records.next().await {
                    all.push(body_of(&record?));
                }
                Ok(())
            })
            .await;
        drop(records);
        stream.finish(read).await?;
        send_sorted(all, filter, sink, listed)
    }

    async fn live_bodies(
        &self,
        target: &Target,
        region: &str,
        filter: &Filter,
        sink: BodySink<'_>,
        job: &Job,
    ) -> Result<Listed, Error> {
        let spec = spec(target)?;
        let cluster_spec = spec.regions.get(region).ok_or_else(|| {
            Error::input(format!(
                "target {}: no kubeconfig for region {region}",
                target.name
            ))
        })?;
        job.phase("connecting to Kubernetes");
        let cluster = self.cluster(cluster_spec).await?;
        job.phase("reading the live objects");
        // Read as a backup reads them (the same lists, the same fields
        // left out), into memory only.
        let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
        let reading = super::backup(&cluster, spec, tx, job);
        let consume = async move {
            let mut all = Vec::new();
            crate::source::each_line(&mut rx, "the live objects", |line| {
                let record: ObjectRecord = serde_json::from_slice(line)
                    .map_err(|e| Error::failed(format!("a live object did not read back: {e}")))?;
                all.push(body_of(&record));
                Ok(())
            })
            .await?;
            Ok::<Vec<Body>, Error>(all)
        };
        let (read, all) = tokio::join!(reading, consume);
        let all = all?;
        read.map_err(Error::from)?;
        let mut listed = Listed::default();
        listed
            .about
            .push(format!("live namespace {} in {region}", spec.namespace));
        send_sorted(all, filter, sink, listed)
    }
}

/// An object with what a diff compares: its form as a restore would write
/// it (server-set fields, status and the namespace left out), as indented
/// JSON so a text diff shows its fields line by line; keyed
/// `resource/name`.
fn body_of(r: &ObjectRecord) -> Body {
    let form = comparable(&r.resource(), r.object.clone());
    let mut body = serde_json::to_vec_pretty(&form).unwrap_or_default();
    body.push(b'\n');
    Body {
        key: format!("{}/{}", r.resource(), r.name()).into_bytes(),
        item: object_item(r),
        body,
    }
}

/// Sends the bodies `filter` wants in key order.
fn send_sorted(
    mut all: Vec<Body>,
    filter: &Filter,
    sink: BodySink<'_>,
    mut listed: Listed,
) -> Result<Listed, Error> {
    all.sort_by(|a, b| a.key.cmp(&b.key));
    for b in all {
        if filter.wants(b.item.name.as_bytes()) {
            listed.send_body(sink, b)?;
        }
    }
    Ok(listed)
}
