//! Verify: download each point, check the manifest's own checksum, the stored
//! and plaintext hashes, that it decompresses, for etcd snapshots the embedded
//! sha256 trailer, and (through its kind) the artefacts kept outside the bucket.

use std::time::Instant;

use super::events::{Job, JobSpec};
use super::point::{PointRef, pipeline_error};
use super::report::{ItemReport, Operation, Outcome, RunReport};
use super::root::{Engine, Scope};
use crate::archive::pipeline::{self, DataSummary};
use crate::archive::{ArchiveError, PointId};
use crate::catalog::{self, CheckResult, Listing, PointEntry, Problem, RegionStore};
use crate::error::{Error, SourceError};
use crate::store::Keep;

#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    pub scope: Scope,
    /// Only this point.
    pub point: Option<PointId>,
}

/// A region's listing, or why it could not be read.
type Listed = Result<(RegionStore, Listing), Error>;

impl Engine {
    /// Verifies every point in scope, region by region, and that every copy a
    /// manifest records is there (with its own manifest) in the regions in scope.
    pub async fn verify(&self, req: &VerifyRequest) -> Result<RunReport, Error> {
        self.check_scope(&req.scope)?;
        let target = req.scope.target.as_deref();
        let mut listings: Vec<(String, Listed)> = Vec::new();
        for region in self.scoped_regions(&req.scope) {
            let listed = match self.store(&region).await {
                Ok(rs) => catalog::list_points(&rs, target)
                    .await
                    .map(|l| (rs, l))
                    .map_err(Error::from),
                Err(e) => Err(e),
            };
            listings.push((region, listed));
        }
        let readable: Vec<(&str, &Listing)> = listings
            .iter()
            .filter_map(|(r, l)| l.as_ref().ok().map(|(_, l)| (r.as_str(), l)))
            .collect();
        let gaps = copy_gaps(&readable);
        let mut report = RunReport::default();
        for (region, listed) in &listings {
            report.extend(self.verify_region(region, listed, &gaps, req).await);
        }
        for gap in gaps.iter().filter(|g| wanted(req, &g.point)) {
            report.push(gap.item());
        }
        if report.is_empty() {
            return Err(Error::input(
                "no recovery points matched: nothing was verified",
            ));
        }
        Ok(report)
    }

    async fn verify_region(
        &self,
        region: &str,
        listed: &Listed,
        gaps: &[CopyGap],
        req: &VerifyRequest,
    ) -> RunReport {
        let mut report = RunReport::default();
        let any = req.scope.target.as_deref().unwrap_or("*");
        let (rs, listing) = match listed {
            Ok(l) => l,
            Err(e) => {
                report.push(ItemReport::new(Operation::Verify, any, region, None).failed(e));
                return report;
            }
        };
        for problem in listing.problems.iter().filter(|p| wanted(req, &p.point)) {
            let e = Error::from(ArchiveError::BadManifest {
                key: format!("point {}", problem.point),
                detail: problem.detail.clone(),
            });
            let mut item = ItemReport::new(
                Operation::Verify,
                &problem.target,
                region,
                Some(problem.point.clone()),
            )
            .failed(&e);
            item.message = format!("damaged: {}", problem.detail);
            report.push(item);
        }
        for orphan in listing.orphans.iter().filter(|o| wanted(req, &o.point)) {
            // A copy another region's manifest records is reported as a gap.
            let claimed = gaps.iter().any(|g| {
                g.region == region && g.target == orphan.target && g.point == orphan.point
            });
            if !claimed {
                report.push(orphan_item(region, orphan, req.point.is_some()));
            }
        }
        for entry in listing.points.iter().filter(|p| wanted(req, p.id.as_str())) {
            report.push(self.verify_point(rs, entry).await);
        }
        report
    }

    /// Verifies one point; the message says what was checked.
    pub(crate) async fn verify_point(&self, rs: &RegionStore, entry: &PointEntry) -> ItemReport {
        let started = Instant::now();
        let m = &entry.manifest;
        let job = self.job(
            JobSpec::new(Operation::Verify)
                .target(&m.target)
                .region(&rs.region)
                .point(entry.id.to_string())
                .total_bytes(Some(m.plaintext_size)),
        );
        let item = ItemReport::new(
            Operation::Verify,
            &m.target,
            &rs.region,
            Some(entry.id.to_string()),
        );
        match self.check_point(rs, entry, &job).await {
            Ok((outcome, mut message)) => {
                // Only a full check is a verify worth recording (an encrypted
                // point read without its key had its stored bytes checked).
                if outcome == Outcome::Ok
                    && let Err(e) = record(rs, entry, true, &message, started).await
                {
                    message.push_str(&format!(
                        "; its result could not be kept next to it ({e}): give drtool write access to the store to record verifies"
                    ));
                }
                job.finish(outcome, &message, None);
                let mut done = item.with_outcome(outcome, message).timed(started);
                done.bytes = Some(m.plaintext_size);
                done
            }
            Err(e) => {
                job.fail(&e);
                let failed = item.failed(&e).timed(started);
                // A region that cannot be reached cannot keep it either.
                if let Err(r) = record(rs, entry, false, &failed.message, started).await {
                    tracing::debug!("verify result of {} not kept: {r}", entry.id);
                }
                failed
            }
        }
    }

