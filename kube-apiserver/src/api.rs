//! HTTP surface: routing of kube-apiserver's URL scheme to the verbs, and the
//! verbs themselves (get, list, create, update, patch, delete,
//! deletecollection) on top of [`Store`].
//!
//! Server-owned fields are filled here (uid, creationTimestamp, generation,
//! resourceVersion); validation is limited to names and CRDs. This module
//! owns no state of its own beyond [`AppState`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::{Map, Value, json};

use crate::patch;
use crate::registry::{CRD_GROUP, Registry, ResourceType, crd_resource_type};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, Cause, delete_success};
use crate::store::{Store, Stored, Written};
use crate::table;
use crate::validation::{check_name, generate_name};

/// Reported by `/version`: kubectl 1.20 is the client this server is made for.
pub const GIT_VERSION: &str = "v1.20.0-drtool";
/// Largest request body accepted (etcd's own value limit is 1.5 MiB).
const MAX_BODY: usize = 8 << 20;
/// Namespaces kube-apiserver creates at start and refuses to delete.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];
/// Optimistic-concurrency retries of unconditional writes.
const WRITE_ATTEMPTS: usize = 5;

pub struct AppState {
    pub store: Store,
    pub registry: RwLock<Registry>,
    /// host:port clients reach us at, for `/api`'s serverAddressByClientCIDRs.
    pub server_address: String,
    /// Set once the system namespaces exist and CRDs were loaded.
    pub ready: AtomicBool,
}

impl AppState {
    fn registry(&self) -> Registry {
        self.registry
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Re-read every CRD from etcd and serve exactly those. Called at start,
    /// after each CRD write, on a resolution miss and periodically, so that
    /// servers sharing one etcd agree.
    pub async fn reload_crds(&self) -> Result<(), ApiError> {
        let crd_type = self.registry().crd_type();
        let Some(crd_type) = crd_type else {
            return Ok(());
        };
        let prefix = self.store.collection_prefix(&crd_type, None);
        let page = self.store.range(&prefix, None, 0, 0).await?;
        let crds: Vec<Value> = page.items.into_iter().map(|s| s.object).collect();
        self.registry
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .set_crds(&crds);
        Ok(())
    }
}

pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

fn now_timestamp() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Entry point for every request.
pub async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::BadRequest(format!("reading request body: {e}")).into_response();
        }
    };
    let segments: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let req = Req {
        method: parts.method,
        headers: parts.headers,
        query,
        body,
    };
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    match route(&state, &seg, &req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

/// Decode `%XX` escapes of a path segment (clients escape e.g. `:` in
/// RBAC names); invalid escapes are kept as they are.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Req {
    method: Method,
    headers: HeaderMap,
    query: HashMap<String, String>,
    body: Bytes,
}

impl Req {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn q(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn dry_run(&self) -> bool {
        self.q("dryRun").is_some()
    }

    fn only_get(&self) -> Result<(), ApiError> {
        if self.method == Method::GET || self.method == Method::HEAD {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed)
        }
    }
}

async fn route(state: &AppState, seg: &[&str], req: &Req) -> Result<Response, ApiError> {
    match seg {
        [] => {
            req.only_get()?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/readyz", "/version"]}),
            ))
        }
        ["version"] => {
            req.only_get()?;
            Ok(json_response(StatusCode::OK, &version_info()))
        }
        ["livez"] => Ok(plain_ok()),
        ["healthz"] => {
            state.store.revision().await?;
            Ok(plain_ok())
        }
        ["readyz"] => {
            // Ready: bootstrapped, and etcd answers now (every request needs it).
            if !state.ready.load(Ordering::Relaxed) {
                return Err(ApiError::NotReady);
            }
            state.store.revision().await?;
            Ok(plain_ok())
        }
        ["openapi", "v2"] => {
            req.only_get()?;
            Ok(openapi_v2(req.header(header::ACCEPT)))
        }
        ["api"] => {
            req.only_get()?;
            let reg = state.registry();
            Ok(json_response(
                StatusCode::OK,
                &reg.api_versions(&state.server_address),
            ))
        }
        ["apis"] => {
            req.only_get()?;
            refresh_crds(state).await;
            Ok(json_response(
                StatusCode::OK,
                &state.registry().api_group_list(),
            ))
        }
        ["apis", group] => {
            req.only_get()?;
            let reg = resolve_registry(state, |r| r.api_group(group).is_some()).await;
            let doc = reg.api_group(group).ok_or(ApiError::NoSuchPath)?;
            Ok(json_response(StatusCode::OK, &doc))
        }
        ["api", version, rest @ ..] => resource_route(state, "", version, rest, req).await,
        ["apis", group, version, rest @ ..] => {
            resource_route(state, group, version, rest, req).await
        }
        _ => Err(ApiError::NoSuchPath),
    }
}

