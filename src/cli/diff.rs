//! `drtool diff --target T --point A (--against B | --live)`: what differs
//! between two points of a target, or between a point and the live target.
//! Exit 0 when they hold the same, 1 when they differ (as `diff` does).

use std::path::PathBuf;

use super::{Ctx, output};
use crate::archive::PointId;
use crate::catalog::PointChoice;
use crate::engine::diff::{Against, Change, DiffRequest};
use crate::engine::kind::Filter;
use crate::error::Error;
use crate::exit::{self, Exit};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, short = 't')]
    pub target: String,
    /// The region whose store holds the points, and with --live the region
    /// whose live target is compared (default: the target's home region).
    #[arg(long, short = 'r')]
    pub region: Option<String>,
    /// The point compared (default: the newest valid one).
    #[arg(long)]
    pub point: Option<PointId>,
    /// Compare with this other point of the target.
    #[arg(long, conflicts_with = "live", required_unless_present = "live")]
    pub against: Option<PointId>,
    /// Compare with the live target, as it is now.
    #[arg(long)]
    pub live: bool,
    /// Only names that start with this (an etcd key prefix).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Only the counts: added, removed, changed, the same.
    #[arg(long)]
    pub stat: bool,
    /// age identity file for encrypted points.
    #[arg(long, env = "DRTOOL_AGE_IDENTITY")]
    pub identity: Option<PathBuf>,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Exit, Error> {
    let region = match &args.region {
        Some(r) => r.clone(),
        None => ctx.engine.target(&args.target)?.home.clone(),
    };
    let choice = |p: &Option<PointId>| match p {
        Some(id) => PointChoice::Id(id.clone()),
        None => PointChoice::Newest,
    };
    let req = DiffRequest {
        region: region.clone(),
        target: args.target.clone(),
        point: choice(&args.point),
        against: match &args.against {
            Some(id) => Against::Point(PointChoice::Id(id.clone())),
            None => Against::Live(region.clone()),
        },
        filter: Filter {
            prefix: args.prefix.clone(),
            revision: None,
        },
    };
    let mut shown = 0u64;
    let compared = {
        let mut sink = |change: Change| -> Result<(), Error> {
            if ctx.json() {
                ctx.emit(|e| e.stream_item("Diff", &change));
            } else if !args.stat {
                for line in change.lines() {
                    outln!("{line}");
                }
            }
            shown += 1;
            match output::stdout_failure() {
                None => Ok(()),
                Some(kind) => Err(Error::failed(format!("stdout failed ({kind})"))),
            }
        };
        ctx.engine.diff(&req, !args.stat, &mut sink).await
    };
    if compared.is_err() && output::stdout_failure() == Some(std::io::ErrorKind::BrokenPipe) {
        return Ok(Exit::Code(exit::FAILED));
    }
    let compared = compared?;
    ctx.sync().await;
    if ctx.json() {
        ctx.emit(|e| e.field("compared", &compared));
    } else {
        if !ctx.quiet {
            for line in compared.about_from.iter().chain(&compared.about_to) {
                errln!("{line}");
            }
        }
        outln!("{}", compared.summary());
    }
    Ok(Exit::Code(if compared.differs() {
        exit::FAILED
    } else {
        exit::OK
    }))
}
