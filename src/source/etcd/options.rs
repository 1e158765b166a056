//! An etcd restore's own options: `--prefix`, `--key`, `--object` and
//! `--allow-encrypted`.

use serde::{Deserialize, Serialize};

use crate::engine::options::{FlagShape, FlagSpec, FlagValues, KindOptions};
use crate::error::Error;

pub const PREFIX: &str = "prefix";
pub const KEY: &str = "key";
pub const OBJECT: &str = "object";
pub const ALLOW_ENCRYPTED: &str = "allow-encrypted";

pub const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        long: PREFIX,
        value_name: "PREFIX",
        help: "etcd: restore only keys under this prefix into the live cluster (keys points, and snapshot points read without etcd).",
        shape: FlagShape::One,
        file: false,
        needs: None,
    },
    FlagSpec {
        long: KEY,
        value_name: "KEY",
        help: "etcd: restore exactly this key into the live cluster (repeatable; keys or snapshot points).",
        shape: FlagShape::Many,
        file: false,
        needs: None,
    },
    FlagSpec {
        long: OBJECT,
        value_name: "KIND/NAMESPACE/NAME",
        help: "etcd: restore this Kubernetes object's key (/registry/...; KIND/NAME for cluster-scoped ones; repeatable).",
        shape: FlagShape::Many,
        file: false,
        needs: None,
    },
    FlagSpec {
        long: ALLOW_ENCRYPTED,
        value_name: "",
        help: "etcd --object: restore objects whose values are encrypted at rest (they read back only where the same encryption key is configured).",
        shape: FlagShape::Switch,
        file: false,
        needs: Some(OBJECT),
    },
];

/// What an etcd restore is asked beside `--existing`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdRestoreOptions {
    /// Only keys under this prefix.
    pub prefix: Option<String>,
    /// Exactly these keys (`--key`, and `--object` mapped to its key).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Whether keys came from `--object` (their values are checked for
    /// encryption at rest).
    #[serde(default)]
    pub objects: bool,
    #[serde(default)]
    pub allow_encrypted: bool,
}

impl EtcdRestoreOptions {
    pub fn parse(flags: &FlagValues) -> Result<KindOptions, Error> {
        let mut keys: Vec<String> = flags.values(KEY).to_vec();
        for o in flags.values(OBJECT) {
            keys.push(object_key(o)?);
        }
        let prefix = flags.value(PREFIX).map(str::to_string);
        if prefix.is_some() && !keys.is_empty() {
            return Err(Error::input(
                "--prefix and --key/--object both choose keys: give one of them",
            ));
        }
        keys.sort();
        keys.dedup();
        KindOptions::of(
            "etcd",
            &EtcdRestoreOptions {
                prefix,
                keys,
                objects: !flags.values(OBJECT).is_empty(),
                allow_encrypted: flags.on(ALLOW_ENCRYPTED),
            },
        )
    }

    /// Whether the restore writes chosen keys into the live cluster
    /// rather than the whole point.
    pub fn key_level(&self) -> bool {
        self.prefix.is_some() || !self.keys.is_empty()
    }
}

/// Where the API server keeps resources whose etcd path is not their
/// plural name, by plural name.
const STORED_AS: &[(&str, &str)] = &[
    ("services", "services/specs"),
    ("endpoints", "services/endpoints"),
    ("replicationcontrollers", "controllers"),
    ("ingresses", "ingress"),
    ("nodes", "minions"),
    (
        "customresourcedefinitions",
        "apiextensions.k8s.io/customresourcedefinitions",
    ),
    ("apiservices", "apiregistration.k8s.io/apiservices"),
];

