//! Copying points between regions: stored bytes unchanged, hash checked against
//! the manifest, artefacts outside the bucket copied by the target's kind, the
//! manifest written last in the destination; then the source manifest records
//! the new copy.

use std::time::Instant;

use serde::Serialize;

use super::events::{Job, JobSpec};
use super::point::pipeline_error;
use super::report::{ItemReport, Operation, Outcome, RunReport};
use super::root::Engine;
use crate::archive::pipeline;
use crate::archive::{Manifest, PointId};
use crate::catalog::{self, RegionStore};
use crate::config::Target;
use crate::error::Error;
use crate::store::Keep;

/// What `copy` was asked for; absent fields mean "per target's config".
#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    /// One target; every target when absent.
    pub target: Option<String>,
    /// Only this point.
    pub point: Option<PointId>,
    /// Source region (default: each target's home region).
    pub from: Option<String>,
    /// Destination region (default: each target's other regions).
    pub to: Option<String>,
    /// Say what would be copied (both stores listed, the destination checked
    /// for writes) and copy nothing.
    pub dry_run: bool,
}

/// One target's points copied from one region to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyPair {
    pub target: String,
    pub from: String,
    pub to: String,
}

/// Which (target, from, to) a copy works on: from the target's home (or
/// `from`) to every other region of the target (or `to`).
pub fn copy_pairs(
    targets: &[&Target],
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<CopyPair>, Error> {
    let mut pairs = Vec::new();
    for t in targets {
        let source = from.unwrap_or(&t.home);
        let destinations: Vec<&str> = match to {
            Some(to) => vec![to],
            None => t.regions().filter(|r| *r != source).collect(),
        };
        for dest in destinations {
            if dest == source {
                return Err(Error::input(format!(
                    "--from and --to are both {dest}: copy between two different regions"
                )));
            }
            pairs.push(CopyPair {
                target: t.name.clone(),
                from: source.to_string(),
                to: dest.to_string(),
            });
        }
    }
    Ok(pairs)
}

impl Engine {
    /// Copies every point (or one) that a destination lacks.
    pub async fn copy(&self, req: &CopyRequest) -> Result<RunReport, Error> {
        for r in req.from.iter().chain(req.to.iter()) {
            self.region(r)?;
        }
        let targets: Vec<&Target> = match &req.target {
            Some(t) => vec![self.target(t)?],
            None => self.config().targets.values().collect(),
        };
        let pairs = copy_pairs(&targets, req.from.as_deref(), req.to.as_deref())?;
        let mut report = RunReport::default();
        for pair in pairs {
            let target = self.target(&pair.target)?;
            let stores = match (
                self.store(&pair.from).await,
                self.writable_store(&pair.to).await,
            ) {
                (Ok(f), Ok(t)) => (f, t),
                (Err(e), _) | (_, Err(e)) => {
                    report.push(
                        ItemReport::new(Operation::Copy, &target.name, &pair.to, None).failed(&e),
                    );
                    continue;
                }
            };
            report.extend(self.copy_missing(target, &stores.0, &stores.1, req).await);
        }
        Ok(report)
    }

    async fn copy_missing(
        &self,
        target: &Target,
        from: &RegionStore,
        to: &RegionStore,
        req: &CopyRequest,
    ) -> RunReport {
        let point = req.point.as_ref();
        let name = target.name.as_str();
        let mut report = RunReport::default();
        let listings = tokio::join!(
            catalog::list_points(from, Some(name)),
            catalog::list_points(to, Some(name))
        );
        let (have, want) = match listings {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) => {
                report.push(
                    ItemReport::new(Operation::Copy, name, &from.region, None).failed(&e.into()),
                );
                return report;
            }
            (_, Err(e)) => {
                report.push(
                    ItemReport::new(Operation::Copy, name, &to.region, None).failed(&e.into()),
                );
                return report;
            }
        };
        for p in have
            .points
            .iter()
            .filter(|p| point.is_none_or(|id| &p.id == id))
        {
            let started = Instant::now();
            let item = ItemReport::new(Operation::Copy, name, &to.region, Some(p.id.to_string()));
            if want.points.iter().any(|w| w.id == p.id) {
                report.push(item.with_outcome(Outcome::Skipped, "already present"));
                continue;
            }
            if self.cancel_token().is_cancelled() {
                report.push(item.failed(&Error::cancelled("not started: the run was cancelled")));
                continue;
            }
            if req.dry_run {
                let mut planned = item.with_outcome(
                    Outcome::Planned,
                    format!("would copy from {} to {}", from.region, to.store.describe()),
                );
                planned.bytes = Some(p.manifest.stored_size);
                report.push(planned);
                continue;
            }
            match self.copy_point(target, from, to, &p.manifest, None).await {
                Ok(m) => {
                    let mut done = item
                        .ok(format!("copied from {}", from.region))
                        .timed(started);
                    done.bytes = Some(m.stored_size);
                    report.push(done);
                }
                Err(e) => report.push(item.failed(&e).timed(started)),
            }
        }
        if report.is_empty() {
            let e = Error::input(match point {
                Some(id) => format!(
                    "region {} holds no point {id} of target {name}",
                    from.region
                ),
                None => format!("region {} holds no points of target {name}", from.region),
            });
            report.push(ItemReport::new(Operation::Copy, name, &from.region, None).failed(&e));
        }
        report
    }

    /// Copies one point from `from` to `to`; returns the source manifest with
    /// the new copy recorded. `parent` links the copy to the backup that made it.
    pub(crate) async fn copy_point(
        &self,
        target: &Target,
        from: &RegionStore,
        to: &RegionStore,
        manifest: &Manifest,
        parent: Option<&Job>,
    ) -> Result<Manifest, Error> {
        let spec = JobSpec::new(Operation::Copy)
            .target(&target.name)
            .region(&to.region)
            .point(manifest.point_id.clone())
            .total_bytes(Some(manifest.stored_size));
        let job = match parent {
            Some(p) => p.child(spec),
            None => self.job(spec),
        };
        let result = self.copy_into(target, from, to, manifest, &job).await;
        job.settle(result, |_| {
            format!(
                "copied {} from {} to {}",
                manifest.point_id, from.region, to.region
            )
        })
    }

    async fn copy_into(
        &self,
        target: &Target,
        from: &RegionStore,
        to: &RegionStore,
        manifest: &Manifest,
        job: &Job,
    ) -> Result<Manifest, Error> {
        let id: PointId = manifest.point_id.parse()?;
        let name = manifest.target.as_str();
        let encrypted = manifest.is_encrypted();
        let to_key = to.layout.data_key(name, &id, encrypted);
        let has_data = manifest.data_file.is_some();
        let kind = self.kind_named(&manifest.target_kind)?;
        if has_data {
            job.phase("copying data");
            pipeline::copy_object(
                (
                    from.store.as_ref(),
                    &from.layout.data_key(name, &id, encrypted),
                ),
                (to.store.as_ref(), &to_key),
                &self.write_options(false),
                &manifest.stored_sha256,
                job.on_bytes(),
                job.cancel_token(),
            )
            .await
            .map_err(pipeline_error)?;
        }
        let discard_data = || async {
            if has_data {
                let _ = to.store.delete(&to_key).await;
            }
        };
        let updated = match kind
            .copy_external(target, manifest, &from.region, &to.region, job)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                discard_data().await;
                return Err(e);
            }
        };
        let mut copy = updated.clone();
        copy.region = to.region.clone();
        copy.copied_from = Some(from.region.clone());
        copy.copied_to = Vec::new();
        let written = match job.check_cancelled() {
            Ok(()) => {
                job.phase("writing manifest");
                to.store
                    .put(
                        &to.layout.manifest_key(name, &id),
                        copy.seal().into(),
                        Keep::Retained,
                    )
                    .await
                    .map_err(Error::from)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            discard_data().await;
            if let Err(d) = kind.delete_external(Some(target), &copy, &to.region).await {
                tracing::warn!("could not remove the artefacts of the unfinished copy: {d}");
            }
            return Err(e);
        }
        self.check_retention_took(to, &to.layout.manifest_key(name, &id))
            .await?;
        let mut source = updated;
        if !source.copied_to.contains(&to.region) {
            source.copied_to.push(to.region.clone());
        }
        // The copy is complete either way; failing to note it in the source is a warning.
        if let Err(e) = from
            .store
            .put(
                &from.layout.manifest_key(name, &id),
                source.seal().into(),
                Keep::Retained,
            )
            .await
        {
            job.warn(format!(
                "copy of {id} to {} done, but the source manifest was not updated: {e}",
                to.region
            ));
        }
        Ok(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TargetSpec;
    use crate::source::etcd::{EtcdMode, EtcdTarget};

    fn target(name: &str, home: &str, copy_to: &[&str]) -> Target {
        Target {
            name: name.into(),
            home: home.into(),
            copy_to: copy_to.iter().map(|r| r.to_string()).collect(),
            labels: Default::default(),
            spec: TargetSpec::new(EtcdTarget {
                mode: EtcdMode::Snapshot,
                prefix: None,
                regions: Default::default(),
                continuous: None,
            }),
        }
    }

    fn pairs(targets: &[&Target], from: Option<&str>, to: Option<&str>) -> Vec<String> {
        copy_pairs(targets, from, to)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|p| format!("{}:{}->{}", p.target, p.from, p.to))
            .collect()
    }

    #[test]
    fn copy_pairs_follow_the_config_unless_told_otherwise() {
        let a = target("a", "east", &["west", "eu"]);
        let b = target("b", "west", &[]);
        let both = [&a, &b];
        // Default: home to every copy_to region; a target without any has nothing.
        assert_eq!(pairs(&both, None, None), ["a:east->west", "a:east->eu"]);
        // From a DR region: to home and the other DR regions.
        assert_eq!(
            pairs(&[&a], Some("west"), None),
            ["a:west->east", "a:west->eu"]
        );
        // To one region: from each target's home.
        assert_eq!(pairs(&[&a], None, Some("eu")), ["a:east->eu"]);
        assert_eq!(pairs(&[&a], Some("eu"), Some("west")), ["a:eu->west"]);
    }

    #[test]
    fn copying_a_region_onto_itself_is_bad_input() {
        let a = target("a", "east", &["west"]);
        let err = copy_pairs(&[&a], None, Some("east")).err();
        assert!(
            err.as_ref()
                .is_some_and(|e| e.to_string().contains("--from and --to are both east")),
            "{err:?}"
        );
        assert!(copy_pairs(&[&a], Some("west"), Some("west")).is_err());
    }
}
