//! Reachability: does every region's store answer, and every target's
//! endpoints in every region (for `drtool config check`, and a drill's
//! pre-flight for the ones it needs). Checks run concurrently; the result is
//! sorted by region.

use std::collections::BTreeSet;

use futures::future::join_all;

use super::kind::Reachability;
use super::root::Engine;
use crate::config::Target;

impl Engine {
    /// Every region's store and every target's endpoints.
    pub async fn reachability(&self) -> Vec<Reachability> {
        let stores: BTreeSet<String> = self.config().regions.keys().cloned().collect();
        let targets: Vec<&Target> = self.config().targets.values().collect();
        self.reach(&stores, &targets, |_| true).await
    }

    /// These regions' stores and these (target, region) endpoints: a drill's
    /// pre-flight. A target's other regions are left out.
    pub async fn reachability_of(
        &self,
        stores: &BTreeSet<String>,
        targets: &BTreeSet<(String, String)>,
    ) -> Vec<Reachability> {
        let names: BTreeSet<&str> = targets.iter().map(|(t, _)| t.as_str()).collect();
        let wanted: Vec<&Target> = names
            .into_iter()
            .filter_map(|n| self.config().target(n))
            .collect();
        self.reach(stores, &wanted, |r| {
            targets
                .iter()
                .any(|(t, region)| r.what == format!("target {t}") && &r.region == region)
        })
        .await
    }

    async fn reach(
        &self,
        stores: &BTreeSet<String>,
        targets: &[&Target],
        keep: impl Fn(&Reachability) -> bool,
    ) -> Vec<Reachability> {
        let stores = stores.iter().map(|region| async move {
            match self.store(region).await {
                Ok(rs) => {
                    let address = rs.store.describe();
                    let r = rs.store.probe().await;
                    Reachability {
                        misconfigured: matches!(
                            r,
                            Err(crate::store::StoreError::Misconfigured { .. }
                                | crate::store::StoreError::Credentials { .. })
                        ),
                        region: region.clone(),
                        what: "store".into(),
                        address,
                        reachable: r.is_ok(),
                        detail: r.err().map_or_else(|| "ok".into(), |e| e.to_string()),
                    }
                }
                Err(e) => Reachability {
                    misconfigured: false,
                    region: region.clone(),
                    what: "store".into(),
                    address: "-".into(),
                    reachable: false,
                    detail: e.to_string(),
                },
            }
        });
        let targets = targets.iter().map(|t| async move {
            match self.kind_of(t) {
                Ok(kind) => kind.reachability(t).await,
                Err(e) => vec![Reachability {
                    misconfigured: false,
                    region: t.home.clone(),
                    what: format!("target {}", t.name),
                    address: "-".into(),
                    reachable: false,
                    detail: e.to_string(),
                }],
            }
        });
        let (stores, targets) = tokio::join!(join_all(stores), join_all(targets));
        let mut out: Vec<Reachability> = stores
            .into_iter()
            .chain(targets.into_iter().flatten().filter(|r| keep(r)))
            .collect();
        out.sort_by(|a, b| (&a.region, &a.what).cmp(&(&b.region, &b.what)));
        out
    }
}
