//! `report.md`: the report people read first, rendered from `report.json`.
//!
//! Renderer 1, frozen (see `report::v1`): never edit.

use std::fmt::Write;

use crate::report::{DrillReport, human_ms, opt_ms, phase_title};

pub fn render(r: &DrillReport) -> String {
    let mut out = String::new();
    let w = &mut out;
    head(w, r);
    objectives(w, r);
    canaries(w, r);
    steady_state_and_fault(w, r);
    steps(w, r);
    probes(w, r);
    restores(w, r);
    cleanup_and_errors(w, r);
    measurement(w, r);
    notes_and_retrospective(w, r);
    out
}

/// The title, the run and who ran it, and the summary.
fn head(w: &mut String, r: &DrillReport) {
    let _ = writeln!(w, "# Drill {}: {}", r.drill, r.verdict.label());
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "Run `{}`, {} to {} ({}), drill file `{}`, drtool {}.",
        r.run_id,
        r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        r.finished_at.format("%H:%M:%S UTC"),
        human_ms(r.duration_ms),
        r.file,
        r.drtool_version
    );
    if let Some(by) = &r.ran_by {
        let _ = writeln!(
            w,
            "Run by {} on {} via {}, with config `{}` (sha256 {}).",
            by.user,
            by.host,
            by.via,
            by.config,
            by.config_sha256.as_deref().unwrap_or("unreadable")
        );
    }
    if let Some(d) = &r.description {
        let _ = writeln!(w, "\n{d}");
    }
    let _ = writeln!(w, "\n## Summary\n");
    for line in &r.summary {
        let _ = writeln!(w, "- {line}");
    }
}

/// RTO and RPO against their objectives, and the RTO's phases.
fn objectives(w: &mut String, r: &DrillReport) {
    let _ = writeln!(w, "\n## Objectives\n");
    let _ = writeln!(w, "| measure | result | objective | met |");
    let _ = writeln!(w, "|---|---|---|---|");
    let met = |v: Option<u64>, o: u64| match v {
        Some(v) if v <= o => "yes",
        Some(_) => "NO",
        None => "not measured",
    };
    let _ = writeln!(
        w,
        "| RTO | {} | {} | {} |",
        opt_ms(r.rto.rto_ms),
        human_ms(r.objectives.rto_ms),
        met(r.rto.rto_ms, r.objectives.rto_ms)
    );
    let _ = writeln!(
        w,
        "| RPO (upper bound, judged) | {} | {} | {} |",
        match (r.rpo.upper_ms, r.rpo.lower_ms) {
            (None, Some(_)) => "unbounded".to_string(),
            (u, _) => opt_ms(u),
        },
        human_ms(r.objectives.rpo_ms),
        match (r.rpo.upper_ms, r.rpo.lower_ms) {
            (None, Some(_)) => "NO",
            (u, _) => met(u, r.objectives.rpo_ms),
        }
    );
    let _ = writeln!(
        w,
        "| RPO (lower bound, proven lost) | {} | | |",
        opt_ms(r.rpo.lower_ms)
    );
    let _ = writeln!(w, "\nRPO evidence: {}.", r.rpo.bound);
    let phases: Vec<String> = r
        .rto
        .phases()
        .iter()
        .map(|(name, ms)| format!("{name} {}", human_ms(*ms)))
        .collect();
    let _ = writeln!(
        w,
        "\nRTO by phase (consecutive, adding up to the RTO): {}.",
        phases.join(", ")
    );
}

/// What each canary wrote and what survived.
fn canaries(w: &mut String, r: &DrillReport) {
    if !r.rpo.canaries.is_empty() {
        let _ = writeln!(w, "\n## Canaries\n");
        let _ = writeln!(
            w,
            "| canary | written | newest surviving | oldest lost | lost | RPO bounds |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|---|");
        for c in &r.rpo.canaries {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} to {} (every {}) |",
                c.canary,
                c.written,
                crate::report::facts::Marker::describe(c.newest_surviving),
                crate::report::facts::Marker::describe(c.oldest_lost),
                c.lost,
                opt_ms(c.lost_since_ms),
                c.rpo_ms.map_or("unbounded".to_string(), human_ms),
                human_ms(c.interval_ms)
            );
        }
    }
}

/// The steady state before and after, and the fault.
fn steady_state_and_fault(w: &mut String, r: &DrillReport) {
    let _ = writeln!(
        w,
        "\n## Steady state\n\n{}: {}",
        if r.steady_state.ok {
            "held"
        } else {
            "DID NOT HOLD"
        },
        r.steady_state.detail
    );
    if let Some(after) = &r.steady_state_after {
        let _ = writeln!(
            w,
            "\nAfter recovery: {} ({}).",
            if after.ok {
                "steady state restored: yes"
            } else {
                "steady state restored: NO"
            },
            after.detail
        );
    }
    if let Some(f) = &r.fault {
        let _ = writeln!(
            w,
            "\n## Fault\n\n{} at {} (+{}).",
            f.description,
            f.at.format("%H:%M:%S%.3f UTC"),
            human_ms(f.at_ms)
        );
    }
}

