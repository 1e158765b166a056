//! etcd over TLS with client certificates: a backup and a keys restore against
//! an etcd that requires a client certificate signed by its CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use predicates::prelude::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=drtool-test-ca",
        ],
    );
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
        )
        .unwrap();
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let ext = format!("{name}.ext");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_and_restore_through_client_certificates() {
    let lab = Lab::get();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_certs(dir);
    let url = "https://127.0.0.1:32479";
    let etcd = Command::new("etcd")
        .args(["--name", "t1", "--data-dir"])
        .arg(dir.join("etcd"))
        .args(["--listen-client-urls", url, "--advertise-client-urls", url])
        .args(["--listen-peer-urls", "http://127.0.0.1:32480"])
        .args(["--initial-advertise-peer-urls", "http://127.0.0.1:32480"])
        .args(["--initial-cluster", "t1=http://127.0.0.1:32480"])
        .args(["--client-cert-auth", "--trusted-ca-file"])
        .arg(dir.join("ca.pem"))
        .arg("--cert-file")
        .arg(dir.join("server.pem"))
        .arg("--key-file")
        .arg(dir.join("server.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _etcd = Kill(etcd);
    let etcdctl = |args: &[&str]| {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                url,
                "--cacert",
                "ca.pem",
                "--cert",
                "client.pem",
                "--key",
                "client.key",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap()
    };
    let mut up = false;
    for _ in 0..50 {
        if etcdctl(&["endpoint", "health"]).status.success() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(up, "TLS etcd did not start");
    for i in 0..20 {
        assert!(
            etcdctl(&["put", &format!("/tls/k{i:02}"), &format!("v{i}")])
                .status
                .success()
        );
    }

    let config = |tls: &str| {
        format!(
            r#"
[regions.here]
store = "file://store"

[targets.secure]
kind = "etcd"
mode = "keys"
prefix = "/tls/"
home = "here"

[targets.secure.regions.here]
endpoints = ["{url}"]
{tls}
"#
        )
    };
    let with_cert = config(r#"tls = { ca = "ca.pem", cert = "client.pem", key = "client.key" }"#);
    let cfg = write_config(dir, &with_cert);
    lab.drtool(&cfg)
        .arg("backup")
        .assert()
        .success()
        .stdout(predicate::str::contains("OK      backup"));

    // Without a client certificate the server refuses us, and drtool says where.
    let no_cert = write_config(dir, &config(r#"tls = { ca = "ca.pem" }"#));
    lab.drtool(&no_cert)
        .arg("backup")
        .assert()
        .failure()
        .stdout(predicate::str::contains("https://127.0.0.1:32479"));

    // Restore with the certificate after the keys are gone.
    let cfg = write_config(dir, &with_cert);
    assert!(etcdctl(&["del", "--prefix", "/tls/"]).status.success());
    let out = lab
        .drtool(&cfg)
        .args([
            "restore",
            "--region",
            "here",
            "--target",
            "secure",
            "--dry-run",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["plan"]["action"]["kind"], "etcd-keys");
    assert_eq!(plan["plan"]["action"]["counts"]["create"], 20);
    assert_eq!(plan["plan"]["destructive"], false);
    lab.drtool(&cfg)
        .args(["restore", "--region", "here", "--target", "secure"])
        .assert()
        .success()
        .stdout(predicate::str::contains("20 keys created"));
    let got = etcdctl(&["get", "/tls/k07", "--print-value-only"]);
    assert_eq!(stdout(&got).trim(), "v7");
}
