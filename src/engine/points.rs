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
    pub restore_tests: std::collections::BTreeMap<String, crate::catalog::RestoreTest>,
    /// Manifests that could not be trusted (edited, damaged, misplaced).
    pub problems: Vec<Problem>,
    /// Point folders without a manifest: interrupted backups or copies.
    pub orphans: Vec<Problem>,
    /// What belongs to no point (those folders' objects, open uploads,
    /// temporary files), with their age: `drtool gc` removes them.
    pub leftovers: Vec<Leftover>,
}

impl Engine {
    pub async fn points(&self, scope: &Scope) -> Result<Vec<RegionPoints>, Error> {
        self.check_scope(scope)?;
        let mut out = Vec::new();
        for region in self.scoped_regions(scope) {
            let rs = match self.store(&region).await {
                Ok(rs) => rs,
                Err(e) => {
                    out.push(RegionPoints {
                        region: region.clone(),
                        store: "-".into(),
                        error_class: Some(e.class()),
                        error: Some(e.to_string()),
                        points: Vec::new(),
                        restore_tests: Default::default(),
                        problems: Vec::new(),
                        orphans: Vec::new(),
                        leftovers: Vec::new(),
                    });
                    continue;
                }
            };
            let mut listed = RegionPoints {
                region: region.clone(),
                store: rs.store.describe(),
                error: None,
                error_class: None,
                points: Vec::new(),
                restore_tests: Default::default(),
                problems: Vec::new(),
                orphans: Vec::new(),
                leftovers: Vec::new(),
            };
            let target = scope.target.as_deref();
            let found = futures::future::try_join(
                catalog::list_points(&rs, target),
                catalog::unfinished(&rs, target),
            )
            .await;
            match found {
                Ok((l, unfinished)) => {
                    listed.restore_tests = l
                        .points
                        .iter()
                        .filter_map(|p| Some((p.id.to_string(), p.restore_test.clone()?)))
                        .collect();
                    listed.points = l.points.into_iter().map(|p| p.manifest).collect();
                    listed.problems = l.problems;
                    listed.orphans = l.orphans;
                    listed.leftovers = l.leftovers;
                    listed.leftovers.extend(unfinished);
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

/// Ok when every region was read; partial when some were not.
pub fn listing_verdict(regions: &[RegionPoints]) -> Verdict {
    verdict_of(regions.iter().map(|r| match r.error_class {
        Some(class) => (Outcome::Failed, Some(class)),
        None => (Outcome::Ok, None),
    }))
}
