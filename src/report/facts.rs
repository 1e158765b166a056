//! What a drill measured, as its report carries it: probe samples by phase,
//! canary markers and tallies, the RTO's phases and the verdict. The drill
//! computes them (`drill::measure`, which re-exports them); reports only
//! read them, so this module depends on nothing of the drill's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Milliseconds on the drill's monotonic clock (0 = the drill started).
pub type Ms = u64;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Steady state: must hold before a fault is injected.
    Before,
    /// From the fault to recovery: records availability.
    During,
    /// Defines recovery: RTO ends when every one meets its threshold.
    After,
    /// Watches a service the drill must not harm, from start to end: when it
    /// fails `failure_threshold` times in a row the drill stops and cleans
    /// up (AWS FIS's stop conditions).
    Guard,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::During => "during",
            Phase::After => "after",
            Phase::Guard => "guard",
        }
    }
}

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

impl Marker {
    /// `#3 at 11:06:40.800`, or `none`.
    pub fn describe(m: Option<Marker>) -> String {
        m.map_or("none".to_string(), |m| {
            format!("#{} at {}", m.seq, m.at.format("%H:%M:%S%.3f"))
        })
    }
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
    /// The oldest acknowledged marker not found after recovery.
    #[serde(default)]
    pub oldest_lost: Option<Marker>,
    /// Acknowledged markers not found after recovery.
    pub lost: u64,
    /// Upper bound from this canary: the fault's time minus the newest
    /// surviving marker's write time (none when nothing survived).
    pub rpo_ms: Option<u64>,
    /// Lower bound from this canary: the fault's time minus the oldest lost
    /// marker's write time (0 when nothing was lost).
    #[serde(default)]
    pub lost_since_ms: Option<u64>,
    /// The canary's interval: how finely its markers resolve the loss.
    #[serde(default)]
    pub interval_ms: u64,
}

/// RTO and where its time went: consecutive phases from the fault to
/// recovery whose sum is the RTO.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RtoBreakdown {
    pub rto_ms: Option<u64>,
    /// From the fault until the fault step returned.
    #[serde(default)]
    pub injection_ms: u64,
    /// Until the first failed probe (of any phase); none when no probe failed.
    pub detection_ms: Option<u64>,
    /// Until the first restore step started (manual and wait steps, and
    /// whatever else ran before it).
    pub decision_ms: u64,
    /// Until the last restore step that started before recovery ended.
    pub restore_ms: u64,
    /// Until recovery.
    pub verification_ms: Option<u64>,
}

impl RtoBreakdown {
    /// The phases in order, with their names, as reports show them.
    pub fn phases(&self) -> [(&'static str, u64); 5] {
        [
            ("fault injection", self.injection_ms),
            ("detection", self.detection_ms.unwrap_or(0)),
            ("decision", self.decision_ms),
            ("restore", self.restore_ms),
            ("verification", self.verification_ms.unwrap_or(0)),
        ]
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
