//! `drtool verify`: download points and check hashes, decoding and etcd trailers.

use std::path::PathBuf;

use super::{Ctx, ScopeArgs};
use crate::archive::PointId;
use crate::engine::{Verdict, VerifyRequest};
use crate::error::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Only this point.
    #[arg(long)]
    pub point: Option<PointId>,
    /// age identity file, to check the plaintext of encrypted points.
    #[arg(long, env = "DRTOOL_AGE_IDENTITY")]
    pub identity: Option<PathBuf>,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let req = VerifyRequest {
        scope: args.scope.scope(),
        point: args.point.clone(),
    };
    let report = ctx.engine.verify(&req).await?;
    ctx.sync().await;
    Ok(ctx.report(&report))
}
