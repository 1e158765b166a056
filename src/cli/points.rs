//! `drtool points`: list recovery points per region; `drtool points retain`:
//! change their retention by hand (recorded next to each point).

use std::path::PathBuf;

use super::{Ctx, ScopeArgs};
use crate::catalog::RetentionOverride;
use crate::engine::prune::RetainRequest;
use crate::engine::{RegionPoints, Scope, Verdict, listing_verdict};
use crate::error::Error;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Sizes as exact byte counts instead of KiB/MiB/GiB.
    #[arg(long)]
    pub bytes: bool,
    #[command(subcommand)]
    pub command: Option<PointsCommand>,
}

#[derive(clap::Subcommand, Debug)]
pub enum PointsCommand {
    /// Change the retention of points: keep them until a date, or judge them
    /// by a schedule's policy (recorded next to each point, with who and when).
    Retain(RetainArgs),
}

#[derive(clap::Args, Debug)]
pub struct RetainArgs {
    #[arg(long, short = 't')]
    pub target: String,
    /// These points (repeatable); every point of the target when omitted.
    #[arg(long = "point", short = 'p')]
    pub points: Vec<String>,
    /// Only in this region (default: every region holding them).
    #[arg(long, short = 'r')]
    pub region: Option<String>,
    /// Keep them at least until this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, required_unless_present = "policy")]
    pub until: Option<String>,
    /// Judge them by this schedule's retention (its rules are recorded).
    #[arg(long)]
    pub policy: Option<String>,
    /// Where --policy's schedule is (default: $DRTOOL_SCHEDULES, else
    /// schedules/ next to the config).
    #[arg(long, env = "DRTOOL_SCHEDULES")]
    pub schedules: Option<PathBuf>,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    if let Some(PointsCommand::Retain(a)) = &args.command {
        return retain(ctx, a).await;
    }
    let regions = ctx.engine.points(&args.scope.scope()).await?;
    ctx.sync().await;
    if ctx.json() {
        ctx.emit(|e| emit(e, &regions));
    } else {
        print_table(&regions, args.bytes);
    }
    Ok(listing_verdict(&regions))
}

/// One item per point (its manifest, the region holding it, its last verify,
/// restore test and retention change); per region what was read or not.
fn emit(e: &mut super::envelope::Envelope, regions: &[RegionPoints]) {
    use serde_json::{Value, json};
    for r in regions {
        e.region_error(&r.region, r.error_class, r.error.as_deref());
        e.items(r.points.iter().map(|m| {
            let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("region".into(), json!(r.region));
                o.insert("verify".into(), json!(r.verifies.get(&m.point_id)));
                o.insert(
                    "restore_test".into(),
                    json!(r.restore_tests.get(&m.point_id)),
                );
                o.insert(
                    "retention_override".into(),
                    json!(r.retention_overrides.get(&m.point_id)),
                );
                if let Some(s) = r.streams.get(m.point_id.as_str()) {
                    o.insert("stream".into(), json!(s));
                }
            }
            v
        }));
    }
    e.field(
        "regions",
        regions
            .iter()
            .map(|r| {
                json!({
                    "region": r.region,
                    "store": r.store,
                    "error": r.error,
                    "error_class": r.error_class,
                    "points": r.points.len(),
                    "problems": r.problems,
                    "orphans": r.orphans,
                    "leftovers": r.leftovers,
                })
            })
            .collect::<Vec<_>>(),
    );
}

