//! `drtool points`: list recovery points per region.

use serde::Serialize;

use super::{EXIT_OK, EXIT_PARTIAL, Output, Scope, class_code};
use crate::catalog;
use crate::config::Config;
use crate::error::Error;
use crate::store::RegionStore;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub scope: Scope,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Serialize)]
struct RegionPoints {
    region: String,
    store: String,
    error: Option<String>,
    points: Vec<crate::archive::Manifest>,
    problems: Vec<String>,
    orphans: Vec<String>,
}

pub async fn run(cfg: &Config, args: &Args) -> Result<u8, Error> {
    args.scope.check(cfg)?;
    let mut out = Vec::new();
    let mut worst = None;
    for region in args.scope.regions(cfg) {
        let name = &region.name;
        let rs = RegionStore::open(region).await;
        match catalog::list_points(&rs, args.scope.target.as_deref()).await {
            Ok(l) => out.push(RegionPoints {
                region: name.to_string(),
                store: rs.store.describe(),
                error: None,
                points: l.points.into_iter().map(|p| p.manifest).collect(),
                problems: l.problems,
                orphans: l.orphans,
            }),
            Err(e) => {
                worst.get_or_insert(e.class());
                out.push(RegionPoints {
                    region: name.to_string(),
                    store: rs.store.describe(),
                    error: Some(e.to_string()),
                    points: Vec::new(),
                    problems: Vec::new(),
                    orphans: Vec::new(),
                });
            }
        }
    }
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default()),
        Output::Table => print_table(&out),
    }
    let failed = out.iter().filter(|r| r.error.is_some()).count();
    Ok(match worst {
        None => EXIT_OK,
        Some(_) if failed < out.len() => EXIT_PARTIAL,
        Some(class) => class_code(class),
    })
}

fn print_table(regions: &[RegionPoints]) {
    for r in regions {
        println!("region {} ({})", r.region, r.store);
        if let Some(e) = &r.error {
            println!("  UNAVAILABLE: {e}");
            continue;
        }
        if r.points.is_empty() {
            println!("  no recovery points");
        } else {
            println!(
                "  {:<16} {:<26} {:<14} {:>12} {:>12}  {:<20} FROM",
                "TARGET", "POINT", "PAYLOAD", "SIZE", "STORED", "FINISHED"
            );
        }
        for m in &r.points {
            let payload = serde_json::to_value(m.payload)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            println!(
                "  {:<16} {:<26} {:<14} {:>12} {:>12}  {:<20} {}{}",
                m.target,
                m.point_id,
                payload,
                m.plaintext_size,
                m.stored_size,
                m.finished_at.format("%Y-%m-%d %H:%M:%S"),
                m.copied_from.as_deref().unwrap_or("(taken here)"),
                if m.is_encrypted() { " [encrypted]" } else { "" }
            );
        }
        for p in &r.problems {
            println!("  PROBLEM: {p}");
        }
        for o in &r.orphans {
            println!("  incomplete: {o}");
        }
    }
}
