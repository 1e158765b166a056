//! `drtool ls`: what a point holds, read without restoring it.
//!
//! The point is chosen as a restore chooses it (newest, by id, or the
//! newest before a time), its manifest's signature is checked, and its data
//! is read through the same verified stream: an item is listed only from
//! bytes whose hashes are being checked, and a point that fails them ends
//! the listing with an integrity error (items already listed came from a
//! point that was then found damaged: the error says so). The kind reads
//! its own payload ([`super::kind::Contents`]) and hands items on one at a
//! time, so a point of millions of keys lists in bounded memory.

use std::sync::Arc;

use super::events::{Job, JobSpec};
use super::kind::{BodySink, Column, Filter, Listed, Sink, TargetKind};
use super::point::{PointData, PointRef};
use super::report::Operation;
use super::root::Engine;
use crate::archive::{ArchiveError, Manifest};
use crate::catalog::{self, PointChoice};
use crate::error::Error;

/// What `drtool ls` asks for.
#[derive(Debug, Clone)]
pub struct ContentsRequest {
    pub region: String,
    pub target: String,
    pub point: PointChoice,
    pub filter: Filter,
}

/// A point opened for listing: which one, and its columns.
pub struct Opened {
    pub point: PointRef,
    pub columns: &'static [Column],
    kind: Arc<dyn TargetKind>,
    manifest: Manifest,
    data: PointData,
    job: Job,
}

impl Opened {
    /// Lists the point's items into `sink`.
    pub async fn list(self, filter: &Filter, sink: Sink<'_>) -> Result<Listed, Error> {
        let contents = contents_of(&*self.kind)?;
        let listed = contents
            .list(&self.manifest, self.data, filter, sink, &self.job)
            .await
            .map(|l| with_consistency(l, &*self.kind, &self.manifest));
        self.job.settle(listed, |l| format!("{} items", l.items))
    }
}

impl Opened {
    /// The point's kind.
    pub(super) fn kind(&self) -> Arc<dyn TargetKind> {
        self.kind.clone()
    }

    /// Hands the point's items with their bodies to `sink`, in key order.
    pub async fn bodies(self, filter: &Filter, sink: BodySink<'_>) -> Result<Listed, Error> {
        let contents = contents_of(&*self.kind)?;
        let listed = contents
            .bodies(&self.manifest, self.data, filter, sink, &self.job)
            .await
            .map(|l| with_consistency(l, &*self.kind, &self.manifest));
        self.job
            .settle(listed, |l| format!("{} items read", l.items))
    }
}

/// A kind's listing, for a point `open_point` opened (it checked the kind
/// has one).
pub(super) fn contents_of(kind: &dyn TargetKind) -> Result<&dyn super::kind::Contents, Error> {
    kind.contents()
        .ok_or_else(|| Error::failed(format!("points of kind {} cannot be listed", kind.name())))
}

/// A listing's lines, the point's consistency first, as its kind reads it.
fn with_consistency(mut listed: Listed, kind: &dyn TargetKind, manifest: &Manifest) -> Listed {
    if let Some(c) = kind.consistent(&manifest.consistency) {
        listed.about.insert(0, format!("consistent: {}", c.text));
    }
    listed
}

impl Engine {
    /// Chooses the point `req` names in its region and checks its manifest;
    /// reads no data yet.
    pub async fn open_point(&self, req: &ContentsRequest) -> Result<Opened, Error> {
        self.region(&req.region)?;
        self.check_reachable(&req.region)?;
        let target = self.target(&req.target)?;
        let kind = self.kind_of(target)?;
        let Some(contents) = kind.contents() else {
            return Err(Error::input(format!(
                "target {}: points of kind {} cannot be listed yet; restore one with `drtool restore-test` to look inside",
                target.name,
                kind.name()
            )));
        };
        if matches!(req.point, PointChoice::Revision(_)) {
            return Err(Error::input(
                "choose the point with --point or --before; --revision lists a snapshot point as of a revision it holds",
            ));
        }
        let rs = self.store(&req.region).await?;
        let listing = catalog::list_points(&rs, Some(&target.name)).await?;
        let entry = catalog::select(&listing, &req.region, &target.name, &req.point)?.chosen;
        let m = &entry.manifest;
        if m.is_encrypted() && self.identities().is_none() {
            return Err(ArchiveError::NeedsIdentity {
                key: entry.manifest_key.clone(),
            }
            .into());
        }
        let mut point = self.point_ref(&rs, entry);
        point.signed_by = self.check_signature(m, &req.region)?;
        if point.data_key.is_none() {
            return Err(Error::input(format!(
                "point {} of {} holds no data in the bucket (its kind keeps it elsewhere: {}); nothing to list",
                point.id,
                target.name,
                point.payload_line()
            )));
        }
        let job = self.job(
            JobSpec::new(Operation::List)
                .target(&target.name)
                .region(&req.region)
                .point(Some(point.id.clone()))
                .total_bytes(Some(point.plaintext_size)),
        );
        let data = self.point_data(&rs, point.clone(), &job);
        Ok(Opened {
            columns: contents.columns(m),
            point,
            kind: kind.clone(),
            manifest: m.clone(),
            data,
            job,
        })
    }
}
