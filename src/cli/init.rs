//! `drtool init`: writes a commented `drtool.toml` from what it can discover
//! (buckets per region, etcd endpoints, kubeconfig contexts and their
//! namespaces, RDS instances), checks it as drtool will read it, probes every
//! store and endpoint, and explains each choice in the file itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::Output;
use crate::config::{Config, NamespaceRegion};
use crate::engine::{Engine, EngineOptions, Reachability};
use crate::error::ErrorClass;
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
    /// A region's etcd client endpoints: REGION=URL[,URL...] (repeatable).
    /// Without one, a region's kube-apiserver pods (kubeadm's static pods in
    /// kube-system) are read for their --etcd-servers and TLS files.
    #[arg(long = "etcd", value_name = "REGION=URLS", value_parser = pair)]
    pub etcd: Vec<(String, String)>,
    /// Only keys under this prefix in the etcd target (default: every key).
    #[arg(long, value_name = "PREFIX")]
    pub etcd_prefix: Option<String>,
    /// The kubeconfig (default: $KUBECONFIG, else ~/.kube/config when it exists).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// A region's kubeconfig context: REGION=CONTEXT (default: the context
    /// whose name holds the region's name).
    #[arg(long = "context", value_name = "REGION=CONTEXT", value_parser = pair)]
    pub contexts: Vec<(String, String)>,
    /// Only these namespaces (repeatable; default: every namespace but
    /// default and kube-*).
    #[arg(long = "namespace", value_name = "NAME")]
    pub namespaces: Vec<String>,
    /// Only these RDS instances (repeatable; default: every instance found).
    #[arg(long = "rds-instance", value_name = "ID")]
    pub rds_instances: Vec<String>,
    /// The RDS API's address (default: AWS's). RDS is looked at when this is
    /// given or AWS credentials are in the environment.
    #[arg(long, value_name = "URL")]
    pub rds_endpoint: Option<String>,
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
        "name at least one region: --store REGION=URL, --s3-endpoint REGION=URL, --etcd REGION=URLS or --region REGION"
    )]
    NoRegion,
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
    #[error("kubeconfig {} does not exist", .0.display())]
    NoKubeconfig(PathBuf),
    #[error("cannot read kubeconfig {}: {reason}", .path.display())]
    Kubeconfig { path: PathBuf, reason: String },
    #[error(
        "context {context:?} is not in {} (contexts: {})",
        .path.display(),
        .contexts.join(", ")
    )]
    UnknownContext {
        context: String,
        path: PathBuf,
        contexts: Vec<String>,
    },
    #[error("cannot list the namespaces of {context}: {reason}")]
    ListNamespaces { context: String, reason: String },
    #[error(
        "namespace {namespace:?} is not in context {context} (namespaces: {})",
        .namespaces.join(", ")
    )]
    UnknownNamespace {
        namespace: String,
        context: String,
        namespaces: Vec<String>,
    },
}

fn at_endpoint(endpoint: &Option<String>) -> String {
    endpoint
        .as_ref()
        .map(|e| format!(" at {e}"))
        .unwrap_or_default()
}

/// A region's etcd: its endpoints and, when found beside them, client TLS.
#[derive(Default, Debug, PartialEq)]
struct Etcd {
    endpoints: Vec<String>,
    /// (ca, cert, key) files.
    tls: Option<(String, String, String)>,
}

/// What was found, and why each part of the file is what it is.
#[derive(Default)]
struct Found {
    regions: Vec<String>,
    stores: BTreeMap<String, (String, String)>,
    etcd: BTreeMap<String, Etcd>,
    contexts: BTreeMap<String, String>,
    namespaces: Vec<String>,
    /// (region, instance id): each instance is homed where it was found.
    rds: Vec<(String, String)>,
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
        Err(e) => return fail(ErrorClass::BadInput, e.to_string()),
    };
    let text = render(a, &found);
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
    let loaded = Config::load(&staged).map_err(|e| e.to_string());
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
    let named = a
        .stores
        .iter()
        .chain(&a.s3_endpoints)
        .chain(&a.etcd)
        .chain(&a.contexts)
        .map(|(r, _)| r)
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
    let mut f = Found {
        regions: regions(a),
        ..Found::default()
    };
    if f.regions.is_empty() {
        return Err(InitError::NoRegion);
    }
    let home = a.home.clone().unwrap_or_else(|| f.regions[0].clone());
    // Stores: given, or the bucket whose name holds the region's.
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
    for (r, urls) in &a.etcd {
        let endpoints: Vec<String> = urls.split(',').map(|u| u.trim().to_string()).collect();
        f.notes
            .push(format!("{r}: etcd at {}", endpoints.join(", ")));
        f.etcd.insert(
            r.clone(),
            Etcd {
                endpoints,
                tls: None,
            },
        );
    }
    kube(a, &home, &mut f).await?;
    rds(a, &mut f).await;
    Ok(f)
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

