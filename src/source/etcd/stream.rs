//! The etcd stream: a watch from the base point's revision, cut into segments
//! of events (one JSON line each: put or delete, with the key's revisions and
//! lease), as `engine::stream` asks.
//!
//! Coverage is never guessed: a segment accounts for the revisions up to its
//! last event. A progress notification's revision moves coverage on only
//! when nothing changed under the watch for a while: etcd before 3.4.24 and
//! 3.5.8 can send a progress notification ahead of events still on their way
//! (etcd#15220), so one counts only once a later one confirms it with no
//! event in between. The header revision of a response with events is not
//! coverage either: a watch catching up is sent that while older events are
//! still coming. An event at or below what is accounted for is a break: the
//! stream starts a new base point rather than guess.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use etcd_client::{EventType, WatchOptions, WatchResponse};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::EtcdPlan;
use super::backup::MAX_RESPONSE_BYTES;
use super::event::{EventOp, EventRecord};
use super::home::{EtcdKind, spec};
use super::lease::Ttls;
use super::replay::{Scope, replay};
use super::{Connection, EtcdConsistency, KEYS_NAME, SNAPSHOT_NAME, in_words};
use crate::archive::Manifest;
use crate::config::Target;
use crate::engine::events::Job;
use crate::engine::kind::{Applied, KindPlan, no_region_table};
use crate::engine::stream::{Cut, StreamSettings, StreamStop, Streams};
use crate::error::Error;

/// With no change to cut, a segment that only moves the chain's reach on
/// (the source's revision advanced outside the prefix) is written at most
/// this often.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// The events received since the last cut, and how far they account for.
#[derive(Debug, Default)]
pub struct Pending {
    /// The first revision the next cut accounts for.
    from: u64,
    /// Every revision up to here is accounted for (`from - 1`: none yet).
    covered: u64,
    lines: Vec<u8>,
    events: u64,
    revisions: u64,
    last_rev: u64,
    first_at: Option<DateTime<Utc>>,
    last_at: Option<DateTime<Utc>>,
    /// A progress revision not yet confirmed, and when it came.
    candidate: Option<(u64, std::time::Instant)>,
}

/// How long a progress notification must stand, with no event after it,
/// before its revision counts.
pub const CONFIRM: Duration = Duration::from_secs(1);

impl Pending {
    pub fn after(position: u64) -> Pending {
        Pending {
            from: position.saturating_add(1),
            covered: position,
            ..Pending::default()
        }
    }

    /// Adds an event; an event at or below what is already accounted for
    /// (but not the same revision as the last one) means the watch repeated
    /// or skipped history.
    pub fn push(&mut self, record: &EventRecord, at: DateTime<Utc>) -> Result<(), String> {
        let rev = u64::try_from(record.rev).map_err(|_| format!("revision {}", record.rev))?;
        let same = self.events > 0 && rev == self.last_rev;
        if !same && rev <= self.covered {
            return Err(format!(
                "etcd sent revision {rev} after the stream had accounted for revisions up to {}",
                self.covered
            ));
        }
        serde_json::to_writer(&mut self.lines, record).map_err(|e| e.to_string())?;
        self.lines.push(b'\n');
        if !same {
            self.revisions += 1;
        }
        self.events += 1;
        self.last_rev = rev;
        self.covered = rev;
        self.first_at.get_or_insert(at);
        self.last_at = Some(at);
        // A progress before this event may have come ahead of it.
        self.candidate = None;
        Ok(())
    }

    /// etcd says every event up to `revision` was sent: counted once a later
    /// notification, [`CONFIRM`] after it with no event between, stands by it.
    pub fn progress(&mut self, revision: u64, now: std::time::Instant) {
        match self.candidate {
            Some((earlier, since))
                if now.duration_since(since) >= CONFIRM && revision >= earlier =>
            {
                self.covered = self.covered.max(earlier);
                self.candidate = Some((revision, now));
            }
            Some(_) => {}
            None => self.candidate = Some((revision, now)),
        }
    }

    pub fn has_events(&self) -> bool {
        self.events > 0
    }

    /// Whether a cut would move the chain on at all.
    pub fn advanced(&self) -> bool {
        self.covered >= self.from
    }

    pub fn bytes(&self) -> usize {
        self.lines.len()
    }

