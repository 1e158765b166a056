//! Times rendering the report of a large drill: `cargo run --release
//! --example report_render -- [STEPS] [SAMPLES]` (default 100 steps, 10 000
//! probe results). Prints the time of each rendering; run under
//! `/usr/bin/time -v` for peak memory (lab/bench-drill does).

use std::time::Instant;

use chrono::{Duration, Utc};
use drtool::drill::measure::{CanaryTally, DrillVerdict, Marker, RtoBreakdown, Sample};
use drtool::drill::spec::Phase;
use drtool::report::{
    CleanupRecord, DrillReport, FaultRecord, Objectives, Overhead, ProbeSummary, RENDERER,
    REPORT_VERSION, RestoreRecord, Retrospective, RpoResult, SteadyState, StepOutcome, StepRecord,
    TimelineEntry, html, junit, markdown,
};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let steps = args.first().copied().unwrap_or(100);
    let samples = args.get(1).copied().unwrap_or(10_000);
    let t0 = Utc::now();
    let probes = 10;
    let report = DrillReport {
        report_version: REPORT_VERSION,
        renderer: RENDERER,
        run_id: "20261201t000000z-00000000".into(),
        drill: "big".into(),
        description: None,
        hypothesis: "a big drill renders fast".into(),
        file: "drills/big.yaml".into(),
        drtool_version: env!("CARGO_PKG_VERSION").into(),
        ran_by: None,
        started_at: t0,
        finished_at: t0 + Duration::seconds(3600),
        duration_ms: 3_600_000,
        verdict: DrillVerdict::Pass,
        summary: vec!["Verdict: PASS.".into()],
        objectives: Objectives {
            rto_ms: 600_000,
            rpo_ms: 60_000,
        },
        rto: RtoBreakdown {
            rto_ms: Some(300_000),
            detection_ms: Some(1000),
            decision_ms: 0,
            restore_ms: 200_000,
            verification_ms: Some(99_000),
            ..RtoBreakdown::default()
        },
        rpo: RpoResult {
            measured_ms: Some(5000),
            nominal_ms: Some(6000),
            lower_ms: Some(4900),
            upper_ms: Some(6000),
            resolution_ms: Some(100),
            bound: "canaries and the restored point".into(),
            lost_markers: 25,
            canaries: vec![CanaryTally {
                canary: "etcd:big".into(),
                written: 1000,
                newest_written: Some(Marker { seq: 999, at: t0 }),
                newest_surviving: Some(Marker { seq: 974, at: t0 }),
                oldest_lost: Some(Marker { seq: 975, at: t0 }),
                lost: 25,
                rpo_ms: Some(5000),
                lost_since_ms: Some(4900),
                interval_ms: 100,
            }],
        },
        steady_state: SteadyState {
            ok: true,
            detail: "ok".into(),
        },
        steady_state_after: None,
        fault: Some(FaultRecord {
            at_ms: 60_000,
            at: t0,
            description: "lose region us-east-1".into(),
            injected_ms: Some(60_010),
        }),
        steps: (0..steps)
            .map(|i| StepRecord {
                name: format!("step-{i}"),
                kind: "exec".into(),
                group: None,
                start_ms: i as u64 * 30_000,
                end_ms: i as u64 * 30_000 + 20_000,
                outcome: StepOutcome::Ok,
                message: format!(
                    "step {i} did what it had to do, with a message of ordinary length"
                ),
            })
            .collect(),
        probes: (0..probes)
            .map(|p| ProbeSummary {
                probe: format!("probe-{p}"),
                phase: Phase::After,
                kind: "http".into(),
                check: format!("GET http://service-{p}/health"),
                success_threshold: 3,
                interval_ms: 100,
                executed: true,
                runs: (samples / probes) as u64,
                passes: (samples / probes) as u64 / 2,
                failures: (samples / probes) as u64 / 2,
                met_at_ms: Some(300_000),
                availability: None,
                last_detail: Some("200".into()),
            })
            .collect(),
        samples: (0..samples)
            .map(|i| Sample {
                probe: format!("probe-{}", i % probes),
                phase: Phase::After,
                at_ms: 60_000 + i as u64 * 300,
                ok: i % 3 != 0,
                took_ms: 2,
                detail: "GET http://service/health: 200".into(),
            })
            .collect(),
        restores: vec![RestoreRecord {
            step: "step-3".into(),
            target: "big".into(),
            region: "us-west-2".into(),
            point: None,
            consistent_at: Some(t0),
            stream_to: None,
            plan: vec!["create 1000".into()],
            result: None,
            completed: true,
        }],
        cleanup: vec![CleanupRecord {
            what: "canary".into(),
            ok: true,
            message: "removed".into(),
            left_behind: false,
            canary: None,
        }],
        timeline: (0..steps * 4)
            .map(|i| TimelineEntry {
                at_ms: i as u64 * 7_500,
                kind: "job".into(),
                what: format!("event {i}"),
            })
            .collect(),
        errors: vec![],
        overhead: Overhead {
            between_steps_ms: 10,
            probe_lateness_ms: 1,
            resolution_ms: 100,
        },
        notes: vec![],
        retrospective: Retrospective::default(),
        uploaded_to: vec![],
        seal: None,
        signature: None,
    };
    let time = |name: &str, f: &dyn Fn() -> usize| {
        let start = Instant::now();
        let bytes = f();
        println!(
            "{name:<14} {:>8.1} ms  {bytes:>9} bytes",
            start.elapsed().as_secs_f64() * 1000.0
        );
        start.elapsed()
    };
    println!("report of {steps} steps and {samples} probe results");
    let total = time("report.json", &|| {
        serde_json::to_vec_pretty(&report)
            .map(|v| v.len())
            .unwrap_or(0)
    }) + time("report.md", &|| markdown::render(&report).len())
        + time("report.html", &|| html::render(&report).len())
        + time("junit.xml", &|| junit::render(&report).len())
        + time("hash + chain", &|| {
            report.content_hash().len() + report.chain_head().len()
        });
    println!(
        "all renderings  {:>8.1} ms (target < 1000 ms)",
        total.as_secs_f64() * 1000.0
    );
}
