//! `drtool backup`: back up targets, then copy them to their DR regions; or,
//! with `--schedule NAME`, run one schedule once (its targets, copies,
//! retention and checks) for an external crontab or a Kubernetes CronJob.

use std::collections::BTreeMap;

use super::Ctx;
use super::schedule::{DirArgs, dir_of, load};
use crate::engine::{BackupRequest, Verdict};
use crate::error::Error;
use crate::schedule::run::run_once;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Targets to back up (repeatable); all targets when omitted.
    #[arg(long = "target", short = 't', conflicts_with = "schedule")]
    pub targets: Vec<String>,
    /// Do not copy the new points to the targets' copy_to regions.
    #[arg(long, conflicts_with = "schedule")]
    pub no_copy: bool,
    /// Run this schedule once: its backups, copies, retention and checks.
    #[arg(long)]
    pub schedule: Option<String>,
    /// With --schedule: skip when the schedule's latest scheduled time has
    /// already run (elsewhere): for CronJobs in several clusters.
    #[arg(long, requires = "schedule")]
    pub once_per_slot: bool,
    #[command(flatten)]
    pub dir: DirArgs,
    /// Check and say what would be backed up and copied (sources answer,
    /// stores take writes, the signing key signs); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Labels to record, as key=value (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
}

fn parse_label(s: &str) -> Result<(String, String), super::NotAPair> {
    super::split_pair(s, "key=value", true)
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    if let Some(name) = &args.schedule {
        return scheduled(ctx, args, name).await;
    }
    let req = BackupRequest {
        retention: None,
        targets: args.targets.clone(),
        schedule: None,
        labels: args.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        no_copy: args.no_copy,
        copy_to: None,
    };
    if args.dry_run {
        let report = ctx.engine.backup_plan(&req).await?;
        return Ok(ctx.planned(&report));
    }
    let report = ctx.engine.backup(&req).await?;
    ctx.sync().await;
    Ok(ctx.report(&report))
}

async fn scheduled(ctx: &Ctx, args: &Args, name: &str) -> Result<Verdict, Error> {
    let dir = dir_of(ctx, &args.dir);
    let schedules = load(ctx.engine.config(), &dir)?;
    let Some(schedule) = schedules.iter().find(|s| s.name == name) else {
        let known: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
        return Err(Error::input(format!(
            "no schedule named {name:?} in {} (schedules: {})",
            dir.display(),
            known.join(", ")
        )));
    };
    if schedule.paused {
        errln!(
            "schedule {name} is paused ({}): running it once anyway, as asked",
            schedule.file.display()
        );
    }
    if args.dry_run {
        return scheduled_plan(ctx, schedule).await;
    }
    let slot = args
        .once_per_slot
        .then(|| {
            schedule
                .cron
                .previous_run(chrono::Utc::now(), schedule.timezone)
        })
        .flatten()
        .map(|t| t.with_timezone(&chrono::Utc));
    let result = run_once(&ctx.engine, schedule, slot).await;
    crate::schedule::daemon::tell(schedule, &result).await;
    let run = result?;
    ctx.sync().await;
    if ctx.json() {
        ctx.emit(|e| {
            e.report(&run.report);
            e.field(
                "schedule",
                serde_json::json!({
                    "name": run.schedule,
                    "started_at": run.started_at,
                    "duration_ms": run.duration_ms,
                    "new_points": run.new_points(),
                    "pruned": run.pruned,
                    "kept": run.kept,
                    "skipped": run.skipped,
                }),
            );
        });
        return Ok(run.report.verdict());
    }
    if let Some(why) = &run.skipped {
        outln!("schedule {name} not run: {why}");
        return Ok(Verdict::Ok);
    }
    let verdict = ctx.report(&run.report);
    outln!(
        "schedule {name}: {} points made, {} pruned, in {:.1}s",
        run.new_points().len(),
        run.pruned,
        run.duration_ms as f64 / 1000.0
    );
    Ok(verdict)
}

/// A schedule's run, planned: its backups and copies checked as `backup
/// --dry-run` checks them, and what its retention would remove today.
async fn scheduled_plan(ctx: &Ctx, schedule: &crate::schedule::Schedule) -> Result<Verdict, Error> {
    let report = ctx
        .engine
        .backup_plan(&crate::schedule::run::backup_request(schedule))
        .await?;
    let prune = ctx
        .engine
        .plan_prune(&crate::engine::PruneRequest {
            scope: crate::engine::Scope::default(),
            targets: schedule.targets.clone(),
        })
        .await?;
    if ctx.json() {
        ctx.emit(|e| {
            e.report(&report);
            e.field("prune", &prune);
            e.field("dry_run", true);
        });
    } else {
        super::print_report_table(&report);
        outln!(
            "retention of {} (each point by the retention it was made under; judged on today's points, before the new one):",
            schedule.name
        );
        for line in prune.describe() {
            outln!("  {line}");
        }
        outln!(
            "dry run: nothing was written ({} points would be removed)",
            prune.removals()
        );
    }
    Ok(report.verdict())
}
