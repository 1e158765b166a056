//! Shared helpers for the integration tests: the lab started by `lab/up`, test
//! configs with their own store prefix, and etcd helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use etcd_client::{Client, GetOptions};

pub const EAST: &str = "us-east-1";
pub const WEST: &str = "us-west-2";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Lab {
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
}

impl Lab {
    /// The running lab; fails with what to do when it is not up.
    pub fn get() -> Lab {
        let dir = std::env::var("DRTOOL_LAB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo().join(".lab"));
        let env_file = dir.join("env");
        let text = std::fs::read_to_string(&env_file).unwrap_or_else(|e| {
            panic!(
                "lab env {} not readable ({e}): start the lab with lab/up first",
                env_file.display()
            )
        });
        let mut env = HashMap::new();
        for line in text.lines() {
            let line = line.trim().trim_start_matches("export ").trim();
            if let Some((k, v)) = line.split_once('=') {
                // PATH there is for a shell (it extends $PATH); tests run with their own.
                if k == "PATH" {
                    continue;
                }
                env.insert(
                    k.to_string(),
                    v.trim_matches('"').trim_matches('\'').to_string(),
                );
            }
        }
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_EC2_METADATA_DISABLED",
        ] {
            if let Some(v) = env.get(k) {
                // SAFETY: tests set the same values from the same file; no thread
                // reads these concurrently with a different expectation.
                unsafe { std::env::set_var(k, v) };
            }
        }
        Lab { dir, env }
    }

    pub fn s3(&self, region: &str) -> String {
        self.env[&format!("LAB_S3_{}", region.to_uppercase().replace('-', "_"))].clone()
    }

    /// Writes `body` at `key` of a region's lab bucket, as another tool would.
    pub fn put_object(&self, region: &str, key: &str, body: &[u8]) {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), body).unwrap();
        let out = Command::new("aws")
            .envs(&self.env)
            .args(["--endpoint-url", &self.s3(region), "s3", "cp"])
            .arg(tmp.path())
            .arg(format!("s3://drtool-{region}/{key}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }

    /// Whether `key` is in a region's lab bucket.
    pub fn object_exists(&self, region: &str, key: &str) -> bool {
        Command::new("aws")
            .envs(&self.env)
            .args(["--endpoint-url", &self.s3(region), "s3api", "head-object"])
            .args(["--bucket", &format!("drtool-{region}"), "--key", key])
            .output()
            .unwrap()
            .status
            .success()
    }

    pub fn etcd(&self, region: &str) -> Vec<String> {
        self.env[&format!("LAB_ETCD_{}", region.to_uppercase().replace('-', "_"))]
            .split(',')
            .map(str::to_string)
            .collect()
    }

    /// The regions part of a config, with a store prefix of this test's own.
    pub fn regions_toml(&self, prefix: &str) -> String {
        format!(
            r#"
[regions.{EAST}]
store = "s3://drtool-{EAST}/{prefix}"
endpoint = "{}"
path_style = true

[regions.{WEST}]
store = "s3://drtool-{WEST}/{prefix}"
endpoint = "{}"
path_style = true
"#,
            self.s3(EAST),
            self.s3(WEST)
        )
    }

    /// An etcd target homed in us-east-1, copied to us-west-2.
    pub fn etcd_target_toml(
        &self,
        name: &str,
        mode: &str,
        prefix: Option<&str>,
        west_extra: &str,
    ) -> String {
        let prefix = prefix
            .map(|p| format!("prefix = \"{p}\"\n"))
            .unwrap_or_default();
        format!(
            r#"
[targets.{name}]
kind = "etcd"
mode = "{mode}"
{prefix}home = "{EAST}"
copy_to = ["{WEST}"]

[targets.{name}.regions.{EAST}]
endpoints = {east:?}

[targets.{name}.regions.{WEST}]
endpoints = {west:?}
{west_extra}
"#,
            east = self.etcd(EAST),
            west = self.etcd(WEST),
        )
    }

    /// `drtool` with the lab's credentials and the given config.
    pub fn drtool(&self, config: &Path) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("drtool").unwrap();
        cmd.envs(&self.env)
            .env("DRTOOL_CONFIG", config)
            .env_remove("DRTOOL_AGE_IDENTITY");
        cmd
    }

    pub fn script(&self, name: &str, args: &[&str]) {
        let status = Command::new(repo().join("lab").join(name))
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "lab/{name} {args:?} failed");
    }
}