/// Contexts per region and the home context's namespaces.
async fn kube(a: &Args, home: &str, f: &mut Found) -> Result<(), InitError> {
    let path = match &a.kubeconfig {
        Some(p) => p.clone(),
        None => match std::env::var_os("KUBECONFIG").map(PathBuf::from) {
            Some(p) => p,
            None => match std::env::var_os("HOME") {
                Some(h) => PathBuf::from(h).join(".kube/config"),
                None => return Ok(()),
            },
        },
    };
    if !path.exists() {
        if a.kubeconfig.is_some() {
            return Err(InitError::NoKubeconfig(path));
        }
        f.notes.push(format!(
            "no kubeconfig at {}: no namespace targets",
            path.display()
        ));
        return Ok(());
    }
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&path).map_err(|e| InitError::Kubeconfig {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let names: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    choose_contexts(a, &path, &names, f)?;
    etcd_of_contexts(&path, f).await;
    namespaces(a, home, &path, f).await
}

/// The context of each region: as given, else the one whose name holds
/// the region's (a note when several do and none begins the others).
fn choose_contexts(
    a: &Args,
    path: &Path,
    names: &[String],
    f: &mut Found,
) -> Result<(), InitError> {
    for r in f.regions.clone() {
        let given = a
            .contexts
            .iter()
            .find(|(x, _)| *x == r)
            .map(|(_, c)| c.clone());
        let chosen = match given {
            Some(c) if names.contains(&c) => Some((c, "as given".to_string())),
            Some(c) => {
                return Err(InitError::UnknownContext {
                    context: c,
                    path: path.to_path_buf(),
                    contexts: names.to_vec(),
                });
            }
            None => {
                let hits: Vec<&String> = names.iter().filter(|n| n.contains(r.as_str())).collect();
                match context_of_region(&hits) {
                    Some(one) if hits.len() == 1 => Some((one, format!("its name holds {r:?}"))),
                    Some(one) => Some((
                        one,
                        format!(
                            "its name holds {r:?} and begins the names of the other {} that do",
                            hits.len() - 1
                        ),
                    )),
                    None if hits.is_empty() => None,
                    None => {
                        let listed: Vec<&str> = hits.iter().map(|h| h.as_str()).collect();
                        f.notes.push(format!(
                            "{r}: several contexts name it ({}): choose one with --context {r}=NAME",
                            listed.join(", ")
                        ));
                        None
                    }
                }
            }
        };
        if let Some((c, why)) = chosen {
            f.notes.push(format!("{r}: Kubernetes context {c} ({why})"));
            f.contexts.insert(r, c);
        }
    }
    Ok(())
}

/// The etcd behind each region's context, where its API server says.
async fn etcd_of_contexts(path: &Path, f: &mut Found) {
    for (r, context) in f.contexts.clone() {
        if f.etcd.contains_key(&r) {
            continue;
        }
        if let Some((mut etcd, pod)) = etcd_from_cluster(path, &context).await {
            let unreadable: Vec<String> = etcd
                .tls
                .iter()
                .flat_map(|(ca, cert, key)| [ca, cert, key])
                .filter(|file| std::fs::File::open(file).is_err())
                .cloned()
                .collect();
            if !unreadable.is_empty() {
                f.notes.push(format!(
                    "{r}: the etcd client TLS files of {pod} are not readable here ({}): copy them where drtool runs and add tls = {{ ca, cert, key }} to [targets.etcd.regions.{r}]",
                    unreadable.join(", ")
                ));
                etcd.tls = None;
            }
            f.notes.push(format!(
                "{r}: etcd at {} ({}), read from the kube-apiserver pod {pod} in {context}",
                etcd.endpoints.join(", "),
                if etcd.tls.is_some() {
                    "with its client TLS files"
                } else {
                    "no client TLS"
                }
            ));
            f.etcd.insert(r, etcd);
        }
    }
}

/// The namespaces to back up from the home region's context: as given
/// (each must be there), else all but default and kube-*.
async fn namespaces(a: &Args, home: &str, path: &Path, f: &mut Found) -> Result<(), InitError> {
    let Some(context) = f.contexts.get(home).cloned() else {
        f.notes.push(format!(
            "no context of the home region {home} (--context {home}=NAME): no namespace targets"
        ));
        return Ok(());
    };
    let region = NamespaceRegion {
        kubeconfig: path.to_path_buf(),
        context: Some(context.clone()),
    };
    let cluster = match crate::source::namespace::connect(&region).await {
        Ok(c) => c,
        Err(e) => {
            f.notes.push(format!(
                "context {context} does not answer ({e}): no namespace targets"
            ));
            return Ok(());
        }
    };
    let listed =
        cluster
            .get_json("/api/v1/namespaces")
            .await
            .map_err(|e| InitError::ListNamespaces {
                context: context.clone(),
                reason: e.to_string(),
            })?;
    let all: Vec<String> = listed["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for n in &a.namespaces {
        if !all.contains(n) {
            return Err(InitError::UnknownNamespace {
                namespace: n.clone(),
                context,
                namespaces: all,
            });
        }
    }
    f.namespaces = if a.namespaces.is_empty() {
        all.iter()
            .filter(|n| *n != "default" && !n.starts_with("kube-"))
            .cloned()
            .collect()
    } else {
        a.namespaces.clone()
    };
    f.notes.push(format!(
        "{home}: {} namespaces in {context}, {} taken ({})",
        all.len(),
        f.namespaces.len(),
        if a.namespaces.is_empty() {
            "all but default and kube-*"
        } else {
            "as given"
        }
    ));
    Ok(())
}

/// The etcd behind a context's API server, when its kube-apiserver runs as
/// a pod there (kubeadm); the pod's name beside it.
/// Of the contexts whose names hold a region's name, the one to use: the
/// only one, or the one whose name begins every other's (`prod-use1` before
/// `prod-use1-readonly`); None when that does not settle it.
fn context_of_region(hits: &[&String]) -> Option<String> {
    let base = hits.iter().min_by_key(|h| h.len())?;
    hits.iter()
        .all(|h| h.starts_with(base.as_str()))
        .then(|| (*base).clone())
}

async fn etcd_from_cluster(kubeconfig: &Path, context: &str) -> Option<(Etcd, String)> {
    let region = NamespaceRegion {
        kubeconfig: kubeconfig.to_path_buf(),
        context: Some(context.to_string()),
    };
    let cluster = crate::source::namespace::connect(&region).await.ok()?;
    let pods = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        cluster.get_json("/api/v1/namespaces/kube-system/pods"),
    )
    .await
    .ok()?
    .ok()?;
    pods["items"].as_array()?.iter().find_map(|pod| {
        let name = pod["metadata"]["name"].as_str()?;
        let apiserver = pod["metadata"]["labels"]["component"] == "kube-apiserver"
            || name.starts_with("kube-apiserver");
        if !apiserver {
            return None;
        }
        etcd_of_apiserver(pod).map(|e| (e, name.to_string()))
    })
}

