//! `drtool init` against the lab: it finds the buckets, etcd, contexts,
//! namespaces and RDS instances, writes a file that `config check` and a
//! backup accept, never replaces a file without --force, and says which
//! endpoints do not answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// The init command line; `west_etcd` None leaves the DR etcd to be found
/// through the west cluster's kube-apiserver pod.
fn init_args(
    lab: &Lab,
    cfg: &std::path::Path,
    prefix: &str,
    west_etcd: Option<&str>,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--config".into(),
        cfg.display().to_string(),
        "init".into(),
        "--non-interactive".into(),
        "--prefix".into(),
        prefix.into(),
        "--etcd-prefix".into(),
        format!("/{prefix}/"),
        "--kubeconfig".into(),
        lab.env["LAB_KUBECONFIG"].clone(),
        "--namespace".into(),
        prefix.into(),
        "--rds-endpoint".into(),
        lab.env["LAB_RDS_ENDPOINT"].clone(),
        "--rds-instance".into(),
        "lab-orders".into(),
    ];
    for region in [EAST, WEST] {
        args.push("--s3-endpoint".into());
        args.push(format!("{region}={}", lab.s3(region)));
    }
    args.push("--etcd".into());
    args.push(format!("{EAST}={}", lab.etcd(EAST).join(",")));
    if let Some(west) = west_etcd {
        args.push("--etcd".into());
        args.push(format!("{WEST}={west}"));
    }
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn init_writes_a_config_that_checks_and_backs_up() {
    let lab = Lab::get();
    let name = unique("init");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("drtool.toml");
    let west = lab.etcd(WEST).join(",");
    // A namespace of the test's own (named as its prefix), for init to find.
    kube_load(&lab.env["LAB_KUBE_US_EAST_1"], &name, 5);
    // The DR cluster's etcd is found the way kubeadm clusters show it: the
    // kube-apiserver static pod's --etcd-servers.
    let pod = ApiserverPod::create(&lab, &name, &west);

    let out = lab
        .drtool(&cfg)
        .args(init_args(&lab, &cfg, &name, None))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    let wants: [String; 11] = [
        format!("store = \"s3://drtool-{EAST}/{name}\""),
        format!("store = \"s3://drtool-{WEST}/{name}\""),
        "[targets.etcd]".into(),
        format!("prefix = \"/{name}/\""),
        format!("[targets.ns-{name}]"),
        "context = \"lab-us-west-2\"".into(),
        "[targets.rds-lab-orders]".into(),
        format!("copy_to = [\"{WEST}\"]"),
        "# What it found and chose:".into(),
        format!("endpoints = [\"{west}\"]"),
        format!("read from the kube-apiserver pod {}", pod.name),
    ];
    for want in &wants {
        assert!(text.contains(want.as_str()), "{want} not in\n{text}");
    }
    assert!(
        stderr(&out).contains("8 of 8 stores and endpoints answer"),
        "{}",
        stderr(&out)
    );
    // Nothing staged is left beside it.
    let files: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "{files:?}");

    lab.drtool(&cfg)
        .args(["config", "check"])
        .assert()
        .success();
    let mut east = etcd_client(&lab.etcd(EAST)).await;
    load_keys(&mut east, &format!("/{name}/"), 20, 4 * 1024).await;
    let out = lab
        .drtool(&cfg)
        .args(["backup", "--target", "etcd"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // An existing file is never replaced without --force.
    let before = std::fs::read_to_string(&cfg).unwrap();
    lab.drtool(&cfg)
        .args(init_args(&lab, &cfg, &name, Some(&west)))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--force replaces it"));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);

    // With --force and a DR etcd that does not answer: written, exit 4, and
    // the JSON document names what did not answer.
    let mut args = init_args(&lab, &cfg, &name, Some("http://127.0.0.1:9"));
    args.push("--force".into());
    let out = lab
        .drtool(&cfg)
        .args(&args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "Init", "{doc}");
    validate_against_schema(&[("init".into(), doc.clone())], cfg.parent().unwrap());
    assert_eq!(doc["exit_code"], 4, "{doc}");
    assert_eq!(doc["items"].as_array().unwrap().len(), 3, "{doc}");
    let errors = doc["errors"].as_array().unwrap();
    assert!(
        errors.len() == 1 && errors[0]["region"] == WEST && errors[0]["class"] == "unreachable",
        "{doc}"
    );
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .contains("127.0.0.1:9"),
        "the file is written even when an endpoint is down"
    );
}

