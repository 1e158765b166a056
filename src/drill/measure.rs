//! RTO and RPO from what a drill recorded: pure arithmetic over the probe
//! samples, canary markers and step times of one run, so a table-driven test
//! can pin every rule.
//!
//! - RTO: from the fault to the first moment every `after` probe has passed
//!   `success_threshold` times in a row.
//! - Measured RPO: the fault's time minus the write time of the newest canary
//!   marker that survived, and how many acknowledged markers were lost.
//! - Nominal RPO: the fault's time minus the restored point's consistency time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::spec::Phase;

/// Milliseconds on the drill's monotonic clock (0 = the drill started).
pub type Ms = u64;

/// One probe result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sample {
    pub probe: String,
    pub phase: Phase,
    pub at_ms: Ms,
    pub ok: bool,
    /// How long the check took.
    pub took_ms: u64,
    pub detail: String,
}

/// A canary marker: its sequence number and when it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Marker {
    pub seq: u64,
    pub at: DateTime<Utc>,
}

/// What a canary wrote and what survived the recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CanaryTally {
    pub canary: String,
    /// Markers acknowledged by the source before the fault.
    pub written: u64,
    pub newest_written: Option<Marker>,
    /// The newest marker found after recovery.
    pub newest_surviving: Option<Marker>,
    /// Acknowledged markers not found after recovery.
    pub lost: u64,
    /// Measured RPO: fault time minus the newest surviving marker's write time.
    pub rpo_ms: Option<u64>,
}

/// What a canary's markers say, given the fault's wall time.
pub fn tally(
    canary: &str,
    written: &[Marker],
    surviving: &[Marker],
    fault: DateTime<Utc>,
) -> CanaryTally {
    let acked: Vec<&Marker> = written.iter().filter(|m| m.at <= fault).collect();
    let newest_written = acked.iter().max_by_key(|m| m.seq).map(|m| **m);
    let newest_surviving = surviving
        .iter()
        .filter(|m| acked.iter().any(|w| w.seq == m.seq))
        .max_by_key(|m| m.seq)
        .copied();
    let (lost, rpo_ms) = match newest_surviving {
        Some(s) => (
            acked.iter().filter(|m| m.seq > s.seq).count() as u64,
            Some(millis(fault - s.at)),
        ),
        // Nothing survived: everything was lost, and the loss reaches back at
        // least to the first marker.
        None => (
            acked.len() as u64,
            acked
                .iter()
                .map(|m| m.at)
                .min()
                .map(|first| millis(fault - first)),
        ),
    };
    CanaryTally {
        canary: canary.to_string(),
        written: acked.len() as u64,
        newest_written,
        newest_surviving,
        lost,
        rpo_ms,
    }
}

fn millis(d: chrono::Duration) -> u64 {
    d.num_milliseconds().max(0) as u64
}

/// The first moment every named probe has its threshold of consecutive passes
/// in the samples at or after `from`. Probes not named are ignored.
pub fn recovered_at(
    samples: &[Sample],
    from: Ms,
    thresholds: &BTreeMap<String, u32>,
) -> Option<Ms> {
    if thresholds.is_empty() {
        return None;
    }
    let mut ordered: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at_ms >= from && thresholds.contains_key(&s.probe))
        .collect();
    ordered.sort_by_key(|s| s.at_ms);
    let mut streaks: BTreeMap<&str, u32> = BTreeMap::new();
    for s in ordered {
        let streak = streaks.entry(s.probe.as_str()).or_insert(0);
        *streak = if s.ok { *streak + 1 } else { 0 };
        let all = thresholds
            .iter()
            .all(|(p, t)| streaks.get(p.as_str()).is_some_and(|n| n >= t));
        if all {
            return Some(s.at_ms);
        }
    }
    None
}

/// When the outage was seen: the first failed `during` probe at or after
/// `from` (the probes that watch the service), else the first failed `after`
/// probe.
pub fn detected_at(samples: &[Sample], from: Ms) -> Option<Ms> {
    let first = |phase: Phase| {
        samples
            .iter()
            .filter(|s| s.at_ms >= from && !s.ok && s.phase == phase)
            .map(|s| s.at_ms)
            .min()
    };
    first(Phase::During).or_else(|| first(Phase::After))
}

