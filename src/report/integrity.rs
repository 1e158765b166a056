//! Whether a report is what the drill wrote: its seal (the timeline's hash
//! chain and the hash of every measure), its signature against the trusted
//! keys, and the rendered files against `report.json`.
//!
//! Pure: the keys and the files' bytes come in, a verdict goes out. Listing,
//! history and metrics use it to mark and leave out reports that cannot be
//! trusted; `drtool report verify` prints it.

use std::fmt;

use serde::Serialize;

use super::DrillReport;
use crate::archive::signing::TrustedKey;

/// What checking a report found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Integrity {
    /// Signed by this trusted key; chain, content and signature match.
    Verified(String),
    /// Not signed, and its seal matches: no sign of an edit, but nothing
    /// proves who wrote it.
    Unsigned,
    /// Signed by a key that is not trusted here.
    UnknownKey(String),
    /// Changed after it was written: what does not match.
    Edited(String),
    /// Neither sealed nor signed (written by an older drtool): cannot be checked.
    Unsealed,
}

impl Integrity {
    /// Whether its numbers may be shown as facts, trended and exported as
    /// metrics: verified, or intact and unsigned where no signature is
    /// expected.
    pub fn trusted(&self, signatures_expected: bool) -> bool {
        match self {
            Integrity::Verified(_) => true,
            Integrity::Unsigned => !signatures_expected,
            Integrity::UnknownKey(_) | Integrity::Edited(_) | Integrity::Unsealed => false,
        }
    }

    /// A few words for a listing's column.
    pub fn label(&self) -> &'static str {
        match self {
            Integrity::Verified(_) => "signed",
            Integrity::Unsigned => "unsigned",
            Integrity::UnknownKey(_) => "UNKNOWN KEY",
            Integrity::Edited(_) => "EDITED",
            Integrity::Unsealed => "UNSEALED",
        }
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Integrity::Verified(key) => write!(
                f,
                "verified: signed by trusted ed25519 key {key}; the timeline's hash chain and every measure match the signature"
            ),
            Integrity::Unsigned => write!(
                f,
                "intact but unsigned: its hashes match, yet anyone could have recomputed them (set [signing] key in the config so reports are signed)"
            ),
            Integrity::UnknownKey(key) => write!(
                f,
                "signed by ed25519 key {key}, which this config does not trust: add its public key to [signing] verify_keys to check it"
            ),
            Integrity::Edited(what) => write!(f, "EDITED after it was written: {what}"),
            Integrity::Unsealed => write!(
                f,
                "cannot be checked: written by a drtool that neither sealed nor signed reports"
            ),
        }
    }
}

/// Checks `r` against its own seal and signature.
pub fn check(r: &DrillReport, trusted: &[TrustedKey]) -> Integrity {
    let head = r.chain_head();
    let content = r.content_hash();
    if let Some(seal) = &r.seal {
        if seal.chain_head != head {
            return Integrity::Edited("the timeline does not hash to the sealed chain head".into());
        }
        if seal.content_sha256 != content {
            return Integrity::Edited(
                "the measures (verdict, RTO, RPO, steps, probes, ...) do not hash to the sealed content hash".into(),
            );
        }
    }
    let Some(sig) = &r.signature else {
        return match r.seal {
            Some(_) => Integrity::Unsigned,
            None => Integrity::Unsealed,
        };
    };
    if sig.chain_head != head {
        return Integrity::Edited("the timeline does not hash to the signed chain head".into());
    }
    let Some(key) = trusted.iter().find(|k| k.fingerprint == sig.key) else {
        return Integrity::UnknownKey(sig.key.clone());
    };
    if sig.algorithm == "ed25519" && key.verify_bytes(&r.signed_message(&head), &sig.value) {
        Integrity::Verified(sig.key.clone())
    } else {
        Integrity::Edited(
            "the signature does not match the report's measures: something was changed after signing"
                .into(),
        )
    }
}

/// What comparing a report folder's pages with `report.json` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pages {
    /// Rendered by this drtool's renderer; the pages that differ from what
    /// `report.json` renders to (empty: none was edited).
    Compared(Vec<String>),
    /// Written by a renderer this drtool does not have (a newer drtool's,
    /// its number): only `report.json` can be checked.
    NotCompared(u32),
}

impl Pages {
    /// The pages someone edited.
    pub fn edited(&self) -> &[String] {
        match self {
            Pages::Compared(edited) => edited,
            Pages::NotCompared(_) => &[],
        }
    }
}

