//! `drtool restore --region R --target T`: plan, show, confirm, execute.

use std::path::PathBuf;

use super::{Ctx, confirm};
use crate::archive::PointId;
use crate::catalog::{PointChoice, parse_time};
use crate::engine::{Existing, RestoreOptions, RestoreRequest, Verdict};
use crate::error::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The region to restore in: only its store and endpoints are used.
    #[arg(long, short = 'r')]
    pub region: String,
    #[arg(long, short = 't')]
    pub target: String,
    /// The point to restore (default: the newest valid one).
    #[arg(long, conflicts_with = "before")]
    pub point: Option<PointId>,
    /// The newest point finished before this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    pub before: Option<String>,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Confirm a destructive plan without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// age identity file for encrypted points.
    #[arg(long, env = "DRTOOL_AGE_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// etcd keys points: restore only keys under this prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// What to do with what already exists (default fail): etcd keys, namespace
    /// objects (update = overwrite), a non-empty database for a dump
    /// (overwrite drops and replaces its objects).
    #[arg(long, value_enum)]
    pub existing: Option<ExistingArg>,
    /// RDS dump points: restore into this database (created if missing).
    #[arg(long)]
    pub database: Option<String>,
    /// RDS points: restore the dump even where a snapshot copy exists.
    #[arg(long)]
    pub from_dump: bool,
    /// RDS: restore a new instance to this time from RDS's automated backups in
    /// the region (RFC 3339 or YYYY-MM-DD, UTC), instead of from a point.
    #[arg(long, conflicts_with_all = ["point", "before", "from_dump"])]
    pub pitr: Option<String>,
    /// Namespaces: restore namespace OLD into NEW (OLD=NEW).
    #[arg(long, value_parser = parse_mapping)]
    pub namespace_map: Option<(String, String)>,
    /// Namespaces: only these resources (plural or plural.group; repeatable, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub include: Vec<String>,
    /// Namespaces: never these resources.
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
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
    fn request(&self) -> Result<RestoreRequest, Error> {
        let point = match (&self.point, &self.before) {
            (Some(id), _) => PointChoice::Id(id.clone()),
            (None, Some(t)) => PointChoice::Before(parse_time(t)?),
            (None, None) => PointChoice::Newest,
        };
        Ok(RestoreRequest {
            region: self.region.clone(),
            target: self.target.clone(),
            point,
            options: RestoreOptions {
                prefix: self.prefix.clone(),
                existing: self.existing.map(Existing::from),
                database: self.database.clone(),
                from_dump: self.from_dump,
                pitr: self.pitr.as_deref().map(parse_time).transpose()?,
                namespace_map: self.namespace_map.clone(),
                include: self.include.clone(),
                exclude: self.exclude.clone(),
                with_canaries: false,
            },
        })
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let req = args.request()?;
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

fn parse_mapping(s: &str) -> Result<(String, String), super::NotAPair> {
    super::split_pair(s, "OLD=NEW", false)
}
