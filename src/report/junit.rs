//! `junit.xml`: one testcase per objective and per step, for CI systems,
//! written by `quick-junit` (nextest's JUnit writer). The reason of a
//! failure is in the element's text too, since some CI systems show only
//! that and ignore the `message` attribute.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{DrillReport, StepOutcome, human_ms, opt_ms};

struct Case {
    name: String,
    took: Duration,
    failure: Option<String>,
    skipped: bool,
}

/// One case per objective, step and cleanup action, in that order.
fn cases(r: &DrillReport) -> Vec<Case> {
    let mut cases = Vec::new();
    let objective = |name: &str, got: Option<u64>, limit: u64| Case {
        name: name.to_string(),
        took: Duration::ZERO,
        failure: match got {
            Some(v) if v <= limit => None,
            Some(v) => Some(format!(
                "{name} {} is over the objective {}",
                human_ms(v),
                human_ms(limit)
            )),
            None => Some(format!(
                "{name} was not measured (objective {})",
                human_ms(limit)
            )),
        },
        skipped: false,
    };
    cases.push(objective("RTO", r.rto.rto_ms, r.objectives.rto_ms));
    let mut rpo = objective("RPO", r.rpo.judged_ms(), r.objectives.rpo_ms);
    if r.rpo.unbounded() {
        rpo.failure = Some(format!(
            "RPO has no upper bound (objective {}): {}",
            human_ms(r.objectives.rpo_ms),
            r.rpo.bound
        ));
    }
    cases.push(rpo);
    for s in &r.steps {
        let name = match &s.group {
            Some(g) => format!("step {g}/{} ({})", s.name, s.kind),
            None => format!("step {} ({})", s.name, s.kind),
        };
        cases.push(Case {
            name,
            took: Duration::from_millis(s.end_ms.saturating_sub(s.start_ms)),
            failure: match s.outcome {
                StepOutcome::Ok | StepOutcome::Skipped => None,
                o => Some(format!("{}: {}", o.label(), s.message)),
            },
            skipped: s.outcome == StepOutcome::Skipped,
        });
    }
    for c in &r.cleanup {
        cases.push(Case {
            name: format!("cleanup {}", c.what),
            took: Duration::ZERO,
            failure: (!c.ok).then(|| c.message.clone()),
            skipped: false,
        });
    }
    cases
}

pub fn render(r: &DrillReport) -> String {
    let took = Duration::from_millis(r.duration_ms);
    let mut suite = TestSuite::new(r.drill.as_str());
    suite
        .set_timestamp(r.started_at.fixed_offset())
        .set_time(took)
        .add_properties([
            Property::new("run", r.run_id.as_str()),
            Property::new("verdict", r.verdict.label()),
            Property::new("rto", opt_ms(r.rto.rto_ms)),
            Property::new("rpo", opt_ms(r.rpo.judged_ms())),
        ]);
    for c in cases(r) {
        let status = match (c.failure, c.skipped) {
            (Some(f), _) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(f.as_str()).set_description(f);
                status
            }
            (None, true) => TestCaseStatus::skipped(),
            (None, false) => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(c.name, status);
        case.set_classname(r.drill.as_str()).set_time(c.took);
        suite.add_test_case(case);
    }
    let mut report = Report::new("drtool drills");
    report.set_time(took).add_test_suite(suite);
    // Serializing into memory fails only on an I/O error, which a String
    // does not have.
    report.to_string().unwrap_or_else(|e| {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- cannot write the JUnit report: {e} -->\n<testsuites/>\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_snapshot() {
        insta::assert_snapshot!(render(&crate::report::tests::sample()));
    }

    #[test]
    fn a_missed_objective_fails_with_its_reason_in_the_text() {
        let mut r = crate::report::tests::sample();
        r.rto.rto_ms = Some(400_000);
        let xml = render(&r);
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert!(
            xml.contains(">RTO 6m 40s is over the objective 5m 0s</failure>"),
            "{xml}"
        );
    }

    #[test]
    fn junit_troubled_snapshot() {
        insta::assert_snapshot!(render(&crate::report::tests::troubled()));
    }

    #[test]
    fn terminal_colours_and_control_characters_never_reach_the_xml() {
        let mut r = crate::report::tests::troubled();
        r.steps[4].message = "\u{1b}[31mpg_restore\u{1b}[0m: bad\u{0}byte\u{7}".into();
        let xml = render(&r);
        assert!(!xml.contains('\u{1b}') && !xml.contains('\u{0}') && !xml.contains('\u{7}'));
        let back = quick_junit::Report::deserialize_from_str(&xml)
            .unwrap_or_else(|e| panic!("not JUnit XML: {e}\n{xml}"));
        assert_eq!((back.tests, back.failures, back.skipped), (11, 4, 1));
        assert!(
            xml.contains(">FAILED: pg_restore: badbyte</failure>"),
            "{xml}"
        );
    }
}
