//! Every exit code drtool returns, and the one place that decides which: a
//! command ends with an [`Exit`] (an engine verdict, a drill verdict or a
//! code of its own) and [`code`] turns it, with the signal that stopped the
//! run if any, into the process's exit code. The README's "Exit codes" table
//! lists the same codes (a test checks they agree).

use crate::engine::Verdict;
use crate::error::ErrorClass;
use crate::report::DrillVerdict;

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const PARTIAL: u8 = 3;
pub const UNREACHABLE: u8 = 4;
pub const INTEGRITY: u8 = 5;
pub const NOT_CONFIRMED: u8 = 6;
/// The drill ran, and RTO or RPO was over its objective.
pub const OBJECTIVES_MISSED: u8 = 7;
/// A step, the steady state, recovery or cleanup of a drill failed.
pub const DRILL_FAILED: u8 = 8;
/// A restore refused by its existing-policy (`--existing fail` found data).
pub const EXISTS: u8 = 9;
pub const SIGHUP: u8 = 129;
pub const SIGINT: u8 = 130;
pub const SIGTERM: u8 = 143;

/// Every code above, in the order the README lists them.
pub const ALL: [u8; 13] = [
    OK,
    FAILED,
    BAD_INPUT,
    PARTIAL,
    UNREACHABLE,
    INTEGRITY,
    NOT_CONFIRMED,
    OBJECTIVES_MISSED,
    DRILL_FAILED,
    EXISTS,
    SIGHUP,
    SIGINT,
    SIGTERM,
];

/// The signal that stopped a run (or, in the dashboard, a lost terminal,
/// which counts as SIGHUP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    Hangup,
}

impl Signal {
    pub fn code(self) -> u8 {
        match self {
            Signal::Interrupt => SIGINT,
            Signal::Terminate => SIGTERM,
            Signal::Hangup => SIGHUP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "interrupted (SIGINT)",
            Signal::Terminate => "terminated (SIGTERM)",
            Signal::Hangup => "hung up (SIGHUP: the terminal went away)",
        }
    }
}

/// What a command ended with, before the signal that stopped it (if any)
/// is taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Verdict(Verdict),
    Drill(DrillVerdict),
    Code(u8),
}

impl From<Verdict> for Exit {
    fn from(v: Verdict) -> Exit {
        Exit::Verdict(v)
    }
}

/// The process's exit code. A run a signal stopped exits with the signal's
/// code, unless it still succeeded as a whole (an engine run that was done,
/// a drill that passed).
pub fn code(exit: Exit, signal: Option<Signal>) -> u8 {
    match exit {
        Exit::Verdict(v) => of_verdict(v, signal),
        Exit::Drill(DrillVerdict::Pass) => OK,
        Exit::Drill(DrillVerdict::Aborted) => of_verdict(Verdict::Cancelled, signal),
        _ if signal.is_some() => of_verdict(Verdict::Cancelled, signal),
        Exit::Code(c) => c,
        Exit::Drill(DrillVerdict::ObjectivesMissed) => OBJECTIVES_MISSED,
        Exit::Drill(DrillVerdict::Failed) => DRILL_FAILED,
    }
}

/// The exit code of an engine verdict; a cancelled run exits with its
/// signal's code (SIGINT's when none was seen: an operator's abort).
pub fn of_verdict(verdict: Verdict, signal: Option<Signal>) -> u8 {
    match verdict {
        Verdict::Ok => OK,
        Verdict::Partial => PARTIAL,
        Verdict::Failed(ErrorClass::Cancelled) | Verdict::Cancelled => {
            signal.map_or(SIGINT, Signal::code)
        }
        Verdict::Failed(class) => of_class(class),
    }
}

/// The exit code of an error of this class.
pub fn of_class(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::BadInput => BAD_INPUT,
        ErrorClass::Unreachable => UNREACHABLE,
        ErrorClass::Integrity => INTEGRITY,
        ErrorClass::NotConfirmed => NOT_CONFIRMED,
        ErrorClass::Exists => EXISTS,
        ErrorClass::Cancelled => SIGINT,
        ErrorClass::Failed => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes as the README documents them (literals on purpose).
    #[test]
    fn verdicts_and_signals_map_to_their_codes() {
        let int = Some(Signal::Interrupt);
        let term = Some(Signal::Terminate);
        let hup = Some(Signal::Hangup);
        for (exit, signal, want) in [
            (Exit::Verdict(Verdict::Ok), None, 0),
            (Exit::Verdict(Verdict::Ok), term, 0),
            (Exit::Verdict(Verdict::Partial), None, 3),
            (Exit::Verdict(Verdict::Cancelled), None, 130),
            (Exit::Verdict(Verdict::Cancelled), term, 143),
            (Exit::Verdict(Verdict::Cancelled), hup, 129),
            (
                Exit::Verdict(Verdict::Failed(ErrorClass::Cancelled)),
                hup,
                129,
            ),
            (
                Exit::Verdict(Verdict::Failed(ErrorClass::Integrity)),
                None,
                5,
            ),
            (Exit::Verdict(Verdict::Failed(ErrorClass::Exists)), None, 9),
            (Exit::Verdict(Verdict::Failed(ErrorClass::Failed)), None, 1),
            (
                Exit::Verdict(Verdict::Failed(ErrorClass::BadInput)),
                None,
                2,
            ),
            (
                Exit::Verdict(Verdict::Failed(ErrorClass::Unreachable)),
                None,
                4,
            ),
            (
                Exit::Verdict(Verdict::Failed(ErrorClass::NotConfirmed)),
                None,
                6,
            ),
            (Exit::Drill(DrillVerdict::Pass), None, 0),
            (Exit::Drill(DrillVerdict::Pass), int, 0),
            (Exit::Drill(DrillVerdict::ObjectivesMissed), None, 7),
            (Exit::Drill(DrillVerdict::ObjectivesMissed), term, 143),
            (Exit::Drill(DrillVerdict::Failed), None, 8),
            (Exit::Drill(DrillVerdict::Aborted), None, 130),
            (Exit::Drill(DrillVerdict::Aborted), hup, 129),
            (Exit::Code(NOT_CONFIRMED), None, 6),
            (Exit::Code(OK), int, 130),
        ] {
            assert_eq!(code(exit, signal), want, "{exit:?} {signal:?}");
        }
    }

    #[test]
    fn every_class_has_its_own_code() {
        let classes = ErrorClass::ALL;
        let codes: std::collections::BTreeSet<u8> = classes.iter().map(|c| of_class(*c)).collect();
        assert_eq!(codes.len(), classes.len());
    }

    /// The README's table lists exactly these codes, in this order.
    #[test]
    fn readme_lists_every_code() {
        let readme = include_str!("../README.md");
        let table = readme.split("### Exit codes").nth(1).unwrap_or_default();
        let listed: Vec<u8> = table
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.trim_matches('|').split('|').next()?.trim().parse().ok())
            .collect();
        assert_eq!(listed, ALL);
    }
}
