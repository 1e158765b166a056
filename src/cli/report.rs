//! `drtool report list|show|history|note`: the reports drills wrote.

use std::path::PathBuf;

use super::drill::beside_config;
use super::{Ctx, Output, print_json};
use crate::engine::Verdict;
use crate::error::Error;
use crate::report::store::trend;
use crate::report::{ReportStore, human_ms, junit, markdown, opt_ms};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Every drill run, oldest first.
    List(ListArgs),
    /// One run's report, rendered for the terminal (or as JSON / JUnit / HTML).
    Show(ShowArgs),
    /// RTO and RPO of a drill's last runs, with the trend.
    History(HistoryArgs),
    /// Add an operator's note (problems seen, improvements) to a run's report.
    Note(NoteArgs),
    /// Print the JSON Schema of report.json.
    Schema,
}

#[derive(clap::Args, Debug)]
pub struct Where {
    /// The reports folder (default: reports/ next to the config).
    #[arg(long, env = "DRTOOL_REPORTS")]
    pub reports: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub at: Where,
    /// Only this drill's runs.
    #[arg(long)]
    pub drill: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Junit,
    Html,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub at: Where,
    pub run: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub at: Where,
    pub drill: String,
    /// How many of the newest runs.
    #[arg(long, default_value_t = 10)]
    pub last: usize,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

#[derive(clap::Args, Debug)]
pub struct NoteArgs {
    #[command(flatten)]
    pub at: Where,
    pub run: String,
    pub text: String,
}

fn store(ctx: &Ctx, at: &Where) -> ReportStore {
    ReportStore::new(
        at.reports
            .clone()
            .unwrap_or_else(|| beside_config(ctx, "reports")),
    )
}

pub fn run(ctx: &Ctx, cmd: &Command) -> Result<Verdict, Error> {
    match cmd {
        Command::List(a) => {
            let runs = store(ctx, &a.at).list(a.drill.as_deref())?;
            match a.output {
                Output::Json => print_json(&runs),
                Output::Table => {
                    if runs.is_empty() {
                        println!("no drill reports yet");
                    }
                    for r in &runs {
                        println!(
                            "{:<26} {:<28} {:<18} RTO {:<9} RPO {:<9} {}",
                            r.run_id,
                            r.drill,
                            r.verdict.label(),
                            opt_ms(r.rto_ms),
                            opt_ms(r.rpo_ms),
                            r.started_at.format("%Y-%m-%d %H:%M UTC")
                        );
                    }
                }
            }
            Ok(Verdict::Ok)
        }
        Command::Show(a) => {
            let r = store(ctx, &a.at).load(&a.run)?;
            match a.format {
                Format::Text => print!("{}", markdown::render(&r)),
                Format::Json => print_json(&r),
                Format::Junit => print!("{}", junit::render(&r)),
                Format::Html => print!("{}", crate::report::html::render(&r)),
            }
            Ok(Verdict::Ok)
        }
        Command::History(a) => {
            let runs = store(ctx, &a.at).list(Some(&a.drill))?;
            let newest: Vec<_> = runs.iter().rev().take(a.last).rev().collect();
            if newest.is_empty() {
                return Err(Error::input(format!(
                    "no reports of drill {:?} yet",
                    a.drill
                )));
            }
            let rtos: Vec<u64> = newest.iter().filter_map(|r| r.rto_ms).collect();
            let rpos: Vec<u64> = newest.iter().filter_map(|r| r.rpo_ms).collect();
            match a.output {
                Output::Json => print_json(&serde_json::json!({
                    "drill": a.drill, "runs": newest, "rto_trend": trend(&rtos), "rpo_trend": trend(&rpos),
                })),
                Output::Table => {
                    println!("drill {}: the last {} runs", a.drill, newest.len());
                    for r in &newest {
                        println!(
                            "  {:<26} {:<18} RTO {:<9} RPO {:<9} (objectives {} / {})",
                            r.run_id,
                            r.verdict.label(),
                            opt_ms(r.rto_ms),
                            opt_ms(r.rpo_ms),
                            human_ms(r.objectives.0),
                            human_ms(r.objectives.1)
                        );
                    }
                    println!("  RTO trend: {}; RPO trend: {}", trend(&rtos), trend(&rpos));
                }
            }
            Ok(Verdict::Ok)
        }
        Command::Schema => {
            print_json(&crate::report::schema());
            Ok(Verdict::Ok)
        }
        Command::Note(a) => {
            let r = store(ctx, &a.at).note(&a.run, &a.text)?;
            println!("note added to {} ({} notes)", r.run_id, r.notes.len());
            Ok(Verdict::Ok)
        }
    }
}
