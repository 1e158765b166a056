//! The namespace kind as the engine sees it: backups of one namespace through a
//! kubeconfig context, restore plans (the per-object comparison is the facts;
//! [`decide_namespace`] turns them into a plan) and their execution.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::options::{FLAGS, NamespaceRestoreOptions};
use super::restore::{
    ResourcePlan, RestoreScope, TERMINATING_WAIT, apply, missing_permissions, plan, wait_terminated,
};
use super::{Cluster, NamespaceError, backup, connect, drill};
use super::{NamespaceRegion, NamespaceTarget};
use crate::archive::{Consistency, Manifest, PayloadKind, PointId};
use crate::config::Target;
use crate::engine::Operation;
use crate::engine::events::Job;
use crate::engine::faults::{CanaryMark, KindFault, KindProbe};
use crate::engine::kind::{
    Applied, BackupShape, Clients, Consistent, DataSender, Discovery, Drills, ItemFailure,
    KindPlan, Payload, PlanRequest, Reachability, Scratch, ScratchRestores, Taken, TargetKind,
    no_region_table, not_for_kind,
};
use crate::engine::options::{FlagSpec, FlagValues, KindOptions};
use crate::engine::point::PointData;
use crate::error::Error;

/// Connected clusters, by kubeconfig and context.
#[derive(Default)]
pub struct NamespaceKind {
    clusters: Clients<NamespaceRegion, Cluster>,
    /// Resources drills name, resolved once per cluster.
    resources: Clients<(NamespaceRegion, String), kube::discovery::ApiResource>,
}

/// A namespace restore, decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NamespacePlan {
    /// Recreate a namespace's objects in the region's cluster.
    Namespace {
        /// The kubeconfig and context to reach the cluster.
        cluster: NamespaceRegion,
        /// `context (server)`, for people.
        cluster_name: String,
        scope: RestoreScope,
        /// Per resource: create / update / unchanged / skip / conflict.
        resources: BTreeMap<String, ResourcePlan>,
    },
}

/// The namespace to restore into: the target's own, or the mapped one.
pub fn map_namespace(
    target: &str,
    source: &str,
    mapping: Option<&(String, String)>,
) -> Result<String, Error> {
    match mapping {
        None => Ok(source.to_string()),
        Some((from, to)) if from == source => Ok(to.clone()),
        Some((from, _)) => Err(NamespaceError::NotItsNamespace {
            target: target.to_string(),
            backs_up: source.to_string(),
            from: from.clone(),
        }
        .into()),
    }
}

/// Decides a namespace restore from the per-resource comparison with the cluster.
pub fn decide_namespace(
    cluster: NamespaceRegion,
    cluster_name: String,
    scope: RestoreScope,
    resources: BTreeMap<String, ResourcePlan>,
) -> Result<(NamespacePlan, bool), Error> {
    let conflicts: u64 = resources.values().map(|k| k.conflict).sum();
    if conflicts > 0 {
        return Err(Error::exists(format!(
            "{conflicts} objects already exist in namespace {} and differ from the point (--existing fail): \
             use --existing skip or --existing update, or --namespace-map to restore next to them",
            scope.namespace
        )));
    }
    let destructive = resources.values().any(|k| k.update > 0);
    Ok((
        NamespacePlan::Namespace {
            cluster,
            cluster_name,
            scope,
            resources,
        },
        destructive,
    ))
}

fn lines(plan: &NamespacePlan) -> Vec<String> {
    let NamespacePlan::Namespace {
        cluster_name,
        scope,
        resources,
        ..
    } = plan;
    let mut lines = vec![format!(
        "into       {cluster_name}, namespace {}",
        scope.namespace
    )];
    if scope.source_namespace != scope.namespace {
        lines.push(format!(
            "mapping    namespace {} -> {}",
            scope.source_namespace, scope.namespace
        ));
    }
    lines.push(format!(
        "{:<48} {:>7} {:>7} {:>9} {:>7} {:>8}",
        "resource", "create", "UPDATE", "unchanged", "skip", "CONFLICT"
    ));
    for (resource, k) in resources {
        lines.push(format!(
            "{resource:<48} {:>7} {:>7} {:>9} {:>7} {:>8}",
            k.create, k.update, k.unchanged, k.skip, k.conflict
        ));
    }
    for (resource, k) in resources {
        for d in &k.differing {
            lines.push(format!(
                "{:<10} {resource} {} (live --- / point +++):",
                d.decision.to_uppercase(),
                d.name
            ));
            lines.extend(
                d.fields
                    .lines()
                    .filter(|l| !l.starts_with("--- ") && !l.starts_with("+++ "))
                    .map(|l| format!("           {l}")),
            );
        }
        let shown = k.differing.len() as u64;
        let differing = k.update + k.skip + k.conflict;
        if differing > shown && shown > 0 {
            lines.push(format!(
                "           ... and {} more {resource} that differ",
                differing - shown
            ));
        }
    }
    lines
}

