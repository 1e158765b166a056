//! `drtool verify`: download points and check hashes, decoding and etcd trailers.

use std::path::PathBuf;

use super::{Output, Scope, identities, jobs, print_results};
use crate::archive::PointId;
use crate::config::Config;
use crate::engine::verify::verify_region;
use crate::error::Error;
use crate::store::RegionStore;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub scope: Scope,
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
    args.scope.check(cfg)?;
    let ids = identities(args.identity.as_ref())?;
    let jobs = jobs();
    let mut results = Vec::new();
    for region in args.scope.regions(cfg) {
        let rs = RegionStore::open(region).await;
        let target = args.scope.target.as_deref();
        results
            .extend(verify_region(cfg, &rs, target, args.point.as_ref(), ids.clone(), &jobs).await);
    }
    if results.is_empty() {
        return Err(Error::input(
            "no recovery points matched: nothing was verified",
        ));
    }
    Ok(print_results(&results, args.output))
}