    /// The cut of everything pending (none when it accounts for nothing new).
    pub fn cut(&mut self) -> Option<Cut> {
        if !self.advanced() {
            return None;
        }
        let mut done = std::mem::replace(self, Pending::after(self.covered));
        self.candidate = done.candidate.take();
        Some(Cut {
            from: done.from,
            to: done.covered,
            lines: done.lines,
            events: done.events,
            revisions: done.revisions,
            first_at: done.first_at,
            last_at: done.last_at,
        })
    }
}

fn record_of(ev: &etcd_client::Event, ttls: &Ttls) -> Option<EventRecord> {
    let kv = ev.kv()?;
    let op = match ev.event_type() {
        EventType::Put => EventOp::Put,
        EventType::Delete => EventOp::Delete,
    };
    Some(EventRecord {
        rev: kv.mod_revision(),
        op,
        key: std::str::from_utf8(kv.key()).ok().map(str::to_string),
        key_b64: B64.encode(kv.key()),
        value_b64: match op {
            EventOp::Put => B64.encode(kv.value()),
            EventOp::Delete => String::new(),
        },
        create_revision: kv.create_revision(),
        version: kv.version(),
        lease: kv.lease(),
        lease_ttl: match op {
            EventOp::Put if kv.lease() != 0 => ttls.known(kv.lease()),
            _ => None,
        },
    })
}

/// What one watch response means for the stream: events pushed, progress
/// noted, or the reason to stop.
fn take_response(resp: &WatchResponse, pending: &mut Pending, ttls: &Ttls) -> Option<StreamStop> {
    if resp.compact_revision() > 0 {
        return Some(StreamStop::HistoryLost(format!(
            "etcd compacted its history up to revision {}, past revision {} the stream needed next",
            resp.compact_revision(),
            pending.covered.saturating_add(1)
        )));
    }
    if resp.canceled() {
        return Some(StreamStop::Broken(format!(
            "etcd cancelled the watch: {}",
            resp.cancel_reason()
        )));
    }
    if resp.created() {
        return None;
    }
    if resp.events().is_empty() {
        if let Some(rev) = resp.header().map(|h| h.revision()) {
            pending.progress(u64::try_from(rev).unwrap_or(0), std::time::Instant::now());
        }
        return None;
    }
    let now = Utc::now();
    for ev in resp.events() {
        if let Some(record) = record_of(ev, ttls)
            && let Err(why) = pending.push(&record, now)
        {
            return Some(StreamStop::HistoryLost(why));
        }
    }
    None
}

/// Follows the watch of `prefix` (or every key) after revision `after`.
pub async fn follow(
    connection: &Connection,
    client: &etcd_client::Client,
    prefix: Option<&str>,
    after: u64,
    settings: StreamSettings,
    cuts: mpsc::Sender<Cut>,
    cancel: CancellationToken,
) -> StreamStop {
    let start = i64::try_from(after.saturating_add(1)).unwrap_or(i64::MAX);
    let options = WatchOptions::new()
        .with_start_revision(start)
        .with_progress_notify();
    let (key, options) = match prefix {
        Some(p) if !p.is_empty() => (p.as_bytes().to_vec(), options.with_prefix()),
        _ => (vec![0], options.with_all_keys()),
    };
    let (mut ttls, leases) = (Ttls::default(), client.clone());
    let mut client = client
        .watch_client()
        .max_decoding_message_size(MAX_RESPONSE_BYTES);
    let mut watch = match client.watch(key, Some(options)).await {
        Ok(w) => w,
        Err(e) => return StreamStop::Broken(describe(connection, &e)),
    };
    let mut pending = Pending::after(after);
    let mut tick = tokio::time::interval(settings.segment);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_cut = tokio::time::Instant::now();
    let stop = loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break StreamStop::Cancelled,
            msg = watch.message() => match msg {
                Ok(Some(resp)) => {
                    let ids = leased_puts(&resp);
                    let read = tokio::select! {
                        biased;
                        _ = cancel.cancelled() => None,
                        r = ttls.read(&leases, &connection.endpoints, ids, true) => Some(r),
                    };
                    match read {
                        None => break StreamStop::Cancelled,
                        Some(Err(e)) => break StreamStop::Broken(e.to_string()),
                        Some(Ok(())) => {}
                    }
                    if let Some(stop) = take_response(&resp, &mut pending, &ttls) {
                        break stop;
                    }
                    if pending.bytes() as u64 >= settings.max_segment
                        && !send(&mut pending, &cuts).await
                    {
                        return StreamStop::Cancelled;
                    }
                }
                Ok(None) => break StreamStop::Broken("etcd ended the watch".into()),
                Err(e) => break StreamStop::Broken(describe(connection, &e)),
            },
            _ = tick.tick() => {
                let due = pending.has_events()
                    || (pending.advanced() && last_cut.elapsed() >= HEARTBEAT);
                if due {
                    if !send(&mut pending, &cuts).await {
                        return StreamStop::Cancelled;
                    }
                    last_cut = tokio::time::Instant::now();
                } else if let Err(e) = watch.request_progress().await {
                    break StreamStop::Broken(describe(connection, &e));
                }
            }
        }
    };
    // What was received is whole up to its last revision: keep it.
    if pending.has_events() {
        send(&mut pending, &cuts).await;
    }
    stop
}

