//! Continuous streams: a target's changes between recovery points, written
//! as small immutable segments under a base point, to the home region's store
//! and every `copy_to` region's as they are made.
//!
//! A kind that can follow its source hands out [`Streams`]: it reads where a
//! point stands (its position: etcd's revision, from the point itself), and
//! follows the source from a position, cutting its changes into [`Cut`]s. This
//! module does the rest for every kind: it picks (or takes) the base point,
//! resumes after the newest stored segment, seals each cut into the chain
//! (`archive::segment`), writes it to every region, holds the target's stream
//! lock, and starts a new base when the source's history no longer reaches
//! the stream. It never decides what an event means.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use super::events::{Job, JobSpec};
use super::kind::TargetKind;
pub use super::kind::{Cut, StreamSettings, StreamStop, Streams};
use super::lock::{LockGuard, Locked, owner_id};
use super::report::Operation;
use super::root::Engine;
use super::{BackupRequest, CopyRequest};
use crate::archive::PointId;
use crate::archive::segment::{self, ChainView, SEGMENT_FORMAT, SegmentHead, SegmentName};
use crate::catalog::RegionStore;
use crate::config::Target;
use crate::error::Error;
use crate::store::Keep;
use tokio_util::sync::CancellationToken;

/// How long a stream's lock lasts without renewal (a crashed daemon's lock
/// expires after this); it is renewed every third of it.
pub const LOCK_TTL: Duration = Duration::from_secs(90);
/// The longest wait between two attempts to follow a broken source again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long `stream status` waits for a source's revision.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(5);

/// The lock that keeps two processes from writing one target's stream.
pub fn lock_name(target: &str) -> String {
    format!("stream-{target}")
}

/// What a stream run did before it stopped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamRun {
    pub target: String,
    /// The base points it wrote segments under, oldest first.
    pub bases: Vec<String>,
    pub segments: u64,
    pub events: u64,
    /// The newest position stored in the home region.
    pub reaches: u64,
    /// Times it followed the source again after a break.
    pub restarts: u64,
    /// Times the source's history was lost and a new base point was taken.
    pub gaps: u64,
}

/// Counts a running stream keeps for whoever watches it (the daemon's
/// metrics): they move while it runs, not only when it ends.
#[derive(Debug, Default)]
pub struct StreamCounters {
    pub gaps: AtomicU64,
    pub restarts: AtomicU64,
    pub segments: AtomicU64,
}

/// The note a stream leaves beside a base it took after a gap.
const GAP_FILE: &str = "gap.json";

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct Gap {
    /// The base whose chain ended.
    after_base: String,
    why: String,
    at: DateTime<Utc>,
    /// The new base's own position: the first the new chain replays after.
    base_position: u64,
}

impl Gap {
    fn in_words(&self) -> String {
        format!(
            "started again at revision {} on {} after a gap in the stream of {} ({}): \
             changes between the two restore only as this point",
            self.base_position,
            self.at.format("%Y-%m-%d %H:%M:%SZ"),
            self.after_base,
            self.why
        )
    }
}

/// A stream's state in one region, as `drtool stream status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RegionStream {
    pub region: String,
    /// The newest base point with segments there.
    pub base: Option<String>,
    pub base_position: Option<u64>,
    pub segments: usize,
    /// The newest position the region holds without a hole.
    pub reaches: Option<u64>,
    /// When its newest segment was stored.
    pub newest_at: Option<DateTime<Utc>>,
    /// How far it is behind the source (when the source answered).
    pub lag_revisions: Option<u64>,
    pub lag_seconds: Option<f64>,
    /// Where the chain stops being whole, if it does.
    pub broken: Option<String>,
    /// Why this base was taken, when it was taken after a gap (the source
    /// compacted past the stream, or its chain broke).
    pub gap: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamStatus {
    pub target: String,
    pub source_position: Option<u64>,
    pub source_error: Option<String>,
    pub regions: Vec<RegionStream>,
}

/// Renews a stream's lock every third of its lifetime for the whole run. A
/// renewal that fails is tried again every 5 s; when none succeeded for two
/// thirds of the lifetime (another process may take the lock soon), or the
/// lock is someone else's, the run is cancelled and told why.
struct LockKeeper {
    done: CancellationToken,
    task: tokio::task::JoinHandle<(LockGuard, Option<Error>)>,
}

