//! Listing recovery points per region. A region that cannot be read is reported
//! in place; the others are still listed.

use serde::Serialize;

use super::report::{Outcome, Verdict, verdict_of};
use super::root::{Engine, Scope};
use crate::archive::Manifest;
use crate::catalog::{self, Leftover, Problem};
use crate::error::{Error, ErrorClass};

/// What one region holds (or why it could not be read).
#[derive(Debug, Clone, Serialize)]
pub struct RegionPoints {
    pub region: String,
    pub store: String,
    pub error: Option<String>,
    pub error_class: Option<ErrorClass>,
    pub points: Vec<Manifest>,
    /// The last restore test of each point that had one, by point id.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub restore_tests: std::collections::BTreeMap<String, crate::catalog::CheckResult>,
    /// The last verify of each point verified in this region, by point id.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub verifies: std::collections::BTreeMap<String, crate::catalog::CheckResult>,
    /// Retention changed by hand (`drtool points retain`), by point id.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub retention_overrides: std::collections::BTreeMap<String, crate::catalog::RetentionOverride>,
    /// The stream the region holds under each target's newest point that a
    /// stream starts from, by point id (older bases are not listed: their
    /// segments can number in the hundred thousands).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub streams: std::collections::BTreeMap<String, StreamHeld>,
    /// Manifests that could not be trusted (edited, damaged, misplaced).
    pub problems: Vec<Problem>,
    /// Point folders without a manifest: interrupted backups or copies.
    pub orphans: Vec<Problem>,
    /// What belongs to no point (those folders' objects, open uploads,
    /// temporary files), with their age: `drtool gc` removes them.
    pub leftovers: Vec<Leftover>,
}

/// What a region holds of a point's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamHeld {
    pub segments: usize,
    /// The newest revision the segments reach without a hole.
    pub reaches: u64,
    /// Where the chain stops being whole, if it does.
    pub broken: Option<String>,
}

impl RegionPoints {
    /// A region's store, nothing listed yet.
    fn empty(region: &str, store: String) -> RegionPoints {
        RegionPoints {
            region: region.to_string(),
            store,
            error: None,
            error_class: None,
            points: Vec::new(),
            restore_tests: Default::default(),
            verifies: Default::default(),
            retention_overrides: Default::default(),
            streams: Default::default(),
            problems: Vec::new(),
            orphans: Vec::new(),
            leftovers: Vec::new(),
        }
    }

    /// A region that could not be read, and why.
    fn failed(region: &str, e: &Error) -> RegionPoints {
        RegionPoints {
            error_class: Some(e.class()),
            error: Some(e.to_string()),
            ..RegionPoints::empty(region, "-".into())
        }
    }
}