/// The leases of a response's puts, whose TTL the segment records (read
/// again once in a while: a lease kept alive keeps its full TTL).
fn leased_puts(resp: &WatchResponse) -> Vec<i64> {
    resp.events()
        .iter()
        .filter(|ev| ev.event_type() == EventType::Put)
        .filter_map(|ev| ev.kv().map(|kv| kv.lease()))
        .filter(|id| *id != 0)
        .collect()
}

async fn send(pending: &mut Pending, cuts: &mpsc::Sender<Cut>) -> bool {
    match pending.cut() {
        Some(cut) => cuts.send(cut).await.is_ok(),
        None => true,
    }
}

fn describe(connection: &Connection, e: &etcd_client::Error) -> String {
    format!(
        "etcd at {}: {}",
        super::describe(&connection.endpoints),
        in_words(e)
    )
}

#[async_trait]
impl Streams for EtcdKind {
    fn stream_settings(&self, target: &Target) -> Option<StreamSettings> {
        spec(target).ok()?.continuous
    }

    fn position(&self, manifest: &Manifest) -> Result<u64, String> {
        let EtcdConsistency::Etcd {
            revision,
            snapshot_revision,
            ..
        } = manifest.consistency.read().map_err(|e| e.to_string())?;
        let exact = match manifest.payload.as_str() {
            KEYS_NAME => revision,
            SNAPSHOT_NAME => snapshot_revision.ok_or_else(|| {
                format!(
                    "point {} is a snapshot whose revision was not read from its own pages \
                     (taken by an older drtool, or its pages could not be read): a stream \
                     starts only from an exact revision; take a new point",
                    manifest.point_id
                )
            })?,
            other => {
                return Err(format!(
                    "point {} is a {other} point, not one a stream starts from",
                    manifest.point_id
                ));
            }
        };
        u64::try_from(exact).map_err(|_| format!("revision {exact}"))
    }

