//! `drtool init`: writes a commented `drtool.toml` from what it can discover
//! (buckets per region, then what each kind finds: etcd endpoints,
//! kubeconfig contexts and their namespaces, RDS instances), checks it as
//! drtool will read it, probes every store and endpoint, and explains each
//! choice in the file itself. The kinds' own flags and discovery are their
//! `Discovery` capability (`source/<kind>/init.rs`); this file builds their
//! flags into the command line and writes what they found.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::Output;
use super::flags::{self, FlagSet, KindFlags};
use crate::engine::kind::{FlagShape, InitAsk, InitFound, toml_string};
use crate::engine::{Engine, EngineOptions, Reachability};
use crate::error::{ErrorClass, KindError};
use crate::exit::{self, Signal};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A region and its store: REGION=s3://bucket/prefix or REGION=file:///path
    /// (repeatable). Without one, the region's buckets are listed and the one
    /// whose name holds the region's is taken.
    #[arg(long = "store", value_name = "REGION=URL", value_parser = pair)]
    pub stores: Vec<(String, String)>,
    /// A region's S3-compatible endpoint (path style), e.g. MinIO or Garage.
    #[arg(long = "s3-endpoint", value_name = "REGION=URL", value_parser = pair)]
    pub s3_endpoints: Vec<(String, String)>,
    /// A region to set up when no other option names it (repeatable).
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// The folder inside discovered buckets.
    #[arg(long, default_value = "drtool")]
    pub prefix: String,
    #[command(flatten)]
    pub kinds: KindFlags<flags::Init>,
    /// The targets' home region (default: the first region named).
    #[arg(long, value_name = "REGION")]
    pub home: Option<String>,
    /// Replace the file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Ask nothing: write the file when everything checks (for scripts).
    #[arg(long)]
    pub non_interactive: bool,
}

fn pair(s: &str) -> Result<(String, String), super::NotAPair> {
    super::split_pair(s, "REGION=VALUE", false)
}

/// Why `drtool init` cannot write a config from what it was given and found.
#[derive(Debug, thiserror::Error)]
enum InitError {
    #[error(
        "name at least one region: --store REGION=URL, --s3-endpoint REGION=URL, --region REGION{}",
        .0.iter().map(|f| format!(", {f}")).collect::<String>()
    )]
    NoRegion(Vec<String>),
    #[error(
        "cannot list the buckets of {region}{}: {source}; pass --store {region}=s3://BUCKET/PREFIX",
        at_endpoint(.endpoint)
    )]
    ListBuckets {
        region: String,
        endpoint: Option<String>,
        source: crate::store::ListBucketsError,
    },
    #[error(
        "no bucket's name holds {region:?} (buckets: {}): pass --store {region}=s3://BUCKET/PREFIX",
        .buckets.join(", ")
    )]
    NoBucket {
        region: String,
        buckets: Vec<String>,
    },
    #[error(
        "several buckets' names hold {region:?} ({}): pass --store {region}=s3://BUCKET/PREFIX",
        .buckets.join(", ")
    )]
    SeveralBuckets {
        region: String,
        buckets: Vec<String>,
    },
    /// What a kind's discovery was asked that cannot be.
    #[error("{0}")]
    Kind(Box<dyn KindError>),
}

impl InitError {
    fn class(&self) -> ErrorClass {
        match self {
            InitError::Kind(e) => e.class(),
            _ => ErrorClass::BadInput,
        }
    }
}

fn at_endpoint(endpoint: &Option<String>) -> String {
    endpoint
        .as_ref()
        .map(|e| format!(" at {e}"))
        .unwrap_or_default()
}

/// What was found, and why each part of the file is what it is.
#[derive(Default)]
struct Found {
    regions: Vec<String>,
    home: String,
    stores: BTreeMap<String, (String, String)>,
    /// The kinds' target sections, in the registry's order.
    sections: Vec<String>,
    /// Lines said to the user and kept as comments at the top of the file.
    notes: Vec<String>,
}

