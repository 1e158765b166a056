//! What drills do to a namespace target: faults (delete the namespace, delete
//! objects by label selector), the object probe (present, ready), and canary
//! ConfigMaps in the namespace, which a namespace backup carries along.

use chrono::{DateTime, Utc};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::restore::{TERMINATING_WAIT, wait_terminated};
use super::{
    CANARY_LABEL, Cluster, Lister, NamespaceError, api_code, collection_path, kube_err,
    resource_name,
};
use crate::engine::events::Job;
use crate::engine::faults::{CanaryMark, KindFault, NoFields};
use crate::error::Error;

/// The faults, as drill files name them.
pub const DELETE_NAMESPACE: &str = "delete_namespace";
pub const DELETE_OBJECTS: &str = "delete_objects";
pub const FAULTS: &[&str] = &[DELETE_NAMESPACE, DELETE_OBJECTS];

/// `delete_objects: { target, region, resource, selector }`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteObjectsFault {
    /// Plural resource name, e.g. `configmaps` or `deployments.apps`.
    pub resource: String,
    /// Label selector, e.g. `app=shop`.
    pub selector: String,
}

/// Reads a drill's namespace fault.
pub fn read_fault(
    name: &str,
    (target, region): (&str, &str),
    fields: Value,
) -> Result<(KindFault, String), Error> {
    match name {
        DELETE_NAMESPACE => KindFault::read(name, fields, |_: &NoFields| {
            format!("delete the namespace of {target} in {region}")
        }),
        _ => KindFault::read(name, fields, |d: &DeleteObjectsFault| {
            format!(
                "delete {} matching {} of {target} in {region}",
                d.resource, d.selector
            )
        }),
    }
}

/// The object probe, as drill files name it.
pub const OBJECT_PROBE: &str = "kube";

/// `kube: { ..., resource: deployments.apps, object: web, ready: true }`:
/// the object exists (and is ready, when asked).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectProbe {
    /// Plural resource, e.g. `configmaps` or `deployments.apps`.
    pub resource: String,
    /// The object's name.
    pub object: String,
    /// Another namespace than the target's (a mapped restore's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Also require it to be ready (its Ready condition, or every replica ready).
    #[serde(default)]
    pub ready: bool,
}

/// A Kubernetes name made of a run id (lowercase, `-` only).
pub fn k8s_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(63)
        .collect()
}

/// The served resource named `plural` or `plural.group`.
pub async fn resource(cluster: &Cluster, name: &str, job: &Job) -> Result<ApiResource, Error> {
    let all = cluster.namespaced_resources(job).await?;
    all.into_iter()
        .find(|ar| resource_name(&ar.plural, &ar.group) == name || ar.plural == name)
        .ok_or_else(|| {
            NamespaceError::NoSuchResource {
                cluster: cluster.name.clone(),
                name: name.to_string(),
            }
            .into()
        })
}

pub async fn delete_namespace(cluster: &Cluster, ns: &str) -> Result<String, Error> {
    match cluster
        .send_json(
            http::Method::DELETE,
            &format!("/api/v1/namespaces/{ns}"),
            &json!({}),
        )
        .await
    {
        Ok(_) => Ok(format!("deleted namespace {ns} on {}", cluster.name)),
        Err(e) if api_code(&e) == Some(404) => Err(NamespaceError::NothingToDelete {
            namespace: ns.to_string(),
            cluster: cluster.name.clone(),
        }
        .into()),
        Err(e) => Err(kube_err(&cluster.name, "delete namespace", e).into()),
    }
}

/// Deletes a namespace drtool made and waits until the namespace controller
/// has emptied it, so nothing is left behind and the name is free again; one
/// still there after [`TERMINATING_WAIT`] is an error naming what holds it.
pub async fn delete_namespace_until_gone(
    cluster: &Cluster,
    ns: &str,
    job: &Job,
) -> Result<String, Error> {
    let deleted = delete_namespace(cluster, ns).await?;
    match wait_terminated(cluster, ns, TERMINATING_WAIT, job).await? {
        None => Ok(deleted),
        Some(why) => Err(NamespaceError::NotGone {
            why,
            waited_secs: TERMINATING_WAIT.as_secs(),
        }
        .into()),
    }
}

/// Deletes every object of `ar` in `ns` matching `selector`; how many.
pub async fn delete_objects(
    cluster: &Cluster,
    ar: &ApiResource,
    ns: &str,
    selector: &str,
) -> Result<u64, Error> {
    let path = collection_path(ar, Some(ns));
    let mut deleted = 0;
    let mut pages = Lister::new(cluster, path.clone(), Some(selector.to_string()));
    while let Some(items) = pages.next(None).await? {
        for item in &items {
            let Some(name) = item["metadata"]["name"].as_str() else {
                continue;
            };
            match cluster
                .send_json(http::Method::DELETE, &format!("{path}/{name}"), &json!({}))
                .await
            {
                Ok(_) => deleted += 1,
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => return Err(kube_err(&cluster.name, "delete", e).into()),
            }
        }
    }
    Ok(deleted)
}