    async fn source_position(&self, target: &Target) -> Result<u64, Error> {
        let region = spec(target)?
            .regions
            .get(&target.home)
            .ok_or_else(|| no_region_table(target, &target.home))?;
        let connection = Connection::of(region);
        let mut client = self.client(&connection).await?;
        let status = client
            .status()
            .await
            .map_err(|e| Error::from(super::map_err(&connection.endpoints, "status", e)))?;
        Ok(status
            .header()
            .map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0)))
    }

    async fn replay(
        &self,
        plan: &KindPlan,
        segments: mpsc::Receiver<Result<Vec<u8>, Error>>,
        to: u64,
        job: &Job,
    ) -> Result<Applied, Error> {
        let EtcdPlan::EtcdKeys {
            connection,
            prefix,
            leave_out,
            max_request_bytes,
            ..
        } = plan.action::<EtcdPlan>()?
        else {
            return Err(Error::input(
                "a stream replays into a keys restore; this plan restores a snapshot",
            ));
        };
        let mut client = self.client(&connection).await?;
        let scope = Scope {
            prefix: prefix.as_deref(),
            leave_out: leave_out.as_deref(),
            max_request_bytes,
        };
        let done = replay(&mut client, &connection.endpoints, segments, to, scope, job).await?;
        Ok(done.applied())
    }

    fn replays_before_handing_over(&self, plan: &KindPlan) -> bool {
        matches!(plan.action::<EtcdPlan>(), Ok(EtcdPlan::EtcdSnapshot { .. }))
    }

    async fn apply_replayed(
        &self,
        plan: &KindPlan,
        point: Option<crate::engine::point::PointData>,
        segments: mpsc::Receiver<Result<Vec<u8>, Error>>,
        to: u64,
        job: &Job,
    ) -> Result<Applied, Error> {
        let data = point.ok_or_else(|| Error::failed("an etcd restore needs its point"))?;
        let EtcdPlan::EtcdSnapshot {
            tool,
            cluster_token,
            members,
        } = plan.action::<EtcdPlan>()?
        else {
            return Err(Error::input(
                "a keys restore replays its stream into the cluster after the restore",
            ));
        };
        let forward = super::home::Forward { segments, to };
        super::home::materialize(&data, &tool, &cluster_token, &members, Some(forward), job).await
    }

    async fn follow(
        &self,
        target: &Target,
        after: u64,
        settings: StreamSettings,
        cuts: mpsc::Sender<Cut>,
        cancel: CancellationToken,
    ) -> StreamStop {
        let spec = match spec(target) {
            Ok(s) => s,
            Err(e) => return StreamStop::Broken(e.to_string()),
        };
        let Some(region) = spec.regions.get(&target.home) else {
            return StreamStop::Broken(no_region_table(target, &target.home).to_string());
        };
        let connection = Connection::of(region);
        let client = match self.client(&connection).await {
            Ok(c) => c,
            Err(e) => return StreamStop::Broken(e.to_string()),
        };
        follow(
            &connection,
            &client,
            spec.prefix.as_deref(),
            after,
            settings,
            cuts,
            cancel,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(rev: i64, key: &str) -> EventRecord {
        EventRecord {
            rev,
            op: EventOp::Put,
            key: Some(key.into()),
            key_b64: B64.encode(key),
            value_b64: B64.encode("v"),
            create_revision: rev,
            version: 1,
            lease: 0,
            lease_ttl: None,
        }
    }

    #[test]
    fn a_cut_accounts_for_its_events_and_for_progress_only_once_confirmed() -> Result<(), String> {
        let now = Utc::now();
        let t0 = std::time::Instant::now();
        let later = |s: u64| t0 + Duration::from_secs(s);
        let mut p = Pending::after(10);
        assert!(p.cut().is_none(), "nothing new: no cut");
        p.push(&put(11, "a"), now)?;
        p.push(&put(11, "b"), now)?; // one transaction, two keys
        p.push(&put(13, "c"), now)?;
        p.progress(15, t0);
        let cut = p.cut().ok_or("a cut")?;
        assert_eq!(
            (cut.from, cut.to, cut.events, cut.revisions),
            (11, 13, 3, 2)
        );
        assert_eq!(cut.lines.iter().filter(|b| **b == b'\n').count(), 3);
        // A progress stands only when a later one confirms it.
        assert!(p.cut().is_none(), "15 is not confirmed yet");
        p.progress(16, later(0));
        assert!(p.cut().is_none(), "too soon to confirm");
        p.progress(17, later(2));
        let cut = p.cut().ok_or("a cut of confirmed progress")?;
        assert_eq!((cut.from, cut.to, cut.events), (14, 15, 0));
        // An event after a progress drops it: it may have come ahead of it.
        p.progress(30, later(3));
        p.push(&put(20, "d"), now)?;
        p.progress(31, later(9));
        let cut = p.cut().ok_or("a cut")?;
        assert_eq!((cut.from, cut.to), (16, 20));
        Ok(())
    }

    #[test]
    fn an_event_below_what_is_accounted_for_is_a_break() -> Result<(), String> {
        let now = Utc::now();
        let t0 = std::time::Instant::now();
        let mut p = Pending::after(10);
        p.push(&put(12, "a"), now)?;
        assert!(p.push(&put(11, "b"), now).is_err());
        let mut p = Pending::after(10);
        p.progress(12, t0);
        p.progress(12, t0 + Duration::from_secs(2));
        assert!(
            p.push(&put(12, "a"), now).is_err(),
            "12 was already accounted for"
        );
        assert!(p.push(&put(-1, "a"), now).is_err());
        Ok(())
    }

    #[test]
    fn events_read_back_as_written() -> Result<(), serde_json::Error> {
        let line = serde_json::to_string(&put(7, "k"))?;
        assert_eq!(serde_json::from_str::<EventRecord>(&line)?, put(7, "k"));
        let del: EventRecord = serde_json::from_str(r#"{"rev":9,"op":"delete","key_b64":"aw=="}"#)?;
        assert_eq!(del.op, EventOp::Delete);
        assert_eq!(del.value_b64, "");
        Ok(())
    }
}