/// A unique name for this test run's prefixes.
pub fn unique(name: &str) -> String {
    format!("t-{name}-{:08x}", rand::random::<u32>())
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("drtool.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub async fn etcd_client(endpoints: &[String]) -> Client {
    Client::connect(endpoints, None).await.unwrap()
}

/// Puts `count` keys of `size` bytes under `prefix`, in batched transactions
/// (at most 100 keys and about 1 MiB each: etcd's request limit is 1.5 MiB).
pub async fn load_keys(client: &mut Client, prefix: &str, count: usize, size: usize) {
    let mut ops = Vec::new();
    let per_txn = (1 << 20) / size.max(1);
    let per_txn = per_txn.clamp(1, 100);
    for i in 0..count {
        let value: Vec<u8> = (0..size).map(|j| ((i * 31 + j) % 251) as u8).collect();
        ops.push(etcd_client::TxnOp::put(
            format!("{prefix}{i:06}"),
            value,
            None,
        ));
        if ops.len() == per_txn {
            client
                .txn(etcd_client::Txn::new().and_then(std::mem::take(&mut ops)))
                .await
                .unwrap();
        }
    }
    if !ops.is_empty() {
        client
            .txn(etcd_client::Txn::new().and_then(ops))
            .await
            .unwrap();
    }
}

/// Every key/value under `prefix`.
pub async fn dump(client: &mut Client, prefix: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let resp = client
        .kv_client()
        .max_decoding_message_size(512 << 20)
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    resp.kvs()
        .iter()
        .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
        .collect()
}

pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Finds the point id of the first `backup` line in table output.
pub fn point_of(table: &str) -> String {
    table
        .lines()
        .find(|l| l.starts_with("OK") && l.contains(" backup "))
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap_or_else(|| panic!("no backup line in:\n{table}"))
        .to_string()
}

/// Kills a child process (a test's own etcd) when dropped.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The drtool binary cargo built for these tests.
pub fn drtool_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("drtool")
}

impl Lab {
    /// `drtool` as a child process (for tests that signal it), with the lab's
    /// credentials, the given config and `path_first` ahead on PATH.
    pub fn spawn_drtool(&self, config: &Path, args: &[&str], path_first: Option<&Path>) -> Child {
        let mut cmd = Command::new(drtool_bin());
        cmd.envs(&self.env)
            .env("DRTOOL_CONFIG", config)
            .env_remove("DRTOOL_AGE_IDENTITY")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(dir) = path_first {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", dir.display()));
        }
        cmd.spawn().unwrap()
    }
}

