//! `report.html`: one self-contained page (inline CSS and SVG, no script, no
//! external resource) that opens anywhere, also offline at 3 a.m.
//!
//! Renderer 1, frozen (see `report::v1`): never edit.

use std::fmt::Write;

use crate::report::facts::DrillVerdict;
use crate::report::{DrillReport, StepOutcome, human_ms, opt_ms, phase_title};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#222;padding:0 1rem}\
h1{margin-bottom:.2rem}.muted{color:#666}table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}\
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}\
.pass{color:#1a7f37}.fail{color:#cf222e}.warn{color:#9a6700}.badge{display:inline-block;padding:.2rem .6rem;border-radius:.3rem;color:#fff;font-weight:600}\
.b-pass{background:#1a7f37}.b-fail{background:#cf222e}.b-warn{background:#9a6700}svg{background:#fafafa;border:1px solid #eee}";

fn verdict_class(v: DrillVerdict) -> &'static str {
    match v {
        DrillVerdict::Pass => "b-pass",
        DrillVerdict::ObjectivesMissed => "b-warn",
        DrillVerdict::Failed | DrillVerdict::Aborted => "b-fail",
    }
}

pub fn render(r: &DrillReport) -> String {
    let mut o = String::new();
    head(&mut o, r);
    objectives(&mut o, r);
    timeline(&mut o, r);
    if !r.rpo.canaries.is_empty() {
        canaries(&mut o, r);
    }
    steps(&mut o, r);
    probes(&mut o, r);
    restores(&mut o, r);
    cleanup_and_errors(&mut o, r);
    notes_and_retrospective(&mut o, r);
    integrity_and_measurement(&mut o, r);
    o
}

/// The page's head, the title with the verdict, who ran it, the summary.
fn head(o: &mut String, r: &DrillReport) {
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Drill {} {}</title><style>{STYLE}</style></head><body>",
        esc(&r.drill),
        esc(&r.run_id)
    );
    let _ = write!(
        o,
        "<h1>Drill {} <span class=\"badge {}\">{}</span></h1><p class=\"muted\">Run {} · {} · {} · {}</p>",
        esc(&r.drill),
        verdict_class(r.verdict),
        r.verdict.label(),
        esc(&r.run_id),
        r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        human_ms(r.duration_ms),
        esc(&r.file)
    );
    if let Some(by) = &r.ran_by {
        let _ = write!(
            o,
            "<p class=\"muted\">Run by {} on {} via {} · config <code>{}</code> (sha256 <code>{}</code>)</p>",
            esc(&by.user),
            esc(&by.host),
            esc(&by.via),
            esc(&by.config),
            esc(by.config_sha256.as_deref().unwrap_or("unreadable"))
        );
    }
    let _ = write!(o, "<h2>Summary</h2><ul>");
    for line in &r.summary {
        let _ = write!(o, "<li>{}</li>", esc(line));
    }
    let _ = write!(o, "</ul>");
}

/// What was cleaned up (or left behind), and the errors.
fn cleanup_and_errors(o: &mut String, r: &DrillReport) {
    let _ = write!(o, "<h2>Cleanup</h2><ul>");
    if r.cleanup.is_empty() {
        let _ = write!(o, "<li>Nothing to clean up.</li>");
    }
    for c in &r.cleanup {
        let _ = write!(
            o,
            "<li class=\"{}\">{} {}: {}</li>",
            match (c.ok, c.left_behind) {
                (_, true) => "warn",
                (true, false) => "pass",
                (false, false) => "fail",
            },
            match (c.ok, c.left_behind) {
                (_, true) => "LEFT",
                (true, false) => "ok",
                (false, false) => "FAILED",
            },
            esc(&c.what),
            esc(&c.message)
        );
    }
    let _ = write!(o, "</ul>");
    if !r.errors.is_empty() {
        let _ = write!(o, "<h2>Errors</h2><ul>");
        for e in &r.errors {
            let _ = write!(o, "<li class=\"fail\">{}</li>", esc(e));
        }
        let _ = write!(o, "</ul>");
    }
}

