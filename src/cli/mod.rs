//! The headless CLI: clap commands, one file per command. Commands print results
//! (stdout) and progress (stderr) and turn run results into exit codes; all work
//! is done by the engine.
//!
//! Exit codes: 0 ok; 1 failed; 2 bad input (config, arguments, unknown names);
//! 3 partial failure (some items failed, some succeeded); 4 a store or endpoint
//! was unreachable; 5 integrity (a checksum or decode check failed); 6 a
//! destructive plan was not confirmed.

mod backup;
mod config_check;
mod copy;
mod points;
mod progress;
mod restore;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::archive::pipeline::Identities;
use crate::config::Config;
use crate::engine::{ItemResult, Jobs, Outcome};
use crate::error::{Error, ErrorClass};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_PARTIAL: u8 = 3;
pub const EXIT_UNREACHABLE: u8 = 4;
pub const EXIT_INTEGRITY: u8 = 5;
pub const EXIT_NOT_CONFIRMED: u8 = 6;

#[derive(Parser, Debug)]
#[command(
    name = "drtool",
    version,
    about = "Disaster-recovery backups of etcd to S3, across regions",
    after_help = "Exit codes: 0 ok, 1 failed, 2 bad input, 3 partial failure, 4 unreachable, 5 integrity check failed, 6 not confirmed"
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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Back up targets into their home region and copy them to their DR regions.
    Backup(backup::Args),
    /// List recovery points per region.
    Points(points::Args),
    /// Restore a target from one region's store into that region (plan first).
    Restore(restore::Args),
    /// Copy existing points from one region to another.
    Copy(copy::Args),
    /// Download points and check their hashes and decoding.
    Verify(verify::Args),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the config and probe every store and endpoint.
    Check(config_check::Args),
}

/// Which regions and target a listing command looks at.
#[derive(clap::Args, Debug)]
pub struct Scope {
    /// Only this region; all regions when omitted.
    #[arg(long, short = 'r')]
    pub region: Option<String>,
    /// Only this target.
    #[arg(long, short = 't')]
    pub target: Option<String>,
}

impl Scope {
    /// Checks the names against the config.
    pub fn check(&self, cfg: &Config) -> Result<(), Error> {
        if let Some(t) = &self.target {
            known_target(cfg, t)?;
        }
        if let Some(r) = &self.region {
            known_region(cfg, r)?;
        }
        Ok(())
    }

    /// The regions in scope, in config order.
    pub fn regions<'c>(&self, cfg: &'c Config) -> Vec<&'c crate::config::Region> {
        cfg.regions
            .values()
            .filter(|r| self.region.as_ref().is_none_or(|name| name == &r.name))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Table,
    Json,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    // One TLS provider for every crate (AWS SDK and etcd both use aws-lc-rs).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let code = runtime.block_on(run(cli));
    ExitCode::from(code)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DRTOOL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> u8 {
    let result = match &cli.command {
        Command::Config(ConfigCommand::Check(a)) => config_check::run(&cli.config, a).await,
        other => match Config::load(&cli.config) {
            Err(e) => Err(e.into()),
            Ok(cfg) => match other {
                Command::Backup(a) => backup::run(&cfg, a).await,
                Command::Points(a) => points::run(&cfg, a).await,
                Command::Restore(a) => restore::run(&cfg, a).await,
                Command::Copy(a) => copy::run(&cfg, a).await,
                Command::Verify(a) => verify::run(&cfg, a).await,
                Command::Config(_) => Ok(EXIT_OK),
            },
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            class_code(e.class())
        }
    }
}

pub fn class_code(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::BadInput => EXIT_BAD_INPUT,
        ErrorClass::Unreachable => EXIT_UNREACHABLE,
        ErrorClass::Integrity => EXIT_INTEGRITY,
        ErrorClass::NotConfirmed => EXIT_NOT_CONFIRMED,
        ErrorClass::Failed => EXIT_FAILED,
    }
}

/// The exit code a list of results deserves.
pub fn results_code(results: &[ItemResult]) -> u8 {
    let failed: Vec<&ItemResult> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .collect();
    match failed.first() {
        None => EXIT_OK,
        Some(_) if failed.len() < results.len() => EXIT_PARTIAL,
        Some(first) => class_code(first.class.unwrap_or(ErrorClass::Failed)),
    }
}

/// Prints results as a table or JSON and returns the exit code.
pub fn print_results(results: &[ItemResult], output: Output) -> u8 {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(results).unwrap_or_default()
        ),
        Output::Table => {
            for r in results {
                let status = match r.outcome {
                    Outcome::Ok => "OK",
                    Outcome::Warning => "WARN",
                    Outcome::Failed => "FAILED",
                };
                println!(
                    "{status:<7} {:<8} {:<16} {:<12} {:<26} {}",
                    r.action,
                    r.target,
                    r.region,
                    r.point.as_deref().unwrap_or("-"),
                    r.message
                );
            }
        }
    }
    results_code(results)
}

/// The CLI's progress sink: bars on a terminal, log lines otherwise.
pub fn jobs() -> Jobs {
    Jobs::new(Arc::new(progress::CliProgress::new()))
}

/// Loads `--identity` if given.
pub fn identities(path: Option<&PathBuf>) -> Result<Option<Arc<Identities>>, Error> {
    path.map(|p| Identities::from_file(p).map(Arc::new))
        .transpose()
        .map_err(Error::from)
}

/// Checks that a region name exists in the config.
pub fn known_region(cfg: &Config, name: &str) -> Result<(), Error> {
    if cfg.regions.contains_key(name) {
        Ok(())
    } else {
        Err(Error::input(format!(
            "unknown region {name:?}: the config {} defines {}",
            cfg.path.display(),
            cfg.regions.keys().cloned().collect::<Vec<_>>().join(", ")
        )))
    }
}

/// Checks that a target name exists in the config.
pub fn known_target<'c>(cfg: &'c Config, name: &str) -> Result<&'c crate::config::Target, Error> {
    cfg.target(name).ok_or_else(|| {
        Error::input(format!(
            "unknown target {name:?}: the config {} defines {}",
            cfg.path.display(),
            cfg.targets.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })
}