/// Availability of the `during` probes between `from` and `to`: the share of
/// results that passed, per probe.
pub fn availability(samples: &[Sample], from: Ms, to: Ms) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.phase == Phase::During && s.at_ms >= from && s.at_ms <= to)
    {
        let c = counts.entry(s.probe.clone()).or_insert((0, 0));
        c.1 += 1;
        if s.ok {
            c.0 += 1;
        }
    }
    counts
        .into_iter()
        .map(|(p, (ok, all))| (p, ok as f64 / all.max(1) as f64))
        .collect()
}

/// RTO and where its time went.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RtoBreakdown {
    pub rto_ms: Option<u64>,
    /// Fault to the first failed probe.
    pub detection_ms: Option<u64>,
    /// Manual and wait steps after the fault.
    pub decision_ms: u64,
    /// Restore steps.
    pub restore_ms: u64,
    /// From the end of the last restore to recovery.
    pub verification_ms: Option<u64>,
}

/// A step's span on the monotonic clock, and what kind it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub kind: &'static str,
    pub start_ms: Ms,
    pub end_ms: Ms,
}

/// RTO and its phases: only steps between the fault and recovery count.
pub fn breakdown(
    fault_ms: Ms,
    recovered: Option<Ms>,
    detected: Option<Ms>,
    spans: &[Span],
) -> RtoBreakdown {
    let until = recovered.unwrap_or(Ms::MAX);
    let within = |s: &&Span| s.start_ms >= fault_ms && s.start_ms < until;
    let total = |kinds: &[&str]| -> u64 {
        spans
            .iter()
            .filter(within)
            .filter(|s| kinds.contains(&s.kind))
            .map(|s| s.end_ms.saturating_sub(s.start_ms))
            .sum()
    };
    let last_restore_end = spans
        .iter()
        .filter(within)
        .filter(|s| s.kind == "restore")
        .map(|s| s.end_ms)
        .max();
    RtoBreakdown {
        rto_ms: recovered.map(|r| r.saturating_sub(fault_ms)),
        detection_ms: detected.map(|d| d.saturating_sub(fault_ms)),
        decision_ms: total(&["manual", "wait"]),
        restore_ms: total(&["restore"]),
        verification_ms: match (recovered, last_restore_end) {
            (Some(r), Some(end)) => Some(r.saturating_sub(end)),
            (Some(r), None) => Some(r.saturating_sub(fault_ms)),
            _ => None,
        },
    }
}

/// How a drill came out, in the terms its exit code uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DrillVerdict {
    /// Every step and cleanup succeeded and both objectives were met.
    Pass,
    /// The drill ran, but RTO or RPO was over its objective.
    ObjectivesMissed,
    /// A step, the steady state, recovery or cleanup failed.
    Failed,
    /// Stopped by Ctrl-C, SIGTERM or an operator's abort.
    Aborted,
}

impl DrillVerdict {
    pub fn label(self) -> &'static str {
        match self {
            DrillVerdict::Pass => "PASS",
            DrillVerdict::ObjectivesMissed => "OBJECTIVES MISSED",
            DrillVerdict::Failed => "FAILED",
            DrillVerdict::Aborted => "ABORTED",
        }
    }
}