fn print_table(regions: &[RegionPoints], bytes: bool) {
    let size = |n: u64| {
        if bytes {
            n.to_string()
        } else {
            crate::report::human_bytes(n)
        }
    };
    for r in regions {
        outln!("region {} ({})", r.region, r.store);
        if let Some(e) = &r.error {
            outln!("  UNAVAILABLE: {e}");
            continue;
        }
        if r.points.is_empty() {
            outln!("  no recovery points");
        } else {
            outln!(
                "  {:<16} {:<26} {:<14} {:>12} {:>12}  {:<20} FROM",
                "TARGET",
                "POINT",
                "PAYLOAD",
                "SIZE",
                "STORED",
                "FINISHED"
            );
        }
        for m in &r.points {
            let payload = m.payload.to_string();
            outln!(
                "  {:<16} {:<26} {:<14} {:>12} {:>12}  {:<20} {}{}{}",
                m.target,
                m.point_id,
                payload,
                size(m.plaintext_size),
                size(m.stored_size),
                m.finished_at.format("%Y-%m-%d %H:%M:%S"),
                m.copied_from.as_deref().unwrap_or("(taken here)"),
                if m.is_encrypted() { " [encrypted]" } else { "" },
                notes(r, m)
            );
        }
        for p in &r.problems {
            outln!("  PROBLEM: {}: ignored", p.detail);
        }
        let now = chrono::Utc::now();
        for l in &r.leftovers {
            outln!("  LEFTOVER: {}", l.describe(now));
        }
        if !r.leftovers.is_empty() {
            outln!(
                "  {} leftovers belong to no recovery point: `drtool gc --region {}` removes expired locks and what is older than a day",
                r.leftovers.len(),
                r.region
            );
        }
    }
}

/// What a point's line says after its columns: its last verify and restore
/// test, its retention, and the stream it holds.
fn notes(r: &RegionPoints, m: &crate::archive::Manifest) -> String {
    let tested = match r.restore_tests.get(&m.point_id) {
        Some(t) if t.ok => {
            format!(" restore-tested at {}", t.at.format("%Y-%m-%d %H:%M UTC"))
        }
        Some(t) => format!(
            " RESTORE TEST FAILED at {}: {}",
            t.at.format("%Y-%m-%d %H:%M UTC"),
            t.message
        ),
        None => String::new(),
    };
    let verified = match r.verifies.get(&m.point_id) {
        Some(v) if v.ok => format!(" verified at {}", v.at.format("%Y-%m-%d %H:%M UTC")),
        Some(v) => format!(
            " VERIFY FAILED at {}: {}",
            v.at.format("%Y-%m-%d %H:%M UTC"),
            v.message
        ),
        None => String::new(),
    };
    let o = r.retention_overrides.get(&m.point_id);
    let kept = match (
        o.and_then(|o| o.policy.as_ref()).or(m.retention.as_ref()),
        o.and_then(|o| o.until),
    ) {
        (Some(p), Some(u)) => format!(
            " retention {}, kept until {}",
            p.policy,
            u.format("%Y-%m-%d %H:%M UTC")
        ),
        (Some(p), None) => format!(" retention {}", p.policy),
        (None, Some(u)) => format!(" kept until {}", u.format("%Y-%m-%d %H:%M UTC")),
        (None, None) => " no retention recorded".to_string(),
    };
    let streamed = match r.streams.get(m.point_id.as_str()) {
        Some(s) => format!(
            " + stream of {} segments up to revision {}{}",
            s.segments,
            s.reaches,
            match &s.broken {
                Some(b) => format!(" (BROKEN after it: {b})"),
                None => String::new(),
            }
        ),
        None => String::new(),
    };
    format!("{verified}{tested}{kept}{streamed}")
}

async fn retain(ctx: &Ctx, a: &RetainArgs) -> Result<Verdict, Error> {
    let until = a
        .until
        .as_deref()
        .map(crate::catalog::parse_time)
        .transpose()?;
    let policy = match &a.policy {
        None => None,
        Some(name) => {
            let dir = a
                .schedules
                .clone()
                .unwrap_or_else(|| super::drill::beside_config(ctx, "schedules"));
            let schedules = super::schedule::load(ctx.engine.config(), &dir)?;
            let s = schedules.iter().find(|s| &s.name == name).ok_or_else(|| {
                Error::input(format!(
                    "no schedule named {name:?} in {} (schedules: {})",
                    dir.display(),
                    schedules
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            Some(s.point_retention())
        }
    };
    let points = a
        .points
        .iter()
        .map(|p| p.parse())
        .collect::<Result<Vec<_>, _>>()?;
    let report = ctx
        .engine
        .retain(&RetainRequest {
            scope: Scope {
                region: a.region.clone(),
                target: Some(a.target.clone()),
            },
            target: a.target.clone(),
            points,
            change: RetentionOverride {
                until,
                policy,
                by: crate::report::current_user(),
                at: chrono::Utc::now(),
            },
        })
        .await?;
    ctx.sync().await;
    Ok(ctx.report(&report))
}
