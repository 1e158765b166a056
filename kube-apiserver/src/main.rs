//! `kube-test-apiserver`: a Kubernetes API server for drtool's lab and tests.
//!
//! It serves the REST API of kube-apiserver for a fixed set of kinds plus
//! CustomResourceDefinitions, storing objects in etcd with kube-apiserver's
//! key layout, so drtool's Kubernetes backup and restore (and Debian's
//! kubectl 1.20) can run against real storage where no real API server can be
//! installed. Plain HTTP, no authentication: loopback use only. What it does
//! not implement is listed in README.md.

mod api;
mod patch;
mod registry;
mod selector;
mod status;
mod store;
mod table;
mod validation;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use etcd_client::{Client, ConnectOptions};

use crate::api::AppState;
use crate::registry::Registry;
use crate::store::Store;

/// How often CRDs are re-read, so a CRD deleted through another server on
/// the same etcd stops being served here too.
const CRD_REFRESH: Duration = Duration::from_secs(2);

#[derive(Parser, Debug)]
#[command(name = "kube-test-apiserver", version, about)]
struct Args {
    /// Address to listen on (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: String,
    /// etcd client URL; repeat the flag or separate URLs with commas.
    #[arg(long = "etcd", required = true, value_delimiter = ',')]
    etcd: Vec<String>,
    /// Key prefix of every object in etcd (kube-apiserver's --etcd-prefix).
    #[arg(long, default_value = "/registry")]
    etcd_prefix: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .init();
    let args = Args::parse();
    if !args.etcd_prefix.starts_with('/') {
        anyhow::bail!(
            "--etcd-prefix must start with '/', got \"{}\"",
            args.etcd_prefix
        );
    }
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(10));
    let client = Client::connect(&args.etcd, Some(options))
        .await
        .with_context(|| format!("connecting to etcd at {}", args.etcd.join(",")))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let state = Arc::new(AppState {
        store: Store::new(client, &args.etcd_prefix),
        registry: RwLock::new(Registry::new()),
        server_address: local.to_string(),
        ready: AtomicBool::new(false),
    });
    // etcd may still be starting (lab/start-region): keep serving, with
    // requests failing as 503, until it answers.
    tokio::spawn(maintain(state.clone()));
    let app = axum::Router::new().fallback(api::handle).with_state(state);
    tracing::info!(
        listen = %local,
        etcd = %args.etcd.join(","),
        prefix = %args.etcd_prefix,
        "kube-test-apiserver serving"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    Ok(())
}

/// Bootstrap the system namespaces once etcd answers, then keep the CRD
/// list fresh.
async fn maintain(state: Arc<AppState>) {
    let mut bootstrapped = false;
    let mut failing = false;
    loop {
        let result = async {
            if !bootstrapped {
                api::bootstrap_namespaces(&state).await?;
                bootstrapped = true;
            }
            state.reload_crds().await
        }
        .await;
        match result {
            Ok(()) if !state.ready.swap(true, Ordering::Relaxed) => {
                tracing::info!("ready: system namespaces present, CRDs loaded");
                failing = false;
            }
            Ok(()) if failing => {
                tracing::info!("etcd answers again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::warn!(error = %e, "etcd is not answering; retrying");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(if bootstrapped {
            CRD_REFRESH
        } else {
            Duration::from_millis(200)
        })
        .await;
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
