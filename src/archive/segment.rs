//! Stream segments: the small immutable objects a continuous stream writes
//! under its base point, and the chain that proves no position is missing.
//!
//! A segment covers the positions `from..=to` of its source (etcd: revisions)
//! and carries the sha256 of the stored bytes of the segment before it (none
//! for the first, which starts right after the base point's own position).
//! Stored, it is zstd of one JSON line (its [`SegmentHead`]) followed by the
//! kind's own lines (its events); its name repeats `from` and `to`, so a
//! listing alone shows where the chain has a hole, and reading shows where it
//! was damaged.
//!
//! This module knows the chain, not what the events mean: the kind that
//! follows the source writes and replays the lines.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The segment format this build writes and reads.
pub const SEGMENT_FORMAT: u32 = 1;
/// The file name's ending.
pub const SEGMENT_EXT: &str = ".seg.zst";
/// zstd level of segments: small objects written every second want speed.
const LEVEL: i32 = 3;
/// The largest segment this build reads back (a limit on memory: a segment is
/// read whole). A segment holds one revision whole even when that revision is
/// larger than `max_segment`, so this is well above the largest value etcd
/// accepts in one request.
pub const MAX_SEGMENT_READ: u64 = 256 << 20;

/// The first line of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentHead {
    pub format: u32,
    pub target: String,
    /// The base point the chain starts from.
    pub base: String,
    /// The first position this segment accounts for (the one after the
    /// previous segment's `to`, or after the base point's own position).
    pub from: u64,
    /// The last position it accounts for: every change up to here that the
    /// stream follows is in this segment or an earlier one.
    pub to: u64,
    /// sha256 of the stored bytes of the previous segment; none for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_sha256: Option<String>,
    /// Events (lines after this one) and distinct positions among them.
    pub events: u64,
    pub revisions: u64,
    /// When the source made the first and last of these changes, as far as
    /// the stream saw them (when it received them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
    pub written_at: DateTime<Utc>,
}

/// A segment as stored: its bytes and their sha256.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub bytes: Bytes,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("segment {key}: not a segment ({detail})")]
    Unreadable { key: String, detail: String },
    #[error("segment {key}: written in format {found}, this drtool reads format {SEGMENT_FORMAT}")]
    Format { key: String, found: u32 },
    #[error(
        "segment {key}: its name says positions {named_from}..={named_to}, its head says {head_from}..={head_to}"
    )]
    Misnamed {
        key: String,
        named_from: u64,
        named_to: u64,
        head_from: u64,
        head_to: u64,
    },
}

/// Seals a segment: `events` is the kind's lines, each ending in `\n`.
pub fn seal(head: &SegmentHead, events: &[u8]) -> Result<Sealed, std::io::Error> {
    let mut plain = serde_json::to_vec(head).map_err(std::io::Error::other)?;
    plain.push(b'\n');
    plain.extend_from_slice(events);
    let bytes = zstd::bulk::compress(&plain, LEVEL)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok(Sealed {
        bytes: Bytes::from(bytes),
        sha256,
    })
}

/// Opens a stored segment: its head and the kind's lines, checked against the
/// positions its name gives.
pub fn open(key: &str, stored: &[u8]) -> Result<(SegmentHead, Vec<u8>), SegmentError> {
    let unreadable = |detail: String| SegmentError::Unreadable {
        key: key.to_string(),
        detail,
    };
    let plain = zstd::bulk::decompress(stored, MAX_SEGMENT_READ as usize)
        .map_err(|e| unreadable(format!("zstd: {e}")))?;
    let split = plain
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| unreadable("no head line".into()))?;
    let head: SegmentHead =
        serde_json::from_slice(&plain[..split]).map_err(|e| unreadable(format!("head: {e}")))?;
    if head.format != SEGMENT_FORMAT {
        return Err(SegmentError::Format {
            key: key.to_string(),
            found: head.format,
        });
    }
    if let Some(name) = name_of(key)
        && (name.from != head.from || name.to != head.to)
    {
        return Err(SegmentError::Misnamed {
            key: key.to_string(),
            named_from: name.from,
            named_to: name.to,
            head_from: head.from,
            head_to: head.to,
        });
    }
    Ok((head, plain[split + 1..].to_vec()))
}

/// The sha256 of stored bytes, as a segment's successor records it.
pub fn sha256_of(stored: &[u8]) -> String {
    hex::encode(Sha256::digest(stored))
}

