//! What the Markdown page and the HTML page show, as display text: the
//! numbers formatted, the options decided. The templates under
//! `templates/report/` hold the markup; the HTML one escapes every value,
//! the Markdown one keeps table cells on one line.

use super::facts::{DrillVerdict, Marker};
use super::{DrillReport, StepOutcome, human_ms, opt_ms, phase_title};

/// One report as both pages show it.
pub struct View<'a> {
    pub r: &'a DrillReport,
    pub started: String,
    pub finished: String,
    pub duration: String,
    pub ran_by: Option<RanByView<'a>>,
    pub objectives: ObjectivesView,
    pub canaries: Vec<CanaryRow>,
    pub steady_state: Held<'a>,
    pub steady_state_after: Option<Held<'a>>,
    pub fault: Option<FaultView<'a>>,
    pub steps: Vec<StepRow<'a>>,
    pub probes: Vec<ProbeTable<'a>>,
    pub restores: Vec<RestoreRow<'a>>,
    pub cleanup: Vec<CleanupRow<'a>>,
    pub measurement: MeasurementView,
    pub integrity: Seal<'a>,
    pub notes: Vec<NoteRow<'a>>,
}

pub struct RanByView<'a> {
    pub user: &'a str,
    pub host: &'a str,
    pub via: &'a str,
    pub config: &'a str,
    pub config_sha256: &'a str,
}

/// RTO and RPO against their objectives, as the Markdown table shows them.
pub struct ObjectivesView {
    pub rto: String,
    pub rto_objective: String,
    pub rto_met: &'static str,
    pub rpo_upper: String,
    pub rpo_objective: String,
    pub rpo_met: &'static str,
    pub rpo_lower: String,
    /// The RTO's phases, `name duration` joined by commas.
    pub phases: String,
}

pub struct CanaryRow {
    pub canary: String,
    pub written: u64,
    pub newest_surviving: String,
    pub oldest_lost: String,
    pub lost: u64,
    pub lost_since: String,
    pub rpo: String,
    pub interval: String,
    /// The kept and lost parts of the HTML bar, in pixels of 200.
    pub kept_px: String,
    pub lost_px: String,
}

/// A check that held or did not.
pub struct Held<'a> {
    pub ok: bool,
    pub detail: &'a str,
}

pub struct FaultView<'a> {
    pub description: &'a str,
    pub at: String,
    pub after: String,
}

pub struct StepRow<'a> {
    /// `group / name`, or the name.
    pub name: String,
    pub kind: &'a str,
    pub start: String,
    pub duration: String,
    pub outcome: &'static str,
    pub ok: bool,
    pub message: &'a str,
}

/// The probes of one phase.
pub struct ProbeTable<'a> {
    pub title: &'static str,
    pub rows: Vec<ProbeRow<'a>>,
}

pub struct ProbeRow<'a> {
    pub probe: &'a str,
    pub check: &'a str,
    pub runs: u64,
    pub passes: u64,
    pub failures: u64,
    pub result: String,
}

pub struct RestoreRow<'a> {
    pub step: &'a str,
    pub target: &'a str,
    pub region: &'a str,
    pub point: &'a str,
    /// The time of day (Markdown) and the full date and time (HTML).
    pub consistent_time: String,
    pub consistent_at: String,
    pub result: &'a str,
}

pub struct CleanupRow<'a> {
    /// `ok`, `FAILED`, or `LEFT` (not removed: the drill took its region down).
    pub state: &'static str,
    /// The HTML class of that state.
    pub class: &'static str,
    pub what: &'a str,
    pub message: &'a str,
}

pub struct MeasurementView {
    pub resolution: String,
    pub lateness: String,
    pub between_steps: String,
    /// The regions that hold the report, joined by commas (empty: none).
    pub stored_in: String,
}

/// What makes an edit visible.
pub enum Seal<'a> {
    Signed {
        key: &'a str,
        chain_head: &'a str,
        value: &'a str,
    },
    Sealed {
        chain_head: &'a str,
        content_sha256: &'a str,
    },
    Neither,
}

pub struct NoteRow<'a> {
    pub at: String,
    pub author: &'a str,
    pub text: &'a str,
}

