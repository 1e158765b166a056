//! `drtool config check`: validate the config and probe every endpoint.

use super::{Ctx, Output, print_json};
use crate::engine::Verdict;
use crate::error::{Error, ErrorClass};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only validate the file; do not contact anything.
    #[arg(long)]
    pub offline: bool,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let cfg = ctx.engine.config();
    let valid = format!(
        "{}: valid ({} regions, {} targets)",
        cfg.path.display(),
        cfg.regions.len(),
        cfg.targets.len()
    );
    if args.offline {
        outln!("{valid}");
        return Ok(Verdict::Ok);
    }
    let checks = ctx.engine.reachability().await;
    let mut warnings = Vec::new();
    for t in cfg.targets.values() {
        if let Some(w) = ctx.engine.plaintext_secrets(t).await {
            warnings.push(w);
        }
    }
    match args.output {
        Output::Json => print_json(&serde_json::json!({
            "config": cfg.path,
            "checks": checks,
            "warnings": warnings,
        })),
        Output::Table => {
            outln!("{valid}");
            for w in &warnings {
                outln!("  WARNING: {w}");
            }
            for p in &checks {
                outln!(
                    "  {:<12} {:<24} {:<12} {}{}",
                    p.region,
                    p.what,
                    if p.reachable {
                        "reachable"
                    } else {
                        "UNREACHABLE"
                    },
                    p.address,
                    if p.reachable {
                        String::new()
                    } else {
                        format!(": {}", p.detail)
                    }
                );
            }
        }
    }
    Ok(if checks.iter().all(|p| p.reachable) {
        Verdict::Ok
    } else {
        Verdict::Failed(ErrorClass::Unreachable)
    })
}