fn plain_ok() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response()
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "20",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2021-01-13T00:00:00Z",
        "goVersion": "go1.15.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// A valid but empty OpenAPI v2 document. kubectl 1.20 fetches it (as
/// protobuf) to validate `create -f` input; with no definitions every kind is
/// "unknown to the schema" and kubectl skips validation instead of failing.
fn openapi_v2(accept: &str) -> Response {
    if accept.contains("protobuf") {
        // openapi_v2.Document{swagger: "2.0"}: field 1, wire type 2, length 3.
        let doc: &[u8] = b"\x0a\x032.0";
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            doc,
        )
            .into_response();
    }
    json_response(
        StatusCode::OK,
        &json!({
            "swagger": "2.0",
            "info": {"title": "drtool-kube-test-apiserver", "version": GIT_VERSION},
            "paths": {},
            "definitions": {},
        }),
    )
}

/// Pick up CRDs another server created; a failure only means discovery may
/// be a little stale, so it is logged, not returned.
async fn refresh_crds(state: &AppState) {
    if let Err(e) = state.reload_crds().await {
        tracing::warn!(error = %e, "reloading CRDs failed");
    }
}

/// The registry, re-read from etcd first if `found` says it lacks what the
/// request names (a CRD created through another server).
async fn resolve_registry(state: &AppState, found: impl Fn(&Registry) -> bool) -> Registry {
    let reg = state.registry();
    if found(&reg) {
        return reg;
    }
    refresh_crds(state).await;
    state.registry()
}

/// The target of a resource request.
struct Target {
    rt: Arc<ResourceType>,
    version: String,
    namespace: Option<String>,
}

impl Target {
    fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }
}

async fn resource_route(
    state: &AppState,
    group: &str,
    version: &str,
    rest: &[&str],
    req: &Req,
) -> Result<Response, ApiError> {
    if group.is_empty() && version != "v1" {
        return Err(ApiError::NoSuchPath);
    }
    // (namespace, resource, name)
    let (namespace, resource, name) = match rest {
        [] => {
            req.only_get()?;
            let reg = resolve_registry(state, |r| r.serves_group_version(group, version)).await;
            let doc = reg
                .api_resource_list(group, version)
                .ok_or(ApiError::NoSuchPath)?;
            return Ok(json_response(StatusCode::OK, &doc));
        }
        [resource] => (None, *resource, None),
        [resource, name] => (None, *resource, Some(*name)),
        ["namespaces", ns, resource] => (Some(*ns), *resource, None),
        ["namespaces", ns, resource, name] => (Some(*ns), *resource, Some(*name)),
        // Subresources (status, scale, log, ...) are not served.
        _ => return Err(ApiError::NoSuchPath),
    };
    let reg = resolve_registry(state, |r| r.resolve(group, version, resource).is_some()).await;
    let rt = reg
        .resolve(group, version, resource)
        .ok_or(ApiError::NoSuchPath)?;
    // A namespaced kind needs the namespace segment for items; a
    // cluster-scoped kind must not have one.
    if (namespace.is_some() && !rt.namespaced)
        || (rt.namespaced && namespace.is_none() && name.is_some())
    {
        return Err(ApiError::NoSuchPath);
    }
    let target = Target {
        rt,
        version: version.to_string(),
        namespace: namespace.map(str::to_string),
    };
    match (name, &req.method) {
        (None, &Method::GET) | (None, &Method::HEAD) => {
            if matches!(req.q("watch"), Some("true") | Some("1")) {
                return Err(ApiError::BadRequest(
                    "watch is not supported by drtool's test API server".into(),
                ));
            }
            list(state, &target, req).await
        }
        (None, &Method::POST) if target.namespace.is_some() || !target.rt.namespaced => {
            create(state, &target, req).await
        }
        (None, &Method::DELETE) if !target.rt.is_namespace() => {
            delete_collection(state, &target, req).await
        }
        (Some(name), &Method::GET) | (Some(name), &Method::HEAD) => {
            get(state, &target, name, req).await
        }
        (Some(name), &Method::PUT) => replace(state, &target, name, req).await,
        (Some(name), &Method::PATCH) => patch_object(state, &target, name, req).await,
        (Some(name), &Method::DELETE) => delete(state, &target, name, req).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The object as clients see it: the requested apiVersion, its kind and the
/// etcd mod_revision as resourceVersion.
fn present(t: &Target, mut object: Value, revision: i64) -> Value {
    object["apiVersion"] = json!(t.api_version());
    object["kind"] = json!(t.rt.kind);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(revision.to_string()));
    }
    object
}

