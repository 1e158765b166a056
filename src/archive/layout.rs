//! The one place that builds object keys:
//!
//! ```text
//! <prefix>/points/<target>/<point-id>/data.zst[.age]   payload
//! <prefix>/points/<target>/<point-id>/manifest.json    written last = commit marker
//! <prefix>/points/<target>/<point-id>/restore-test.json  the last restore test
//! <prefix>/points/<target>/<point-id>/verified.json      the last verify, passed
//! <prefix>/points/<target>/<point-id>/verify-failed.json the last verify, failed
//! <prefix>/points/<target>/<point-id>/retention.json     retention changed by hand
//! <prefix>/streams/<target>/<base-point-id>/<from>-<to>.seg.zst  stream segments
//! <prefix>/drills/<drill-run-id>/report.<ext>
//! <prefix>/locks/<name>                                  schedule locks, holds
//! <prefix>/schedules/<name>.json                         a schedule's state
//! ```

use super::PointId;
use super::segment::SegmentName;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const RESTORE_TEST_FILE: &str = "restore-test.json";
/// A point's last verify passed. Listings take its time from the store's
/// listing and read none of them (thousands of points, one GET each).
pub const VERIFIED_FILE: &str = "verified.json";
/// A point's last verify failed: read, to say why.
pub const VERIFY_FAILED_FILE: &str = "verify-failed.json";
/// A point's retention as changed by `drtool points retain` (it outranks the
/// manifest's, which is signed and never rewritten).
pub const RETENTION_FILE: &str = "retention.json";
/// Files kept next to a point that are not part of it: a folder holding only
/// these does not hold the point.
pub const BESIDE_POINT: [&str; 4] = [
    RESTORE_TEST_FILE,
    VERIFIED_FILE,
    VERIFY_FAILED_FILE,
    RETENTION_FILE,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    pub fn new(prefix: &str) -> Layout {
        Layout {
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    fn join(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_string()
        } else {
            format!("{}/{rest}", self.prefix)
        }
    }

    /// Everything under which points live (all targets, or one).
    pub fn points_prefix(&self, target: Option<&str>) -> String {
        match target {
            Some(t) => self.join(&format!("points/{t}/")),
            None => self.join("points/"),
        }
    }

    pub fn point_prefix(&self, target: &str, point: &PointId) -> String {
        self.join(&format!("points/{target}/{point}/"))
    }

    /// The payload's file name inside a point folder.
    pub fn data_file(encrypted: bool) -> &'static str {
        if encrypted {
            "data.zst.age"
        } else {
            "data.zst"
        }
    }

    pub fn data_key(&self, target: &str, point: &PointId, encrypted: bool) -> String {
        format!(
            "{}{}",
            self.point_prefix(target, point),
            Self::data_file(encrypted)
        )
    }

    pub fn manifest_key(&self, target: &str, point: &PointId) -> String {
        format!("{}{MANIFEST_FILE}", self.point_prefix(target, point))
    }

    /// Where a target's stream segments are (every base point's, or one's).
    /// They live beside `points/`, not in the point folders, so listing points
    /// never pages through a day of one-second segments.
    pub fn stream_prefix(&self, target: &str, base: Option<&PointId>) -> String {
        match base {
            Some(p) => self.join(&format!("streams/{target}/{p}/")),
            None => self.join(&format!("streams/{target}/")),
        }
    }

    pub fn segment_key(&self, target: &str, base: &PointId, name: &SegmentName) -> String {
        format!(
            "{}{}",
            self.stream_prefix(target, Some(base)),
            name.file_name()
        )
    }

    pub fn drill_report_key(&self, run: &str, ext: &str) -> String {
        self.drill_file_key(run, &format!("report.{ext}"))
    }

    /// A file of a drill run's report folder (`report.json`, `junit.xml`, ...).
    pub fn drill_file_key(&self, run: &str, name: &str) -> String {
        self.join(&format!("drills/{run}/{name}"))
    }

    /// Where every drill run's report folder is.
    pub fn drills_prefix(&self) -> String {
        self.join("drills/")
    }

    /// A point's retention changed by hand.
    pub fn retention_key(&self, target: &str, point: &PointId) -> String {
        format!("{}{RETENTION_FILE}", self.point_prefix(target, point))
    }

    pub fn lock_key(&self, name: &str) -> String {
        self.join(&format!("locks/{name}"))
    }

    /// What a schedule remembers between runs (last run, last checks).
    pub fn schedule_state_key(&self, schedule: &str) -> String {
        self.join(&format!("schedules/{schedule}.json"))
    }

    /// The result of the last restore test of a point, next to it (never in
    /// the signed manifest).
    pub fn restore_test_key(&self, target: &str, point: &PointId) -> String {
        format!("{}{RESTORE_TEST_FILE}", self.point_prefix(target, point))
    }

    /// Where a verify's result is kept: `(this one, the other one)`.
    pub fn verify_keys(&self, target: &str, point: &PointId, ok: bool) -> (String, String) {
        let prefix = self.point_prefix(target, point);
        let (this, other) = if ok {
            (VERIFIED_FILE, VERIFY_FAILED_FILE)
        } else {
            (VERIFY_FAILED_FILE, VERIFIED_FILE)
        };
        (format!("{prefix}{this}"), format!("{prefix}{other}"))
    }

    /// Splits a key under `points/` into (target, point id, file name).
    pub fn parse_point_key<'k>(&self, key: &'k str) -> Option<(&'k str, PointId, &'k str)> {
        let points = self.points_prefix(None);
        let rest = key.strip_prefix(points.as_str())?;
        let mut parts = rest.splitn(3, '/');
        let target = parts.next()?;
        let point = parts.next()?.parse().ok()?;
        let file = parts.next()?;
        Some((target, point, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() -> Result<(), super::super::ArchiveError> {
        let l = Layout::new("/backups/");
        let p: PointId = "20261122T020000Z-0badcafe".parse()?;
        assert_eq!(
            l.data_key("etcd-main", &p, true),
            "backups/points/etcd-main/20261122T020000Z-0badcafe/data.zst.age"
        );
        let m = l.manifest_key("etcd-main", &p);
        assert_eq!(
            m,
            "backups/points/etcd-main/20261122T020000Z-0badcafe/manifest.json"
        );
        assert_eq!(
            l.parse_point_key(&m),
            Some(("etcd-main", p.clone(), MANIFEST_FILE))
        );
        assert_eq!(Layout::new("").lock_key("nightly"), "locks/nightly");
        let seg = l.segment_key("etcd-main", &p, &SegmentName { from: 5, to: 7 });
        assert_eq!(
            seg,
            "backups/streams/etcd-main/20261122T020000Z-0badcafe/00000000000000000005-00000000000000000007.seg.zst"
        );
        assert_eq!(
            l.drill_report_key("r1", "md"),
            "backups/drills/r1/report.md"
        );
        Ok(())
    }
}
