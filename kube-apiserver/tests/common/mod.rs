//! Test support: the server binary on a free port with its own etcd prefix
//! (against the lab etcd started by `lab/up`), a small blocking HTTP client,
//! and direct etcd reads to check what the server stored.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Variables of the lab's env file (`$DRTOOL_LAB_DIR/env`, default `../.lab/env`).
pub fn lab_env() -> HashMap<String, String> {
    let dir = std::env::var("DRTOOL_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.lab"));
    let text = std::fs::read_to_string(dir.join("env")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// The lab etcd of us-east-1 (first member).
pub fn etcd_url() -> String {
    lab_env()
        .get("LAB_ETCD_US_EAST_1")
        .and_then(|v| v.split(',').next().map(str::to_string))
        .unwrap_or_else(|| "http://127.0.0.1:12379".into())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// An etcd prefix no other test (or earlier run) uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "/drtool-kube-test/{test}-{}-{nanos}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running `kube-test-apiserver`, killed on drop.
pub struct Server {
    pub url: String,
    pub prefix: String,
    child: Child,
}

impl Server {
    /// Start a server on a fresh prefix and wait until it is ready.
    pub fn start(test: &str) -> Server {
        Server::start_on(&unique_prefix(test))
    }

    /// Start a server on an existing prefix (restart, or a second server).
    pub fn start_on(prefix: &str) -> Server {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_kube-test-apiserver"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--etcd", &etcd_url()])
            .args(["--etcd-prefix", prefix])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("starting kube-test-apiserver");
        let server = Server {
            url: format!("http://127.0.0.1:{port}"),
            prefix: prefix.to_string(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = server.try_request("GET", "/readyz", None, None)
                && r.status == 200
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "kube-test-apiserver on {} not ready after 20 s (is the lab up? run lab/up)",
                server.url
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Stop the server (SIGKILL: a crash is the harshest restart).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: Option<&[(&str, &str)]>,
        body: Option<&[u8]>,
    ) -> std::io::Result<Resp> {
        http(self.port(), method, path, headers.unwrap_or(&[]), body)
    }

    pub fn req(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        let ct: &[(&str, &str)] = if bytes.is_some() {
            &[("Content-Type", "application/json")]
        } else {
            &[]
        };
        self.try_request(method, path, Some(ct), bytes.as_deref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn req_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        self.try_request(method, path, Some(headers), body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path, None)
    }
    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.req("POST", path, Some(body))
    }
    pub fn put(&self, path: &str, body: &Value) -> Resp {
        self.req("PUT", path, Some(body))
    }
    pub fn delete(&self, path: &str) -> Resp {
        self.req("DELETE", path, None)
    }
    pub fn patch(&self, path: &str, content_type: &str, body: &Value) -> Resp {
        let bytes = serde_json::to_vec(body).unwrap();
        self.req_with(
            "PATCH",
            path,
            &[("Content-Type", content_type)],
            Some(&bytes),
        )
    }

    /// Create a namespace, asserting success.
    pub fn namespace(&self, name: &str) {
        let r = self.post(
            "/api/v1/namespaces",
            &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }

    /// The full etcd key of a path below this server's prefix.
    pub fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.prefix)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Remove everything a test wrote under its prefix.
pub fn cleanup(prefix: &str) {
    let prefix = format!("{prefix}/");
    etcd(|mut c| async move {
        c.delete(
            prefix,
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    });
}

pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text))
    }

    /// Assert the status and return the JSON body.
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self.json()
    }
}

/// One HTTP/1.1 request with `Connection: close`.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Resp> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or_default();
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        body = dechunk(&body);
    }
    Ok(Resp {
        status,
        headers,
        text: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

/// Run an etcd-client call on a throwaway runtime (the tests are sync).
pub fn etcd<F, Fut, T>(f: F) -> T
where
    F: FnOnce(etcd_client::KvClient) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = etcd_client::Client::connect([etcd_url()], None)
            .await
            .expect("connecting to the lab etcd");
        f(client.kv_client()).await
    })
}

/// (value, mod_revision) of a key, read directly from etcd.
pub fn etcd_get(key: &str) -> Option<(Value, i64)> {
    let key = key.to_string();
    etcd(|mut c| async move {
        let r = c.get(key, None).await.unwrap();
        r.kvs().first().map(|kv| {
            (
                serde_json::from_slice(kv.value()).unwrap(),
                kv.mod_revision(),
            )
        })
    })
}

/// Number of keys under a prefix, optionally at a past revision.
pub fn etcd_count(prefix: &str, revision: i64) -> i64 {
    let prefix = prefix.to_string();
    etcd(|mut c| async move {
        let opts = etcd_client::GetOptions::new()
            .with_prefix()
            .with_count_only()
            .with_revision(revision);
        c.get(prefix, Some(opts)).await.unwrap().count()
    })
}

/// Current etcd revision.
pub fn etcd_revision() -> i64 {
    etcd(|mut c| async move {
        let r = c
            .get("/", Some(etcd_client::GetOptions::new().with_count_only()))
            .await
            .unwrap();
        r.header().unwrap().revision()
    })
}

pub fn configmap(name: &str, labels: Value) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"key": name},
    })
}

pub fn deployment(name: &str, replicas: i64) -> Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}
            }
        }
    })
}

pub fn widget_crd(scope: &str) -> Value {
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": scope,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
            ]
        }
    })
}
