//! Reachability: does every region's store answer, and every target's
//! endpoints in every region (for `drtool config check`). Checks run
//! concurrently; the result is sorted by region.

use futures::future::join_all;

use super::kind::Reachability;
use super::root::Engine;

impl Engine {
    pub async fn reachability(&self) -> Vec<Reachability> {
        let stores = self.config().regions.keys().map(|region| async move {
            match self.store(region).await {
                Ok(rs) => {
                    let address = rs.store.describe();
                    let r = rs.store.probe().await;
                    vec![Reachability {
                        region: region.clone(),
                        what: "store".into(),
                        address,
                        reachable: r.is_ok(),
                        detail: r.err().map_or_else(|| "ok".into(), |e| e.to_string()),
                    }]
                }
                Err(e) => vec![Reachability {
                    region: region.clone(),
                    what: "store".into(),
                    address: "-".into(),
                    reachable: false,
                    detail: e.to_string(),
                }],
            }
        });
        let targets = self.config().targets.values().map(|t| async move {
            match self.kind_of(t) {
                Ok(kind) => kind.reachability(t).await,
                Err(e) => vec![Reachability {
                    region: t.home.clone(),
                    what: format!("target {}", t.name),
                    address: "-".into(),
                    reachable: false,
                    detail: e.to_string(),
                }],
            }
        });
        let (stores, targets) = tokio::join!(join_all(stores), join_all(targets));
        let mut out: Vec<Reachability> = stores.into_iter().chain(targets).flatten().collect();
        out.sort_by(|a, b| (&a.region, &a.what).cmp(&(&b.region, &b.what)));
        out
    }
}
