//! `drtool prune`: apply to each point the retention it was made under
//! (recorded in its manifest, or changed by `drtool points retain`), per target
//! and region, and remove leftovers (data without a manifest, stale multipart uploads)
//! older than a grace period. Prints the whole plan (every point with *keep*
//! and its reasons, or *remove*) before anything is removed.

use std::time::Duration;

use super::{Ctx, ScopeArgs, confirm};
use crate::engine::prune::PruneRequest;
use crate::engine::{GcRequest, Verdict};
use crate::error::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Leftovers (data without a manifest, open uploads) older than this go too.
    #[arg(long, value_parser = super::parse_age, default_value = "24h")]
    pub grace: Duration,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let scope = args.scope.scope();
    let plan = ctx
        .engine
        .plan_prune(&PruneRequest {
            scope: scope.clone(),
            targets: Vec::new(),
        })
        .await?;
    let gc = ctx
        .engine
        .plan_gc(&GcRequest {
            scope: scope.clone(),
            older_than: args.grace,
            force_unlock: Vec::new(),
        })
        .await?;
    ctx.sync().await;
    let json = ctx.json();
    ctx.emit(|e| {
        for r in &plan.regions {
            e.region_error(&r.region, r.error_class, r.error.as_deref());
        }
        for r in &gc.regions {
            e.region_error(&r.region, r.error_class, r.error.as_deref());
        }
        e.field("plan", &plan);
        e.field("leftovers", &gc);
        e.field("dry_run", args.dry_run);
    });
    if !json {
        for line in plan.describe() {
            outln!("{line}");
        }
        outln!(
            "leftovers older than {}:",
            humantime::format_duration(args.grace)
        );
        for line in gc.describe() {
            outln!("  {line}");
        }
    }
    let (points, leftovers) = (plan.removals(), gc.removals());
    if args.dry_run || points + leftovers == 0 {
        if json {
            // The plan is in the envelope.
        } else if args.dry_run {
            outln!(
                "dry run: nothing was removed ({points} points and {leftovers} leftovers would be)"
            );
        } else {
            outln!("nothing to remove");
        }
        return Ok(worst(plan.listing_verdict(), gc.listing_verdict()));
    }
    if !args.yes {
        let what = format!("This plan removes {points} recovery points and {leftovers} leftovers");
        confirm(ctx, &what, "\"prune\"", "prune").await?;
    }
    let mut report = ctx.engine.prune(&plan).await;
    report.extend(ctx.engine.gc(&gc).await);
    ctx.sync().await;
    Ok(ctx.report(&report))
}

/// The worse of two listing verdicts.
fn worst(a: Verdict, b: Verdict) -> Verdict {
    if a == Verdict::Ok { b } else { a }
}
