//! Prometheus metrics of the scheduler, in the text exposition format, and
//! the small HTTP server `--metrics-addr` starts. Names follow Velero's where
//! Velero has one (`velero_backup_attempt_total` -> `drtool_backup_attempt_total`,
//! ...), so dashboards and alert rules carry over; restore-test and drill
//! metrics are drtool's own.
//!
//! Runs update the values ([`Metrics::record_run`]); drill metrics are read
//! from the reports folder when scraped, so a drill run from the CLI shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::run::ScheduleRun;
use super::spec::Schedule;
use crate::drill::measure::DrillVerdict;
use crate::engine::{Operation, Outcome};
use crate::report::ReportStore;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric: name, type, help. Rendered in this order.
const METRICS: &[(&str, Type, &str)] = &[
    (
        "drtool_backup_attempt_total",
        Type::Counter,
        "Backups and copies attempted by schedules.",
    ),
    (
        "drtool_backup_success_total",
        Type::Counter,
        "Backups and copies that succeeded.",
    ),
    (
        "drtool_backup_failure_total",
        Type::Counter,
        "Backups and copies that failed.",
    ),
    (
        "drtool_backup_duration_seconds",
        Type::Histogram,
        "How long a scheduled backup took.",
    ),
    (
        "drtool_backup_last_successful_timestamp",
        Type::Gauge,
        "When the last successful scheduled backup finished (Unix seconds).",
    ),
    (
        "drtool_backup_last_status",
        Type::Gauge,
        "1 if the last scheduled backup succeeded, 0 if it failed.",
    ),
    (
        "drtool_schedule_expected_interval_seconds",
        Type::Gauge,
        "The time between two runs of the schedule (from its cron line).",
    ),
    (
        "drtool_schedule_next_run_timestamp",
        Type::Gauge,
        "When the schedule runs next (Unix seconds).",
    ),
    (
        "drtool_schedule_paused",
        Type::Gauge,
        "1 if the schedule is paused.",
    ),
    (
        "drtool_prune_deleted_total",
        Type::Counter,
        "Points prune removed.",
    ),
    (
        "drtool_points",
        Type::Gauge,
        "Recovery points kept after the last prune.",
    ),
    (
        "drtool_restore_duration_seconds",
        Type::Histogram,
        "How long a restore test's restore took.",
    ),
    (
        "drtool_restore_test_last_success_timestamp",
        Type::Gauge,
        "When the last passing restore test finished (Unix seconds).",
    ),
    (
        "drtool_drill_rto_seconds",
        Type::Gauge,
        "Measured RTO of the drill's last run.",
    ),
    (
        "drtool_drill_rpo_seconds",
        Type::Gauge,
        "RPO of the drill's last run: the upper bound of what it proved (what the verdict judged).",
    ),
    (
        "drtool_drill_reports_unverified",
        Type::Gauge,
        "Reports of the drill that are edited, unsealed or signed by an untrusted key: left out of every other drill metric.",
    ),
    (
        "drtool_drill_last_success_timestamp",
        Type::Gauge,
        "When the drill last passed (Unix seconds).",
    ),
];