#[test]
fn init_says_what_it_cannot_find() {
    let lab = Lab::get();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("drtool.toml");
    // No region named at all.
    lab.drtool(&cfg)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "init",
            "--non-interactive",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("name at least one region"));
    // A region the store does not serve: its words, and the way around.
    lab.drtool(&cfg)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "init",
            "--non-interactive",
        ])
        .arg("--s3-endpoint")
        .arg(format!("eu-central-1={}", lab.s3(EAST)))
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "cannot list the buckets of eu-central-1 at",
        ))
        .stderr(predicates::str::contains("unexpected scope"))
        .stderr(predicates::str::contains(
            "--store eu-central-1=s3://BUCKET/PREFIX",
        ));
    // A namespace the cluster does not have.
    lab.drtool(&cfg)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "init",
            "--non-interactive",
        ])
        .arg("--s3-endpoint")
        .arg(format!("{EAST}={}", lab.s3(EAST)))
        .args([
            "--kubeconfig",
            &lab.env["LAB_KUBECONFIG"],
            "--namespace",
            "no-such-ns",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "namespace \"no-such-ns\" is not in context lab-us-east-1",
        ));
    assert!(!cfg.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn a_signal_while_probing_leaves_the_folder_as_it_was() {
    let lab = Lab::get();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("drtool.toml");
    // An etcd that takes the connection and never answers: the probe waits.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("http://{}", silent.local_addr().unwrap());
    let ns = unique("init-sig");
    kube_load(&lab.env["LAB_KUBE_US_EAST_1"], &ns, 1);
    let args = init_args(&lab, &cfg, &ns, Some(&silent));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = lab.spawn_drtool(&cfg, &args, None);
    let staged = || {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(".drtool-init-"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !staged() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("init never staged its file");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    signal(child.id(), "TERM");
    let (code, _, err) = finish(child);
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("interrupted: nothing written"), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// A pod in the west cluster's kube-system shaped like kubeadm's
/// kube-apiserver static pod; deleted when dropped.
struct ApiserverPod {
    name: String,
    kubectl: Vec<String>,
}

impl ApiserverPod {
    fn create(lab: &Lab, unique: &str, etcd: &str) -> ApiserverPod {
        let name = format!("kube-apiserver-{unique}");
        let kubectl = vec![
            lab.env["LAB_KUBECTL"].clone(),
            "--kubeconfig".into(),
            lab.env["LAB_KUBECONFIG"].clone(),
            "--context".into(),
            "lab-us-west-2".into(),
        ];
        let pod = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "kube-system",
                "labels": {"component": "kube-apiserver", "tier": "control-plane"}
            },
            "spec": {"containers": [{
                "name": "kube-apiserver",
                "image": "registry.k8s.io/kube-apiserver:v1.34.2",
                "command": ["kube-apiserver", "--authorization-mode=Node,RBAC", format!("--etcd-servers={etcd}")]
            }]}
        });
        let mut child = std::process::Command::new(&kubectl[0])
            .args(&kubectl[1..])
            .args(["create", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(pod.to_string().as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "kubectl create pod");
        ApiserverPod { name, kubectl }
    }
}

impl Drop for ApiserverPod {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.kubectl[0])
            .args(&self.kubectl[1..])
            .args([
                "-n",
                "kube-system",
                "delete",
                "pod",
                &self.name,
                "--wait=false",
            ])
            .output();
    }
}
