//! Running one probe check: the generic kinds (HTTP, TCP, exec) here, the
//! kind-owned ones (etcd key, SQL, Kubernetes object) through the engine and
//! the target's home.

use std::time::Duration;

use http_body_util::BodyExt;

use super::spec::{ExecProbe, HttpProbe, ProbeCheck, TcpProbe};
use crate::engine::Engine;
use crate::engine::faults::KindProbe;
use crate::error::Error;

/// Runs `check` once: `Ok(detail)` when it passes.
pub async fn check(engine: &Engine, check: &ProbeCheck) -> Result<String, String> {
    match check {
        ProbeCheck::Http(p) => http(p).await,
        ProbeCheck::Tcp(p) => tcp(p).await,
        ProbeCheck::Exec(p) => exec(p).await,
        ProbeCheck::EtcdKey(_) | ProbeCheck::Sql(_) | ProbeCheck::Kube(_) => {
            let (target, region, probe) = kind_probe(check).ok_or("not a kind's probe")?;
            engine
                .probe_target(target, region, &probe)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// A kind-owned probe as its kind's home runs it, with its target and region.
fn kind_probe(check: &ProbeCheck) -> Option<(&str, &str, KindProbe)> {
    Some(match check {
        ProbeCheck::EtcdKey(p) => (
            p.target.as_str(),
            p.region.as_str(),
            KindProbe::EtcdKey {
                key: p.key.clone(),
                equals: p.equals.clone(),
            },
        ),
        ProbeCheck::Sql(p) => (
            p.target.as_str(),
            p.region.as_str(),
            KindProbe::Sql {
                query: p.query.clone(),
                expect: p.expect.clone(),
                database: p.database.clone(),
            },
        ),
        ProbeCheck::Kube(p) => (
            p.target.as_str(),
            p.region.as_str(),
            KindProbe::Kube {
                resource: p.resource.clone(),
                name: p.object.clone(),
                namespace: p.namespace.clone(),
                ready: p.ready,
            },
        ),
        ProbeCheck::Http(_) | ProbeCheck::Tcp(_) | ProbeCheck::Exec(_) => return None,
    })
}

async fn tcp(p: &TcpProbe) -> Result<String, String> {
    tokio::net::TcpStream::connect(&p.address)
        .await
        .map(|_| format!("connected to {}", p.address))
        .map_err(|e| format!("connect {}: {e}", p.address))
}

async fn exec(p: &ExecProbe) -> Result<String, String> {
    let out = tokio::process::Command::new("sh")
        .args(["-c", &p.command])
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run `{}`: {e}", p.command))?;
    let want = p.expect_exit.unwrap_or(0);
    let code = out.status.code().unwrap_or(-1);
    if code == want {
        Ok(format!("exit {code}"))
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "exit {code}, not {want}: {}",
            err.trim().chars().take(200).collect::<String>()
        ))
    }
}

/// The HTTP client probes share (HTTPS through the system's roots).
fn client() -> Result<
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Empty<bytes::Bytes>,
    >,
    String,
> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

async fn http(p: &HttpProbe) -> Result<String, String> {
    let uri: http::Uri = p
        .url
        .parse()
        .map_err(|e| format!("bad url {}: {e}", p.url))?;
    let resp = client()?
        .get(uri)
        .await
        .map_err(|e| format!("GET {}: {e}", p.url))?;
    let status = resp.status().as_u16();
    let status_ok = match p.status {
        Some(want) => status == want,
        None => (200..300).contains(&status),
    };
    // Bodies are read up to 1 MiB: a probe is not a download.
    let body = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
        .await
        .map_err(|_| format!("GET {}: the body did not arrive", p.url))?
        .map_err(|e| format!("GET {}: {e}", p.url))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body[..body.len().min(1 << 20)]);
    if !status_ok {
        return Err(format!(
            "GET {}: status {status}{}",
            p.url,
            p.status.map(|w| format!(", not {w}")).unwrap_or_default()
        ));
    }
    if let Some(want) = &p.body_contains
        && !text.contains(want.as_str())
    {
        return Err(format!(
            "GET {}: status {status}, body lacks {want:?}",
            p.url
        ));
    }
    Ok(format!("GET {}: {status}", p.url))
}

/// Runs a command (`sh -c`) with a timeout and an expected exit code.
pub async fn run_command(command: &str, expect: i32, timeout: Duration) -> Result<String, Error> {
    let child = tokio::process::Command::new("sh")
        .args(["-c", command])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(timeout, child)
        .await
        .map_err(|_| {
            Error::failed(format!(
                "`{command}` did not finish within {}",
                humantime::format_duration(timeout)
            ))
        })?
        .map_err(|e| Error::failed(format!("cannot run `{command}`: {e}")))?;
    let code = out.status.code().unwrap_or(-1);
    if code == expect {
        Ok(format!("`{command}` exited {code}"))
    } else {
        Err(Error::failed(format!(
            "`{command}` exited {code}, not {expect}: {}",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .chars()
                .take(400)
                .collect::<String>()
        )))
    }
}

/// POSTs a JSON document (a drill's start and end, to its webhook).
pub async fn post_json(url: &str, body: &serde_json::Value) -> Result<(), String> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .map_err(|e| format!("bad webhook request: {e}"))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| format!("webhook {url} did not answer within 10 s"))?
        .map_err(|e| format!("webhook {url}: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("webhook {url} answered {}", resp.status()))
    }
}
