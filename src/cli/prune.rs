//! `drtool prune`: apply every schedule's retention per target and region,
//! and remove leftovers (data without a manifest, stale multipart uploads)
//! older than a grace period. Prints the whole plan (every point with *keep*
//! and its reasons, or *remove*) before anything is removed.

use std::time::Duration;

use super::schedule::{DirArgs, dir_of, load};
use super::{Ctx, Output, ScopeArgs, confirm, print_json, print_report};
use crate::engine::prune::PruneRequest;
use crate::engine::{GcRequest, Verdict};
use crate::error::Error;
use crate::schedule::run::policies;
use crate::schedule::spec::covered;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub dir: DirArgs,
    /// Leftovers (data without a manifest, open uploads) older than this go too.
    #[arg(long, value_parser = super::parse_age, default_value = "24h")]
    pub grace: Duration,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let schedules = load(ctx.engine.config(), &dir_of(ctx, &args.dir))?;
    let scope = args.scope.scope();
    let plan = ctx
        .engine
        .plan_prune(&PruneRequest {
            scope: scope.clone(),
            policies: policies(&schedules),
        })
        .await?;
    let gc = ctx
        .engine
        .plan_gc(&GcRequest {
            scope: scope.clone(),
            older_than: args.grace,
        })
        .await?;
    ctx.sync().await;
    let json = args.output == Output::Json;
    let uncovered: Vec<String> = {
        let covered = covered(&schedules);
        ctx.engine
            .config()
            .targets
            .keys()
            .filter(|t| !covered.contains(*t))
            .filter(|t| scope.target.as_ref().is_none_or(|s| s == *t))
            .cloned()
            .collect()
    };
    if !json {
        for line in plan.describe() {
            outln!("{line}");
        }
        for t in &uncovered {
            outln!(
                "target {t}: no schedule covers it, so no retention applies: all its points are kept"
            );
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
            print_json(
                &serde_json::json!({ "plan": plan, "leftovers": gc, "dry_run": args.dry_run }),
            );
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
    if json {
        print_json(&serde_json::json!({ "plan": plan, "leftovers": gc, "results": report }));
        return Ok(report.verdict());
    }
    Ok(print_report(&report, args.output))
}

/// The worse of two listing verdicts.
fn worst(a: Verdict, b: Verdict) -> Verdict {
    if a == Verdict::Ok { b } else { a }
}
