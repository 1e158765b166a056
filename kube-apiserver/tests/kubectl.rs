//! Debian's kubectl 1.20 (package kubernetes-client; lab/up provides it and
//! records its path as LAB_KUBECTL) against the test API server: discovery,
//! `create -f` of a multi-document file with validation on, `get` as JSON and
//! as server-side tables across namespaces, `delete`, and error exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
  labels: {app: web}
data:
  color: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
  namespace: demo
spec:
  size: 3
"#;

struct Kubectl {
    bin: String,
    dir: tempfile::TempDir,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(server: &Server) -> Kubectl {
        let bin = std::env::var("LAB_KUBECTL")
            .ok()
            .or_else(|| lab_env().get("LAB_KUBECTL").cloned())
            .expect("LAB_KUBECTL not set and not in the lab env file: run lab/up");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\n\
             users:\n- name: t\n  user: {{}}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: t\n\
             current-context: t\n",
            server.url
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        Kubectl { bin, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(self.path("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin));
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.code, 0,
            "kubectl {args:?} failed\nstdout: {}\nstderr: {}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}

/// Whitespace-split rows of kubectl's table output.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn debian_kubectl_works_against_the_server() {
    let s = Server::start("kubectl");
    let k = Kubectl::new(&s);
    let version = k.ok(&["version", "--client", "--short"]);
    assert!(
        version.contains("v1.20."),
        "LAB_KUBECTL is not Debian's kubectl 1.20: {version}"
    );
    let server_version = k.ok(&["version", "--short"]);
    assert!(
        server_version.contains("Server Version: v1.20.0-drtool"),
        "{server_version}"
    );

    // api-resources: every kind with its short names, group and scope.
    let table = rows(&k.ok(&["api-resources"]));
    assert_eq!(
        table[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    let row = |name: &str| -> Vec<String> {
        table
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("{name} missing from api-resources"))
            .clone()
    };
    assert_eq!(
        row("configmaps"),
        ["configmaps", "cm", "v1", "true", "ConfigMap"]
    );
    assert_eq!(
        row("namespaces"),
        ["namespaces", "ns", "v1", "false", "Namespace"]
    );
    assert_eq!(
        row("deployments"),
        ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    assert_eq!(
        row("cronjobs"),
        ["cronjobs", "cj", "batch/v1", "true", "CronJob"]
    );
    assert_eq!(
        row("customresourcedefinitions"),
        [
            "customresourcedefinitions",
            "crd,crds",
            "apiextensions.k8s.io/v1",
            "false",
            "CustomResourceDefinition"
        ]
    );
    assert_eq!(row("secrets"), ["secrets", "v1", "true", "Secret"]);

    // create -f with client-side validation on (no --validate=false): the
    // CR in the same file works because the CRD is served at once.
    std::fs::write(k.path("demo.yaml"), MANIFESTS).unwrap();
    let manifests = k.path("demo.yaml");
    let manifests = manifests.to_str().unwrap();
    let created = k.ok(&["create", "-f", manifests]);
    assert_eq!(
        created.lines().collect::<Vec<_>>(),
        [
            "namespace/demo created",
            "configmap/settings created",
            "deployment.apps/web created",
            "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created",
            "widget.example.com/w1 created",
        ]
    );
    assert!(etcd_get(&s.key("example.com/widgets/demo/w1")).is_some());
    assert!(etcd_get(&s.key("deployments/demo/web")).is_some());

    // Creating again fails per object with AlreadyExists and exit code 1.
    let again = k.run(&["create", "-f", manifests]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(
        again.stderr.contains("Error from server (AlreadyExists)")
            && again.stderr.contains("namespaces \"demo\" already exists"),
        "{}",
        again.stderr
    );

    let list: Value =
        serde_json::from_str(&k.ok(&["get", "cm", "-n", "demo", "-o", "json"])).unwrap();
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["kind"], "ConfigMap");
    assert_eq!(items[0]["metadata"]["name"], "settings");
    assert_eq!(items[0]["data"]["color"], "blue");
    let (_, rev) = etcd_get(&s.key("configmaps/demo/settings")).unwrap();
    assert_eq!(items[0]["metadata"]["resourceVersion"], rev.to_string());

    // Server-side tables: kubectl adds the NAMESPACE column for -A itself.
    let deploys = rows(&k.ok(&["get", "deploy", "-A"]));
    assert_eq!(deploys[0], ["NAMESPACE", "NAME", "AGE"]);
    assert_eq!(deploys.len(), 2, "{deploys:?}");
    assert_eq!(deploys[1][..2], ["demo", "web"]);
    let cms = rows(&k.ok(&["get", "cm", "-n", "demo", "-l", "app=web"]));
    assert_eq!(cms[0], ["NAME", "AGE"]);
    assert_eq!(cms[1][0], "settings");
    assert_eq!(
        k.ok(&["get", "wd", "-n", "demo", "-o", "name"]).trim(),
        "widget.example.com/w1"
    );

    // delete, then the object is gone with kubectl's NotFound message.
    assert_eq!(
        k.ok(&["delete", "cm", "settings", "-n", "demo"]).trim(),
        "configmap \"settings\" deleted"
    );
    let missing = k.run(&["get", "cm", "settings", "-n", "demo"]);
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr.trim(),
        "Error from server (NotFound): configmaps \"settings\" not found"
    );

    // Deleting the namespace takes its contents; kubectl's wait for it ends.
    assert_eq!(
        k.ok(&["delete", "ns", "demo"]).trim(),
        "namespace \"demo\" deleted"
    );
    let none = k.run(&["get", "deploy", "-A"]);
    assert_eq!((none.code, none.stdout.as_str()), (0, ""));
    assert_eq!(none.stderr.trim(), "No resources found");
    let protected = k.run(&["delete", "ns", "default"]);
    assert_eq!(protected.code, 1);
    assert!(
        protected.stderr.contains("Error from server (Forbidden)"),
        "{}",
        protected.stderr
    );

    let prefix = s.prefix.clone();
    s.stop();
    cleanup(&prefix);
}
