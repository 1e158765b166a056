//! RTO and RPO from what a drill recorded: pure arithmetic over the probe
//! samples, canary markers and step times of one run, so a table-driven test
//! can pin every rule. The definitions below are the README's, word for word.
//!
//! - RTO: from the fault to the first moment every `after` probe has passed
//!   `success_threshold` times in a row.
//! - RTO phases: consecutive spans that add up to the RTO. Fault injection lasts
//!   from the fault until the fault step returned (with several faults in one
//!   parallel group, until the last of them returned); detection until the first
//!   failed probe of any phase after the fault; decision until the first restore
//!   step started (without a restore step: until the last manual or wait step
//!   after the fault ended); restore until the last of the restore steps that
//!   started before recovery ended; verification until recovery. A boundary
//!   that was not seen (no probe failed, no restore and no manual or wait step)
//!   gives its phase no time.
//! - RPO lower bound: what the canaries prove was lost: the fault's time minus
//!   the write time of the oldest acknowledged marker that did not survive (when
//!   none survived, that is the time since the first marker).
//! - RPO upper bound: what the evidence cannot rule out: the larger of the
//!   fault's time minus each canary's newest surviving marker's write time (for
//!   a canary with no survivor, nothing short of the restored point bounds it),
//!   and the fault's time minus the oldest consistency time of the points
//!   restores completed with; never below the lower bound. Canaries without a
//!   survivor and no completed restore leave the RPO unbounded.
//! - The verdict judges the upper bound; the canary interval is the
//!   resolution of the canary bounds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::report::facts::Phase;
pub use crate::report::facts::{CanaryTally, DrillVerdict, Marker, Ms, RtoBreakdown, Sample};

/// What a canary's markers say, given the fault's wall time.
pub fn tally(
    canary: &str,
    written: &[Marker],
    surviving: &[Marker],
    fault: DateTime<Utc>,
    interval_ms: u64,
) -> CanaryTally {
    let acked: Vec<&Marker> = written.iter().filter(|m| m.at <= fault).collect();
    let newest_written = acked.iter().max_by_key(|m| m.seq).map(|m| **m);
    let survived = |seq: u64| surviving.iter().any(|s| s.seq == seq);
    let newest_surviving = acked
        .iter()
        .filter(|m| survived(m.seq))
        .max_by_key(|m| m.seq)
        .map(|m| **m);
    // Lost: acknowledged and not found, newer than the newest survivor (an
    // older gap is a marker that failed to come back, counted as lost too).
    let lost: Vec<&&Marker> = acked.iter().filter(|m| !survived(m.seq)).collect();
    let oldest_lost = lost.iter().min_by_key(|m| m.seq).map(|m| ***m);
    CanaryTally {
        canary: canary.to_string(),
        written: acked.len() as u64,
        newest_written,
        newest_surviving,
        oldest_lost,
        lost: lost.len() as u64,
        rpo_ms: newest_surviving.map(|s| millis(fault - s.at)),
        lost_since_ms: Some(oldest_lost.map_or(0, |m| millis(fault - m.at))),
        interval_ms,
    }
}

fn millis(d: chrono::Duration) -> u64 {
    d.num_milliseconds().max(0) as u64
}

/// The RPO a run can prove: an interval, and how it was bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RpoBounds {
    /// Proven lost (canaries); none without canaries.
    pub lower_ms: Option<u64>,
    /// Not ruled out (the larger of the canaries' and the restored point's
    /// bound); none when nothing bounds it.
    pub upper_ms: Option<u64>,
    /// Whether anything measured the RPO at all (canaries or a restore).
    pub measured: bool,
    /// The canary bounds' resolution: the coarsest canary interval.
    pub resolution_ms: Option<u64>,
}

