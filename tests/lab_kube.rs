//! Kubernetes namespaces against the lab's real control planes (kube-apiserver
//! and kube-controller-manager v1.34 per region, each on that region's etcd):
//! backup, cross-region restore, mapping, filters, existing-object policies,
//! paging, CRDs with two versions, autoscaled replicas, admission refusals,
//! least-privilege roles, a namespace stuck terminating, and bad inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;
use predicates::prelude::*;
use serde_json::{Value, json};

fn kubectl(lab: &Lab, context: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl_output(lab, context, args, stdin);
    assert!(out.status.success(), "kubectl {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// kubectl's whole outcome, for calls that may fail on purpose.
fn kubectl_output(
    lab: &Lab,
    context: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    let mut cmd = Command::new(&lab.env["LAB_KUBECTL"]);
    cmd.args([
        "--kubeconfig",
        &lab.env["LAB_KUBECONFIG"],
        "--context",
        context,
    ])
    .args(args)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(std::process::Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Every object of the namespace, by (resource, name), in comparable form:
/// what a restore must reproduce (no server-filled or cluster-assigned fields).
fn objects(lab: &Lab, context: &str, ns: &str) -> BTreeMap<(String, String), Value> {
    let kinds = kubectl(
        lab,
        context,
        &[
            "api-resources",
            "--namespaced=true",
            "--verbs=list",
            "-o",
            "name",
        ],
        None,
    );
    let mut out = BTreeMap::new();
    for kind in kinds.lines().filter(|k| !k.is_empty()) {
        if ["events", "events.events.k8s.io", "endpoints", "pods"].contains(&kind) {
            continue;
        }
        let list: Value = serde_json::from_str(&kubectl(
            lab,
            context,
            &["get", kind, "-n", ns, "-o", "json"],
            None,
        ))
        .unwrap();
        for item in list["items"].as_array().unwrap() {
            // A controller's children (ReplicaSets, EndpointSlices, a Job's
            // pods) are the cluster's: not restored, made again there under
            // names of its own.
            let owned = item["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.iter().any(|o| o["controller"] == true));
            if owned {
                continue;
            }
            let name = item["metadata"]["name"].as_str().unwrap().to_string();
            let mut spec = item["spec"].clone();
            if let Some(s) = spec.as_object_mut() {
                s.remove("clusterIP");
                s.remove("clusterIPs");
                s.remove("volumeName");
            }
            // The deployment controller's revision count, set when it gets to it.
            let mut annotations = item["metadata"]["annotations"].clone();
            if let Some(a) = annotations.as_object_mut() {
                a.remove("deployment.kubernetes.io/revision");
                if a.is_empty() {
                    annotations = Value::Null;
                }
            }
            // A Job's selector and template labels carry its own uid.
            if kind == "jobs.batch" {
                spec = strip_job_uid(spec);
            }
            out.insert(
                (kind.to_string(), name),
                json!({
                    "labels": item["metadata"]["labels"],
                    "annotations": annotations,
                    "finalizers": item["metadata"]["finalizers"],
                    "spec": spec, "data": item["data"], "rules": item["rules"],
                    "subjects": item["subjects"], "roleRef": item["roleRef"], "type": item["type"],
                }),
            );
        }
    }
    // An autoscaler owns the replica count of what it scales, and sets it on
    // its own time (the HPA controller raises it to minReplicas): not
    // something a restore reproduces.
    let scaled: Vec<(String, String)> = out
        .iter()
        .filter(|((kind, _), _)| kind.starts_with("horizontalpodautoscalers."))
        .filter_map(|(_, hpa)| {
            let target = &hpa["spec"]["scaleTargetRef"];
            let kind = match target["kind"].as_str()? {
                "Deployment" => "deployments.apps",
                "StatefulSet" => "statefulsets.apps",
                "ReplicaSet" => "replicasets.apps",
                _ => return None,
            };
            Some((kind.to_string(), target["name"].as_str()?.to_string()))
        })
        .collect();
    for key in scaled {
        if let Some(spec) = out.get_mut(&key).and_then(|o| o["spec"].as_object_mut()) {
            spec.remove("replicas");
        }
    }
    out
}

fn ns_config(lab: &Lab, name: &str, ns: &str, extra: &str) -> String {
    format!(
        r#"{}
[targets.app]
kind = "namespace"
namespace = "{ns}"
home = "{EAST}"
copy_to = ["{WEST}"]
{extra}

[targets.app.regions.{EAST}]
kubeconfig = "{kc}"
context = "lab-{EAST}"

[targets.app.regions.{WEST}]
kubeconfig = "{kc}"
context = "lab-{WEST}"
"#,
        lab.regions_toml(name),
        kc = lab.env["LAB_KUBECONFIG"]
    )
}

/// Deletes a test's namespaces without waiting for them to go.
fn delete_namespaces(lab: &Lab, context: &str, namespaces: &[&str]) {
    let mut args = vec!["delete", "namespace"];
    args.extend_from_slice(namespaces);
    args.push("--wait=false");
    kubectl(lab, context, &args, None);
}

fn wait_for_stateful_set_claims(lab: &Lab, ns: &str) {
    let names = |kind: &str| {
        kubectl(
            lab,
            &format!("lab-{EAST}"),
            &["get", kind, "-n", ns, "-o", "name"],
            None,
        )
    };
    for _ in 0..150 {
        let claims = names("pvc")
            .lines()
            .filter(|n| n.starts_with("persistentvolumeclaim/data-statefulset-"))
            .count();
        if claims >= names("sts").lines().count() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn strip_job_uid(mut spec: Value) -> Value {
    if let Some(s) = spec.as_object_mut() {
        s.remove("selector");
    }
    if let Some(labels) = spec["template"]["metadata"]["labels"].as_object_mut() {
        for l in drtool::source::namespace::JOB_UID_LABELS {
            labels.remove(l);
        }
    }
    spec
}

/// Objects that exercise the skip and drop rules, plus a CRD of the test's own.
/// `node_port` is the port Service node-port-fixed asks for.
fn extras(ns: &str, group: &str, node_port: u16) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget}}
  conversion: {{strategy: None}}
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema: {{openAPIV3Schema: {{type: object, properties: {{spec: {{type: object, properties: {{
      size: {{type: integer}}, color: {{type: string, default: grey}}}}}}}}}}}}
  - name: v1
    served: true
    storage: true
    schema: {{openAPIV3Schema: {{type: object, properties: {{spec: {{type: object, properties: {{
      size: {{type: integer, minimum: 1}}, color: {{type: string, default: blue}},
      owner: {{type: string}}}}}}}}}}}}
---
apiVersion: {group}/v1
kind: Gadget
metadata: {{name: g1, namespace: {ns}, labels: {{tier: gold}}}}
spec: {{size: 3}}
---
apiVersion: {group}/v1beta1
kind: Gadget
metadata: {{name: g2, namespace: {ns}}}
spec: {{size: 5}}
---
apiVersion: v1
kind: Pod
metadata:
  name: owned-pod
  namespace: {ns}
  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: rs, uid: 00000000-0000-0000-0000-000000000001, controller: true}}]
spec: {{containers: [{{name: c, image: busybox}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: bare-pod, namespace: {ns}}}
spec: {{containers: [{{name: c, image: busybox}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sa-token, namespace: {ns}, annotations: {{kubernetes.io/service-account.name: default}}}}
type: kubernetes.io/service-account-token
---
apiVersion: v1
kind: Event
metadata: {{name: ev1, namespace: {ns}}}
involvedObject: {{kind: Pod, name: bare-pod, namespace: {ns}}}
reason: Started
message: started
---
apiVersion: v1
kind: Service
metadata: {{name: fixed-ip, namespace: {ns}}}
spec: {{clusterIP: 10.91.{}.{}, selector: {{app: x}}, ports: [{{port: 80}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: node-port-fixed, namespace: {ns}}}
spec: {{type: NodePort, selector: {{app: x}}, ports: [{{port: 80, nodePort: {node_port}}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: node-port-auto, namespace: {ns}}}
spec: {{type: NodePort, selector: {{app: x}}, ports: [{{name: http, port: 80}}, {{name: https, port: 443}}]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: held, namespace: {ns}, finalizers: [drtool.dev/keep]}}
data: {{k: v}}
"#,
        // A fixed address of us-east-1's service range (10.91.0.0/16), one
        // per run: the lab's namespaces outlive the tests.
        1 + rand::random::<u8>() % 250,
        1 + rand::random::<u8>() % 250
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn namespace_restored_in_the_other_region_object_by_object() {
    let lab = Lab::get();
    let name = unique("ns");
    let ns = name.clone();
    let group = format!("{name}.drtool.dev");
    kube_load(&lab.env["LAB_KUBE_US_EAST_1"], &ns, 400);
    // The CRD first, on its own: kubectl maps every kind of a file before it
    // creates anything, so a custom resource next to its CRD may not map yet.
    // A node port per run that neither cluster holds (the lab's clusters
    // outlive the tests).
    let held: Vec<String> = [EAST, WEST]
        .iter()
        .flat_map(|region| {
            kubectl(
                &lab,
                &format!("lab-{region}"),
                &[
                    "get",
                    "services",
                    "-A",
                    "-o",
                    "jsonpath={.items[*].spec.ports[*].nodePort}",
                ],
                None,
            )
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
        })
        .collect();
    let node_port = std::iter::repeat_with(|| 30000 + rand::random::<u16>() % 2768)
        .find(|p| !held.contains(&p.to_string()))
        .unwrap();
    let docs = extras(&ns, &group, node_port);
    let (crd, rest) = docs.split_once("---\n").unwrap();
    kubectl(
        &lab,
        &format!("lab-{EAST}"),
        &["create", "-f", "-"],
        Some(crd),
    );
    let served = format!("gadgets.{group}");
    for _ in 0..50 {
        let kinds = kubectl(
            &lab,
            &format!("lab-{EAST}"),
            &["api-resources", "-o", "name"],
            None,
        );
        if kinds.lines().any(|k| k == served) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    kubectl(
        &lab,
        &format!("lab-{EAST}"),
        &["create", "-f", "-"],
        Some(rest),
    );
    // The StatefulSet controller makes each set's first claim on its own
    // time: wait for all of them, so the point and `before` agree.
    wait_for_stateful_set_claims(&lab, &ns);
    let before = objects(&lab, &format!("lab-{EAST}"), &ns);
    assert!(before.len() > 400, "{} objects", before.len());
    let kinds: std::collections::BTreeSet<&str> = before.keys().map(|(k, _)| k.as_str()).collect();
    assert!(kinds.len() >= 17, "{kinds:?}");
    // Each object got the default of the version it was written through.
    let gadget = |n: &str| before[&(format!("gadgets.{group}"), n.to_string())]["spec"].clone();
    assert_eq!(gadget("g1"), json!({"size": 3, "color": "blue"}));
    assert_eq!(gadget("g2"), json!({"size": 5, "color": "grey"}));
    let held = ("configmaps".to_string(), "held".to_string());
    assert_eq!(before[&held]["finalizers"], json!(["drtool.dev/keep"]));
    let service = |objects: &BTreeMap<(String, String), Value>, name: &str| {
        objects[&("services".to_string(), name.to_string())]["spec"].clone()
    };
    assert_eq!(
        service(&before, "node-port-fixed")["ports"][0]["nodePort"],
        node_port
    );
    let auto_ports = service(&before, "node-port-auto")["ports"].clone();
    assert!(auto_ports[1]["nodePort"].is_u64(), "{auto_ports}");

    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &ns_config(&lab, &name, &ns, ""));
    let out = lab.drtool(&cfg).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let point = point_of(&stdout(&out));
    let listed = lab
        .drtool(&cfg)
        .args(["points", "--region", WEST, "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let m = &v["items"][0];
    assert_eq!(m["payload"], "kube-namespace");
    // kube-root-ca.crt is the cluster's own, published in every namespace:
    // never backed up.
    let cms = before
        .keys()
        .filter(|(k, n)| k == "configmaps" && n != "kube-root-ca.crt")
        .count();
    assert_eq!(m["items"]["configmaps"], cms);
    assert_eq!(
        m["items"]["customresourcedefinitions.apiextensions.k8s.io"],
        1
    );
    // Two versions: one made through each, both read and restored through
    // the preferred one, with the defaults the server gave them.
    assert_eq!(m["items"][format!("gadgets.{group}")], 2);
    assert_eq!(m["items"]["pods"], 1, "the controller-owned pod is skipped");
    assert!(m["items"]["events"].is_null(), "events are not backed up");
    assert!(
        m["consistency"]["lists"]["configmaps"]
            .as_str()
            .is_some_and(|rv| !rv.is_empty())
    );
    // `drtool ls` lists the same objects from the DR copy, named as
    // kubectl names them, without restoring anything.
    let ls = lab
        .drtool(&cfg)
        .args(["ls", "-t", "app", "--region", WEST, "-o", "json"])
        .output()
        .unwrap();
    assert!(ls.status.success(), "{}", stderr(&ls));
    let ls: Value = serde_json::from_slice(&ls.stdout).unwrap();
    let listed = ls["items"].as_array().unwrap();
    let all: u64 = m["items"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(listed.len() as u64, all, "{:?}", m["items"]);
    let held_cm = listed
        .iter()
        .find(|i| i["name"] == format!("{ns}/held"))
        .unwrap();
    assert_eq!(held_cm["kind"], "ConfigMap");
    assert_eq!(held_cm["details"]["api_version"], "v1");
    assert!(held_cm["size"].as_u64().unwrap() > 50);
    // The dashboard's tree of the same copy: a folder per kind, each
    // restorable alone as its resource; inside, a folder per namespace.
    let engine = drtool::engine::Engine::new(
        drtool::source::load_config(&cfg).unwrap(),
        drtool::source::registry(),
        drtool::engine::EngineOptions::default(),
    )
    .unwrap();
    let index = engine
        .open_point(&drtool::engine::contents::ContentsRequest {
            region: WEST.into(),
            target: "app".into(),
            point: drtool::catalog::PointChoice::Newest,
            filter: Default::default(),
        })
        .await
        .unwrap()
        .index()
        .await
        .unwrap();
    assert_eq!(index.listed.items, all);
    let root = index.level("", "", 5000).unwrap();
    let cm = root
        .entries
        .iter()
        .find(|e| e.path() == "ConfigMap/")
        .unwrap_or_else(|| panic!("{root:?}"));
    assert_eq!(
        cm.restore().unwrap().values("include"),
        ["configmaps"],
        "{cm:?}"
    );
    let configmaps = index.level("ConfigMap/", "", 5000).unwrap();
    assert_eq!(Some(configmaps.items), m["items"]["configmaps"].as_u64());
    assert!(
        configmaps
            .entries
            .iter()
            .all(|e| e.path().starts_with("ConfigMap/") && e.restore().is_none()),
        "{configmaps:?}"
    );
    let file = index.file_path().to_path_buf();
    assert!(file.exists());
    drop(index);
    assert!(!file.exists(), "the index file goes with the index");
    let text = lab
        .drtool(&cfg)
        .args(["ls", "-t", "app", "--prefix", &format!("{ns}/node-port")])
        .output()
        .unwrap();
    let text = stdout(&text);
    let rows: Vec<&str> = text.lines().collect();
    assert!(
        rows[0].contains("KIND") && rows[0].contains("API VERSION"),
        "{text}"
    );
    assert!(
        rows[1..].iter().all(|r| r.contains(" Service ")) && rows.len() == 3,
        "{text}"
    );
    // `drtool diff` against the live namespace, field by field.
    let east = format!("lab-{EAST}");
    kubectl(
        &lab,
        &east,
        &[
            "-n",
            &ns,
            "patch",
            "configmap",
            "held",
            "-p",
            r#"{"data":{"drtool-diff":"yes"}}"#,
        ],
        None,
    );
    kubectl(
        &lab,
        &east,
        &[
            "-n",
            &ns,
            "create",
            "configmap",
            "added-after",
            "--from-literal=a=b",
        ],
        None,
    );
    let diff = lab
        .drtool(&cfg)
        .args(["diff", "-t", "app", "--live", "--prefix", &format!("{ns}/")])
        .output()
        .unwrap();
    assert_eq!(diff.status.code(), Some(1), "{}", stderr(&diff));
    let text = stdout(&diff);
    assert!(
        text.contains(&format!("+ ConfigMap {ns}/added-after")),
        "{text}"
    );
    assert!(text.contains(&format!("~ ConfigMap {ns}/held")), "{text}");
    assert!(text.contains(r#"+    "drtool-diff": "yes""#), "{text}");
    // The restore plan shows the same fields for what it would update.
    let plan = lab
        .drtool(&cfg)
        .args([
            "restore",
            "-r",
            EAST,
            "-t",
            "app",
            "--existing",
            "overwrite",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", stderr(&plan));
    let text = stdout(&plan);
    assert!(
        text.contains("UPDATE     configmaps held (live --- / point +++):"),
        "{text}"
    );
    assert!(text.contains(r#"-    "drtool-diff": "yes""#), "{text}");

    // The namespace is lost in us-east-1; it comes back in us-west-2.
    let release = |context: &str, ns: &str| {
        kubectl(
            &lab,
            context,
            &[
                "patch",
                "configmap",
                "held",
                "-n",
                ns,
                "--type",
                "merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ],
            None,
        );
    };
    release(&format!("lab-{EAST}"), &ns);
    kubectl(
        &lab,
        &format!("lab-{EAST}"),
        &["delete", "namespace", &ns],
        None,
    );
    lab.drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "app", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("gadgets.{group}")))
        .stdout(predicate::str::contains("dry run"));
    lab.drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "app"])
        .assert()
        .success()
        .stdout(predicate::str::contains("0 failed"));
    let after = objects(&lab, &format!("lab-{WEST}"), &ns);
    let before: BTreeMap<_, _> = before
        .into_iter()
        .filter(|((k, n), _)| !(k == "secrets" && n == "sa-token"))
        .collect();
    let missing: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let extra: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing after restore: {missing:?}; extra: {extra:?}"
    );
    for (key, obj) in &before {
        assert_eq!(&after[key], obj, "{key:?} differs after restore");
    }
    let pod: Value = serde_json::from_str(&kubectl(
        &lab,
        &format!("lab-{WEST}"),
        &["get", "pod", "bare-pod", "-n", &ns, "-o", "json"],
        None,
    ))
    .unwrap();
    // Back, and waiting for a node of the new cluster (the lab has none; a
    // pod bound to a node the cluster lacks is deleted by its pod GC, which
    // is why a restore drops nodeName).
    assert_eq!(pod["spec"]["containers"][0]["image"], "busybox");
    assert!(pod["spec"]["nodeName"].is_null());

    // A second run changes nothing.
    lab.drtool(&cfg)
        .args([
            "restore", "--region", WEST, "--target", "app", "--point", &point,
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("0 created, 0 updated"));

    // A copy beside it in the same cluster: its node ports are taken (by the
    // restored Services), so the server picks others and the restore says so.
    let copy = format!("{ns}-copy");
    let out = lab
        .drtool(&cfg)
        .args([
            "restore",
            "--region",
            WEST,
            "--target",
            "app",
            "--point",
            &point,
            "--namespace-map",
            &format!("{ns}={copy}"),
            "--include",
            "services",
        ])
        .output()
        .unwrap();
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("0 failed")
            && said.contains(&format!(
                "services/node-port-fixed: node port {node_port} is held by another Service of"
            ))
            && said.contains(&format!("node-port-fixed {node_port}->"))
            && said.contains(&format!("node-port-auto {}->", auto_ports[0]["nodePort"]))
            && said.contains(&format!("node-port-auto {}->", auto_ports[1]["nodePort"])),
        "{said}"
    );
    let copied = objects(&lab, &format!("lab-{WEST}"), &copy);
    let moved = service(&copied, "node-port-fixed")["ports"][0]["nodePort"].clone();
    assert!(moved.is_u64() && moved != node_port, "{moved}");
    let auto_moved = service(&copied, "node-port-auto")["ports"].clone();
    assert_ne!(auto_moved[0]["nodePort"], auto_ports[0]["nodePort"]);
    assert_eq!(service(&after, "node-port-auto")["ports"], auto_ports);

    // Their node ports go back to the cluster.
    release(&format!("lab-{WEST}"), &ns);
    delete_namespaces(&lab, &format!("lab-{WEST}"), &[&ns, &copy]);
}

#[tokio::test(flavor = "multi_thread")]
async fn mapping_filters_policies_and_paging() {
    let lab = Lab::get();
    let name = unique("nsmap");
    let ns = name.clone();
    // 1200 objects over 17 kinds, 30 to a page: several pages per kind.
    kube_load(&lab.env["LAB_KUBE_US_EAST_1"], &ns, 1200);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &ns_config(&lab, &name, &ns, "exclude = [\"secrets\"]\npage_size = 30"),
    );
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let listed = lab
        .drtool(&cfg)
        .args(["points", "--region", EAST, "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let items = &v["items"][0]["items"];
    let cms = kubectl(
        &lab,
        &format!("lab-{EAST}"),
        &["get", "cm", "-n", &ns, "-o", "name"],
        None,
    )
    .lines()
    // The cluster's own CA bundle, published in every namespace: not backed up.
    .filter(|l| *l != "configmap/kube-root-ca.crt")
    .count();
    assert!(cms > 60, "{cms} configmaps do not need three pages");
    assert_eq!(items["configmaps"], cms, "{items}");
    assert!(
        items["secrets"].is_null(),
        "secrets are excluded by the target"
    );

    // Into a new namespace of the same cluster, configmaps only.
    let mapped = format!("{ns}-copy");
    let map = format!("{ns}={mapped}");
    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            EAST,
            "--target",
            "app",
            "--namespace-map",
            &map,
            "--include",
            "configmaps",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "namespace {mapped}: {} created",
            cms + 1
        )));
    let copied = kubectl(
        &lab,
        &format!("lab-{EAST}"),
        &["get", "cm", "-n", &mapped, "-o", "name"],
        None,
    );
    // The new namespace has the cluster's own kube-root-ca.crt besides.
    assert_eq!(
        copied
            .lines()
            .filter(|l| *l != "configmap/kube-root-ca.crt")
            .count(),
        cms
    );
    assert_eq!(
        kubectl(
            &lab,
            &format!("lab-{EAST}"),
            &["get", "deploy", "-n", &mapped, "-o", "name"],
            None
        ),
        ""
    );

    // A changed object: fail refuses, skip leaves it, update puts it back.
    kubectl(
        &lab,
        &format!("lab-{EAST}"),
        &[
            "patch",
            "cm",
            "configmap-00000",
            "-n",
            &mapped,
            "--type",
            "merge",
            "-p",
            r#"{"data":{"changed":"yes"}}"#,
        ],
        None,
    );
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "restore",
            "--region",
            EAST,
            "--target",
            "app",
            "--namespace-map",
            &map,
            "--include",
            "configmaps",
        ];
        args.extend_from_slice(extra);
        lab.drtool(&cfg).args(args).assert()
    };
    // Refused by its existing-policy: exit 9, its own code.
    restore(&[]).code(9).stderr(predicate::str::contains(
        "1 objects already exist in namespace",
    ));
    restore(&["--existing", "skip"])
        .success()
        .stdout(predicate::str::contains(format!(
            "0 created, 0 updated, {} unchanged, 1 skipped",
            cms
        )));
    restore(&["--existing", "update"])
        .code(6)
        .stderr(predicate::str::contains("--yes"));
    restore(&["--existing", "update", "--yes"])
        .success()
        .stdout(predicate::str::contains("1 updated"));
    let cm: Value = serde_json::from_str(&kubectl(
        &lab,
        &format!("lab-{EAST}"),
        &["get", "cm", "configmap-00000", "-n", &mapped, "-o", "json"],
        None,
    ))
    .unwrap();
    assert!(cm["data"]["changed"].is_null());
    restore(&["--existing", "update"])
        .success()
        .stdout(predicate::str::contains(format!(
            "0 created, 0 updated, {} unchanged",
            cms + 1
        )));
    kubectl(
        &lab,
        &format!("lab-{EAST}"),
        &["delete", "namespace", &mapped, &ns],
        None,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_are_named() {
    let lab = Lab::get();
    let name = unique("nsbad");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &ns_config(&lab, &name, "ghost", "")
            .replace("context = \"lab-us-east-1\"", "context = \"nope\""),
    );
    lab.drtool(&cfg)
        .arg("backup")
        .assert()
        .code(2)
        .stdout(predicate::str::contains(
            "context \"nope\" is not in kubeconfig",
        ))
        .stdout(predicate::str::contains("(contexts: lab-us-east-1, "))
        .stdout(predicate::str::contains("lab-us-west-2"));
    let cfg = write_config(tmp.path(), &ns_config(&lab, &name, "ghost", ""));
    lab.drtool(&cfg)
        .arg("backup")
        .assert()
        .code(2)
        .stdout(predicate::str::contains(
            "namespace \"ghost\" does not exist",
        ));
    // A point made by an etcd target under the same name is not a namespace point.
    let etcd = format!(
        "{}{}",
        lab.regions_toml(&name),
        lab.etcd_target_toml("app", "keys", Some("/nsbad/"), "")
    );
    let etcd_cfg = tmp.path().join("etcd.toml");
    std::fs::write(&etcd_cfg, etcd).unwrap();
    lab.drtool(&etcd_cfg)
        .args(["backup", "--no-copy"])
        .assert()
        .success();
    lab.drtool(&cfg)
        .args(["restore", "--region", EAST, "--target", "app", "--dry-run"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is a etcd point but target app is of kind namespace",
        ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payload_drtool_never_writes_is_refused_before_anything_is_written() {
    let lab = Lab::get();
    let name = unique("nsforged");
    let ns = name.clone();
    let east = lab.env["LAB_KUBE_US_EAST_1"].clone();
    kube_load(&east, &ns, 20);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &ns_config(&lab, &name, &ns, ""));
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let point = point_of(&stdout(&out));
    let restore = |args: &[&str]| {
        let mut a = vec![
            "restore",
            "--region",
            EAST,
            "--target",
            "app",
            "--namespace-map",
        ];
        let map = format!("{ns}={ns}-copy");
        a.push(&map);
        a.extend_from_slice(args);
        lab.drtool(&cfg).args(&a).assert()
    };

    // A ClusterRoleBinding line: never written by a namespace backup.
    rewrite_point(&cfg, EAST, "app", &point, |mut plain| {
        let line = serde_json::json!({
            "group": "rbac.authorization.k8s.io", "version": "v1",
            "kind": "ClusterRoleBinding", "plural": "clusterrolebindings", "namespaced": false,
            "object": {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": format!("{ns}-everything")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}],
            }
        });
        plain.extend_from_slice(format!("{line}\n").as_bytes());
        plain
    })
    .await;
    restore(&["--yes"]).code(5).stderr(predicate::str::contains(
        "cluster-scoped clusterrolebindings.rbac.authorization.k8s.io",
    ));

    // A line that is JSON but not an object: integrity, no panic.
    rewrite_point(&cfg, EAST, "app", &point, |plain| {
        let mut lines: Vec<&[u8]> = plain
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        lines.truncate(lines.len() - 1); // drop the binding again
        let mut out = b"[1, 2, 3]\n".to_vec();
        for l in lines {
            out.extend_from_slice(l);
            out.push(b'\n');
        }
        out
    })
    .await;
    restore(&["--yes"])
        .code(5)
        .stderr(predicate::str::contains("namespace payload line 1"))
        .stderr(predicate::str::contains("panicked").not());
    let copied = kubectl(
        &lab,
        "lab-us-east-1",
        &["get", "namespaces", "-o", "name"],
        None,
    );
    assert!(
        !copied.contains(&format!("{ns}-copy")),
        "nothing was created: {copied}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_backed_up_without_encryption_are_warned_about() {
    let lab = Lab::get();
    let name = unique("nssecret");
    let east = lab.env["LAB_KUBE_US_EAST_1"].clone();
    kube_load(&east, &name, 5);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &ns_config(&lab, &name, &name, ""));
    let warning = format!("the Secrets of namespace {name} are backed up");
    lab.drtool(&cfg)
        .args(["config", "check"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "WARNING: target app: {warning}"
        )))
        .stdout(predicate::str::contains(
            "add age recipients under [encryption]",
        ));
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches(&warning).count(),
        1,
        "once: {}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("WARNING"), "{}", stdout(&out));

    // Left out, or encrypted: nothing to warn about.
    let excluded = write_config(
        tmp.path(),
        &ns_config(&lab, &name, &name, "exclude = [\"secrets\"]"),
    );
    let out = lab
        .drtool(&excluded)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(!stdout(&out).contains("WARNING"), "{}", stdout(&out));
    let encrypted = write_config(
        tmp.path(),
        &format!(
            "[encryption]\nrecipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n{}",
            ns_config(&lab, &name, &name, "")
        ),
    );
    let out = lab
        .drtool(&encrypted)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(!stdout(&out).contains("WARNING"), "{}", stdout(&out));
}

/// README "Kubernetes permissions": the read-only role backs up, a restore
/// with it is refused before anything is written, naming what it may not do,
/// and the restore role is enough to restore.
#[tokio::test(flavor = "multi_thread")]
async fn the_least_privilege_roles_back_up_and_restore_and_no_more() {
    let lab = Lab::get();
    let name = unique("nsrbac");
    let ns = name.clone();
    kube_load(&lab.env["LAB_KUBE_US_EAST_1"], &ns, 60);
    let tmp = tempfile::tempdir().unwrap();
    let as_role = |role: &str| {
        ns_config(&lab, &name, &ns, "")
            .replace(
                &format!("\"lab-{EAST}\""),
                &format!("\"lab-{EAST}-{role}\""),
            )
            .replace(
                &format!("\"lab-{WEST}\""),
                &format!("\"lab-{WEST}-{role}\""),
            )
    };
    let reader = write_config(tmp.path(), &as_role("reader"));
    let out = lab.drtool(&reader).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let refused = lab
        .drtool(&reader)
        .args(["restore", "--region", WEST, "--target", "app", "--yes"])
        .output()
        .unwrap();
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{}{err}", stdout(&refused));
    assert!(
        err.contains(&format!("lab-{WEST}-reader"))
            && err.contains("may not create namespaces (1) cluster-wide")
            && err.contains(&format!("in namespace {ns}: create configmaps ("))
            && err.contains("nothing was written"),
        "{err}"
    );
    let gone = kubectl_output(
        &lab,
        &format!("lab-{WEST}"),
        &["get", "namespace", &ns],
        None,
    );
    assert!(
        !gone.status.success(),
        "the refused restore made namespace {ns}"
    );

    std::fs::write(tmp.path().join("restorer.toml"), as_role("restorer")).unwrap();
    let restorer = tmp.path().join("restorer.toml");
    lab.drtool(&restorer)
        .args(["restore", "--region", WEST, "--target", "app"])
        .assert()
        .success()
        .stdout(predicate::str::contains("0 failed"));
    // Its writes carry drtool's name in managedFields.
    let restored: Value = serde_json::from_str(&kubectl(
        &lab,
        &format!("lab-{WEST}"),
        &[
            "get",
            "configmap",
            "configmap-00000",
            "-n",
            &ns,
            "-o",
            "json",
            "--show-managed-fields",
        ],
        None,
    ))
    .unwrap();
    let managers: Vec<&str> = restored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, ["drtool"], "{restored:#}");
}

/// A restore into a namespace that is being deleted is refused before
/// anything is written, naming what holds it (velero#3940 and kin).
#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_stuck_terminating_is_named_with_its_finalizers() {
    let lab = Lab::get();
    let name = unique("nsterm");
    let ns = name.clone();
    let context = format!("lab-{EAST}");
    kube_load(&lab.env["LAB_KUBE_US_EAST_1"], &ns, 20);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &ns_config(&lab, &name, &ns, ""));
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let hold = |finalizers: &str| {
        kubectl(
            &lab,
            &context,
            &[
                "patch",
                "configmap",
                "configmap-00000",
                "-n",
                &ns,
                "--type",
                "merge",
                "-p",
                &format!(r#"{{"metadata":{{"finalizers":{finalizers}}}}}"#),
            ],
            None,
        )
    };
    hold(r#"["drtool.dev/hold"]"#);
    kubectl(
        &lab,
        &context,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
    // The namespace controller empties it and then says what is left.
    let mut said = false;
    for _ in 0..150 {
        let status = kubectl(
            &lab,
            &context,
            &["get", "namespace", &ns, "-o", "json"],
            None,
        );
        if status.contains("drtool.dev/hold") {
            said = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(said, "the namespace controller never named the finalizer");

    let refused = lab
        .drtool(&cfg)
        .args(["restore", "--region", EAST, "--target", "app", "--yes"])
        .output()
        .unwrap();
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{}{err}", stdout(&refused));
    assert!(
        err.contains(&format!("namespace {ns} on lab-{EAST} ("))
            && err.contains("is Terminating")
            && err.contains("still there after 120 s")
            && err.contains("drtool.dev/hold")
            && err.contains("nothing was written")
            && err.contains("--namespace-map"),
        "{err}"
    );
    hold("[]");
}

/// What the target region's admission refuses is reported object by object,
/// with the policy's own words; everything else is restored (exit 3).
#[tokio::test(flavor = "multi_thread")]
async fn objects_refused_by_admission_are_reported_one_by_one() {
    let lab = Lab::get();
    let name = unique("nsadmit");
    let ns = name.clone();
    kube_load(&lab.env["LAB_KUBE_US_EAST_1"], &ns, 20);
    let refused: String = (0..2)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: policy-{i}, namespace: {ns}, \
                 labels: {{lab.drtool.dev/reject-in: {WEST}}}}}\ndata: {{k: v}}\n---\n"
            )
        })
        .collect();
    kubectl(
        &lab,
        &format!("lab-{EAST}"),
        &["create", "-f", "-"],
        Some(&refused),
    );
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &ns_config(&lab, &name, &ns, ""));
    let out = lab.drtool(&cfg).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let out = lab
        .drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "app", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Writes of one kind go in parallel: failures come in any order.
    let mut failed: Vec<String> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    failed.sort();
    assert_eq!(failed.len(), 2, "{v:#}");
    for (i, error) in failed.iter().enumerate() {
        assert!(
            error.contains(&format!("configmaps/policy-{i}"))
                && error.contains(&format!("lab policy of {WEST}")),
            "{error}"
        );
    }
    let restored = kubectl(
        &lab,
        &format!("lab-{WEST}"),
        &["get", "configmaps", "-n", &ns, "-o", "name"],
        None,
    );
    assert!(restored.contains("configmap/configmap-00000") && !restored.contains("policy-"));
}

/// A backup whose list outlives its continue token (etcd compacted between
/// two pages: 410 Gone) goes on from where it was, reads every object once,
/// and the point says the list is not one snapshot. The lab's API servers
/// serve later pages from etcd (ListFromCacheSnapshot off, as before 1.34),
/// and this test compacts etcd while the backup pages two objects at a time.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_whose_continue_token_expires_goes_on_and_says_so() {
    let lab = Lab::get();
    let name = unique("nsgone");
    let ns = name.clone();
    kubectl(
        &lab,
        &format!("lab-{EAST}"),
        &["create", "namespace", &ns],
        None,
    );
    // ConfigMaps of 1-9 KiB: 300 of them, 150 pages.
    let maps: String = (0..300)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i:04}, namespace: {ns}}}\n\
                 data: {{payload: {}}}\n---\n",
                "x".repeat(1024 * (1 + i % 9))
            )
        })
        .collect();
    kubectl(
        &lab,
        &format!("lab-{EAST}"),
        &["create", "-f", "-"],
        Some(&maps),
    );
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &ns_config(
            &lab,
            &name,
            &ns,
            "include = [\"configmaps\"]\npage_size = 2",
        ),
    );

    // Compacts etcd at its newest revision every 40 ms until told to stop,
    // for the second or two the backup takes. The other tests of this file
    // running meanwhile on the same API server see what a busy production
    // etcd does to them: watches restart, lists may resume.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let compactor = {
        let stop = stop.clone();
        let endpoints = lab.etcd(EAST);
        let key = format!("/drtool-test/{name}/tick");
        tokio::spawn(async move {
            let mut etcd = etcd_client(&endpoints).await;
            let mut compactions = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let put = etcd.put(key.as_str(), "t", None).await.unwrap();
                let revision = put.header().unwrap().revision();
                if etcd.compact(revision, None).await.is_ok() {
                    compactions += 1;
                }
                tokio::time::sleep(std::time::Duration::from_millis(40)).await;
            }
            etcd.delete(key.as_str(), None).await.unwrap();
            compactions
        })
    };
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--no-copy"])
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let compactions = compactor.await.unwrap();
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{said}");
    assert!(compactions > 5, "{compactions} compactions");
    assert!(
        said.contains("continue token expired (410)"),
        "no page outlived its token in {compactions} compactions: {said}"
    );

    let listed = lab
        .drtool(&cfg)
        .args(["points", "--region", EAST, "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let point = &v["items"][0];
    assert_eq!(point["items"]["configmaps"], 300, "{point:#}");
    let resumed = point["consistency"]["resumed"]["configmaps"]
        .as_str()
        .unwrap_or_default();
    assert!(
        resumed.starts_with("continue token expired"),
        "{:#}",
        point["consistency"]
    );

    // Every object once, none twice: the restore writes exactly 300 (and
    // the namespace).
    let copy = format!("{ns}-copy");
    lab.drtool(&cfg)
        .args([
            "restore",
            "--region",
            EAST,
            "--target",
            "app",
            "--namespace-map",
            &format!("{ns}={copy}"),
            "--include",
            "configmaps",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "namespace {copy}: 301 created"
        )));
    delete_namespaces(&lab, &format!("lab-{EAST}"), &[&ns, &copy]);
}

