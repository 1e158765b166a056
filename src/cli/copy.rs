//! `drtool copy`: copy points a region lacks from another region.

use super::{Output, jobs, known_region, known_target, print_results};
use crate::archive::PointId;
use crate::config::Config;
use crate::engine::copy::copy_missing;
use crate::error::Error;
use crate::store::RegionStore;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The target whose points to copy; all targets when omitted.
    #[arg(long, short = 't')]
    pub target: Option<String>,
    /// Only this point.
    #[arg(long)]
    pub point: Option<PointId>,
    /// Source region (default: each target's home region).
    #[arg(long)]
    pub from: Option<String>,
    /// Destination region (default: each target's copy_to regions).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(cfg: &Config, args: &Args) -> Result<u8, Error> {
    for r in args.from.iter().chain(args.to.iter()) {
        known_region(cfg, r)?;
    }
    let targets = match &args.target {
        Some(t) => vec![known_target(cfg, t)?],
        None => cfg.targets.values().collect(),
    };
    let jobs = jobs();
    let mut results = Vec::new();
    for t in targets {
        let from = args.from.clone().unwrap_or_else(|| t.home.clone());
        let to: Vec<String> = match &args.to {
            Some(to) => vec![to.clone()],
            None => t
                .regions()
                .filter(|r| *r != from)
                .map(str::to_string)
                .collect(),
        };
        let Some(from_region) = cfg.region(&from) else {
            continue;
        };
        let from_rs = RegionStore::open(from_region).await;
        for to in to {
            if to == from {
                return Err(Error::input(format!("--from and --to are both {to}")));
            }
            let Some(to_region) = cfg.region(&to) else {
                continue;
            };
            let to_rs = RegionStore::open(to_region).await;
            results.extend(
                copy_missing(cfg, &from_rs, &to_rs, &t.name, args.point.as_ref(), &jobs).await,
            );
        }
    }
    Ok(print_results(&results, args.output))
}
