//! Restore tests for namespace points: the point is restored into a fresh
//! scratch namespace (`drtool-rt-<point>`) on the home region's cluster,
//! every resource is listed back and counted against the manifest, and the
//! namespace is deleted. A ResourceQuota of zero pods is created first, so the
//! application's workloads are created as objects but never start a second
//! copy of the application (no duplicate consumers, no duplicate CronJobs).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::json;

use super::drill::{delete_namespace, k8s_name, resource};
use super::{Cluster, collection_path, kube_err, list_page};
use crate::archive::Manifest;
use crate::config::{NamespaceTarget, Target};
use crate::engine::events::Job;
use crate::engine::kind::{Applied, KindPlan, Scratch, ScratchGuard};
use crate::engine::options::{Existing, RestoreOptions};
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
    target: &Target,
    spec: &NamespaceTarget,
    manifest: &Manifest,
    job: &Job,
) -> Result<Option<Scratch>, Error> {
    let namespace = scratch_name(&manifest.point_id);
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
        "spec": {"hard": {"pods": "0"}},
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
        region: target.home.clone(),
        options: RestoreOptions {
            namespace_map: Some((spec.namespace.clone(), namespace)),
            // The scratch namespace exists already (with its quota).
            existing: Some(Existing::Skip),
            ..RestoreOptions::default()
        },
        guard: Box::new(guard),
    }))
}

impl NamespaceScratch {
    async fn count(&self, name: &str) -> Result<u64, Error> {
        let ar = resource(&self.cluster, name, &self.job).await?;
        let path = collection_path(&ar, Some(&self.namespace));
        let mut token: Option<String> = None;
        let mut n = 0u64;
        loop {
            let page = list_page(&self.cluster, &path, None, token.as_deref()).await?;
            n += page
                .items
                .iter()
                .filter(|o| o["metadata"]["name"].as_str() != Some(QUOTA))
                .count() as u64;
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(n),
            }
        }
    }
}

#[async_trait]
impl ScratchGuard for NamespaceScratch {
    async fn check(
        &self,
        manifest: &Manifest,
        _plan: &KindPlan,
        applied: &Applied,
    ) -> Result<String, Error> {
        let failed = applied.counts.get("failed").copied().unwrap_or(0);
        if failed > 0 {
            let first = applied
                .failures
                .first()
                .map(|f| format!("{}: {}", f.item, f.error));
            return Err(Error::failed(format!(
                "{failed} objects could not be restored into scratch namespace {} (first: {})",
                self.namespace,
                first.unwrap_or_default()
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
        Ok(format!(
            "{objects} objects of {kinds} resources restored into scratch namespace {} and listed back, as the manifest counts",
            self.namespace
        ))
    }

    async fn remove(self: Box<Self>) -> Result<(), Error> {
        delete_namespace(&self.cluster, &self.namespace)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_are_valid_namespace_names() {
        let n = scratch_name("20261201T193000Z-3f9a");
        assert_eq!(n, "drtool-rt-20261201t193000z-3f9a");
        let long = scratch_name(&"x".repeat(80));
        assert!(long.len() <= 63 && !long.ends_with('-'));
    }
}
