//! The headless CLI: clap commands, one file per command. A command parses its
//! arguments, calls the engine, renders the report (stdout) and maps its verdict
//! to an exit code; progress goes to stderr from a subscriber of the engine's
//! events. All work is done by the engine.
//!
//! Exit codes: 0 ok; 1 failed; 2 bad input (config, arguments, unknown names);
//! 3 partial failure (some items failed, some succeeded); 4 a store or endpoint
//! was unreachable; 5 integrity (a checksum or decode check failed); 6 a
//! destructive plan was not confirmed; 7 a drill missed its objectives; 8 a
//! drill failed; 9 a restore refused by its existing-policy; 129 SIGHUP; 130
//! cancelled by SIGINT (Ctrl-C); 143 cancelled by SIGTERM.

/// `println!` that never panics (see [`output`]).
macro_rules! outln {
    () => { $crate::cli::output::out(format_args!(""), true) };
    ($($t:tt)*) => { $crate::cli::output::out(format_args!($($t)*), true) };
}
/// `print!` that never panics.
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::output::out(format_args!($($t)*), false) };
}
/// `eprintln!` that never panics.
macro_rules! errln {
    ($($t:tt)*) => { $crate::cli::output::err(format_args!($($t)*), true) };
}
/// `eprint!` that never panics.
macro_rules! errp {
    ($($t:tt)*) => { $crate::cli::output::err(format_args!($($t)*), false) };
}

mod backup;
mod config_check;
mod consumers;
mod copy;
mod diff;
mod drill;
mod envelope;
mod extras;
mod flags;
mod gc;
mod init;
mod ls;
mod output;
mod points;
mod progress;
mod prune;
mod report;
mod restore;
mod restore_test;
mod schedule;
mod signals;
mod stream;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::archive::pipeline::Identities;
use crate::engine::{Engine, EngineOptions, RunReport, Scope, Verdict};
use crate::error::{Error, ErrorClass};

use crate::exit;
pub use crate::exit::{Exit, Signal};

#[derive(Parser, Debug)]
#[command(
    name = "drtool",
    version,
    about = "Disaster-recovery backups of etcd, Kubernetes namespaces and RDS to S3, across regions",
    after_help = "Exit codes: 0 ok, 1 failed, 2 bad input, 3 partial failure, 4 unreachable, 5 integrity check failed, 6 not confirmed, 7 drill objectives missed, 8 drill failed, 9 restore refused by --existing fail, 129 hung up (SIGHUP), 130 cancelled (Ctrl-C), 143 cancelled (SIGTERM); a cancellation wins, then an integrity failure anywhere, then partial"
)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        global = true,
        env = "DRTOOL_CONFIG",
        default_value = "drtool.toml"
    )]
    pub config: PathBuf,
    /// Also write every job event to FILE, one JSON object per line.
    #[arg(long, global = true, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// text for people; json for programs: one document on stdout whatever
    /// happens, errors included (docs/output.schema.json).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t)]
    pub output: Output,
    /// Only errors and the result on the terminal: no progress, no warnings.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More on stderr: -v what is done (info), -vv how (debug). DRTOOL_LOG
    /// overrides both.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The dashboard's options, for `drtool` alone (as `drtool ui` takes them).
    #[command(flatten)]
    pub ui: UiArgs,
    /// Without one, on a terminal, the dashboard opens (as `drtool ui`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Back up targets into their home region and copy them to their DR regions.
    Backup(backup::Args),
    /// List recovery points per region.
    Points(points::Args),
    /// List what a point holds (etcd keys, namespace objects) without restoring it.
    Ls(ls::Args),
    /// What differs between a point and another point or the live target (exit 1 when they differ).
    Diff(diff::Args),
    /// Restore a target from one region's store into that region (plan first).
    Restore(restore::Args),
    /// Copy existing points from one region to another.
    Copy(copy::Args),
    /// Download points and check their hashes and decoding.
    Verify(verify::Args),
    /// Remove what belongs to no recovery point (interrupted writes), after a plan.
    Gc(gc::Args),
    /// Apply the schedules' retention (and remove leftovers), after a plan.
    Prune(prune::Args),
    /// Restore a point into a scratch place, check it, remove it, record the result.
    RestoreTest(restore_test::Args),
    /// Schedules: list next runs, check, run the daemon, export CronJobs.
    #[command(subcommand)]
    Schedule(schedule::Command),
    /// Continuous streams: run one, show where every stream stands.
    #[command(subcommand)]
    Stream(stream::Command),
    /// Failover drills: run, validate, list.
    #[command(subcommand)]
    Drill(drill::Command),
    /// Drill reports: list, show, history, note.
    #[command(subcommand)]
    Report(report::Command),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The terminal dashboard: posture, points, drills, reports, schedules.
    Ui(UiArgs),
    /// Print a shell completion script: drtool completions bash > /etc/bash_completion.d/drtool
    Completions(extras::CompletionsArgs),
    /// Print the man page (roff): drtool man | man -l -
    Man(extras::ManArgs),
    /// Write a commented drtool.toml from what it can discover (buckets,
    /// etcd, kubeconfig contexts and namespaces, RDS instances), probe it all,
    /// and write it only when it reads back.
    Init(init::Args),
}