/// The positions a segment's file name gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentName {
    pub from: u64,
    pub to: u64,
}

impl SegmentName {
    /// `00000000000000000101-00000000000000000140.seg.zst`: fixed widths, so
    /// names sort in chain order.
    pub fn file_name(&self) -> String {
        format!("{:020}-{:020}{SEGMENT_EXT}", self.from, self.to)
    }
}

/// Reads the positions from a key's last part, if it is a segment's name.
pub fn name_of(key: &str) -> Option<SegmentName> {
    let file = key.rsplit('/').next()?;
    let (from, to) = file.strip_suffix(SEGMENT_EXT)?.split_once('-')?;
    let name = SegmentName {
        from: from.parse().ok()?,
        to: to.parse().ok()?,
    };
    (name.from <= name.to).then_some(name)
}

/// Where a chain of segment names stops being whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "break", rename_all = "kebab-case")]
pub enum ChainBreak {
    /// Positions `missing_from..=missing_to` are in no segment.
    Gap {
        missing_from: u64,
        missing_to: u64,
        next: String,
    },
    /// A segment starts inside positions an earlier one already covers.
    Overlap {
        key: String,
        from: u64,
        covered_to: u64,
    },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBreak::Gap {
                missing_from,
                missing_to,
                next,
            } => write!(
                f,
                "revisions {missing_from}..={missing_to} are in no segment (the next one is {next})"
            ),
            ChainBreak::Overlap {
                key,
                from,
                covered_to,
            } => write!(
                f,
                "segment {key} starts at {from}, inside what the chain already holds (up to {covered_to})"
            ),
        }
    }
}

/// What a listing of segments shows about their chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainView {
    /// The segments that continue the base without a hole, in order.
    pub whole: Vec<(String, SegmentName)>,
    /// The newest position those reach (the base's own when there are none).
    pub reaches: u64,
    /// Where it stops being whole, when segments lie beyond a hole.
    pub broken: Option<ChainBreak>,
}

/// Orders `keys` (any order, non-segments ignored) and follows them from the
/// base point's position `base`: the contiguous run, and the first break.
pub fn chain_of<S: AsRef<str>>(base: u64, keys: &[S]) -> ChainView {
    let mut named: Vec<(SegmentName, &str)> = keys
        .iter()
        .filter_map(|k| name_of(k.as_ref()).map(|n| (n, k.as_ref())))
        .collect();
    named.sort();
    let mut view = ChainView {
        whole: Vec::new(),
        reaches: base,
        broken: None,
    };
    for (name, key) in named {
        let expected = view.reaches.saturating_add(1);
        if name.from == expected {
            view.reaches = name.to;
            view.whole.push((key.to_string(), name));
            continue;
        }
        view.broken = Some(if name.from > expected {
            ChainBreak::Gap {
                missing_from: expected,
                missing_to: name.from - 1,
                next: key.to_string(),
            }
        } else {
            ChainBreak::Overlap {
                key: key.to_string(),
                from: name.from,
                covered_to: view.reaches,
            }
        });
        break;
    }
    view
}

/// Why a read chain does not hold together link by link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error(
        "segment {key} does not follow the one before it: it records the previous segment's sha256 as {recorded}, the previous segment's bytes hash to {actual}; a segment was replaced or damaged"
    )]
    BadLink {
        key: String,
        recorded: String,
        actual: String,
    },
    #[error("segment {key} belongs to base point {found}, not {expected}")]
    OtherBase {
        key: String,
        expected: String,
        found: String,
    },
}

