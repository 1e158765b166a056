//! `drtool report list|show|history|note|verify`: the reports drills wrote.
//! Every report is checked against its seal and signature where it is
//! read: an edited or unverifiable one is marked, and never trended.

use std::path::PathBuf;

use super::drill::beside_config;
use super::{Ctx, print_json};
use crate::engine::Verdict;
use crate::error::{Error, ErrorClass};
use crate::report::integrity::{Integrity, Pages};
use crate::report::store::trend;
use crate::report::{ReportStore, RunEntry, human_ms, junit, markdown, opt_ms};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Every drill run, oldest first.
    List(ListArgs),
    /// One run's report, rendered for the terminal (or as JSON / JUnit / HTML).
    Show(ShowArgs),
    /// RTO and RPO of a drill's last runs, with the trend.
    History(HistoryArgs),
    /// Add an operator's note (problems seen, improvements) to a run's report,
    /// here and in every region that holds a copy.
    Note(NoteArgs),
    /// Check that a report is what the drill wrote: its hash chain, its
    /// measures, its signature and its rendered pages (exit 5 on any edit).
    Verify(VerifyArgs),
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
}

#[derive(clap::Args, Debug)]
pub struct NoteArgs {
    #[command(flatten)]
    pub at: Where,
    pub run: String,
    pub text: String,
    /// Who writes it (default: the operating-system user).
    #[arg(long)]
    pub author: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub at: Where,
    /// A run id (in the reports folder), or a report's folder or report.json.
    pub report: PathBuf,
    /// An unsigned report fails too (exit 5): signatures are required.
    #[arg(long)]
    pub require_signature: bool,
}

fn store(ctx: &Ctx, at: &Where) -> ReportStore {
    ReportStore::new(
        at.reports
            .clone()
            .unwrap_or_else(|| beside_config(ctx, "reports")),
    )
    .trusting(ctx.engine.trusted_keys(), ctx.engine.signatures_expected())
}

/// A mark after a listed run whose report cannot be trusted.
fn mark(r: &RunEntry) -> String {
    if r.trusted {
        String::new()
    } else {
        format!("  [{}: not trended]", r.integrity.label())
    }
}

pub async fn run(ctx: &Ctx, cmd: &Command) -> Result<Verdict, Error> {
    match cmd {
        Command::List(a) => list(ctx, a),
        Command::Show(a) => show(ctx, a),
        Command::History(a) => history(ctx, a),
        Command::Schema => {
            if ctx.json() {
                ctx.emit(|e| e.items([crate::report::schema()]));
            } else {
                print_json(&crate::report::schema());
            }
            Ok(Verdict::Ok)
        }
        Command::Note(a) => note(ctx, a).await,
        Command::Verify(a) => verify(ctx, a),
    }
}

/// The reports, newest last, one line each.
fn list(ctx: &Ctx, a: &ListArgs) -> Result<Verdict, Error> {
    let runs = store(ctx, &a.at).list(a.drill.as_deref())?;
    if ctx.json() {
        ctx.emit(|e| e.items(&runs));
    } else {
        if runs.is_empty() {
            outln!("no drill reports yet");
        }
        for r in &runs {
            outln!(
                "{:<26} {:<28} {:<18} RTO {:<9} RPO {:<9} {:<8} {}{}",
                r.run_id,
                r.drill,
                r.verdict.label(),
                opt_ms(r.rto_ms),
                opt_ms(r.rpo_ms),
                r.integrity.label(),
                r.started_at.format("%Y-%m-%d %H:%M UTC"),
                mark(r)
            );
        }
    }
    Ok(Verdict::Ok)
}

/// One report, in the format asked for, with what checking it found.
fn show(ctx: &Ctx, a: &ShowArgs) -> Result<Verdict, Error> {
    let store = store(ctx, &a.at);
    let r = store.load(&a.run)?;
    let (integrity, _) = store.integrity(&r);
    if ctx.json() {
        ctx.emit(|e| {
            e.field("integrity", integrity.label());
            e.items([&r]);
        });
        return Ok(Verdict::Ok);
    }
    match a.format {
        Format::Text => {
            outln!("Integrity: {integrity}\n");
            out!("{}", markdown::render(&r))
        }
        Format::Json => print_json(&r),
        Format::Junit => out!("{}", junit::render(&r)),
        Format::Html => out!("{}", crate::report::html::render(&r)),
    }
    Ok(Verdict::Ok)
}

/// A drill's last runs and the trends of what can be trusted.
fn history(ctx: &Ctx, a: &HistoryArgs) -> Result<Verdict, Error> {
    let runs = store(ctx, &a.at).list(Some(&a.drill))?;
    let newest: Vec<_> = runs.iter().rev().take(a.last).rev().collect();
    if newest.is_empty() {
        return Err(Error::input(format!(
            "no reports of drill {:?} yet",
            a.drill
        )));
    }
    // Only what can be trusted is trended.
    let trusted = || newest.iter().filter(|r| r.trusted);
    let rtos: Vec<u64> = trusted().filter_map(|r| r.rto_ms).collect();
    let rpos: Vec<u64> = trusted().filter_map(|r| r.rpo_ms).collect();
    let left_out = newest.len() - trusted().count();
    if ctx.json() {
        ctx.emit(|e| {
            e.items(&newest);
            e.field("drill", &a.drill);
            e.field("rto_trend", trend(&rtos));
            e.field("rpo_trend", trend(&rpos));
            e.field("untrusted_runs", left_out);
        });
    } else {
        outln!("drill {}: the last {} runs", a.drill, newest.len());
        for r in &newest {
            outln!(
                "  {:<26} {:<18} RTO {:<9} RPO {:<9} (objectives {} / {}){}",
                r.run_id,
                r.verdict.label(),
                opt_ms(r.rto_ms),
                opt_ms(r.rpo_ms),
                human_ms(r.objectives.0),
                human_ms(r.objectives.1),
                mark(r)
            );
        }
        outln!("  RTO trend: {}; RPO trend: {}", trend(&rtos), trend(&rpos));
        if left_out > 0 {
            outln!(
                "  {left_out} run(s) left out of the trends: their reports cannot be verified (drtool report verify RUN says why)"
            );
        }
    }
    Ok(Verdict::Ok)
}

