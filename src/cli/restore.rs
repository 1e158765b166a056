//! `drtool restore --region R --target T`: plan, show, confirm, execute.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use super::{
    EXIT_OK, Output, identities, jobs, known_region, known_target, print_results, results_code,
};
use crate::archive::PointId;
use crate::catalog::parse_time;
use crate::config::Config;
use crate::engine::restore::{RestoreRequest, execute_restore, plan_restore};
use crate::error::Error;
use crate::source::etcd::Existing;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The region to restore in: only its store and endpoints are used.
    #[arg(long, short = 'r')]
    pub region: String,
    #[arg(long, short = 't')]
    pub target: String,
    /// The point to restore (default: the newest).
    #[arg(long, conflicts_with = "before")]
    pub point: Option<PointId>,
    /// The newest point finished before this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    pub before: Option<String>,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Confirm a destructive plan without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// age identity file for encrypted points.
    #[arg(long, env = "DRTOOL_AGE_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Keys points: restore only keys under this prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// What to do with what already exists: etcd keys (skip, overwrite, fail);
    /// a non-empty database for a dump (overwrite drops and replaces it).
    #[arg(long, value_enum, default_value = "fail")]
    pub existing: Existing,
    /// RDS dump points: restore into this database (created if missing).
    #[arg(long)]
    pub database: Option<String>,
    /// RDS points: restore the dump even where a snapshot copy exists.
    #[arg(long)]
    pub from_dump: bool,
    /// RDS: restore a new instance to this time from RDS's automated backups in
    /// the region (RFC 3339 or YYYY-MM-DD, UTC), instead of from a point.
    #[arg(long, conflicts_with_all = ["point", "before", "from_dump"])]
    pub pitr: Option<String>,
    /// Kubernetes: restore namespace OLD into NEW (OLD=NEW).
    #[arg(long, value_parser = parse_mapping)]
    pub namespace_map: Option<(String, String)>,
    /// Kubernetes: only these resources (plural or plural.group; repeatable, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub include: Vec<String>,
    /// Kubernetes: never these resources.
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(cfg: &Config, args: &Args) -> Result<u8, Error> {
    known_region(cfg, &args.region)?;
    known_target(cfg, &args.target)?;
    let req = RestoreRequest {
        region: args.region.clone(),
        target: args.target.clone(),
        point: args.point.clone(),
        before: args.before.as_deref().map(parse_time).transpose()?,
        prefix: args.prefix.clone(),
        existing: args.existing,
        database: args.database.clone(),
        from_dump: args.from_dump,
        pitr: args.pitr.as_deref().map(parse_time).transpose()?,
        namespace_map: args.namespace_map.clone(),
        include: args.include.clone(),
        exclude: args.exclude.clone(),
    };
    let ids = identities(args.identity.as_ref())?;
    let jobs = jobs();
    let plan = plan_restore(cfg, &req, ids.clone(), &jobs).await?;
    let json = args.output == Output::Json;
    if !json {
        for line in plan.describe() {
            println!("{line}");
        }
    }
    if args.dry_run {
        if json {
            print_json(&serde_json::json!({ "plan": plan, "dry_run": true }));
        } else {
            println!("dry run: nothing was changed");
        }
        return Ok(EXIT_OK);
    }
    if plan.destructive && !args.yes {
        confirm(&plan.target)?;
    }
    let results = execute_restore(cfg, &plan, ids, &jobs).await;
    if json {
        // One JSON document holding both the plan and what came of it.
        print_json(&serde_json::json!({ "plan": plan, "results": results }));
        return Ok(results_code(&results));
    }
    Ok(print_results(&results, args.output))
}

fn parse_mapping(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
        _ => Err(format!("{s:?} is not OLD=NEW")),
    }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Asks on the terminal; refuses when there is none.
fn confirm(target: &str) -> Result<(), Error> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::NotConfirmed(
            "this plan replaces or overwrites existing data and there is no terminal to confirm on: \
             re-run with --yes after reading the plan"
                .into(),
        ));
    }
    eprint!(
        "This plan replaces or overwrites existing data. Type the target name ({target}) to go on: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::failed(format!("cannot read the answer: {e}")))?;
    if answer.trim() == target {
        Ok(())
    } else {
        Err(Error::NotConfirmed(
            "not confirmed: nothing was changed".into(),
        ))
    }
}