/// Notes added since, and the retrospective.
fn notes_and_retrospective(o: &mut String, r: &DrillReport) {
    let _ = write!(o, "<h2>Notes</h2><ul>");
    if r.notes.is_empty() {
        let _ = write!(o, "<li class=\"muted\">None yet.</li>");
    }
    for n in &r.notes {
        let _ = write!(
            o,
            "<li>{}, {}: {}</li>",
            n.at.format("%Y-%m-%d %H:%M UTC"),
            esc(n.author.as_deref().unwrap_or("unknown author")),
            esc(&n.text)
        );
    }
    let _ = write!(o, "</ul><h2>Retrospective</h2>");
    for (title, items) in [
        ("Problems seen", &r.retrospective.problems),
        ("Improvements", &r.retrospective.improvements),
    ] {
        let _ = write!(o, "<h3>{title}</h3><ul>");
        if items.is_empty() {
            let _ = write!(o, "<li class=\"muted\">To be filled in.</li>");
        }
        for i in items {
            let _ = write!(o, "<li>{}</li>", esc(i));
        }
        let _ = write!(o, "</ul>");
    }
}

/// The seal or signature, the measurement's resolution, and the page's end.
fn integrity_and_measurement(o: &mut String, r: &DrillReport) {
    let _ = write!(o, "<h2>Integrity</h2>");
    match (&r.signature, &r.seal) {
        (Some(sig), _) => {
            let _ = write!(
                o,
                "<p>Signed by ed25519 key <code>{}</code> over the timeline's hash chain and every measure.<br>Chain head <code>{}</code><br>Signature <code style=\"word-break:break-all\">{}</code><br>Check it with <code>drtool report verify {}</code>.</p>",
                esc(&sig.key),
                esc(&sig.chain_head),
                esc(&sig.value),
                esc(&r.run_id)
            );
        }
        (None, Some(seal)) => {
            let _ = write!(
                o,
                "<p>Not signed. Sealed: chain head <code>{}</code>, content sha256 <code>{}</code>. Check it with <code>drtool report verify {}</code>.</p>",
                esc(&seal.chain_head),
                esc(&seal.content_sha256),
                esc(&r.run_id)
            );
        }
        (None, None) => {
            let _ = write!(o, "<p class=\"warn\">Neither sealed nor signed.</p>");
        }
    }
    let _ = writeln!(
        o,
        "<p class=\"muted\">Resolution {}; probe results {} late on average; runner time between steps {}. drtool {}.</p></body></html>",
        human_ms(r.overhead.resolution_ms),
        human_ms(r.overhead.probe_lateness_ms),
        human_ms(r.overhead.between_steps_ms),
        esc(&r.drtool_version)
    );
}

/// RTO and RPO as bars against their objectives. The SVG is wide enough
/// for the longest value text (`1h 59m / 1h 59m`) right of the longest bar.
fn objectives(o: &mut String, r: &DrillReport) {
    let _ = write!(o, "<h2>Objectives</h2>");
    let unbounded = r.rpo.upper_ms.is_none() && r.rpo.lower_ms.is_some();
    let rows = [
        ("RTO", r.rto.rto_ms, Some(r.objectives.rto_ms), false),
        (
            "RPO upper bound",
            r.rpo.upper_ms,
            Some(r.objectives.rpo_ms),
            unbounded,
        ),
        ("RPO lower bound", r.rpo.lower_ms, None, false),
    ];
    // Both RPO bars on one scale: the larger of the bounds and the objective.
    let rpo_scale = r
        .rpo
        .upper_ms
        .unwrap_or(0)
        .max(r.rpo.lower_ms.unwrap_or(0))
        .max(r.objectives.rpo_ms);
    let (label_w, bar_w, text_w, row_h) = (150.0, 420.0, 190.0, 34.0);
    let _ = write!(
        o,
        "<svg width=\"{:.0}\" height=\"{}\" role=\"img\" aria-label=\"RTO and RPO against objectives\">",
        label_w + bar_w + text_w,
        rows.len() as f64 * row_h + 10.0
    );
    for (i, (name, got, limit, never_met)) in rows.iter().enumerate() {
        let y = 10.0 + i as f64 * row_h;
        let scale = if name.starts_with("RPO") {
            rpo_scale
        } else {
            got.unwrap_or(0).max(limit.unwrap_or(0))
        };
        let scale = (scale as f64).max(1.0);
        let bar = bar_w * got.unwrap_or(0) as f64 / scale;
        let color = match (got, limit) {
            _ if *never_met => "#cf222e",
            (Some(v), Some(l)) if v <= l => "#1a7f37",
            (Some(_), Some(_)) => "#cf222e",
            (Some(_), None) => "#9a6700",
            (None, _) => "#999",
        };
        let value = if *never_met {
            "unbounded".to_string()
        } else {
            opt_ms(*got)
        };
        let text = match limit {
            Some(l) => format!("{value} / {}", human_ms(*l)),
            None => value,
        };
        let _ = write!(
            o,
            "<text x=\"4\" y=\"{:.0}\" font-size=\"12\">{name}</text><rect x=\"{label_w:.0}\" y=\"{y:.0}\" width=\"{bar:.1}\" height=\"18\" fill=\"{color}\"/>",
            y + 13.0,
        );
        if let Some(l) = limit {
            let lim = label_w + bar_w * *l as f64 / scale;
            let _ = write!(
                o,
                "<line x1=\"{lim:.1}\" x2=\"{lim:.1}\" y1=\"{:.0}\" y2=\"{:.0}\" stroke=\"#222\" stroke-dasharray=\"3,2\"/>",
                y - 3.0,
                y + 21.0,
            );
        }
        let _ = write!(
            o,
            "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\">{}</text>",
            label_w + bar_w + 10.0,
            y + 13.0,
            esc(&text)
        );
    }
    let _ = write!(o, "</svg>");
    let _ = write!(o, "<p>RPO evidence: {}.</p>", esc(&r.rpo.bound));
    let phases: Vec<String> = r
        .rto
        .phases()
        .iter()
        .map(|(name, ms)| format!("{name} {}", human_ms(*ms)))
        .collect();
    let _ = write!(
        o,
        "<p>RTO by phase (consecutive, adding up to the RTO): {}.</p>",
        phases.join(", ")
    );
}