impl Engine {
    /// Every region in scope listed on its own and at once, each given
    /// `timeout`: a region comes back as soon as it is read, and one that
    /// does not answer in time comes back as unreachable, without holding
    /// up the others (the dashboard shows each as it arrives).
    pub fn points_each<'a>(
        &'a self,
        scope: &Scope,
        timeout: std::time::Duration,
    ) -> impl futures::Stream<Item = RegionPoints> + 'a {
        let target = scope.target.clone();
        self.scoped_regions(scope)
            .into_iter()
            .map(move |region| {
                let scope = Scope {
                    region: Some(region.clone()),
                    target: target.clone(),
                };
                async move {
                    match tokio::time::timeout(timeout, self.points(&scope)).await {
                        Ok(Ok(mut listed)) if !listed.is_empty() => listed.remove(0),
                        Ok(Ok(_)) => RegionPoints::failed(
                            &region,
                            &Error::input(format!("no region {region}")),
                        ),
                        Ok(Err(e)) => RegionPoints::failed(&region, &e),
                        Err(_) => RegionPoints::failed(
                            &region,
                            &Error::unreachable(format!(
                                "region {region}: no answer from its store in {}s",
                                timeout.as_secs()
                            )),
                        ),
                    }
                }
            })
            .collect::<futures::stream::FuturesUnordered<_>>()
    }

    pub async fn points(&self, scope: &Scope) -> Result<Vec<RegionPoints>, Error> {
        self.check_scope(scope)?;
        let mut out = Vec::new();
        for region in self.scoped_regions(scope) {
            let rs = match self.store(&region).await {
                Ok(rs) => rs,
                Err(e) => {
                    out.push(RegionPoints::failed(&region, &e));
                    continue;
                }
            };
            let mut listed = RegionPoints::empty(&region, rs.store.describe());
            let target = scope.target.as_deref();
            let found = futures::future::try_join3(
                catalog::list_points(&rs, target),
                catalog::unfinished(&rs, target),
                catalog::expired_locks(&rs, target, chrono::Utc::now()),
            )
            .await;
            match found {
                Ok((l, unfinished, locks)) => {
                    listed.restore_tests = l
                        .points
                        .iter()
                        .filter_map(|p| Some((p.id.to_string(), p.restore_test.clone()?)))
                        .collect();
                    listed.verifies = l
                        .points
                        .iter()
                        .filter_map(|p| Some((p.id.to_string(), p.verified.clone()?)))
                        .collect();
                    listed.retention_overrides = l
                        .points
                        .iter()
                        .filter_map(|p| Some((p.id.to_string(), p.retention_override.clone()?)))
                        .collect();
                    listed.points = l.points.into_iter().map(|p| p.manifest).collect();
                    listed.streams = self.streams_held(&rs, &listed.points).await;
                    listed.problems = l.problems;
                    listed.orphans = l.orphans;
                    listed.leftovers = l.leftovers;
                    listed.leftovers.extend(unfinished);
                    listed.leftovers.extend(locks);
                }
                Err(e) => {
                    let e = Error::from(e);
                    listed.error_class = Some(e.class());
                    listed.error = Some(e.to_string());
                }
            }
            out.push(listed);
        }
        Ok(out)
    }
}

impl Engine {
    /// Per target, the stream under its newest point a stream starts from
    /// (one LIST each); a listing that fails leaves it out.
    async fn streams_held(
        &self,
        rs: &crate::catalog::RegionStore,
        points: &[Manifest],
    ) -> std::collections::BTreeMap<String, StreamHeld> {
        let mut newest: std::collections::BTreeMap<&str, (&Manifest, u64)> = Default::default();
        for m in points {
            let Ok(kind) = self.kind_named(&m.target_kind) else {
                continue;
            };
            let Some(position) = kind.streams().and_then(|s| s.position(m).ok()) else {
                continue;
            };
            let newer = newest
                .get(m.target.as_str())
                .is_none_or(|(n, _)| n.point_id < m.point_id);
            if newer {
                newest.insert(&m.target, (m, position));
            }
        }
        let mut out = std::collections::BTreeMap::new();
        for (target, (m, position)) in newest {
            let Ok(id) = m.point_id.parse::<crate::archive::PointId>() else {
                continue;
            };
            let Ok(objects) = rs
                .store
                .list(&rs.layout.stream_prefix(target, Some(&id)))
                .await
            else {
                continue;
            };
            if objects.is_empty() {
                continue;
            }
            let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
            let view = crate::archive::segment::chain_of(position, &keys);
            out.insert(
                m.point_id.to_string(),
                StreamHeld {
                    segments: view.whole.len(),
                    reaches: view.reaches,
                    broken: view.broken.map(|b| b.to_string()),
                },
            );
        }
        out
    }
}

/// Ok when every region was read; partial when some were not.
pub fn listing_verdict(regions: &[RegionPoints]) -> Verdict {
    verdict_of(regions.iter().map(|r| match r.error_class {
        Some(class) => (Outcome::Failed, Some(class)),
        None => (Outcome::Ok, None),
    }))
}
