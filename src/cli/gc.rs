//! `drtool gc`: plan, show, confirm and remove what belongs to no recovery point.

use std::time::Duration;

use super::{Ctx, ScopeArgs, confirm};
use crate::engine::{GcRequest, Verdict};
use crate::error::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Only leftovers older than this (e.g. 24h, 7d, 30m).
    #[arg(long, value_parser = super::parse_age, default_value = "24h")]
    pub older_than: Duration,
    /// Also remove this lock, though it is held or cannot be read (a name
    /// as an error gives it, e.g. `schedule.nightly`); only when no run
    /// holds it. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub force_unlock: Vec<String>,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let req = GcRequest {
        scope: args.scope.scope(),
        older_than: args.older_than,
        force_unlock: args.force_unlock.clone(),
    };
    let plan = ctx.engine.plan_gc(&req).await?;
    ctx.sync().await;
    let json = ctx.json();
    ctx.emit(|e| {
        for r in &plan.regions {
            e.region_error(&r.region, r.error_class, r.error.as_deref());
        }
        e.field("plan", &plan);
        e.field("dry_run", args.dry_run);
    });
    if !json {
        for line in plan.describe() {
            outln!("{line}");
        }
    }
    if args.dry_run || plan.removals() == 0 {
        if json {
            // The plan is in the envelope.
        } else if args.dry_run {
            outln!("dry run: nothing was removed");
        } else {
            outln!("nothing to remove");
        }
        return Ok(plan.listing_verdict());
    }
    if !args.yes {
        let what = format!("This plan removes {} leftovers", plan.removals());
        confirm(ctx, &what, "\"gc\"", "gc").await?;
    }
    let report = ctx.engine.gc(&plan).await;
    ctx.sync().await;
    Ok(ctx.report(&report))
}
