//! What `drtool init` finds of namespaces: each region's kubeconfig context
//! and the home cluster's namespaces, one target each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::NamespaceKind;
use super::NamespaceRegion;
use super::error::InitError;
use crate::engine::kind::{
    Discovery, FlagShape, FlagSpec, InitAsk, InitFound, target_name, toml_string,
};
use crate::error::KindError;

const KUBECONFIG: &str = "kubeconfig";
const CONTEXT: &str = "context";
const NAMESPACE: &str = "namespace";

const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        long: KUBECONFIG,
        value_name: "FILE",
        help: "The kubeconfig (default: $KUBECONFIG, else ~/.kube/config when it exists)",
        shape: FlagShape::One,
        file: true,
        needs: None,
    },
    FlagSpec {
        long: CONTEXT,
        value_name: "REGION=CONTEXT",
        help: "A region's kubeconfig context: REGION=CONTEXT (default: the context whose name holds the region's name)",
        shape: FlagShape::RegionPairs,
        file: false,
        needs: None,
    },
    FlagSpec {
        long: NAMESPACE,
        value_name: "NAME",
        help: "Only these namespaces (repeatable; default: every namespace but default and kube-*)",
        shape: FlagShape::Many,
        file: false,
        needs: None,
    },
];

/// Each region's context in a kubeconfig, and why it was chosen.
#[derive(Debug, Default)]
pub struct Contexts {
    pub kubeconfig: PathBuf,
    pub by_region: BTreeMap<String, String>,
    pub notes: Vec<String>,
}

/// The kubeconfig `--kubeconfig`, `$KUBECONFIG` or `~/.kube/config` names.
fn kubeconfig_path(ask: &InitAsk<'_>) -> Option<PathBuf> {
    ask.flags
        .value("kubeconfig")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")))
}

/// The contexts of the regions (None: there is no kubeconfig to read).
pub fn contexts(ask: &InitAsk<'_>) -> Result<Option<Contexts>, InitError> {
    let Some(path) = kubeconfig_path(ask) else {
        return Ok(None);
    };
    if !path.exists() {
        if ask.flags.value(KUBECONFIG).is_some() {
            return Err(InitError::NoKubeconfig(path));
        }
        return Ok(None);
    }
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&path).map_err(|e| InitError::Kubeconfig {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let names: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    let mut out = Contexts {
        kubeconfig: std::fs::canonicalize(&path).unwrap_or(path),
        ..Contexts::default()
    };
    let given: BTreeMap<String, String> = ask.flags.pairs(CONTEXT).into_iter().collect();
    for r in ask.regions {
        let chosen = match given.get(r) {
            Some(c) if names.contains(c) => Some((c.clone(), "as given".to_string())),
            Some(c) => {
                return Err(InitError::UnknownContext {
                    context: c.clone(),
                    path: out.kubeconfig,
                    contexts: names,
                });
            }
            None => guess(r, &names, &mut out.notes),
        };
        if let Some((c, why)) = chosen {
            out.notes
                .push(format!("{r}: Kubernetes context {c} ({why})"));
            out.by_region.insert(r.clone(), c);
        }
    }
    Ok(Some(out))
}

/// The context whose name holds the region's (a note when several do and
/// none begins the others).
fn guess(r: &str, names: &[String], notes: &mut Vec<String>) -> Option<(String, String)> {
    let hits: Vec<&String> = names.iter().filter(|n| n.contains(r)).collect();
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
            notes.push(format!(
                "{r}: several contexts name it ({}): choose one with --context {r}=NAME",
                listed.join(", ")
            ));
            None
        }
    }
}

/// Of the contexts whose names hold a region's name, the one to use: the
/// only one, or the one whose name begins every other's (`prod-use1` before
/// `prod-use1-readonly`); None when that does not settle it.
fn context_of_region(hits: &[&String]) -> Option<String> {
    let base = hits.iter().min_by_key(|h| h.len())?;
    hits.iter()
        .all(|h| h.starts_with(base.as_str()))
        .then(|| (*base).clone())
}

/// The pods of kube-system in a context's cluster (where kubeadm runs its
/// control plane as static pods); none when it does not answer in 30 s.
pub async fn kube_system_pods(kubeconfig: &Path, context: &str) -> Option<serde_json::Value> {
    let region = NamespaceRegion {
        kubeconfig: kubeconfig.to_path_buf(),
        context: Some(context.to_string()),
    };
    let cluster = super::connect(&region).await.ok()?;
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        cluster.get_json("/api/v1/namespaces/kube-system/pods"),
    )
    .await
    .ok()?
    .ok()
}

