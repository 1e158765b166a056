//! Restore tests for etcd: a throwaway etcd that drtool starts on free local
//! ports, in a temporary folder. A keys point is replayed into an empty one;
//! a snapshot point is materialized into a data dir that the scratch etcd
//! then starts from. Either way the check is the key count at the point's
//! revision against the manifest, and the etcd and its folder are removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{Client, GetOptions};
use tokio::process::{Child, Command};

use super::EtcdError;
use super::{EtcdMember, EtcdRegion, EtcdTarget};
use crate::archive::Manifest;
use crate::config::{Target, TargetSpec};
use crate::engine::kind::{Applied, KindPlan, Scratch, ScratchGuard};
use crate::engine::options::RestoreOptions;
use crate::error::Error;

/// The scratch region's name in the scratch target.
const REGION: &str = "restore-test";
const MEMBER: &str = "restore-test";
/// The cluster token of every scratch etcd.
const TOKEN: &str = "drtool-restore-test";
/// How long a scratch etcd may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds the `etcd` server program: on PATH, or next to the snapshot tool.
fn find_etcd() -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
        .ok_or_else(|| EtcdError::NoEtcdServer.into())
}

/// A port nobody listens on now (the kernel's choice).
fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::failed(format!("cannot find a free local port: {e}")))
}

/// A running scratch etcd.
struct Running {
    child: Child,
    client: Client,
}

struct Ports {
    client: u16,
    peer: u16,
}

impl Ports {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }
    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer)
    }
}

async fn start(
    data_dir: &Path,
    ports: &Ports,
    max_request_bytes: u64,
    log: &Path,
) -> Result<Running, Error> {
    start_as(MEMBER, data_dir, ports, max_request_bytes, log).await
}

