//! Times what the dashboard does when a point's contents open: the point
//! listed once into its index file, then the root level, one folder's
//! level and a filter read back from it (each level as the dashboard asks
//! for it, at most 5 000 rows):
//! `cargo run --release --example browse_point -- CONFIG REGION TARGET FOLDER FILTER`.

use std::path::Path;
use std::time::Instant;

use drtool::catalog::PointChoice;
use drtool::engine::contents::ContentsRequest;
use drtool::engine::{Engine, EngineOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, region, target, folder, filter] = args.as_slice() else {
        return Err("usage: browse_point CONFIG REGION TARGET FOLDER FILTER".into());
    };
    let cfg = drtool::source::load_config(Path::new(config))?;
    let engine = Engine::new(cfg, drtool::source::registry(), EngineOptions::default())?;
    let started = Instant::now();
    let index = engine
        .open_point(&ContentsRequest {
            region: region.clone(),
            target: target.clone(),
            point: PointChoice::Newest,
            filter: Default::default(),
        })
        .await?
        .index()
        .await?;
    let indexed = started.elapsed();
    let file = std::fs::metadata(index.file_path())?.len();
    let mut times = Vec::new();
    for (prefix, filter) in [("", ""), (folder.as_str(), ""), ("", filter.as_str())] {
        let t = Instant::now();
        let level = index.level(prefix, filter, 5_000)?;
        times.push(format!(
            "level {prefix:?} filter {filter:?}: {} rows of {} items in {:.0} ms",
            level.entries.len(),
            level.items,
            t.elapsed().as_secs_f64() * 1000.0
        ));
    }
    println!(
        "indexed {} items ({} bytes of index) in {:.2} s",
        index.listed.items,
        file,
        indexed.as_secs_f64()
    );
    for t in times {
        println!("{t}");
    }
    Ok(())
}