/// Requests API Priority and Fairness refuses (429) are sent again after the
/// server's Retry-After: a restore through a priority level of its own with
/// about three seats and no queue restores every object, and the server
/// counted its refusals. (The restore keeps eight writes in flight, well over
/// three seats: refusals come every time, not by chance of timing.)
#[tokio::test(flavor = "multi_thread")]
async fn writes_refused_for_load_are_sent_again() {
    let lab = Lab::get();
    let name = unique("nsapf");
    let ns = name.clone();
    let west = format!("lab-{WEST}");
    kube_load(&lab.env["LAB_KUBE_US_EAST_1"], &ns, 300);
    // A service account of its own (the lab's admin is in system:masters,
    // which APF never limits), allowed everything, limited by APF alone.
    let account = format!("{name}-tight");
    let setup = format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: {account}, namespace: default}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {account}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: ServiceAccount, name: {account}, namespace: default}}]
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {{name: {account}}}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    borrowingLimitPercent: 0
    limitResponse: {{type: Reject}}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {{name: {account}}}
spec:
  matchingPrecedence: 500
  priorityLevelConfiguration: {{name: {account}}}
  distinguisherMethod: {{type: ByUser}}
  rules:
  - subjects: [{{kind: ServiceAccount, serviceAccount: {{name: {account}, namespace: default}}}}]
    resourceRules: [{{verbs: ["*"], apiGroups: ["*"], resources: ["*"], namespaces: ["*"], clusterScope: true}}]
    nonResourceRules: [{{verbs: ["*"], nonResourceURLs: ["*"]}}]