/// The namespaces to back up from the home region's context: as given
/// (each must be there), else all but default and kube-*; with the note
/// that says so.
async fn namespaces(
    ask: &InitAsk<'_>,
    kubeconfig: &Path,
    context: &str,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, InitError> {
    let region = NamespaceRegion {
        kubeconfig: kubeconfig.to_path_buf(),
        context: Some(context.to_string()),
    };
    let cluster = match super::connect(&region).await {
        Ok(c) => c,
        Err(e) => {
            notes.push(format!(
                "context {context} does not answer ({e}): no namespace targets"
            ));
            return Ok(Vec::new());
        }
    };
    let listed =
        cluster
            .get_json("/api/v1/namespaces")
            .await
            .map_err(|e| InitError::ListNamespaces {
                context: context.to_string(),
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
    let given = ask.flags.values(NAMESPACE);
    if let Some(missing) = given.iter().find(|n| !all.contains(n)) {
        return Err(InitError::UnknownNamespace {
            namespace: missing.clone(),
            context: context.to_string(),
            namespaces: all,
        });
    }
    let taken: Vec<String> = if given.is_empty() {
        all.iter()
            .filter(|n| *n != "default" && !n.starts_with("kube-"))
            .cloned()
            .collect()
    } else {
        given.to_vec()
    };
    notes.push(format!(
        "{}: {} namespaces in {context}, {} taken ({})",
        ask.home,
        all.len(),
        taken.len(),
        if given.is_empty() {
            "all but default and kube-*"
        } else {
            "as given"
        }
    ));
    Ok(taken)
}

/// A namespace target, with every region's context.
fn section(ask: &InitAsk<'_>, ns: &str, contexts: &Contexts) -> String {
    let name = target_name("ns-", ns);
    let mut t = format!(
        "# Namespace {ns}: every object of every kind, restored into the same\n# namespace in the DR region's cluster (--namespace-map to rename).\n[targets.{name}]\nkind = \"namespace\"\nnamespace = {}\n{}\n",
        toml_string(ns),
        ask.home_and_copies()
    );
    for (r, c) in &contexts.by_region {
        t.push_str(&format!(
            "\n[targets.{name}.regions.{r}]\nkubeconfig = {}\ncontext = {}\n",
            toml_string(&contexts.kubeconfig.display().to_string()),
            toml_string(c)
        ));
    }
    t
}

fn boxed(e: InitError) -> Box<dyn KindError> {
    Box::new(e)
}

#[async_trait]
impl Discovery for NamespaceKind {
    fn init_flags(&self) -> &'static [FlagSpec] {
        FLAGS
    }

    async fn discover(
        &self,
        ask: &InitAsk<'_>,
        found: &mut InitFound,
    ) -> Result<(), Box<dyn KindError>> {
        let Some(contexts) = contexts(ask).map_err(boxed)? else {
            found.notes.push(match kubeconfig_path(ask) {
                Some(at) => format!("no kubeconfig at {}: no namespace targets", at.display()),
                None => "no --kubeconfig, $KUBECONFIG or $HOME: no namespace targets".into(),
            });
            return Ok(());
        };
        found.notes.extend(contexts.notes.iter().cloned());
        let home = ask.home;
        let Some(context) = contexts.by_region.get(home) else {
            found.notes.push(format!(
                "no context of the home region {home} (--context {home}=NAME): no namespace targets"
            ));
            return Ok(());
        };
        let taken = namespaces(ask, &contexts.kubeconfig, context, &mut found.notes)
            .await
            .map_err(boxed)?;
        for ns in &taken {
            found.sections.push(section(ask, ns, &contexts));
        }
        Ok(())
    }
}

#[cfg(test)]
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
    fn contexts_are_taken_as_given_first_else_guessed_and_an_unknown_one_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("config");
        let kubeconfig = r#"
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {}}]
contexts:
- {name: lab-us-east-1, context: {cluster: c, user: u}}
- {name: lab-us-east-1-reader, context: {cluster: c, user: u}}
- {name: lab-us-west-2, context: {cluster: c, user: u}}
"#;
        std::fs::write(&path, kubeconfig).unwrap_or_else(|e| panic!("{e}"));
        let regions = ["us-east-1".to_string(), "us-west-2".to_string()];
        let flags = |contexts: &[&str]| {
            crate::engine::kind::FlagValues(
                [
                    (KUBECONFIG.to_string(), vec![path.display().to_string()]),
                    (
                        CONTEXT.to_string(),
                        contexts.iter().map(|c| c.to_string()).collect(),
                    ),
                ]
                .into(),
            )
        };
        let given = flags(&["us-west-2=lab-us-west-2", "us-west-2=other"]);
        let ask = InitAsk {
            regions: &regions,
            home: "us-east-1",
            flags: &given,
        };
        let found = contexts(&ask)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no contexts"));
        assert_eq!(found.by_region["us-east-1"], "lab-us-east-1");
        assert_eq!(found.by_region["us-west-2"], "lab-us-west-2");
        assert!(
            found
                .notes
                .iter()
                .any(|n| n.contains("lab-us-west-2 (as given)")),
            "{:?}",
            found.notes
        );
        let wrong = flags(&["us-east-1=lab-eu"]);
        let ask = InitAsk {
            flags: &wrong,
            ..ask
        };
        let err = contexts(&ask).err();
        assert!(
            matches!(&err, Some(InitError::UnknownContext { context, .. }) if context == "lab-eu"),
            "{err:?}"
        );
        let m = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(m.contains("give --context REGION=NAME"), "{m}");
    }
}