pub(super) fn spec(target: &Target) -> Result<&NamespaceTarget, Error> {
    crate::engine::kind::section(target, "namespace")
}

impl NamespaceKind {
    /// The cluster and namespace of a target in a region.
    async fn at(&self, target: &Target, region: &str) -> Result<(Cluster, String), Error> {
        let spec = spec(target)?;
        let r = spec
            .regions
            .get(region)
            .ok_or_else(|| no_region_table(target, region))?;
        Ok((self.cluster(r).await?, spec.namespace.clone()))
    }

    pub(super) async fn cluster(&self, region: &NamespaceRegion) -> Result<Cluster, Error> {
        self.clusters
            .get(region, || async {
                connect(region).await.map_err(Error::from)
            })
            .await
    }
}

/// When a namespace point is consistent: Kubernetes has no snapshot across
/// kinds, each list is consistent at its own resourceVersion. Named `kube`
/// in manifests since format 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum NamespaceConsistency {
    Kube {
        at: DateTime<Utc>,
        /// Resource -> resourceVersion of its list.
        lists: BTreeMap<String, String>,
        /// Resource -> why its list spans more than one resourceVersion (its
        /// continue token expired while paging). Absent when none did.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        resumed: BTreeMap<String, String>,
    },
}

/// JSON Lines, one Kubernetes object per line, in restore order. Named
/// `kube-namespace` in manifests since format version 1.
pub const PAYLOAD: PayloadKind = PayloadKind::named("kube-namespace");

static PAYLOADS: [Payload; 1] = [Payload {
    kind: PAYLOAD,
    describe: "Kubernetes namespace (JSON Lines)",
    trailing_sha256: false,
}];

#[async_trait]
impl TargetKind for NamespaceKind {
    fn section(&self) -> crate::config::Section {
        ("namespace", super::config::parse_all)
    }