#[derive(clap::Args, Debug, Default, Clone)]
pub struct UiArgs {
    /// Hide and refuse every action that changes anything.
    #[arg(long)]
    pub read_only: bool,
    /// Key bindings overriding the defaults (TOML: `[keys] verify = "V"`;
    /// default: $DRTOOL_KEYMAP when set).
    #[arg(long, value_name = "FILE")]
    pub keymap: Option<PathBuf>,
    /// Where logs go while the dashboard is up
    /// (default: $XDG_STATE_HOME/drtool/ui.log, else ~/.local/state/drtool/ui.log).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// The drills folder (default: $DRTOOL_DRILLS, else drills/ next to the config).
    #[arg(long)]
    pub drills: Option<PathBuf>,
    /// The reports folder (default: $DRTOOL_REPORTS, else reports/ next to the config).
    #[arg(long)]
    pub reports: Option<PathBuf>,
    /// The schedules folder (default: $DRTOOL_SCHEDULES, else schedules/
    /// next to the config).
    #[arg(long)]
    pub schedules: Option<PathBuf>,
}

impl UiArgs {
    fn any(&self) -> bool {
        self.read_only
            || self.keymap.is_some()
            || self.log_file.is_some()
            || self.drills.is_some()
            || self.reports.is_some()
            || self.schedules.is_some()
    }

    /// These, with what `other` gives where these give nothing.
    fn or(self, other: &UiArgs) -> UiArgs {
        UiArgs {
            read_only: self.read_only || other.read_only,
            keymap: self.keymap.or_else(|| other.keymap.clone()),
            log_file: self.log_file.or_else(|| other.log_file.clone()),
            drills: self.drills.or_else(|| other.drills.clone()),
            reports: self.reports.or_else(|| other.reports.clone()),
            schedules: self.schedules.or_else(|| other.schedules.clone()),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the config and probe every store and endpoint.
    Check(config_check::Args),
}

/// A duration argument (`--grace`, `--older-than`): 24h, 7d, 30m.
pub(crate) fn parse_age(
    s: &str,
) -> Result<std::time::Duration, crate::config::duration::DurationError> {
    crate::config::duration::parse_bounded(
        s,
        std::time::Duration::ZERO,
        crate::config::duration::CENTURY,
    )
}

/// A `KEY=VALUE` argument that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not {form}")]
pub(crate) struct NotAPair {
    text: String,
    form: &'static str,
}

/// Splits a `KEY=VALUE` argument (`form` names it in errors, e.g.
/// `OLD=NEW`): the key is never empty, the value only if `empty_value`.
pub(crate) fn split_pair(
    s: &str,
    form: &'static str,
    empty_value: bool,
) -> Result<(String, String), NotAPair> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && (empty_value || !v.is_empty()) => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(NotAPair {
            text: s.to_string(),
            form,
        }),
    }
}

/// Which regions and target a listing command looks at.
#[derive(clap::Args, Debug)]
pub struct ScopeArgs {
    /// Only this region; all regions when omitted.
    #[arg(long, short = 'r')]
    pub region: Option<String>,
    /// Only this target.
    #[arg(long, short = 't')]
    pub target: Option<String>,
}