fn table_version(req: &Req) -> Option<&'static str> {
    table::wanted_table_version(req.header(header::ACCEPT))
}

fn respond_objects(
    req: &Req,
    code: StatusCode,
    single: Option<Value>,
    list: impl FnOnce() -> Value,
) -> Response {
    if let Some(version) = table_version(req) {
        let (items, meta) = match single {
            Some(o) => {
                let rv = o.pointer("/metadata/resourceVersion").cloned();
                (vec![o], json!({"resourceVersion": rv}))
            }
            None => {
                let l = list();
                let items = l["items"].as_array().cloned().unwrap_or_default();
                (items, l["metadata"].clone())
            }
        };
        let include = req.q("includeObject").unwrap_or("Metadata");
        return json_response(
            code,
            &table::table(version, &items, meta, include, Utc::now()),
        );
    }
    match single {
        Some(o) => json_response(code, &o),
        None => json_response(code, &list()),
    }
}

async fn get(state: &AppState, t: &Target, name: &str, req: &Req) -> Result<Response, ApiError> {
    let key = state.store.object_key(&t.rt, t.namespace.as_deref(), name);
    let stored = state
        .store
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(&t.rt, name))?;
    let object = present(t, stored.object, stored.mod_revision);
    Ok(respond_objects(req, StatusCode::OK, Some(object), || {
        Value::Null
    }))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    /// Always "meta.k8s.io/v1", like kube-apiserver's token.
    v: String,
    /// The revision the whole list is read at.
    rv: i64,
    /// Key to resume at, relative to the collection prefix.
    start: String,
}