/// Velero's backup duration buckets (seconds).
const BUCKETS: &[f64] = &[10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

#[derive(Default)]
struct Values {
    scalars: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// The metrics of one daemon.
#[derive(Default)]
pub struct Metrics {
    values: Mutex<Values>,
    reports: Option<ReportStore>,
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

fn ts(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

impl Metrics {
    /// Metrics that also read drill results from `reports`.
    pub fn new(reports: Option<ReportStore>) -> Arc<Metrics> {
        Arc::new(Metrics {
            values: Mutex::default(),
            reports,
        })
    }

    fn with(&self, f: impl FnOnce(&mut Values)) {
        if let Ok(mut v) = self.values.lock() {
            f(&mut v);
        }
    }

    fn set(v: &mut Values, name: &'static str, l: Labels, value: f64) {
        v.scalars.insert((name, l), value);
    }

    fn add(v: &mut Values, name: &'static str, l: Labels, by: f64) {
        *v.scalars.entry((name, l)).or_default() += by;
    }

    /// What a schedule is: its interval, next run, paused state.
    pub fn describe_schedule(&self, s: &Schedule, next: Option<DateTime<Utc>>) {
        self.with(|v| {
            let l = labels(&[("schedule", &s.name)]);
            if let Some(i) = s.cron.interval(Utc::now(), s.timezone) {
                Self::set(
                    v,
                    "drtool_schedule_expected_interval_seconds",
                    l.clone(),
                    i.as_secs_f64(),
                );
            }
            if let Some(n) = next {
                Self::set(v, "drtool_schedule_next_run_timestamp", l.clone(), ts(n));
            }
            Self::set(
                v,
                "drtool_schedule_paused",
                l,
                f64::from(u8::from(s.paused)),
            );
        });
    }

    /// What a run did: backups, copies, prunes and restore tests.
    pub fn record_run(&self, run: &ScheduleRun) {
        if run.skipped.is_some() {
            return;
        }
        let schedule = run.schedule.as_str();
        self.with(|v| {
            for k in &run.kept {
                let l = labels(&[("target", &k.target), ("region", &k.region)]);
                Self::set(v, "drtool_points", l, k.points as f64);
            }
            for i in &run.report.items {
                let per_region = labels(&[
                    ("schedule", schedule),
                    ("target", &i.target),
                    ("region", &i.region),
                ]);
                let per_target = labels(&[("schedule", schedule), ("target", &i.target)]);
                let ok = i.outcome == Outcome::Ok || i.outcome == Outcome::Warning;
                let finished = ts(run.started_at) + run.duration_ms as f64 / 1000.0;
                match i.operation {
                    Operation::Backup | Operation::Copy => {
                        Self::add(v, "drtool_backup_attempt_total", per_region.clone(), 1.0);
                        let outcome = if ok {
                            "drtool_backup_success_total"
                        } else {
                            "drtool_backup_failure_total"
                        };
                        Self::add(v, outcome, per_region, 1.0);
                        if i.operation == Operation::Backup {
                            if ok {
                                v.histograms
                                    .entry(("drtool_backup_duration_seconds", per_target.clone()))
                                    .or_default()
                                    .observe(i.duration_ms as f64 / 1000.0);
                                Self::set(
                                    v,
                                    "drtool_backup_last_successful_timestamp",
                                    per_target.clone(),
                                    finished,
                                );
                            }
                            Self::set(
                                v,
                                "drtool_backup_last_status",
                                per_target,
                                f64::from(u8::from(ok)),
                            );
                        }
                    }
                    Operation::Delete if i.outcome == Outcome::Ok => {
                        let l = labels(&[("target", &i.target), ("region", &i.region)]);
                        Self::add(v, "drtool_prune_deleted_total", l, 1.0);
                    }
                    Operation::RestoreTest if i.outcome == Outcome::Ok => {
                        v.histograms
                            .entry(("drtool_restore_duration_seconds", per_target.clone()))
                            .or_default()
                            .observe(i.duration_ms as f64 / 1000.0);
                        Self::set(
                            v,
                            "drtool_restore_test_last_success_timestamp",
                            per_region,
                            finished,
                        );
                    }
                    _ => {}
                }
            }
        });
    }

    /// A run that failed before it had a report (no store, a lock error).
    pub fn record_failure(&self, schedule: &Schedule) {
        self.with(|v| {
            for t in &schedule.targets {
                let l = labels(&[("schedule", &schedule.name), ("target", t)]);
                Self::set(v, "drtool_backup_last_status", l, 0.0);
            }
        });
    }

    fn drill_values(&self) -> Vec<(&'static str, Labels, f64)> {
        let Some(store) = &self.reports else {
            return Vec::new();
        };
        let Ok(runs) = store.list(None) else {
            return Vec::new();
        };
        let mut out = Vec::new();
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
        for (drill, n) in untrusted {
            out.push((
                "drtool_drill_reports_unverified",
                labels(&[("drill", drill)]),
                n as f64,
            ));
        }
        for (drill, r) in last {
            let l = labels(&[("drill", drill)]);
            if let Some(ms) = r.rto_ms {
                out.push(("drtool_drill_rto_seconds", l.clone(), ms as f64 / 1000.0));
            }
            if let Some(ms) = r.rpo_ms {
                out.push(("drtool_drill_rpo_seconds", l.clone(), ms as f64 / 1000.0));
            }
            if let Some(at) = passed.get(drill) {
                out.push(("drtool_drill_last_success_timestamp", l, ts(*at)));
            }
        }
        out
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let drills = self.drill_values();
        let Ok(v) = self.values.lock() else {
            return String::new();
        };
        let mut out = String::new();
        for (name, kind, help) in METRICS {
            let _ = writeln!(out, "# HELP {name} {help}");
            let t = match kind {
                Type::Counter => "counter",
                Type::Gauge => "gauge",
                Type::Histogram => "histogram",
            };
            let _ = writeln!(out, "# TYPE {name} {t}");
            if *kind == Type::Histogram {
                for ((_, l), h) in v.histograms.iter().filter(|((n, _), _)| n == name) {
                    for (i, b) in BUCKETS.iter().enumerate() {
                        let mut with = l.clone();
                        with.push(("le", b.to_string()));
                        let _ = writeln!(out, "{name}_bucket{} {}", fmt_labels(&with), h.counts[i]);
                    }
                    let mut inf = l.clone();
                    inf.push(("le", "+Inf".into()));
                    let _ = writeln!(out, "{name}_bucket{} {}", fmt_labels(&inf), h.count);
                    let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(l), h.sum);
                    let _ = writeln!(out, "{name}_count{} {}", fmt_labels(l), h.count);
                }
                continue;
            }
            for ((_, l), value) in v.scalars.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{name}{} {value}", fmt_labels(l));
            }
            for (_, l, value) in drills.iter().filter(|(n, _, _)| n == name) {
                let _ = writeln!(out, "{name}{} {value}", fmt_labels(l));
            }
        }
        out
    }
}

fn fmt_labels(l: &Labels) -> String {
    if l.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Serves `GET /metrics` on `addr` until `stop`; returns the bound address
/// (port 0 picks one).
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
                let _ = answer(stream, &metrics).await;
            });
        }
    });
    Ok(bound)
}