/// Adds the note locally, then to every region that holds the report.
async fn note(ctx: &Ctx, a: &NoteArgs) -> Result<Verdict, Error> {
    let author = a.author.clone().unwrap_or_else(crate::report::current_user);
    let r = store(ctx, &a.at).note(&a.run, &a.text, &author)?;
    if !ctx.json() {
        outln!(
            "note by {author} added to {} ({} notes)",
            r.run_id,
            r.notes.len()
        );
    }
    let mut stored_in = Vec::new();
    let files = crate::report::rendered(&r)?;
    let mut failed = 0;
    for region in &r.uploaded_to {
        let mut stored = Ok(());
        for (name, body) in &files {
            stored = ctx
                .engine
                .put_drill_file(region, &r.run_id, name, body.clone())
                .await;
            if stored.is_err() {
                break;
            }
        }
        match stored {
            Ok(()) if ctx.json() => stored_in.push(region.clone()),
            Ok(()) => outln!("  stored in {region} under drills/{}/", r.run_id),
            Err(e) => {
                failed += 1;
                let message = format!("{e} (run the note again once it answers)");
                ctx.emit(|env| {
                    let mut about = serde_json::Map::new();
                    about.insert("region".into(), serde_json::json!(region));
                    env.error(e.class(), &message, about);
                });
                if !ctx.json() {
                    outln!("  NOT stored in {region}: {message}");
                }
            }
        }
    }
    ctx.emit(|e| {
        e.items([serde_json::json!({
            "run_id": r.run_id, "author": author, "notes": r.notes, "stored_in": stored_in,
        })])
    });
    Ok(match failed {
        0 => Verdict::Ok,
        n if n == r.uploaded_to.len() => Verdict::Failed(ErrorClass::Unreachable),
        _ => Verdict::Partial,
    })
}

/// `report verify`: the report's hashes, signature and pages.
fn verify(ctx: &Ctx, a: &VerifyArgs) -> Result<Verdict, Error> {
    let store = store(ctx, &a.at);
    let path = &a.report;
    let folder = if path.is_dir() {
        path.clone()
    } else if path.is_file() {
        path.parent().map(PathBuf::from).unwrap_or_default()
    } else {
        let run = path.to_string_lossy();
        store
            .find(&run)
            .map_err(|e| e.noted("give a run id, or the report's folder or report.json"))?
    };
    let r = ReportStore::read(&folder.join("report.json"))?;
    let (integrity, trusted) = store.integrity(&r);
    let pages = crate::report::integrity::edited_renderings(&r, |name| {
        std::fs::read(folder.join(name)).ok()
    });
    // Unsigned where this config signs reports: the signature may have been
    // stripped, so it is not trusted (as `list` marks it).
    let unsigned_refused = integrity == Integrity::Unsigned
        && (a.require_signature || ctx.engine.signatures_expected());
    let ok = trusted && pages.edited().is_empty() && !unsigned_refused;
    if ctx.json() {
        ctx.emit(|e| {
            if !ok {
                let mut about = serde_json::Map::new();
                about.insert("run_id".into(), serde_json::json!(r.run_id));
                e.error(
                    ErrorClass::Integrity,
                    &format!("report {} cannot be trusted: {integrity}", r.run_id),
                    about,
                );
            }
            e.items([serde_json::json!({
                "run_id": r.run_id, "drill": r.drill, "folder": folder,
                "integrity": integrity, "edited_pages": pages.edited(),
                "pages_compared": matches!(pages, Pages::Compared(_)), "ok": ok,
                "ran_by": r.ran_by, "restored_points": r.restores.iter().map(|x| &x.point).collect::<Vec<_>>(),
            })]);
        });
    } else {
        outln!(
            "report {} of drill {} ({})",
            r.run_id,
            r.drill,
            folder.display()
        );
        outln!("  {integrity}");
        match &pages {
            Pages::Compared(edited) => {
                for p in edited {
                    outln!("  EDITED: {p} is not what report.json renders to");
                }
            }
            Pages::NotCompared(renderer) => outln!(
                "  pages not compared: renderer {renderer} wrote them, a newer drtool's (this one has {}); report.json is what was checked, `drtool report show {} --format html|junit` renders it anew",
                crate::report::RENDERER,
                r.run_id
            ),
        }
        if unsigned_refused {
            outln!(
                "  REFUSED: the report is unsigned, and signatures are required (--require-signature, or this config signs reports)"
            );
        }
        if let Some(by) = &r.ran_by {
            outln!(
                "  ran by {} on {} via {}, config {} (sha256 {})",
                by.user,
                by.host,
                by.via,
                by.config,
                by.config_sha256.as_deref().unwrap_or("unreadable")
            );
        }
        for x in &r.restores {
            outln!(
                "  restored {} in {} from point {}",
                x.target,
                x.region,
                x.point.as_deref().unwrap_or("-")
            );
        }
        outln!("{}", if ok { "OK" } else { "NOT VERIFIED" });
    }
    Ok(if ok {
        Verdict::Ok
    } else {
        Verdict::Failed(ErrorClass::Integrity)
    })
}
