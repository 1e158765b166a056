//! `drtool schedule list|check|run|export`: the schedules of `schedules/*.toml`,
//! the foreground scheduler daemon, and CronJobs for a cluster to run them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use clap::ValueEnum;
use tokio::sync::mpsc;

use super::drill::beside_config;
use super::{Ctx, Exit};
use crate::config::Config;
use crate::engine::Verdict;
use crate::error::Error;
use crate::exit;
use crate::report::ReportStore;
use crate::schedule::daemon::{self, Control, DaemonOptions};
use crate::schedule::export::{self, ExportOptions};
use crate::schedule::metrics::{self, Metrics};
use crate::schedule::run::{ScheduleState, home_region};
use crate::schedule::{Schedule, spec};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Show each schedule's next runs in its time zone, with DST notes.
    List(ListArgs),
    /// Check the schedule files against the config, offline.
    Check(DirArgs),
    /// The scheduler daemon: run schedules when due, in the foreground.
    Run(RunArgs),
    /// Print the schedules as other schedulers' jobs (Kubernetes CronJobs).
    Export(ExportArgs),
}

#[derive(clap::Args, Debug)]
pub struct DirArgs {
    /// The schedules folder (default: schedules/ next to the config).
    #[arg(long, env = "DRTOOL_SCHEDULES")]
    pub schedules: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// How many next runs to show per schedule (1 to 1000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Run what is due now (missed since its last run, or never run), then exit.
    #[arg(long)]
    pub once: bool,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Log lines as text or one JSON object per line.
    #[arg(long, value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Where drill reports are read from for the drill metrics (default: reports/ next to the config).
    #[arg(long, env = "DRTOOL_REPORTS")]
    pub reports: Option<PathBuf>,
    /// The drills whose metrics exist from the first scrape (default:
    /// drills/ next to the config).
    #[arg(long, env = "DRTOOL_DRILLS")]
    pub drills: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Print Kubernetes CronJobs (the one format there is).
    #[arg(long, required = true)]
    pub kubernetes: bool,
    /// The container image with drtool in it.
    #[arg(long)]
    pub image: String,
    #[arg(long, default_value = "drtool")]
    pub namespace: String,
    /// The Secret holding drtool.toml (mounted at /etc/drtool/config).
    #[arg(long, default_value = "drtool-config")]
    pub config_secret: String,
    /// The ConfigMap holding the schedule files (mounted at /etc/drtool/schedules).
    #[arg(long, default_value = "drtool-schedules")]
    pub schedules_configmap: String,
    /// A Secret whose keys become environment variables (credentials, passwords).
    #[arg(long)]
    pub env_secret: Option<String>,
    #[arg(long)]
    pub service_account: Option<String>,
    #[arg(long, default_value = "250m")]
    pub cpu_request: String,
    #[arg(long, default_value = "256Mi")]
    pub memory_request: String,
    #[arg(long, default_value = "1Gi")]
    pub memory_limit: String,
}

/// The schedules folder of a command.
pub fn dir_of(ctx: &Ctx, dir: &DirArgs) -> PathBuf {
    dir.schedules
        .clone()
        .unwrap_or_else(|| beside_config(ctx, "schedules"))
}

/// Every schedule of the folder, checked against the config.
pub fn load(config: &Config, dir: &Path) -> Result<Vec<Schedule>, Error> {
    let schedules = spec::load_dir(dir, config).map_err(|e| Error::input(e.to_string()))?;
    if schedules.is_empty() {
        return Err(Error::input(format!(
            "{} holds no schedule files (*.toml): see schedules/ in the drtool repository for examples",
            dir.display()
        )));
    }
    Ok(schedules)
}

