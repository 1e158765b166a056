//! Running one probe check: the generic kinds (HTTP, TCP, exec) here, the
//! kind-owned ones (etcd key, SQL, Kubernetes object) through the engine and
//! the target's home.

use std::time::Duration;

use http_body_util::BodyExt;

use super::spec::{ExecProbe, HttpProbe, ProbeCheck, TcpProbe};
use crate::engine::Engine;
use crate::error::Error;

/// Why a probe check did not pass; drills show it as the sample's detail.
#[derive(Debug, thiserror::Error)]
pub enum ProbeFailure {
    /// A kind-owned probe, in its kind's words.
    #[error("{0}")]
    Kind(#[from] Error),
    #[error("connect {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("cannot run `{command}`: {reason}")]
    Spawn { command: String, reason: String },
    #[error("exit {code}, not {want}: {stderr}")]
    Exit {
        code: i32,
        want: i32,
        stderr: String,
    },
    #[error("no TLS roots: {0}")]
    TlsRoots(String),
    #[error("bad url {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("GET {url}: {reason}")]
    Get { url: String, reason: String },
    #[error("GET {url}: the body did not arrive")]
    NoBody { url: String },
    #[error("GET {url}: status {status}{}", not_wanted(.want))]
    Status {
        url: String,
        status: u16,
        want: Option<u16>,
    },
    #[error("GET {url}: status {status}, body lacks {want:?}")]
    BodyLacks {
        url: String,
        status: u16,
        want: String,
    },
}

fn not_wanted(want: &Option<u16>) -> String {
    want.map(|w| format!(", not {w}")).unwrap_or_default()
}

/// Runs `check` once: `Ok(detail)` when it passes.
pub async fn check(engine: &Engine, check: &ProbeCheck) -> Result<String, ProbeFailure> {
    let p = match check {
        ProbeCheck::Http(p) => return http(p).await,
        ProbeCheck::Tcp(p) => return tcp(p).await,
        ProbeCheck::Exec(p) => return exec(p).await,
        ProbeCheck::Target(p) => p,
    };
    // A kind-owned probe runs through the engine and the target's home.
    Ok(engine.probe_target(&p.target, &p.region, &p.probe).await?)
}

async fn tcp(p: &TcpProbe) -> Result<String, ProbeFailure> {
    tokio::net::TcpStream::connect(&p.address)
        .await
        .map(|_| format!("connected to {}", p.address))
        .map_err(|e| ProbeFailure::Connect {
            address: p.address.clone(),
            reason: e.to_string(),
        })
}

async fn exec(p: &ExecProbe) -> Result<String, ProbeFailure> {
    let out = tokio::process::Command::new("sh")
        .args(["-c", &p.command])
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| ProbeFailure::Spawn {
            command: p.command.clone(),
            reason: e.to_string(),
        })?;
    let want = p.expect_exit.unwrap_or(0);
    let code = out.status.code().unwrap_or(-1);
    if code == want {
        Ok(format!("exit {code}"))
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(ProbeFailure::Exit {
            code,
            want,
            stderr: err.trim().chars().take(200).collect(),
        })
    }
}

/// An HTTPS (or HTTP) connector through the system's roots.
fn connector() -> Result<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    ProbeFailure,
> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| ProbeFailure::TlsRoots(e.to_string()))?
        .https_or_http()
        .enable_http1()
        .build())
}

async fn http(p: &HttpProbe) -> Result<String, ProbeFailure> {
    let get = |e: &dyn std::fmt::Display| ProbeFailure::Get {
        url: p.url.clone(),
        reason: e.to_string(),
    };
    let uri: http::Uri = p.url.parse().map_err(|e| ProbeFailure::BadUrl {
        url: p.url.clone(),
        reason: format!("{e}"),
    })?;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector()?);
    let resp = client.get(uri).await.map_err(|e| get(&e))?;
    let status = resp.status().as_u16();
    let status_ok = match p.status {
        Some(want) => status == want,
        None => (200..300).contains(&status),
    };
    // Bodies are read up to 1 MiB: a probe is not a download.
    let body = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
        .await
        .map_err(|_| ProbeFailure::NoBody { url: p.url.clone() })?
        .map_err(|e| get(&e))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body[..body.len().min(1 << 20)]);
    if !status_ok {
        return Err(ProbeFailure::Status {
            url: p.url.clone(),
            status,
            want: p.status,
        });
    }
    if let Some(want) = &p.body_contains
        && !text.contains(want.as_str())
    {
        return Err(ProbeFailure::BodyLacks {
            url: p.url.clone(),
            status,
            want: want.clone(),
        });
    }
    Ok(format!("GET {}: {status}", p.url))
}

/// Runs a command (`sh -c`) with a timeout and an expected exit code.
pub async fn run_command(command: &str, expect: i32, timeout: Duration) -> Result<String, Error> {
    let mut child = tokio::process::Command::new("sh");
    child.args(["-c", command]).kill_on_drop(true);
    // Which drtool runs the drill, for commands that run drtool too.
    if let Ok(me) = std::env::current_exe() {
        child.env("DRTOOL_BIN", me);
    }
    let child = child.output();
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

/// Why a webhook was not told.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("no TLS roots: {0}")]
    TlsRoots(String),
    #[error("bad webhook request: {0}")]
    Request(String),
    #[error("webhook {url} did not answer within 10 s")]
    NoAnswer { url: String },
    #[error("webhook {url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("webhook {url} answered {status}")]
    Status {
        url: String,
        status: http::StatusCode,
    },
}

/// POSTs a JSON document (a drill's start and end, to its webhook).
pub async fn post_json(url: &str, body: &serde_json::Value) -> Result<(), PostError> {
    let https = connector().map_err(|e| match e {
        ProbeFailure::TlsRoots(why) => PostError::TlsRoots(why),
        other => PostError::Request(other.to_string()),
    })?;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .map_err(|e| PostError::Request(e.to_string()))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| PostError::NoAnswer {
            url: url.to_string(),
        })?
        .map_err(|e| PostError::Failed {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(PostError::Status {
            url: url.to_string(),
            status: resp.status(),
        })
    }
}