pub async fn run(config: &Path, output: Output, a: &Args) -> u8 {
    let json = output == Output::Json;
    let fail = |class: ErrorClass, message: String| {
        errln!("error: {message}");
        let code = exit::of_class(class);
        if json {
            let mut env = super::envelope::Envelope::default();
            env.error(class, &message, Default::default());
            super::print_json(&env.finish("Init", code));
        }
        code
    };
    if config.exists() && !a.force {
        return fail(
            ErrorClass::BadInput,
            format!(
                "{} exists: --force replaces it, or --config PATH writes another",
                config.display()
            ),
        );
    }
    let found = match discover(a).await {
        Ok(f) => f,
        Err(e) => return fail(e.class(), e.to_string()),
    };
    let text = render(&found);
    // Read back exactly as drtool will, before anything is written.
    let dir = config
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staged = dir.join(format!(".drtool-init-{:08x}.toml", rand::random::<u32>()));
    if let Err(e) = std::fs::write(&staged, &text) {
        return fail(
            ErrorClass::BadInput,
            format!("cannot write in {}: {e}", dir.display()),
        );
    }
    // A signal while probing or asking removes the staged file: an
    // interrupted init leaves the folder as it was.
    let on_signal = remove_on_signal(staged.clone(), json);
    let loaded = crate::source::load_config(&staged).map_err(|e| e.to_string());
    let probes = match loaded.clone().and_then(|c| {
        Engine::new(c, crate::source::registry(), EngineOptions::default())
            .map_err(|e| e.to_string())
    }) {
        Ok(engine) => engine.reachability().await,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return fail(
                ErrorClass::Failed,
                format!(
                    "the config init made does not read back ({e}): this is a bug, please report it with the options given"
                ),
            );
        }
    };
    let answered = probes.iter().filter(|p| p.reachable).count();
    let said = probe_lines(&found.notes, &probes);
    if !json {
        for line in &said {
            errln!("  {line}");
        }
        errln!(
            "{} of {} stores and endpoints answer",
            answered,
            probes.len()
        );
    }
    let ask = !a.non_interactive && std::io::stdin().is_terminal();
    if ask {
        errp!("Write {}? [y/N] ", config.display());
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err()
            || !answer.trim().eq_ignore_ascii_case("y")
        {
            let _ = std::fs::remove_file(&staged);
            return fail(ErrorClass::NotConfirmed, "not written".into());
        }
    }
    on_signal.abort();
    if let Err(e) = std::fs::rename(&staged, config) {
        let _ = std::fs::remove_file(&staged);
        return fail(
            ErrorClass::Failed,
            format!("cannot write {}: {e}", config.display()),
        );
    }
    let targets = loaded
        .map(|c| c.targets.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    say_written(json, config, found.regions.len(), &targets, &probes, &said)
}

/// Removes the staged file and exits with the signal's code on SIGINT,
/// SIGTERM or SIGHUP (an interrupted init leaves the folder as it was),
/// until aborted.
fn remove_on_signal(staged: PathBuf, json: bool) -> tokio::task::AbortHandle {
    let token = tokio_util::sync::CancellationToken::new();
    let watch = super::signals::watch(token.clone(), false, true);
    let task = tokio::spawn(async move {
        token.cancelled().await;
        let _ = std::fs::remove_file(&staged);
        let code = watch.received().map_or(exit::SIGINT, Signal::code);
        let message = "interrupted: nothing written".to_string();
        errln!("error: {message}");
        if json {
            let mut env = super::envelope::Envelope::default();
            env.error(
                crate::error::ErrorClass::Cancelled,
                &message,
                Default::default(),
            );
            super::print_json(&env.finish("Init", code));
        }
        std::process::exit(i32::from(code));
    });
    task.abort_handle()
}

/// What init found, then what each probe said, as lines.
fn probe_lines(notes: &[String], probes: &[Reachability]) -> Vec<String> {
    let mut said = notes.to_vec();
    for p in probes {
        said.push(format!(
            "probe {} {}: {}",
            p.region,
            p.what,
            if p.reachable {
                "answers".to_string()
            } else {
                format!("does NOT answer: {}", p.detail)
            }
        ));
    }
    said
}

