//! Restoring to a position between points: the base point first, then its
//! stream's segments replayed up to the position asked for.
//!
//! Planning reads every segment the replay needs from the restore's region,
//! checks each link of the chain (names without a hole, each segment's
//! record of the previous one's sha256) and records their hashes; nothing
//! touches the target before that. Executing reads them again, checks each
//! against its recorded hash before the kind applies it, and hands the
//! kind's lines over one segment at a time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::events::Job;
use super::kind::{Applied, KindPlan};
use super::root::Engine;
use super::stream::Streams;
use crate::archive::segment::{self, ChainBreak};
use crate::catalog::{PointEntry, RegionStore};
use crate::error::Error;

/// How far a restore replays a base point's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayTo {
    /// Everything the region holds without a hole.
    Newest,
    /// Exactly this position (etcd: revision).
    Position(u64),
    /// The last segment whose changes were all made before this time.
    Before(DateTime<Utc>),
}

/// One segment a replay reads, as planning found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    pub key: String,
    pub from: u64,
    pub to: u64,
    pub sha256: String,
}

/// The replay part of a restore plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayPlan {
    pub base: String,
    /// The base point's own position: the replay starts after it.
    pub base_position: u64,
    /// The position the restore reaches.
    pub to: u64,
    pub segments: Vec<SegmentRef>,
    /// Events and positions replayed (those up to `to`).
    pub events: u64,
    pub revisions: u64,
    /// When the last change replayed was received by the stream.
    pub reaches_at: Option<DateTime<Utc>>,
    /// The newest position the region holds without a hole.
    pub newest_held: u64,
    /// Why the replay stops short of what was asked (a break in the chain),
    /// when `--before` accepted stopping there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_short: Option<String>,
}

impl ReplayPlan {
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "replay     {} segments of the stream after revision {}: {} revisions ({} events), up to revision {}{}",
            self.segments.len(),
            self.base_position,
            self.revisions,
            self.events,
            self.to,
            match self.reaches_at {
                Some(t) => format!(", as of {}", t.to_rfc3339()),
                None => String::new(),
            }
        )];
        if self.newest_held > self.to {
            lines.push(format!(
                "           (the region holds the stream up to revision {})",
                self.newest_held
            ));
        }
        if let Some(why) = &self.stopped_short {
            lines.push(format!("           STOPS SHORT: {why}"));
        }
        lines
    }
}

/// A segment's zstd bytes: decrypted first when it is age-encrypted (a
/// stream under `[encryption]`), which needs `--identity`.
fn unsealed<'b>(
    key: &str,
    stored: &'b [u8],
    identities: Option<&crate::archive::pipeline::Identities>,
) -> Result<std::borrow::Cow<'b, [u8]>, Error> {
    if !crate::archive::pipeline::is_age(stored) {
        return Ok(std::borrow::Cow::Borrowed(stored));
    }
    let ids = identities.ok_or_else(|| {
        Error::from(crate::archive::ArchiveError::NeedsIdentity {
            key: key.to_string(),
        })
    })?;
    let plain = ids.decrypt_small(key, stored, segment::MAX_SEGMENT_READ)?;
    Ok(std::borrow::Cow::Owned(plain))
}

/// A segment that cannot be used, as the error a restore stops with.
fn damaged(key: &str, why: impl std::fmt::Display) -> Error {
    Error::integrity(format!(
        "stream segment {key} cannot be used ({why}); restore to a revision before it \
         (`--revision`), or from another region that holds it whole"
    ))
}

