//! Prometheus metrics of the scheduler, registered and encoded with the
//! Prometheus project's `prometheus-client` crate and served by hyper on
//! `--metrics-addr`. Names follow Velero's where Velero has one
//! (`velero_backup_attempt_total` -> `drtool_backup_attempt_total`, its
//! duration buckets), so dashboards and alert rules carry over; restore-test
//! and drill metrics are drtool's own.
//!
//! Three sources: this daemon's runs (counters and histograms, as Velero's);
//! the state every scheduler shares in the bucket (last run, success, failure
//! and status per schedule, read at each scrape, so two daemons export the
//! same values); and the reports folder (drill measures, from reports that
//! verify). Every configured schedule and drill has its series from the first
//! scrape: counters start at 0, a drill that never passed at 0.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::run::{ScheduleRun, ScheduleState, home_region};
use super::spec::Schedule;
use crate::drill::measure::DrillVerdict;
use crate::engine::stream::StreamCounters;
use crate::engine::{Engine, Operation, Outcome, Verdict};
use crate::report::ReportStore;

/// Velero's backup duration buckets (seconds): 1, 5, 10, 15, 30 minutes,
/// 1, 2, 3, 4 hours.
pub const BUCKETS: [f64; 9] = [
    60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 14400.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PerRegion {
    schedule: String,
    target: String,
    region: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PerTarget {
    schedule: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PerSchedule {
    schedule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Where {
    target: String,
    region: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PerStream {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PerDrill {
    drill: String,
}

type F64 = Gauge<f64, AtomicU64>;
type Buckets = fn() -> Histogram;

fn velero_buckets() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Every family, registered once.
struct Families {
    attempt: Family<PerRegion, Counter>,
    success: Family<PerRegion, Counter>,
    failure: Family<PerRegion, Counter>,
    duration: Family<PerTarget, Histogram, Buckets>,
    last_successful: Family<PerTarget, F64>,
    last_status: Family<PerTarget, F64>,
    interval: Family<PerSchedule, F64>,
    next_run: Family<PerSchedule, F64>,
    paused: Family<PerSchedule, F64>,
    last_run: Family<PerSchedule, F64>,
    last_failure: Family<PerSchedule, F64>,
    deleted: Family<Where, Counter>,
    points: Family<Where, F64>,
    restore_duration: Family<PerTarget, Histogram, Buckets>,
    restore_test: Family<PerRegion, F64>,
    drill_rto: Family<PerDrill, F64>,
    drill_rpo: Family<PerDrill, F64>,
    drill_passed: Family<PerDrill, F64>,
    drill_unverified: Family<PerDrill, F64>,
    stream_gaps: Family<PerStream, Counter>,
    stream_restarts: Family<PerStream, Counter>,
    stream_segments: Family<PerStream, Counter>,
    stream_revision: Family<Where, F64>,
    stream_lag_seconds: Family<Where, F64>,
    stream_lag_revisions: Family<Where, F64>,
}

impl Families {
    fn register(r: &mut Registry) -> Families {
        let f = Families {
            attempt: Family::default(),
            success: Family::default(),
            failure: Family::default(),
            duration: Family::new_with_constructor(velero_buckets),
            last_successful: Family::default(),
            last_status: Family::default(),
            interval: Family::default(),
            next_run: Family::default(),
            paused: Family::default(),
            last_run: Family::default(),
            last_failure: Family::default(),
            deleted: Family::default(),
            points: Family::default(),
            restore_duration: Family::new_with_constructor(velero_buckets),
            restore_test: Family::default(),
            drill_rto: Family::default(),
            drill_rpo: Family::default(),
            drill_passed: Family::default(),
            drill_unverified: Family::default(),
            stream_gaps: Family::default(),
            stream_restarts: Family::default(),
            stream_segments: Family::default(),
            stream_revision: Family::default(),
            stream_lag_seconds: Family::default(),
            stream_lag_revisions: Family::default(),
        };
        f.register_backups(r);
        f.register_streams(r);
        f.register_schedules(r);
        f.register_outcomes(r);
        f
    }

    /// The continuous streams the daemon follows.
    fn register_streams(&self, r: &mut Registry) {
        r.register(
            "drtool_stream_gaps",
            "Times a stream lost its source's history (or its chain broke) and took a new base point.",
            self.stream_gaps.clone(),
        );
        r.register(
            "drtool_stream_restarts",
            "Times a stream followed its source again after a break, or was started again after a failure.",
            self.stream_restarts.clone(),
        );
        r.register(
            "drtool_stream_segments",
            "Segments a stream wrote to its home region.",
            self.stream_segments.clone(),
        );
        r.register(
            "drtool_stream_revision",
            "The newest revision a region holds of the stream without a hole.",
            self.stream_revision.clone(),
        );
        r.register(
            "drtool_stream_lag_seconds",
            "How long ago the region's newest segment was stored, while the source is ahead of it (0: caught up).",
            self.stream_lag_seconds.clone(),
        );
        r.register(
            "drtool_stream_lag_revisions",
            "Revisions the source is ahead of what the region holds.",
            self.stream_lag_revisions.clone(),
        );
    }

    /// What scheduled backups and copies did.
    fn register_backups(&self, r: &mut Registry) {
        // Counters are exposed with `_total` appended.
        r.register(
            "drtool_backup_attempt",
            "Backups and copies attempted by schedules.",
            self.attempt.clone(),
        );
        r.register(
            "drtool_backup_success",
            "Backups and copies that succeeded.",
            self.success.clone(),
        );
        r.register(
            "drtool_backup_failure",
            "Backups and copies that failed.",
            self.failure.clone(),
        );
        r.register(
            "drtool_backup_duration_seconds",
            "How long a scheduled backup took (Velero's buckets).",
            self.duration.clone(),
        );
        r.register("drtool_backup_last_successful_timestamp", "When the schedule last succeeded (Unix seconds), from the state every scheduler shares.", self.last_successful.clone());
    }

    /// Each schedule's state, shared by every scheduler.
    fn register_schedules(&self, r: &mut Registry) {
        r.register(
            "drtool_backup_last_status",
            "1 if the schedule's last run (anyone's) succeeded, 0 if it did not.",
            self.last_status.clone(),
        );
        r.register(
            "drtool_schedule_expected_interval_seconds",
            "The usual time between two runs of the schedule.",
            self.interval.clone(),
        );
        r.register(
            "drtool_schedule_next_run_timestamp",
            "When the schedule runs next (Unix seconds).",
            self.next_run.clone(),
        );
        r.register(
            "drtool_schedule_paused",
            "1 if the schedule is paused.",
            self.paused.clone(),
        );
        r.register(
            "drtool_schedule_last_run_timestamp",
            "When the schedule last ran, here or elsewhere (Unix seconds).",
            self.last_run.clone(),
        );
        r.register(
            "drtool_schedule_last_failure_timestamp",
            "When a run of the schedule last failed, here or elsewhere (Unix seconds).",
            self.last_failure.clone(),
        );
    }

    /// Retention, restore tests and drills.
    fn register_outcomes(&self, r: &mut Registry) {
        r.register(
            "drtool_prune_deleted",
            "Points removed by retention.",
            self.deleted.clone(),
        );
        r.register(
            "drtool_points",
            "Points kept per target and region after the last prune.",
            self.points.clone(),
        );
        r.register(
            "drtool_restore_duration_seconds",
            "How long a restore test took.",
            self.restore_duration.clone(),
        );
        r.register(
            "drtool_restore_test_last_success_timestamp",
            "When a restore test of the copy in this region last passed (Unix seconds; 0: never).",
            self.restore_test.clone(),
        );
        r.register(
            "drtool_drill_rto_seconds",
            "Measured RTO of the drill's last run.",
            self.drill_rto.clone(),
        );
        r.register("drtool_drill_rpo_seconds", "RPO of the drill's last run: the upper bound of what it proved (what the verdict judged).", self.drill_rpo.clone());
        r.register(
            "drtool_drill_last_success_timestamp",
            "When the drill last passed (Unix seconds; 0: never).",
            self.drill_passed.clone(),
        );
        r.register("drtool_drill_reports_unverified", "Reports of the drill that are edited, unsealed or signed by an untrusted key: left out of every other drill metric.", self.drill_unverified.clone());
    }
}

/// What the metrics read the shared schedule state with.
struct Shared {
    engine: Arc<Engine>,
    schedules: Mutex<Vec<Schedule>>,
}

/// The metrics of one daemon.
pub struct Metrics {
    registry: Registry,
    f: Families,
    reports: Option<ReportStore>,
    drills: Mutex<Vec<String>>,
    shared: Option<Shared>,
    /// The streams the daemon follows, with their live counts.
    streams: Mutex<Vec<(String, Arc<StreamCounters>)>>,
}

fn ts(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn per_region(schedule: &str, target: &str, region: &str) -> PerRegion {
    PerRegion {
        schedule: schedule.into(),
        target: target.into(),
        region: region.into(),
    }
}

fn per_target(schedule: &str, target: &str) -> PerTarget {
    PerTarget {
        schedule: schedule.into(),
        target: target.into(),
    }
}

fn per_schedule(schedule: &str) -> PerSchedule {
    PerSchedule {
        schedule: schedule.into(),
    }
}

impl Metrics {
    /// Metrics that also read drill results from `reports`.
    pub fn new(reports: Option<ReportStore>) -> Arc<Metrics> {
        Arc::new(Self::build(reports, None))
    }

    /// Metrics that also read every schedule's shared state from its bucket
    /// at each scrape (`refresh`), with `engine`.
    pub fn shared(reports: Option<ReportStore>, engine: Arc<Engine>) -> Arc<Metrics> {
        Arc::new(Self::build(
            reports,
            Some(Shared {
                engine,
                schedules: Mutex::new(Vec::new()),
            }),
        ))
    }

    fn build(reports: Option<ReportStore>, shared: Option<Shared>) -> Metrics {
        let mut registry = Registry::default();
        let f = Families::register(&mut registry);
        Metrics {
            registry,
            f,
            reports,
            drills: Mutex::new(Vec::new()),
            shared,
            streams: Mutex::new(Vec::new()),
        }
    }

    /// The drills whose series exist from the first scrape.
    pub fn set_drills(&self, names: Vec<String>) {
        for n in &names {
            let _ = self
                .f
                .drill_passed
                .get_or_create(&PerDrill { drill: n.clone() });
        }
        if let Ok(mut d) = self.drills.lock() {
            *d = names;
        }
    }

    /// What a schedule is (its interval, next run, paused state), and its
    /// series at 0: counters per target and region, restore tests when it
    /// makes them.
    pub fn describe_schedule(&self, s: &Schedule, next: Option<DateTime<Utc>>) {
        let l = per_schedule(&s.name);
        if let Some(i) = s.cron.interval(Utc::now(), s.timezone) {
            let _ = self.f.interval.get_or_create(&l).set(i.as_secs_f64());
        }
        if let Some(n) = next {
            let _ = self.f.next_run.get_or_create(&l).set(ts(n));
        }
        let _ = self
            .f
            .paused
            .get_or_create(&l)
            .set(f64::from(u8::from(s.paused)));
        if let Some(shared) = &self.shared {
            let regions_of = |t: &str| -> Vec<String> {
                shared
                    .engine
                    .config()
                    .target(t)
                    .map(|t| {
                        let mut r = vec![t.home.clone()];
                        r.extend(s.copy_to.clone().unwrap_or_else(|| t.copy_to.clone()));
                        r
                    })
                    .unwrap_or_default()
            };
            for t in &s.targets {
                for r in regions_of(t) {
                    let l = per_region(&s.name, t, &r);
                    let _ = self.f.attempt.get_or_create(&l);
                    let _ = self.f.success.get_or_create(&l);
                    let _ = self.f.failure.get_or_create(&l);
                    if s.restore_test_every.is_some() {
                        let _ = self.f.restore_test.get_or_create(&l);
                    }
                }
            }
            if let Ok(mut all) = shared.schedules.lock() {
                all.retain(|o| o.name != s.name);
                all.push(s.clone());
            }
        }
    }

    /// Forgets schedules no longer configured (after a reload).
    pub fn keep_only(&self, names: &[String]) {
        if let Some(shared) = &self.shared
            && let Ok(mut all) = shared.schedules.lock()
        {
            all.retain(|s| names.contains(&s.name));
        }
    }

    /// What a run did here: backups, copies, prunes and restore tests.
    pub fn record_run(&self, run: &ScheduleRun) {
        if run.skipped.is_some() {
            return;
        }
        let schedule = run.schedule.as_str();
        for k in &run.kept {
            self.f
                .points
                .get_or_create(&Where {
                    target: k.target.clone(),
                    region: k.region.clone(),
                })
                .set(k.points as f64);
        }
        let finished = ts(run.started_at) + run.duration_ms as f64 / 1000.0;
        for i in &run.report.items {
            let region = per_region(schedule, &i.target, &i.region);
            let target = per_target(schedule, &i.target);
            let ok = i.outcome == Outcome::Ok || i.outcome == Outcome::Warning;
            match i.operation {
                Operation::Backup | Operation::Copy => {
                    let _ = self.f.attempt.get_or_create(&region).inc();
                    if ok {
                        let _ = self.f.success.get_or_create(&region).inc();
                    } else {
                        let _ = self.f.failure.get_or_create(&region).inc();
                    }
                    if i.operation == Operation::Backup {
                        if ok {
                            self.f
                                .duration
                                .get_or_create(&target)
                                .observe(i.duration_ms as f64 / 1000.0);
                            let _ = self.f.last_successful.get_or_create(&target).set(finished);
                        }
                        self.f
                            .last_status
                            .get_or_create(&target)
                            .set(f64::from(u8::from(ok)));
                    }
                }
                Operation::Delete if i.outcome == Outcome::Ok => {
                    self.f
                        .deleted
                        .get_or_create(&Where {
                            target: i.target.clone(),
                            region: i.region.clone(),
                        })
                        .inc();
                }
                Operation::RestoreTest if i.outcome == Outcome::Ok => {
                    self.f
                        .restore_duration
                        .get_or_create(&target)
                        .observe(i.duration_ms as f64 / 1000.0);
                    let _ = self.f.restore_test.get_or_create(&region).set(finished);
                }
                _ => {}
            }
        }
    }

    /// A run that failed before it had a report (no store, a lock error).
    pub fn record_failure(&self, schedule: &Schedule) {
        for t in &schedule.targets {
            self.f
                .last_status
                .get_or_create(&per_target(&schedule.name, t))
                .set(0.0);
        }
        self.f
            .last_failure
            .get_or_create(&per_schedule(&schedule.name))
            .set(ts(Utc::now()));
    }

    /// Reads what a scrape shows that is not this daemon's own: every
    /// schedule's shared state (each within 5 s) and the drill reports.
    /// A stream whose counts and state every scrape shows.
    pub fn watch_stream(&self, target: &str, counters: Arc<StreamCounters>) {
        let l = PerStream {
            target: target.to_string(),
        };
        let _ = self.f.stream_gaps.get_or_create(&l);
        let _ = self.f.stream_restarts.get_or_create(&l);
        let _ = self.f.stream_segments.get_or_create(&l);
        if let Ok(mut s) = self.streams.lock() {
            s.push((target.to_string(), counters));
        }
    }

    /// Brings the stream series up to date: counters from the live counts,
    /// gauges from each region's store and the source.
    async fn stream_values(&self, engine: &Engine) {
        let watched = self.streams.lock().map(|s| s.clone()).unwrap_or_default();
        for (target, counters) in watched {
            let l = PerStream {
                target: target.clone(),
            };
            for (family, now) in [
                (&self.f.stream_gaps, &counters.gaps),
                (&self.f.stream_restarts, &counters.restarts),
                (&self.f.stream_segments, &counters.segments),
            ] {
                let c = family.get_or_create(&l);
                let now = now.load(std::sync::atomic::Ordering::Relaxed);
                if now > c.get() {
                    c.inc_by(now - c.get());
                }
            }
            let status =
                tokio::time::timeout(Duration::from_secs(5), engine.stream_status(Some(&target)))
                    .await;
            let Ok(Ok(all)) = status else { continue };
            for r in all.iter().flat_map(|s| s.regions.iter()) {
                let w = Where {
                    target: target.clone(),
                    region: r.region.clone(),
                };
                if let Some(v) = r.reaches {
                    let _ = self.f.stream_revision.get_or_create(&w).set(v as f64);
                }
                if let Some(v) = r.lag_seconds.filter(|v| v.is_finite()) {
                    let _ = self.f.stream_lag_seconds.get_or_create(&w).set(v);
                }
                if let Some(v) = r.lag_revisions {
                    let _ = self.f.stream_lag_revisions.get_or_create(&w).set(v as f64);
                }
            }
        }
    }

    pub async fn refresh(&self) {
        if let Some(shared) = &self.shared {
            self.stream_values(&shared.engine).await;
            let schedules = shared
                .schedules
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default();
            let reads = schedules.iter().map(|s| async move {
                let state = match home_region(&shared.engine, s) {
                    Ok(region) => tokio::time::timeout(
                        Duration::from_secs(5),
                        shared
                            .engine
                            .schedule_state::<ScheduleState>(&region, &s.name),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten(),
                    Err(_) => None,
                };
                (s, state)
            });
            for (s, state) in futures::future::join_all(reads).await {
                if let Some(state) = state {
                    self.shared_state(s, &state);
                }
            }
        }
        self.drill_values();
    }

    fn shared_state(&self, s: &Schedule, state: &ScheduleState) {
        let l = per_schedule(&s.name);
        if let Some(t) = state.last_run {
            let _ = self.f.last_run.get_or_create(&l).set(ts(t));
        }
        if let Some(t) = state.last_failure {
            let _ = self.f.last_failure.get_or_create(&l).set(ts(t));
        }
        for target in &s.targets {
            let t = per_target(&s.name, target);
            if let Some(at) = state.last_success {
                let _ = self.f.last_successful.get_or_create(&t).set(ts(at));
            }
            if let Some(v) = state.last_outcome {
                self.f
                    .last_status
                    .get_or_create(&t)
                    .set(f64::from(u8::from(v == Verdict::Ok)));
            }
        }
    }

    fn drill_values(&self) {
        let Some(store) = &self.reports else {
            return;
        };
        let Ok(runs) = store.list(None) else {
            return;
        };
        let mut last: BTreeMap<&str, &crate::report::RunEntry> = BTreeMap::new();
        let mut passed: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
        let mut untrusted: BTreeMap<&str, u64> = BTreeMap::new();
        // A report that cannot be verified is counted, never exported as a measure.
        for r in &runs {
            if !r.trusted {
                *untrusted.entry(&r.drill).or_default() += 1;
                continue;
            }
            last.insert(&r.drill, r);
            if r.verdict == DrillVerdict::Pass {
                passed.insert(&r.drill, r.started_at);
            }
        }
        self.f.drill_unverified.clear();
        for (drill, n) in untrusted {
            self.f
                .drill_unverified
                .get_or_create(&PerDrill {
                    drill: drill.into(),
                })
                .set(n as f64);
        }
        let configured = self.drills.lock().map(|d| d.clone()).unwrap_or_default();
        for d in configured
            .iter()
            .map(String::as_str)
            .chain(last.keys().copied())
        {
            let l = PerDrill { drill: d.into() };
            self.f
                .drill_passed
                .get_or_create(&l)
                .set(passed.get(d).map_or(0.0, |t| ts(*t)));
        }
        for (drill, r) in last {
            let l = PerDrill {
                drill: drill.into(),
            };
            if let Some(ms) = r.rto_ms {
                let _ = self.f.drill_rto.get_or_create(&l).set(ms as f64 / 1000.0);
            }
            if let Some(ms) = r.rpo_ms {
                let _ = self.f.drill_rpo.get_or_create(&l).set(ms as f64 / 1000.0);
            }
        }
    }

    /// The OpenMetrics text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` (and `/healthz`) with hyper on `addr` until `stop`;
/// returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.cancelled() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(req, &metrics).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .serve_connection(io, service);
                let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
            });
        }
    });
    Ok(bound)
}

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    metrics: &Metrics,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let text = "text/plain; charset=utf-8";
    let (status, kind, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => {
            metrics.refresh().await;
            (hyper::StatusCode::OK, CONTENT_TYPE, metrics.render())
        }
        (&hyper::Method::GET, "/" | "/healthz") => (
            hyper::StatusCode::OK,
            text,
            "drtool scheduler: metrics at /metrics\n".to_string(),
        ),
        (&hyper::Method::GET, _) => (
            hyper::StatusCode::NOT_FOUND,
            text,
            "not found: try /metrics\n".to_string(),
        ),
        _ => (
            hyper::StatusCode::METHOD_NOT_ALLOWED,
            text,
            "only GET\n".to_string(),
        ),
    };
    let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ItemReport, RunReport};

    fn run() -> ScheduleRun {
        let mut report = RunReport::default();
        let mut b = ItemReport::new(Operation::Backup, "kv", "us-east-1", Some("p1".into()));
        b.duration_ms = 12_500;
        report.push(b);
        report.push(
            ItemReport::new(Operation::Copy, "kv", "us-west-2", Some("p1".into()))
                .failed(&crate::error::Error::failed("store down")),
        );
        report.push(ItemReport::new(
            Operation::Delete,
            "kv",
            "us-east-1",
            Some("p0".into()),
        ));
        ScheduleRun {
            schedule: "hourly".into(),
            started_at: DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap_or_default(),
            duration_ms: 20_000,
            verdict: Verdict::Partial,
            report,
            pruned: 1,
            kept: vec![super::super::run::KeptPoints {
                target: "kv".into(),
                region: "us-east-1".into(),
                points: 7,
            }],
            skipped: None,
            previous: Default::default(),
        }
    }

    #[test]
    fn a_run_renders_in_the_exposition_format_with_velero_buckets() {
        let m = Metrics::new(None);
        m.record_run(&run());
        let text = m.render();
        for want in [
            "# TYPE drtool_backup_attempt counter",
            r#"drtool_backup_attempt_total{schedule="hourly",target="kv",region="us-east-1"} 1"#,
            r#"drtool_backup_failure_total{schedule="hourly",target="kv",region="us-west-2"} 1"#,
            r#"drtool_backup_duration_seconds_bucket{le="60.0",schedule="hourly",target="kv"} 1"#,
            r#"drtool_backup_duration_seconds_bucket{le="14400.0",schedule="hourly",target="kv"} 1"#,
            r#"drtool_backup_duration_seconds_count{schedule="hourly",target="kv"} 1"#,
            r#"drtool_backup_last_successful_timestamp{schedule="hourly",target="kv"} 1795000020.0"#,
            r#"drtool_backup_last_status{schedule="hourly",target="kv"} 1.0"#,
            r#"drtool_prune_deleted_total{target="kv",region="us-east-1"} 1"#,
            r#"drtool_points{target="kv",region="us-east-1"} 7.0"#,
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        // Velero's buckets exactly: no 10 s bucket.
        assert!(!text.contains(r#"le="10.0""#), "{text}");
    }

    #[test]
    fn configured_drills_have_a_series_before_they_ever_pass() {
        let m = Metrics::new(None);
        m.set_drills(vec!["etcd-region-failover".into()]);
        let text = m.render();
        assert!(
            text.contains(
                r#"drtool_drill_last_success_timestamp{drill="etcd-region-failover"} 0.0"#
            ),
            "{text}"
        );
    }

    #[test]
    fn the_shared_state_decides_the_status_every_daemon_exports() {
        let m = Metrics::new(None);
        // This daemon's own last run went well...
        m.record_run(&run());
        // ...but the bucket says the schedule's last run (another daemon's) failed.
        let schedule: Schedule = crate::schedule::spec::parse(
            "name = \"hourly\"\ncron = \"@hourly\"\ntargets = [\"kv\"]\n[retention]\nkeep_last = 3\n",
            std::path::Path::new("s.toml"),
            &crate::source::parse_config(
                "[regions.r]\nstore = \"file:///tmp/x\"\n[targets.kv]\nkind = \"etcd\"\nmode = \"keys\"\nhome = \"r\"\n[targets.kv.regions.r]\nendpoints = [\"http://127.0.0.1:1\"]\n",
                std::path::Path::new("drtool.toml"),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let failed_at = DateTime::<Utc>::from_timestamp(1_795_003_600, 0).unwrap_or_default();
        m.shared_state(
            &schedule,
            &ScheduleState {
                last_run: Some(failed_at),
                last_outcome: Some(Verdict::Partial),
                last_failure: Some(failed_at),
                ..ScheduleState::default()
            },
        );
        let text = m.render();
        assert!(
            text.contains(r#"drtool_backup_last_status{schedule="hourly",target="kv"} 0.0"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"drtool_schedule_last_failure_timestamp{schedule="hourly"} 1795003600.0"#
            ),
            "{text}"
        );
    }
}