/// Says what was written, as text or the JSON envelope; the exit code
/// says whether every store and endpoint answered.
fn say_written(
    json: bool,
    config: &Path,
    regions: usize,
    targets: &[String],
    probes: &[Reachability],
    said: &[String],
) -> u8 {
    // Written either way (the file is right; the world may be down), but a
    // script learns that not everything answered.
    let answered = probes.iter().filter(|p| p.reachable).count();
    let code = if answered == probes.len() {
        exit::OK
    } else {
        exit::UNREACHABLE
    };
    if json {
        let mut env = super::envelope::Envelope::default();
        env.items(targets.iter().map(|t| serde_json::json!({ "target": t })));
        env.field("file", config);
        env.field("probes", probes);
        env.field("notes", said);
        for p in probes.iter().filter(|p| !p.reachable) {
            let mut about = serde_json::Map::new();
            about.insert("region".into(), p.region.clone().into());
            env.error(
                crate::error::ErrorClass::Unreachable,
                &format!("{} at {}: {}", p.what, p.address, p.detail),
                about,
            );
        }
        super::print_json(&env.finish("Init", code));
    } else {
        outln!(
            "wrote {} ({} regions, {} targets: {}); next: drtool --config {} config check, then drtool backup",
            config.display(),
            regions,
            targets.len(),
            targets.join(", "),
            config.display()
        );
        if code != exit::OK {
            outln!(
                "warning: {} of {} stores and endpoints do not answer (listed above): fix them or the file before the first backup",
                probes.len() - answered,
                probes.len()
            );
        }
    }
    code
}

/// Regions in the order the options name them.
fn regions(a: &Args) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let kinds: Vec<String> = flags::Init::specs()
        .iter()
        .filter(|f| f.shape == FlagShape::RegionPairs)
        .flat_map(|f| a.kinds.values.pairs(f.long))
        .map(|(r, _)| r)
        .collect();
    let named = a
        .stores
        .iter()
        .chain(&a.s3_endpoints)
        .map(|(r, _)| r)
        .chain(&kinds)
        .chain(&a.regions)
        .chain(&a.home);
    for r in named {
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
}

async fn discover(a: &Args) -> Result<Found, InitError> {
    let regions = regions(a);
    let Some(first) = regions.first() else {
        let kinds = flags::Init::specs()
            .into_iter()
            .filter(|f| f.shape == FlagShape::RegionPairs)
            .map(|f| format!("--{} {}", f.long, f.value_name))
            .collect();
        return Err(InitError::NoRegion(kinds));
    };
    let mut f = Found {
        home: a.home.clone().unwrap_or_else(|| first.clone()),
        regions,
        ..Found::default()
    };
    stores(a, &mut f).await?;
    let ask = InitAsk {
        regions: &f.regions,
        home: &f.home,
        flags: &a.kinds.values,
    };
    let mut kinds = InitFound::default();
    for kind in crate::source::registry().all() {
        if let Some(d) = kind.discovery() {
            d.discover(&ask, &mut kinds)
                .await
                .map_err(InitError::Kind)?;
        }
    }
    f.notes.extend(kinds.notes);
    f.sections = kinds.sections;
    Ok(f)
}

/// Each region's store: given, or the bucket whose name holds the region's.
async fn stores(a: &Args, f: &mut Found) -> Result<(), InitError> {
    for r in f.regions.clone() {
        let endpoint = a
            .s3_endpoints
            .iter()
            .find(|(x, _)| *x == r)
            .map(|(_, e)| e.as_str());
        if let Some((_, url)) = a.stores.iter().find(|(x, _)| *x == r) {
            f.stores
                .insert(r.clone(), (url.clone(), endpoint.unwrap_or("").to_string()));
            f.notes.push(format!("{r}: store {url}, as given"));
            continue;
        }
        let buckets =
            list_buckets(&r, endpoint)
                .await
                .map_err(|source| InitError::ListBuckets {
                    region: r.clone(),
                    endpoint: endpoint.map(str::to_string),
                    source,
                })?;
        let matching: Vec<&String> = buckets.iter().filter(|b| b.contains(r.as_str())).collect();
        match matching.as_slice() {
            [one] => {
                let url = format!("s3://{one}/{}", a.prefix);
                f.notes.push(format!(
                    "{r}: store {url}: of {} bucket(s), {one} is the one whose name holds {r:?}",
                    buckets.len()
                ));
                f.stores
                    .insert(r.clone(), (url, endpoint.unwrap_or("").to_string()));
            }
            [] => {
                return Err(InitError::NoBucket {
                    region: r.clone(),
                    buckets: buckets.clone(),
                });
            }
            many => {
                return Err(InitError::SeveralBuckets {
                    region: r.clone(),
                    buckets: many.iter().map(|b| b.to_string()).collect(),
                });
            }
        }
    }
    Ok(())
}