fn encode_continue(rv: i64, start: &str) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: start.to_string(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_continue(s: &str) -> Result<ContinueToken, ApiError> {
    let bad = |why: String| ApiError::BadRequest(format!("continue key is not valid: {why}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| bad(e.to_string()))?;
    let token: ContinueToken = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if token.v != "meta.k8s.io/v1" || token.rv <= 0 {
        return Err(bad("unsupported token".into()));
    }
    Ok(token)
}

/// The selected objects of a collection and the list metadata.
struct Listed {
    items: Vec<Stored>,
    revision: i64,
    continue_token: Option<String>,
    remaining: Option<i64>,
}

async fn read_collection(state: &AppState, t: &Target, req: &Req) -> Result<Listed, ApiError> {
    let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or_default())
        .map_err(ApiError::BadRequest)?;
    let fields = FieldSelector::parse(req.q("fieldSelector").unwrap_or_default())
        .map_err(ApiError::BadRequest)?;
    let limit: i64 = match req.q("limit") {
        None => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::BadRequest(format!("invalid limit \"{l}\"")))?
            .max(0),
    };
    let prefix = state.store.collection_prefix(&t.rt, t.namespace.as_deref());
    let (mut revision, mut start) = match req.q("continue") {
        Some(c) => {
            let token = decode_continue(c)?;
            (token.rv, Some(format!("{prefix}{}", token.start)))
        }
        None => (0, None),
    };
    let filtered = !labels.is_empty() || !fields.is_empty();
    let mut items = Vec::new();
    loop {
        // With selectors, read in larger chunks: most keys may not match.
        let chunk = match (limit, filtered) {
            (0, _) => 0,
            (l, false) => l - items.len() as i64,
            (l, true) => l.max(100),
        };
        let page = state
            .store
            .range(&prefix, start.as_deref(), revision, chunk)
            .await?;
        // Pin every further page to the revision of the first one.
        if revision == 0 {
            revision = page.revision;
        }
        let returned = page.items.len() as i64;
        let last_read = page.items.last().map(|s| s.key.clone());
        let mut iter = page.items.into_iter().peekable();
        while let Some(s) = iter.next() {
            let key = s.key.clone();
            if labels.matches(&s.object) && fields.matches(&s.object) {
                items.push(s);
            }
            if limit > 0 && items.len() as i64 == limit {
                if iter.peek().is_none() && !page.more {
                    break;
                }
                // Resume right after this key: "\0" is the smallest suffix.
                let resume = format!("{}\u{0}", &key[prefix.len()..]);
                let remaining = (!filtered).then(|| page.count - returned);
                return Ok(Listed {
                    items,
                    revision,
                    continue_token: Some(encode_continue(revision, &resume)),
                    remaining,
                });
            }
        }
        match last_read {
            // Next chunk starts after the last key read, matched or not.
            Some(last) if page.more => start = Some(format!("{last}\u{0}")),
            _ => break,
        }
    }
    if revision == 0 {
        revision = state.store.revision().await?;
    }
    Ok(Listed {
        items,
        revision,
        continue_token: None,
        remaining: None,
    })
}

async fn list(state: &AppState, t: &Target, req: &Req) -> Result<Response, ApiError> {
    let listed = read_collection(state, t, req).await?;
    Ok(respond_objects(req, StatusCode::OK, None, || {
        list_body(t, listed)
    }))
}

fn list_body(t: &Target, listed: Listed) -> Value {
    let items: Vec<Value> = listed
        .items
        .into_iter()
        .map(|s| present(t, s.object, s.mod_revision))
        .collect();
    let mut meta = json!({"resourceVersion": listed.revision.to_string()});
    if let Some(c) = listed.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = listed.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    json!({
        "kind": t.rt.list_kind,
        "apiVersion": t.api_version(),
        "metadata": meta,
        "items": items,
    })
}

fn parse_body(req: &Req) -> Result<Value, ApiError> {
    let content_type = req.header(header::CONTENT_TYPE);
    // Protobuf, CBOR or YAML bodies (typed clients of newer client-go) cannot
    // be decoded here; 415 tells the client to speak JSON.
    if !content_type.is_empty() && !content_type.contains("json") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json (got \"{content_type}\")"
        )));
    }
    let v: Value = serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json; json parse error: {e}"
        ))
    })?;
    if !v.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request must be a JSON object".into(),
        ));
    }
    Ok(v)
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// Checks shared by create and update: kind, group, namespace; sets the
/// request's apiVersion/kind and the URL namespace on the object.
fn normalize(t: &Target, object: &mut Value) -> Result<(), ApiError> {
    if let Some(kind) = object.get("kind").and_then(Value::as_str)
        && kind != t.rt.kind
    {
        return Err(ApiError::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            t.rt.kind
        )));
    }
    if let Some(av) = object.get("apiVersion").and_then(Value::as_str)
        && group_of(av) != t.rt.group
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            t.api_version()
        )));
    }
    object["apiVersion"] = json!(t.api_version());
    object["kind"] = json!(t.rt.kind);
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    let meta = metadata_mut(object)?;
    match &t.namespace {
        Some(ns) => {
            if let Some(given) = meta.get("namespace").and_then(Value::as_str)
                && !given.is_empty()
                && given != ns
            {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            meta.insert("namespace".into(), json!(ns));
        }
        None => {
            meta.remove("namespace");
        }
    }
    Ok(())
}

fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiError::BadRequest("metadata must be an object".into()))
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Kind-specific defaults and status that kube-apiserver sets on write.
fn apply_defaults(t: &Target, object: &mut Value) -> Result<(), ApiError> {
    if t.rt.is_namespace() {
        if object.pointer("/spec/finalizers").is_none() {
            object["spec"] = json!({"finalizers": ["kubernetes"]});
        }
        object["status"] = json!({"phase": "Active"});
    }
    if t.rt.is_crd() {
        let name = meta_str(object, "name").unwrap_or_default().to_string();
        let defined = crd_resource_type(object).map_err(|p| ApiError::Invalid {
            kind: t.rt.kind.clone(),
            group: CRD_GROUP.into(),
            name: name.clone(),
            causes: vec![Cause {
                field: p.field.into(),
                message: p.message,
            }],
        })?;
        let now = now_timestamp();
        let stored: Vec<Value> = object
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                    .filter_map(|v| v.get("name").cloned())
                    .collect()
            })
            .unwrap_or_default();
        object["status"] = json!({
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
                 "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "True", "lastTransitionTime": now,
                 "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
            ],
            "acceptedNames": {
                "plural": defined.resource,
                "singular": defined.singular,
                "kind": defined.kind,
                "listKind": defined.list_kind,
                "shortNames": defined.short_names,
                "categories": defined.categories,
            },
            "storedVersions": stored,
        });
    }
    Ok(())
}

/// etcd holds objects without resourceVersion, as kube-apiserver stores them.
fn to_storage(mut object: Value) -> Result<Vec<u8>, ApiError> {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("selfLink");
    }
    serde_json::to_vec(&object).map_err(|e| ApiError::Internal(format!("encoding object: {e}")))
}

async fn ensure_namespace(state: &AppState, t: &Target) -> Result<(), ApiError> {
    let Some(ns) = &t.namespace else {
        return Ok(());
    };
    let reg = state.registry();
    let ns_type = reg
        .namespace_type()
        .ok_or_else(|| ApiError::Internal("namespaces are not registered".into()))?;
    match state
        .store
        .get(&state.store.object_key(&ns_type, None, ns))
        .await?
    {
        Some(_) => Ok(()),
        None => Err(ApiError::namespace_not_found(ns)),
    }
}

async fn after_write(state: &AppState, t: &Target) {
    if t.rt.is_crd() {
        refresh_crds(state).await;
    }
}

async fn create(state: &AppState, t: &Target, req: &Req) -> Result<Response, ApiError> {
    let mut object = parse_body(req)?;
    normalize(t, &mut object)?;
    let name = match (meta_str(&object, "name"), meta_str(&object, "generateName")) {
        (Some(n), _) => n.to_string(),
        (None, Some(base)) => generate_name(base),
        (None, None) => {
            return Err(ApiError::invalid(
                &t.rt,
                "",
                "metadata.name",
                "Required value: name or generateName is required".into(),
            ));
        }
    };
    check_name(t.rt.name_rule, &name)
        .map_err(|m| ApiError::invalid(&t.rt, &name, "metadata.name", m))?;
    if meta_str(&object, "resourceVersion").is_some() {
        // kube-apiserver's storage layer refuses this with a 500 too.
        return Err(ApiError::Internal(
            "resourceVersion should not be set on objects to be created".into(),
        ));
    }
    {
        let meta = metadata_mut(&mut object)?;
        meta.insert("name".into(), json!(name));
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now_timestamp()));
        for f in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
            meta.remove(f);
        }
        if t.rt.generation {
            meta.insert("generation".into(), json!(1));
        }
    }
    apply_defaults(t, &mut object)?;
    ensure_namespace(state, t).await?;
    let key = state.store.object_key(&t.rt, t.namespace.as_deref(), &name);
    if req.dry_run() {
        if state.store.get(&key).await?.is_some() {
            return Err(ApiError::already_exists(&t.rt, &name));
        }
        return Ok(json_response(StatusCode::CREATED, &object));
    }
    match state
        .store
        .create(&key, to_storage(object.clone())?)
        .await?
    {
        Written::Ok(rev) => {
            after_write(state, t).await;
            Ok(json_response(StatusCode::CREATED, &present(t, object, rev)))
        }
        Written::Failed => Err(ApiError::already_exists(&t.rt, &name)),
    }
}

