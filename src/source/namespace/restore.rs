//! Restoring a namespace point: CRDs first (waiting until they are served), then
//! the namespace, then objects in the order the backup wrote them (dependency
//! order). Each object is compared with what the cluster already has, so a
//! second run changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kube::api::ApiResource;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use super::strip::{StripOptions, for_new_cluster, strip};
use super::{
    Cluster, NamespaceError, ObjectRecord, PAGE, api_code, collection_path, fetch_page, kube_err,
    selected,
};
use crate::engine::events::Job;
use crate::engine::options::Existing;
use crate::error::{Error, SourceError};

const CRD: &str = "customresourcedefinitions.apiextensions.k8s.io";

/// Which objects a restore reads and where they go.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
pub struct RestoreScope {
    /// The namespace the point was taken from.
    pub source_namespace: String,
    /// The namespace to restore into (the same unless mapped).
    pub namespace: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub existing: Existing,
    /// Bring back drill canary ConfigMaps (a drill's own restore only).
    #[serde(default)]
    pub with_canaries: bool,
}

/// Per resource: what the restore does with its objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ResourcePlan {
    pub create: u64,
    pub update: u64,
    pub unchanged: u64,
    pub skip: u64,
    pub conflict: u64,
    /// The first objects that differ from what exists (to be updated,
    /// skipped or in conflict), each with a diff of its fields: the live
    /// object (`---`) against the point's (`+++`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differing: Vec<ObjectDiff>,
}

/// An object that exists in the target and differs from the point's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ObjectDiff {
    pub name: String,
    /// What the restore does with it: update, skip or conflict.
    pub decision: String,
    pub fields: String,
}

/// Field diffs kept per resource in a plan.
const DIFFS_PER_RESOURCE: usize = 10;
/// A field diff longer than this is cut in a plan.
const MAX_FIELD_DIFF: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectFailure {
    pub resource: String,
    pub name: String,
    pub error: String,
}

/// A Service's node port another Service of the cluster holds: written with
/// the port the server chose instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodePortMoved {
    pub service: String,
    pub from: u64,
    pub to: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NamespaceOutcome {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: Vec<ObjectFailure>,
    pub node_ports_moved: Vec<NodePortMoved>,
}

/// What a restore does with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Create,
    Update,
    Unchanged,
    Skip,
    Conflict,
}

/// What the target holds under one name.
#[derive(Debug, Clone)]
pub struct Live {
    resource_version: String,
    /// The object in the form `desired` produces, for comparison.
    form: Value,
    /// `spec.replicas` as an autoscaler set it through the scale
    /// subresource: the autoscaler's from then on, so a restore neither
    /// compares it nor puts the point's count back over it.
    autoscaled: Option<Value>,
}

impl Live {
    fn of(resource: &str, object: Value) -> Live {
        let resource_version = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let autoscaled = scaled_by_autoscaler(&object).then(|| object["spec"]["replicas"].clone());
        Live {
            resource_version,
            form: comparable(resource, object),
            autoscaled,
        }
    }
}

/// Whether the object's replica count was last written through its scale
/// subresource (by a HorizontalPodAutoscaler, KEDA or `kubectl scale`), as the
/// server's managedFields record it.
fn scaled_by_autoscaler(object: &Value) -> bool {
    object["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|entries| {
            entries.iter().any(|m| {
                m["subresource"] == "scale" && !m["fieldsV1"]["f:spec"]["f:replicas"].is_null()
            })
        })
}

/// What exists in the target for one resource, by name.
type TargetObjects = HashMap<String, Live>;

/// Splits a chunk stream into JSON Lines records.
pub(super) struct Records {
    rx: mpsc::Receiver<Bytes>,
    buf: Vec<u8>,
    line: u64,
    done: bool,
}

impl Records {
    pub(super) fn new(rx: mpsc::Receiver<Bytes>) -> Records {
        Records {
            rx,
            buf: Vec::new(),
            line: 0,
            done: false,
        }
    }

    pub(super) async fn next(&mut self) -> Option<Result<ObjectRecord, SourceError>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                self.line += 1;
                if line.len() <= 1 {
                    continue;
                }
                let parsed = serde_json::from_slice::<ObjectRecord>(&line[..line.len() - 1])
                    .map_err(|e| RefusedRecord::Unreadable(e.to_string()))
                    .and_then(checked);
                return Some(parsed.map_err(|detail| SourceError::Integrity {
                    what: format!("namespace payload line {}", self.line),
                    detail: format!(
                        "{detail}: the point is not a payload drtool wrote; restore another point"
                    ),
                }));
            }
            if self.done {
                return None;
            }
            match self.rx.recv().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => {
                    self.done = true;
                    if !self.buf.is_empty() && self.buf.last() != Some(&b'\n') {
                        self.buf.push(b'\n');
                    }
                }
            }
        }
    }
}

