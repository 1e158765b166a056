//! Restore tests for namespace points: the point is restored into a fresh
//! scratch namespace (`drtool-rt-<point>`) on the home region's cluster,
//! every resource is listed back and counted against the manifest, and the
//! namespace is deleted. A ResourceQuota is created first that allows no pods,
//! no PersistentVolumeClaims and no LoadBalancer or NodePort Services: the
//! application's workloads are created as objects but never start a second
//! copy of the application (no duplicate consumers, no duplicate CronJobs), and
//! nothing outside the cluster is provisioned (volumes, cloud load balancers).
//! Objects the quota refuses are counted as held back, not as missing.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::json;

use super::NamespaceTarget;
use super::drill::{delete_namespace_until_gone, k8s_name, resource};
use super::options::NamespaceRestoreOptions;
use super::{Cluster, Lister, collection_path, kube_err};
use crate::archive::Manifest;
use crate::config::Target;
use crate::engine::events::Job;
use crate::engine::kind::{Applied, ItemFailure, KindPlan, Scratch, ScratchGuard};
use crate::engine::options::{Existing, KindOptions, RestoreOptions};
use crate::error::Error;

/// Labels every scratch namespace carries (so a leftover one is easy to find).
pub const RESTORE_TEST_LABEL: &str = "drtool.io/restore-test";
const CRDS: &str = "customresourcedefinitions.apiextensions.k8s.io";
const QUOTA: &str = "drtool-restore-test-no-pods";

struct NamespaceScratch {
    cluster: Cluster,
    namespace: String,
    job: Job,
}

/// The scratch namespace's name for a point: at most 63 characters.
pub fn scratch_name(point: &str) -> String {
    let name = k8s_name(&format!("drtool-rt-{point}"));
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

pub async fn scratch(
    cluster: Cluster,
    (target, region): (&Target, &str),
    spec: &NamespaceTarget,
    manifest: &Manifest,
    job: &Job,
) -> Result<Option<Scratch>, Error> {
    let namespace = scratch_name(&manifest.point_id);
    // Decided before anything is made, so nothing is left if it fails.
    let own = KindOptions::of(
        "namespace",
        &NamespaceRestoreOptions {
            namespace_map: Some((spec.namespace.clone(), namespace.clone())),
            ..NamespaceRestoreOptions::default()
        },
    )?;
    let ns = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {RESTORE_TEST_LABEL: "true"}},
    });
    cluster
        .send_json(http::Method::POST, "/api/v1/namespaces", &ns)
        .await
        .map_err(|e| {
            kube_err(
                &cluster.name,
                &format!("create scratch namespace {namespace}"),
                e,
            )
        })?;
    let guard = NamespaceScratch {
        cluster: cluster.clone(),
        namespace: namespace.clone(),
        job: job.clone(),
    };
    let quota = json!({
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": QUOTA, "labels": {RESTORE_TEST_LABEL: "true"}},
        "spec": {"hard": {
            "pods": "0",
            "persistentvolumeclaims": "0",
            "services.loadbalancers": "0",
            "services.nodeports": "0",
        }},
    });
    if let Err(e) = cluster
        .send_json(
            http::Method::POST,
            &format!("/api/v1/namespaces/{namespace}/resourcequotas"),
            &quota,
        )
        .await
    {
        let e = Error::from(kube_err(
            &cluster.name,
            "create the no-pods ResourceQuota",
            e,
        ));
        let _ = Box::new(guard).remove().await;
        return Err(e);
    }
    Ok(Some(Scratch {
        target: target.clone(),
        region: region.to_string(),
        options: RestoreOptions {
            kind: own,
            // The scratch namespace exists already (with its quota).
            existing: Some(Existing::Skip),
            // A restore test reproduces the point exactly, canary markers too.
            with_canaries: true,
        },
        guard: Box::new(guard),
    }))
}

impl NamespaceScratch {
    async fn count(&self, name: &str) -> Result<u64, Error> {
        let ar = resource(&self.cluster, name, &self.job).await?;
        let path = collection_path(&ar, Some(&self.namespace));
        let mut pages = Lister::new(&self.cluster, path, None);
        let mut n = 0u64;
        while let Some(items) = pages.next(Some(&self.job)).await? {
            n += items
                .iter()
                .filter(|o| o["metadata"]["name"].as_str() != Some(QUOTA))
                .count() as u64;
        }
        Ok(n)
    }
}