/// The interval from every canary and the restored points' age at the fault
/// (`nominal_ms`, the oldest restored point's).
pub fn rpo_bounds(tallies: &[CanaryTally], nominal_ms: Option<u64>) -> RpoBounds {
    let lower = tallies.iter().filter_map(|t| t.lost_since_ms).max();
    // A canary with no survivor bounds nothing from above.
    let canary_upper = if tallies.is_empty() {
        None
    } else if tallies.iter().all(|t| t.rpo_ms.is_some()) {
        tallies.iter().filter_map(|t| t.rpo_ms).max()
    } else {
        None
    };
    let upper = match (canary_upper, nominal_ms) {
        (Some(c), Some(n)) => Some(c.max(n)),
        (Some(c), None) => Some(c),
        (None, n) => n,
    };
    // The upper bound is never below what was proven lost.
    let upper = match (upper, lower) {
        (Some(u), Some(l)) => Some(u.max(l)),
        (u, _) => u,
    };
    RpoBounds {
        lower_ms: lower,
        upper_ms: upper,
        measured: !tallies.is_empty() || nominal_ms.is_some(),
        resolution_ms: tallies.iter().map(|t| t.interval_ms).max(),
    }
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

/// When the outage was seen: the first failed probe of any phase at or
/// after `from`.
pub fn detected_at(samples: &[Sample], from: Ms) -> Option<Ms> {
    samples
        .iter()
        .filter(|s| s.at_ms >= from && !s.ok)
        .map(|s| s.at_ms)
        .min()
}

/// Availability of the `during` probes between `from` (the fault delivered)
/// and `to`: the share of checks begun at or after `from` that passed, per
/// probe.
pub fn availability(samples: &[Sample], from: Ms, to: Ms) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in samples.iter().filter(|s| {
        s.phase == Phase::During && s.at_ms.saturating_sub(s.took_ms) >= from && s.at_ms <= to
    }) {
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

/// A step's span on the monotonic clock, and what kind it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub kind: &'static str,
    pub start_ms: Ms,
    pub end_ms: Ms,
}

/// What the phases are cut from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    pub fault_ms: Ms,
    /// When the fault step returned.
    pub injected_ms: Option<Ms>,
    pub detected_ms: Option<Ms>,
    pub recovered_ms: Option<Ms>,
    /// Restore, manual and wait steps.
    pub spans: Vec<Span>,
}

/// RTO and its phases. Each boundary is clamped between the one before it
/// and recovery, so the phases never overlap and always add up to the RTO.
/// Without recovery only the phases up to the last boundary seen are given.
pub fn breakdown(t: &Timeline) -> RtoBreakdown {
    let f = t.fault_ms;
    let end = t.recovered_ms.unwrap_or(Ms::MAX);
    let after_fault = |s: &&Span| s.start_ms >= f && s.start_ms < end;
    let restores: Vec<&Span> = t
        .spans
        .iter()
        .filter(after_fault)
        .filter(|s| s.kind == "restore")
        .collect();
    let deciding_end = t
        .spans
        .iter()
        .filter(after_fault)
        .filter(|s| matches!(s.kind, "manual" | "wait"))
        .map(|s| s.end_ms)
        .max();
    let clamp = |at: Ms, prev: Ms| at.max(prev).min(end.max(prev));
    let injected = clamp(t.injected_ms.unwrap_or(f), f);
    let detected = clamp(t.detected_ms.unwrap_or(injected), injected);
    let restore_start = clamp(
        restores
            .iter()
            .map(|s| s.start_ms)
            .min()
            .or(deciding_end)
            .unwrap_or(detected),
        detected,
    );
    let restore_end = clamp(
        restores
            .iter()
            .map(|s| s.end_ms)
            .max()
            .unwrap_or(restore_start),
        restore_start,
    );
    RtoBreakdown {
        rto_ms: t.recovered_ms.map(|r| r.saturating_sub(f)),
        injection_ms: injected - f,
        detection_ms: t.detected_ms.map(|_| detected - injected),
        decision_ms: restore_start - detected,
        restore_ms: restore_end - restore_start,
        verification_ms: t.recovered_ms.map(|r| r.max(restore_end) - restore_end),
    }
}

/// How the RPO is judged: not measured (no canary, no restore), bounded
/// above, or unbounded (nothing rules out any loss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpoJudged {
    NotMeasured,
    AtMost(u64),
    Unbounded,
}

impl RpoJudged {
    pub fn of(b: &RpoBounds) -> RpoJudged {
        match (b.measured, b.upper_ms) {
            (false, _) => RpoJudged::NotMeasured,
            (true, Some(u)) => RpoJudged::AtMost(u),
            (true, None) => RpoJudged::Unbounded,
        }
    }
}

