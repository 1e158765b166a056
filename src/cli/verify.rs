//! `drtool verify`: download points and check hashes, decoding and etcd trailers.

use std::path::PathBuf;

use super::{Output, identities, jobs, known_region, known_target, print_results};
use crate::archive::PointId;
use crate::config::Config;
use crate::engine::verify::verify_region;
use crate::error::Error;
use crate::store::RegionStore;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this region; all regions when omitted.
    #[arg(long, short = 'r')]
    pub region: Option<String>,
    /// Only this target.
    #[arg(long, short = 't')]
    pub target: Option<String>,
    /// Only this point.
    #[arg(long)]
    pub point: Option<PointId>,
    /// age identity file, to check the plaintext of encrypted points.
    #[arg(long, env = "DRTOOL_AGE_IDENTITY")]
    pub identity: Option<PathBuf>,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(cfg: &Config, args: &Args) -> Result<u8, Error> {
    if let Some(t) = &args.target {
        known_target(cfg, t)?;
    }
    if let Some(r) = &args.region {
        known_region(cfg, r)?;
    }
    let ids = identities(args.identity.as_ref())?;
    let jobs = jobs();
    let mut results = Vec::new();
    for region in cfg.regions.values() {
        if args.region.as_ref().is_some_and(|r| r != &region.name) {
            continue;
        }
        let rs = RegionStore::open(region).await;
        results.extend(
            verify_region(
                &rs,
                args.target.as_deref(),
                args.point.as_ref(),
                ids.clone(),
                &jobs,
            )
            .await,
        );
    }
    if results.is_empty() {
        return Err(Error::input(
            "no recovery points matched: nothing was verified",
        ));
    }
    Ok(print_results(&results, args.output))
}
