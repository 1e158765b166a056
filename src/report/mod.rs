//! Drill reports: `report.json` is the source of truth (versioned, described
//! by `docs/report.schema.json`); `report.md`, `report.html` and `junit.xml`
//! are rendered from it and only from it. Reports live in
//! `reports/<drill>/<run-id>/` and in the regions' stores under `drills/`.
//!
//! This module renders and files reports; it knows nothing of how a drill
//! runs (that is `drill/`) or of terminals.

pub mod facts;
pub mod html;
pub mod integrity;
pub mod junit;
pub mod markdown;
pub mod store;
pub mod v1;
mod view;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
pub use facts::DrillVerdict;
use facts::{CanaryTally, Phase, RtoBreakdown, Sample};

pub use store::{ReportStore, RunEntry};

/// The version of `report.json`; bumped on any incompatible change.
pub const REPORT_VERSION: u32 = 1;

/// The renderer of `report.md`, `report.html` and `junit.xml`, bumped
/// whenever the bytes it writes change (the snapshots of `html.rs`,
/// `markdown.rs` and `junit.rs` fail first; askama and quick-junit are pinned
/// for that reason): `report verify` compares a report's pages with what the
/// renderer that wrote them renders. 1 wrote them with `write!` and hand
/// escaping and is kept frozen in `v1`; 2 uses templates and quick-junit.
pub const RENDERER: u32 = 2;

/// Reports written before the renderer was recorded.
fn first_renderer() -> u32 {
    1
}

fn is_first_renderer(v: &u32) -> bool {
    *v == 1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillReport {
    pub report_version: u32,
    /// The renderer that wrote its pages (see [`RENDERER`]). Left out of
    /// renderer 1's reports, so their hashes stay what they were signed as;
    /// covered by the seal, so it cannot be set back to skip the comparison.
    #[serde(default = "first_renderer", skip_serializing_if = "is_first_renderer")]
    pub renderer: u32,
    pub run_id: String,
    pub drill: String,
    pub description: Option<String>,
    pub hypothesis: String,
    /// The drill file the run came from.
    pub file: String,
    pub drtool_version: String,
    /// Who ran the drill, where, with which config.
    #[serde(default)]
    pub ran_by: Option<RanBy>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub verdict: DrillVerdict,
    /// The opening paragraph, one sentence per line, in plain language.
    pub summary: Vec<String>,
    pub objectives: Objectives,
    pub rto: RtoBreakdown,
    pub rpo: RpoResult,
    pub steady_state: SteadyState,
    /// The steady state re-checked after recovery, where the drill left the
    /// service (none: the drill stopped before it could be).
    #[serde(default)]
    pub steady_state_after: Option<SteadyState>,
    pub fault: Option<FaultRecord>,
    pub steps: Vec<StepRecord>,
    pub probes: Vec<ProbeSummary>,
    /// Every probe result, in time order.
    pub samples: Vec<Sample>,
    pub restores: Vec<RestoreRecord>,
    pub cleanup: Vec<CleanupRecord>,
    pub timeline: Vec<TimelineEntry>,
    pub errors: Vec<String>,
    pub overhead: Overhead,
    #[serde(default)]
    pub notes: Vec<Note>,
    #[serde(default)]
    pub retrospective: Retrospective,
    #[serde(default)]
    pub uploaded_to: Vec<String>,
    /// The hashes that make any later edit visible (set when the report is
    /// filed, signed or not).
    #[serde(default)]
    pub seal: Option<ReportSeal>,
    #[serde(default)]
    pub signature: Option<ReportSignature>,
}

/// Who ran a drill: what an auditor asks first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RanBy {
    /// The operating-system user.
    pub user: String,
    pub host: String,
    /// The config file the drill ran with, and the sha256 of its bytes.
    pub config: String,
    pub config_sha256: Option<String>,
    /// How it was started: `drill run`, the dashboard, the daemon.
    pub via: String,
}