/// Names people use for the built-in resources, and their plural.
const KINDS: &[(&[&str], &str)] = &[
    (&["configmap", "cm"], "configmaps"),
    (&["secret"], "secrets"),
    (&["service", "svc"], "services"),
    (&["endpoints", "ep"], "endpoints"),
    (&["pod", "po"], "pods"),
    (&["deployment", "deploy"], "deployments"),
    (&["statefulset", "sts"], "statefulsets"),
    (&["daemonset", "ds"], "daemonsets"),
    (&["replicaset", "rs"], "replicasets"),
    (&["replicationcontroller", "rc"], "replicationcontrollers"),
    (&["job"], "jobs"),
    (&["cronjob", "cj"], "cronjobs"),
    (&["serviceaccount", "sa"], "serviceaccounts"),
    (&["persistentvolumeclaim", "pvc"], "persistentvolumeclaims"),
    (&["persistentvolume", "pv"], "persistentvolumes"),
    (&["ingress", "ing"], "ingresses"),
    (&["networkpolicy", "netpol"], "networkpolicies"),
    (&["role"], "roles"),
    (&["rolebinding"], "rolebindings"),
    (&["clusterrole"], "clusterroles"),
    (&["clusterrolebinding"], "clusterrolebindings"),
    (
        &["horizontalpodautoscaler", "hpa"],
        "horizontalpodautoscalers",
    ),
    (&["poddisruptionbudget", "pdb"], "poddisruptionbudgets"),
    (&["lease"], "leases"),
    (&["limitrange", "limits"], "limitranges"),
    (&["resourcequota", "quota"], "resourcequotas"),
    (&["namespace", "ns"], "namespaces"),
    (&["node", "no"], "nodes"),
    (&["storageclass", "sc"], "storageclasses"),
    (&["priorityclass", "pc"], "priorityclasses"),
    (
        &["customresourcedefinition", "crd", "crds"],
        "customresourcedefinitions",
    ),
    (&["endpointslice"], "endpointslices"),
    (&["controllerrevision"], "controllerrevisions"),
];

/// The etcd key of a Kubernetes object named `KIND/NAMESPACE/NAME` (or
/// `KIND/NAME` when cluster-scoped), as the API server stores it under
/// its default `/registry` prefix. A custom resource is named by
/// `plural.group` (`gadgets.example.com/shop/g1`).
pub fn object_key(spec: &str) -> Result<String, Error> {
    let bad = |why: &str| {
        Error::input(format!(
            "--object {spec:?}: {why}; give KIND/NAMESPACE/NAME (ConfigMap/shop/app-config) or KIND/NAME for a cluster-scoped object"
        ))
    };
    let parts: Vec<&str> = spec.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) || !(2..=3).contains(&parts.len()) {
        return Err(bad("it is not two or three names joined by /"));
    }
    let kind = parts[0].to_ascii_lowercase();
    let path = if let Some((plural, group)) = kind.split_once('.') {
        format!("{group}/{plural}")
    } else {
        let plural = KINDS
            .iter()
            .find(|(names, plural)| *plural == kind || names.contains(&kind.as_str()))
            .map(|(_, plural)| *plural)
            .ok_or_else(|| {
                bad(&format!(
                    "{kind} is not a kind drtool knows; name a custom resource by plural.group"
                ))
            })?;
        STORED_AS
            .iter()
            .find(|(p, _)| *p == plural)
            .map_or(plural.to_string(), |(_, stored)| stored.to_string())
    };
    Ok(format!("/registry/{path}/{}", parts[1..].join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_map_to_the_keys_the_api_server_stores_them_under() {
        let key = |s: &str| object_key(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key("ConfigMap/shop/app"), "/registry/configmaps/shop/app");
        assert_eq!(key("cm/shop/app"), "/registry/configmaps/shop/app");
        assert_eq!(key("svc/shop/web"), "/registry/services/specs/shop/web");
        assert_eq!(key("Ingress/shop/web"), "/registry/ingress/shop/web");
        assert_eq!(
            key("deployments/shop/web"),
            "/registry/deployments/shop/web"
        );
        assert_eq!(key("namespace/shop"), "/registry/namespaces/shop");
        assert_eq!(
            key("crd/gadgets.example.com"),
            "/registry/apiextensions.k8s.io/customresourcedefinitions/gadgets.example.com"
        );
        assert_eq!(
            key("gadgets.example.com/shop/g1"),
            "/registry/example.com/gadgets/shop/g1"
        );
        for bad in ["", "cm", "cm//x", "widget/shop/x", "cm/a/b/c"] {
            let e = object_key(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("--object"), "{bad}: {e}");
        }
    }
}
