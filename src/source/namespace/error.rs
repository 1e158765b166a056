//! What goes wrong with namespace targets, with the facts as fields; the
//! message is rendered where it is shown.

use std::path::PathBuf;

use super::drill::Readiness;
use crate::error::{ErrorClass, KindError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamespaceError {
    /// The API server refused the context's user (403).
    #[error(
        "{what} on {cluster}: 403 {reason}: {message}; give the context's user the role drtool needs (README: Kubernetes permissions) or use another context"
    )]
    Forbidden {
        what: String,
        cluster: String,
        reason: String,
        message: String,
    },
    /// Any other answer of the API server that is an error.
    #[error("{what} on {cluster}: {code} {reason}: {message}")]
    Api {
        what: String,
        cluster: String,
        code: u16,
        reason: String,
        message: String,
    },
    #[error(
        "namespace {namespace:?} does not exist in {cluster}: check `namespace` of the target and the context"
    )]
    MissingNamespace { namespace: String, cluster: String },
    #[error("namespace {namespace} does not exist on {cluster}: nothing to delete")]
    NothingToDelete { namespace: String, cluster: String },
    /// A restore found its namespace still being deleted (`why`: what holds it).
    #[error(
        "{why}: still there after {waited_secs} s, nothing was written; clear what holds it (kubectl get namespace {namespace} -o yaml shows it) and restore again, or restore next to it with --namespace-map"
    )]
    StuckTerminating {
        why: String,
        namespace: String,
        waited_secs: u64,
    },
    /// A namespace drtool deleted is still there (`why`: what holds it).
    #[error("{why}: not gone {waited_secs} s after its deletion; remove what holds it by hand")]
    NotGone { why: String, waited_secs: u64 },
    #[error(
        "the user of {cluster} may not {missing}: nothing was written; give it the drtool-restore role (README: Kubernetes permissions) or restore with another context"
    )]
    MayNot { cluster: String, missing: String },
    #[error(
        "{cluster} serves no namespaced resource {name:?}: name it by plural (configmaps) or plural.group (deployments.apps)"
    )]
    NoSuchResource { cluster: String, name: String },
    #[error(
        "list {path} on {cluster}: its continue token expired {times} times in a row: etcd is compacted faster than one page is read; back up when the cluster is quieter, lower the target's page_size or raise the API server's --etcd-compaction-interval"
    )]
    TokenKeptExpiring {
        path: String,
        cluster: String,
        times: u32,
    },
    #[error(
        "CRD {crd} on {cluster}: created but not served after 60 s; see its conditions (kubectl get crd {crd} -o yaml) and restore again"
    )]
    CrdNotServed { crd: String, cluster: String },
    /// An object probe found no object.
    #[error("{resource} {namespace}/{name}: not found")]
    ObjectMissing {
        resource: String,
        namespace: String,
        name: String,
    },
    /// An object probe found the object not ready.
    #[error("{resource} {namespace}/{name}: not ready: {readiness}")]
    NotReady {
        resource: String,
        namespace: String,
        name: String,
        readiness: Readiness,
    },
    /// `--namespace-map` names a namespace the target does not back up.
    #[error(
        "--namespace-map {from}=...: target {target} backs up namespace {backs_up}, not {from}"
    )]
    NotItsNamespace {
        target: String,
        backs_up: String,
        from: String,
    },
}

impl NamespaceError {
    /// The API server's status code, when it answered with one.
    pub fn code(&self) -> Option<u16> {
        match self {
            NamespaceError::Forbidden { .. } => Some(403),
            NamespaceError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl KindError for NamespaceError {
    fn class(&self) -> ErrorClass {
        match self {
            NamespaceError::Forbidden { .. }
            | NamespaceError::NotItsNamespace { .. }
            | NamespaceError::MissingNamespace { .. }
            | NamespaceError::NothingToDelete { .. }
            | NamespaceError::MayNot { .. }
            | NamespaceError::NoSuchResource { .. } => ErrorClass::BadInput,
            NamespaceError::Api { .. }
            | NamespaceError::StuckTerminating { .. }
            | NamespaceError::NotGone { .. }
            | NamespaceError::TokenKeptExpiring { .. }
            | NamespaceError::CrdNotServed { .. }
            | NamespaceError::ObjectMissing { .. }
            | NamespaceError::NotReady { .. } => ErrorClass::Failed,
        }
    }
}

crate::error::kind_error_from!(NamespaceError);

/// What `drtool init` was asked about namespaces that cannot be.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "kubeconfig {} does not exist: give --kubeconfig an existing file, or leave it out to use $KUBECONFIG or ~/.kube/config",
        .0.display()
    )]
    NoKubeconfig(PathBuf),
    #[error(
        "cannot read kubeconfig {}: {reason}; mend the file or give another with --kubeconfig",
        .path.display()
    )]
    Kubeconfig { path: PathBuf, reason: String },
    #[error(
        "context {context:?} is not in {} (contexts: {}): give --context REGION=NAME with one of them",
        .path.display(),
        .contexts.join(", ")
    )]
    UnknownContext {
        context: String,
        path: PathBuf,
        contexts: Vec<String>,
    },
    #[error(
        "cannot list the namespaces of {context}: {reason}; check that the context's user may list namespaces (kubectl --context {context} get namespaces)"
    )]
    ListNamespaces { context: String, reason: String },
    #[error(
        "namespace {namespace:?} is not in context {context} (namespaces: {}): name one of them with --namespace, or leave it out to take all but default and kube-*",
        .namespaces.join(", ")
    )]
    UnknownNamespace {
        namespace: String,
        context: String,
        namespaces: Vec<String>,
    },
}

impl KindError for InitError {
    fn class(&self) -> ErrorClass {
        ErrorClass::BadInput
    }
}