impl Engine {
    /// The replay of `entry`'s stream in `rs` up to `to`; none when the point
    /// has no stream there (and none was asked for by position).
    pub(crate) async fn plan_replay(
        &self,
        streams: &dyn Streams,
        rs: &RegionStore,
        entry: &PointEntry,
        to: ReplayTo,
        job: &Job,
    ) -> Result<Option<ReplayPlan>, Error> {
        let target = &entry.manifest.target;
        let position = match (streams.position(&entry.manifest), to) {
            (Ok(p), _) => p,
            (Err(_), ReplayTo::Newest | ReplayTo::Before(_)) => return Ok(None),
            (Err(why), ReplayTo::Position(_)) => return Err(Error::input(why)),
        };
        let objects = rs
            .store
            .list(&rs.layout.stream_prefix(target, Some(&entry.id)))
            .await?;
        let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        let view = segment::chain_of(position, &keys);
        let goal = match to {
            ReplayTo::Position(n) if n < position => {
                return Err(Error::input(format!(
                    "point {} holds revision {position}, after revision {n}: restore an older point",
                    entry.id
                )));
            }
            ReplayTo::Position(n) => Some(n),
            ReplayTo::Newest | ReplayTo::Before(_) => None,
        };
        if view.whole.is_empty() && goal.is_none_or(|n| n == position) {
            return Ok(None);
        }
        let mut stopped_short = None;
        if let Some(n) = goal
            && n > view.reaches
        {
            match &view.broken {
                Some(b @ ChainBreak::Gap { next, .. })
                | Some(b @ ChainBreak::Overlap { key: next, .. }) => {
                    return Err(damaged(next, b));
                }
                None => {
                    return Err(Error::input(format!(
                        "region {} holds the stream of {target} under point {} up to revision {}, not {n}: \
                         restore to at most that revision, or wait for the stream to reach it",
                        rs.region, entry.id, view.reaches
                    )));
                }
            }
        }
        // The newest state asked for and a hole before it: not silently
        // less. By time, the newest whole revision before the hole is offered.
        if let Some(b) = &view.broken {
            match (to, b) {
                (ReplayTo::Before(_), _) => {
                    job.warn(format!(
                        "the stream of {target} in {} stops: {b}",
                        rs.region
                    ));
                    stopped_short = Some(b.to_string());
                }
                (_, ChainBreak::Gap { next, .. } | ChainBreak::Overlap { key: next, .. })
                    if goal.is_none() =>
                {
                    return Err(damaged(next, b));
                }
                _ => {}
            }
        }
        let mut plan = ReplayPlan {
            base: entry.id.to_string(),
            base_position: position,
            to: position,
            segments: Vec::new(),
            events: 0,
            revisions: 0,
            reaches_at: None,
            newest_held: view.reaches,
            stopped_short,
        };
        self.read_chain(rs, &view, goal, to, &mut plan, job).await?;
        Ok(Some(plan))
    }

    /// Reads the segments of `view` in order up to `goal` (or the time of
    /// `to`), checking each link, into `plan`.
    async fn read_chain(
        &self,
        rs: &RegionStore,
        view: &segment::ChainView,
        goal: Option<u64>,
        to: ReplayTo,
        plan: &mut ReplayPlan,
        job: &Job,
    ) -> Result<(), Error> {
        let mut prev: Option<String> = None;
        job.phase("checking the stream's segments");
        for (key, name) in &view.whole {
            if goal.is_some_and(|n| name.from > n) {
                break;
            }
            let bytes = match rs.store.get(key).await {
                Ok(b) => b,
                Err(e) => return Err(damaged(key, e)),
            };
            let sha = segment::sha256_of(&bytes);
            let ids = self.identities();
            let zstd = unsealed(key, &bytes, ids.as_deref())?;
            let (head, lines) = segment::open(key, &zstd).map_err(|e| damaged(key, e))?;
            if let Err(e) = segment::check_link(key, &head, &plan.base, prev.as_deref()) {
                if matches!(to, ReplayTo::Before(_)) {
                    plan.stopped_short = Some(e.to_string());
                    break;
                }
                return Err(damaged(key, e));
            }
            if let ReplayTo::Before(t) = to
                && head.last_at.unwrap_or(head.written_at) >= t
            {
                break;
            }
            let (events, revisions) = count_upto(&lines, goal);
            plan.events += events;
            plan.revisions += revisions;
            plan.to = goal.map_or(name.to, |n| n.min(name.to));
            plan.reaches_at = head.last_at.or(plan.reaches_at);
            plan.segments.push(SegmentRef {
                key: key.clone(),
                from: name.from,
                to: name.to,
                sha256: sha.clone(),
            });
            prev = Some(sha);
            job.items(plan.segments.len() as u64, Some(view.whole.len() as u64));
        }
        Ok(())
    }

