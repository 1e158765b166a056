//! Seeds a region's store with many recovery points for catalog and prune
//! benchmarks: `cargo run --release --example seed_points -- CONFIG REGION
//! TARGET POINT COUNT`. Each new point is a copy of POINT (its data object and
//! its manifest, re-sealed with a new id), one hour older than the one before,
//! so retention sees months of hourly points. Writes 64 objects at a time.

use drtool::archive::{Manifest, PointId};
use drtool::catalog::RegionStore;
use drtool::store::Keep;
use futures::StreamExt;

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, region, target, point, count] = args.as_slice() else {
        eprintln!("usage: seed_points CONFIG REGION TARGET POINT COUNT");
        std::process::exit(2);
    };
    let count: i64 = count.parse().unwrap_or_else(|_| {
        eprintln!("COUNT {count:?} is not a number");
        std::process::exit(2)
    });
    let cfg = drtool::source::load_config(std::path::Path::new(config)).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let Some(r) = cfg.region(region) else {
        eprintln!("no region {region} in {config}");
        std::process::exit(2)
    };
    let rs = RegionStore::open(r).await;
    let id: PointId = point.parse().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let manifest_key = rs.layout.manifest_key(target, &id);
    let bytes = rs.store.get(&manifest_key).await.unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let manifest = Manifest::parse(&manifest_key, &bytes).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let data_key = rs.layout.data_key(target, &id, manifest.is_encrypted());
    let data = rs.store.get(&data_key).await.unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let start = manifest.started_at;
    let started = std::time::Instant::now();
    let written = futures::stream::iter((1..=count).map(|i| {
        let (rs, data, mut m) = (&rs, data.clone(), manifest.clone());
        async move {
            let at = start - chrono::Duration::hours(i);
            let new = PointId::new(at);
            m.point_id = new.to_string();
            m.started_at = at;
            m.finished_at = at + chrono::Duration::seconds(2);
            let body = m.seal();
            rs.store
                .put(
                    &rs.layout.data_key(&m.target, &new, m.is_encrypted()),
                    data,
                    Keep::Normal,
                )
                .await?;
            rs.store
                .put(
                    &rs.layout.manifest_key(&m.target, &new),
                    body.into(),
                    Keep::Normal,
                )
                .await
        }
    }))
    .buffer_unordered(64)
    .filter(|r| std::future::ready(r.is_ok()))
    .count()
    .await;
    println!(
        "wrote {written} of {count} points of {target} in {region} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