/// Compares the rendered files of a report folder with what `report.json`
/// renders to: an edit to the page people read shows.
pub fn edited_renderings(r: &DrillReport, read: impl Fn(&str) -> Option<Vec<u8>>) -> Pages {
    let Ok(files) = super::rendered(r) else {
        return Pages::NotCompared(r.renderer);
    };
    Pages::Compared(
        files
            .into_iter()
            .filter(|(name, _)| *name != "report.json")
            .filter_map(|(name, body)| match read(name) {
                Some(found) if found != body => Some(name.to_string()),
                _ => None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::signing::ManifestSigner;

    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEILCDNAB4b6COdDGt5nD4knZ00ltXXl0vWoqPe05era06\n-----END PRIVATE KEY-----\n";

    fn signed() -> (DrillReport, Vec<TrustedKey>) {
        let signer = ManifestSigner::from_pem(KEY, "test key").unwrap_or_else(|e| panic!("{e}"));
        let mut r = crate::report::tests::sample();
        r.seal_now();
        let head = r.chain_head();
        let (key, value) = signer.sign_bytes(&r.signed_message(&head));
        r.signature = Some(crate::report::ReportSignature {
            algorithm: "ed25519".into(),
            key,
            chain_head: head,
            value,
        });
        (r, vec![signer.trusted()])
    }

    #[test]
    fn any_edit_to_a_measure_or_an_event_is_caught() {
        let (r, keys) = signed();
        assert!(matches!(check(&r, &keys), Integrity::Verified(_)));
        // The case: rto_ms 403 -> 103.
        let mut faster = r.clone();
        faster.rto.rto_ms = Some(103);
        assert!(matches!(check(&faster, &keys), Integrity::Edited(_)));
        let mut quieter = r.clone();
        quieter.timeline[1].what = "nothing happened".into();
        assert!(matches!(check(&quieter, &keys), Integrity::Edited(_)));
        // The seal recomputed by the editor: the signature still catches it.
        faster.seal_now();
        assert!(matches!(check(&faster, &keys), Integrity::Edited(_)));
        // Notes and where it was stored may change after signing.
        let mut noted = r.clone();
        noted.notes.push(crate::report::Note {
            at: r.finished_at,
            text: "DNS took long".into(),
            author: Some("oncall".into()),
        });
        noted.uploaded_to.push("eu-west-1".into());
        assert!(matches!(check(&noted, &keys), Integrity::Verified(_)));
        // Nobody here trusts the key.
        assert!(matches!(check(&r, &[]), Integrity::UnknownKey(_)));
    }

    #[test]
    fn unsigned_reports_are_sealed_and_only_trusted_where_no_signature_is_expected() {
        let mut r = crate::report::tests::sample();
        assert_eq!(check(&r, &[]), Integrity::Unsealed);
        r.seal_now();
        assert_eq!(check(&r, &[]), Integrity::Unsigned);
        assert!(Integrity::Unsigned.trusted(false));
        assert!(!Integrity::Unsigned.trusted(true));
        r.verdict = crate::report::DrillVerdict::Pass;
        r.rpo.upper_ms = Some(1);
        assert!(matches!(check(&r, &[]), Integrity::Edited(_)));
        assert!(!check(&r, &[]).trusted(false));
    }

    #[test]
    fn an_edited_page_is_named() {
        let r = crate::report::tests::sample();
        let files = crate::report::rendered(&r).unwrap_or_default();
        let same = |name: &str| {
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| b.clone())
        };
        assert_eq!(edited_renderings(&r, same), Pages::Compared(vec![]));
        let html_changed = |name: &str| {
            if name == "report.html" {
                Some(b"<html>PASS</html>".to_vec())
            } else {
                same(name)
            }
        };
        assert_eq!(
            edited_renderings(&r, html_changed).edited(),
            ["report.html"]
        );
    }

    #[test]
    fn pages_are_compared_with_the_renderer_that_wrote_them() {
        // A report of renderer 1 has no `renderer` in its JSON: it reads
        // back as 1 and hashes as it did when it was sealed.
        let mut old = crate::report::tests::troubled();
        old.renderer = 1;
        old.signature = None;
        old.seal_now();
        let json = serde_json::to_value(&old).unwrap_or_default();
        assert!(json.get("renderer").is_none(), "{json}");
        let back: DrillReport = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.renderer, 1);
        assert_eq!(check(&back, &[]), Integrity::Unsigned);
        // Its pages as renderer 1 wrote them compare; today's do not.
        let v1 = |name: &str| match name {
            "report.md" => Some(crate::report::v1::markdown::render(&old).into_bytes()),
            "report.html" => Some(crate::report::v1::html::render(&old).into_bytes()),
            "junit.xml" => Some(crate::report::v1::junit::render(&old).into_bytes()),
            _ => None,
        };
        assert_eq!(edited_renderings(&back, v1), Pages::Compared(vec![]));
        let today = |name: &str| match name {
            "report.html" => Some(crate::report::html::render(&old).into_bytes()),
            other => v1(other),
        };
        assert_eq!(edited_renderings(&back, today).edited(), ["report.html"]);
        // A newer drtool's renderer: only the JSON can be checked.
        let mut newer = back.clone();
        newer.renderer = crate::report::RENDERER + 1;
        assert_eq!(
            edited_renderings(&newer, v1),
            Pages::NotCompared(crate::report::RENDERER + 1)
        );
        // Setting a signed report's renderer back is an edit.
        let (mut r, keys) = signed();
        r.renderer = 1;
        assert!(matches!(check(&r, &keys), Integrity::Edited(_)));
    }
}
