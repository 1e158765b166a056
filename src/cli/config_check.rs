//! `drtool config check`: validate the config and probe every endpoint.

use std::path::Path;

use super::{EXIT_OK, EXIT_UNREACHABLE, Output};
use crate::config::Config;
use crate::engine::probe::probe_all;
use crate::error::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only validate the file; do not contact anything.
    #[arg(long)]
    pub offline: bool,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(path: &Path, args: &Args) -> Result<u8, Error> {
    let cfg = Config::load(path)?;
    if args.offline {
        println!(
            "{}: valid ({} regions, {} targets)",
            path.display(),
            cfg.regions.len(),
            cfg.targets.len()
        );
        return Ok(EXIT_OK);
    }
    let probes = probe_all(&cfg).await;
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&probes).unwrap_or_default()
        ),
        Output::Table => {
            println!(
                "{}: valid ({} regions, {} targets)",
                path.display(),
                cfg.regions.len(),
                cfg.targets.len()
            );
            for p in &probes {
                println!(
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
    Ok(if probes.iter().all(|p| p.reachable) {
        EXIT_OK
    } else {
        EXIT_UNREACHABLE
    })
}
