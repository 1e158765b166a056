//! `report.html`: one self-contained page (inline CSS and SVG, no script, no
//! external resource) that opens anywhere, also offline at 3 a.m. The markup
//! is `templates/report/report.html`, which escapes every value; this file
//! works out the charts' geometry.

use askama::Template;

use super::view::{Seal, View};
use super::{DrillReport, StepOutcome, human_ms, opt_ms};

#[derive(Template)]
#[template(path = "report/report.html")]
struct Page<'a> {
    r: &'a DrillReport,
    v: View<'a>,
    /// The objectives chart's width and height.
    chart: (String, String),
    /// Where the chart's bars start (right of their labels).
    bar_x: String,
    bars: Vec<Bar>,
    timeline: Timeline,
}

pub fn render(r: &DrillReport) -> String {
    let page = Page {
        r,
        v: View::of(r),
        chart: (
            format!("{:.0}", LABEL_W + BAR_W + TEXT_W),
            format!("{:.0}", 3.0 * ROW_H + 10.0),
        ),
        bar_x: format!("{LABEL_W:.0}"),
        bars: bars(r),
        timeline: timeline(r),
    };
    // Writing into a String fails only if a value's Display fails, and
    // none of these do.
    page.render().unwrap_or_else(|e| {
        format!("<!DOCTYPE html><html><body><p>cannot render the report: {e}</p></body></html>\n")
    })
}

/// Width of the objectives chart: labels, bars, and room right of the
/// longest bar for the longest value text (`1h 59m / 1h 59m`).
const LABEL_W: f64 = 150.0;
const BAR_W: f64 = 420.0;
const TEXT_W: f64 = 190.0;
const ROW_H: f64 = 34.0;

/// One measure against its objective in the objectives chart.
struct Bar {
    name: &'static str,
    /// Top of the bar, and the baseline of its texts.
    y: String,
    text_y: String,
    width: String,
    color: &'static str,
    /// The objective's dashed line: x, top, bottom.
    limit: Option<(String, String, String)>,
    text_x: String,
    text: String,
}

/// RTO and RPO as bars against their objectives; both RPO bars on one
/// scale (the larger of the bounds and the objective).
fn bars(r: &DrillReport) -> Vec<Bar> {
    let unbounded = r.rpo.unbounded();
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
    let rpo_scale = r
        .rpo
        .upper_ms
        .unwrap_or(0)
        .max(r.rpo.lower_ms.unwrap_or(0))
        .max(r.objectives.rpo_ms);
    rows.into_iter()
        .enumerate()
        .map(|(i, (name, got, limit, never_met))| {
            let y = 10.0 + i as f64 * ROW_H;
            let scale = if name.starts_with("RPO") {
                rpo_scale
            } else {
                got.unwrap_or(0).max(limit.unwrap_or(0))
            };
            let scale = (scale as f64).max(1.0);
            let color = match (got, limit) {
                _ if never_met => "#cf222e",
                (Some(v), Some(l)) if v <= l => "#1a7f37",
                (Some(_), Some(_)) => "#cf222e",
                (Some(_), None) => "#9a6700",
                (None, _) => "#999",
            };
            let value = if never_met {
                "unbounded".to_string()
            } else {
                opt_ms(got)
            };
            Bar {
                name,
                y: format!("{y:.0}"),
                text_y: format!("{:.0}", y + 13.0),
                width: format!("{:.1}", BAR_W * got.unwrap_or(0) as f64 / scale),
                color,
                limit: limit.map(|l| {
                    let x = LABEL_W + BAR_W * l as f64 / scale;
                    (
                        format!("{x:.1}"),
                        format!("{:.0}", y - 3.0),
                        format!("{:.0}", y + 21.0),
                    )
                }),
                text_x: format!("{:.0}", LABEL_W + BAR_W + 10.0),
                text: match limit {
                    Some(l) => format!("{value} / {}", human_ms(l)),
                    None => value,
                },
            }
        })
        .collect()
}