impl ScopeArgs {
    pub fn scope(&self) -> Scope {
        Scope {
            region: self.region.clone(),
            target: self.target.clone(),
        }
    }
}

/// What stdout carries (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Tables and sentences for people.
    #[default]
    #[value(alias = "table")]
    Text,
    /// One JSON document (see envelope.rs and docs/output.schema.json).
    Json,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() && envelope::wanted(&args) => {
            // A usage error, told as JSON since JSON was asked for.
            let text = e.render().to_string();
            errp!("{text}");
            let mut env = envelope::Envelope::default();
            let message = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            env.error(ErrorClass::BadInput, message, Default::default());
            print_json(&env.finish(envelope::kind(None), exit::BAD_INPUT));
            return ExitCode::from(exit::BAD_INPUT);
        }
        Err(e) => e.exit(),
    };
    match cli.command.take() {
        None => {
            use std::io::IsTerminal;
            if !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
                errln!(
                    "drtool: no command given and this is not a terminal, so no dashboard: see drtool --help"
                );
                return ExitCode::from(exit::BAD_INPUT);
            }
            cli.command = Some(Command::Ui(cli.ui.clone()));
        }
        Some(Command::Ui(a)) => cli.command = Some(Command::Ui(a.or(&cli.ui))),
        Some(_) if cli.ui.any() => {
            errln!(
                "error: --read-only, --keymap, --log-file, --drills, --reports and --schedules before the command are the dashboard's: put them after the command that takes them (drtool COMMAND --help)"
            );
            return ExitCode::from(exit::BAD_INPUT);
        }
        other => cli.command = other,
    }
    if let Err(e) = init_logging(&cli) {
        errln!("error: {e}");
        return ExitCode::from(exit::BAD_INPUT);
    }
    // One TLS provider for every crate (AWS SDK and etcd both use aws-lc-rs).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let code = runtime.block_on(run(cli));
    // Background work still winding down (a detached reader) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    ExitCode::from(code)
}

/// The dashboard's log file cannot be made or opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot {what} {} for the dashboard's log: {reason} (--log-file FILE picks another)",
    .path.display()
)]
struct LogFileError {
    what: &'static str,
    path: PathBuf,
    reason: String,
}

/// Logs go to stderr; the daemon logs what it does (info), as text or JSON
/// lines; every other command only warnings. `DRTOOL_LOG` overrides the level.
/// The dashboard logs (info) to a file, since it owns the terminal.
fn init_logging(cli: &Cli) -> Result<(), LogFileError> {
    let daemon = match &cli.command {
        Some(Command::Schedule(schedule::Command::Run(a))) => Some(a.log_format),
        _ => None,
    };
    if let Some(Command::Ui(a)) = &cli.command {
        let path = a.log_file.clone().unwrap_or_else(default_ui_log);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LogFileError {
                what: "create",
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| LogFileError {
                what: "open",
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let filter =
            tracing_subscriber::EnvFilter::try_from_env("DRTOOL_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(format!("info,{QUIET_LIBRARIES}"))
            });
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
        return Ok(());
    }
    // The AWS SDK's own warnings (a part-level checksum it cannot check, a
    // retry) are for its developers, not for the operator's output.
    let level = match (cli.quiet, cli.verbose, daemon.is_some()) {
        (true, _, _) => "error",
        (false, 0, false) => "warn",
        (false, 0, true) | (false, 1, _) => "info",
        _ => "debug",
    };
    let default = format!("{level},{QUIET_LIBRARIES}");
    let filter = tracing_subscriber::EnvFilter::try_from_env("DRTOOL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal, and never with NO_COLOR (no-color.org).
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match daemon {
        Some(schedule::LogFormat::Json) => builder
            .json()
            .flatten_event(true)
            .with_target(false)
            .try_init(),
        _ => builder.try_init(),
    };
    Ok(())
}

/// Libraries whose warnings do not reach the operator (DRTOOL_LOG overrides);
/// a target is matched by its start, so `aws_sdk` is every AWS SDK crate.
const QUIET_LIBRARIES: &str =
    "aws_sdk=error,aws_smithy_runtime=error,aws_config=error,aws_smithy_http_client=error";

fn default_ui_log() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    state.join("drtool").join("ui.log")
}

/// What every command gets: the engine and the progress display.
pub struct Ctx {
    pub engine: Engine,
    pub progress: consumers::Consumer,
    /// `--events FILE`, for a command that starts another drtool.
    pub events: Option<PathBuf>,
    /// `-o`: with json, commands hand their records to `envelope` instead
    /// of printing; it is printed once the exit code is known.
    pub output: Output,
    /// `--quiet`: no progress and no notes on stderr.
    pub quiet: bool,
    pub envelope: std::sync::Mutex<envelope::Envelope>,
}

impl Ctx {
    /// Whether stdout is JSON (`-o json`).
    pub fn json(&self) -> bool {
        self.output == Output::Json
    }

    /// Hands something to the JSON envelope (no-op for text).
    pub fn emit(&self, f: impl FnOnce(&mut envelope::Envelope)) {
        if self.json() {
            let mut e = self.envelope.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut e);
        }
    }

    /// A run report: its table, or its items in the envelope; its verdict.
    pub fn report(&self, report: &RunReport) -> Verdict {
        if self.json() {
            self.emit(|e| e.report(report));
        } else {
            print_report_table(report);
        }
        report.verdict()
    }

    /// A dry run's plan: the items (`PLAN` or `FAILED` with why the real run
    /// would fail), `dry_run: true` in JSON, and a last line saying nothing
    /// was written.
    pub fn planned(&self, report: &RunReport) -> Verdict {
        if self.json() {
            self.emit(|e| {
                e.report(report);
                e.field("dry_run", true);
            });
        } else {
            print_report_table(report);
            outln!("dry run: nothing was written");
        }
        report.verdict()
    }

    /// Waits until every event sent so far is on the screen, so what the
    /// command prints next comes after it.
    pub async fn sync(&self) {
        self.progress.sync().await;
    }
}

