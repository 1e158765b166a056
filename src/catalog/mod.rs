//! The catalog: which recovery points a region holds, and picking one.
//!
//! A point exists only if its manifest exists and parses; data without a manifest
//! (an interrupted backup or copy) is never offered for restore.

use chrono::{DateTime, Utc};

use crate::archive::layout::MANIFEST_FILE;
use crate::archive::{Manifest, PointId};
use crate::error::Error;
use crate::store::{RegionStore, StoreError};

/// A recovery point as found in one region.
#[derive(Debug, Clone)]
pub struct PointEntry {
    pub id: PointId,
    pub manifest_key: String,
    pub manifest: Manifest,
}

/// What a region holds. `problems` lists manifests that could not be trusted
/// (edited, damaged, misplaced); `orphans` lists point folders without a manifest.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub points: Vec<PointEntry>,
    pub problems: Vec<String>,
    pub orphans: Vec<String>,
}

/// Lists the points of one target (or all) in a region, oldest first.
pub async fn list_points(rs: &RegionStore, target: Option<&str>) -> Result<Listing, StoreError> {
    let prefix = rs.layout.points_prefix(target);
    let objects = rs.store.list(&prefix).await?;
    let mut listing = Listing::default();
    let mut folders = std::collections::BTreeMap::<String, bool>::new();
    for o in &objects {
        let Some((t, id, file)) = rs.layout.parse_point_key(&o.key) else {
            continue;
        };
        let has_manifest = folders
            .entry(rs.layout.point_prefix(t, &id))
            .or_insert(false);
        if file != MANIFEST_FILE {
            continue;
        }
        *has_manifest = true;
        let bytes = match rs.store.get(&o.key).await {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        match Manifest::parse(&o.key, &bytes) {
            Ok(m) if m.target == t && m.point_id == id.as_str() => {
                listing.points.push(PointEntry {
                    id,
                    manifest_key: o.key.clone(),
                    manifest: m,
                })
            }
            Ok(m) => listing.problems.push(format!(
                "{}: manifest names target {} point {}, not its folder's: ignored",
                o.key, m.target, m.point_id
            )),
            Err(e) => listing.problems.push(format!("{e}: ignored")),
        }
    }
    for (folder, has_manifest) in folders {
        if !has_manifest {
            listing.orphans.push(format!(
                "{folder}: data without a manifest (an interrupted backup or copy): not a recovery point"
            ));
        }
    }
    listing.points.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(listing)
}

/// Picks a point: the given id, else the newest before `before`, else the newest.
pub fn select<'a>(
    points: &'a [PointEntry],
    region: &str,
    target: &str,
    point: Option<&PointId>,
    before: Option<DateTime<Utc>>,
) -> Result<&'a PointEntry, Error> {
    // Points are sorted oldest first: search from the newest.
    let mut mine = points.iter().rev().filter(|p| p.manifest.target == target);
    let found = match (point, before) {
        (Some(id), _) => mine.find(|p| &p.id == id),
        (None, Some(t)) => mine.find(|p| p.manifest.finished_at < t),
        (None, None) => mine.next(),
    };
    found.ok_or_else(|| {
        let what = match (point, before) {
            (Some(id), _) => format!("point {id}"),
            (None, Some(t)) => format!("a point finished before {}", t.to_rfc3339()),
            (None, None) => "any point".to_string(),
        };
        Error::input(format!(
            "region {region} holds no {what} of target {target}: run `drtool points --region {region} --target {target}` to see what it has"
        ))
    })
}

/// Parses `--before`: RFC 3339, `YYYY-MM-DDTHH:MM:SS[Z]` (UTC) or a date (midnight UTC).
pub fn parse_time(value: &str) -> Result<DateTime<Utc>, Error> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let plain = value.trim_end_matches('Z');
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(plain, "%Y-%m-%dT%H:%M:%S") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(Error::input(format!(
        "invalid time {value:?}: use RFC 3339 (2026-11-22T02:00:00Z) or a date (2026-11-22)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::manifest::tests::sample;

    fn entry(id: &str, finished: i64) -> PointEntry {
        let mut m = sample();
        m.point_id = id.into();
        m.finished_at = DateTime::from_timestamp(finished, 0).unwrap_or_default();
        PointEntry {
            id: id.parse().unwrap_or_else(|_| panic!("bad id {id}")),
            manifest_key: format!("points/etcd-main/{id}/manifest.json"),
            manifest: m,
        }
    }

    #[test]
    fn selects_by_id_time_or_newest() -> Result<(), Error> {
        let points = vec![
            entry("20261122T010000Z-00000001", 100),
            entry("20261122T020000Z-00000002", 200),
            entry("20261122T030000Z-00000003", 300),
        ];
        let newest = select(&points, "r", "etcd-main", None, None)?;
        assert_eq!(newest.id.as_str(), "20261122T030000Z-00000003");
        let before = DateTime::from_timestamp(250, 0);
        let b = select(&points, "r", "etcd-main", None, before)?;
        assert_eq!(b.id.as_str(), "20261122T020000Z-00000002");
        let err = select(&points, "r", "other", None, None).err();
        assert!(err.is_some_and(|e| e.to_string().contains("drtool points --region r")));
        Ok(())
    }

    #[test]
    fn parses_times() -> Result<(), Error> {
        assert_eq!(
            parse_time("2026-11-22")?.to_rfc3339(),
            "2026-11-22T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("2026-11-22T02:00:00Z")?.to_rfc3339(),
            "2026-11-22T02:00:00+00:00"
        );
        assert!(parse_time("yesterday").is_err());
        Ok(())
    }
}