/// Starts an etcd named `name` alone on `ports` from `data_dir`.
async fn start_as(
    name: &str,
    data_dir: &Path,
    ports: &Ports,
    max_request_bytes: u64,
    log: &Path,
) -> Result<Running, Error> {
    let program = find_etcd()?;
    let log_file = std::fs::File::create(log)
        .map_err(|e| Error::failed(format!("cannot create {}: {e}", log.display())))?;
    let mut command = Command::new(&program);
    // A drtool killed outright (SIGKILL) runs no cleanup: the scratch etcd
    // goes with it instead of serving on for ever.
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    #[cfg(target_os = "linux")]
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .arg("--name")
        .arg(name)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen-client-urls", &ports.client_url()])
        .args(["--advertise-client-urls", &ports.client_url()])
        .args(["--listen-peer-urls", &ports.peer_url()])
        .args(["--initial-advertise-peer-urls", &ports.peer_url()])
        .arg("--initial-cluster")
        .arg(format!("{name}={}", ports.peer_url()))
        .args(["--initial-cluster-token", TOKEN])
        .arg("--max-request-bytes")
        .arg(max_request_bytes.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::failed(format!("cannot start {}: {e}", program.display())))?;
    let started = Instant::now();
    let endpoints = vec![ports.client_url()];
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(3).collect();
            return Err(EtcdError::ScratchExited {
                status: status.to_string(),
                log_tail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
            }
            .into());
        }
        if let Ok(mut client) = Client::connect(&endpoints, None).await
            && client.status().await.is_ok()
        {
            return Ok(Running { child, client });
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill().await;
            return Err(Error::unreachable(format!(
                "the scratch etcd on {} did not answer within {}s (its log: {})",
                ports.client_url(),
                START_TIMEOUT.as_secs(),
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The largest request the replay's scratch etcd takes (and the replay
/// sends): above any value a source etcd stores.
const REPLAY_MAX_REQUEST_BYTES: u64 = 32 << 20;
const REPLAY_MEMBER: &str = "drtool-replay";

/// A snapshot brought forward by a stream: `base` (a verified snapshot
/// file) restored into an etcd of its own on free local ports in a folder
/// under `work`, the segments replayed into it up to `to`, then a snapshot
/// of it saved as a file in `work`, whose path is returned with what the
/// replay did. The etcd and its folder are removed whatever happens; the
/// members' data dirs are not touched here.
pub async fn replay_on_scratch(
    tool: &super::restore::SnapshotTool,
    base: &Path,
    work: &Path,
    segments: tokio::sync::mpsc::Receiver<Result<Vec<u8>, Error>>,
    to: u64,
    job: &crate::engine::events::Job,
) -> Result<(PathBuf, Applied), Error> {
    find_etcd()?;
    let dir = tempfile::Builder::new()
        .prefix(".drtool-replay-")
        .tempdir_in(work)
        .map_err(|e| {
            Error::failed(format!(
                "cannot create a folder for the replay's etcd in {}: {e}",
                work.display()
            ))
        })?;
    let ports = Ports {
        client: free_port()?,
        peer: free_port()?,
    };
    let member = EtcdMember {
        name: REPLAY_MEMBER.into(),
        peer_url: ports.peer_url(),
        data_dir: dir.path().join("member"),
    };
    job.phase("restoring the base snapshot into a scratch etcd");
    super::restore::restore_member(
        tool,
        base,
        &member,
        std::slice::from_ref(&member),
        TOKEN,
        job,
    )
    .await?;
    let mut running = start_as(
        REPLAY_MEMBER,
        &member.data_dir,
        &ports,
        REPLAY_MAX_REQUEST_BYTES,
        &dir.path().join("etcd.log"),
    )
    .await?;
    let endpoints = vec![ports.client_url()];
    job.phase("replaying the stream into the scratch etcd");
    let scope = super::replay::Scope {
        prefix: None,
        leave_out: None,
        max_request_bytes: REPLAY_MAX_REQUEST_BYTES,
    };
    let done =
        super::replay::replay(&mut running.client, &endpoints, segments, to, scope, job).await;
    let saved = match done {
        Ok(done) => {
            job.phase("saving the replayed cluster as a snapshot");
            let file = work.join(format!(
                ".drtool-replayed-{:08x}.snapshot.db",
                rand::random::<u32>()
            ));
            save_snapshot(&mut running.client, &endpoints, &file, job)
                .await
                .map(|()| (file, done.applied()))
        }
        Err(e) => Err(e),
    };
    let _ = running.child.kill().await;
    let _ = running.child.wait().await;
    drop(dir);
    saved
}

/// Saves the etcd's snapshot into `file` (created, 0600), checking etcd's
/// trailing sha256 as it goes; removed again on any failure or
/// cancellation.
async fn save_snapshot(
    client: &mut Client,
    endpoints: &[String],
    file: &Path,
    job: &crate::engine::events::Job,
) -> Result<(), Error> {
    use tokio::io::AsyncWriteExt;
    let failed = |e: std::io::Error| {
        Error::failed(format!(
            "writing {}: {e}: free space, or pick data dirs on another disk",
            file.display()
        ))
    };
    let written = job
        .cancellable(async {
            let mut out = crate::engine::point::create_private(file)
                .await
                .map_err(failed)?;
            let mut stream = client
                .snapshot()
                .await
                .map_err(|e| Error::from(super::map_err(endpoints, "snapshot", e)))?;
            let mut digest = crate::archive::digest::PlainDigest::default();
            while let Some(msg) = stream
                .message()
                .await
                .map_err(|e| Error::from(super::map_err(endpoints, "snapshot stream", e)))?
            {
                digest.update(msg.blob());
                out.write_all(msg.blob()).await.map_err(failed)?;
            }
            out.flush().await.map_err(failed)?;
            digest.finish().trailer.map_err(|m| {
                Error::integrity(format!(
                    "the replayed cluster's snapshot ends with sha256 {}, but its bytes hash to {}: \
                     it was damaged on the way; restore again",
                    m.recorded, m.computed
                ))
            })
        })
        .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(file).await;
    }
    written
}

/// What a restore test of an etcd point checks and removes.
struct EtcdScratch {
    dir: tempfile::TempDir,
    ports: Ports,
    max_request_bytes: u64,
    /// The keys replay's scratch etcd; a snapshot's starts in `check`.
    running: tokio::sync::Mutex<Option<Running>>,
}

impl EtcdScratch {
    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("member")
    }
    fn log(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }
}

/// Sets up a scratch place for `manifest`'s point of `target`.
pub async fn scratch(
    target: &Target,
    spec: &EtcdTarget,
    manifest: &Manifest,
) -> Result<Option<Scratch>, Error> {
    let dir = tempfile::Builder::new()
        .prefix("drtool-restore-test-")
        .tempdir()
        .map_err(|e| Error::failed(format!("cannot create a folder for the scratch etcd: {e}")))?;
    let ports = Ports {
        client: free_port()?,
        peer: free_port()?,
    };
    let home = spec.regions.get(&target.home);
    let max_request_bytes = home.map_or(super::DEFAULT_MAX_REQUEST_BYTES, |r| r.max_request_bytes);
    let guard = EtcdScratch {
        dir,
        ports,
        max_request_bytes,
        running: tokio::sync::Mutex::new(None),
    };
    let mut region = EtcdRegion {
        endpoints: vec![guard.ports.client_url()],
        tls: None,
        members: Vec::new(),
        cluster_token: TOKEN.into(),
        max_request_bytes,
    };
    match manifest.payload.as_str() {
        super::KEYS_NAME => {
            let running = start(
                &guard.data_dir(),
                &guard.ports,
                max_request_bytes,
                &guard.log(),
            )
            .await?;
            *guard.running.lock().await = Some(running);
        }
        super::SNAPSHOT_NAME => {
            region.members = vec![EtcdMember {
                name: MEMBER.into(),
                peer_url: guard.ports.peer_url(),
                data_dir: guard.data_dir(),
            }];
        }
        _ => return Ok(None),
    }
    let mut scratch_spec = spec.clone();
    scratch_spec.regions = BTreeMap::from([(REGION.to_string(), region)]);
    let scratch_target = Target {
        name: format!("{}-restore-test", target.name),
        home: REGION.into(),
        copy_to: Vec::new(),
        labels: BTreeMap::new(),
        spec: TargetSpec::new(scratch_spec),
    };
    Ok(Some(Scratch {
        target: scratch_target,
        region: REGION.into(),
        // A restore test reproduces the point exactly, canary markers too.
        options: RestoreOptions {
            with_canaries: true,
            ..RestoreOptions::default()
        },
        guard: Box::new(guard),
    }))
}

/// Keys at `revision` (or now) in the scratch etcd, and its current revision.
async fn count(
    client: &mut Client,
    prefix: Option<&str>,
    revision: Option<i64>,
) -> Result<(u64, i64), Error> {
    let (key, end) = match prefix {
        Some(p) if !p.is_empty() => (p.as_bytes().to_vec(), super::prefix_end(p.as_bytes())),
        _ => (vec![0], vec![0]),
    };
    let mut opts = GetOptions::new().with_range(end).with_count_only();
    if let Some(r) = revision {
        opts = opts.with_revision(r);
    }
    let got = client
        .get(key, Some(opts))
        .await
        .map_err(|e| Error::failed(format!("counting keys in the scratch etcd: {e}")))?;
    Ok((got.count() as u64, got.header().map_or(0, |h| h.revision())))
}

#[async_trait]
impl ScratchGuard for EtcdScratch {
    async fn check(
        &self,
        manifest: &Manifest,
        _plan: &KindPlan,
        applied: &Applied,
    ) -> Result<String, Error> {
        let mut running = self.running.lock().await;
        if running.is_none() {
            // A snapshot: the restore made the data dir; start an etcd from it.
            *running = Some(
                start(
                    &self.data_dir(),
                    &self.ports,
                    self.max_request_bytes,
                    &self.log(),
                )
                .await?,
            );
        }
        let Some(r) = running.as_mut() else {
            return Err(Error::failed("the scratch etcd is not running"));
        };
        let expected = manifest.items.get("keys").copied();
        let point_revision = match manifest.consistency.read() {
            Ok(super::EtcdConsistency::Etcd { revision, .. }) => revision,
            Err(_) => 0,
        };
        match manifest.payload.as_str() {
            super::KEYS_NAME => {
                let created = applied.counts.get("created").copied().unwrap_or(0);
                let (found, _) = count(&mut r.client, None, None).await?;
                match expected {
                    Some(n) if n == found && n == created => Ok(format!(
                        "{found} keys restored into a scratch etcd, as the manifest counts"
                    )),
                    Some(counted) => Err(EtcdError::KeysDiffer {
                        counted,
                        created,
                        found,
                    }
                    .into()),
                    None => Err(EtcdError::NoKeyCount.into()),
                }
            }
            _ => {
                let (_, now) = count(&mut r.client, None, None).await?;
                if now < point_revision {
                    return Err(EtcdError::OlderRevision {
                        now,
                        point_revision,
                    }
                    .into());
                }
                let Some(n) = expected else {
                    // Points made before snapshots counted their keys.
                    let (found, _) = count(&mut r.client, None, None).await?;
                    return Ok(format!(
                        "the snapshot started as an etcd at revision {now} (point: {point_revision}) holding {found} keys"
                    ));
                };
                let (found, _) = count(&mut r.client, None, Some(point_revision)).await?;
                if found == n {
                    Ok(format!(
                        "the snapshot started as an etcd holding {found} keys at revision {point_revision}, as the manifest counts"
                    ))
                } else {
                    Err(EtcdError::KeysAtRevisionDiffer {
                        counted: n,
                        revision: point_revision,
                        found,
                    }
                    .into())
                }
            }
        }
    }

    async fn remove(self: Box<Self>) -> Result<(), Error> {
        if let Some(mut r) = self.running.lock().await.take() {
            let _ = r.child.kill().await;
            let _ = r.child.wait().await;
        }
        let path = self.dir.path().to_path_buf();
        self.dir.close().map_err(|e| {
            Error::failed(format!(
                "cannot remove the scratch etcd's folder {}: {e}",
                path.display()
            ))
        })
    }
}