    /// Replays `replay` into what `plan` restored, through the kind.
    pub(crate) async fn run_replay(
        &self,
        streams: &dyn Streams,
        plan: &KindPlan,
        rs: &RegionStore,
        replay: &ReplayPlan,
        job: &Job,
    ) -> Result<Applied, Error> {
        job.phase("replaying the stream");
        let (rx, reader) = self.segment_feed(rs, replay);
        let applied = streams.replay(plan, rx, replay.to, job).await;
        reader.abort();
        applied
    }

    /// Restores `plan` with `replay` applied before the kind hands the
    /// result over (a kind whose restored data cannot be replayed into once
    /// it is in place).
    pub(crate) async fn apply_replayed(
        &self,
        streams: &dyn Streams,
        plan: &KindPlan,
        data: Option<super::point::PointData>,
        rs: &RegionStore,
        replay: &ReplayPlan,
        job: &Job,
    ) -> Result<Applied, Error> {
        let (rx, reader) = self.segment_feed(rs, replay);
        let applied = streams.apply_replayed(plan, data, rx, replay.to, job).await;
        reader.abort();
        applied
    }

    /// The planned segments' lines, read again in order, each checked
    /// against the hash planning recorded; the first failure ends the feed.
    fn segment_feed(
        &self,
        rs: &RegionStore,
        replay: &ReplayPlan,
    ) -> (
        mpsc::Receiver<Result<Vec<u8>, Error>>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::channel::<Result<Vec<u8>, Error>>(2);
        let segments = replay.segments.clone();
        let store = rs.store.clone();
        let ids = self.identities();
        let reader = tokio::spawn(async move {
            for s in segments {
                let read = match store.get(&s.key).await {
                    Ok(bytes) if segment::sha256_of(&bytes) == s.sha256 => {
                        unsealed(&s.key, &bytes, ids.as_deref()).and_then(|zstd| {
                            segment::open(&s.key, &zstd)
                                .map(|(_, lines)| lines)
                                .map_err(|e| damaged(&s.key, e))
                        })
                    }
                    Ok(_) => Err(damaged(
                        &s.key,
                        "its bytes changed since the plan checked them",
                    )),
                    Err(e) => Err(damaged(&s.key, e)),
                };
                let failed = read.is_err();
                if tx.send(read).await.is_err() || failed {
                    return;
                }
            }
        });
        (rx, reader)
    }
}

/// Events and distinct revisions among a segment's lines up to `goal`. The
/// lines are the kind's, but every kind's event line has its position as
/// `rev`.
fn count_upto(lines: &[u8], goal: Option<u64>) -> (u64, u64) {
    #[derive(Deserialize)]
    struct Rev {
        rev: u64,
    }
    let mut events = 0;
    let mut revisions = 0;
    let mut last = None;
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(Rev { rev }) = serde_json::from_slice::<Rev>(line) else {
            continue;
        };
        if goal.is_some_and(|n| rev > n) {
            break;
        }
        events += 1;
        if last != Some(rev) {
            revisions += 1;
            last = Some(rev);
        }
    }
    (events, revisions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_revisions_are_counted_up_to_the_goal() {
        let lines = b"{\"rev\":11,\"x\":1}\n{\"rev\":11}\n{\"rev\":12}\n{\"rev\":14}\n";
        assert_eq!(count_upto(lines, None), (4, 3));
        assert_eq!(count_upto(lines, Some(12)), (3, 2));
        assert_eq!(count_upto(lines, Some(10)), (0, 0));
    }
}
