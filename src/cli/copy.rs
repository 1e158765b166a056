//! `drtool copy`: copy points a region lacks from another region.

use super::Ctx;
use crate::archive::PointId;
use crate::engine::{CopyRequest, Verdict};
use crate::error::Error;

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
    /// List what would be copied (and check the destination takes writes);
    /// copy nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let req = CopyRequest {
        target: args.target.clone(),
        point: args.point.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        dry_run: args.dry_run,
    };
    let report = ctx.engine.copy(&req).await?;
    ctx.sync().await;
    if args.dry_run {
        return Ok(ctx.planned(&report));
    }
    Ok(ctx.report(&report))
}