async fn run(cli: Cli) -> u8 {
    let Some(command) = &cli.command else {
        return exit::BAD_INPUT;
    };
    let identity = match command {
        Command::Restore(a) => a.identity.clone(),
        Command::Verify(a) => a.identity.clone(),
        Command::Ls(a) => a.identity.clone(),
        Command::Diff(a) => a.identity.clone(),
        _ => None,
    };
    let json = cli.output == Output::Json;
    let kind = envelope::kind(Some(command));
    match command {
        Command::Completions(a) => return extras::completions(a),
        Command::Man(a) => return extras::man(a),
        Command::Init(a) => return init::run(&cli.config, cli.output, a).await,
        _ => {}
    }
    let engine = match build_engine(&cli, identity.as_ref()) {
        Ok(e) => e,
        Err(e) => return failed_early(json, kind, e.class(), &e),
    };
    if let Command::Ui(a) = command {
        return ui(engine, &cli, a).await;
    }
    // The daemon says it in its log (which may be JSON lines).
    let as_log = matches!(command, Command::Schedule(schedule::Command::Run(_)));
    // The daemon reloads its schedules on SIGHUP; every other command takes it
    // as "the terminal went away": stop cleanly.
    let signal = signals::watch(engine.cancel_token(), as_log, !as_log);
    let events = match &cli.events {
        None => None,
        Some(path) => match consumers::events_file(path, engine.subscribe()).await {
            Ok(c) => Some(c),
            Err(e) => return failed_early(json, kind, ErrorClass::BadInput, &e),
        },
    };
    // The daemon logs instead of drawing progress.
    let progress = match command {
        Command::Schedule(schedule::Command::Run(_)) => {
            consumers::Consumer::start(engine.subscribe(), consumers::LogLines)
        }
        _ if cli.quiet => consumers::Consumer::start(engine.subscribe(), consumers::Silent),
        _ => consumers::Consumer::start(engine.subscribe(), progress::Display::new()),
    };
    let ctx = Ctx {
        progress,
        engine,
        events: cli.events.clone(),
        output: cli.output,
        quiet: cli.quiet,
        envelope: std::sync::Mutex::new(envelope::Envelope::default()),
    };
    let result = dispatch(&ctx, command).await;
    let Ctx {
        engine,
        progress,
        envelope,
        ..
    } = ctx;
    progress.stop().await;
    if let Some(events) = events {
        events.stop().await;
    }
    drop(engine);
    let mut envelope = envelope.into_inner().unwrap_or_else(|e| e.into_inner());
    let code = match result {
        Ok(exit) => exit::code(exit, signal.received()),
        Err(e) => {
            errln!("error: {e}");
            envelope.error(e.class(), &e.to_string(), Default::default());
            exit::of_verdict(Verdict::Failed(e.class()), signal.received())
        }
    };
    if json {
        if let Some(s) = signal.received() {
            envelope.error(
                ErrorClass::Cancelled,
                &format!("stopped: {}", s.name()),
                Default::default(),
            );
        }
        envelope.print(kind, code);
    }
    with_output_checked(code)
}

