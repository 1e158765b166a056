//! Reachability of every region's store and every target's endpoints, for
//! `drtool config check`.

use serde::Serialize;

use crate::config::{Config, TargetSpec};
use crate::source::etcd;
use crate::source::rds::Rds;
use crate::store::RegionStore;

#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    pub region: String,
    /// "store" or "target NAME".
    pub what: String,
    pub address: String,
    pub reachable: bool,
    pub detail: String,
}

/// Probes all regions' stores and all targets' clusters concurrently.
pub async fn probe_all(cfg: &Config) -> Vec<ProbeResult> {
    let mut checks = Vec::new();
    for region in cfg.regions.values() {
        checks.push(tokio::spawn({
            let region = region.clone();
            async move {
                let rs = RegionStore::open(&region).await;
                let address = rs.store.describe();
                let r = rs.store.probe().await;
                ProbeResult {
                    region: region.name.clone(),
                    what: "store".into(),
                    address,
                    reachable: r.is_ok(),
                    detail: r.err().map_or_else(|| "ok".into(), |e| e.to_string()),
                }
            }
        }));
    }
    for target in cfg.targets.values() {
        match &target.spec {
            TargetSpec::Etcd(spec) => {
                for (region, ep) in &spec.regions {
                    let (region, ep, name) = (region.clone(), ep.clone(), target.name.clone());
                    checks.push(tokio::spawn(async move {
                        let r = etcd::connect(&ep).await;
                        ProbeResult {
                            region,
                            what: format!("target {name}"),
                            address: ep.endpoints.join(","),
                            reachable: r.is_ok(),
                            detail: r.err().map_or_else(|| "ok".into(), |e| e.to_string()),
                        }
                    }));
                }
            }
            TargetSpec::Namespace(spec) => {
                for (region, kr) in &spec.regions {
                    let (region, kr, name) = (region.clone(), kr.clone(), target.name.clone());
                    checks.push(tokio::spawn(async move {
                        let r = crate::source::kube::connect(&kr).await;
                        ProbeResult {
                            region,
                            what: format!("target {name}"),
                            address: format!(
                                "{} context {}",
                                kr.kubeconfig.display(),
                                kr.context.as_deref().unwrap_or("(current)")
                            ),
                            reachable: r.is_ok(),
                            detail: r.err().map_or_else(|| "ok".into(), |e| e.to_string()),
                        }
                    }));
                }
            }
            TargetSpec::Rds(spec) => {
                for region in target.regions() {
                    let cfg = spec.regions.get(region).cloned();
                    let (region, name, instance) = (
                        region.to_string(),
                        target.name.clone(),
                        spec.instance.clone(),
                    );
                    let home = region == target.home;
                    checks.push(tokio::spawn(async move {
                        let api = Rds::new(&region, cfg.as_ref()).await;
                        // The home region must have the instance; elsewhere the API must answer.
                        let r = api.instance_exists(&instance).await;
                        let (reachable, detail) = match r {
                            Ok(true) => (true, "ok".to_string()),
                            Ok(false) if !home => (true, "ok".to_string()),
                            Ok(false) => (false, format!("instance {instance} not found")),
                            Err(e) => (false, e.to_string()),
                        };
                        ProbeResult {
                            region,
                            what: format!("target {name}"),
                            address: cfg
                                .and_then(|c| c.endpoint)
                                .unwrap_or_else(|| "RDS API".to_string()),
                            reachable,
                            detail,
                        }
                    }));
                }
            }
        }
    }
    let mut out = Vec::new();
    for c in checks {
        if let Ok(r) = c.await {
            out.push(r);
        }
    }
    out.sort_by(|a, b| (&a.region, &a.what).cmp(&(&b.region, &b.what)));
    out
}