/// The resourceVersion a client sent as precondition, if any.
fn client_revision(t: &Target, name: &str, object: &Value) -> Result<Option<i64>, ApiError> {
    match meta_str(object, "resourceVersion") {
        None => Ok(None),
        Some(rv) => rv.parse::<i64>().map(Some).map_err(|_| {
            ApiError::invalid(
                &t.rt,
                name,
                "metadata.resourceVersion",
                format!("Invalid value: \"{rv}\": must be a decimal etcd revision"),
            )
        }),
    }
}

/// Turn a desired object into the next stored version of `current`:
/// identity and server-owned metadata come from `current`, generation
/// moves when the spec changes.
fn merge_server_fields(t: &Target, current: &Value, desired: &mut Value) -> Result<(), ApiError> {
    for f in ["uid", "creationTimestamp"] {
        let v = current.get("metadata").and_then(|m| m.get(f)).cloned();
        let meta = metadata_mut(desired)?;
        match v {
            Some(v) => meta.insert(f.into(), v),
            None => meta.remove(f),
        };
    }
    if t.rt.generation {
        let gen_now = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let changed = current.get("spec") != desired.get("spec");
        metadata_mut(desired)?.insert(
            "generation".into(),
            json!(if changed { gen_now + 1 } else { gen_now }),
        );
    }
    if t.rt.is_namespace() && desired.pointer("/spec/finalizers").is_none() {
        // Namespaces keep their finalizers unless the client sets them.
        if let Some(f) = current.pointer("/spec/finalizers") {
            desired["spec"] = json!({"finalizers": f});
        }
    }
    apply_defaults(t, desired)?;
    // A CRD stays Established since its creation: keeping the conditions
    // (and their transition times) makes an identical PUT a no-op.
    if t.rt.is_crd()
        && let Some(conditions) = current.pointer("/status/conditions")
    {
        desired["status"]["conditions"] = conditions.clone();
    }
    Ok(())
}

enum Attempt {
    Done(Response),
    Retry,
}

/// Write `desired` over `current` if `current` is still the stored version.
async fn write_over(
    state: &AppState,
    t: &Target,
    name: &str,
    current: &Stored,
    mut desired: Value,
    precondition: Option<i64>,
    req: &Req,
) -> Result<Attempt, ApiError> {
    if let Some(rv) = precondition
        && rv != current.mod_revision
    {
        return Err(ApiError::stale(&t.rt, name));
    }
    normalize(t, &mut desired)?;
    if meta_str(&desired, "name") != Some(name) {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&desired, "name").unwrap_or_default()
        )));
    }
    merge_server_fields(t, &current.object, &mut desired)?;
    let bytes = to_storage(desired.clone())?;
    let unchanged = to_storage(current.object.clone())? == bytes;
    if unchanged || req.dry_run() {
        let rev = current.mod_revision;
        return Ok(Attempt::Done(json_response(
            StatusCode::OK,
            &present(
                t,
                if unchanged {
                    current.object.clone()
                } else {
                    desired
                },
                rev,
            ),
        )));
    }
    match state
        .store
        .update(&current.key, bytes, current.mod_revision)
        .await?
    {
        Written::Ok(rev) => {
            after_write(state, t).await;
            Ok(Attempt::Done(json_response(
                StatusCode::OK,
                &present(t, desired, rev),
            )))
        }
        Written::Failed if precondition.is_some() => Err(ApiError::stale(&t.rt, name)),
        Written::Failed => Ok(Attempt::Retry),
    }
}

