//! `drtool points`: list recovery points per region.

use super::{Ctx, Output, ScopeArgs, print_json};
use crate::engine::{RegionPoints, Verdict, listing_verdict};
use crate::error::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let regions = ctx.engine.points(&args.scope.scope()).await?;
    ctx.sync().await;
    match args.output {
        Output::Json => print_json(&regions),
        Output::Table => print_table(&regions),
    }
    Ok(listing_verdict(&regions))
}

fn print_table(regions: &[RegionPoints]) {
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
            let payload = serde_json::to_value(m.payload)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
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
            outln!(
                "  {:<16} {:<26} {:<14} {:>12} {:>12}  {:<20} {}{}{}{}",
                m.target,
                m.point_id,
                payload,
                m.plaintext_size,
                m.stored_size,
                m.finished_at.format("%Y-%m-%d %H:%M:%S"),
                m.copied_from.as_deref().unwrap_or("(taken here)"),
                if m.is_encrypted() { " [encrypted]" } else { "" },
                verified,
                tested
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