    fn name(&self) -> &'static str {
        "namespace"
    }

    fn payloads(&self) -> &'static [Payload] {
        &PAYLOADS
    }

    fn consistent(&self, c: &Consistency) -> Option<Consistent> {
        let NamespaceConsistency::Kube { at, lists, resumed } = c.read().ok()?;
        let mut text = format!(
            "{} lists read from {} (each at its own resourceVersion)",
            lists.len(),
            at.to_rfc3339()
        );
        if !resumed.is_empty() {
            let names: Vec<&str> = resumed.keys().map(String::as_str).collect();
            text.push_str(&format!(
                "; not one snapshot, their continue token expired: {}",
                names.join(", ")
            ));
        }
        Some(Consistent { at, text })
    }

    fn backup_shape(&self, target: &Target) -> Result<BackupShape, Error> {
        spec(target)?;
        Ok(BackupShape {
            payload: PAYLOAD,
            has_data: true,
        })
    }

    async fn backup(
        &self,
        target: &Target,
        _point: &PointId,
        data: Option<DataSender>,
        job: &Job,
    ) -> Result<Taken, Error> {
        let spec = spec(target)?;
        let tx = data.ok_or_else(|| Error::failed("a namespace backup needs a data stream"))?;
        let region = spec.regions.get(&target.home).ok_or_else(|| {
            Error::input(format!(
                "target {}: no kubeconfig for region {}",
                target.name, target.home
            ))
        })?;
        job.phase("connecting to Kubernetes");
        let cluster = self.cluster(region).await?;
        job.phase("streaming");
        let meta = backup(&cluster, spec, tx, job).await?;
        Ok(Taken {
            consistency: Consistency::of(&NamespaceConsistency::Kube {
                at: meta.at,
                lists: meta.list_versions,
                resumed: meta.resumed,
            })
            .map_err(|e| Error::failed(format!("cannot record the lists' versions: {e}")))?,
            items: meta.items,
            external: None,
        })
    }

    fn restore_flags(&self) -> &'static [FlagSpec] {
        FLAGS
    }

    fn restore_options(&self, flags: &FlagValues) -> Result<KindOptions, Error> {
        NamespaceRestoreOptions::parse(flags)
    }

    async fn plan_restore(&self, req: PlanRequest<'_>) -> Result<KindPlan, Error> {
        let spec = spec(req.target)?;
        let region = spec
            .regions
            .get(req.region)
            .ok_or_else(|| no_region_table(req.target, req.region))?;
        let Some((_, data)) = &req.point else {
            return Err(Error::failed("a namespace restore needs a recovery point"));
        };
        let own: NamespaceRestoreOptions = req.options.own()?;
        let scope = RestoreScope {
            source_namespace: spec.namespace.clone(),
            namespace: map_namespace(
                &req.target.name,
                &spec.namespace,
                own.namespace_map.as_ref(),
            )?,
            include: own.include,
            exclude: own.exclude,
            existing: req.options.existing(),
            with_canaries: req.options.with_canaries,
        };
        let cluster = self.cluster(region).await?;
        if let Some(why) =
            wait_terminated(&cluster, &scope.namespace, TERMINATING_WAIT, req.job).await?
        {
            req.job.check_cancelled()?;
            return Err(NamespaceError::StuckTerminating {
                why,
                namespace: scope.namespace.clone(),
                waited_secs: TERMINATING_WAIT.as_secs(),
            }
            .into());
        }
        req.job
            .phase("verifying the point and comparing with the cluster");
        let mut stream = data.stream().await?;
        let rx = stream.take();
        let compared = plan(&cluster, rx, &scope, req.job).await;
        let resources = stream.finish(compared).await?;
        if let Some(missing) = missing_permissions(&cluster, &scope, &resources).await? {
            return Err(NamespaceError::MayNot {
                cluster: cluster.name.clone(),
                missing,
            }
            .into());
        }
        let (plan, destructive) =
            decide_namespace(region.clone(), cluster.name.clone(), scope, resources)?;
        KindPlan::new(&plan, lines(&plan), destructive, true)
    }

    async fn apply(
        &self,
        plan: &KindPlan,
        point: Option<PointData>,
        job: &Job,
    ) -> Result<Applied, Error> {
        let data = point.ok_or_else(|| Error::failed("a namespace restore needs its point"))?;
        let NamespacePlan::Namespace { cluster, scope, .. } = plan.action::<NamespacePlan>()?;
        let cluster = self.cluster(&cluster).await?;
        job.phase("restoring objects");
        let mut stream = data.stream().await?;
        let rx = stream.take();
        let applied = apply(&cluster, rx, &scope, job).await;
        let out = stream.finish(applied).await?;
        let mut message = format!(
            "namespace {}: {} created, {} updated, {} unchanged, {} skipped, {} failed",
            scope.namespace,
            out.created,
            out.updated,
            out.unchanged,
            out.skipped,
            out.failed.len()
        );
        if !out.node_ports_moved.is_empty() {
            let moved: Vec<String> = out
                .node_ports_moved
                .iter()
                .map(|m| match m.to {
                    Some(to) => format!("{} {}->{to}", m.service, m.from),
                    None => format!("{} {}->none", m.service, m.from),
                })
                .collect();
            message.push_str(&format!(
                "; node ports held by other Services, the server gave others: {}",
                moved.join(", ")
            ));
        }
        Ok(Applied {
            message,
            counts: BTreeMap::from([
                ("created".to_string(), out.created),
                ("updated".to_string(), out.updated),
                ("unchanged".to_string(), out.unchanged),
                ("skipped".to_string(), out.skipped),
                ("failed".to_string(), out.failed.len() as u64),
                (
                    "node_ports_moved".to_string(),
                    out.node_ports_moved.len() as u64,
                ),
            ]),
            failures: out
                .failed
                .iter()
                .map(|f| ItemFailure {
                    item: f.item(),
                    error: f.error.clone(),
                })
                .collect(),
        })
    }

    async fn holds_secrets(&self, target: &Target) -> Option<String> {
        let spec = spec(target).ok()?;
        super::selected("secrets", "secrets", &spec.include, &spec.exclude).then(|| {
            format!(
                "the Secrets of namespace {} are backed up (exclude = [\"secrets\"] leaves them out)",
                spec.namespace
            )
        })
    }

    async fn reachability(&self, target: &Target) -> Vec<Reachability> {
        let Ok(spec) = spec(target) else {
            return Vec::new();
        };
        let checks = spec.regions.iter().map(|(region, r)| async move {
            let result = self.cluster(r).await;
            Reachability {
                misconfigured: false,
                region: region.clone(),
                what: format!("target {}", target.name),
                address: format!(
                    "{} context {}",
                    r.kubeconfig.display(),
                    r.context.as_deref().unwrap_or("(current)")
                ),
                reachable: result.is_ok(),
                detail: result.err().map_or_else(|| "ok".into(), |e| e.to_string()),
            }
        });
        futures::future::join_all(checks).await
    }

    fn contents(&self) -> Option<&dyn crate::engine::kind::Contents> {
        Some(self)
    }

    fn drills(&self) -> Option<&dyn Drills> {
        Some(self)
    }

    fn scratch_restores(&self) -> Option<&dyn ScratchRestores> {
        Some(self)
    }

    fn discovery(&self) -> Option<&dyn Discovery> {
        Some(self)
    }
}

