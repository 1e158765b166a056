//! `report.md`: the report people read first, rendered from `report.json`
//! through `templates/report/report.md`.

use askama::Template;

use super::DrillReport;
use super::view::{Seal, View};

#[derive(Template)]
#[template(path = "report/report.md", escape = "none")]
struct Page<'a> {
    r: &'a DrillReport,
    v: View<'a>,
}

impl Page<'_> {
    /// Text that stays inside one Markdown table cell.
    fn cell(&self, s: &str) -> String {
        s.replace('|', "\\|").replace('\n', " ")
    }
}

pub fn render(r: &DrillReport) -> String {
    let page = Page { r, v: View::of(r) };
    // Writing into a String fails only if a value's Display fails, and
    // none of these do.
    page.render()
        .unwrap_or_else(|e| format!("# Drill {}: cannot render ({e})\n", r.drill))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_snapshot() {
        insta::assert_snapshot!(render(&crate::report::tests::sample()));
    }

    #[test]
    fn markdown_troubled_snapshot() {
        insta::assert_snapshot!(render(&crate::report::tests::troubled()));
    }

    #[test]
    fn markdown_bare_snapshot() {
        insta::assert_snapshot!(render(&crate::report::tests::bare()));
    }

    #[test]
    fn where_nothing_changed_on_purpose_the_template_writes_what_renderer_1_wrote() {
        use crate::report::tests::{bare, sample};
        for r in [sample(), bare()] {
            assert_eq!(render(&r), crate::report::v1::markdown::render(&r));
        }
    }
}
