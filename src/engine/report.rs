//! What a run did: one [`ItemReport`] per target, region and operation, and the
//! [`Verdict`] that follows from them. Front ends render reports and map the
//! verdict to an exit code or an alert; they never re-derive it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::error::{Error, ErrorClass};

/// What a job or a report item was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Backup,
    Copy,
    Verify,
    /// Planning a restore (reads the point and the target, changes nothing).
    Plan,
    Restore,
    Delete,
    /// Removing what belongs to no recovery point.
    Gc,
    /// A drill's fault injection.
    Fault,
    /// A drill's cleanup (undoing what a restore made).
    Cleanup,
    /// Restoring a point into a scratch place and checking it.
    RestoreTest,
    /// Checking that stores and endpoints answer.
    Reach,
    /// Changing a point's retention by hand.
    Retain,
    /// Following a source between points (a continuous stream).
    Stream,
    /// Reading what a point holds (`drtool ls`).
    List,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Copy => "copy",
            Operation::Verify => "verify",
            Operation::Plan => "plan",
            Operation::Restore => "restore",
            Operation::Delete => "delete",
            Operation::Retain => "retain",
            Operation::Gc => "gc",
            Operation::Fault => "fault",
            Operation::Cleanup => "cleanup",
            Operation::RestoreTest => "restore-test",
            Operation::Reach => "reach",
            Operation::Stream => "stream",
            Operation::List => "list",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so tables can align it with `{:<8}`.
        f.pad(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    /// Done, with something the user should know (e.g. plaintext not checked).
    Warning,
    Failed,
    /// Nothing to do (e.g. the destination already holds the point).
    Skipped,
    /// Stopped by a cancellation before it finished; nothing half-done was kept.
    Cancelled,
    /// A dry run: what would be done, checked as far as it can be without
    /// writing.
    Planned,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "OK",
            Outcome::Warning => "WARN",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "SKIPPED",
            Outcome::Cancelled => "CANCELLED",
            Outcome::Planned => "PLAN",
        }
    }
}

/// One thing a run did (or failed to do) for one target in one region.
#[derive(Debug, Clone, Serialize)]
pub struct ItemReport {
    pub operation: Operation,
    pub target: String,
    pub region: String,
    pub point: Option<String>,
    pub outcome: Outcome,
    /// Set when the outcome is failed or cancelled.
    pub error_class: Option<ErrorClass>,
    pub message: String,
    /// What was counted (keys, objects per kind, ...).
    pub counts: BTreeMap<String, u64>,
    /// Bytes moved (plaintext for backups and restores, stored for copies).
    pub bytes: Option<u64>,
    pub duration_ms: u64,
}

impl ItemReport {
    pub fn new(operation: Operation, target: &str, region: &str, point: Option<String>) -> Self {
        ItemReport {
            operation,
            target: target.to_string(),
            region: region.to_string(),
            point,
            outcome: Outcome::Ok,
            error_class: None,
            message: String::new(),
            counts: BTreeMap::new(),
            bytes: None,
            duration_ms: 0,
        }
    }

    pub fn ok(mut self, message: impl Into<String>) -> Self {
        self.outcome = Outcome::Ok;
        self.message = message.into();
        self
    }

    pub fn with_outcome(mut self, outcome: Outcome, message: impl Into<String>) -> Self {
        self.outcome = outcome;
        self.message = message.into();
        self
    }

    /// A failure, or a cancellation when the error is one.
    pub fn failed(mut self, err: &Error) -> Self {
        let class = err.class();
        self.outcome = if class == ErrorClass::Cancelled {
            Outcome::Cancelled
        } else {
            Outcome::Failed
        };
        self.error_class = Some(class);
        self.message = err.to_string();
        self
    }

    pub fn timed(mut self, started: std::time::Instant) -> Self {
        self.duration_ms = started.elapsed().as_millis() as u64;
        self
    }
}

/// The result of one engine call over a selection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub items: Vec<ItemReport>,
}