impl LockKeeper {
    fn start(mut guard: LockGuard, run: CancellationToken) -> LockKeeper {
        let done = CancellationToken::new();
        let stop = done.clone();
        let task = tokio::spawn(async move {
            let mut renewed = std::time::Instant::now();
            let mut wait = LOCK_TTL / 3;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return (guard, None),
                    _ = tokio::time::sleep(wait) => {}
                }
                match guard.renew(LOCK_TTL).await {
                    Ok(()) => {
                        renewed = std::time::Instant::now();
                        wait = LOCK_TTL / 3;
                    }
                    // A store that fails may answer in time; a lock that is
                    // someone else's will not come back.
                    Err(e)
                        if renewed.elapsed() < LOCK_TTL * 2 / 3
                            && e.class() != crate::error::ErrorClass::Exists =>
                    {
                        tracing::warn!(lock = %guard.lock.name, "cannot renew the stream's lock ({e}); trying again in 5 s");
                        wait = Duration::from_secs(5);
                    }
                    Err(e) => {
                        run.cancel();
                        let e = e.noted(
                            "the stream stopped: without its lock another process could write it too",
                        );
                        return (guard, Some(e));
                    }
                }
            }
        });
        LockKeeper { done, task }
    }

    /// Stops renewing; the guard to release (none if the task failed) and
    /// why the lock was lost, if it was.
    async fn stop(self) -> (Option<LockGuard>, Option<Error>) {
        self.done.cancel();
        match self.task.await {
            Ok((guard, lost)) => (Some(guard), lost),
            Err(e) => (
                None,
                Some(Error::failed(format!("the lock keeper failed: {e}"))),
            ),
        }
    }
}

/// The writer of one copy region's segments, running beside the home writer.
struct Copier {
    tx: mpsc::Sender<(SegmentName, bytes::Bytes)>,
    /// A segment was not handed over: the writer copies from home what its
    /// region lacks before the next one.
    lagging: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// What a copy region's writer works on.
#[derive(Clone)]
struct CopyJob {
    home: RegionStore,
    sink: RegionStore,
    target: String,
    base: PointId,
    position: u64,
    job: Job,
}

impl CopyJob {
    fn spawn(self) -> Copier {
        let (tx, rx) = mpsc::channel(64);
        let lagging = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn(self.run(rx, lagging.clone()));
        Copier { tx, lagging, task }
    }

    async fn run(
        self,
        mut rx: mpsc::Receiver<(SegmentName, bytes::Bytes)>,
        lagging: Arc<AtomicBool>,
    ) {
        let mut reaches = None;
        let mut warned = false;
        loop {
            if lagging.swap(false, Ordering::SeqCst) || reaches.is_none() {
                match self.catch_up().await {
                    Ok(r) => {
                        reaches = Some(r);
                        warned = false;
                    }
                    Err(e) => {
                        lagging.store(true, Ordering::SeqCst);
                        self.warn_once(&mut warned, &e.to_string());
                    }
                }
            }
            let Some((name, body)) = rx.recv().await else {
                return;
            };
            match reaches {
                Some(r) if r.saturating_add(1) == name.from => {}
                // Already there (caught up past it) or out of line: catch up.
                Some(r) if name.to <= r => continue,
                _ => {
                    lagging.store(true, Ordering::SeqCst);
                    continue;
                }
            }
            let key = self
                .sink
                .layout
                .segment_key(&self.target, &self.base, &name);
            match self.sink.store.put(&key, body, Keep::Normal).await {
                Ok(()) => reaches = Some(name.to),
                Err(e) => {
                    lagging.store(true, Ordering::SeqCst);
                    self.warn_once(&mut warned, &e.to_string());
                }
            }
        }
    }

    fn warn_once(&self, warned: &mut bool, why: &str) {
        if !*warned {
            self.job.warn(format!(
                "segments of {} not copied to {} ({why}); they are copied from {} when its store answers",
                self.target, self.sink.region, self.home.region
            ));
            *warned = true;
        }
    }