/// Every step, with its timing and outcome.
fn steps(w: &mut String, r: &DrillReport) {
    let _ = writeln!(w, "\n## Steps\n");
    let _ = writeln!(w, "| step | kind | start | duration | outcome | detail |");
    let _ = writeln!(w, "|---|---|---|---|---|---|");
    for s in &r.steps {
        let name = match &s.group {
            Some(g) => format!("{g} / {}", s.name),
            None => s.name.clone(),
        };
        let _ = writeln!(
            w,
            "| {name} | {} | +{} | {} | {} | {} |",
            s.kind,
            human_ms(s.start_ms),
            human_ms(s.end_ms.saturating_sub(s.start_ms)),
            s.outcome.label(),
            cell(&s.message)
        );
    }
}

/// The probes of each phase.
fn probes(w: &mut String, r: &DrillReport) {
    let _ = writeln!(w, "\n## Probes\n");
    for (phase, probes) in r.probes_by_phase() {
        let _ = writeln!(w, "**{}**\n", phase_title(phase));
        let _ = writeln!(w, "| probe | check | runs | passed | failed | result |");
        let _ = writeln!(w, "|---|---|---|---|---|---|");
        for p in probes {
            let result = cell(&p.result_text());
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} |",
                p.probe,
                cell(&p.check),
                p.runs,
                p.passes,
                p.failures,
                result
            );
        }
        let _ = writeln!(w);
    }
}

/// What each restore restored.
fn restores(w: &mut String, r: &DrillReport) {
    if !r.restores.is_empty() {
        let _ = writeln!(w, "## Restores\n");
        for rs in &r.restores {
            let _ = writeln!(
                w,
                "- {}: {} in {} from point `{}` (consistent {}): {}",
                rs.step,
                rs.target,
                rs.region,
                rs.point.as_deref().unwrap_or("-"),
                rs.consistent_at.map_or("-".to_string(), |t| t
                    .format("%H:%M:%S%.3f UTC")
                    .to_string()),
                rs.result
                    .as_deref()
                    .unwrap_or("cut off before it could say")
            );
        }
        let _ = writeln!(w);
    }
}

/// What was cleaned up, and the errors.
fn cleanup_and_errors(w: &mut String, r: &DrillReport) {
    let _ = writeln!(w, "## Cleanup\n");
    if r.cleanup.is_empty() {
        let _ = writeln!(w, "Nothing to clean up.");
    }
    for c in &r.cleanup {
        let _ = writeln!(
            w,
            "- {} {}: {}",
            if c.ok { "ok" } else { "FAILED" },
            c.what,
            c.message
        );
    }

    if !r.errors.is_empty() {
        let _ = writeln!(w, "\n## Errors\n");
        for e in &r.errors {
            let _ = writeln!(w, "- {e}");
        }
    }
}

/// How finely it was measured, where it is stored, its seal or signature.
fn measurement(w: &mut String, r: &DrillReport) {
    let _ = writeln!(
        w,
        "\n## Measurement\n\nTimeline resolution {} (the shortest probe interval); probe results were {} late on average; the runner spent {} between steps.",
        human_ms(r.overhead.resolution_ms),
        human_ms(r.overhead.probe_lateness_ms),
        human_ms(r.overhead.between_steps_ms)
    );
    if !r.uploaded_to.is_empty() {
        let _ = writeln!(
            w,
            "Stored in the drills/ folder of {}.",
            r.uploaded_to.join(", ")
        );
    }
    match (&r.signature, &r.seal) {
        (Some(sig), _) => {
            let _ = writeln!(
                w,
                "Signed by ed25519 key {} over the timeline's hash chain (head {}) and every measure; `drtool report verify {}` checks it.",
                sig.key, sig.chain_head, r.run_id
            );
        }
        (None, Some(seal)) => {
            let _ = writeln!(
                w,
                "Not signed; sealed with the timeline's hash chain (head {}) and content hash {}: `drtool report verify {}` checks them.",
                seal.chain_head, seal.content_sha256, r.run_id
            );
        }
        (None, None) => {}
    }
}

/// Notes added since, and the retrospective.
fn notes_and_retrospective(w: &mut String, r: &DrillReport) {
    let _ = writeln!(w, "\n## Notes\n");
    if r.notes.is_empty() {
        let _ = writeln!(
            w,
            "None yet: `drtool report note {} \"...\"` adds one.",
            r.run_id
        );
    }
    for n in &r.notes {
        let _ = writeln!(
            w,
            "- {}, {}: {}",
            n.at.format("%Y-%m-%d %H:%M UTC"),
            n.author.as_deref().unwrap_or("unknown author"),
            n.text
        );
    }
    let _ = writeln!(w, "\n## Retrospective\n");
    let list = |items: &[String]| {
        if items.is_empty() {
            "- (to be filled in)\n".to_string()
        } else {
            items.iter().map(|i| format!("- {i}\n")).collect()
        }
    };
    let _ = write!(
        w,
        "Problems seen:\n\n{}\nImprovements:\n\n{}",
        list(&r.retrospective.problems),
        list(&r.retrospective.improvements)
    );
}

/// Text that stays inside one Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