/// The events of a `--events FILE` log so far, parsed.
pub fn read_events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits (up to a minute) until an event of the log satisfies `pred`.
pub fn wait_for_event(
    path: &Path,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        if let Some(e) = read_events(path).into_iter().find(|e| pred(e)) {
            return e;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no {what} event in {} after 60 s: {:?}",
            path.display(),
            read_events(path)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends a signal ("INT", "TERM") to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Whether a process is still running (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(") ").next().map(|rest| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Waits for a child and returns its exit code and output.
pub fn finish(child: Child) -> (Option<i32>, String, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stdout(&out), stderr(&out))
}

/// Writes an executable `name` into `dir` that records its pid in `pidfile`,
/// waits `delay` seconds and then runs the real `program` with the same
/// arguments: the real tool, late enough for a test to signal drtool while
/// it runs. A `--list` call (pg_restore reading a table of contents while a
/// restore is planned) runs at once and is not recorded.
pub fn delayed_tool(dir: &Path, name: &str, program: &Path, pidfile: &Path, delay: u32) {
    let program = program.display();
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = --list ] && exec '{program}' \"$@\"\necho $$ > '{}'\nsleep {delay}\nexec '{program}' \"$@\"\n",
        pidfile.display(),
    );
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Where a program is on PATH.
pub fn which(program: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{program} is not on PATH");
    PathBuf::from(stdout(&out).trim())
}

/// A TCP proxy in front of a lab service that a test can cut: every open
/// connection is reset and new ones are refused, as when a region's store
/// goes away in the middle of a download.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (host:port).
    pub fn start(upstream: &str) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, o, up) = (cut.clone(), open.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&up) else {
                    continue;
                };
                let mut list = o.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                drop(list);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, cut, open }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets new connections through again after a cut.
    pub fn mend(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Resets every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Replaces the payload of a point with `edit` of its plaintext, and fixes up
/// every size and hash in its manifest (and its checksum): what someone who
/// can write to the bucket could do. The point is unencrypted.
pub async fn rewrite_point(
    cfg: &Path,
    region: &str,
    target: &str,
    point: &str,
    edit: impl FnOnce(Vec<u8>) -> Vec<u8>,
) {
    use drtool::archive::pipeline::{self, ReadRequest, WriteOptions};
    use std::sync::Arc;
    let parsed = drtool::source::load_config(cfg).unwrap();
    let rs = drtool::catalog::RegionStore::open(parsed.region(region).unwrap()).await;
    let id: drtool::archive::PointId = point.parse().unwrap();
    let data_key = rs.layout.data_key(target, &id, false);
    let manifest_key = rs.layout.manifest_key(target, &id);
    let req = ReadRequest {
        key: data_key.clone(),
        encrypted: false,
        trailing_sha256: false,
        identities: None,
        pin: None,
    };
    let (mut rx, handle) = pipeline::download(rs.store.clone(), req, Arc::new(|_| {}))
        .await
        .unwrap();
    let mut plain = Vec::new();
    while let Some(chunk) = rx.recv().await {
        plain.extend_from_slice(&chunk);
    }
    handle.await.unwrap().unwrap();
    let edited = edit(plain);
    let (tx, input) = tokio::sync::mpsc::channel(4);
    let feeder = tokio::spawn(async move {
        for chunk in edited.chunks(256 * 1024) {
            let _ = tx.send(Ok(bytes::Bytes::copy_from_slice(chunk))).await;
        }
    });
    let opts = WriteOptions {
        level: 3,
        adapt: true,
        threads: 1,
        part_size: 8 << 20,
        parts_in_flight: 2,
        recipients: vec![],
        trailing_sha256: false,
    };
    let summary = pipeline::upload(
        rs.store.as_ref(),
        &data_key,
        input,
        &opts,
        Arc::new(|_| {}),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    feeder.await.unwrap();
    let bytes = rs.store.get(&manifest_key).await.unwrap();
    let mut m = drtool::archive::Manifest::parse(&manifest_key, &bytes).unwrap();
    m.plaintext_size = summary.plaintext_size;
    m.plaintext_sha256 = summary.plaintext_sha256;
    m.stored_size = summary.stored_size;
    m.stored_sha256 = summary.stored_sha256;
    rs.store
        .put(&manifest_key, m.seal().into(), drtool::store::Keep::Normal)
        .await
        .unwrap();
}

/// `psql -c SQL` against the lab's PostgreSQL, its output trimmed.
pub fn psql(lab: &Lab, db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &lab.env["LAB_PG_PORT"],
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ])
        .env("PGPASSWORD", &lab.env["LAB_PG_PASSWORD"])
        .output()
        .unwrap();
    assert!(out.status.success(), "psql {sql}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// A local HTTP server that answers 200 and keeps each JSON body it gets.
pub fn webhook_server() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break Some(body[..len].to_string());
                    }
                }
            };
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if let Some(b) = body.and_then(|b| serde_json::from_str(&b).ok()) {
                sink.lock().unwrap().push(b);
            }
        }
    });
    (url, got)
}