/// The verdict from what happened: an abort wins, then any failure, then the
/// objectives (an unmeasured RTO is a failure: recovery was never seen; the
/// RPO is judged on its upper bound, and an unbounded one misses).
pub fn verdict(
    aborted: bool,
    failed: bool,
    rto_ms: Option<u64>,
    rpo: RpoJudged,
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
    let rpo_ok = match rpo {
        RpoJudged::NotMeasured => true,
        RpoJudged::AtMost(u) => u <= objectives.1,
        RpoJudged::Unbounded => false,
    };
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

    fn markers(n: u64, every_ms: i64) -> Vec<Marker> {
        (0..n)
            .map(|i| Marker {
                seq: i,
                at: t(i as i64 * every_ms),
            })
            .collect()
    }

    #[test]
    fn a_canary_bounds_the_loss_from_both_sides() {
        // Markers every 200 ms from 0; the fault at 1000 ms; the backup held
        // markers up to seq 2 (written at 400 ms).
        let written = markers(6, 200);
        let surviving = &written[..3];
        let got = tally("c", &written, surviving, t(1000), 200);
        assert_eq!(got.written, 6);
        assert_eq!(got.newest_surviving.map(|m| m.seq), Some(2));
        assert_eq!(got.oldest_lost.map(|m| m.seq), Some(3));
        assert_eq!(got.lost, 3, "seq 3, 4 and 5 were acknowledged and lost");
        assert_eq!(got.rpo_ms, Some(600), "data up to 400 ms survived");
        assert_eq!(got.lost_since_ms, Some(400), "data of 600 ms was lost");
        // Nothing lost: nothing proven lost, at most the last marker's age.
        let all = tally("c", &written, &written, t(1000), 200);
        assert_eq!(
            (all.lost, all.rpo_ms, all.lost_since_ms),
            (0, Some(0), Some(0))
        );
        // Nothing survived: all lost since the first one, no upper bound.
        let none = tally("c", &written, &[], t(1000), 200);
        assert_eq!(
            (none.lost, none.rpo_ms, none.lost_since_ms),
            (6, None, Some(1000))
        );
        // A marker written after the fault does not count as acknowledged.
        let late = [
            written.clone(),
            vec![Marker {
                seq: 6,
                at: t(1100),
            }],
        ]
        .concat();
        assert_eq!(tally("c", &late, surviving, t(1000), 200).written, 6);
    }

    #[test]
    fn the_rpo_interval_is_judged_on_its_upper_bound() {
        let written = markers(10, 200);
        // Restoring a point 12.1 s old, taken before the canaries began:
        // nothing survives; only the point bounds the loss.
        let old = tally("c", &written, &[], t(2000), 200);
        let b = rpo_bounds(std::slice::from_ref(&old), Some(12_100));
        assert_eq!((b.lower_ms, b.upper_ms), (Some(2000), Some(12_100)));
        assert_eq!(RpoJudged::of(&b), RpoJudged::AtMost(12_100));
        assert_eq!(
            verdict(false, false, Some(1000), RpoJudged::of(&b), (60_000, 5_000)),
            DrillVerdict::ObjectivesMissed,
            "an old point misses a 5 s objective however recent the canaries"
        );
        // A fresh point: the canaries' bound is the tighter truth, and the
        // larger of the two uppers is judged.
        let fresh = tally("c", &written, &written[..8], t(2000), 200);
        let b = rpo_bounds(std::slice::from_ref(&fresh), Some(500));
        assert_eq!((b.lower_ms, b.upper_ms), (Some(400), Some(600)));
        assert_eq!(b.resolution_ms, Some(200));
        // No survivor and no point: nothing bounds the loss.
        let b = rpo_bounds(&[old], None);
        assert_eq!(RpoJudged::of(&b), RpoJudged::Unbounded);
        assert_eq!(
            verdict(
                false,
                false,
                Some(1000),
                RpoJudged::Unbounded,
                (60_000, 5_000)
            ),
            DrillVerdict::ObjectivesMissed
        );
        // Neither canaries nor restores: not measured, not judged.
        assert_eq!(
            RpoJudged::of(&rpo_bounds(&[], None)),
            RpoJudged::NotMeasured
        );
    }

    #[test]
    fn rto_ends_when_every_after_probe_meets_its_threshold() {
        use Phase::{After, Before, During};
        let samples = vec![
            sample("db", After, 900, true), // before the fault: ignored
            sample("kv", Before, 1050, false),
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
            Some(1050),
            "the first failed probe of any phase"
        );
        let never = BTreeMap::from([("db".to_string(), 5)]);
        assert_eq!(recovered_at(&samples, 1000, &never), None);
        let avail = availability(&samples, 1000, 3000);
        assert_eq!(avail.get("web"), Some(&0.0));
    }

    #[test]
    fn availability_counts_only_checks_begun_after_the_fault_was_delivered() {
        use Phase::During;
        let mut s = vec![
            sample("etcd", During, 1005, true), // begun at 1004: before delivery
            sample("etcd", During, 1250, false),
            sample("etcd", During, 1450, false),
            sample("etcd", During, 1650, true),
        ];
        s[0].took_ms = 1;
        let a = availability(&s, 1100, 2000);
        assert_eq!(a.get("etcd"), Some(&(1.0 / 3.0)));
    }

    fn span(kind: &'static str, start_ms: Ms, end_ms: Ms) -> Span {
        Span {
            kind,
            start_ms,
            end_ms,
        }
    }

    #[test]
    fn the_phases_partition_the_rto() {
        let timeline = Timeline {
            fault_ms: 1000,
            injected_ms: Some(1010),
            detected_ms: Some(1200),
            recovered_ms: Some(10_000),
            spans: vec![
                span("backup", 0, 500),
                span("manual", 1010, 4010),
                span("restore", 4010, 9010),
            ],
        };
        let b = breakdown(&timeline);
        assert_eq!(b.rto_ms, Some(9000));
        assert_eq!(b.injection_ms, 10);
        assert_eq!(b.detection_ms, Some(190));
        assert_eq!(b.decision_ms, 2810);
        assert_eq!(b.restore_ms, 5000);
        assert_eq!(b.verification_ms, Some(990));
        let sum: u64 = b.phases().iter().map(|(_, ms)| ms).sum();
        assert_eq!(sum, 9000);
        // Detected only after the restore began: decision takes no time.
        let late = breakdown(&Timeline {
            detected_ms: Some(5000),
            ..timeline.clone()
        });
        assert_eq!(late.decision_ms, 0);
        assert_eq!(late.phases().iter().map(|(_, ms)| ms).sum::<u64>(), 9000);
        // Recovered while the restore still ran: the restore ends at recovery.
        let early = breakdown(&Timeline {
            recovered_ms: Some(6000),
            ..timeline
        });
        assert_eq!((early.restore_ms, early.verification_ms), (1990, Some(0)));
    }

    #[test]
    fn the_phases_add_up_on_any_timeline() {
        // A small deterministic generator: no extra dependency, many shapes.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound.max(1)
        };
        for _ in 0..20_000 {
            let fault_ms = next(10_000);
            let mut spans = Vec::new();
            for _ in 0..next(6) {
                let start = next(40_000);
                let kind = ["restore", "manual", "wait", "backup"][next(4) as usize];
                spans.push(span(kind, start, start + next(20_000)));
            }
            let opt = |v: u64, n: &mut dyn FnMut(u64) -> u64| (n(4) != 0).then_some(v);
            let t = Timeline {
                fault_ms,
                injected_ms: opt(fault_ms + next(3000), &mut next),
                detected_ms: opt(next(40_000), &mut next),
                recovered_ms: opt(fault_ms + next(50_000), &mut next),
                spans,
            };
            let b = breakdown(&t);
            if let Some(rto) = b.rto_ms {
                let sum: u64 = b.phases().iter().map(|(_, ms)| ms).sum();
                assert_eq!(sum, rto, "{t:?} -> {b:?}");
            }
        }
    }

    #[test]
    fn verdicts() {
        use DrillVerdict::*;
        use RpoJudged::*;
        let obj = (60_000, 10_000);
        let cases = [
            (false, false, Some(30_000), AtMost(5_000), Pass),
            (false, false, Some(30_000), NotMeasured, Pass),
            (false, false, Some(90_000), AtMost(5_000), ObjectivesMissed),
            (false, false, Some(30_000), AtMost(20_000), ObjectivesMissed),
            (false, false, Some(30_000), Unbounded, ObjectivesMissed),
            (false, false, None, AtMost(5_000), Failed),
            (false, true, Some(30_000), AtMost(5_000), Failed),
            (true, true, None, NotMeasured, Aborted),
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
