//! What a backup leaves out of an object and what a restore must not send.

use serde_json::{Map, Value};

pub struct StripOptions {
    pub keep_last_applied: bool,
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Server-owned metadata the new cluster assigns itself.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "managedFields",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    // Owner UIDs differ in the new cluster; stale references would get the
    // object garbage-collected there.
    "ownerReferences",
];

/// The labels the API server puts on a Job's pod template (and selector),
/// naming the Job's uid: another cluster refuses them.
pub const JOB_UID_LABELS: [&str; 4] = [
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
];

/// Removes status and server-owned fields.
pub fn strip(mut object: Value, opts: &StripOptions) -> Value {
    let namespace = object["kind"] == "Namespace";
    if let Some(o) = object.as_object_mut() {
        o.remove("status");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_METADATA {
            meta.remove(*f);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            if !opts.keep_last_applied {
                ann.remove(LAST_APPLIED);
            }
            ann.remove("deployment.kubernetes.io/revision");
        }
        // The API server sets this label on every namespace to its name; a
        // namespace restored under another name gets its own.
        if namespace && let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove("kubernetes.io/metadata.name");
        }
        drop_empty(meta, "annotations");
        drop_empty(meta, "labels");
    }
    object
}

fn drop_empty(map: &mut Map<String, Value>, key: &str) {
    if map
        .get(key)
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        map.remove(key);
    }
}

/// Objects that must not come back: owned by a controller (it recreates
/// them), service-account tokens (the new cluster issues its own) and the
/// `kube-root-ca.crt` ConfigMap the controller manager publishes in every
/// namespace (it holds the cluster's own CA; another cluster's would be wrong).
pub fn skip(resource: &str, object: &Value) -> bool {
    if resource == "configmaps" && object["metadata"]["name"] == "kube-root-ca.crt" {
        return true;
    }
    let controlled = object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["controller"] == Value::Bool(true)));
    let sa_token = resource == "secrets" && object["type"] == "kubernetes.io/service-account-token";
    controlled || sa_token
}

/// Fields a new cluster must assign: dropped before create/compare.
/// `resource` is `plural` or `plural.group`, as [`super::ObjectRecord::resource`] names it.
pub fn for_new_cluster(resource: &str, mut object: Value) -> Value {
    match resource {
        "services" => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                // Headless services keep "None": it is a choice, not an address.
                if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
                    spec.remove("clusterIP");
                    spec.remove("clusterIPs");
                }
                spec.remove("healthCheckNodePort");
            }
        }
        "persistentvolumeclaims" => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("volumeName");
            }
            if let Some(ann) = object["metadata"]
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
            {
                for a in [
                    "pv.kubernetes.io/bind-completed",
                    "pv.kubernetes.io/bound-by-controller",
                    "volume.kubernetes.io/selected-node",
                ] {
                    ann.remove(a);
                }
            }
        }
        "pods" => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("nodeName");
            }
        }
        // The server gives every Job a selector and template labels with its
        // own uid; another cluster's uid is refused. A manual selector is
        // the user's and stays.
        "jobs.batch" if object["spec"]["manualSelector"] != Value::Bool(true) => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("selector");
            }
            if let Some(labels) = object
                .pointer_mut("/spec/template/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                for l in JOB_UID_LABELS {
                    labels.remove(l);
                }
            }
        }
        "serviceaccounts" => {
            if let Some(o) = object.as_object_mut() {
                o.remove("secrets");
            }
        }
        _ => {}
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_server_fields_and_last_applied() {
        let o = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "5",
                "creationTimestamp": "t", "managedFields": [], "generation": 1,
                "annotations": {LAST_APPLIED: "{}"}, "labels": {"app": "x"}},
            "data": {"k": "v"}, "status": {"x": 1}
        });
        let s = strip(
            o,
            &StripOptions {
                keep_last_applied: false,
            },
        );
        assert_eq!(
            s,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "a", "namespace": "n", "labels": {"app": "x"}},
                "data": {"k": "v"}})
        );
    }

    #[test]
    fn skips_controlled_objects_and_sa_tokens() {
        let pod =
            json!({"metadata": {"ownerReferences": [{"controller": true, "kind": "ReplicaSet"}]}});
        assert!(skip("pods", &pod));
        assert!(!skip("pods", &json!({"metadata": {}})));
        assert!(skip(
            "secrets",
            &json!({"metadata": {}, "type": "kubernetes.io/service-account-token"})
        ));
        assert!(!skip("secrets", &json!({"metadata": {}, "type": "Opaque"})));
        assert!(skip(
            "configmaps",
            &json!({"metadata": {"name": "kube-root-ca.crt"}})
        ));
        assert!(!skip("configmaps", &json!({"metadata": {"name": "app"}})));
        // A Job loses the server's selector and uid labels, unless the
        // selector is the user's own.
        let job = json!({"spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
            "template": {"metadata": {"labels": {
                "app": "x", "controller-uid": "u1", "batch.kubernetes.io/controller-uid": "u1",
                "job-name": "j", "batch.kubernetes.io/job-name": "j"}}}}});
        let new = for_new_cluster("jobs.batch", job.clone());
        // Named by resource (plural.group): another group's "jobs" is not a Job.
        assert_eq!(for_new_cluster("jobs.example.com", job.clone()), job);
        assert_eq!(
            new["spec"],
            json!({"template": {"metadata": {"labels": {"app": "x"}}}})
        );
        let manual =
            json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}});
        assert_eq!(for_new_cluster("jobs.batch", manual.clone()), manual);
    }

    #[test]
    fn new_cluster_assigns_cluster_ips_but_headless_stays() {
        let svc = json!({"metadata": {}, "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ports": []}});
        assert_eq!(
            for_new_cluster("services", svc),
            json!({"metadata": {}, "spec": {"ports": []}})
        );
        let headless = json!({"metadata": {}, "spec": {"clusterIP": "None"}});
        assert_eq!(for_new_cluster("services", headless.clone()), headless);
    }
}