    async fn check_point(
        &self,
        rs: &RegionStore,
        entry: &PointEntry,
        job: &Job,
    ) -> Result<(Outcome, String), Error> {
        let m = &entry.manifest;
        let signed_by = self.check_signature(m, &rs.region)?;
        let point = self.point_ref(rs, entry);
        let (outcome, mut message) = match &point.data_key {
            None => (Outcome::Ok, String::new()),
            Some(key) if m.is_encrypted() && self.identities().is_none() => {
                stored_only(rs, key, &point, job).await?
            }
            Some(_) => {
                job.phase("downloading and checking");
                self.point_data(rs, point.clone(), job)
                    .stream()
                    .await?
                    .verify()
                    .await?;
                let mut message = format!(
                    "ok: {} stored bytes and {} plaintext bytes match their sha256, zstd decodes",
                    m.stored_size, m.plaintext_size
                );
                if self.kinds().trailing_sha256(&m.payload) {
                    message.push_str(", its trailing sha256 ok");
                }
                (Outcome::Ok, message)
            }
        };
        let kind = self.kind_named(&m.target_kind)?;
        let target = self.config().target(&m.target);
        if let Some(external) = kind.verify_external(target, m, &rs.region, job).await? {
            message = if message.is_empty() {
                external
            } else {
                format!("{message}; {external}")
            };
        }
        if message.is_empty() {
            message = "no data object".into();
        }
        if let Some(key) = signed_by {
            message.push_str(&format!("; signed by key {key}"));
        }
        Ok((outcome, message))
    }
}