pub async fn run(ctx: &Ctx, cmd: &Command) -> Result<Exit, Error> {
    match cmd {
        Command::List(a) => list(ctx, a).await.map(Exit::from),
        Command::Check(a) => {
            let dir = dir_of(ctx, a);
            let schedules = load(ctx.engine.config(), &dir)?;
            ctx.emit(|e| {
                e.items(schedules.iter().map(|s| {
                    serde_json::json!({
                        "name": s.name, "file": s.file, "valid": true, "targets": s.targets,
                        "cron": s.cron.line, "timezone": s.timezone.name(),
                        "warnings": s.warnings,
                    })
                }))
            });
            for s in schedules.iter().filter(|_| !ctx.json()) {
                outln!(
                    "ok  {:<24} {}  ({} targets)",
                    s.name,
                    s.file.display(),
                    s.targets.len()
                );
                for w in &s.warnings {
                    outln!("    warning: {w}");
                }
            }
            Ok(Exit::from(Verdict::Ok))
        }
        Command::Run(a) => daemon(ctx, a).await,
        Command::Export(a) => {
            let schedules = load(ctx.engine.config(), &dir_of(ctx, &a.dir))?;
            let o = ExportOptions {
                image: a.image.clone(),
                namespace: a.namespace.clone(),
                config_secret: a.config_secret.clone(),
                schedules_configmap: a.schedules_configmap.clone(),
                env_secret: a.env_secret.clone(),
                service_account: a.service_account.clone(),
                cpu_request: a.cpu_request.clone(),
                memory_request: a.memory_request.clone(),
                memory_limit: a.memory_limit.clone(),
            };
            for w in export::warnings(&schedules, ctx.engine.config()) {
                errln!("warning: {w}");
            }
            if ctx.json() {
                // The same manifests, as JSON objects.
                ctx.emit(|e| e.items(schedules.iter().map(|s| export::cron_job(s, &o))));
            } else {
                let text = export::yaml(&schedules, &o).map_err(Error::failed)?;
                out!("{text}");
            }
            Ok(Exit::from(Verdict::Ok))
        }
    }
}

#[derive(serde::Serialize)]
struct Listed {
    name: String,
    file: PathBuf,
    cron: String,
    timezone: String,
    targets: Vec<String>,
    copy_to: Option<Vec<String>>,
    paused: bool,
    retention: String,
    /// RFC 3339 UTC.
    next_runs: Vec<chrono::DateTime<Utc>>,
    /// The same runs in the schedule's zone, for people.
    next_runs_local: Vec<String>,
    dst_notes: Vec<crate::schedule::cron::DstNote>,
    warnings: Vec<String>,
    last_run: Option<ScheduleState>,
}

async fn list(ctx: &Ctx, args: &ListArgs) -> Result<Verdict, Error> {
    let schedules = load(ctx.engine.config(), &dir_of(ctx, &args.dir))?;
    let now = Utc::now();
    let mut out = Vec::new();
    for s in &schedules {
        let runs = s.cron.next_runs(now, s.timezone, usize::from(args.count));
        let next: Vec<String> = runs
            .iter()
            .map(|t| t.format("%a %Y-%m-%d %H:%M %Z (UTC%:z)").to_string())
            .collect();
        let state = match home_region(&ctx.engine, s) {
            Ok(region) => tokio::time::timeout(
                std::time::Duration::from_secs(5),
                ctx.engine.schedule_state::<ScheduleState>(&region, &s.name),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .flatten(),
            Err(_) => None,
        };
        out.push(Listed {
            name: s.name.clone(),
            file: s.file.clone(),
            cron: s.cron.line.clone(),
            timezone: s.timezone.name().to_string(),
            targets: s.targets.clone(),
            copy_to: s.copy_to.clone(),
            paused: s.paused,
            retention: s.retention.describe(),
            next_runs: runs.iter().map(|t| t.with_timezone(&Utc)).collect(),
            next_runs_local: next,
            dst_notes: s
                .cron
                .dst_notes(now, now + chrono::Duration::days(366), s.timezone),
            warnings: s.warnings.clone(),
            last_run: state,
        });
    }
    if ctx.json() {
        ctx.emit(|e| e.items(&out));
        return Ok(Verdict::Ok);
    }
    for l in &out {
        outln!(
            "schedule {}{}  ({})",
            l.name,
            if l.paused { "  [PAUSED]" } else { "" },
            l.file.display()
        );
        outln!("  cron       {}  in {}", l.cron, l.timezone);
        outln!("  targets    {}", l.targets.join(", "));
        if let Some(c) = &l.copy_to {
            outln!("  copy to    {}", c.join(", "));
        }
        outln!("  retention  {}", l.retention);
        match &l.last_run {
            Some(st) => outln!(
                "  last run   {} ({})",
                st.last_run.map_or_else(
                    || "-".to_string(),
                    |t| t.format("%Y-%m-%d %H:%M UTC").to_string()
                ),
                st.last_outcome.map_or("-", verdict_word)
            ),
            None => outln!("  last run   none recorded"),
        }
        for (i, n) in l.next_runs_local.iter().enumerate() {
            outln!("  {:<10} {n}", if i == 0 { "next runs" } else { "" });
        }
        for d in &l.dst_notes {
            outln!("  DST        {}: {}", d.local, d.note);
        }
        for w in &l.warnings {
            outln!("  warning    {w}");
        }
    }
    Ok(Verdict::Ok)
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Partial => "partly failed",
        Verdict::Cancelled => "cancelled",
        Verdict::Failed(_) => "failed",
    }
}

