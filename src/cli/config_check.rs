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
                    match (p.reachable, p.misconfigured) {
                        (true, _) => "reachable",
                        (false, true) => "MISCONFIGURED",
                        (false, false) => "UNREACHABLE",
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
    // A store that answered but cannot do what the config asks is a config
    // problem (exit 2), not an outage (exit 4).
    Ok(if checks.iter().all(|p| p.reachable) {
        Verdict::Ok
    } else if checks.iter().any(|p| !p.reachable && !p.misconfigured) {
        Verdict::Failed(ErrorClass::Unreachable)
    } else {
        Verdict::Failed(ErrorClass::BadInput)
    })
}