/// The object probe: it exists, and (when asked) it is ready.
pub async fn probe_object(
    cluster: &Cluster,
    ar: &ApiResource,
    ns: &str,
    name: &str,
    ready: bool,
) -> Result<String, Error> {
    let path = format!("{}/{name}", collection_path(ar, Some(ns)));
    let object = match cluster.get_json(&path).await {
        Ok(o) => o,
        Err(e) if api_code(&e) == Some(404) => {
            return Err(NamespaceError::ObjectMissing {
                resource: ar.plural.clone(),
                namespace: ns.to_string(),
                name: name.to_string(),
            }
            .into());
        }
        Err(e) => return Err(kube_err(&cluster.name, "get", e).into()),
    };
    if !ready {
        return Ok(format!("{} {ns}/{name} exists", ar.plural));
    }
    let r = readiness(&object);
    if r.ready() {
        Ok(format!("{} {ns}/{name} is ready ({r})", ar.plural))
    } else {
        Err(NamespaceError::NotReady {
            resource: ar.plural.clone(),
            namespace: ns.to_string(),
            name: name.to_string(),
            readiness: r,
        }
        .into())
    }
}

/// What an object's readiness was judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Its `Ready` (or `Available`) condition with its status.
    Condition { name: &'static str, status: String },
    /// Its ready replicas against the desired ones.
    Replicas { have: u64, want: u64 },
    /// Neither: ready by existing.
    Exists,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        match self {
            Readiness::Condition { status, .. } => status == "True",
            Readiness::Replicas { have, want } => have >= want,
            Readiness::Exists => true,
        }
    }
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Readiness::Condition { name, status } => write!(f, "{name}={status}"),
            Readiness::Replicas { have, want } => write!(f, "{have}/{want} replicas ready"),
            Readiness::Exists => f.write_str("no readiness to wait for"),
        }
    }
}

/// Whether an object is ready: its `Ready` (or `Available`) condition, else
/// every desired replica ready; an object with neither is ready by existing.
pub fn readiness(object: &Value) -> Readiness {
    let status = &object["status"];
    if let Some(conditions) = status["conditions"].as_array() {
        for name in ["Ready", "Available"] {
            if let Some(c) = conditions.iter().find(|c| c["type"] == name) {
                return Readiness::Condition {
                    name,
                    status: c["status"].as_str().unwrap_or("?").to_string(),
                };
            }
        }
    }
    if let Some(want) = object["spec"]["replicas"].as_u64() {
        let have = status["readyReplicas"].as_u64().unwrap_or(0);
        return Readiness::Replicas { have, want };
    }
    Readiness::Exists
}

fn canary_path(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/configmaps")
}

pub async fn canary_write(
    cluster: &Cluster,
    ns: &str,
    run: &str,
    mark: CanaryMark,
) -> Result<(), Error> {
    let run = k8s_name(run);
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("drtool-canary-{run}-{:010}", mark.seq),
            "labels": { CANARY_LABEL: run },
        },
        "data": { "seq": mark.seq.to_string(), "at": mark.at.to_rfc3339() },
    });
    cluster
        .send_json(http::Method::POST, &canary_path(ns), &body)
        .await
        .map_err(|e| kube_err(&cluster.name, "create canary ConfigMap", e))?;
    Ok(())
}

pub async fn canary_read(cluster: &Cluster, ns: &str, run: &str) -> Result<Vec<CanaryMark>, Error> {
    let selector = format!("{CANARY_LABEL}={}", k8s_name(run));
    let mut out = Vec::new();
    let mut pages = Lister::new(cluster, canary_path(ns), Some(selector));
    while let Some(items) = pages.next(None).await? {
        for item in &items {
            let seq = item["data"]["seq"].as_str().and_then(|s| s.parse().ok());
            let at = item["data"]["at"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc));
            if let (Some(seq), Some(at)) = (seq, at) {
                out.push(CanaryMark { seq, at });
            }
        }
    }
    Ok(out)
}

pub async fn canary_clear(cluster: &Cluster, ns: &str, run: &str) -> Result<u64, Error> {
    let ar = ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
    };
    match delete_objects(
        cluster,
        &ar,
        ns,
        &format!("{CANARY_LABEL}={}", k8s_name(run)),
    )
    .await
    {
        Ok(n) => Ok(n),
        // The namespace is gone: so are its canaries.
        Err(e)
            if e.kind_error::<NamespaceError>()
                .and_then(NamespaceError::code)
                == Some(404) =>
        {
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_conditions_then_replicas() {
        let cases = [
            (
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                true,
            ),
            (
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                false,
            ),
            (
                json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
                true,
            ),
            (
                json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 3}}),
                true,
            ),
            (
                json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 1}}),
                false,
            ),
            (json!({"spec": {"replicas": 2}}), false),
            (json!({"data": {"a": "b"}}), true),
        ];
        for (object, ready) in cases {
            assert_eq!(readiness(&object).ready(), ready, "{object}");
        }
    }

    #[test]
    fn run_ids_become_kubernetes_names() {
        assert_eq!(
            k8s_name("Etcd_Failover-20261201T1830Z"),
            "etcd-failover-20261201t1830z"
        );
    }
}