/// Every region's RDS instances, when there is an RDS API to ask.
async fn rds(a: &Args, f: &mut Found) {
    let credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
        || std::env::var_os("AWS_PROFILE").is_some();
    if a.rds_endpoint.is_none() && !credentials {
        f.notes.push(
            "no AWS credentials in the environment and no --rds-endpoint: RDS not looked at".into(),
        );
        return;
    }
    for r in f.regions.clone() {
        let api = crate::source::rds::Rds::new(&r, a.rds_endpoint.as_deref()).await;
        match tokio::time::timeout(std::time::Duration::from_secs(30), api.list_instances()).await {
            Ok(Ok(instances)) => {
                let all = instances.len();
                let taken: Vec<String> = instances
                    .into_iter()
                    .map(|(id, _)| id)
                    .filter(|id| a.rds_instances.is_empty() || a.rds_instances.contains(id))
                    .collect();
                f.notes.push(format!(
                    "{r}: {all} RDS instance(s), {} taken{}",
                    taken.len(),
                    if a.rds_instances.is_empty() {
                        ""
                    } else {
                        " (as given)"
                    }
                ));
                f.rds.extend(taken.into_iter().map(|id| (r.clone(), id)));
            }
            Ok(Err(e)) => f.notes.push(format!("{r}: RDS instances not listed ({e})")),
            Err(_) => f
                .notes
                .push(format!("{r}: the RDS API did not answer in 30 s")),
        }
    }
    for id in &a.rds_instances {
        if !f.rds.iter().any(|(_, x)| x == id) {
            f.notes
                .push(format!("RDS instance {id} was not found in any region"));
        }
    }
}

