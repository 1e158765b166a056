//! What this server serves: the built-in resource types, the ones that
//! CustomResourceDefinitions add, and the discovery documents built from them.
//!
//! A [`ResourceType`] is one (group, resource) with the versions it is served
//! at and where its objects live in etcd. The registry is pure data: loading
//! CRDs from etcd is the caller's job ([`Registry::set_crds`]), so the
//! discovery output can be unit tested without a server.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{Value, json};

/// How `metadata.name` is validated, as kube-apiserver does per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: most kinds (configmaps, deployments, CRs, ...).
    Subdomain,
    /// RFC 1123 label: namespaces.
    Label,
    /// RFC 1035 label (must start with a letter): services.
    Dns1035Label,
    /// Anything usable as a path segment: RBAC objects.
    PathSegment,
}

/// One served resource, e.g. `deployments` in `apps`.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group; empty for the core (legacy) group.
    pub group: String,
    /// Served versions, preferred first.
    pub versions: Vec<String>,
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Where objects live in etcd, below the server's prefix: the layout of
    /// kube-apiserver (`configmaps`, `services/specs`, `ingress`, `<group>/<plural>` for CRs).
    pub key_prefix: String,
    pub name_rule: NameRule,
    /// Whether kube-apiserver maintains `metadata.generation` for this kind.
    pub generation: bool,
    /// DELETE answers with the object (pods, namespaces) instead of a `Status`.
    pub delete_returns_object: bool,
}

impl ResourceType {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.resource == "namespaces"
    }

    pub fn is_crd(&self) -> bool {
        self.group == CRD_GROUP && self.resource == "customresourcedefinitions"
    }

    fn discovery_entry(&self) -> Value {
        let mut entry = json!({
            "name": self.resource,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update"],
        });
        if !self.short_names.is_empty() {
            entry["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            entry["categories"] = json!(self.categories);
        }
        entry
    }
}

pub const CRD_GROUP: &str = "apiextensions.k8s.io";

struct Builtin {
    group: &'static str,
    versions: &'static [&'static str],
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    all: bool,
    key: &'static str,
    name_rule: NameRule,
    generation: bool,
    returns_object: bool,
}

const fn b(
    group: &'static str,
    versions: &'static [&'static str],
    resource: &'static str,
    kind: &'static str,
    short: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        versions,
        resource,
        kind,
        namespaced: true,
        short,
        all: false,
        key: resource,
        name_rule: NameRule::Subdomain,
        generation: false,
        returns_object: false,
    }
}

impl Builtin {
    const fn all(mut self) -> Self {
        self.all = true;
        self
    }
    const fn key(mut self, key: &'static str) -> Self {
        self.key = key;
        self
    }
    const fn cluster(mut self) -> Self {
        self.namespaced = false;
        self
    }
    const fn names(mut self, rule: NameRule) -> Self {
        self.name_rule = rule;
        self
    }
    const fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
    const fn returns_object(mut self) -> Self {
        self.returns_object = true;
        self
    }
}

