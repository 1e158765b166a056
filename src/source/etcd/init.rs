//! What `drtool init` finds of etcd: each region's members, as given or as
//! the region's kube-apiserver pod names them (kubeadm's static pods in
//! kube-system carry `--etcd-servers` and the client TLS files), and one
//! keys-mode target homed where the home region's etcd is.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;

use super::EtcdKind;
use crate::engine::kind::{
    Discovery, FlagShape, FlagSpec, InitAsk, InitFound, toml_list, toml_string,
};
use crate::error::KindError;
use crate::source::namespace::init::{contexts, kube_system_pods};

const ETCD: &str = "etcd";
const PREFIX: &str = "etcd-prefix";

const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        long: ETCD,
        value_name: "REGION=URLS",
        help: "A region's etcd client endpoints: REGION=URL[,URL...] (repeatable). Without one, a region's kube-apiserver pods (kubeadm's static pods in kube-system) are read for their --etcd-servers and TLS files",
        shape: FlagShape::RegionPairs,
        file: false,
        needs: None,
    },
    FlagSpec {
        long: PREFIX,
        value_name: "PREFIX",
        help: "Only keys under this prefix in the etcd target (default: every key)",
        shape: FlagShape::One,
        file: false,
        needs: None,
    },
];

/// A region's etcd: its endpoints and, when found beside them, client TLS.
#[derive(Default, Debug, PartialEq)]
struct Members {
    endpoints: Vec<String>,
    /// (ca, cert, key) files.
    tls: Option<(String, String, String)>,
}

/// The etcd behind each region's context that was not given, where its API
/// server says; with a note each.
async fn from_clusters(ask: &InitAsk<'_>, found: &mut BTreeMap<String, Members>) -> Vec<String> {
    let mut notes = Vec::new();
    // The namespace kind says what the contexts are (and why, and what is
    // wrong with them); here they are only a way to the API servers.
    let Ok(Some(contexts)) = contexts(ask) else {
        return notes;
    };
    for (r, context) in &contexts.by_region {
        if found.contains_key(r) {
            continue;
        }
        let Some((mut etcd, pod)) = of_cluster(&contexts.kubeconfig, context).await else {
            continue;
        };
        let unreadable: Vec<String> = etcd
            .tls
            .iter()
            .flat_map(|(ca, cert, key)| [ca, cert, key])
            .filter(|file| std::fs::File::open(file).is_err())
            .cloned()
            .collect();
        if !unreadable.is_empty() {
            notes.push(format!(
                "{r}: the etcd client TLS files of {pod} are not readable here ({}): copy them where drtool runs and add tls = {{ ca, cert, key }} to [targets.etcd.regions.{r}]",
                unreadable.join(", ")
            ));
            etcd.tls = None;
        }
        notes.push(format!(
            "{r}: etcd at {} ({}), read from the kube-apiserver pod {pod} in {context}",
            etcd.endpoints.join(", "),
            if etcd.tls.is_some() {
                "with its client TLS files"
            } else {
                "no client TLS"
            }
        ));
        found.insert(r.clone(), etcd);
    }
    notes
}

/// The etcd behind a context's API server, when its kube-apiserver runs as
/// a pod there (kubeadm); the pod's name beside it.
async fn of_cluster(kubeconfig: &Path, context: &str) -> Option<(Members, String)> {
    let pods = kube_system_pods(kubeconfig, context).await?;
    pods["items"].as_array()?.iter().find_map(|pod| {
        let name = pod["metadata"]["name"].as_str()?;
        let apiserver = pod["metadata"]["labels"]["component"] == "kube-apiserver"
            || name.starts_with("kube-apiserver");
        if !apiserver {
            return None;
        }
        of_apiserver(pod).map(|e| (e, name.to_string()))
    })
}

/// The etcd a kube-apiserver pod talks to: `--etcd-servers` and the TLS
/// files beside it (kubeadm's static pods carry them in `command`).
fn of_apiserver(pod: &serde_json::Value) -> Option<Members> {
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
        return Some(Members { endpoints, tls });
    }
    None
}

/// The etcd target, with every region's members.
fn section(ask: &InitAsk<'_>, members: &BTreeMap<String, Members>) -> String {
    let mut t = String::from(
        "# etcd, key by key at one revision: restores into a running cluster in any\n# region listed below. For whole-cluster restores use mode = \"snapshot\" and\n# give the DR region's members (README: etcd snapshot restores).\n[targets.etcd]\nkind = \"etcd\"\nmode = \"keys\"\n",
    );
    if let Some(p) = ask.flags.value(PREFIX) {
        t.push_str(&format!("prefix = {}\n", toml_string(p)));
    }
    t.push_str(&ask.home_and_copies());
    t.push('\n');
    for (r, etcd) in members {
        t.push_str(&format!(
            "\n[targets.etcd.regions.{r}]\nendpoints = {}\n",
            toml_list(&etcd.endpoints)
        ));
        if let Some((ca, cert, key)) = &etcd.tls {
            t.push_str(&format!(
                "# The API server's own etcd client files, as its pod names them:\n# copy them where drtool runs if it runs elsewhere.\ntls = {{ ca = {}, cert = {}, key = {} }}\n",
                toml_string(ca),
                toml_string(cert),
                toml_string(key)
            ));
        }
    }
    t
}

#[async_trait]
impl Discovery for EtcdKind {
    fn init_flags(&self) -> &'static [FlagSpec] {
        FLAGS
    }

    async fn discover(
        &self,
        ask: &InitAsk<'_>,
        found: &mut InitFound,
    ) -> Result<(), Box<dyn KindError>> {
        let mut members = BTreeMap::new();
        for (r, urls) in ask.flags.pairs(ETCD) {
            let endpoints: Vec<String> = urls.split(',').map(|u| u.trim().to_string()).collect();
            found
                .notes
                .push(format!("{r}: etcd at {}", endpoints.join(", ")));
            members.insert(
                r,
                Members {
                    endpoints,
                    tls: None,
                },
            );
        }
        let notes = from_clusters(ask, &mut members).await;
        found.notes.extend(notes);
        if members.contains_key(ask.home) {
            found.sections.push(section(ask, &members));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
        let etcd = of_apiserver(&pod).unwrap();
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
        assert_eq!(of_apiserver(&pod).unwrap().tls, None);
        // No flag, an empty flag, no containers: nothing.
        for pod in [
            serde_json::json!({"spec": {"containers": [{"command": ["kube-apiserver"]}]}}),
            serde_json::json!({"spec": {"containers": [{"command": ["--etcd-servers="]}]}}),
            serde_json::json!({"spec": {}}),
        ] {
            assert_eq!(of_apiserver(&pod), None, "{pod}");
        }
    }
}