    /// Copies from home, in chain order, the segments this region lacks;
    /// returns how far its chain reaches.
    async fn catch_up(&self) -> Result<u64, Error> {
        let have = chain_in(&self.sink, &self.target, &self.base, self.position).await?;
        let home = chain_in(&self.home, &self.target, &self.base, self.position).await?;
        let mut reaches = have.reaches;
        for (key, name) in &home.whole {
            if name.to <= reaches {
                continue;
            }
            if name.from != reaches.saturating_add(1) {
                break;
            }
            let body = self.home.store.get(key).await?;
            let to = self.sink.layout.segment_key(&self.target, &self.base, name);
            self.sink.store.put(&to, body, Keep::Normal).await?;
            reaches = name.to;
        }
        Ok(reaches)
    }
}

/// A cut sealed as the next segment of `base`'s chain (compressing and
/// hashing off the task that reads the watch).
async fn seal_cut(
    (target, recipients): (&str, &[String]),
    base: &PointId,
    prev: Option<String>,
    cut: Cut,
) -> Result<(SegmentName, segment::Sealed), Error> {
    let name = SegmentName {
        from: cut.from,
        to: cut.to,
    };
    let head = SegmentHead {
        format: SEGMENT_FORMAT,
        target: target.to_string(),
        base: base.to_string(),
        from: cut.from,
        to: cut.to,
        prev_sha256: prev,
        events: cut.events,
        revisions: cut.revisions,
        first_at: cut.first_at,
        last_at: cut.last_at,
        written_at: Utc::now(),
    };
    let recipients = recipients.to_vec();
    let sealed = tokio::task::spawn_blocking(move || {
        let sealed = segment::seal(&head, &cut.lines)?;
        if recipients.is_empty() {
            return Ok(sealed);
        }
        // Encrypted as the points are: the chain hashes the stored bytes.
        let bytes = crate::archive::pipeline::encrypt_small(&recipients, &sealed.bytes)?;
        Ok::<_, std::io::Error>(segment::Sealed {
            sha256: segment::sha256_of(&bytes),
            bytes: bytes.into(),
        })
    })
    .await
    .map_err(Error::failed)?
    .map_err(Error::failed)?;
    Ok((name, sealed))
}

/// Manifests read at most while looking for a point a stream starts from.
const MANIFESTS_LOOKED_AT: usize = 50;

/// The newest point of `target` in `rs` (newer than `newer_than`) that a
/// stream starts from, with its position: one LIST, then manifests read
/// newest first until one will do (most often the first). Cheap enough for
/// every lock renewal and every scrape, unlike a full listing.
async fn newest_streamable(
    rs: &RegionStore,
    target: &str,
    streams: &dyn Streams,
    newer_than: Option<&PointId>,
) -> Result<Option<(PointId, u64)>, Error> {
    let objects = rs
        .store
        .list(&rs.layout.points_prefix(Some(target)))
        .await?;
    let mut ids: Vec<PointId> = objects
        .iter()
        .filter_map(|o| rs.layout.parse_point_key(&o.key))
        .filter(|(_, _, file)| *file == crate::archive::layout::MANIFEST_FILE)
        .map(|(_, id, _)| id)
        .filter(|id| newer_than.is_none_or(|n| id > n))
        .collect();
    ids.sort();
    for id in ids.into_iter().rev().take(MANIFESTS_LOOKED_AT) {
        let key = rs.layout.manifest_key(target, &id);
        let Ok(bytes) = rs.store.get(&key).await else {
            continue;
        };
        let Ok(manifest) = crate::archive::Manifest::parse(&key, &bytes) else {
            continue;
        };
        if let Ok(position) = streams.position(&manifest) {
            return Ok(Some((id, position)));
        }
    }
    Ok(None)
}

/// The chain of segments of `base` in one region.
pub(super) async fn chain_in(
    rs: &RegionStore,
    target: &str,
    base: &PointId,
    position: u64,
) -> Result<ChainView, Error> {
    let objects = rs
        .store
        .list(&rs.layout.stream_prefix(target, Some(base)))
        .await?;
    let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    Ok(segment::chain_of(position, &keys))
}

impl Engine {
    fn streams_of<'a>(
        &self,
        kind: &'a std::sync::Arc<dyn TargetKind>,
        target: &Target,
    ) -> Result<&'a dyn Streams, Error> {
        kind.streams().ok_or_else(|| {
            Error::input(format!(
                "target {}: its kind ({}) has no continuous stream",
                target.name,
                kind.name()
            ))
        })
    }

    /// Runs the stream of `target` until the engine is cancelled: takes its
    /// lock, picks or takes the base point and writes segments, following the
    /// source again after breaks and from a new base after a lost history.
    pub async fn stream(
        &self,
        target: &str,
        job: &Job,
        counters: &StreamCounters,
    ) -> Result<StreamRun, Error> {
        let t = self.target(target)?.clone();
        let kind = self.kind_of(&t)?;
        let streams = self.streams_of(&kind, &t)?;
        let settings = streams.stream_settings(&t).ok_or_else(|| {
            Error::input(format!(
                "target {target} has no `continuous` setting in its config: add \
                 continuous = {{ segment = \"1s\" }} to [targets.{target}]"
            ))
        })?;
        let owner = owner_id();
        let guard = match self
            .try_lock(&t.home, &lock_name(target), &owner, LOCK_TTL)
            .await?
        {
            Locked::Taken(g) => g,
            Locked::Busy(l) => {
                return Err(Error::exists(format!(
                    "the stream of {target} is already written by {} (its lock in {} lasts until {}): \
                     one stream per target; stop that one first",
                    l.owner,
                    t.home,
                    l.until.to_rfc3339()
                )));
            }
        };
        let mut run = StreamRun {
            target: target.to_string(),
            ..StreamRun::default()
        };
        // The lock is renewed for the whole run, whatever the stream waits
        // on (a backup, a copy, a store that is down); losing it stops the run.
        let cancel = self.cancel_token().child_token();
        let keeper = LockKeeper::start(guard, cancel.clone());
        let outcome = self
            .stream_loop(&t, streams, settings, &cancel, (&mut run, counters), job)
            .await;
        let (guard, lost) = keeper.stop().await;
        let released = match guard {
            Some(g) => g.release().await,
            None => Ok(()),
        };
        if let Some(lost) = lost {
            return Err(lost);
        }
        outcome?;
        released?;
        Ok(run)
    }

    async fn stream_loop(
        &self,
        t: &Target,
        streams: &dyn Streams,
        settings: StreamSettings,
        cancel: &CancellationToken,
        (run, counters): (&mut StreamRun, &StreamCounters),
        job: &Job,
    ) -> Result<(), Error> {
        let mut backoff = Duration::from_secs(1);
        let mut new_base = false;
        // Gaps in a row with nothing written between: a base that cannot be
        // taken faster than the source compacts is not retried at once.
        let mut gaps_in_a_row = 0u32;
        // The base whose chain ended and why, to note beside the next one.
        let mut gap: Option<(String, String)> = None;
        loop {
            let (base, position) = self.stream_base(t, streams, new_base, job).await?;
            new_base = false;
            if let Some((after_base, why)) = gap.take() {
                let g = Gap {
                    after_base,
                    why,
                    at: Utc::now(),
                    base_position: position,
                };
                self.record_gap(t, &base, &g, job).await;
            }
            if run.bases.last() != Some(&base.to_string()) {
                run.bases.push(base.to_string());
                job.set_point(&base.to_string());
            }
            let segments_before = run.segments;
            let stop = self
                .follow_base(
                    t,
                    streams,
                    settings,
                    (&base, position),
                    cancel,
                    (run, counters),
                    job,
                )
                .await?;
            if run.segments > segments_before {
                backoff = Duration::from_secs(1);
                gaps_in_a_row = 0;
            }
            match stop {
                StreamStop::Cancelled => return Ok(()),
                StreamStop::NewBase => {}
                StreamStop::HistoryLost(why) => {
                    job.warn(format!(
                        "the stream of {} has a gap ({why}): taking a new base point",
                        t.name
                    ));
                    run.gaps += 1;
                    counters.gaps.fetch_add(1, Ordering::Relaxed);
                    new_base = true;
                    gap = Some((base.to_string(), why));
                    gaps_in_a_row += 1;
                    if gaps_in_a_row > 1 {
                        tokio::select! {
                            _ = cancel.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
                StreamStop::Broken(why) => {
                    run.restarts += 1;
                    counters.restarts.fetch_add(1, Ordering::Relaxed);
                    job.warn(format!(
                        "the stream of {} broke off ({why}); following again in {}s",
                        t.name,
                        backoff.as_secs()
                    ));
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Follows the source after the newest segment of `base` in the home
    /// region, sealing and writing each cut, until the kind stops.
    #[allow(clippy::too_many_arguments)]
    async fn follow_base(
        &self,
        t: &Target,
        streams: &dyn Streams,
        settings: StreamSettings,
        (base, position): (&PointId, u64),
        cancel: &CancellationToken,
        (run, counters): (&mut StreamRun, &StreamCounters),
        job: &Job,
    ) -> Result<StreamStop, Error> {
        let segments_written = &counters.segments;
        let home = self.store(&t.home).await?;
        let view = chain_in(&home, &t.name, base, position).await?;
        if let Some(broken) = &view.broken {
            return Ok(StreamStop::HistoryLost(format!(
                "its chain under {base} in {} is broken: {broken}",
                t.home
            )));
        }
        let mut prev = match view.whole.last() {
            Some((key, _)) => Some(segment::sha256_of(&home.store.get(key).await?)),
            None => None,
        };
        run.reaches = view.reaches;
        let copiers = self.copiers(t, &home, base, position, job).await?;
        let (tx, rx) = mpsc::channel::<Cut>(4);
        let follow_cancel = cancel.child_token();
        let follow = streams.follow(t, view.reaches, settings, tx, follow_cancel.clone());
        let mut switched = false;
        let recipients: Vec<String> = self
            .config()
            .encryption
            .as_ref()
            .map(|e| e.recipients.clone())
            .unwrap_or_default();
        let write = async {
            // Owned here: a writer that fails drops it, so the follower's
            // next send fails at once instead of waiting on a full channel.
            let mut rx = rx;
            let mut tick = tokio::time::interval(LOCK_TTL / 3);
            tick.tick().await;
            loop {
                let cut = tokio::select! {
                    cut = rx.recv() => match cut {
                        Some(c) => c,
                        None => break,
                    },
                    _ = tick.tick() => {
                        if self.newest_base(t, streams, Some(base)).await?.is_some() {
                            // A newer point (a schedule's backup): follow
                            // from it, so the old chain can be pruned with it.
                            switched = true;
                            follow_cancel.cancel();
                        }
                        continue;
                    }
                };
                let events = cut.events;
                let (name, sealed) =
                    seal_cut((&t.name, &recipients), base, prev.clone(), cut).await?;
                let key = home.layout.segment_key(&t.name, base, &name);
                self.write_segment(&home, &copiers, (&key, &name), &sealed.bytes, (cancel, job))
                    .await?;
                prev = Some(sealed.sha256);
                run.segments += 1;
                run.events += events;
                segments_written.fetch_add(1, Ordering::Relaxed);
                run.reaches = name.to;
                job.items(run.segments, None);
            }
            Ok::<(), Error>(())
        };
        let (stop, written) = tokio::join!(follow, async {
            let r = write.await;
            // A failed write stops the follower: its cuts have nowhere to go.
            follow_cancel.cancel();
            r
        });
        for c in copiers {
            drop(c.tx);
            let _ = c.task.await;
        }
        written?;
        Ok(match stop {
            StreamStop::Cancelled if switched && !cancel.is_cancelled() => StreamStop::NewBase,
            other => other,
        })
    }

    /// A writer per copy region, each with the base point copied there first
    /// when it is missing.
    async fn copiers(
        &self,
        t: &Target,
        home: &RegionStore,
        base: &PointId,
        position: u64,
        job: &Job,
    ) -> Result<Vec<Copier>, Error> {
        let mut copiers = Vec::new();
        for region in t.regions().filter(|r| *r != t.home) {
            let sink = self.store(region).await?;
            let there = sink
                .store
                .get(&sink.layout.manifest_key(&t.name, base))
                .await
                .is_ok();
            if !there {
                let copied = self
                    .copy(&CopyRequest {
                        target: Some(t.name.clone()),
                        point: Some(base.clone()),
                        to: Some(region.to_string()),
                        ..CopyRequest::default()
                    })
                    .await;
                let failed = match copied {
                    Ok(report) => report
                        .items
                        .into_iter()
                        .find(|i| i.outcome == super::Outcome::Failed)
                        .map(|i| i.message),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(e) = failed {
                    job.warn(format!(
                        "the base point {base} of {} is not in {region} ({e}); its segments go there anyway",
                        t.name
                    ));
                }
            }
            copiers.push(
                CopyJob {
                    home: home.clone(),
                    sink,
                    target: t.name.clone(),
                    base: base.clone(),
                    position,
                    job: job.clone(),
                }
                .spawn(),
            );
        }
        Ok(copiers)
    }

    /// Leaves a note beside the segments of `base`, taken after a gap, in
    /// every region of the target, so `stream status`, metrics readers and
    /// the dashboard can say why the stream started again and from where
    /// (revisions between the old chain's end and the new base restore only
    /// as that point). A region that does not take it is warned about.
    async fn record_gap(&self, t: &Target, base: &PointId, gap: &Gap, job: &Job) {
        let Ok(body) = serde_json::to_vec(gap) else {
            return;
        };
        for region in t.regions() {
            let put = async {
                let rs = self.store(region).await?;
                let key = format!("{}{GAP_FILE}", rs.layout.stream_prefix(&t.name, Some(base)));
                rs.store
                    .put(&key, bytes::Bytes::from(body.clone()), Keep::Normal)
                    .await
                    .map_err(Error::from)
            };
            if let Err(e) = put.await {
                job.warn(format!(
                    "the note of the stream's gap was not written to {region} ({e})"
                ));
            }
        }
    }

    /// The base point a stream continues: the newest point in the home
    /// region a stream can start from, or a new one (`fresh`, or none yet).
    async fn stream_base(
        &self,
        t: &Target,
        streams: &dyn Streams,
        fresh: bool,
        job: &Job,
    ) -> Result<(PointId, u64), Error> {
        if !fresh && let Some(found) = self.newest_base(t, streams, None).await? {
            return Ok(found);
        }
        job.phase("taking a base point");
        let report = self
            .backup(&BackupRequest {
                targets: vec![t.name.clone()],
                labels: BTreeMap::from([("made-by".to_string(), "stream".to_string())]),
                ..BackupRequest::default()
            })
            .await?;
        if let Some(failed) = report
            .items
            .iter()
            .find(|i| i.outcome != super::Outcome::Ok && i.region == t.home)
        {
            return Err(Error::failed(format!(
                "the stream of {} needs a base point and the backup failed: {}",
                t.name, failed.message
            )));
        }
        job.phase("streaming");
        self.newest_base(t, streams, None).await?.ok_or_else(|| {
            Error::failed(format!(
                "the stream of {} took a base point and cannot find it in {}",
                t.name, t.home
            ))
        })
    }

    /// The newest point in the home region (newer than `newer_than`) that a
    /// stream starts from, with its position.
    async fn newest_base(
        &self,
        t: &Target,
        streams: &dyn Streams,
        newer_than: Option<&PointId>,
    ) -> Result<Option<(PointId, u64)>, Error> {
        let rs = self.store(&t.home).await?;
        newest_streamable(&rs, &t.name, streams, newer_than).await
    }

    /// Writes a segment to the home region until it takes it (the chain must
    /// not skip one), then hands it to each copy region's writer (which never
    /// holds the home writes up).
    async fn write_segment(
        &self,
        home: &RegionStore,
        copiers: &[Copier],
        (key, name): (&str, &SegmentName),
        bytes: &bytes::Bytes,
        (cancel, job): (&CancellationToken, &Job),
    ) -> Result<(), Error> {
        let mut wait = Duration::from_millis(200);
        loop {
            match home.store.put(key, bytes.clone(), Keep::Normal).await {
                Ok(()) => break,
                Err(e) if !cancel.is_cancelled() => {
                    job.warn(format!(
                        "segment {key} not written to {} ({e}); trying again",
                        home.region
                    ));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Home first: a copy region never holds a segment home lacks, so a
        // stream resumed from home never forks from its copies.
        for c in copiers {
            if c.tx.try_send((*name, bytes.clone())).is_err() {
                // Its writer is busy with a slow store: it catches up from home.
                c.lagging.store(true, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// The state of the stream of each target that has one (or of one), per
    /// region.
    pub async fn stream_status(&self, target: Option<&str>) -> Result<Vec<StreamStatus>, Error> {
        let mut out = Vec::new();
        let targets: Vec<Target> = match target {
            Some(name) => vec![self.target(name)?.clone()],
            None => self.config().targets.values().cloned().collect(),
        };
        for t in targets {
            let kind = self.kind_of(&t)?;
            let Some(streams) = kind.streams() else {
                if target.is_some() {
                    self.streams_of(&kind, &t)?;
                }
                continue;
            };
            if streams.stream_settings(&t).is_none() && target.is_none() {
                continue;
            }
            out.push(self.status_of(&t, streams).await);
        }
        Ok(out)
    }

    async fn status_of(&self, t: &Target, streams: &dyn Streams) -> StreamStatus {
        // A source that does not answer (the outage) must not hold up the
        // regions' answer: it is said as such.
        let asked = tokio::time::timeout(SOURCE_TIMEOUT, streams.source_position(t)).await;
        let (source_position, source_error) = match asked {
            Ok(Ok(p)) => (Some(p), None),
            Ok(Err(e)) => (None, Some(e.to_string())),
            Err(_) => (
                None,
                Some(format!("no answer within {}s", SOURCE_TIMEOUT.as_secs())),
            ),
        };
        let mut regions = Vec::new();
        for region in t.regions() {
            let mut r = RegionStream {
                region: region.to_string(),
                ..RegionStream::default()
            };
            if let Err(e) = self
                .region_stream(t, streams, source_position, &mut r)
                .await
            {
                r.error = Some(e.to_string());
            }
            regions.push(r);
        }
        StreamStatus {
            target: t.name.clone(),
            source_position,
            source_error,
            regions,
        }
    }

    async fn region_stream(
        &self,
        t: &Target,
        streams: &dyn Streams,
        source: Option<u64>,
        r: &mut RegionStream,
    ) -> Result<(), Error> {
        let rs = self.store(&r.region).await?;
        // The newest point a stream starts from (a new base has no segment
        // yet), and only its segments: older bases can hold hundreds of
        // thousands, and every scrape asks.
        let Some((base, position)) = newest_streamable(&rs, &t.name, streams, None).await? else {
            return Ok(());
        };
        let objects = rs
            .store
            .list(&rs.layout.stream_prefix(&t.name, Some(&base)))
            .await?;
        let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        let view = segment::chain_of(position, &keys);
        r.base = Some(base.to_string());
        r.base_position = Some(position);
        r.segments = view.whole.len();
        r.reaches = Some(view.reaches);
        r.newest_at = view
            .whole
            .last()
            .and_then(|(k, _)| objects.iter().find(|o| &o.key == k))
            .and_then(|o| o.modified);
        r.broken = view.broken.as_ref().map(ToString::to_string);
        if let Some(key) = keys.iter().find(|k| k.ends_with(GAP_FILE)) {
            r.gap = Some(match rs.store.get(key).await {
                Ok(b) => match serde_json::from_slice::<Gap>(&b) {
                    Ok(g) => g.in_words(),
                    Err(e) => format!("a gap note that cannot be read ({e})"),
                },
                Err(e) => format!("a gap note that cannot be read ({e})"),
            });
        }
        if let Some(src) = source {
            let behind = src.saturating_sub(view.reaches);
            r.lag_revisions = Some(behind);
            r.lag_seconds = Some(match (behind, r.newest_at) {
                (0, _) => 0.0,
                (_, Some(at)) => (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0,
                (_, None) => f64::NAN,
            });
        }
        Ok(())
    }
}

impl Engine {
    /// The targets whose config asks for a continuous stream.
    pub fn streaming_targets(&self) -> Vec<String> {
        self.config()
            .targets
            .values()
            .filter(|t| {
                self.kind_of(t)
                    .ok()
                    .and_then(|k| k.streams().and_then(|s| s.stream_settings(t)))
                    .is_some()
            })
            .map(|t| t.name.clone())
            .collect()
    }
}

/// A job for a stream run of `target`.
pub fn stream_job(engine: &Engine, target: &str) -> Job {
    engine.job(JobSpec::new(Operation::Stream).target(target))
}