/// What a restore accepts from a payload line: an object with a name, and of
/// the cluster-scoped kinds only those backups write (CRDs, the namespace).
/// Anything else was not written by drtool: a damaged or forged point must not
/// create cluster-wide objects (a ClusterRoleBinding) without anyone asking.
fn checked(r: ObjectRecord) -> Result<ObjectRecord, RefusedRecord> {
    let named = r.object.is_object()
        && r.object.get("metadata").is_some_and(Value::is_object)
        && r.object["metadata"]
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
    if !named {
        return Err(RefusedRecord::Unnamed {
            resource: r.resource(),
        });
    }
    let resource = r.resource();
    if !r.namespaced && resource != CRD && resource != "namespaces" {
        return Err(RefusedRecord::ClusterScoped {
            name: r.name().to_string(),
            resource,
        });
    }
    Ok(r)
}

/// Why a payload line is not restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum RefusedRecord {
    /// Not the JSON of a record.
    #[error("{0}")]
    Unreadable(String),
    #[error("the {resource} record is not a Kubernetes object with metadata.name")]
    Unnamed { resource: String },
    #[error(
        "cluster-scoped {resource} {name:?} is never written by a namespace backup and is not restored"
    )]
    ClusterScoped { resource: String, name: String },
}

fn api_resource(r: &ObjectRecord) -> ApiResource {
    ApiResource {
        group: r.group.clone(),
        version: r.version.clone(),
        api_version: if r.group.is_empty() {
            r.version.clone()
        } else {
            format!("{}/{}", r.group, r.version)
        },
        kind: r.kind.clone(),
        plural: r.plural.clone(),
    }
}

/// The object as it should be created in the target namespace.
fn desired(r: &ObjectRecord, opts: &RestoreScope) -> Value {
    let mut object = for_new_cluster(&r.resource(), r.object.clone());
    if r.namespaced {
        object["metadata"]["namespace"] = Value::String(opts.namespace.clone());
    }
    if r.plural == "namespaces" {
        object["metadata"]["name"] = Value::String(opts.namespace.clone());
    }
    // RoleBindings that name service accounts of the old namespace follow it.
    if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
        for s in subjects {
            if s["namespace"] == Value::String(opts.source_namespace.clone()) {
                s["namespace"] = Value::String(opts.namespace.clone());
            }
        }
    }
    object
}

/// An existing object in the form `desired` produces, for comparison.
pub(super) fn comparable(resource: &str, existing: Value) -> Value {
    let mut o = for_new_cluster(
        resource,
        strip(
            existing,
            &StripOptions {
                keep_last_applied: true,
            },
        ),
    );
    if let Some(meta) = o["metadata"].as_object_mut() {
        meta.remove("namespace");
    }
    o
}

fn same(existing: &Live, desired: &Value) -> bool {
    let (current, d) = compared(existing, desired);
    current == d
}

/// The fields that differ between what exists and what the point holds,
/// as a unified diff of the two (none when they are the same).
fn field_diff(existing: &Live, desired: &Value) -> Option<String> {
    let (current, d) = compared(existing, desired);
    if current == d {
        return None;
    }
    let text = |v: &Value| format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default());
    let mut diff = crate::engine::diff::text_diff(
        text(&current).as_bytes(),
        text(&d).as_bytes(),
        ("live", "point"),
    )?;
    if diff.len() > MAX_FIELD_DIFF {
        let cut = diff[..MAX_FIELD_DIFF].rfind('\n').unwrap_or(0);
        diff.truncate(cut + 1);
        diff.push_str("... (cut)\n");
    }
    Some(diff)
}

/// What exists and what the point holds, in the form they are compared.
fn compared(existing: &Live, desired: &Value) -> (Value, Value) {
    let mut d = desired.clone();
    if let Some(meta) = d["metadata"].as_object_mut() {
        meta.remove("namespace");
    }
    let mut current = existing.form.clone();
    if existing.autoscaled.is_some() {
        for o in [&mut d, &mut current] {
            if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("replicas");
            }
        }
    }
    // apiVersion/kind may be missing from list items of some servers.
    let strip_type = |v: &mut Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("apiVersion");
            o.remove("kind");
        }
    };
    strip_type(&mut current);
    strip_type(&mut d);
    (current, d)
}

/// Tracks what the target holds, one resource at a time (records arrive grouped).
struct TargetState {
    resource: String,
    objects: TargetObjects,
}

