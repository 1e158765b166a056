//! `drtool drill run|validate|list`: failover drills from `drills/*.yaml`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{Ctx, Exit};
use crate::drill::runner::{
    self, DrillEvent, DrillEventKind, NotConfirmed, Operator, RunOptions, Unattended,
};
use crate::drill::spec::{self, Action, Drill, PointPick, Step};
use crate::engine::{Scope, Verdict};
use crate::error::{Error, ErrorClass};
use crate::report::{ReportStore, human_ms};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run a drill: inject its fault, restore, measure RTO and RPO, clean up, report.
    Run(RunArgs),
    /// Check drill files against the config without running anything.
    Validate(ValidateArgs),
    /// List the drills in the drills folder.
    List(ListArgs),
    /// Remove what a finished drill run left behind (canary markers in a
    /// region that was down when it ended), as its report names them.
    Cleanup(CleanupArgs),
}

#[derive(clap::Args, Debug)]
pub struct CleanupArgs {
    /// The run id (as `drtool report list` shows it).
    pub run: String,
    /// Where reports are (default: reports/ next to the config).
    #[arg(long, env = "DRTOOL_REPORTS")]
    pub reports: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The drill file (drills/NAME.yaml), or a drill's name.
    pub file: PathBuf,
    /// Restore in this region instead of the one each restore step names.
    #[arg(long, short = 'r')]
    pub region: Option<String>,
    /// Resolve everything and print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep what the drill made (restored copies, canary data).
    #[arg(long)]
    pub keep: bool,
    /// Confirm destructive restores and manual steps without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Run in the background, detached from this terminal (needs --yes):
    /// closing the terminal or the SSH session does not touch it. Prints its
    /// pid and log file and returns at once.
    #[arg(long, requires = "yes")]
    pub detach: bool,
    /// Where reports go (default: reports/ next to the config).
    #[arg(long, env = "DRTOOL_REPORTS")]
    pub reports: Option<PathBuf>,
    #[command(flatten)]
    pub drills: DrillsDir,
    /// Also write every drill event to FILE, one JSON object per line (what
    /// the dashboard shows live; its tests replay such a file).
    #[arg(long, value_name = "FILE")]
    pub drill_events: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Drill files, or drills' names (looked up in the drills folder).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub drills: DrillsDir,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub drills: DrillsDir,
}

/// `--drills DIR`, the same flag wherever drills are looked up (the
/// dashboard's too).
#[derive(clap::Args, Debug, Clone)]
pub struct DrillsDir {
    /// The drills folder (default: $DRTOOL_DRILLS, else drills/ next to the config).
    #[arg(
        long = "drills",
        visible_alias = "dir",
        env = "DRTOOL_DRILLS",
        value_name = "DIR"
    )]
    pub dir: Option<PathBuf>,
}

impl DrillsDir {
    fn path(&self, ctx: &Ctx) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| beside_config(ctx, "drills"))
    }
}

/// The folder next to the config named `name`.
pub fn beside_config(ctx: &Ctx, name: &str) -> PathBuf {
    ctx.engine
        .config()
        .path
        .parent()
        .unwrap_or(Path::new("."))
        .join(name)
}

/// A drill given as a file, a file's stem in the drills folder, or a drill's
/// `name:` there.
fn resolve_file(ctx: &Ctx, file: &Path, drills: &DrillsDir) -> Result<PathBuf, Error> {
    if file.exists() || file.extension().is_some() {
        return Ok(file.to_path_buf());
    }
    let dir = drills.path(ctx);
    let wanted = file.display().to_string();
    for ext in ["yaml", "yml"] {
        let by_stem = dir.join(format!("{wanted}.{ext}"));
        if by_stem.exists() {
            return Ok(by_stem);
        }
    }
    let named = drill_files(&dir).unwrap_or_default().into_iter().find(|f| {
        crate::drill::spec::load(f, ctx.engine.config(), ctx.engine.kinds())
            .is_ok_and(|d| d.name == wanted)
    });
    named.ok_or_else(|| {
        Error::input(format!(
            "no drill file {wanted} and no drill named {wanted:?} in {} (`drtool drill list --drills DIR` shows them)",
            dir.display()
        ))
    })
}