/// The built-in kinds. Keys follow kube-apiserver's etcd layout
/// (k8s.io/kubernetes test/integration/etcd/data.go): the bare resource name
/// for built-in groups, with the historic exceptions for services, endpoints
/// and ingresses. Multi-version resources share one key: no conversion.
const BUILTINS: &[Builtin] = &[
    b("", &["v1"], "namespaces", "Namespace", &["ns"])
        .cluster()
        .names(NameRule::Label)
        .returns_object(),
    b("", &["v1"], "configmaps", "ConfigMap", &["cm"]),
    b("", &["v1"], "secrets", "Secret", &[]),
    b("", &["v1"], "services", "Service", &["svc"])
        .all()
        .key("services/specs")
        .names(NameRule::Dns1035Label),
    b("", &["v1"], "serviceaccounts", "ServiceAccount", &["sa"]),
    b(
        "",
        &["v1"],
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        &["pvc"],
    ),
    b("", &["v1"], "pods", "Pod", &["po"])
        .all()
        .returns_object(),
    b("", &["v1"], "events", "Event", &["ev"]),
    b("", &["v1"], "resourcequotas", "ResourceQuota", &["quota"]),
    b("", &["v1"], "limitranges", "LimitRange", &["limits"]),
    b("", &["v1"], "endpoints", "Endpoints", &["ep"]).key("services/endpoints"),
    b("apps", &["v1"], "deployments", "Deployment", &["deploy"])
        .all()
        .generation(),
    b("apps", &["v1"], "statefulsets", "StatefulSet", &["sts"])
        .all()
        .generation(),
    b("apps", &["v1"], "daemonsets", "DaemonSet", &["ds"])
        .all()
        .generation(),
    b("batch", &["v1"], "jobs", "Job", &[]).all().generation(),
    b("batch", &["v1", "v1beta1"], "cronjobs", "CronJob", &["cj"])
        .all()
        .generation(),
    b(
        "networking.k8s.io",
        &["v1"],
        "ingresses",
        "Ingress",
        &["ing"],
    )
    .key("ingress")
    .generation(),
    b(
        "networking.k8s.io",
        &["v1"],
        "networkpolicies",
        "NetworkPolicy",
        &["netpol"],
    )
    .generation(),
    b("rbac.authorization.k8s.io", &["v1"], "roles", "Role", &[]).names(NameRule::PathSegment),
    b(
        "rbac.authorization.k8s.io",
        &["v1"],
        "rolebindings",
        "RoleBinding",
        &[],
    )
    .names(NameRule::PathSegment),
    b(
        "autoscaling",
        &["v1", "v2beta2"],
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        &["hpa"],
    )
    .all(),
    b(
        "policy",
        &["v1", "v1beta1"],
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        &["pdb"],
    )
    .generation(),
    b(
        CRD_GROUP,
        &["v1"],
        "customresourcedefinitions",
        "CustomResourceDefinition",
        &["crd", "crds"],
    )
    .cluster()
    .key("apiextensions.k8s.io/customresourcedefinitions")
    .generation(),
];

fn builtin_types() -> Vec<Arc<ResourceType>> {
    BUILTINS
        .iter()
        .map(|b| {
            Arc::new(ResourceType {
                group: b.group.to_string(),
                versions: b.versions.iter().map(|v| v.to_string()).collect(),
                resource: b.resource.to_string(),
                singular: b.kind.to_lowercase(),
                kind: b.kind.to_string(),
                list_kind: format!("{}List", b.kind),
                namespaced: b.namespaced,
                short_names: b.short.iter().map(|s| s.to_string()).collect(),
                categories: if b.all { vec!["all".into()] } else { vec![] },
                key_prefix: b.key.to_string(),
                name_rule: b.name_rule,
                generation: b.generation,
                delete_returns_object: b.returns_object,
            })
        })
        .collect()
}

/// Why a CRD cannot be served; becomes a 422 on create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdProblem {
    pub field: &'static str,
    pub message: String,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn problem(field: &'static str, message: impl Into<String>) -> CrdProblem {
    CrdProblem {
        field,
        message: message.into(),
    }
}