/// `drtool points --region R -o json`: that region's listing.
/// Fills namespace `ns` of the lab's API server at `server` with `objects`
/// objects of every common kind (`lab/kube-load`).
pub fn kube_load(server: &str, ns: &str, objects: usize) {
    let lab = Lab::get();
    let out = std::process::Command::new(repo().join("lab/kube-load"))
        .envs(lab.env.iter().filter(|(k, _)| k.starts_with("LAB_KUBE")))
        .args([
            "--server",
            server,
            "--namespace",
            ns,
            "--objects",
            &objects.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kube-load: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

pub fn points_in(lab: &Lab, cfg: &Path, region: &str) -> serde_json::Value {
    let out = lab
        .drtool(cfg)
        .args(["points", "--region", region, "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    region_view(&v, region)
}

/// One region of a `points -o json` envelope, as a region listing: its
/// `regions` entry with its points and their verifies, restore tests and
/// retention overrides by point id.
pub fn region_view(v: &serde_json::Value, region: &str) -> serde_json::Value {
    let mut r = v["regions"]
        .as_array()
        .unwrap_or_else(|| panic!("no regions: {v}"))
        .iter()
        .find(|r| r["region"] == region)
        .unwrap_or_else(|| panic!("no region {region}: {v}"))
        .clone();
    let points: Vec<serde_json::Value> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["region"] == region)
        .cloned()
        .collect();
    for (field, by_point) in [
        ("verify", "verifies"),
        ("restore_test", "restore_tests"),
        ("retention_override", "retention_overrides"),
    ] {
        let map: serde_json::Map<String, serde_json::Value> = points
            .iter()
            .filter(|p| !p[field].is_null())
            .map(|p| {
                (
                    p["point_id"].as_str().unwrap().to_string(),
                    p[field].clone(),
                )
            })
            .collect();
        r[by_point] = serde_json::Value::Object(map);
    }
    r["points"] = serde_json::Value::Array(points);
    r
}

/// A value like a serialized object: `size` bytes of text, different per seed.
pub fn object_value(seed: usize, size: usize) -> Vec<u8> {
    let mut v = format!("{{\"kind\":\"ConfigMap\",\"seed\":{seed},\"data\":\"").into_bytes();
    let mut n = seed as u64 + 7;
    while v.len() < size {
        n = n
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        v.push(b'a' + (n >> 59) as u8);
    }
    v.truncate(size);
    v
}

/// Checks that `key` is attached to lease `id` with a TTL taken from the
/// source's `granted` seconds (at most that, and within 2 min of it), and
/// that revoking the lease takes the key with it.
pub async fn assert_leased_then_revoke(client: &mut Client, key: Vec<u8>, id: i64, granted: i64) {
    let got = client.get(key.clone(), None).await.unwrap();
    let name = String::from_utf8_lossy(&key).into_owned();
    assert_eq!(got.kvs()[0].lease(), id, "{name}");
    let left = client.lease_time_to_live(id, None).await.unwrap().ttl();
    assert!(
        left > granted - 120 && left <= granted,
        "{name}: {left} s left of {granted}"
    );
    client.lease_revoke(id).await.unwrap();
    assert!(
        client.get(key, None).await.unwrap().kvs().is_empty(),
        "{name} outlived its lease"
    );
}

/// Starts etcd member `name` from a data dir a restore made (its peer URL
/// on `peer`, clients on a free port) and waits until it answers.
pub async fn start_restored_member(name: &str, data_dir: &Path, peer: u16) -> (Kill, Client) {
    let client_url = format!("http://127.0.0.1:{}", free_port());
    let peer_url = format!("http://127.0.0.1:{peer}");
    let etcd = Command::new("etcd")
        .args(["--name", name, "--data-dir"])
        .arg(data_dir)
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let guard = Kill(etcd);
    for _ in 0..100 {
        if let Ok(mut c) = Client::connect([client_url.as_str()], None).await
            && c.status().await.is_ok()
        {
            return (guard, c);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("etcd {name} from {} did not start", data_dir.display());
}

/// A loopback port nobody listens on now (the kernel's choice).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every document against the schema, in one Python process.
pub fn validate_against_schema(docs: &[(String, serde_json::Value)], dir: &Path) {
    let file = dir.join("docs.json");
    std::fs::write(&file, serde_json::to_vec(docs).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[2]))\n\
             jsonschema.Draft202012Validator.check_schema(schema)\n\
             v = jsonschema.Draft202012Validator(schema)\n\
             bad = 0\n\
             for name, doc in json.load(open(sys.argv[1])):\n\
             \x20   for e in v.iter_errors(doc):\n\
             \x20       bad += 1\n\
             \x20       print(name, '/'.join(map(str, e.absolute_path)), e.message)\n\
             sys.exit(1 if bad else 0)\n",
        )
        .arg(&file)
        .arg(repo().join("docs/output.schema.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "documents that break the schema:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}