/// The error of a command that failed before it ran (no engine, no events
/// file): said on stderr, and as the envelope with `-o json`.
fn failed_early(json: bool, kind: &str, class: ErrorClass, e: &impl std::fmt::Display) -> u8 {
    errln!("error: {e}");
    let code = exit::of_class(class);
    if json {
        let mut env = envelope::Envelope::default();
        env.error(class, &e.to_string(), Default::default());
        print_json(&env.finish(kind, code));
    }
    code
}

/// Runs the command on its context.
async fn dispatch(ctx: &Ctx, command: &Command) -> Result<Exit, Error> {
    match command {
        Command::Ui(_) | Command::Completions(_) | Command::Man(_) | Command::Init(_) => {
            Ok(Exit::Code(exit::OK))
        }
        Command::Config(ConfigCommand::Check(a)) => config_check::run(ctx, a).await.map(Exit::from),
        Command::Backup(a) => backup::run(ctx, a).await.map(Exit::from),
        Command::Points(a) => points::run(ctx, a).await.map(Exit::from),
        Command::Ls(a) => ls::run(ctx, a).await.map(Exit::from),
        Command::Diff(a) => diff::run(ctx, a).await,
        Command::Restore(a) => restore::run(ctx, a).await.map(Exit::from),
        Command::Copy(a) => copy::run(ctx, a).await.map(Exit::from),
        Command::Verify(a) => verify::run(ctx, a).await.map(Exit::from),
        Command::Gc(a) => gc::run(ctx, a).await.map(Exit::from),
        Command::Prune(a) => prune::run(ctx, a).await.map(Exit::from),
        Command::RestoreTest(a) => restore_test::run(ctx, a).await.map(Exit::from),
        Command::Schedule(c) => schedule::run(ctx, c).await,
        Command::Stream(c) => stream::run(ctx, c).await.map(Exit::from),
        Command::Drill(c) => drill::run(ctx, c).await,
        Command::Report(c) => report::run(ctx, c).await.map(Exit::from),
    }
}

/// The exit code once stdout is known to have taken everything: a reader
/// that stopped reading (`| head`) is no failure; any other write error is.
fn with_output_checked(code: u8) -> u8 {
    match output::stdout_failure() {
        None | Some(std::io::ErrorKind::BrokenPipe) => code,
        Some(kind) => {
            errln!("error: could not write the output to stdout ({kind}): it is incomplete");
            if code == exit::OK { exit::FAILED } else { code }
        }
    }
}

/// The dashboard, on the engine; its folders default to next to the config.
async fn ui(engine: Engine, cli: &Cli, a: &UiArgs) -> u8 {
    let beside = |name: &str| {
        cli.config
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(name)
    };
    let opts = crate::tui::Options {
        read_only: a.read_only,
        // `drtool` alone gets the environment's defaults too.
        keymap: a
            .keymap
            .clone()
            .or_else(|| std::env::var_os("DRTOOL_KEYMAP").map(PathBuf::from)),
        // The same defaults as `drill run` and `report`: the flag, else the
        // environment, else next to the config.
        drills: a
            .drills
            .clone()
            .or_else(|| std::env::var_os("DRTOOL_DRILLS").map(PathBuf::from))
            .unwrap_or_else(|| beside("drills")),
        reports: a
            .reports
            .clone()
            .or_else(|| std::env::var_os("DRTOOL_REPORTS").map(PathBuf::from))
            .unwrap_or_else(|| beside("reports")),
        schedules: a
            .schedules
            .clone()
            .or_else(|| std::env::var_os("DRTOOL_SCHEDULES").map(PathBuf::from))
            .unwrap_or_else(|| beside("schedules")),
        log_file: Some(a.log_file.clone().unwrap_or_else(default_ui_log)),
    };
    match crate::tui::run(engine, opts).await {
        Ok(code) => code,
        Err(e) => {
            errln!("error: {e}");
            exit::of_class(e.class())
        }
    }
}