impl<'a> View<'a> {
    pub fn of(r: &'a DrillReport) -> View<'a> {
        View {
            r,
            started: r.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            finished: r.finished_at.format("%H:%M:%S UTC").to_string(),
            duration: human_ms(r.duration_ms),
            ran_by: r.ran_by.as_ref().map(|by| RanByView {
                user: &by.user,
                host: &by.host,
                via: &by.via,
                config: &by.config,
                config_sha256: by.config_sha256.as_deref().unwrap_or("unreadable"),
            }),
            objectives: ObjectivesView::of(r),
            canaries: r.rpo.canaries.iter().map(CanaryRow::of).collect(),
            steady_state: Held {
                ok: r.steady_state.ok,
                detail: &r.steady_state.detail,
            },
            steady_state_after: r.steady_state_after.as_ref().map(|s| Held {
                ok: s.ok,
                detail: &s.detail,
            }),
            fault: r.fault.as_ref().map(|f| FaultView {
                description: &f.description,
                at: f.at.format("%H:%M:%S%.3f UTC").to_string(),
                after: human_ms(f.at_ms),
            }),
            steps: steps(r),
            probes: r
                .probes_by_phase()
                .into_iter()
                .map(|(phase, list)| ProbeTable {
                    title: phase_title(phase),
                    rows: list
                        .into_iter()
                        .map(|p| ProbeRow {
                            probe: &p.probe,
                            check: &p.check,
                            runs: p.runs,
                            passes: p.passes,
                            failures: p.failures,
                            result: p.result_text(),
                        })
                        .collect(),
                })
                .collect(),
            restores: restores(r),
            cleanup: cleanup(r),
            measurement: MeasurementView {
                resolution: human_ms(r.overhead.resolution_ms),
                lateness: human_ms(r.overhead.probe_lateness_ms),
                between_steps: human_ms(r.overhead.between_steps_ms),
                stored_in: r.uploaded_to.join(", "),
            },
            integrity: match (&r.signature, &r.seal) {
                (Some(sig), _) => Seal::Signed {
                    key: &sig.key,
                    chain_head: &sig.chain_head,
                    value: &sig.value,
                },
                (None, Some(seal)) => Seal::Sealed {
                    chain_head: &seal.chain_head,
                    content_sha256: &seal.content_sha256,
                },
                (None, None) => Seal::Neither,
            },
            notes: r
                .notes
                .iter()
                .map(|n| NoteRow {
                    at: n.at.format("%Y-%m-%d %H:%M UTC").to_string(),
                    author: n.author.as_deref().unwrap_or("unknown author"),
                    text: &n.text,
                })
                .collect(),
        }
    }

    /// The badge class of the verdict on the HTML page.
    pub fn verdict_class(&self) -> &'static str {
        match self.r.verdict {
            DrillVerdict::Pass => "b-pass",
            DrillVerdict::ObjectivesMissed => "b-warn",
            DrillVerdict::Failed | DrillVerdict::Aborted => "b-fail",
        }
    }
}

impl ObjectivesView {
    fn of(r: &DrillReport) -> ObjectivesView {
        let met = |v: Option<u64>, o: u64| match v {
            Some(v) if v <= o => "yes",
            Some(_) => "NO",
            None => "not measured",
        };
        let unbounded = r.rpo.unbounded();
        let phases: Vec<String> = r
            .rto
            .phases()
            .iter()
            .map(|(name, ms)| format!("{name} {}", human_ms(*ms)))
            .collect();
        ObjectivesView {
            rto: opt_ms(r.rto.rto_ms),
            rto_objective: human_ms(r.objectives.rto_ms),
            rto_met: met(r.rto.rto_ms, r.objectives.rto_ms),
            rpo_upper: if unbounded {
                "unbounded".to_string()
            } else {
                opt_ms(r.rpo.upper_ms)
            },
            rpo_objective: human_ms(r.objectives.rpo_ms),
            rpo_met: if unbounded {
                "NO"
            } else {
                met(r.rpo.upper_ms, r.objectives.rpo_ms)
            },
            rpo_lower: opt_ms(r.rpo.lower_ms),
            phases: phases.join(", "),
        }
    }
}

impl CanaryRow {
    fn of(c: &super::facts::CanaryTally) -> CanaryRow {
        let total = c.written.max(1) as f64;
        let kept = 200.0 * c.written.saturating_sub(c.lost) as f64 / total;
        CanaryRow {
            canary: c.canary.clone(),
            written: c.written,
            newest_surviving: Marker::describe(c.newest_surviving),
            oldest_lost: Marker::describe(c.oldest_lost),
            lost: c.lost,
            lost_since: opt_ms(c.lost_since_ms),
            rpo: c.rpo_ms.map_or("unbounded".to_string(), human_ms),
            interval: human_ms(c.interval_ms),
            kept_px: format!("{kept:.1}"),
            lost_px: format!("{:.1}", 200.0 * c.lost as f64 / total),
        }
    }
}

fn steps(r: &DrillReport) -> Vec<StepRow<'_>> {
    r.steps
        .iter()
        .map(|s| StepRow {
            name: match &s.group {
                Some(g) => format!("{g} / {}", s.name),
                None => s.name.clone(),
            },
            kind: &s.kind,
            start: human_ms(s.start_ms),
            duration: human_ms(s.end_ms.saturating_sub(s.start_ms)),
            outcome: s.outcome.label(),
            ok: s.outcome == StepOutcome::Ok,
            message: &s.message,
        })
        .collect()
}

fn restores(r: &DrillReport) -> Vec<RestoreRow<'_>> {
    r.restores
        .iter()
        .map(|rs| RestoreRow {
            step: &rs.step,
            target: &rs.target,
            region: &rs.region,
            point: rs.point.as_deref().unwrap_or("-"),
            consistent_time: rs.consistent_at.map_or("-".to_string(), |t| {
                t.format("%H:%M:%S%.3f UTC").to_string()
            }),
            consistent_at: rs.consistent_at.map_or("-".to_string(), |t| {
                t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
            }),
            result: rs
                .result
                .as_deref()
                .unwrap_or("cut off before it could say"),
        })
        .collect()
}

fn cleanup(r: &DrillReport) -> Vec<CleanupRow<'_>> {
    r.cleanup
        .iter()
        .map(|c| {
            let (state, class) = match (c.ok, c.left_behind) {
                (_, true) => ("LEFT", "warn"),
                (true, false) => ("ok", "pass"),
                (false, false) => ("FAILED", "fail"),
            };
            CleanupRow {
                state,
                class,
                what: &c.what,
                message: &c.message,
            }
        })
        .collect()
}
