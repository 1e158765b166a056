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
    /// Say which point would be tested in which regions; start, hold and
    /// record nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    if args.dry_run {
        let report = ctx
            .engine
            .restore_test_plan(&args.target, args.point.as_deref(), args.region.as_deref())
            .await;
        return Ok(ctx.planned(&report));
    }
    let report = ctx
        .engine
        .restore_test(&args.target, args.point.as_deref(), args.region.as_deref())
        .await;
    ctx.sync().await;
    Ok(ctx.report(&report))
}