/// Steps as bars on the drill's clock, probe results as dots, the fault
/// and the recovery as lines.
struct Timeline {
    width: String,
    height: String,
    steps: Vec<StepBar>,
    probes: Vec<ProbeDots>,
    fault: Option<FaultLine>,
}

struct StepBar {
    label: String,
    text_y: String,
    x: String,
    y: String,
    width: String,
    color: &'static str,
    title: String,
}

struct ProbeDots {
    probe: String,
    text_y: String,
    /// Centre x and colour of each result (there can be tens of
    /// thousands: the template formats the numbers, no string each).
    dots: Vec<(f64, &'static str)>,
    /// Centre y of the dots.
    dot_y: String,
}

struct FaultLine {
    x: String,
    bottom: String,
    text_y: String,
    /// Where the RTO ended: x, the label's anchor (right of the middle it
    /// ends at the line, never past the edge) and the RTO.
    recovered: Option<(String, &'static str, String)>,
}

fn timeline(r: &DrillReport) -> Timeline {
    let end = r.duration_ms.max(1) as f64;
    let (left, width, row) = (160.0, 700.0, 18.0);
    let height = (r.steps.len() + r.probes.len()) as f64 * row + 40.0;
    let x = |ms: u64| left + width * ms as f64 / end;
    let steps = r
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let y = 10.0 + i as f64 * row;
            StepBar {
                label: match &s.group {
                    Some(g) => format!("{g}/{}", s.name),
                    None => s.name.clone(),
                },
                text_y: format!("{:.0}", y + 10.0),
                x: format!("{:.1}", x(s.start_ms)),
                y: format!("{y:.0}"),
                width: format!("{:.1}", (x(s.end_ms) - x(s.start_ms)).max(1.5)),
                color: match s.outcome {
                    StepOutcome::Ok => "#4c8bf5",
                    StepOutcome::Skipped => "#bbb",
                    _ => "#cf222e",
                },
                title: format!("{}: {} {}", s.name, s.outcome.label(), s.message),
            }
        })
        .collect();
    let probes = r
        .probes
        .iter()
        .enumerate()
        .map(|(j, p)| {
            let y = 10.0 + (r.steps.len() + j) as f64 * row;
            ProbeDots {
                probe: p.probe.clone(),
                text_y: format!("{:.0}", y + 10.0),
                dot_y: format!("{:.0}", y + 6.0),
                dots: r
                    .samples
                    .iter()
                    .filter(|s| s.probe == p.probe)
                    .map(|s| {
                        let color = if s.ok { "#1a7f37" } else { "#cf222e" };
                        (x(s.at_ms), color)
                    })
                    .collect(),
            }
        })
        .collect();
    let bottom = height - 22.0;
    let fault = r.fault.as_ref().map(|f| FaultLine {
        x: format!("{:.1}", x(f.at_ms)),
        bottom: format!("{bottom:.0}"),
        text_y: format!("{:.0}", bottom + 14.0),
        recovered: r.rto.rto_ms.map(|rto| {
            let rx = x(f.at_ms + rto);
            let anchor = if rx > left + width / 2.0 {
                "end"
            } else {
                "start"
            };
            (format!("{rx:.1}"), anchor, human_ms(rto))
        }),
    });
    Timeline {
        width: format!("{:.0}", left + width + 20.0),
        height: format!("{height:.0}"),
        steps,
        probes,
        fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained() {
        let html = render(&crate::report::tests::sample());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<svg"));
        assert!(!html.contains("<script"), "no script");
        assert!(
            !html.contains("src=\"http") && !html.contains("href=\"http"),
            "no external resource"
        );
        assert!(html.contains("PASS"));
    }

    #[test]
    fn html_troubled_snapshot() {
        insta::assert_snapshot!(render(&crate::report::tests::troubled()));
    }

    #[test]
    fn html_snapshot() {
        insta::assert_snapshot!(render(&crate::report::tests::sample()));
    }

    #[test]
    fn html_bare_snapshot() {
        let page = render(&crate::report::tests::bare());
        assert!(
            page.contains("<p>Not signed. Sealed: chain head <code>"),
            "{page}"
        );
        insta::assert_snapshot!(page);
    }
}
