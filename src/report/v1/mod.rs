//! Renderer 1: the pages as drtool wrote them before they came from
//! templates (`write!` and hand escaping), kept byte for byte. Reports filed
//! then carry no `renderer` field; their pages are still compared with what
//! this renders (`report verify`), and a note added to one writes them in
//! the same form. Frozen: an edit here makes every such report look
//! edited, so the snapshots below must never change.

pub mod html;
pub mod junit;
pub mod markdown;

#[cfg(test)]
mod tests {
    use crate::report::tests::{sample, troubled};

    #[test]
    fn renderer_1_is_frozen() {
        for (name, r) in [("sample", sample()), ("troubled", troubled())] {
            insta::assert_snapshot!(format!("{name}.md"), super::markdown::render(&r));
            insta::assert_snapshot!(format!("{name}.html"), super::html::render(&r));
            insta::assert_snapshot!(format!("{name}.junit.xml"), super::junit::render(&r));
        }
    }
}