impl TargetState {
    async fn load(
        &mut self,
        cluster: &Cluster,
        r: &ObjectRecord,
        opts: &RestoreScope,
    ) -> Result<(), SourceError> {
        let resource = r.resource();
        if self.resource == resource {
            return Ok(());
        }
        self.resource = resource.clone();
        self.objects.clear();
        let ar = api_resource(r);
        if !r.namespaced {
            return Ok(()); // cluster-scoped records are looked up one by one
        }
        let path = collection_path(&ar, Some(&opts.namespace));
        let mut token: Option<String> = None;
        loop {
            let page = match fetch_page(cluster, &path, None, token.as_deref(), PAGE).await {
                Ok(p) => p,
                // Not served (yet): a CRD this restore creates first. Nothing exists.
                Err(e) if api_code(&e) == Some(404) => return Ok(()),
                Err(e) => return Err(kube_err(&cluster.name, &format!("list {path}"), e)),
            };
            for item in page.items {
                let name = item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.objects.insert(name, Live::of(&resource, item));
            }
            token = page.next;
            if token.is_none() {
                return Ok(());
            }
        }
    }

    async fn existing(
        &self,
        cluster: &Cluster,
        r: &ObjectRecord,
        desired: &Value,
    ) -> Result<Option<Live>, SourceError> {
        if r.namespaced {
            return Ok(self.objects.get(r.name()).cloned());
        }
        let name = desired["metadata"]["name"].as_str().unwrap_or_default();
        let path = format!("{}/{name}", collection_path(&api_resource(r), None));
        match cluster.get_json(&path).await {
            Ok(o) => Ok(Some(Live::of(&r.resource(), o))),
            Err(e) if api_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(kube_err(&cluster.name, &format!("get {path}"), e)),
        }
    }
}

/// Decides one object from what the target holds under its name (with its
/// resourceVersion) and the policy for existing objects.
pub fn decide(existing: Option<&Live>, desired: &Value, policy: Existing) -> Decision {
    match existing {
        None => Decision::Create,
        Some(live) if same(live, desired) => Decision::Unchanged,
        Some(_) => match policy {
            Existing::Skip => Decision::Skip,
            Existing::Overwrite => Decision::Update,
            Existing::Fail => Decision::Conflict,
        },
    }
}

fn wanted(r: &ObjectRecord, opts: &RestoreScope) -> bool {
    if !opts.with_canaries && is_canary(r) {
        return false;
    }
    // CRDs and the namespace follow what they carry, never filtered away alone.
    let resource = r.resource();
    resource == CRD
        || resource == "namespaces"
        || selected(&resource, &r.plural, &opts.include, &opts.exclude)
}

/// A drill's canary ConfigMap (only a drill's own restore brings it back).
fn is_canary(r: &ObjectRecord) -> bool {
    r.plural == "configmaps"
        && r.group.is_empty()
        && !r.object["metadata"]["labels"][super::CANARY_LABEL].is_null()
}

/// Counts, per resource, what a restore would do. Reads the target only.
pub async fn plan(
    cluster: &Cluster,
    plaintext: mpsc::Receiver<Bytes>,
    opts: &RestoreScope,
    job: &Job,
) -> Result<BTreeMap<String, ResourcePlan>, Error> {
    let mut records = Records::new(plaintext);
    let mut state = TargetState {
        resource: String::new(),
        objects: HashMap::new(),
    };
    let mut kinds: BTreeMap<String, ResourcePlan> = BTreeMap::new();
    let mut seen = 0u64;
    while let Some(r) = records.next().await {
        let r = r?;
        if !wanted(&r, opts) {
            continue;
        }
        seen += 1;
        if seen.is_multiple_of(256) {
            job.check_cancelled()?;
            job.items(seen, None);
        }
        state.load(cluster, &r, opts).await?;
        let want = desired(&r, opts);
        let existing = state.existing(cluster, &r, &want).await?;
        let k = kinds.entry(r.resource()).or_default();
        let decision = decide(existing.as_ref(), &want, opts.existing);
        match decision {
            Decision::Create => k.create += 1,
            Decision::Update => k.update += 1,
            Decision::Unchanged => k.unchanged += 1,
            Decision::Skip => k.skip += 1,
            Decision::Conflict => k.conflict += 1,
        }
        if let Some(live) = &existing
            && k.differing.len() < DIFFS_PER_RESOURCE
            && let Some(fields) = field_diff(live, &want)
        {
            k.differing.push(ObjectDiff {
                name: r.name().to_string(),
                decision: match decision {
                    Decision::Update => "update",
                    Decision::Skip => "skip",
                    _ => "conflict",
                }
                .into(),
                fields,
            });
        }
    }
    Ok(kinds)
}