async fn daemon(ctx: &Ctx, args: &RunArgs) -> Result<Exit, Error> {
    let dir = dir_of(ctx, &args.dir);
    let schedules = load(ctx.engine.config(), &dir)?;
    let engine = Arc::new(ctx.engine.child());
    let stop = ctx.engine.cancel_token();
    let reports = args
        .reports
        .clone()
        .unwrap_or_else(|| beside_config(ctx, "reports"));
    let metrics = Metrics::shared(
        Some(
            ReportStore::new(reports)
                .trusting(ctx.engine.trusted_keys(), ctx.engine.signatures_expected()),
        ),
        engine.clone(),
    );
    let drills = args
        .drills
        .clone()
        .unwrap_or_else(|| beside_config(ctx, "drills"));
    metrics.set_drills(drill_names(ctx, &drills));
    if let Some(addr) = args.metrics_addr {
        let bound = metrics::serve(addr, metrics.clone(), stop.clone())
            .await
            .map_err(|e| Error::input(format!("cannot serve metrics on {addr}: {e}")))?;
        tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
    }
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(reloads(ctx.engine.config().clone(), dir, tx));
    let streams = (!args.once).then(|| {
        tokio::spawn(crate::schedule::streams::supervise(
            engine.clone(),
            stop.clone(),
            Some(metrics.clone()),
        ))
    });
    let failures = daemon::run(
        engine,
        schedules,
        rx,
        stop,
        DaemonOptions {
            once: args.once,
            metrics: Some(metrics),
        },
    )
    .await;
    if let Some(streams) = streams {
        let _ = streams.await;
    }
    // A stop by a signal exits with its code (130/143, as every command);
    // `--once` says how its runs went.
    Ok(Exit::Code(if args.once && failures > 0 {
        exit::FAILED
    } else {
        exit::OK
    }))
}

/// The names of the drills in `dir` that check against the config (the
/// others are said in the log and left out).
fn drill_names(ctx: &Ctx, dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if !p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            continue;
        }
        match crate::drill::spec::load(&p, ctx.engine.config(), ctx.engine.kinds()) {
            Ok(d) => names.push(d.name),
            Err(err) => tracing::warn!("drill left out of the metrics: {err}"),
        }
    }
    names.sort();
    names
}

/// Reloads the schedule files on every SIGHUP. The config is the one the
/// daemon started with: a changed config (new targets, regions) needs a restart.
async fn reloads(config: Config, dir: PathBuf, tx: mpsc::Sender<Control>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot watch SIGHUP: schedules are not reloaded until a restart");
        return;
    };
    while hup.recv().await.is_some() {
        let loaded = load(&config, &dir);
        match loaded {
            Ok(s) => {
                if tx.send(Control::Reload(s)).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::error!("SIGHUP: schedules not reloaded, the old ones stay: {e}"),
        }
    }
}
