//! `drtool restore --region R --target T`: plan, show, confirm, execute.

use std::path::PathBuf;

use super::flags::{self, KindFlags};
use super::{Ctx, confirm};
use crate::archive::PointId;
use crate::catalog::{PointChoice, parse_time};
use crate::engine::{Existing, RestoreRequest, Verdict};
use crate::error::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The region to restore in: only its store and endpoints are used.
    #[arg(long, short = 'r')]
    pub region: String,
    #[arg(long, short = 't')]
    pub target: String,
    /// Exactly this point, as it is (default: the newest valid one, and its
    /// continuous stream replayed as far as the region holds it).
    #[arg(long, conflicts_with_all = ["before", "revision"])]
    pub point: Option<PointId>,
    /// The newest point finished before this time (RFC 3339 or YYYY-MM-DD,
    /// UTC), and its stream replayed up to that time.
    #[arg(long, conflicts_with = "revision")]
    pub before: Option<String>,
    /// A target with a continuous stream: the newest point at or before this
    /// revision, and its stream replayed up to exactly this revision.
    #[arg(long, value_name = "N")]
    pub revision: Option<u64>,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Confirm a destructive plan without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// age identity file for encrypted points.
    #[arg(long, env = "DRTOOL_AGE_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// What to do with what already exists (default fail): etcd keys, namespace
    /// objects (update = overwrite), a non-empty database for a dump
    /// (overwrite drops and replaces its objects).
    #[arg(long, value_enum)]
    pub existing: Option<ExistingArg>,
    /// Each kind's own options (its `restore_flags`).
    #[command(flatten)]
    pub kinds: KindFlags<flags::Restore>,
}

/// `--existing` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExistingArg {
    /// Leave what exists as it is.
    Skip,
    /// Replace what exists with the point's version.
    #[value(alias = "update")]
    Overwrite,
    /// Refuse the restore if anything selected already exists.
    Fail,
}

impl From<ExistingArg> for Existing {
    fn from(a: ExistingArg) -> Existing {
        match a {
            ExistingArg::Skip => Existing::Skip,
            ExistingArg::Overwrite => Existing::Overwrite,
            ExistingArg::Fail => Existing::Fail,
        }
    }
}

impl Args {
    fn request(&self, ctx: &Ctx) -> Result<RestoreRequest, Error> {
        let point = match (&self.point, &self.before, self.revision) {
            (Some(id), _, _) => PointChoice::Id(id.clone()),
            (None, Some(t), _) => PointChoice::Before(parse_time(t)?),
            (None, None, Some(n)) => PointChoice::Revision(n),
            (None, None, None) => PointChoice::Newest,
        };
        Ok(RestoreRequest {
            region: self.region.clone(),
            target: self.target.clone(),
            point,
            options: ctx.engine.restore_options(
                &self.target,
                self.existing.map(Existing::from),
                &self.kinds.values,
            )?,
        })
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let req = args.request(ctx)?;
    let plan = ctx.engine.plan_restore(&req).await?;
    ctx.sync().await;
    let json = ctx.json();
    ctx.emit(|e| {
        e.field("plan", &plan);
        e.field("dry_run", args.dry_run);
    });
    if !json {
        for line in plan.describe() {
            outln!("{line}");
        }
    }
    if args.dry_run {
        if !json {
            outln!("dry run: nothing was changed");
        }
        return Ok(Verdict::Ok);
    }
    if plan.destructive && !args.yes {
        confirm(
            ctx,
            "This plan replaces or overwrites existing data",
            &format!("the target name ({})", plan.target),
            &plan.target,
        )
        .await?;
    }
    let report = ctx.engine.execute(&plan).await;
    ctx.sync().await;
    Ok(ctx.report(&report))
}