/// The resource type a CRD object defines, or why it defines none.
pub fn crd_resource_type(crd: &Value) -> Result<ResourceType, CrdProblem> {
    let group = str_at(crd, &["spec", "group"]).unwrap_or_default();
    if group.is_empty() {
        return Err(problem("spec.group", "Required value"));
    }
    if !group.contains('.') {
        return Err(problem(
            "spec.group",
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    let plural = str_at(crd, &["spec", "names", "plural"]).unwrap_or_default();
    let kind = str_at(crd, &["spec", "names", "kind"]).unwrap_or_default();
    if plural.is_empty() {
        return Err(problem("spec.names.plural", "Required value"));
    }
    if kind.is_empty() {
        return Err(problem("spec.names.kind", "Required value"));
    }
    let name = str_at(crd, &["metadata", "name"]).unwrap_or_default();
    if name != format!("{plural}.{group}") {
        return Err(problem(
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let namespaced = match str_at(crd, &["spec", "scope"]) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            return Err(problem(
                "spec.scope",
                format!(
                    "Unsupported value: \"{}\": supported values: \"Cluster\", \"Namespaced\"",
                    other.unwrap_or_default()
                ),
            ));
        }
    };
    let mut versions: Vec<String> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(false))
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(problem(
            "spec.versions",
            "Invalid value: must have at least one served version",
        ));
    }
    versions.sort_by(|a, b| compare_versions(a, b));
    let strings = |key: &str| -> Vec<String> {
        crd.pointer(&format!("/spec/names/{key}"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ResourceType {
        group: group.to_string(),
        versions,
        resource: plural.to_string(),
        singular: str_at(crd, &["spec", "names", "singular"])
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase()),
        kind: kind.to_string(),
        list_kind: str_at(crd, &["spec", "names", "listKind"])
            .map(str::to_string)
            .unwrap_or_else(|| format!("{kind}List")),
        namespaced,
        short_names: strings("shortNames"),
        categories: strings("categories"),
        key_prefix: format!("{group}/{plural}"),
        name_rule: NameRule::Subdomain,
        generation: true,
        delete_returns_object: false,
    })
}

/// kube-aware version order: GA before beta before alpha, higher numbers
/// first, anything unparsable last in lexical order (k8s `CompareKubeAwareVersionStrings`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
            (2, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, n)
        } else {
            return None;
        };
        Some((level, major, num.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// One API group as discovery shows it.
pub struct Group {
    pub name: String,
    /// Preferred first.
    pub versions: Vec<String>,
}

/// Every served resource type: built-ins plus the current CRDs.
#[derive(Clone)]
pub struct Registry {
    builtin: Vec<Arc<ResourceType>>,
    custom: Vec<Arc<ResourceType>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Registry {
            builtin: builtin_types(),
            custom: Vec::new(),
        }
    }

    /// Replace the CRD-defined types with those of `crds` (CRD objects as
    /// stored). Invalid CRDs and ones shadowing a built-in are skipped.
    pub fn set_crds(&mut self, crds: &[Value]) {
        let mut custom: Vec<Arc<ResourceType>> = Vec::new();
        for crd in crds {
            let Ok(rt) = crd_resource_type(crd) else {
                continue;
            };
            let taken = self
                .builtin
                .iter()
                .chain(custom.iter())
                .any(|t| t.group == rt.group && t.resource == rt.resource);
            if !taken {
                custom.push(Arc::new(rt));
            }
        }
        self.custom = custom;
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.builtin.iter().chain(self.custom.iter())
    }

    pub fn resolve(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .find(|t| t.group == group && t.resource == resource && t.serves(version))
            .cloned()
    }

    pub fn namespace_type(&self) -> Option<Arc<ResourceType>> {
        self.all().find(|t| t.is_namespace()).cloned()
    }

    pub fn crd_type(&self) -> Option<Arc<ResourceType>> {
        self.all().find(|t| t.is_crd()).cloned()
    }

    /// True if `group` and `version` are served at all (for `/apis/g/v`).
    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.all().any(|t| t.group == group && t.serves(version))
    }

    /// Named groups in discovery order: built-ins as listed, then CRD groups.
    pub fn groups(&self) -> Vec<Group> {
        let mut groups: Vec<Group> = Vec::new();
        for t in self.all().filter(|t| !t.group.is_empty()) {
            let idx = match groups.iter().position(|g| g.name == t.group) {
                Some(i) => i,
                None => {
                    groups.push(Group {
                        name: t.group.clone(),
                        versions: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            for v in &t.versions {
                if !groups[idx].versions.contains(v) {
                    groups[idx].versions.push(v.clone());
                }
            }
        }
        for g in &mut groups {
            g.versions.sort_by(|a, b| compare_versions(a, b));
        }
        groups
    }

    /// `/api`: the legacy group's versions.
    pub fn api_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        })
    }

    fn group_json(g: &Group) -> Value {
        let versions: Vec<Value> = g
            .versions
            .iter()
            .map(|v| json!({"groupVersion": format!("{}/{}", g.name, v), "version": v}))
            .collect();
        let preferred = versions.first().cloned().unwrap_or(Value::Null);
        json!({"name": g.name, "versions": versions, "preferredVersion": preferred})
    }

    /// `/apis`.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self.groups().iter().map(Self::group_json).collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `/apis/<group>`.
    pub fn api_group(&self, group: &str) -> Option<Value> {
        let g = self.groups().into_iter().find(|g| g.name == group)?;
        let mut v = Self::group_json(&g);
        v["kind"] = json!("APIGroup");
        v["apiVersion"] = json!("v1");
        Some(v)
    }

    /// `/api/v1` or `/apis/<group>/<version>`.
    pub fn api_resource_list(&self, group: &str, version: &str) -> Option<Value> {
        if !self.serves_group_version(group, version) {
            return None;
        }
        let resources: Vec<Value> = self
            .all()
            .filter(|t| t.group == group && t.serves(version))
            .map(|t| t.discovery_entry())
            .collect();
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn crd(scope: &str) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": scope,
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true},
                    {"name": "v2alpha1", "served": false, "storage": false}
                ]
            }
        })
    }

    #[test]
    fn version_order_is_kube_aware() {
        let mut v = vec![
            "v1alpha1", "v2beta1", "v1", "foo", "v1beta2", "v2", "v1beta1",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            [
                "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"
            ]
        );
    }

    #[test]
    fn crd_defines_served_versions_and_key() {
        let rt = crd_resource_type(&crd("Namespaced")).unwrap();
        assert_eq!(rt.versions, ["v1", "v1beta1"]);
        assert_eq!(rt.key_prefix, "example.com/widgets");
        assert_eq!(rt.singular, "widget");
        assert_eq!(rt.list_kind, "WidgetList");
        assert!(rt.namespaced);
        assert!(!crd_resource_type(&crd("Cluster")).unwrap().namespaced);
    }

    #[test]
    fn crd_problems_name_the_field() {
        let mut bad = crd("Namespaced");
        bad["metadata"]["name"] = json!("widgets.other.com");
        assert_eq!(crd_resource_type(&bad).unwrap_err().field, "metadata.name");
        assert_eq!(
            crd_resource_type(&crd("Global")).unwrap_err().field,
            "spec.scope"
        );
    }

    #[test]
    fn discovery_includes_crd_groups_and_short_names() {
        let mut r = Registry::new();
        r.set_crds(&[crd("Namespaced")]);
        let groups = r.api_group_list();
        let names: Vec<&str> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"apps") && names.contains(&"example.com"));
        let batch = r.api_group("batch").unwrap();
        assert_eq!(batch["preferredVersion"]["version"], "v1");
        let core = r.api_resource_list("", "v1").unwrap();
        let cm = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "configmaps")
            .unwrap();
        assert_eq!(cm["shortNames"], json!(["cm"]));
        assert!(r.resolve("example.com", "v1beta1", "widgets").is_some());
        assert!(r.resolve("example.com", "v2alpha1", "widgets").is_none());
        assert!(r.api_resource_list("example.com", "v2alpha1").is_none());
    }

    #[test]
    fn crd_cannot_shadow_a_builtin() {
        let mut r = Registry::new();
        let mut c = crd("Namespaced");
        c["spec"]["group"] = json!("apps.example.com");
        c["metadata"]["name"] = json!("widgets.apps.example.com");
        let dup = c.clone();
        r.set_crds(&[c, dup]);
        assert_eq!(r.all().filter(|t| t.group == "apps.example.com").count(), 1);
    }
}