async fn load(state: &AppState, t: &Target, name: &str) -> Result<Stored, ApiError> {
    let key = state.store.object_key(&t.rt, t.namespace.as_deref(), name);
    state
        .store
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(&t.rt, name))
}

async fn replace(
    state: &AppState,
    t: &Target,
    name: &str,
    req: &Req,
) -> Result<Response, ApiError> {
    let desired = parse_body(req)?;
    let precondition = client_revision(t, name, &desired)?;
    for _ in 0..WRITE_ATTEMPTS {
        let current = load(state, t, name).await?;
        if let Attempt::Done(r) =
            write_over(state, t, name, &current, desired.clone(), precondition, req).await?
        {
            return Ok(r);
        }
    }
    Err(ApiError::stale(&t.rt, name))
}

async fn patch_object(
    state: &AppState,
    t: &Target,
    name: &str,
    req: &Req,
) -> Result<Response, ApiError> {
    let content_type = req.header(header::CONTENT_TYPE);
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let json_patch = match media {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => false,
        "application/json-patch+json" => true,
        "application/apply-patch+yaml" => {
            return Err(ApiError::UnsupportedMediaType(
                "server-side apply is not supported by drtool's test API server".into(),
            ));
        }
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got \"{other}\")"
            )));
        }
    };
    let patch_doc: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))?;
    for _ in 0..WRITE_ATTEMPTS {
        let current = load(state, t, name).await?;
        let mut desired = present(t, current.object.clone(), current.mod_revision);
        if json_patch {
            patch::json_patch(&mut desired, &patch_doc).map_err(ApiError::BadRequest)?;
        } else {
            patch::merge_patch(&mut desired, &patch_doc);
        }
        // A resourceVersion in the patch is a precondition; the one we put
        // in before patching is not.
        let precondition = client_revision(t, name, &desired)?
            .filter(|rv| *rv != current.mod_revision || patch_sets_revision(&patch_doc));
        if let Attempt::Done(r) =
            write_over(state, t, name, &current, desired, precondition, req).await?
        {
            return Ok(r);
        }
    }
    Err(ApiError::stale(&t.rt, name))
}

fn patch_sets_revision(patch_doc: &Value) -> bool {
    patch_doc.pointer("/metadata/resourceVersion").is_some()
        || patch_doc.as_array().is_some_and(|ops| {
            ops.iter().any(|op| {
                op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")
            })
        })
}

/// Everything that goes with an object: a namespace's contents, a CRD's objects.
fn dependents(state: &AppState, t: &Target, name: &str, current: &Value) -> Vec<String> {
    if t.rt.is_namespace() {
        let mut prefixes: Vec<String> = state
            .registry()
            .all()
            .filter(|rt| rt.namespaced)
            .map(|rt| state.store.collection_prefix(rt, Some(name)))
            .collect();
        prefixes.sort();
        prefixes.dedup();
        return prefixes;
    }
    if t.rt.is_crd()
        && let Ok(defined) = crd_resource_type(current)
    {
        return vec![state.store.collection_prefix(&defined, None)];
    }
    Vec::new()
}

fn precondition_failed(t: &Target, name: &str, what: &str, want: &str, have: &str) -> ApiError {
    ApiError::conflict(
        &t.rt,
        name,
        &format!(
            "Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"
        ),
    )
}