/// Whether the target namespace is being deleted, and what holds it: a
/// restore into it would be refused object by object (403), and it may hang
/// there for good on a finalizer nobody serves any more.
pub async fn terminating(
    cluster: &Cluster,
    namespace: &str,
) -> Result<Option<String>, SourceError> {
    let path = format!("/api/v1/namespaces/{namespace}");
    let ns = match cluster.get_json(&path).await {
        Ok(ns) => ns,
        Err(e) if api_code(&e) == Some(404) => return Ok(None),
        Err(e) => return Err(kube_err(&cluster.name, "get namespace", e)),
    };
    let Some(since) = ns["metadata"]["deletionTimestamp"].as_str() else {
        return Ok(None);
    };
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut finalizers = names(&ns["spec"]["finalizers"]);
    finalizers.extend(names(&ns["metadata"]["finalizers"]));
    let mut why = format!(
        "namespace {namespace} on {} is Terminating (deleted at {since}); finalizers: {}",
        cluster.name,
        if finalizers.is_empty() {
            "none".to_string()
        } else {
            finalizers.join(", ")
        }
    );
    // The namespace controller says what it still waits for.
    for c in ns["status"]["conditions"].as_array().into_iter().flatten() {
        if c["status"] == "True"
            && let Some(message) = c["message"].as_str()
        {
            why.push_str(&format!(
                "; {}: {message}",
                c["type"].as_str().unwrap_or("condition")
            ));
        }
    }
    Ok(Some(why))
}

/// How long a restore waits for a namespace that is being deleted to go (as
/// Velero's resourceTerminatingTimeout does), and how long deleting a
/// namespace drtool made (a drill's undo, a restore test's scratch) waits
/// until the namespace controller has emptied it.
pub const TERMINATING_WAIT: Duration = Duration::from_secs(120);

/// Waits, up to `within`, until namespace `ns` is not Terminating (gone or
/// never deleted). `Some(why)` names what still holds it when time is up.
pub async fn wait_terminated(
    cluster: &Cluster,
    namespace: &str,
    within: Duration,
    job: &Job,
) -> Result<Option<String>, SourceError> {
    let started = Instant::now();
    let mut said = false;
    loop {
        let Some(why) = terminating(cluster, namespace).await? else {
            return Ok(None);
        };
        if started.elapsed() >= within {
            return Ok(Some(why));
        }
        if !said {
            job.phase(format!(
                "waiting up to {} s for namespace {namespace} to finish terminating",
                within.as_secs()
            ));
            said = true;
        }
        if job.is_cancelled() {
            return Ok(Some(why));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the restore's plan will ask the server to do that the context's user
/// may not (asked through SelfSubjectAccessReviews, which every user may
/// send), in words: `create namespaces (1) cluster-wide; in namespace shop:
/// create configmaps (40), ...`. None when everything is allowed, and from a
/// server without the authorization API (not held against it).
pub async fn missing_permissions(
    cluster: &Cluster,
    scope: &RestoreScope,
    resources: &BTreeMap<String, ResourcePlan>,
) -> Result<Option<String>, SourceError> {
    let (mut cluster_wide, mut in_namespace) = (Vec::new(), Vec::new());
    for (resource, plan) in resources {
        let (plural, group) = resource.split_once('.').unwrap_or((resource.as_str(), ""));
        let namespaced = resource != CRD && resource != "namespaces";
        let namespace = if namespaced {
            scope.namespace.as_str()
        } else {
            ""
        };
        let verbs = [("create", plan.create), ("update", plan.update)];
        for (verb, n) in verbs.into_iter().filter(|(_, n)| *n > 0) {
            let review = serde_json::json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {
                    "namespace": namespace, "verb": verb, "group": group, "resource": plural,
                }},
            });
            let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
            match cluster.send_json(http::Method::POST, path, &review).await {
                Ok(answer) if answer["status"]["allowed"] == Value::Bool(true) => {}
                Ok(_) if namespaced => in_namespace.push(format!("{verb} {resource} ({n})")),
                Ok(_) => cluster_wide.push(format!("{verb} {resource} ({n})")),
                Err(e) if api_code(&e) == Some(404) => return Ok(None),
                Err(e) => return Err(kube_err(&cluster.name, "access review", e)),
            }
        }
    }
    let mut parts = Vec::new();
    if !cluster_wide.is_empty() {
        parts.push(format!("{} cluster-wide", cluster_wide.join(", ")));
    }
    if !in_namespace.is_empty() {
        parts.push(format!(
            "in namespace {}: {}",
            scope.namespace,
            in_namespace.join(", ")
        ));
    }
    Ok((!parts.is_empty()).then(|| parts.join("; ")))
}

