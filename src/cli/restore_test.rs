//! `drtool restore-test`: restore a point into a scratch place (an etcd on
//! free ports, a scratch namespace, a scratch database), check it against its
//! manifest, remove the scratch place and record the result next to the point.

use super::Ctx;
use crate::engine::Verdict;
use crate::error::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The target whose point is tested.
    #[arg(long, short = 't')]
    pub target: String,
    /// The point (its newest in the home region when omitted).
    #[arg(long, short = 'p')]
    pub point: Option<String>,
    /// Test the copy in this region only (default: every region that holds
    /// the point, DR copies first).
    #[arg(long, short = 'r')]
    pub region: Option<String>,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let report = ctx
        .engine
        .restore_test(&args.target, args.point.as_deref(), args.region.as_deref())
        .await;
    ctx.sync().await;
    Ok(ctx.report(&report))
}