async fn delete(state: &AppState, t: &Target, name: &str, req: &Req) -> Result<Response, ApiError> {
    if t.rt.is_namespace() && SYSTEM_NAMESPACES.contains(&name) {
        return Err(ApiError::Forbidden(format!(
            "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
        )));
    }
    let options: Value = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding DeleteOptions: {e}")))?
    };
    let dry_run = req.dry_run()
        || options
            .get("dryRun")
            .is_some_and(|d| d.as_array().is_some_and(|a| !a.is_empty()));
    for _ in 0..WRITE_ATTEMPTS {
        let current = load(state, t, name).await?;
        let uid = meta_str(&current.object, "uid")
            .unwrap_or_default()
            .to_string();
        if let Some(want) = options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            && want != uid
        {
            return Err(precondition_failed(t, name, "UID", want, &uid));
        }
        let have_rv = current.mod_revision.to_string();
        if let Some(want) = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            && want != have_rv
        {
            return Err(precondition_failed(
                t,
                name,
                "ResourceVersion",
                want,
                &have_rv,
            ));
        }
        let also = dependents(state, t, name, &current.object);
        if !dry_run {
            match state
                .store
                .delete(&current.key, current.mod_revision, &also)
                .await?
            {
                Written::Ok(_) => {}
                Written::Failed => continue,
            }
            after_write(state, t).await;
        }
        return Ok(deleted_response(t, name, &uid, current));
    }
    Err(ApiError::stale(&t.rt, name))
}

fn deleted_response(t: &Target, name: &str, uid: &str, current: Stored) -> Response {
    if !t.rt.delete_returns_object {
        return json_response(StatusCode::OK, &delete_success(&t.rt, name, uid));
    }
    let mut object = present(t, current.object, current.mod_revision);
    if t.rt.is_namespace() {
        // Real namespaces linger as Terminating; ours are gone already.
        object["status"] = json!({"phase": "Terminating"});
        object["metadata"]["deletionTimestamp"] = json!(now_timestamp());
    }
    json_response(StatusCode::OK, &object)
}

async fn delete_collection(state: &AppState, t: &Target, req: &Req) -> Result<Response, ApiError> {
    let listed = read_collection(state, t, req).await?;
    let mut deleted = Vec::new();
    for s in listed.items {
        let name = meta_str(&s.object, "name").unwrap_or_default().to_string();
        let also = dependents(state, t, &name, &s.object);
        if req.dry_run() {
            deleted.push(s);
            continue;
        }
        // An object changed or deleted meanwhile is left to the client.
        if let Written::Ok(_) = state.store.delete(&s.key, s.mod_revision, &also).await? {
            deleted.push(s);
        }
    }
    if !deleted.is_empty() {
        after_write(state, t).await;
    }
    let revision = state.store.revision().await?;
    let body = list_body(
        t,
        Listed {
            items: deleted,
            revision,
            continue_token: None,
            remaining: None,
        },
    );
    Ok(json_response(StatusCode::OK, &body))
}

/// Create the namespaces kube-apiserver always has, if missing.
pub async fn bootstrap_namespaces(state: &AppState) -> Result<(), ApiError> {
    let reg = state.registry();
    let rt = reg
        .namespace_type()
        .ok_or_else(|| ApiError::Internal("namespaces are not registered".into()))?;
    let t = Target {
        rt: rt.clone(),
        version: "v1".into(),
        namespace: None,
    };
    for ns in SYSTEM_NAMESPACES {
        let mut object = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": ns,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": now_timestamp(),
            },
        });
        apply_defaults(&t, &mut object)?;
        let key = state.store.object_key(&rt, None, ns);
        // Already there (a restart, or another server): nothing to do.
        state.store.create(&key, to_storage(object)?).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(percent_decode("system%3Aadmin"), "system:admin");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz%4"), "bad%zz%4");
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = decode_continue(&encode_continue(42, "cm-07\u{0}")).unwrap();
        assert_eq!((t.rv, t.start.as_str()), (42, "cm-07\u{0}"));
        assert!(decode_continue("garbage").is_err());
        assert!(
            decode_continue(&URL_SAFE_NO_PAD.encode(b"{\"v\":\"x\",\"rv\":1,\"start\":\"\"}"))
                .is_err()
        );
    }
}