/// The overall result of a run, from which exit codes and alerts follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "verdict", content = "class", rename_all = "kebab-case")]
pub enum Verdict {
    /// Nothing failed (warnings and skips included).
    Ok,
    /// Some items succeeded and some failed.
    Partial,
    /// Nothing succeeded; the class of the first failure.
    Failed(ErrorClass),
    /// The run was cancelled before it finished.
    Cancelled,
}

impl RunReport {
    pub fn push(&mut self, item: ItemReport) {
        self.items.push(item);
    }

    pub fn extend(&mut self, other: RunReport) {
        self.items.extend(other.items);
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn verdict(&self) -> Verdict {
        verdict_of(self.items.iter().map(|i| (i.outcome, i.error_class)))
    }
}

/// The verdict of a list of outcomes: a cancellation wins, then an integrity
/// failure anywhere, then no failure is ok, a failure next to a success is
/// partial, and failures alone take the class of the first one.
pub fn verdict_of(items: impl IntoIterator<Item = (Outcome, Option<ErrorClass>)>) -> Verdict {
    let mut first_failure = None;
    let mut integrity = false;
    let mut succeeded = false;
    for (outcome, class) in items {
        match outcome {
            Outcome::Cancelled => return Verdict::Cancelled,
            Outcome::Failed => {
                integrity |= class == Some(ErrorClass::Integrity);
                first_failure.get_or_insert(class.unwrap_or(ErrorClass::Failed));
            }
            Outcome::Ok | Outcome::Warning | Outcome::Planned => succeeded = true,
            Outcome::Skipped => {}
        }
    }
    // A damaged point anywhere is what the run says, whatever else went well.
    match first_failure {
        None => Verdict::Ok,
        Some(_) if integrity => Verdict::Failed(ErrorClass::Integrity),
        Some(_) if succeeded => Verdict::Partial,
        Some(class) => Verdict::Failed(class),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ErrorClass::{BadInput, Integrity, Unreachable};
    use Outcome::{Cancelled, Failed, Ok as Done, Skipped, Warning};

    #[test]
    fn verdicts_follow_the_outcomes() {
        type Case<'a> = (&'a [(Outcome, Option<ErrorClass>)], Verdict);
        let cases: &[Case] = &[
            (&[], Verdict::Ok),
            (&[(Done, None), (Warning, None)], Verdict::Ok),
            (&[(Skipped, None)], Verdict::Ok),
            (
                &[(Done, None), (Failed, Some(Unreachable))],
                Verdict::Partial,
            ),
            // An integrity failure wins over a partial success.
            (
                &[(Warning, None), (Failed, Some(Integrity))],
                Verdict::Failed(Integrity),
            ),
            (
                &[
                    (Failed, Some(Unreachable)),
                    (Done, None),
                    (Failed, Some(Integrity)),
                ],
                Verdict::Failed(Integrity),
            ),
            (
                &[(Failed, Some(Integrity)), (Failed, Some(Unreachable))],
                Verdict::Failed(Integrity),
            ),
            // A skip is not a success: nothing was done.
            (
                &[(Skipped, None), (Failed, Some(BadInput))],
                Verdict::Failed(BadInput),
            ),
            (&[(Failed, None)], Verdict::Failed(ErrorClass::Failed)),
            (
                &[(Done, None), (Cancelled, Some(ErrorClass::Cancelled))],
                Verdict::Cancelled,
            ),
            (
                &[(Failed, Some(Integrity)), (Cancelled, None)],
                Verdict::Cancelled,
            ),
        ];
        for (items, want) in cases {
            assert_eq!(verdict_of(items.iter().copied()), *want, "{items:?}");
        }
    }

    #[test]
    fn a_cancellation_error_makes_a_cancelled_item() {
        let item =
            ItemReport::new(Operation::Backup, "t", "r", None).failed(&Error::cancelled("stop"));
        assert_eq!(item.outcome, Outcome::Cancelled);
        assert_eq!(item.error_class, Some(ErrorClass::Cancelled));
    }
}