async fn answer(mut stream: tokio::net::TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    // The request line is all we need; a slow or huge request is dropped.
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, kind, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        ("GET", "/") | ("GET", "/healthz") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "drtool scheduler: metrics at /metrics\n".to_string(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ItemReport, RunReport, Verdict};

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
    fn a_run_renders_in_the_exposition_format() {
        let m = Metrics::new(None);
        m.record_run(&run());
        let text = m.render();
        for want in [
            "# TYPE drtool_backup_attempt_total counter",
            r#"drtool_backup_attempt_total{schedule="hourly",target="kv",region="us-east-1"} 1"#,
            r#"drtool_backup_failure_total{schedule="hourly",target="kv",region="us-west-2"} 1"#,
            r#"drtool_backup_duration_seconds_bucket{schedule="hourly",target="kv",le="60"} 1"#,
            r#"drtool_backup_duration_seconds_bucket{schedule="hourly",target="kv",le="10"} 0"#,
            r#"drtool_backup_duration_seconds_count{schedule="hourly",target="kv"} 1"#,
            r#"drtool_backup_last_successful_timestamp{schedule="hourly",target="kv"} 1795000020"#,
            r#"drtool_backup_last_status{schedule="hourly",target="kv"} 1"#,
            r#"drtool_prune_deleted_total{target="kv",region="us-east-1"} 1"#,
            r#"drtool_points{target="kv",region="us-east-1"} 7"#,
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(fmt_labels(&labels(&[("a", "x\"y\\z")])), r#"{a="x\"y\\z"}"#);
    }
}