#[async_trait]
impl Drills for NamespaceKind {
    fn canary_name(&self) -> Option<&'static str> {
        Some("configmap")
    }

    async fn fault(
        &self,
        target: &Target,
        region: &str,
        fault: &KindFault,
        job: &Job,
    ) -> Result<String, Error> {
        let spec = spec(target)?;
        let r = spec
            .regions
            .get(region)
            .ok_or_else(|| no_region_table(target, region))?;
        let cluster = self.cluster(r).await?;
        match fault.name() {
            drill::DELETE_NAMESPACE => drill::delete_namespace(&cluster, &spec.namespace).await,
            drill::DELETE_OBJECTS => {
                let drill::DeleteObjectsFault { resource, selector } = fault.get()?;
                let ar = drill::resource(&cluster, &resource, job).await?;
                let n = drill::delete_objects(&cluster, &ar, &spec.namespace, &selector).await?;
                Ok(format!(
                    "deleted {n} {resource} matching {selector} in namespace {}",
                    spec.namespace
                ))
            }
            other => Err(not_for_kind("namespace", &target.name, other)),
        }
    }

    fn fault_names(&self) -> &'static [&'static str] {
        drill::FAULTS
    }

    fn read_fault(
        &self,
        name: &str,
        at: (&str, &str),
        fields: serde_json::Value,
    ) -> Result<(KindFault, String), Error> {
        drill::read_fault(name, at, fields)
    }

    fn probe_names(&self) -> &'static [&'static str] {
        &[super::drill::OBJECT_PROBE]
    }

    fn read_probe(
        &self,
        _name: &str,
        fields: serde_json::Value,
    ) -> Result<(KindProbe, String), Error> {
        KindProbe::read(
            super::drill::OBJECT_PROBE,
            fields,
            |p: &super::drill::ObjectProbe| {
                format!(
                    "{} {}{}",
                    p.resource,
                    p.object,
                    if p.ready { " ready" } else { "" }
                )
            },
        )
    }

    async fn probe(
        &self,
        target: &Target,
        region: &str,
        probe: &KindProbe,
    ) -> Result<String, Error> {
        let super::drill::ObjectProbe {
            resource,
            object: name,
            namespace,
            ready,
        } = probe.get()?;
        let spec = spec(target)?;
        let r = spec
            .regions
            .get(region)
            .ok_or_else(|| no_region_table(target, region))?;
        let cluster = self.cluster(r).await?;
        let ns = namespace.as_deref().unwrap_or(&spec.namespace);
        let ar = self
            .resources
            .get(&(r.clone(), resource.clone()), || async {
                drill::resource(&cluster, &resource, &Job::unobserved(Operation::Reach)).await
            })
            .await?;
        drill::probe_object(&cluster, &ar, ns, &name, ready).await
    }

    async fn canary_write(
        &self,
        target: &Target,
        region: &str,
        run: &str,
        mark: CanaryMark,
    ) -> Result<(), Error> {
        let (cluster, ns) = self.at(target, region).await?;
        drill::canary_write(&cluster, &ns, run, mark).await
    }

    async fn canary_read(
        &self,
        target: &Target,
        region: &str,
        run: &str,
    ) -> Result<Vec<CanaryMark>, Error> {
        let (cluster, ns) = self.at(target, region).await?;
        drill::canary_read(&cluster, &ns, run).await
    }

    async fn canary_clear(&self, target: &Target, region: &str, run: &str) -> Result<u64, Error> {
        let (cluster, ns) = self.at(target, region).await?;
        drill::canary_clear(&cluster, &ns, run).await
    }

    async fn undo(&self, plan: &KindPlan, job: &Job) -> Result<String, Error> {
        let NamespacePlan::Namespace {
            cluster,
            scope,
            resources,
            ..
        } = plan.action::<NamespacePlan>()?;
        let created_namespace = resources.get("namespaces").is_some_and(|r| r.create > 0);
        if !created_namespace {
            return Ok(format!(
                "namespace {} existed before the restore: its objects were left as restored",
                scope.namespace
            ));
        }
        let cluster = self.cluster(&cluster).await?;
        drill::delete_namespace_until_gone(&cluster, &scope.namespace, job).await
    }
}