/// The verdict from what happened: an abort wins, then any failure, then the
/// objectives (an unmeasured RTO is a failure: recovery was never seen).
pub fn verdict(
    aborted: bool,
    failed: bool,
    rto_ms: Option<u64>,
    rpo_ms: Option<u64>,
    objectives: (u64, u64),
) -> DrillVerdict {
    if aborted {
        return DrillVerdict::Aborted;
    }
    if failed {
        return DrillVerdict::Failed;
    }
    let Some(rto) = rto_ms else {
        return DrillVerdict::Failed;
    };
    let rpo_ok = rpo_ms.is_none_or(|r| r <= objectives.1);
    if rto <= objectives.0 && rpo_ok {
        DrillVerdict::Pass
    } else {
        DrillVerdict::ObjectivesMissed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(1_795_000_000_000 + ms).unwrap_or_default()
    }

    fn sample(probe: &str, phase: Phase, at_ms: Ms, ok: bool) -> Sample {
        Sample {
            probe: probe.into(),
            phase,
            at_ms,
            ok,
            took_ms: 1,
            detail: String::new(),
        }
    }

    #[test]
    fn measured_rpo_is_the_fault_minus_the_newest_survivor() {
        // Markers every 200 ms from 0; the fault at 1000 ms; the backup held
        // markers up to seq 2 (written at 400 ms).
        let written: Vec<Marker> = (0..=5)
            .map(|i| Marker {
                seq: i,
                at: t(i as i64 * 200),
            })
            .collect();
        let surviving = &written[..3];
        let got = tally("c", &written, surviving, t(1000));
        assert_eq!(got.written, 6);
        assert_eq!(got.newest_surviving.map(|m| m.seq), Some(2));
        assert_eq!(got.lost, 3, "seq 3, 4 and 5 were acknowledged and lost");
        assert_eq!(got.rpo_ms, Some(600));
        // Nothing lost: RPO is how long before the fault the last marker was.
        let all = tally("c", &written, &written, t(1000));
        assert_eq!((all.lost, all.rpo_ms), (0, Some(0)));
        // Nothing survived: all lost, the loss reaches back to the first one.
        let none = tally("c", &written, &[], t(1000));
        assert_eq!((none.lost, none.rpo_ms), (6, Some(1000)));
        // A marker written after the fault does not count as acknowledged.
        let late = [
            written.clone(),
            vec![Marker {
                seq: 6,
                at: t(1100),
            }],
        ]
        .concat();
        assert_eq!(tally("c", &late, surviving, t(1000)).written, 6);
    }

    #[test]
    fn rto_ends_when_every_after_probe_meets_its_threshold() {
        use Phase::{After, During};
        let samples = vec![
            sample("db", After, 900, true), // before the fault: ignored
            sample("web", During, 1100, false),
            sample("db", After, 1200, false),
            sample("db", After, 1500, true),
            sample("kv", After, 1600, true),
            sample("db", After, 1700, false), // a lucky answer does not end it
            sample("db", After, 2000, true),
            sample("kv", After, 2100, true),
            sample("db", After, 2300, true),
            sample("kv", After, 2400, true),
        ];
        let thresholds = BTreeMap::from([("db".to_string(), 2), ("kv".to_string(), 1)]);
        assert_eq!(recovered_at(&samples, 1000, &thresholds), Some(2300));
        assert_eq!(
            detected_at(&samples, 1000),
            Some(1100),
            "a during probe saw it first"
        );
        let after_only: Vec<Sample> = samples
            .iter()
            .filter(|s| s.phase == After)
            .cloned()
            .collect();
        assert_eq!(detected_at(&after_only, 1000), Some(1200));
        let never = BTreeMap::from([("db".to_string(), 5)]);
        assert_eq!(recovered_at(&samples, 1000, &never), None);
        let avail = availability(&samples, 1000, 3000);
        assert_eq!(avail.get("web"), Some(&0.0));
    }

    #[test]
    fn the_breakdown_adds_up_the_phases() {
        let spans = [
            Span {
                kind: "backup",
                start_ms: 0,
                end_ms: 500,
            },
            Span {
                kind: "fault",
                start_ms: 1000,
                end_ms: 1010,
            },
            Span {
                kind: "manual",
                start_ms: 1010,
                end_ms: 4010,
            },
            Span {
                kind: "restore",
                start_ms: 4010,
                end_ms: 9010,
            },
            Span {
                kind: "verify",
                start_ms: 9010,
                end_ms: 10010,
            },
        ];
        let b = breakdown(1000, Some(10000), Some(1200), &spans);
        assert_eq!(b.rto_ms, Some(9000));
        assert_eq!(b.detection_ms, Some(200));
        assert_eq!(b.decision_ms, 3000);
        assert_eq!(b.restore_ms, 5000);
        assert_eq!(b.verification_ms, Some(990));
    }

    #[test]
    fn verdicts() {
        use DrillVerdict::*;
        let obj = (60_000, 10_000);
        let cases = [
            (false, false, Some(30_000), Some(5_000), Pass),
            (false, false, Some(30_000), None, Pass),
            (false, false, Some(90_000), Some(5_000), ObjectivesMissed),
            (false, false, Some(30_000), Some(20_000), ObjectivesMissed),
            (false, false, None, Some(5_000), Failed),
            (false, true, Some(30_000), Some(5_000), Failed),
            (true, true, None, None, Aborted),
        ];
        for (aborted, failed, rto, rpo, want) in cases {
            assert_eq!(
                verdict(aborted, failed, rto, rpo, obj),
                want,
                "{aborted} {failed} {rto:?} {rpo:?}"
            );
        }
    }
}