/// The `*.yaml` / `*.yml` files of a drills folder, sorted.
fn drill_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| {
            Error::input(format!(
                "cannot read the drills folder {}: {e}",
                dir.display()
            ))
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

pub async fn run(ctx: &Ctx, cmd: &Command) -> Result<Exit, Error> {
    match cmd {
        Command::Run(a) => run_drill(ctx, a).await,
        Command::Validate(a) => validate(ctx, a).map(Exit::from),
        Command::List(a) => list(ctx, a).map(Exit::from),
        Command::Cleanup(a) => cleanup(ctx, a).await.map(Exit::from),
    }
}

fn load(ctx: &Ctx, file: &Path) -> Result<Drill, Error> {
    spec::load(file, ctx.engine.config(), ctx.engine.kinds())
        .map_err(|e| Error::input(e.to_string()))
}

fn validate(ctx: &Ctx, args: &ValidateArgs) -> Result<Verdict, Error> {
    let mut bad = 0;
    for f in &args.files {
        match resolve_file(ctx, f, &args.drills).and_then(|file| load(ctx, &file)) {
            Ok(d) => {
                if !ctx.json() {
                    outln!(
                        "{}: valid ({} steps, {} probes, {} canaries)",
                        f.display(),
                        d.steps.len(),
                        d.probes.len(),
                        d.canaries.len()
                    );
                }
                ctx.emit(|e| {
                    e.items([serde_json::json!({
                        "file": f, "name": d.name, "valid": true, "steps": d.steps.len(),
                        "probes": d.probes.len(), "canaries": d.canaries.len(),
                    })])
                });
            }
            Err(err) => {
                bad += 1;
                errln!("error: {err}");
                ctx.emit(|e| {
                    let mut about = serde_json::Map::new();
                    about.insert("file".into(), serde_json::json!(f));
                    e.error(err.class(), &err.to_string(), about);
                    e.items([serde_json::json!({
                        "file": f, "valid": false, "error": err.to_string(),
                    })]);
                });
            }
        }
    }
    Ok(if bad == 0 {
        Verdict::Ok
    } else {
        Verdict::Failed(ErrorClass::BadInput)
    })
}

fn list(ctx: &Ctx, args: &ListArgs) -> Result<Verdict, Error> {
    let dir = args.drills.path(ctx);
    let files = drill_files(&dir)?;
    let mut rows = Vec::new();
    for f in &files {
        let row = match load(ctx, f) {
            Ok(d) => serde_json::json!({
                "file": f, "name": d.name, "valid": true,
                "rto_ms": d.rto.as_millis() as u64, "rpo_ms": d.rpo.as_millis() as u64,
                "hypothesis": d.hypothesis,
            }),
            Err(e) => serde_json::json!({ "file": f, "valid": false, "error": e.to_string() }),
        };
        rows.push(row);
    }
    if ctx.json() {
        ctx.emit(|e| {
            e.field("drills", &dir);
            e.items(&rows);
        });
    } else {
        if rows.is_empty() {
            outln!("no drills in {}", dir.display());
        }
        for r in &rows {
            if r["valid"] == true {
                outln!(
                    "{:<28} RTO {:<8} RPO {:<8} {}",
                    r["name"].as_str().unwrap_or(""),
                    human_ms(r["rto_ms"].as_u64().unwrap_or(0)),
                    human_ms(r["rpo_ms"].as_u64().unwrap_or(0)),
                    r["hypothesis"].as_str().unwrap_or("")
                );
            } else {
                outln!("INVALID  {}", r["error"].as_str().unwrap_or(""));
            }
        }
    }
    Ok(Verdict::Ok)
}

/// The dry run: every reference resolved, the points restores would use.
async fn dry_run(ctx: &Ctx, d: &Drill, args: &RunArgs) -> Result<(), Error> {
    let mut lines = Vec::new();
    lines.push(format!("drill {} ({})", d.name, d.file.display()));
    lines.push(format!("  hypothesis  {}", d.hypothesis));
    lines.push(format!(
        "  objectives  RTO {}, RPO {}",
        human_ms(d.rto.as_millis() as u64),
        human_ms(d.rpo.as_millis() as u64)
    ));
    for c in &d.canaries {
        lines.push(format!(
            "  canary      {:?} in {}: written in {} every {}, read back in {}",
            c.kind,
            c.target,
            c.write_region,
            human_ms(c.interval.as_millis() as u64),
            c.read_region
        ));
    }
    for p in &d.probes {
        lines.push(format!(
            "  probe       {} [{}] {} every {}, {} in a row",
            p.name,
            p.phase.name(),
            p.check.describe(),
            human_ms(p.interval.as_millis() as u64),
            p.success_threshold
        ));
    }
    let mut backed_up: Vec<String> = Vec::new();
    print_steps(ctx, d, &d.steps, args, &mut backed_up, "  ", &mut lines).await;
    let checked = runner::preflight(&ctx.engine, d, args.region.as_deref()).await;
    match &checked {
        Ok(said) => lines.push(format!("  pre-flight  {said}")),
        Err(e) => lines.push(format!("  pre-flight  FAILS: {e}")),
    }
    if ctx.json() {
        ctx.emit(|e| {
            e.field("dry_run", true);
            e.field("plan", &lines);
            e.items([serde_json::json!({
                "drill": d.name, "file": d.file, "rto_ms": d.rto.as_millis() as u64,
                "rpo_ms": d.rpo.as_millis() as u64, "preflight_ok": checked.is_ok(),
            })]);
        });
    } else {
        for l in &lines {
            outln!("{l}");
        }
        outln!("dry run: nothing was changed");
    }
    checked.map(|_| ())
}

async fn print_steps(
    ctx: &Ctx,
    d: &Drill,
    steps: &[Step],
    args: &RunArgs,
    backed_up: &mut Vec<String>,
    indent: &str,
    lines: &mut Vec<String>,
) {
    for s in steps {
        let what = match &s.action {
            Action::Backup(b) => {
                let targets = if b.targets.is_empty() {
                    d.targets.clone()
                } else {
                    b.targets.clone()
                };
                backed_up.extend(targets.iter().cloned());
                s.summary(d, args.region.as_deref())
            }
            // The newest point is looked up, so the dry run names it.
            Action::Restore(r) if r.point == PointPick::Latest => {
                let region = args.region.clone().unwrap_or_else(|| r.region.clone());
                let point = if backed_up.contains(&r.target) {
                    "the point this drill's backup makes".to_string()
                } else {
                    newest_point(ctx, &r.target, &region).await
                };
                format!("restore {} in {region} from {point}", r.target)
            }
            _ => s.summary(d, args.region.as_deref()),
        };
        lines.push(format!(
            "{indent}step {:<18} {what} (timeout {})",
            s.name,
            human_ms(s.timeout.as_millis() as u64)
        ));
        if let Action::Parallel { steps } = &s.action {
            Box::pin(print_steps(
                ctx,
                d,
                steps,
                args,
                backed_up,
                &format!("{indent}  "),
                lines,
            ))
            .await;
        }
    }
}

async fn newest_point(ctx: &Ctx, target: &str, region: &str) -> String {
    let listed = ctx
        .engine
        .points(&Scope {
            region: Some(region.to_string()),
            target: Some(target.to_string()),
        })
        .await;
    match listed {
        Ok(regions) => regions
            .iter()
            .flat_map(|r| &r.points)
            .max_by_key(|m| m.started_at)
            .map_or_else(
                || format!("no point yet: {region} holds none of {target}"),
                |m| {
                    format!(
                        "point {} (finished {})",
                        m.point_id,
                        m.finished_at.to_rfc3339()
                    )
                },
            ),
        Err(e) => format!("(cannot list: {e})"),
    }
}

/// Asks on the terminal at manual steps.
struct Terminal;

#[async_trait]
impl Operator for Terminal {
    async fn confirm(&self, step: &str, instruction: &str) -> Result<(), NotConfirmed> {
        let gone = |reason: String| NotConfirmed::OperatorGone {
            step: step.to_string(),
            reason,
        };
        if !std::io::stdin().is_terminal() {
            return Err(NotConfirmed::NoOperator {
                step: step.to_string(),
            });
        }
        errln!("    MANUAL  {instruction}");
        errp!("    Press Enter when done, or type abort: ");
        let answer = tokio::task::spawn_blocking(|| {
            let mut s = String::new();
            std::io::stdin().read_line(&mut s).map(|_| s)
        })
        .await
        .map_err(|e| gone(e.to_string()))?
        .map_err(|e| gone(e.to_string()))?;
        // Nothing read (end of input: the terminal went away, or Ctrl-D) is
        // no confirmation.
        if answer.is_empty() {
            return Err(gone("the terminal closed before anyone answered".into()));
        }
        if answer.trim().eq_ignore_ascii_case("abort") {
            Err(NotConfirmed::Aborted {
                step: step.to_string(),
            })
        } else {
            Ok(())
        }
    }
}

async fn run_drill(ctx: &Ctx, args: &RunArgs) -> Result<Exit, Error> {
    let file = resolve_file(ctx, &args.file, &args.drills)?;
    let drill = load(ctx, &file)?;
    if let Some(r) = &args.region {
        ctx.engine.region(r)?;
    }
    if args.dry_run {
        dry_run(ctx, &drill, args).await?;
        return Ok(Exit::from(Verdict::Ok));
    }
    if args.detach {
        return detach(ctx, &drill, &file, args).map(Exit::from);
    }
    let (tx, rx) = broadcast::channel(1024);
    let recording = match &args.drill_events {
        Some(p) => Some(std::fs::File::create(p).map_err(|e| {
            Error::input(format!("cannot write drill events to {}: {e}", p.display()))
        })?),
        None => None,
    };
    let printer = tokio::spawn(print_events(rx, ctx.json() || ctx.quiet, recording));
    let operator: Arc<dyn Operator> = if args.yes {
        Arc::new(Unattended)
    } else {
        Arc::new(Terminal)
    };
    let opts = RunOptions {
        via: "drill run".into(),
        keep: args.keep,
        yes: args.yes,
        region: args.region.clone(),
        hold: None,
    };
    let dir = args
        .reports
        .clone()
        .unwrap_or_else(|| beside_config(ctx, "reports"));
    let store =
        ReportStore::new(dir).trusting(ctx.engine.trusted_keys(), ctx.engine.signatures_expected());
    // Signed and stored in the regions the drill names (and can still reach).
    let filed = crate::drill::run_and_file(&ctx.engine, &drill, opts, operator, tx, &store).await;
    let _ = printer.await;
    ctx.sync().await;
    let crate::drill::Filed {
        report,
        folder,
        uploaded,
    } = filed;
    let folder = folder?;
    if ctx.json() {
        ctx.emit(|e| {
            for m in &report.errors {
                e.error(ErrorClass::Failed, m, serde_json::Map::new());
            }
            e.field("folder", &folder);
            e.field("uploaded", &uploaded);
            e.items([&report]);
        });
    } else {
        for line in report.end_lines(&folder) {
            outln!("{line}");
        }
        for u in uploaded {
            outln!("  {u}");
        }
    }
    Ok(Exit::Drill(report.verdict))
}

/// Progress on stderr: steps, the fault, recovery, probes when they change.
async fn print_events(
    mut rx: broadcast::Receiver<DrillEvent>,
    quiet: bool,
    mut recording: Option<std::fs::File>,
) {
    use std::io::Write;
    let mut last: BTreeMap<String, bool> = BTreeMap::new();
    loop {
        let e = match rx.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Some(f) = recording.as_mut() {
            let mut line = serde_json::to_vec(&e).unwrap_or_default();
            line.push(b'\n');
            if f.write_all(&line).is_err() {
                recording = None;
            }
        }
        if quiet {
            continue;
        }
        let t = format!("{:>8}", human_ms(e.at_ms));
        match &e.kind {
            // The terminal operator asks it itself.
            DrillEventKind::Manual { .. } => {}
            DrillEventKind::Probe { sample } => {
                if last.insert(sample.probe.clone(), sample.ok) != Some(sample.ok) {
                    errln!("{t}  {}", runner::probe_line(sample));
                }
            }
            _ => {
                if let Some(line) = e.line() {
                    errln!("{t}  {line}");
                }
            }
        }
    }
}

fn reports_dir(ctx: &Ctx, given: Option<&PathBuf>) -> PathBuf {
    given
        .cloned()
        .unwrap_or_else(|| beside_config(ctx, "reports"))
}

/// Starts this drill again as a process of its own session (no controlling
/// terminal, stdin closed, output to a log file next to its reports).
fn detach(ctx: &Ctx, drill: &Drill, file: &Path, args: &RunArgs) -> Result<Verdict, Error> {
    use std::os::unix::process::CommandExt;
    let dir = reports_dir(ctx, args.reports.as_ref()).join(&drill.name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::input(format!("cannot create {}: {e}", dir.display())))?;
    let log = dir.join(format!(
        "detached-{}-{:08x}.log",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>()
    ));
    let out = std::fs::File::create(&log)
        .map_err(|e| Error::input(format!("cannot write {}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::failed(format!("cannot share {}: {e}", log.display())))?;
    let me = std::env::current_exe()
        .map_err(|e| Error::failed(format!("cannot find the drtool binary to start: {e}")))?;
    let mut cmd = std::process::Command::new(me);
    cmd.arg("--config")
        .arg(&ctx.engine.config().path)
        .args(["drill", "run"])
        .arg(file)
        .arg("--yes")
        .arg("--reports")
        .arg(reports_dir(ctx, args.reports.as_ref()));
    if let Some(r) = &args.region {
        cmd.args(["--region", r]);
    }
    if args.keep {
        cmd.arg("--keep");
    }
    if let Some(e) = &args.drill_events {
        cmd.arg("--drill-events").arg(e);
    }
    if let Some(e) = &ctx.events {
        cmd.arg("--events").arg(e);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // A session of its own: no terminal to lose, no SIGHUP from it.
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::failed(format!("cannot start the detached drill: {e}")))?;
    if ctx.json() {
        ctx.emit(|e| {
            e.items([serde_json::json!({
                "drill": drill.name, "pid": child.id(), "log": log, "reports": dir,
            })])
        });
        return Ok(Verdict::Ok);
    }
    outln!(
        "drill {} runs in the background: pid {}, log {}",
        drill.name,
        child.id(),
        log.display()
    );
    outln!(
        "  its report goes to {} (drtool report list --drill {}); stop it with kill -TERM {} (it rolls back first)",
        dir.display(),
        drill.name,
        child.id()
    );
    Ok(Verdict::Ok)
}

/// Removes the canary markers a run's report says were left behind.
async fn cleanup(ctx: &Ctx, args: &CleanupArgs) -> Result<Verdict, Error> {
    let store = ReportStore::new(reports_dir(ctx, args.reports.as_ref()));
    let report = store.load(&args.run)?;
    let places: Vec<&crate::report::CanaryPlace> = report
        .cleanup
        .iter()
        .filter(|c| c.left_behind || !c.ok)
        .filter_map(|c| c.canary.as_ref())
        .collect();
    if places.is_empty() {
        if !ctx.json() {
            outln!(
                "run {}: its report names nothing left behind",
                report.run_id
            );
        }
        return Ok(Verdict::Ok);
    }
    let mut failed = 0;
    let mut done = Vec::new();
    for p in &places {
        match ctx
            .engine
            .canary_clear(&p.target, &p.region, &report.run_id)
            .await
        {
            Ok(n) => {
                ctx.emit(|e| {
                    e.items([serde_json::json!({
                        "target": p.target, "region": p.region, "removed_markers": n,
                    })])
                });
                if !ctx.json() {
                    outln!("removed {n} canary markers of {} in {}", p.target, p.region);
                }
                done.push(format!(
                    "{n} canary markers of {} in {}",
                    p.target, p.region
                ));
            }
            Err(e) => {
                failed += 1;
                let mut about = serde_json::Map::new();
                about.insert("target".into(), serde_json::json!(p.target));
                about.insert("region".into(), serde_json::json!(p.region));
                let message = format!("canary markers not removed: {e}");
                ctx.emit(|env| env.error(e.class(), &message, about));
                if !ctx.json() {
                    outln!(
                        "NOT removed: canary markers of {} in {}: {e}",
                        p.target,
                        p.region
                    );
                }
            }
        }
    }
    if !done.is_empty() {
        let text = format!("drtool drill cleanup removed {}", done.join(", "));
        if let Err(e) = store.note(&report.run_id, &text, &crate::report::current_user()) {
            errln!("warning: the report could not record it: {e}");
        }
    }
    Ok(match failed {
        0 => Verdict::Ok,
        n if n == places.len() => Verdict::Failed(ErrorClass::Unreachable),
        _ => Verdict::Partial,
    })
}
