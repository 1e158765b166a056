//! `drtool backup`: back up targets, then copy them to their DR regions.

use std::collections::BTreeMap;

use super::{Ctx, Output, print_report};
use crate::engine::{BackupRequest, Verdict};
use crate::error::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Targets to back up (repeatable); all targets when omitted.
    #[arg(long = "target", short = 't')]
    pub targets: Vec<String>,
    /// Do not copy the new points to the targets' copy_to regions.
    #[arg(long)]
    pub no_copy: bool,
    /// Record this schedule name in the manifests.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Labels to record, as key=value (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("label {s:?} is not key=value"))
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Verdict, Error> {
    let req = BackupRequest {
        targets: args.targets.clone(),
        schedule: args.schedule.clone(),
        labels: args.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        no_copy: args.no_copy,
        copy_to: None,
    };
    let report = ctx.engine.backup(&req).await?;
    ctx.sync().await;
    Ok(print_report(&report, args.output))
}
