//! `Engine::points_each`, which the dashboard lists regions with: each
//! region comes back on its own, and one whose store never answers comes
//! back as unreachable after the timeout without holding up the other. No
//! lab: a folder store and a TCP port that accepts and never replies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use drtool::engine::{Engine, EngineOptions, Scope};
use drtool::error::ErrorClass;
use futures::StreamExt;

#[tokio::test]
async fn a_silent_region_is_unreachable_after_the_timeout_and_the_other_comes_first() {
    // SAFETY: this test binary has one test; nothing else reads these.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[regions.us-east-1]
store = "s3://silent/prefix"
endpoint = "http://127.0.0.1:{port}"
path_style = true

[regions.us-west-2]
store = "file://{}"

[targets.kv]
kind = "etcd"
mode = "keys"
home = "us-east-1"
copy_to = ["us-west-2"]

[targets.kv.regions.us-east-1]
endpoints = ["http://127.0.0.1:1"]

[targets.kv.regions.us-west-2]
endpoints = ["http://127.0.0.1:1"]
"#,
        dir.path().display()
    );
    let path = dir.path().join("drtool.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = drtool::source::load_config(&path).unwrap();
    let engine = Engine::new(cfg, drtool::source::registry(), EngineOptions::default()).unwrap();
    let start = Instant::now();
    let mut listed = std::pin::pin!(engine.points_each(&Scope::default(), Duration::from_secs(2)));
    let first = listed.next().await.unwrap();
    assert_eq!(
        first.region, "us-west-2",
        "the answering region comes first"
    );
    assert_eq!(first.error, None);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let second = listed.next().await.unwrap();
    assert_eq!(second.region, "us-east-1");
    assert_eq!(second.error_class, Some(ErrorClass::Unreachable));
    let said = second.error.unwrap_or_default();
    assert!(said.contains("no answer from its store in 2s"), "{said}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(listed.next().await.is_none());
    drop(silent);
}