async fn list_buckets(
    region: &str,
    endpoint: Option<&str>,
) -> Result<Vec<String>, crate::store::ListBucketsError> {
    const WAIT: u64 = 30;
    tokio::time::timeout(
        std::time::Duration::from_secs(WAIT),
        crate::store::list_buckets(region, endpoint),
    )
    .await
    .map_err(|_| crate::store::ListBucketsError::TimedOut(WAIT))?
}

fn render(f: &Found) -> String {
    let home = &f.home;
    let others: Vec<String> = f.regions.iter().filter(|r| *r != home).cloned().collect();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# drtool.toml written by `drtool init` on {}.\n# What it found and chose:",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    for n in &f.notes {
        let _ = writeln!(t, "#   {n}");
    }
    let _ = writeln!(
        t,
        "# Every target is homed in {home} (--home) and copied to {}.\n# `drtool config check` probes it all again; README.md documents every key.\n",
        if others.is_empty() {
            "no other region".to_string()
        } else {
            others.join(", ")
        }
    );
    for r in &f.regions {
        let Some((store, endpoint)) = f.stores.get(r) else {
            continue;
        };
        let _ = writeln!(t, "[regions.{r}]\nstore = {}", toml_string(store));
        if !endpoint.is_empty() {
            let _ = writeln!(
                t,
                "# An S3-compatible server: its address, path-style requests.\nendpoint = {}\npath_style = true",
                toml_string(endpoint)
            );
        }
        t.push('\n');
    }
    for section in &f.sections {
        let _ = writeln!(t, "{section}");
    }
    t
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        init: Args,
    }

    #[test]
    fn the_kinds_flags_are_on_the_command_line_and_name_regions() {
        let cli = Cli::try_parse_from([
            "init",
            "--store",
            "us-east-1=s3://b/p",
            "--etcd",
            "us-west-2=http://e:2379",
            "--namespace",
            "shop",
            "--namespace",
            "pay",
            "--kubeconfig",
            "/k",
        ])
        .unwrap();
        let flags = &cli.init.kinds.values;
        assert_eq!(flags.values("namespace"), ["shop", "pay"]);
        assert_eq!(flags.value("kubeconfig"), Some("/k"));
        assert_eq!(regions(&cli.init), ["us-east-1", "us-west-2"]);
        // A REGION=VALUE flag of a kind is checked like the others.
        let bad = Cli::try_parse_from(["init", "--context", "lab-east"]);
        assert!(bad.is_err());
        // Each flag once in the help, with its kind's text.
        let help = <Cli as clap::CommandFactory>::command()
            .render_help()
            .to_string();
        for long in flags::Init::specs().iter().map(|f| f.long) {
            assert_eq!(
                help.matches(&format!("--{long} ")).count(),
                1,
                "{long}: {help}"
            );
        }
    }

    #[test]
    fn pairs_are_checked() {
        assert!(pair("us-east-1=http://x").is_ok());
        assert!(pair("=x").is_err());
        assert!(pair("us-east-1").is_err());
    }

    #[tokio::test]
    async fn without_a_region_init_names_every_flag_that_gives_one() {
        let cli = Cli::try_parse_from(["init", "--non-interactive"]).unwrap();
        let err = discover(&cli.init).await.err().unwrap();
        assert!(matches!(err, InitError::NoRegion(_)));
        assert_eq!(err.class(), ErrorClass::BadInput);
        let m = err.to_string();
        for flag in [
            "--store REGION=URL",
            "--etcd REGION=URLS",
            "--context REGION=CONTEXT",
        ] {
            assert!(m.contains(flag), "{flag} not in: {m}");
        }
    }
}
