//! Recovery point ids: `20261122T020000Z-<8 hex>`, sorting by creation time.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use rand::Rng;

use super::ArchiveError;

const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PointId(String);

impl PointId {
    /// A new id for a point started at `at`. The suffix starts with the
    /// millisecond (3 hex digits) so ids sort strictly by time; its 5 random hex
    /// digits keep concurrent runs apart. Older ids have a random suffix: they
    /// sort by the second only (the catalog then orders them by `started_at`).
    pub fn new(at: DateTime<Utc>) -> PointId {
        let millis = at.timestamp_subsec_millis().min(999);
        let random: u32 = rand::thread_rng().r#gen_range(0..0x10_0000);
        PointId(format!(
            "{}-{millis:03x}{random:05x}",
            at.format(TIME_FORMAT)
        ))
    }

    /// When the point was started, from the id itself.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        let stamp = self.0.split('-').next()?;
        NaiveDateTime::parse_from_str(stamp, TIME_FORMAT)
            .ok()
            .map(|t| t.and_utc())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PointId {
    type Err = ArchiveError;

    /// Any case is taken (`20261205t083724z-08F162F8`); the id is kept in
    /// its one spelling, `20261205T083724Z-08f162f8`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let canonical = (s.is_ascii() && s.len() == 25).then(|| {
            format!(
                "{}{}",
                s[..16].to_ascii_uppercase(),
                s[16..].to_ascii_lowercase()
            )
        });
        let valid = canonical.as_deref().filter(|c| {
            c.as_bytes()[16] == b'-'
                && c[17..].chars().all(|c| c.is_ascii_hexdigit())
                && NaiveDateTime::parse_from_str(&c[..16], TIME_FORMAT).is_ok()
        });
        if let Some(c) = valid {
            Ok(PointId(c.to_string()))
        } else {
            Err(ArchiveError::BadPointId(s.to_string()))
        }
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_are_taken_in_any_case_and_kept_in_one() {
        let id: PointId = "20261205t083724z-08F162F8"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.to_string(), "20261205T083724Z-08f162f8");
        for bad in [
            "20261205T083724Z-08f162f",
            "20261205T083724Z_08f162f8",
            "2026120ÄT083724Z-08f162f",
        ] {
            assert!(bad.parse::<PointId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips_and_sorts_by_time() -> Result<(), ArchiveError> {
        let early = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).single();
        let late = Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).single();
        let (Some(early), Some(late)) = (early, late) else {
            panic!("bad test time")
        };
        let a = PointId::new(early);
        let b = PointId::new(late);
        assert!(a < b);
        assert!(a.as_str().starts_with("20261122T020000Z-"));
        assert_eq!(a.as_str().parse::<PointId>()?, a);
        assert_eq!(a.time(), Some(early));
        Ok(())
    }

    #[test]
    fn ids_of_one_second_sort_by_the_millisecond() {
        let second = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).single();
        let Some(second) = second else {
            panic!("bad test time")
        };
        let mut last = PointId::new(second);
        for ms in [1, 9, 10, 255, 256, 998, 999] {
            let next = PointId::new(second + chrono::Duration::milliseconds(ms));
            assert!(last < next, "{last} !< {next}");
            assert_eq!(next.time(), Some(second));
            last = next;
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "latest",
            "20261122T020000Z",
            "20261322T020000Z-0000000g",
        ] {
            assert!(bad.parse::<PointId>().is_err(), "{bad}");
        }
    }
}