/// Waits until a newly created CRD's resource is served.
async fn wait_served(cluster: &Cluster, crd: &Value) -> Result<(), SourceError> {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    let version = crd["spec"]["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["served"] == Value::Bool(true)))
        .and_then(|v| v["name"].as_str())
        .unwrap_or("v1");
    let started = Instant::now();
    loop {
        if let Ok(list) = cluster.get_json(&format!("/apis/{group}/{version}")).await
            && list["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["name"] == plural))
        {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(NamespaceError::CrdNotServed {
                crd: format!("{plural}.{group}"),
                cluster: cluster.name.clone(),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes of one resource in flight at once: objects of the same kind do not
/// depend on each other, kinds do (restore order), so batches never mix kinds.
const PARALLEL_WRITES: usize = 8;
const BATCH: usize = 64;

/// One write the restore will make.
struct Write {
    resource: String,
    name: String,
    method: http::Method,
    path: String,
    body: Value,
}

/// Runs a batch of writes concurrently; counts successes, collects failures
/// (and reports each as it happens).
async fn flush(
    cluster: &Cluster,
    batch: &mut Vec<Write>,
    out: &mut NamespaceOutcome,
    job: &Job,
) -> Result<(), SourceError> {
    use futures::StreamExt;
    let writes = std::mem::take(batch);
    let mut results = futures::stream::iter(writes.into_iter().map(|mut w| async move {
        let r = send(cluster, &mut w).await;
        let (r, moved) = keeping_node_ports(cluster, &mut w, r).await;
        (w, r, moved)
    }))
    .buffer_unordered(PARALLEL_WRITES);
    while let Some((w, r, moved)) = results.next().await {
        for m in moved {
            let now = match m.to {
                Some(port) => format!("the server gave it {port}"),
                None => "it has no node port now".to_string(),
            };
            job.warn(format!(
                "services/{}: node port {} is held by another Service of {}; {now} \
                 (it differs from the point until {} is free and a restore with --existing update takes it back)",
                m.service, m.from, cluster.name, m.from
            ));
            out.node_ports_moved.push(m);
        }
        match r {
            Ok(_) if w.method == http::Method::POST => out.created += 1,
            Ok(_) => out.updated += 1,
            Err(kube::Error::Api(s)) => {
                let failure = ObjectFailure {
                    resource: w.resource,
                    name: w.name,
                    error: format!("{} {}: {}", s.code, s.reason, s.message),
                };
                job.item_failed(failure.item(), &failure.error);
                out.failed.push(failure);
            }
            Err(e) => return Err(kube_err(&cluster.name, "restore", e)),
        }
    }
    Ok(())
}

/// Sends one write; for the `default` ServiceAccount the cluster made in a
/// new namespace, replaces it.
async fn send(cluster: &Cluster, w: &mut Write) -> Result<Value, kube::Error> {
    let r = cluster.send_json(w.method.clone(), &w.path, &w.body).await;
    if !made_by_the_cluster(w, &r) {
        return r;
    }
    // The namespace was new at the plan; its controller has made this object
    // since. The point's copy replaces it.
    let path = format!("{}/{}", w.path, w.name);
    let live = cluster.get_json(&path).await?;
    w.body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
    w.method = http::Method::PUT;
    w.path = path;
    cluster.send_json(w.method.clone(), &w.path, &w.body).await
}

/// Node ports are kept (load balancers and firewalls outside the cluster
/// point at them) unless another Service holds one here: then the server
/// picks, and the outcome says which it picked. The server may name one
/// taken port at a time (it allocates in order), so this goes round until
/// none is named; each round releases one at least.
async fn keeping_node_ports(
    cluster: &Cluster,
    w: &mut Write,
    mut r: Result<Value, kube::Error>,
) -> (Result<Value, kube::Error>, Vec<NodePortMoved>) {
    let mut released = Vec::new();
    loop {
        let taken = match &r {
            Err(kube::Error::Api(s)) if w.resource == "services" && s.code == 422 => {
                taken_node_ports(&s.message)
            }
            _ => Vec::new(),
        };
        let now = release_node_ports(&mut w.body, &taken);
        if now.is_empty() {
            break;
        }
        released.extend(now);
        r = cluster.send_json(w.method.clone(), &w.path, &w.body).await;
    }
    let moved = match &r {
        Ok(written) => released
            .into_iter()
            .map(|(i, from)| NodePortMoved {
                service: w.name.clone(),
                from,
                // None where the server gives none (a LoadBalancer with
                // allocateLoadBalancerNodePorts false).
                to: written["spec"]["ports"][i]["nodePort"].as_u64(),
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    (r, moved)
}

/// The node ports a refused Service asked for that other Services hold, from
/// the server's message (`spec.ports[0].nodePort: Invalid value: 30080:
/// provided port is already allocated`, one such cause per port).
fn taken_node_ports(message: &str) -> Vec<u64> {
    message
        .split("Invalid value: ")
        .skip(1)
        .filter_map(|cause| {
            let (port, rest) = cause.split_once(':')?;
            let taken = rest
                .trim_start()
                .starts_with("provided port is already allocated");
            port.trim().parse().ok().filter(|_| taken)
        })
        .collect()
}

/// Takes the taken node ports out of a Service so the server assigns others
/// (on an update it keeps the ones the live Service has). Returns each
/// released port with its index in `spec.ports`.
fn release_node_ports(service: &mut Value, taken: &[u64]) -> Vec<(usize, u64)> {
    let mut released = Vec::new();
    let ports = service
        .pointer_mut("/spec/ports")
        .and_then(Value::as_array_mut);
    for (i, port) in ports.into_iter().flatten().enumerate() {
        let Some(n) = port["nodePort"].as_u64().filter(|n| taken.contains(n)) else {
            continue;
        };
        if let Some(p) = port.as_object_mut() {
            p.remove("nodePort");
            released.push((i, n));
        }
    }
    released
}

/// A create refused because the object exists, for an object the cluster
/// makes in every new namespace (the `default` ServiceAccount).
fn made_by_the_cluster(w: &Write, r: &Result<Value, kube::Error>) -> bool {
    w.method == http::Method::POST
        && w.resource == "serviceaccounts"
        && w.name == "default"
        && matches!(r, Err(kube::Error::Api(s)) if s.code == 409)
}

/// Restores the records into the cluster. Per-object failures are collected,
/// not fatal: the outcome lists each with its reason.
/// A cancellation stops between batches; the error says what was written,
/// and so does any error that stops the restore part-way.
pub async fn apply(
    cluster: &Cluster,
    plaintext: mpsc::Receiver<Bytes>,
    opts: &RestoreScope,
    job: &Job,
) -> Result<NamespaceOutcome, Error> {
    let mut out = NamespaceOutcome::default();
    match apply_into(cluster, plaintext, opts, job, &mut out).await {
        Ok(()) => Ok(out),
        Err(e) if e.class() == crate::error::ErrorClass::Cancelled => Err(e),
        Err(e) if out.created + out.updated == 0 => Err(e),
        Err(e) => Err(e.noted(format!(
            "{} objects were created and {} updated before it stopped; run the restore again with --existing skip or update to finish",
            out.created, out.updated
        ))),
    }
}

async fn apply_into(
    cluster: &Cluster,
    plaintext: mpsc::Receiver<Bytes>,
    opts: &RestoreScope,
    job: &Job,
    out: &mut NamespaceOutcome,
) -> Result<(), Error> {
    let mut records = Records::new(plaintext);
    let mut state = TargetState {
        resource: String::new(),
        objects: HashMap::new(),
    };
    let mut batch: Vec<Write> = Vec::with_capacity(BATCH);
    let mut done = 0u64;
    while let Some(r) = records.next().await {
        let r = r?;
        if !wanted(&r, opts) {
            continue;
        }
        let resource = r.resource();
        if batch.first().is_some_and(|w| w.resource != resource) {
            flush(cluster, &mut batch, out, job).await?;
            out.check_cancelled(job)?;
        }
        state.load(cluster, &r, opts).await?;
        let want = desired(&r, opts);
        let existing = state.existing(cluster, &r, &want).await?;
        let decision = decide(existing.as_ref(), &want, opts.existing);
        let ns = r.namespaced.then_some(opts.namespace.as_str());
        let name = want["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        done += 1;
        job.items(done, None);
        let collection = collection_path(&api_resource(&r), ns);
        let Some(write) = write_for(
            decision,
            resource,
            name,
            collection,
            want,
            existing.as_ref(),
            out,
            job,
        ) else {
            continue;
        };
        // CRDs and the namespace are written alone: what follows needs them.
        if resource_is_foundation(&write.resource) {
            let crd = (write.resource == CRD && write.method == http::Method::POST)
                .then(|| write.body.clone());
            batch.push(write);
            let failed_before = out.failed.len();
            flush(cluster, &mut batch, out, job).await?;
            if let (Some(crd), true) = (crd, out.failed.len() == failed_before) {
                wait_served(cluster, &crd).await?;
            }
            continue;
        }
        batch.push(write);
        if batch.len() >= BATCH {
            flush(cluster, &mut batch, out, job).await?;
            out.check_cancelled(job)?;
        }
    }
    flush(cluster, &mut batch, out, job).await?;
    Ok(())
}

/// The request a decision calls for, or `None` when nothing is sent (the
/// object is counted as unchanged or skipped, or reported as a conflict).
#[allow(clippy::too_many_arguments)]
fn write_for(
    decision: Decision,
    resource: String,
    name: String,
    collection: String,
    want: Value,
    existing: Option<&Live>,
    out: &mut NamespaceOutcome,
    job: &Job,
) -> Option<Write> {
    match decision {
        Decision::Create => Some(Write {
            resource,
            name,
            method: http::Method::POST,
            path: collection,
            body: want,
        }),
        Decision::Update => {
            let mut body = want;
            if let Some(live) = existing {
                body["metadata"]["resourceVersion"] = Value::String(live.resource_version.clone());
                if let Some(replicas) = &live.autoscaled {
                    body["spec"]["replicas"] = replicas.clone();
                }
            }
            Some(Write {
                path: format!("{collection}/{name}"),
                resource,
                name,
                method: http::Method::PUT,
                body,
            })
        }
        Decision::Unchanged => {
            out.unchanged += 1;
            None
        }
        Decision::Skip => {
            out.skipped += 1;
            None
        }
        Decision::Conflict => {
            let failure = ObjectFailure {
                resource,
                name,
                error: "already exists and differs (--existing fail)".into(),
            };
            job.item_failed(failure.item(), &failure.error);
            out.failed.push(failure);
            None
        }
    }
}

impl ObjectFailure {
    /// `resource/name`, as events and reports name an object.
    pub fn item(&self) -> String {
        format!("{}/{}", self.resource, self.name)
    }
}

impl NamespaceOutcome {
    /// Once cancelled, says what was already written.
    fn check_cancelled(&self, job: &Job) -> Result<(), Error> {
        if !job.is_cancelled() {
            return Ok(());
        }
        Err(Error::cancelled(format!(
            "namespace restore cancelled after {} objects were created and {} updated; \
             run it again with --existing skip or update to finish",
            self.created, self.updated
        )))
    }
}

fn resource_is_foundation(resource: &str) -> bool {
    resource == CRD || resource == "namespaces"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_clusters_own_default_service_account_is_taken_over() {
        let write = |resource: &str, name: &str, method: http::Method| Write {
            resource: resource.into(),
            name: name.into(),
            method,
            path: "/api/v1/namespaces/n/serviceaccounts".into(),
            body: json!({}),
        };
        let status = |code| {
            Err(kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            })))
        };
        let sa = write("serviceaccounts", "default", http::Method::POST);
        assert!(made_by_the_cluster(&sa, &status(409)));
        assert!(!made_by_the_cluster(&sa, &status(422)));
        assert!(!made_by_the_cluster(&sa, &Ok(json!({}))));
        for other in [
            write("serviceaccounts", "app", http::Method::POST),
            write("configmaps", "default", http::Method::POST),
            write("serviceaccounts", "default", http::Method::PUT),
        ] {
            assert!(!made_by_the_cluster(&other, &status(409)));
        }
    }

    fn cm(data: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": data}})
    }

    fn record(resource: (&str, &str), namespaced: bool, object: Value) -> ObjectRecord {
        ObjectRecord {
            group: resource.1.into(),
            version: "v1".into(),
            kind: "X".into(),
            plural: resource.0.into(),
            namespaced,
            object,
        }
    }

    #[test]
    fn only_objects_and_the_cluster_kinds_backups_write_are_accepted() {
        let named = json!({"metadata": {"name": "a"}});
        assert!(checked(record(("configmaps", ""), true, named.clone())).is_ok());
        assert!(checked(record(("namespaces", ""), false, named.clone())).is_ok());
        let crd = ("customresourcedefinitions", "apiextensions.k8s.io");
        assert!(checked(record(crd, false, named.clone())).is_ok());
        let crb = ("clusterrolebindings", "rbac.authorization.k8s.io");
        let refused = checked(record(crb, false, named)).err();
        assert_eq!(
            refused,
            Some(RefusedRecord::ClusterScoped {
                resource: "clusterrolebindings.rbac.authorization.k8s.io".into(),
                name: "a".into(),
            })
        );
        for not_an_object in [
            json!([1, 2]),
            json!("x"),
            json!({"metadata": []}),
            json!({"metadata": {}}),
        ] {
            assert!(matches!(
                checked(record(("configmaps", ""), true, not_an_object)),
                Err(RefusedRecord::Unnamed { .. })
            ));
        }
    }

    #[tokio::test]
    async fn a_line_that_is_not_an_object_is_integrity_not_a_panic() {
        let (tx, rx) = mpsc::channel(2);
        let line = r#"{"group":"","version":"v1","kind":"ConfigMap","plural":"configmaps","namespaced":true,"object":[1]}"#;
        let _ = tx.send(Bytes::from(format!("{line}\n"))).await;
        drop(tx);
        let mut records = Records::new(rx);
        let err = records.next().await.and_then(Result::err);
        assert!(
            matches!(&err, Some(SourceError::Integrity { what, .. }) if what == "namespace payload line 1"),
            "{err:?}"
        );
    }

    #[test]
    fn a_restored_job_with_its_new_uid_labels_is_unchanged() {
        let job = |uid: &str| {
            json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "j", "namespace": "shop", "uid": uid},
                "spec": {"manualSelector": false,
                    "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
                    "template": {"metadata": {"labels": {"app": "x",
                        "batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                        "batch.kubernetes.io/job-name": "j", "job-name": "j"}}}}})
        };
        let mut record = record(("jobs", "batch"), true, job("from-the-source"));
        record.object = strip(
            record.object,
            &StripOptions {
                keep_last_applied: false,
            },
        );
        let scope = RestoreScope {
            source_namespace: "shop".into(),
            namespace: "shop".into(),
            include: Vec::new(),
            exclude: Vec::new(),
            existing: Existing::Fail,
            with_canaries: false,
        };
        let live = Live::of("jobs.batch", job("given-by-the-target"));
        let want = desired(&record, &scope);
        assert_eq!(
            decide(Some(&live), &want, Existing::Fail),
            Decision::Unchanged
        );
    }

    #[test]
    fn replicas_an_autoscaler_set_are_its_own() {
        let deployment = |replicas: u64, scaled: bool| {
            let mut fields = vec![json!({"manager": "drtool", "operation": "Update",
                "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}})];
            if scaled {
                fields.push(
                    json!({"manager": "kube-controller-manager", "operation": "Update",
                    "subresource": "scale", "fieldsV1": {"f:spec": {"f:replicas": {}}}}),
                );
            }
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "resourceVersion": "42", "managedFields": fields},
                "spec": {"replicas": replicas, "template": {"spec": {"containers": []}}}})
        };
        let point = for_new_cluster(
            "deployments",
            strip(
                deployment(1, false),
                &StripOptions {
                    keep_last_applied: false,
                },
            ),
        );
        let scaled = Live::of("deployments", deployment(5, true));
        assert_eq!(scaled.autoscaled, Some(json!(5)));
        assert_eq!(
            decide(Some(&scaled), &point, Existing::Fail),
            Decision::Unchanged
        );
        // Set by hand, not through /scale: the point's count comes back.
        let edited = Live::of("deployments", deployment(5, false));
        assert_eq!(edited.autoscaled, None);
        assert_eq!(
            decide(Some(&edited), &point, Existing::Fail),
            Decision::Conflict
        );
        // Anything else that differs is still a difference.
        let mut changed = point.clone();
        changed["spec"]["template"]["spec"]["containers"] = json!([{"name": "x"}]);
        assert_eq!(
            decide(Some(&scaled), &changed, Existing::Overwrite),
            Decision::Update
        );
    }

    #[test]
    fn a_taken_node_port_is_released_and_only_that_one() {
        // The API server's message for a Service whose two node ports are held.
        let message = "Service \"web\" is invalid: [spec.ports[0].nodePort: Invalid value: 30080: \
                       provided port is already allocated, spec.ports[2].nodePort: Invalid value: 30443: \
                       provided port is already allocated]";
        assert_eq!(taken_node_ports(message), [30080, 30443]);
        assert!(
            taken_node_ports(
                "Service \"web\" is invalid: spec.ports[0].nodePort: Invalid value: 80: \
                 provided port is not in the valid range. The range of valid ports is 30000-32767"
            )
            .is_empty(),
            "a port out of range is the user's to fix, not the server's to pick"
        );
        assert!(taken_node_ports("").is_empty());
        let mut svc = json!({"spec": {"type": "NodePort", "ports": [
            {"port": 80, "nodePort": 30080},
            {"port": 81, "nodePort": 30081},
            {"port": 443, "nodePort": 30443},
        ]}});
        assert_eq!(
            release_node_ports(&mut svc, &[30080, 30443]),
            [(0, 30080), (2, 30443)]
        );
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"port": 80}, {"port": 81, "nodePort": 30081}, {"port": 443}])
        );
        assert!(release_node_ports(&mut json!({"spec": {}}), &[30080]).is_empty());
    }

    #[test]
    fn object_decisions() {
        let same = Live::of("configmaps", cm("v"));
        let other = Live::of("configmaps", cm("changed"));
        let cases = [
            (None, Existing::Fail, Decision::Create),
            (None, Existing::Overwrite, Decision::Create),
            (Some(&same), Existing::Fail, Decision::Unchanged),
            (Some(&same), Existing::Overwrite, Decision::Unchanged),
            (Some(&other), Existing::Skip, Decision::Skip),
            (Some(&other), Existing::Overwrite, Decision::Update),
            (Some(&other), Existing::Fail, Decision::Conflict),
        ];
        for (existing, policy, want) in cases {
            assert_eq!(
                decide(existing, &cm("v"), policy),
                want,
                "{existing:?} {policy:?}"
            );
        }
    }
}