/// The etcd a kube-apiserver pod talks to: `--etcd-servers` and the TLS
/// files beside it (kubeadm's static pods carry them in `command`).
fn etcd_of_apiserver(pod: &serde_json::Value) -> Option<Etcd> {
    let containers = pod["spec"]["containers"].as_array()?;
    for c in containers {
        let words: Vec<&str> = ["command", "args"]
            .iter()
            .filter_map(|k| c[*k].as_array())
            .flatten()
            .filter_map(|w| w.as_str())
            .collect();
        let flag = |name: &str| {
            words
                .iter()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        let Some(servers) = flag("--etcd-servers") else {
            continue;
        };
        let endpoints: Vec<String> = servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if endpoints.is_empty() {
            continue;
        }
        let tls = match (
            flag("--etcd-cafile"),
            flag("--etcd-certfile"),
            flag("--etcd-keyfile"),
        ) {
            (Some(ca), Some(cert), Some(key)) => Some((ca, cert, key)),
            _ => None,
        };
        return Some(Etcd { endpoints, tls });
    }
    None
}

/// A TOML string.
fn q(s: &str) -> String {
    toml_edit_free_quote(s)
}

fn toml_edit_free_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

/// The target's name for a discovered thing: lowercase letters, digits, '-'.
fn target_name(prefix: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}{clean}")
}

fn render(a: &Args, f: &Found) -> String {
    let home = a.home.clone().unwrap_or_else(|| f.regions[0].clone());
    let others: Vec<String> = f.regions.iter().filter(|r| **r != home).cloned().collect();
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
        let (store, endpoint) = &f.stores[r];
        let _ = writeln!(t, "[regions.{r}]\nstore = {}", q(store));
        if !endpoint.is_empty() {
            let _ = writeln!(
                t,
                "# An S3-compatible server: its address, path-style requests.\nendpoint = {}\npath_style = true",
                q(endpoint)
            );
        }
        t.push('\n');
    }
    let copy = format!("home = {}\ncopy_to = {}", q(&home), list(&others));
    if f.etcd.contains_key(&home) {
        render_etcd(&mut t, a, f, &copy);
    }
    render_namespaces(&mut t, a, f, &copy);
    render_rds(&mut t, a, f);
    t
}

/// The etcd target of the home region's etcd, with every region's members.
fn render_etcd(t: &mut String, a: &Args, f: &Found, copy: &str) {
    let _ = writeln!(
        t,
        "# etcd, key by key at one revision: restores into a running cluster in any\n# region listed below. For whole-cluster restores use mode = \"snapshot\" and\n# give the DR region's members (README: etcd snapshot restores).\n[targets.etcd]\nkind = \"etcd\"\nmode = \"keys\""
    );
    if let Some(p) = &a.etcd_prefix {
        let _ = writeln!(t, "prefix = {}", q(p));
    }
    let _ = writeln!(t, "{copy}");
    for (r, etcd) in &f.etcd {
        let _ = writeln!(
            t,
            "\n[targets.etcd.regions.{r}]\nendpoints = {}",
            list(&etcd.endpoints)
        );
        if let Some((ca, cert, key)) = &etcd.tls {
            let _ = writeln!(
                t,
                "# The API server's own etcd client files, as its pod names them:\n# copy them where drtool runs if it runs elsewhere.\ntls = {{ ca = {}, cert = {}, key = {} }}",
                q(ca),
                q(cert),
                q(key)
            );
        }
    }
    t.push('\n');
}