impl RanBy {
    /// This process, with `config` (its path) and how it was started.
    pub fn here(config: &std::path::Path, via: &str) -> RanBy {
        RanBy {
            user: current_user(),
            host: current_host(),
            config: std::path::absolute(config)
                .unwrap_or_else(|_| config.to_path_buf())
                .display()
                .to_string(),
            config_sha256: std::fs::read(config)
                .ok()
                .map(|b| hex::encode(Sha256::digest(&b))),
            via: via.to_string(),
        }
    }
}

/// The user running drtool: $USER, else $LOGNAME, else the name
/// /etc/passwd gives the process's uid, else the uid.
pub fn current_user() -> String {
    if let Some(u) = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
    {
        return u;
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_string))
        });
    let Some(uid) = uid else {
        return "unknown".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// This machine's name.
pub fn current_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The report's own hashes: the head of the timeline's hash chain and the
/// sha256 of everything measured. A signature signs both; without one they
/// still make an edit by someone who did not recompute them visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSeal {
    pub chain_head: String,
    pub content_sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    pub rto_ms: u64,
    pub rpo_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RpoResult {
    /// From canaries: the fault's time minus the newest surviving marker's
    /// (none when no marker survived).
    pub measured_ms: Option<u64>,
    /// The fault's time minus the oldest restored point's consistency time.
    pub nominal_ms: Option<u64>,
    /// What the canaries prove was lost (the oldest lost marker's age at the
    /// fault; 0 when none was lost).
    #[serde(default)]
    pub lower_ms: Option<u64>,
    /// What nothing rules out: the larger of `measured_ms` and `nominal_ms`.
    /// The verdict judges this one.
    #[serde(default)]
    pub upper_ms: Option<u64>,
    /// The canary bounds' resolution (the coarsest canary interval).
    #[serde(default)]
    pub resolution_ms: Option<u64>,
    /// How the interval was bounded, in words.
    #[serde(default)]
    pub bound: String,
    /// Acknowledged canary markers that did not survive.
    pub lost_markers: u64,
    pub canaries: Vec<CanaryTally>,
}

impl RpoResult {
    /// Writes were proven lost but nothing bounds how many: the objective
    /// cannot have been met.
    pub fn unbounded(&self) -> bool {
        self.upper_ms.is_none() && self.lower_ms.is_some()
    }

    /// The RPO the verdict and the metrics use: the upper bound.
    pub fn judged_ms(&self) -> Option<u64> {
        self.upper_ms
    }

    /// `between 1.8s and 2.0s`, `at least 2.0s (unbounded)`, `at most 12.1s`.
    pub fn interval_text(&self) -> String {
        match (self.lower_ms, self.upper_ms) {
            (Some(l), Some(u)) if l == u => human_ms(u),
            (Some(l), Some(u)) => format!("{}-{}", human_ms(l), human_ms(u)),
            (None, Some(u)) => format!("at most {}", human_ms(u)),
            (Some(l), None) => format!("at least {}, no upper bound", human_ms(l)),
            (None, None) => "not measured".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SteadyState {
    /// Whether every `before` probe met its threshold before the fault.
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultRecord {
    pub at_ms: u64,
    pub at: DateTime<Utc>,
    pub description: String,
    /// When the fault step returned: the fault was delivered.
    #[serde(default)]
    pub injected_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Ok,
    Failed,
    TimedOut,
    Cancelled,
    /// Not run: an earlier step aborted the drill.
    Skipped,
}

impl StepOutcome {
    pub fn label(self) -> &'static str {
        match self {
            StepOutcome::Ok => "ok",
            StepOutcome::Failed => "FAILED",
            StepOutcome::TimedOut => "TIMED OUT",
            StepOutcome::Cancelled => "cancelled",
            StepOutcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    pub name: String,
    pub kind: String,
    /// The parallel group it ran in.
    pub group: Option<String>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub outcome: StepOutcome,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeSummary {
    pub probe: String,
    pub phase: Phase,
    pub kind: String,
    pub check: String,
    pub success_threshold: u32,
    pub interval_ms: u64,
    /// Whether it ran at all ("not executed" is not "failed").
    pub executed: bool,
    pub runs: u64,
    pub passes: u64,
    pub failures: u64,
    /// For `after` probes: when its threshold was first met, after the fault.
    pub met_at_ms: Option<u64>,
    /// For `during` probes: the share of passing results.
    pub availability: Option<f64>,
    pub last_detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRecord {
    pub step: String,
    pub target: String,
    pub region: String,
    pub point: Option<String>,
    /// The restored point's consistency time; after a stream's replay, when
    /// the stream received the last change replayed.
    pub consistent_at: Option<DateTime<Utc>>,
    /// The revision a replay of the point's stream reached, when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_to: Option<u64>,
    pub plan: Vec<String>,
    /// How it ended (none: it was cut off before it could say).
    #[serde(default)]
    pub result: Option<String>,
    /// Whether it finished without a failure: only such a restore bounds
    /// the RPO (its point's consistency time).
    #[serde(default)]
    pub completed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupRecord {
    pub what: String,
    pub ok: bool,
    pub message: String,
    /// Not removed because the drill took its region down (named in `message`).
    #[serde(default)]
    pub left_behind: bool,
    /// The canary markers it is about (what `drtool drill cleanup` removes).
    #[serde(default)]
    pub canary: Option<CanaryPlace>,
}

/// Where a run's canary markers are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryPlace {
    pub target: String,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    pub at_ms: u64,
    /// step, probe, fault, canary, job, note, error
    pub kind: String,
    pub what: String,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Overhead {
    /// Time between steps, spent by the runner itself.
    pub between_steps_ms: u64,
    /// How late probe results were against their schedule, on average.
    pub probe_lateness_ms: u64,
    /// The timeline's resolution: the shortest probe interval.
    pub resolution_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Note {
    pub at: DateTime<Utc>,
    pub text: String,
    /// Who wrote it (the operating-system user unless given).
    #[serde(default)]
    pub author: Option<String>,
}

/// What went wrong and what to improve: filled in during or after the drill.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retrospective {
    pub problems: Vec<String>,
    pub improvements: Vec<String>,
}

/// An ed25519 signature over the hash chain of the report's timeline, so an
/// auditor can check that the events were not edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSignature {
    pub algorithm: String,
    pub key: String,
    /// sha256 chain: h0 = sha256(run id), h(i) = sha256(h(i-1) || entry i as JSON).
    pub chain_head: String,
    /// Signature of `drtool-report-v1 <run id> <chain head> <content hash>`.
    pub value: String,
}

impl ProbeSummary {
    /// What came of the probe, in a few words: "not executed", its
    /// availability, when it met its threshold, or its last answer.
    pub fn result_text(&self) -> String {
        if !self.executed {
            "not executed".to_string()
        } else if let Some(a) = self.availability {
            format!("{:.1}% available", a * 100.0)
        } else if let Some(m) = self.met_at_ms {
            format!(
                "met {}x in a row, {} after the fault",
                self.success_threshold,
                human_ms(m)
            )
        } else {
            self.last_detail.clone().unwrap_or_default()
        }
    }
}

/// The title of a phase's probe table.
pub fn phase_title(p: Phase) -> &'static str {
    match p {
        Phase::Before => "Before the fault (steady state)",
        Phase::During => "During the outage (availability)",
        Phase::After => "After (recovery)",
        Phase::Guard => "Guards (services the drill must not harm)",
    }
}

impl DrillReport {
    /// The head of the hash chain over the timeline.
    pub fn chain_head(&self) -> String {
        let mut h = Sha256::digest(self.run_id.as_bytes()).to_vec();
        for e in &self.timeline {
            let mut next = Sha256::new();
            next.update(&h);
            next.update(serde_json::to_vec(e).unwrap_or_default());
            h = next.finalize().to_vec();
        }
        hex::encode(h)
    }

    /// The sha256 of everything the run measured: the report without what is
    /// added afterwards (notes, retrospective, where it was stored, the
    /// signature itself).
    pub fn content_hash(&self) -> String {
        let mut bare = self.clone();
        bare.notes.clear();
        bare.retrospective = Retrospective::default();
        bare.uploaded_to.clear();
        bare.seal = None;
        bare.signature = None;
        hex::encode(Sha256::digest(
            serde_json::to_vec(&bare).unwrap_or_default(),
        ))
    }

    /// What a signature covers: the run, the head of the events' hash chain
    /// and the hash of every measure.
    pub fn signed_message(&self, head: &str) -> Vec<u8> {
        format!(
            "drtool-report-v1 {} {head} {}",
            self.run_id,
            self.content_hash()
        )
        .into_bytes()
    }

    /// Probe summaries by phase, for rendering.
    pub fn probes_by_phase(&self) -> BTreeMap<Phase, Vec<&ProbeSummary>> {
        let mut out: BTreeMap<Phase, Vec<&ProbeSummary>> = BTreeMap::new();
        for p in &self.probes {
            out.entry(p.phase).or_default().push(p);
        }
        out
    }

    /// Seals the report: its chain head and content hash as they are now.
    pub fn seal_now(&mut self) {
        self.seal = Some(ReportSeal {
            chain_head: self.chain_head(),
            content_sha256: self.content_hash(),
        });
    }
}

/// The files of one report, by name, its pages in the form of the renderer
/// that wrote them (so a note keeps them comparable).
pub fn rendered(r: &DrillReport) -> Result<Vec<(&'static str, Vec<u8>)>, Error> {
    let json = serde_json::to_vec_pretty(r)
        .map_err(|e| Error::failed(format!("cannot write the report: {e}")))?;
    let (md, html, junit) = match r.renderer {
        1 => (
            v1::markdown::render(r),
            v1::html::render(r),
            v1::junit::render(r),
        ),
        RENDERER => (markdown::render(r), html::render(r), junit::render(r)),
        other => {
            return Err(Error::input(format!(
                "report {} was rendered by renderer {other}, which this drtool (renderer {RENDERER}) does not have: use the drtool that wrote it or a newer one",
                r.run_id
            )));
        }
    };
    Ok(vec![
        ("report.json", json),
        ("report.md", md.into_bytes()),
        ("report.html", html.into_bytes()),
        ("junit.xml", junit.into_bytes()),
    ])
}

/// The JSON Schema of `report.json` (kept in the repository as
/// `docs/report.schema.json`; a test checks they agree).
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(DrillReport)).unwrap_or_default()
}

pub use crate::units::human_bytes;

impl DrillReport {
    /// What a run ends with on the terminal (`drill run`, and the dashboard
    /// on exit): the verdict, the measures, anything left behind, the
    /// errors and where the report is.
    pub fn end_lines(&self, folder: &std::path::Path) -> Vec<String> {
        let mut out = vec![
            format!("drill {}: {}", self.drill, self.verdict.label()),
            format!(
                "  RTO {} (objective {})   RPO {} (objective {}; judged on the upper bound), {} canary markers lost",
                opt_ms(self.rto.rto_ms),
                human_ms(self.objectives.rto_ms),
                self.rpo.interval_text(),
                human_ms(self.objectives.rpo_ms),
                self.rpo.lost_markers
            ),
        ];
        if self.fault.is_some() {
            out.push(format!("  RPO evidence: {}", self.rpo.bound));
        }
        if let Some(after) = &self.steady_state_after {
            out.push(format!(
                "  steady state restored: {}",
                if after.ok { "yes" } else { "NO" }
            ));
        }
        for c in self.cleanup.iter().filter(|c| c.left_behind || !c.ok) {
            out.push(format!("  LEFT BEHIND: {}: {}", c.what, c.message));
        }
        out.extend(self.errors.iter().map(|e| format!("  error: {e}")));
        out.push(format!("  report: {}", folder.join("report.md").display()));
        out
    }
}

/// `1m 5s`, `850ms`: a duration for people.
pub fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    let tenths = (ms % 1000) / 100;
    match secs {
        0..=59 => format!("{secs}.{tenths}s"),
        60..=3599 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
    }
}

/// `12.3s` or `-` for a measure that was not taken.
pub fn opt_ms(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_string(), human_ms)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::facts::Marker;
    use super::*;

    /// A report as a short etcd drill writes it, with fixed times and ids.
    pub fn sample() -> DrillReport {
        let t0 = DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        let samples = vec![
            Sample {
                probe: "kv-before".into(),
                phase: Phase::Before,
                at_ms: 200,
                ok: true,
                took_ms: 3,
                detail: "/app/config exists".into(),
            },
            Sample {
                probe: "kv-restored".into(),
                phase: Phase::After,
                at_ms: 2100,
                ok: false,
                took_ms: 2,
                detail: "etcd key /app/config: not found".into(),
            },
            Sample {
                probe: "kv-restored".into(),
                phase: Phase::After,
                at_ms: 4600,
                ok: true,
                took_ms: 2,
                detail: "/app/config has the expected value".into(),
            },
        ];
        DrillReport {
            report_version: REPORT_VERSION,
            renderer: RENDERER,
            run_id: "20261122t020000z-0badcafe".into(),
            drill: "etcd-region-failover".into(),
            description: Some("Lose us-east-1; restore kv in us-west-2.".into()),
            hypothesis: "If us-east-1 is lost, kv is back in us-west-2 within 5 minutes, losing under a minute of writes.".into(),
            file: "drills/etcd-region-failover.yaml".into(),
            drtool_version: "0.1.0".into(),
            ran_by: Some(RanBy {
                user: "oncall".into(),
                host: "bastion-1".into(),
                config: "/etc/drtool/drtool.toml".into(),
                config_sha256: Some("ab".repeat(32)),
                via: "drill run".into(),
            }),
            started_at: t0,
            finished_at: at(6000),
            duration_ms: 6000,
            verdict: DrillVerdict::Pass,
            summary: vec![
                "Hypothesis: if us-east-1 is lost, kv is back in us-west-2 within 5 minutes.".into(),
                "Verdict: PASS. RTO 2.6s (objective 5m 0s), RPO 1.2s measured (objective 1m 0s).".into(),
            ],
            objectives: Objectives {
                rto_ms: 300_000,
                rpo_ms: 60_000,
            },
            rto: RtoBreakdown {
                rto_ms: Some(2600),
                injection_ms: 10,
                detection_ms: Some(90),
                decision_ms: 0,
                restore_ms: 1410,
                verification_ms: Some(1090),
            },
            rpo: RpoResult {
                measured_ms: Some(1200),
                nominal_ms: Some(1500),
                lower_ms: Some(1000),
                upper_ms: Some(1500),
                resolution_ms: Some(200),
                bound: "canaries: 1.0s proven lost, 1.2s at most; the restored point: 1.5s".into(),
                lost_markers: 6,
                canaries: vec![CanaryTally {
                    canary: "etcd:kv".into(),
                    written: 10,
                    newest_written: Some(Marker { seq: 9, at: at(1990) }),
                    newest_surviving: Some(Marker { seq: 3, at: at(800) }),
                    oldest_lost: Some(Marker { seq: 4, at: at(1000) }),
                    lost: 6,
                    rpo_ms: Some(1200),
                    lost_since_ms: Some(1000),
                    interval_ms: 200,
                }],
            },
            steady_state: SteadyState {
                ok: true,
                detail: "every before probe met its threshold".into(),
            },
            steady_state_after: Some(SteadyState {
                ok: true,
                detail: "kv-before (etcd key /app/config in us-west-2): holds".into(),
            }),
            fault: Some(FaultRecord {
                at_ms: 2000,
                at: at(2000),
                description: "lose region us-east-1".into(),
                injected_ms: Some(2010),
            }),
            steps: vec![
                StepRecord {
                    name: "backup-1".into(),
                    kind: "backup".into(),
                    group: None,
                    start_ms: 100,
                    end_ms: 900,
                    outcome: StepOutcome::Ok,
                    message: "kv: backup and copy ok".into(),
                },
                StepRecord {
                    name: "lose-east".into(),
                    kind: "fault".into(),
                    group: None,
                    start_ms: 1000,
                    end_ms: 2010,
                    outcome: StepOutcome::Ok,
                    message: "lost region us-east-1".into(),
                },
                StepRecord {
                    name: "restore-west".into(),
                    kind: "restore".into(),
                    group: None,
                    start_ms: 2010,
                    end_ms: 3510,
                    outcome: StepOutcome::Ok,
                    message: "40 keys created".into(),
                },
                StepRecord {
                    name: "verify-4".into(),
                    kind: "verify".into(),
                    group: None,
                    start_ms: 3510,
                    end_ms: 4610,
                    outcome: StepOutcome::Ok,
                    message: "every after probe met its threshold".into(),
                },
            ],
            probes: vec![
                ProbeSummary {
                    probe: "kv-before".into(),
                    phase: Phase::Before,
                    kind: "etcd_key".into(),
                    check: "etcd key /app/config in us-east-1".into(),
                    success_threshold: 1,
                    interval_ms: 500,
                    executed: true,
                    runs: 1,
                    passes: 1,
                    failures: 0,
                    met_at_ms: None,
                    availability: None,
                    last_detail: Some("/app/config exists".into()),
                },
                ProbeSummary {
                    probe: "kv-restored".into(),
                    phase: Phase::After,
                    kind: "etcd_key".into(),
                    check: "etcd key /app/config in us-west-2".into(),
                    success_threshold: 1,
                    interval_ms: 500,
                    executed: true,
                    runs: 2,
                    passes: 1,
                    failures: 1,
                    met_at_ms: Some(2600),
                    availability: None,
                    last_detail: Some("/app/config has the expected value".into()),
                },
            ],
            samples,
            restores: vec![RestoreRecord {
                step: "restore-west".into(),
                target: "kv".into(),
                region: "us-west-2".into(),
                point: Some("20261122T020000Z-00000001".into()),
                consistent_at: Some(at(500)),
                stream_to: None,
                plan: vec!["create     40".into()],
                result: Some("ok restore kv us-west-2: 40 keys created".into()),
                completed: true,
            }],
            cleanup: vec![CleanupRecord {
                what: "canary etcd:kv in us-east-1".into(),
                ok: true,
                message: "10 markers removed".into(),
                left_behind: false,
                canary: Some(CanaryPlace {
                    target: "kv".into(),
                    region: "us-east-1".into(),
                }),
            }],
            timeline: vec![
                TimelineEntry {
                    at_ms: 100,
                    kind: "step".into(),
                    what: "backup-1 started".into(),
                },
                TimelineEntry {
                    at_ms: 2000,
                    kind: "fault".into(),
                    what: "lose region us-east-1".into(),
                },
            ],
            errors: vec![],
            overhead: Overhead {
                between_steps_ms: 12,
                probe_lateness_ms: 3,
                resolution_ms: 500,
            },
            notes: vec![],
            retrospective: Retrospective::default(),
            uploaded_to: vec!["us-west-2".into()],
            seal: None,
            signature: None,
        }
    }

    /// A run where much went wrong, with text that needs escaping in every
    /// format: markup, quotes, ampersands, pipes and line breaks.
    pub fn troubled() -> DrillReport {
        let mut r = sample();
        let at = |ms: i64| r.started_at + chrono::Duration::milliseconds(ms);
        r.drill = "payments <& \"db\">".into();
        r.verdict = DrillVerdict::Failed;
        r.rto.rto_ms = None;
        r.rpo.upper_ms = None;
        r.steady_state_after = Some(SteadyState {
            ok: false,
            detail: "kv-restored: 'not found' | twice".into(),
        });
        r.steps.push(StepRecord {
            name: "restore-db".into(),
            kind: "restore".into(),
            group: Some("parallel <1>".into()),
            start_ms: 3600,
            end_ms: 5200,
            outcome: StepOutcome::Failed,
            message: "pg_restore: table \"a|b\" <exists> & more\nsecond line".into(),
        });
        r.steps.push(StepRecord {
            name: "verify-db".into(),
            kind: "verify".into(),
            group: None,
            start_ms: 5200,
            end_ms: 5200,
            outcome: StepOutcome::Skipped,
            message: "an earlier step failed".into(),
        });
        r.restores[0].result = None;
        r.restores[0].consistent_at = None;
        r.cleanup.push(CleanupRecord {
            what: "canary etcd:kv in us-west-2".into(),
            ok: false,
            message: "connection refused & gave up".into(),
            left_behind: false,
            canary: None,
        });
        r.cleanup.push(CleanupRecord {
            what: "canary etcd:kv in eu-west-1".into(),
            ok: true,
            message: "left: the drill took eu-west-1 down".into(),
            left_behind: true,
            canary: None,
        });
        r.errors = vec!["restore-db: <pg_restore> exited 1".into()];
        r.notes = vec![Note {
            at: at(60_000),
            text: "DNS took \"long\" & <b>bold</b>".into(),
            author: None,
        }];
        r.retrospective = Retrospective {
            problems: vec!["the runbook's step 3 < step 4".into()],
            improvements: vec![],
        };
        r.seal_now();
        r.signature = Some(ReportSignature {
            algorithm: "ed25519".into(),
            key: "SHA256:abc".into(),
            chain_head: r.chain_head(),
            value: "c2lnbmF0dXJl".into(),
        });
        r
    }

    /// A run with the least in it: no description, no one named as its
    /// runner, no canaries, fault, restores, cleanup or probes; sealed.
    pub fn bare() -> DrillReport {
        let mut r = sample();
        r.description = None;
        r.ran_by = None;
        r.rpo.canaries.clear();
        r.fault = None;
        r.restores.clear();
        r.cleanup.clear();
        r.probes.clear();
        r.samples.clear();
        r.steady_state_after = None;
        r.uploaded_to.clear();
        r.seal_now();
        r
    }

    #[test]
    fn the_chain_head_changes_with_any_event() {
        let r = sample();
        let head = r.chain_head();
        let mut edited = r.clone();
        edited.timeline[1].what = "nothing happened".into();
        assert_ne!(edited.chain_head(), head);
        assert_eq!(r.chain_head(), head, "deterministic");
    }

    #[test]
    fn the_schema_in_the_repository_is_the_one_reports_follow() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json");
        let mut generated = serde_json::to_string_pretty(&schema()).unwrap_or_default();
        generated.push('\n');
        if std::env::var_os("DRTOOL_WRITE_SCHEMA").is_some() {
            let _ = std::fs::write(&file, &generated);
        }
        let stored = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            stored == generated,
            "docs/report.schema.json is out of date: run DRTOOL_WRITE_SCHEMA=1 cargo test --lib report"
        );
    }

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(12_345), "12.3s");
        assert_eq!(human_ms(65_000), "1m 5s");
        assert_eq!(human_ms(3_723_000), "1h 2m");
        assert_eq!(opt_ms(None), "-");
    }
}