/// Steps as bars on the drill's clock, the fault and recovery as lines,
/// probe results as dots.
fn timeline(o: &mut String, r: &DrillReport) {
    let _ = write!(o, "<h2>Timeline</h2>");
    let end = r.duration_ms.max(1) as f64;
    let top: Vec<_> = r.steps.iter().collect();
    let probes: Vec<&str> = r.probes.iter().map(|p| p.probe.as_str()).collect();
    let (left, width, row) = (160.0, 700.0, 18.0);
    let height = (top.len() + probes.len()) as f64 * row + 40.0;
    let x = |ms: u64| left + width * ms as f64 / end;
    let _ = write!(
        o,
        "<svg width=\"{:.0}\" height=\"{height:.0}\" role=\"img\" aria-label=\"drill timeline\">",
        left + width + 20.0
    );
    for (i, s) in top.iter().enumerate() {
        let y = 10.0 + i as f64 * row;
        let color = match s.outcome {
            StepOutcome::Ok => "#4c8bf5",
            StepOutcome::Skipped => "#bbb",
            _ => "#cf222e",
        };
        let label = match &s.group {
            Some(g) => format!("{g}/{}", s.name),
            None => s.name.clone(),
        };
        let _ = write!(
            o,
            "<text x=\"4\" y=\"{:.0}\" font-size=\"11\">{}</text><rect x=\"{:.1}\" y=\"{y:.0}\" width=\"{:.1}\" height=\"12\" fill=\"{color}\"><title>{}: {} {}</title></rect>",
            y + 10.0,
            esc(&label),
            x(s.start_ms),
            (x(s.end_ms) - x(s.start_ms)).max(1.5),
            esc(&s.name),
            s.outcome.label(),
            esc(&s.message)
        );
    }
    for (j, p) in probes.iter().enumerate() {
        let y = 10.0 + (top.len() + j) as f64 * row;
        let _ = write!(
            o,
            "<text x=\"4\" y=\"{:.0}\" font-size=\"11\">probe {}</text>",
            y + 10.0,
            esc(p)
        );
        for s in r.samples.iter().filter(|s| s.probe == *p) {
            let _ = write!(
                o,
                "<circle cx=\"{:.1}\" cy=\"{:.0}\" r=\"2.5\" fill=\"{}\"/>",
                x(s.at_ms),
                y + 6.0,
                if s.ok { "#1a7f37" } else { "#cf222e" }
            );
        }
    }
    let bottom = height - 22.0;
    if let Some(f) = &r.fault {
        let fx = x(f.at_ms);
        let _ = write!(
            o,
            "<line x1=\"{fx:.1}\" x2=\"{fx:.1}\" y1=\"4\" y2=\"{bottom:.0}\" stroke=\"#cf222e\"/><text x=\"{fx:.1}\" y=\"{:.0}\" font-size=\"11\" fill=\"#cf222e\">fault</text>",
            bottom + 14.0
        );
        if let Some(rto) = r.rto.rto_ms {
            let rx = x(f.at_ms + rto);
            // Right of the middle, the label ends at the line (never past the edge).
            let anchor = if rx > left + width / 2.0 {
                "end"
            } else {
                "start"
            };
            let _ = write!(
                o,
                "<line x1=\"{rx:.1}\" x2=\"{rx:.1}\" y1=\"4\" y2=\"{bottom:.0}\" stroke=\"#1a7f37\"/><text x=\"{rx:.1}\" y=\"{:.0}\" font-size=\"11\" fill=\"#1a7f37\" text-anchor=\"{anchor}\">recovered (+{})</text>",
                bottom + 14.0,
                human_ms(rto)
            );
        }
    }
    let _ = write!(o, "</svg>");
}

