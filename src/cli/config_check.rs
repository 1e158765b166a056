//! `drtool config check`: validate the config and probe every endpoint.

use super::Ctx;
use crate::engine::Verdict;
use crate::error::{Error, ErrorClass};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only validate the file; do not contact anything.
    #[arg(long)]
    pub offline: bool,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let cfg = ctx.engine.config();
    let valid = format!(
        "{}: valid ({} regions, {} targets)",
        cfg.path.display(),
        cfg.regions.len(),
        cfg.targets.len()
    );
    // A signing key that cannot sign would fail every backup: say it now.
    if let Err(e) = ctx.engine.signer() {
        return Err(e.noted("every backup would fail until [signing] names a key that loads"));
    }
    ctx.emit(|e| {
        e.field("config", &cfg.path);
        e.field("regions", cfg.regions.len());
        e.field("targets", cfg.targets.len());
        e.field("offline", args.offline);
    });
    if args.offline {
        if !ctx.json() {
            outln!("{valid}");
        }
        return Ok(Verdict::Ok);
    }
    let checks = ctx.engine.reachability().await;
    let mut warnings = Vec::new();
    for t in cfg.targets.values() {
        if let Some(w) = ctx.engine.plaintext_secrets(t).await {
            warnings.push(w);
        }
    }
    if ctx.json() {
        ctx.emit(|e| {
            for p in checks.iter().filter(|p| !p.reachable) {
                let mut about = serde_json::Map::new();
                about.insert("region".into(), serde_json::json!(p.region));
                about.insert("what".into(), serde_json::json!(p.what));
                let class = if p.misconfigured {
                    ErrorClass::BadInput
                } else {
                    ErrorClass::Unreachable
                };
                e.error(class, &p.detail, about);
            }
            e.items(&checks);
            e.field("warnings", &warnings);
        });
    } else {
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