/// Keeps a verify's result next to the point (`verified.json` or
/// `verify-failed.json`), so listings,
/// the dashboard and `points` show when it was last verified.
async fn record(
    rs: &RegionStore,
    entry: &PointEntry,
    ok: bool,
    message: &str,
    started: Instant,
) -> Result<(), Error> {
    let result = CheckResult {
        at: chrono::Utc::now(),
        ok,
        message: message.to_string(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let (key, other) = rs.layout.verify_keys(&entry.manifest.target, &entry.id, ok);
    let body = serde_json::to_vec_pretty(&result).map_err(Error::failed)?;
    rs.store.put(&key, body.into(), Keep::Normal).await?;
    // The listing said which result was there: only the other kind needs
    // removing (one left behind loses to this newer one in listings).
    if entry.verified.as_ref().is_some_and(|v| v.ok != ok) {
        let _ = rs.store.delete(&other).await;
    }
    Ok(())
}

/// Encrypted points without an identity: only the stored bytes can be checked.
async fn stored_only(
    rs: &RegionStore,
    key: &str,
    point: &PointRef,
    job: &Job,
) -> Result<(Outcome, String), Error> {
    let (size, sha) = job
        .cancellable(async {
            pipeline::hash_object(rs.store.as_ref(), key, job.on_bytes())
                .await
                .map_err(pipeline_error)
        })
        .await?;
    let expected = DataSummary {
        plaintext_size: point.plaintext_size,
        plaintext_sha256: point.plaintext_sha256.clone(),
        stored_size: point.stored_size,
        stored_sha256: point.stored_sha256.clone(),
        version: None,
    };
    let found = DataSummary {
        stored_size: size,
        stored_sha256: sha,
        ..expected.clone()
    };
    pipeline::check_summary(key, &found, &expected, false)?;
    Ok((
        Outcome::Warning,
        "stored bytes match; plaintext not checked: the point is encrypted, pass --identity FILE"
            .into(),
    ))
}

fn wanted(req: &VerifyRequest, point: &str) -> bool {
    req.point.as_ref().is_none_or(|id| id.as_str() == point)
}

/// A point folder without a manifest: not a recovery point. Asked for by id,
/// that is a failure; otherwise a leftover to clean up.
fn orphan_item(region: &str, orphan: &Problem, asked_for: bool) -> ItemReport {
    let item = ItemReport::new(
        Operation::Verify,
        &orphan.target,
        region,
        Some(orphan.point.clone()),
    );
    if asked_for {
        let e = Error::from(SourceError::Integrity {
            what: format!("point {} in region {region}", orphan.point),
            detail: format!(
                "{}; it cannot be restored from this region: copy it again (`drtool copy --point {}`) or restore it elsewhere",
                orphan.detail, orphan.point
            ),
        });
        item.failed(&e)
    } else {
        item.with_outcome(
            Outcome::Warning,
            format!(
                "{}; `drtool gc --region {region}` removes it once it is a day old",
                orphan.detail
            ),
        )
    }
}

/// A copy that a manifest records but its region does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyGap {
    pub target: String,
    pub point: String,
    /// The region that should hold the copy.
    pub region: String,
    /// The region whose manifest records it.
    pub recorded_in: String,
    /// The region has the point's data but no manifest for it.
    pub data_without_manifest: bool,
}

impl CopyGap {
    fn item(&self) -> ItemReport {
        let state = if self.data_without_manifest {
            "holds its data but no manifest, so it is not a recovery point there"
        } else {
            "does not hold it"
        };
        let e = Error::from(SourceError::Integrity {
            what: format!("point {} of {}", self.point, self.target),
            detail: format!(
                "the manifest in {} records a copy in {}, but {} {state}: copy it again with `drtool copy --target {} --point {} --from {} --to {}`",
                self.recorded_in,
                self.region,
                self.region,
                self.target,
                self.point,
                self.recorded_in,
                self.region
            ),
        });
        ItemReport::new(
            Operation::Verify,
            &self.target,
            &self.region,
            Some(self.point.clone()),
        )
        .failed(&e)
    }
}

/// Every copy recorded in a manifest (`copied_to`) that the listed region
/// lacks. Regions not listed (out of scope, unreadable) are not judged.
pub fn copy_gaps(listings: &[(&str, &Listing)]) -> Vec<CopyGap> {
    let mut gaps = Vec::new();
    for (from, listing) in listings {
        for entry in &listing.points {
            let m = &entry.manifest;
            for to in &m.copied_to {
                let Some((_, there)) = listings.iter().find(|(r, _)| r == to) else {
                    continue;
                };
                let held = there
                    .points
                    .iter()
                    .any(|p| p.manifest.target == m.target && p.id == entry.id);
                let damaged = there
                    .problems
                    .iter()
                    .any(|p| p.target == m.target && p.point == entry.id.as_str());
                if held || damaged {
                    continue; // a damaged manifest is reported on its own
                }
                let data_without_manifest = there
                    .orphans
                    .iter()
                    .any(|o| o.target == m.target && o.point == entry.id.as_str());
                gaps.push(CopyGap {
                    target: m.target.clone(),
                    point: entry.id.to_string(),
                    region: to.clone(),
                    recorded_in: (*from).to_string(),
                    data_without_manifest,
                });
            }
        }
    }
    gaps.sort_by(|a, b| (&a.target, &a.point, &a.region).cmp(&(&b.target, &b.point, &b.region)));
    gaps.dedup_by(|a, b| (&a.target, &a.point, &a.region) == (&b.target, &b.point, &b.region));
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::manifest::tests::sample;

    fn entry(point: &str, region: &str, copied_to: &[&str]) -> PointEntry {
        let mut m = sample();
        m.point_id = point.into();
        m.region = region.into();
        m.copied_to = copied_to.iter().map(|s| s.to_string()).collect();
        PointEntry {
            id: point.parse().unwrap_or_else(|_| panic!("bad id {point}")),
            manifest_key: format!("{region}/{point}/manifest.json"),
            manifest: m,
            restore_test: None,
            verified: None,
            retention_override: None,
        }
    }

    fn problem(point: &str) -> Problem {
        Problem {
            target: "etcd-main".into(),
            point: point.into(),
            detail: "x".into(),
        }
    }

    #[test]
    fn copies_a_manifest_records_must_be_held_where_it_says() {
        let (p1, p2, p3, p4) = (
            "20261122T020000Z-00000001",
            "20261122T030000Z-00000002",
            "20261122T040000Z-00000003",
            "20261122T050000Z-00000004",
        );
        let east = Listing {
            points: vec![
                entry(p1, "east", &["west"]),
                entry(p2, "east", &["west"]),
                entry(p3, "east", &["west", "eu"]),
                entry(p4, "east", &["west"]),
            ],
            ..Listing::default()
        };
        let west = Listing {
            // p1 held, p2 only as data, p3 absent, p4 with a damaged manifest.
            points: vec![entry(p1, "west", &[])],
            orphans: vec![problem(p2)],
            problems: vec![problem(p4)],
            ..Listing::default()
        };
        let gaps = copy_gaps(&[("east", &east), ("west", &west)]);
        let got: Vec<(&str, &str, bool)> = gaps
            .iter()
            .map(|g| (g.point.as_str(), g.region.as_str(), g.data_without_manifest))
            .collect();
        // "eu" is not listed (out of scope): not judged.
        assert_eq!(got, [(p2, "west", true), (p3, "west", false)]);
        let item = gaps[0].item();
        assert_eq!(item.outcome, Outcome::Failed);
        assert_eq!(item.error_class, Some(crate::error::ErrorClass::Integrity));
        assert!(
            item.message.contains("holds its data but no manifest"),
            "{}",
            item.message
        );
        // With only one region listed, nothing can be judged.
        assert!(copy_gaps(&[("east", &east)]).is_empty());
    }
}