/// Splits a restore's failures into objects the scratch quota refused (by
/// resource) and real failures.
pub fn held_back(failures: &[ItemFailure]) -> (BTreeMap<String, u64>, Vec<&ItemFailure>) {
    let mut held = BTreeMap::new();
    let mut real = Vec::new();
    for f in failures {
        if f.error.contains("exceeded quota") && f.error.contains(QUOTA) {
            let resource = f.item.split('/').next().unwrap_or_default().to_string();
            *held.entry(resource).or_default() += 1;
        } else {
            real.push(f);
        }
    }
    (held, real)
}

#[async_trait]
impl ScratchGuard for NamespaceScratch {
    async fn check(
        &self,
        manifest: &Manifest,
        _plan: &KindPlan,
        applied: &Applied,
    ) -> Result<String, Error> {
        let (held, real) = held_back(&applied.failures);
        if let Some(first) = real.first() {
            return Err(Error::failed(format!(
                "{} objects could not be restored into scratch namespace {} (first: {}: {})",
                real.len(),
                self.namespace,
                first.item,
                first.error
            )));
        }
        let mut short: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut objects = 0u64;
        let mut kinds = 0u64;
        for (name, &expected) in &manifest.items {
            // The namespace and CRDs are not namespaced copies to count.
            if name == "namespaces" || name == CRDS || expected == 0 {
                continue;
            }
            let expected = expected - held.get(name).copied().unwrap_or(0).min(expected);
            let found = self.count(name).await?;
            // Controllers of a real cluster add objects (the default
            // ServiceAccount, kube-root-ca.crt): more is fine, fewer is not.
            if found < expected {
                short.insert(name.clone(), (expected, found));
            }
            objects += expected;
            kinds += 1;
        }
        if !short.is_empty() {
            let what: Vec<String> = short
                .iter()
                .map(|(r, (e, f))| format!("{r}: {f} of {e}"))
                .collect();
            return Err(Error::integrity(format!(
                "scratch namespace {} holds fewer objects than the manifest counts ({})",
                self.namespace,
                what.join(", ")
            )));
        }
        let held_total: u64 = held.values().sum();
        let held_note = if held_total == 0 {
            String::new()
        } else {
            let what: Vec<String> = held.iter().map(|(r, n)| format!("{n} {r}")).collect();
            format!(
                "; {held_total} held back by the scratch quota so nothing is provisioned ({})",
                what.join(", ")
            )
        };
        Ok(format!(
            "{objects} objects of {kinds} resources restored into scratch namespace {} and listed back, as the manifest counts{held_note}",
            self.namespace
        ))
    }

    async fn remove(self: Box<Self>) -> Result<(), Error> {
        let job = Job::unobserved(crate::engine::Operation::RestoreTest);
        delete_namespace_until_gone(&self.cluster, &self.namespace, &job)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_the_quota_refuses_are_held_back_not_failed() {
        let f = |item: &str, error: &str| ItemFailure {
            item: item.into(),
            error: error.into(),
        };
        let failures = [
            f(
                "services/web",
                "403 Forbidden: services \"web\" is forbidden: exceeded quota: drtool-restore-test-no-pods, requested: services.loadbalancers=1",
            ),
            f(
                "persistentvolumeclaims/data",
                "403 Forbidden: exceeded quota: drtool-restore-test-no-pods, requested: persistentvolumeclaims=1",
            ),
            f("configmaps/big", "422 Unprocessable Entity: too long"),
            f("secrets/x", "403 Forbidden: exceeded quota: team-quota"),
        ];
        let (held, real) = held_back(&failures);
        assert_eq!(
            held,
            BTreeMap::from([
                ("persistentvolumeclaims".to_string(), 1),
                ("services".to_string(), 1)
            ])
        );
        let real: Vec<&str> = real.iter().map(|f| f.item.as_str()).collect();
        assert_eq!(
            real,
            ["configmaps/big", "secrets/x"],
            "another quota's refusal is a failure"
        );
    }

    #[test]
    fn scratch_names_are_valid_namespace_names() {
        let n = scratch_name("20261201T193000Z-3f9a");
        assert_eq!(n, "drtool-rt-20261201t193000z-3f9a");
        let long = scratch_name(&"x".repeat(80));
        assert!(long.len() <= 63 && !long.ends_with('-'));
    }
}