"#
    );
    // The backup (from us-east-1, as the lab's admin) first: a failing
    // assert must not leave a cluster-admin account behind.
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("tight.kubeconfig");
    let config = ns_config(&lab, &name, &ns, "").replace(
        &format!(
            "kubeconfig = \"{}\"\ncontext = \"lab-{WEST}\"",
            lab.env["LAB_KUBECONFIG"]
        ),
        &format!(
            "kubeconfig = \"{}\"\ncontext = \"tight\"",
            kubeconfig.display()
        ),
    );
    assert!(config.contains("context = \"tight\""), "{config}");
    let cfg = write_config(tmp.path(), &config);
    wait_for_stateful_set_claims(&lab, &ns);
    let out = lab.drtool(&cfg).arg("backup").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    kubectl(&lab, &west, &["apply", "-f", "-"], Some(&setup));
    let token = kubectl(
        &lab,
        &west,
        &[
            "create",
            "token",
            &account,
            "-n",
            "default",
            "--duration",
            "1h",
        ],
        None,
    );
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: west\n  cluster: {{server: {}, certificate-authority: {}}}\n\
             users:\n- name: tight\n  user: {{token: {}}}\ncontexts:\n- name: tight\n  context: {{cluster: west, user: tight}}\n\
             current-context: tight\n",
            lab.env["LAB_KUBE_US_WEST_2"],
            lab.env["LAB_KUBE_CA"],
            token.trim()
        ),
    )
    .unwrap();

    let rejected = || -> u64 {
        let metrics = kubectl(&lab, &west, &["get", "--raw", "/metrics"], None);
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("apiserver_flowcontrol_rejected_requests_total{")
                    && l.contains(&format!("priority_level=\"{account}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let restore = lab
        .drtool(&cfg)
        .args(["restore", "--region", WEST, "--target", "app"])
        .output()
        .unwrap();
    let refused = rejected();
    // Cleaned up before the verdict: a cluster-admin account must not stay.
    for kind in [
        "flowschema",
        "prioritylevelconfiguration",
        "clusterrolebinding",
    ] {
        kubectl(&lab, &west, &["delete", kind, &account], None);
    }
    kubectl(
        &lab,
        &west,
        &["delete", "serviceaccount", &account, "-n", "default"],
        None,
    );
    let said = format!("{}{}", stdout(&restore), stderr(&restore));
    assert!(
        restore.status.success() && said.contains("0 failed"),
        "{said}"
    );
    assert!(refused > 0, "the priority level refused nothing: {said}");
    let east = objects(&lab, &format!("lab-{EAST}"), &ns);
    let restored = objects(&lab, &west, &ns);
    assert_eq!(
        east.keys().collect::<Vec<_>>(),
        restored.keys().collect::<Vec<_>>()
    );
    delete_namespaces(&lab, &format!("lab-{EAST}"), &[&ns]);
    delete_namespaces(&lab, &west, &[&ns]);
}