/// Checks that a segment links to the one before it (`prev`: the previous
/// segment's stored sha256, none for the first) and to `base`.
pub fn check_link(
    key: &str,
    head: &SegmentHead,
    base: &str,
    prev: Option<&str>,
) -> Result<(), LinkError> {
    if head.base != base {
        return Err(LinkError::OtherBase {
            key: key.to_string(),
            expected: base.to_string(),
            found: head.base.clone(),
        });
    }
    if head.prev_sha256.as_deref() != prev {
        return Err(LinkError::BadLink {
            key: key.to_string(),
            recorded: head.prev_sha256.clone().unwrap_or_else(|| "none".into()),
            actual: prev.unwrap_or("none (it is the first)").to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(from: u64, to: u64, prev: Option<&str>) -> SegmentHead {
        SegmentHead {
            format: SEGMENT_FORMAT,
            target: "t".into(),
            base: "b".into(),
            from,
            to,
            prev_sha256: prev.map(str::to_string),
            events: 1,
            revisions: 1,
            first_at: None,
            last_at: None,
            written_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn key(from: u64, to: u64) -> String {
        format!("s/{}", SegmentName { from, to }.file_name())
    }

    #[test]
    fn a_sealed_segment_opens_to_its_head_and_lines() -> Result<(), Box<dyn std::error::Error>> {
        let h = head(11, 20, Some("ab"));
        let sealed = seal(&h, b"{\"rev\":11}\n{\"rev\":20}\n")?;
        assert_eq!(sealed.sha256, sha256_of(&sealed.bytes));
        let (back, lines) = open(&key(11, 20), &sealed.bytes)?;
        assert_eq!(back, h);
        assert_eq!(lines, b"{\"rev\":11}\n{\"rev\":20}\n");
        Ok(())
    }

    #[test]
    fn a_segment_whose_name_and_head_disagree_or_that_is_garbage_is_refused()
    -> Result<(), Box<dyn std::error::Error>> {
        let sealed = seal(&head(11, 20, None), b"")?;
        assert!(matches!(
            open(&key(11, 21), &sealed.bytes),
            Err(SegmentError::Misnamed {
                named_to: 21,
                head_to: 20,
                ..
            })
        ));
        assert!(matches!(
            open(&key(11, 20), b"not zstd"),
            Err(SegmentError::Unreadable { .. })
        ));
        let mut other = head(11, 20, None);
        other.format = 9;
        let sealed = seal(&other, b"")?;
        assert!(matches!(
            open(&key(11, 20), &sealed.bytes),
            Err(SegmentError::Format { found: 9, .. })
        ));
        Ok(())
    }

    #[test]
    fn names_sort_in_chain_order_and_read_back() {
        let n = SegmentName { from: 9, to: 10 };
        assert_eq!(
            n.file_name(),
            "00000000000000000009-00000000000000000010.seg.zst"
        );
        assert_eq!(name_of(&format!("a/b/{}", n.file_name())), Some(n));
        assert_eq!(name_of("a/b/manifest.json"), None);
        assert_eq!(
            name_of("a/00000000000000000011-00000000000000000010.seg.zst"),
            None
        );
        assert_eq!(name_of("a/x-1.seg.zst"), None);
    }

    #[test]
    fn a_chain_is_followed_from_the_base_and_stops_at_the_first_break() {
        type Case = (&'static str, Vec<String>, u64, usize, Option<ChainBreak>);
        let cases: Vec<Case> = vec![
            ("no segments: the base", vec![], 10, 0, None),
            (
                "whole, listed out of order",
                vec![key(16, 30), key(11, 15), "s/manifest.json".into()],
                30,
                2,
                None,
            ),
            (
                "a hole",
                vec![key(11, 15), key(18, 30)],
                15,
                1,
                Some(ChainBreak::Gap {
                    missing_from: 16,
                    missing_to: 17,
                    next: key(18, 30),
                }),
            ),
            (
                "the first segment missing",
                vec![key(12, 15)],
                10,
                0,
                Some(ChainBreak::Gap {
                    missing_from: 11,
                    missing_to: 11,
                    next: key(12, 15),
                }),
            ),
            (
                "an overlap",
                vec![key(11, 15), key(14, 20)],
                15,
                1,
                Some(ChainBreak::Overlap {
                    key: key(14, 20),
                    from: 14,
                    covered_to: 15,
                }),
            ),
        ];
        for (what, keys, reaches, whole, broken) in cases {
            let view = chain_of(10, &keys);
            assert_eq!(view.reaches, reaches, "{what}");
            assert_eq!(view.whole.len(), whole, "{what}");
            assert_eq!(view.broken, broken, "{what}");
        }
    }

    #[test]
    fn a_link_must_name_the_previous_segments_hash_and_the_base() {
        assert_eq!(check_link("k", &head(11, 12, None), "b", None), Ok(()));
        assert_eq!(
            check_link("k", &head(13, 14, Some("aa")), "b", Some("aa")),
            Ok(())
        );
        assert!(matches!(
            check_link("k", &head(13, 14, Some("aa")), "b", Some("bb")),
            Err(LinkError::BadLink { .. })
        ));
        assert!(matches!(
            check_link("k", &head(11, 12, None), "c", None),
            Err(LinkError::OtherBase { .. })
        ));
    }
}
