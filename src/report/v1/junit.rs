//! `junit.xml`: one testcase per objective and per step, for CI systems. The
//! reason of a failure is in the element's text too, since some CI systems
//! show only that and ignore the `message` attribute.
//!
//! Renderer 1, frozen (see `report::v1`): never edit.

use std::fmt::Write;

use crate::report::{DrillReport, StepOutcome, human_ms, opt_ms};

fn esc(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

struct Case {
    name: String,
    secs: f64,
    failure: Option<String>,
    skipped: bool,
}

/// One case per objective, step and cleanup action, in that order.
fn cases(r: &DrillReport) -> Vec<Case> {
    let mut cases = Vec::new();
    let objective = |name: &str, got: Option<u64>, limit: u64| Case {
        name: name.to_string(),
        secs: 0.0,
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
    if r.rpo.upper_ms.is_none() && r.rpo.lower_ms.is_some() {
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
            secs: s.end_ms.saturating_sub(s.start_ms) as f64 / 1000.0,
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
            secs: 0.0,
            failure: (!c.ok).then(|| c.message.clone()),
            skipped: false,
        });
    }
    cases
}

pub fn render(r: &DrillReport) -> String {
    let cases = cases(r);
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let skipped = cases.iter().filter(|c| c.skipped).count();
    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<testsuites name="drtool drills" tests="{}" failures="{failures}" skipped="{skipped}" time="{:.3}">"#,
        cases.len(),
        r.duration_ms as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        r#"  <testsuite name="{}" tests="{}" failures="{failures}" skipped="{skipped}" time="{:.3}" timestamp="{}">"#,
        esc(&r.drill),
        cases.len(),
        r.duration_ms as f64 / 1000.0,
        r.started_at.format("%Y-%m-%dT%H:%M:%S")
    );
    let _ = writeln!(
        out,
        r#"    <properties><property name="run" value="{}"/><property name="verdict" value="{}"/><property name="rto" value="{}"/><property name="rpo" value="{}"/></properties>"#,
        esc(&r.run_id),
        r.verdict.label(),
        opt_ms(r.rto.rto_ms),
        opt_ms(r.rpo.judged_ms())
    );
    for c in &cases {
        let head = format!(
            r#"    <testcase classname="{}" name="{}" time="{:.3}""#,
            esc(&r.drill),
            esc(&c.name),
            c.secs
        );
        match (&c.failure, c.skipped) {
            (Some(f), _) => {
                let _ = writeln!(out, "{head}>");
                let _ = writeln!(
                    out,
                    r#"      <failure message="{}">{}</failure>"#,
                    esc(f),
                    esc(f)
                );
                let _ = writeln!(out, "    </testcase>");
            }
            (None, true) => {
                let _ = writeln!(out, "{head}><skipped/></testcase>");
            }
            (None, false) => {
                let _ = writeln!(out, "{head}/>");
            }
        }
    }
    let _ = writeln!(out, "  </testsuite>");
    let _ = writeln!(out, "</testsuites>");
    out
}