#[async_trait]
impl ScratchRestores for NamespaceKind {
    async fn scratch(
        &self,
        target: &Target,
        region: &str,
        manifest: &Manifest,
        job: &Job,
    ) -> Result<Option<Scratch>, Error> {
        let spec = spec(target)?;
        // The tested copy's region's cluster, where the target has one.
        let region = if spec.regions.contains_key(region) {
            region
        } else {
            target.home.as_str()
        };
        let cluster_cfg = spec
            .regions
            .get(region)
            .ok_or_else(|| no_region_table(target, region))?;
        let cluster = self.cluster(cluster_cfg).await?;
        super::scratch::scratch(cluster, (target, region), spec, manifest, job).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::options::Existing;

    fn scope(existing: Existing) -> RestoreScope {
        RestoreScope {
            source_namespace: "shop".into(),
            namespace: "shop".into(),
            include: vec![],
            exclude: vec![],
            existing,
            with_canaries: false,
        }
    }

    fn region() -> NamespaceRegion {
        NamespaceRegion {
            kubeconfig: "/k".into(),
            context: None,
        }
    }

    fn resources(create: u64, update: u64, conflict: u64) -> BTreeMap<String, ResourcePlan> {
        BTreeMap::from([(
            "configmaps".to_string(),
            ResourcePlan {
                create,
                update,
                unchanged: 1,
                skip: 0,
                conflict,
                differing: Vec::new(),
            },
        )])
    }

    #[test]
    fn namespace_decisions() {
        // (create, update, conflict) -> Ok(destructive) or Err(part)
        type Case<'a> = ((u64, u64, u64), Result<bool, &'a str>);
        let cases: &[Case] = &[
            ((5, 0, 0), Ok(false)),
            ((5, 2, 0), Ok(true)),
            ((0, 0, 3), Err("3 objects already exist in namespace shop")),
        ];
        for ((c, u, x), want) in cases {
            let got = decide_namespace(
                region(),
                "ctx".into(),
                scope(Existing::Fail),
                resources(*c, *u, *x),
            );
            match (got, want) {
                (Ok((_, d)), Ok(w)) => assert_eq!(d, *w),
                (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{e}"),
                (got, want) => panic!("{c} {u} {x}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn namespace_mapping() {
        let map = ("shop".to_string(), "shop-dr".to_string());
        assert_eq!(
            map_namespace("t", "shop", None).ok().as_deref(),
            Some("shop")
        );
        assert_eq!(
            map_namespace("t", "shop", Some(&map)).ok().as_deref(),
            Some("shop-dr")
        );
        let wrong = ("other".to_string(), "x".to_string());
        let err = map_namespace("t", "shop", Some(&wrong)).err();
        assert_eq!(
            err.as_ref().and_then(Error::kind_error::<NamespaceError>),
            Some(&NamespaceError::NotItsNamespace {
                target: "t".into(),
                backs_up: "shop".into(),
                from: "other".into(),
            })
        );
    }

    #[test]
    fn plan_lines_show_the_mapping_and_the_table() -> Result<(), Error> {
        let mut mapped = scope(Existing::Overwrite);
        mapped.namespace = "shop-dr".into();
        let (plan, _) = decide_namespace(
            region(),
            "ctx (https://k)".into(),
            mapped,
            resources(1, 2, 0),
        )?;
        let text = lines(&plan).join("\n");
        assert!(
            text.contains("mapping    namespace shop -> shop-dr"),
            "{text}"
        );
        assert!(text.contains("UPDATE"), "{text}");
        Ok(())
    }
}