/// Markers written before the fault and the newest that survived.
fn canaries(o: &mut String, r: &DrillReport) {
    let _ = write!(
        o,
        "<h2>Canaries</h2><table><tr><th>canary</th><th>written</th><th>newest surviving</th><th>oldest lost</th><th>lost</th><th>RPO bounds</th><th></th></tr>"
    );
    for c in &r.rpo.canaries {
        let total = c.written.max(1) as f64;
        let kept = c.written.saturating_sub(c.lost) as f64;
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} to {} (every {})</td><td><svg width=\"200\" height=\"14\"><rect width=\"{:.1}\" height=\"14\" fill=\"#1a7f37\"/><rect x=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"#cf222e\"/></svg></td></tr>",
            esc(&c.canary),
            c.written,
            crate::report::facts::Marker::describe(c.newest_surviving),
            crate::report::facts::Marker::describe(c.oldest_lost),
            c.lost,
            opt_ms(c.lost_since_ms),
            c.rpo_ms.map_or("unbounded".to_string(), human_ms),
            human_ms(c.interval_ms),
            200.0 * kept / total,
            200.0 * kept / total,
            200.0 * c.lost as f64 / total
        );
    }
    let _ = write!(o, "</table>");
}

/// The steady state before and after, and every restore with its exact point.
fn restores(o: &mut String, r: &DrillReport) {
    let _ = write!(
        o,
        "<h2>Steady state</h2><p class=\"{}\">Before the fault: {}</p>",
        if r.steady_state.ok { "pass" } else { "fail" },
        esc(&r.steady_state.detail)
    );
    if let Some(after) = &r.steady_state_after {
        let _ = write!(
            o,
            "<p class=\"{}\">After recovery: steady state restored: {} ({})</p>",
            if after.ok { "pass" } else { "fail" },
            if after.ok { "yes" } else { "NO" },
            esc(&after.detail)
        );
    }
    if r.restores.is_empty() {
        return;
    }
    let _ = write!(
        o,
        "<h2>Restores</h2><table><tr><th>step</th><th>target</th><th>region</th><th>point</th><th>consistent</th><th>result</th></tr>"
    );
    for rs in &r.restores {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&rs.step),
            esc(&rs.target),
            esc(&rs.region),
            esc(rs.point.as_deref().unwrap_or("-")),
            rs.consistent_at.map_or("-".to_string(), |t| t
                .format("%Y-%m-%d %H:%M:%S%.3f UTC")
                .to_string()),
            esc(rs
                .result
                .as_deref()
                .unwrap_or("cut off before it could say"))
        );
    }
    let _ = write!(o, "</table>");
}

fn steps(o: &mut String, r: &DrillReport) {
    let _ = write!(
        o,
        "<h2>Steps</h2><table><tr><th>step</th><th>kind</th><th>start</th><th>duration</th><th>outcome</th><th>detail</th></tr>"
    );
    for s in &r.steps {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>+{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(&match &s.group {
                Some(g) => format!("{g} / {}", s.name),
                None => s.name.clone(),
            }),
            esc(&s.kind),
            human_ms(s.start_ms),
            human_ms(s.end_ms.saturating_sub(s.start_ms)),
            if s.outcome == StepOutcome::Ok {
                "pass"
            } else {
                "fail"
            },
            s.outcome.label(),
            esc(&s.message)
        );
    }
    let _ = write!(o, "</table>");
}

fn probes(o: &mut String, r: &DrillReport) {
    let _ = write!(o, "<h2>Probes</h2>");
    for (phase, list) in r.probes_by_phase() {
        let title = phase_title(phase);
        let _ = write!(
            o,
            "<h3>{title}</h3><table><tr><th>probe</th><th>check</th><th>runs</th><th>passed</th><th>failed</th><th>result</th></tr>"
        );
        for p in list {
            let result = p.result_text();
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.probe),
                esc(&p.check),
                p.runs,
                p.passes,
                p.failures,
                esc(&result)
            );
        }
        let _ = write!(o, "</table>");
    }
}