/// A namespace target per namespace taken, with every region's context.
fn render_namespaces(t: &mut String, a: &Args, f: &Found, copy: &str) {
    let kubeconfig = a
        .kubeconfig
        .clone()
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")))
        .unwrap_or_default();
    let kubeconfig = std::fs::canonicalize(&kubeconfig).unwrap_or(kubeconfig);
    for ns in &f.namespaces {
        let name = target_name("ns-", ns);
        let _ = writeln!(
            t,
            "# Namespace {ns}: every object of every kind, restored into the same\n# namespace in the DR region's cluster (--namespace-map to rename).\n[targets.{name}]\nkind = \"namespace\"\nnamespace = {}",
            q(ns)
        );
        let _ = writeln!(t, "{copy}");
        for (r, c) in &f.contexts {
            let _ = writeln!(
                t,
                "\n[targets.{name}.regions.{r}]\nkubeconfig = {}\ncontext = {}",
                q(&kubeconfig.display().to_string()),
                q(c)
            );
        }
        t.push('\n');
    }
}

/// An RDS target per instance found, copied to the other regions.
fn render_rds(t: &mut String, a: &Args, f: &Found) {
    for (found_in, id) in &f.rds {
        let twice = f.rds.iter().filter(|(_, x)| x == id).count() > 1;
        let name = if twice {
            target_name("rds-", &format!("{id}-{found_in}"))
        } else {
            target_name("rds-", id)
        };
        let elsewhere: Vec<String> = f
            .regions
            .iter()
            .filter(|r| *r != found_in)
            .cloned()
            .collect();
        let _ = writeln!(
            t,
            "# RDS instance {id} in {found_in}: native snapshots, copied to the DR\n# regions. For pg_dump archives too, set mode = \"both\" and give each\n# region a database = {{ host, port, user, dbname, password_env }}.\n[targets.{name}]\nkind = \"rds\"\nmode = \"snapshot\"\ninstance = {}\nhome = {}\ncopy_to = {}",
            q(id),
            q(found_in),
            list(&elsewhere)
        );
        for r in &f.regions {
            let _ = writeln!(t, "\n[targets.{name}.regions.{r}]");
            if let Some(e) = &a.rds_endpoint {
                let _ = writeln!(t, "endpoint = {}", q(e));
            }
        }
        t.push('\n');
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_context_of_a_region_is_the_one_the_others_extend() {
        let pick = |names: &[&str]| {
            let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let hits: Vec<&String> = owned.iter().collect();
            context_of_region(&hits)
        };
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&["prod-use1"]).as_deref(), Some("prod-use1"));
        assert_eq!(
            pick(&[
                "lab-us-east-1-reader",
                "lab-us-east-1",
                "lab-us-east-1-restorer"
            ])
            .as_deref(),
            Some("lab-us-east-1")
        );
        assert_eq!(pick(&["blue-us-east-1", "green-us-east-1"]), None);
    }

    #[test]
    fn etcd_is_read_from_a_kubeadm_apiserver_pod() {
        let pod = serde_json::json!({"spec": {"containers": [{"command": [
            "kube-apiserver",
            "--advertise-address=10.0.0.1",
            "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
            "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
            "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
            "--etcd-servers=https://10.0.0.1:2379,https://10.0.0.2:2379",
        ]}]}});
        let etcd = etcd_of_apiserver(&pod).unwrap();
        assert_eq!(
            etcd.endpoints,
            ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
        );
        assert_eq!(
            etcd.tls.unwrap().2,
            "/etc/kubernetes/pki/apiserver-etcd-client.key"
        );
        // In args, without TLS files: endpoints only.
        let pod = serde_json::json!({"spec": {"containers": [{"args": ["--etcd-servers=http://e:2379"]}]}});
        assert_eq!(etcd_of_apiserver(&pod).unwrap().tls, None);
        // No flag, an empty flag, no containers: nothing.
        for pod in [
            serde_json::json!({"spec": {"containers": [{"command": ["kube-apiserver"]}]}}),
            serde_json::json!({"spec": {"containers": [{"command": ["--etcd-servers="]}]}}),
            serde_json::json!({"spec": {}}),
        ] {
            assert_eq!(etcd_of_apiserver(&pod), None, "{pod}");
        }
    }

    #[test]
    fn names_and_pairs_are_checked() {
        assert_eq!(target_name("ns-", "Lab_Shop"), "ns-lab-shop");
        assert!(pair("us-east-1=http://x").is_ok());
        assert!(pair("=x").is_err());
        assert!(pair("us-east-1").is_err());
        assert_eq!(q("a\"b"), "\"a\\\"b\"");
    }
}