/// The engine of a command: the config (a `config check --offline` needs no
/// more than that) and the age identity of `--identity`.
fn build_engine(cli: &Cli, identity: Option<&PathBuf>) -> Result<Engine, Error> {
    let cfg = crate::source::load_config(&cli.config)?;
    let identities = identity
        .map(|p| Identities::from_file(p).map(Arc::new))
        .transpose()?;
    Engine::new(cfg, crate::source::registry(), EngineOptions { identities })
}

/// A run report as a table.
fn print_report_table(report: &RunReport) {
    for r in &report.items {
        outln!(
            "{:<7} {:<8} {:<16} {:<12} {:<26} {}",
            r.outcome.label(),
            r.operation,
            r.target,
            r.region,
            r.point.as_deref().unwrap_or("-"),
            r.message
        );
    }
}

/// Asks on the terminal to type `word` (described as `asked`) after `what`
/// was shown; refuses when there is no terminal. Ctrl-C while asking cancels
/// the run.
pub async fn confirm(ctx: &Ctx, what: &str, asked: &str, word: &str) -> Result<(), Error> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Error::NotConfirmed(format!(
            "{} and there is no terminal to confirm on: re-run with --yes after reading the plan",
            what.to_lowercase()
        )));
    }
    errp!("{what}. Type {asked} to go on: ");
    let _ = std::io::stderr().flush();
    let read = tokio::task::spawn_blocking(|| {
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map(|_| answer)
    });
    let cancel = ctx.engine.cancel_token();
    let answer = tokio::select! {
        a = read => a
            .map_err(|e| Error::failed(format!("cannot read the answer: {e}")))?
            .map_err(|e| Error::failed(format!("cannot read the answer: {e}")))?,
        _ = cancel.cancelled() => {
            return Err(Error::cancelled("not confirmed: nothing was changed"));
        }
    };
    if answer.trim() == word {
        Ok(())
    } else {
        Err(Error::NotConfirmed(
            "not confirmed: nothing was changed".into(),
        ))
    }
}

pub fn print_json(value: &impl serde::Serialize) {
    // Our own plain-data types always serialize.
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        // Flags built at run time (the kinds' `drtool init` flags) included:
        // no two flags share a name, every value parser fits its type.
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn a_kinds_restore_flags_parse_as_declared() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "drtool",
            "restore",
            "-r",
            "west",
            "-t",
            "shop",
            "--include",
            "a,b",
            "--include",
            "c",
            "--from-dump",
            "--namespace-map",
            "x=y",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Some(Command::Restore(args)) = cli.command else {
            panic!("a restore")
        };
        let v = &args.kinds.values;
        assert_eq!(v.values("include"), ["a", "b", "c"]);
        assert!(v.on("from-dump") && !v.on("exclude"));
        assert_eq!(v.value("namespace-map"), Some("x=y"));
        let twice = Cli::try_parse_from([
            "drtool", "restore", "-r", "w", "-t", "t", "--prefix", "/a", "--prefix", "/b",
        ]);
        assert!(twice.is_err(), "a flag given once is refused twice");
    }

    #[test]
    fn pairs_need_a_key_and_a_value_unless_told() {
        let ok = |k: &str, v: &str| Ok((k.to_string(), v.to_string()));
        assert_eq!(split_pair("a=b=c", "OLD=NEW", false), ok("a", "b=c"));
        assert_eq!(split_pair("team=", "key=value", true), ok("team", ""));
        for bad in ["team=", "=x", "x", ""] {
            assert_eq!(
                split_pair(bad, "OLD=NEW", false),
                Err(NotAPair {
                    text: bad.to_string(),
                    form: "OLD=NEW",
                })
            );
        }
    }
}
