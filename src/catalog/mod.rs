//! The catalog: which recovery points a region holds, and picking one.
//!
//! A point exists only if its manifest exists and parses; data without a manifest
//! (an interrupted backup or copy) is never offered for restore. Listing does the
//! I/O; picking a point is a pure function of the listing and the request.

mod region;
pub mod retention;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

pub use region::RegionStore;

use crate::archive::layout::Layout;
use crate::archive::layout::{
    BESIDE_POINT, MANIFEST_FILE, RESTORE_TEST_FILE, RETENTION_FILE, VERIFIED_FILE,
    VERIFY_FAILED_FILE,
};
use crate::archive::{Manifest, PointId};
use crate::error::{Error, SourceError};
use crate::store::{ObjectInfo, StoreError, Unfinished, UnfinishedKind};

/// Manifests fetched at once while listing.
const MANIFESTS_IN_FLIGHT: usize = 16;

/// How many manifests a listing reads at once: `DRTOOL_CATALOG_READS`
/// (1-256) for stores far away, else 16.
fn manifests_in_flight() -> usize {
    std::env::var("DRTOOL_CATALOG_READS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(MANIFESTS_IN_FLIGHT, |n| n.clamp(1, 256))
}

/// A recovery point as found in one region.
#[derive(Debug, Clone)]
pub struct PointEntry {
    pub id: PointId,
    pub manifest_key: String,
    pub manifest: Manifest,
    /// The point's last restore test (`restore-test.json` next to it).
    pub restore_test: Option<CheckResult>,
    /// The point's last verify in this region (`verify.json` next to it).
    pub verified: Option<CheckResult>,
    /// Its retention as changed by hand (`retention.json` next to it).
    pub retention_override: Option<RetentionOverride>,
}

/// A point's retention changed by `drtool points retain`: kept until a date,
/// judged by another policy, or both; who did it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionOverride {
    /// Kept at least until then, whatever its policy says.
    #[serde(default)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Judged by this policy instead of the manifest's.
    #[serde(default)]
    pub policy: Option<crate::archive::manifest::PointRetention>,
    pub by: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The last restore test or verify of a point: kept next to it, never in the
/// signed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CheckResult {
    pub at: chrono::DateTime<chrono::Utc>,
    pub ok: bool,
    pub message: String,
    pub duration_ms: u64,
}

/// A point folder that is not a usable recovery point, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub target: String,
    pub point: String,
    pub detail: String,
}

/// What a region holds. `problems` lists manifests that could not be trusted
/// (edited, damaged, misplaced); `orphans` lists point folders without a
/// manifest, and `leftovers` their objects.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub points: Vec<PointEntry>,
    pub problems: Vec<Problem>,
    pub orphans: Vec<Problem>,
    pub leftovers: Vec<Leftover>,
}

/// Something in a region's store that belongs to no recovery point: data of
/// a point folder without a manifest, an open multipart upload, a temporary
/// file. `drtool gc` removes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    pub what: LeftoverKind,
    /// The target and point whose folder it is in, when it is in one.
    pub target: Option<String>,
    pub point: Option<String>,
    pub key: String,
    pub size: Option<u64>,
    /// When it was written or started.
    pub since: Option<DateTime<Utc>>,
    /// The store's handle on an unfinished write.
    #[serde(skip)]
    pub unfinished: Option<Unfinished>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeftoverKind {
    /// An object of a point folder that has no manifest: an interrupted
    /// backup or copy.
    DataWithoutManifest,
    OpenUpload,
    TempFile,
    /// A lock or hold past its lifetime: whoever took it is gone (a run
    /// killed before it could release it).
    ExpiredLock,
    /// A lock named by `gc --force-unlock`: held, or unreadable.
    Lock,
}

impl LeftoverKind {
    pub fn describe(self) -> &'static str {
        match self {
            LeftoverKind::DataWithoutManifest => "data without a manifest",
            LeftoverKind::OpenUpload => "open multipart upload",
            LeftoverKind::TempFile => "temporary file",
            LeftoverKind::ExpiredLock => "expired lock",
            LeftoverKind::Lock => "lock",
        }
    }
}

impl Leftover {
    /// How old it is at `now`, when the store said when it was written.
    pub fn age(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        self.since.map(|t| now - t)
    }

    /// One line for listings: what, where, how big, how old.
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        let size = self.size.map_or(String::new(), |s| format!(", {s} bytes"));
        let age = self.age(now).map_or(", age unknown".to_string(), |a| {
            if self.what == LeftoverKind::ExpiredLock {
                format!(", expired {} ago", short_age(a))
            } else {
                format!(", {} old", short_age(a))
            }
        });
        format!("{}: {}{size}{age}", self.what.describe(), self.key)
    }
}

/// `3d4h`, `2h10m`, `45s`: an age at a glance.
pub fn short_age(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, mins) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// The unfinished writes of a region's store under the points of `target`
/// (or all), as leftovers.
pub async fn unfinished(
    rs: &RegionStore,
    target: Option<&str>,
) -> Result<Vec<Leftover>, StoreError> {
    let prefix = rs.layout.points_prefix(target);
    let found = rs.store.unfinished(&prefix).await?;
    Ok(found
        .into_iter()
        .map(|u| {
            let (t, p) = match rs.layout.parse_point_key(&u.key) {
                Some((t, p, _)) => (Some(t.to_string()), Some(p.to_string())),
                None => (None, None),
            };
            Leftover {
                what: match u.what {
                    UnfinishedKind::OpenUpload => LeftoverKind::OpenUpload,
                    UnfinishedKind::TempFile => LeftoverKind::TempFile,
                },
                target: t,
                point: p,
                key: u.key.clone(),
                size: u.size,
                since: u.started,
                unfinished: Some(u),
            }
        })
        .collect())
}

/// Locks and holds past their lifetime (`until`), of `target` when given
/// (holds name their target; schedule locks are listed without one). `since`
/// is when it expired. An unreadable lock is not listed: it may be held.
pub async fn expired_locks(
    rs: &RegionStore,
    target: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Leftover>, StoreError> {
    let prefix = rs.layout.lock_key("");
    let mut out = Vec::new();
    for o in rs.store.list(&prefix).await? {
        let name = o.key.strip_prefix(&prefix).unwrap_or(&o.key);
        let held_for = name
            .strip_prefix("hold.")
            .and_then(|rest| rest.split_once('.'))
            .map(|(t, _)| t);
        if target.is_some() && held_for != target {
            continue;
        }
        // One lock that cannot be read is not listed (it may be held); it
        // never hides the others.
        let Ok(body) = rs.store.get(&o.key).await else {
            continue;
        };
        let until = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["until"]
                    .as_str()
                    .and_then(|u| u.parse::<DateTime<Utc>>().ok())
            });
        if let Some(until) = until.filter(|u| *u < now) {
            out.push(Leftover {
                what: LeftoverKind::ExpiredLock,
                target: held_for.map(str::to_string),
                point: None,
                key: o.key.clone(),
                size: Some(o.size),
                since: Some(until),
                unfinished: None,
            });
        }
    }
    Ok(out)
}

/// A check's result kept next to a point, if it has one: a missing or
/// unreadable result is no result, never an error.
async fn check_result(rs: &RegionStore, key: Option<String>) -> Option<CheckResult> {
    read_json(rs, key).await
}

/// A small JSON document next to a point, if it is there and reads.
async fn read_json<T: serde::de::DeserializeOwned>(
    rs: &RegionStore,
    key: Option<String>,
) -> Option<T> {
    let body = rs.store.get(&key?).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// A point's last verify as the listing found it.
#[derive(Debug, Clone)]
struct Verified {
    passed: bool,
    key: String,
    at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A passed verify is known from the listing alone (its time is the
/// object's, its message left empty); a failed one is read, to say why.
async fn last_verify(rs: &RegionStore, found: Option<Verified>) -> Option<CheckResult> {
    let found = found?;
    match found.at {
        Some(at) if found.passed => Some(CheckResult {
            at,
            ok: true,
            message: String::new(),
            duration_ms: 0,
        }),
        _ => check_result(rs, Some(found.key)).await,
    }
}

/// A point and its target, as keys of a listing.
type PointKey = (String, PointId);

/// What the objects of point folders are, file by file.
#[derive(Default)]
struct Seen {
    /// Every folder that holds more than check results, and whether it
    /// holds a manifest.
    folders: BTreeMap<PointKey, bool>,
    /// Target, point and key of each manifest.
    manifests: Vec<(String, PointId, String)>,
    tests: BTreeMap<PointKey, String>,
    overrides: BTreeMap<PointKey, String>,
    verifies: BTreeMap<PointKey, Verified>,
}

fn seen_in(layout: &Layout, objects: &[ObjectInfo]) -> Seen {
    let mut seen = Seen::default();
    for o in objects {
        let Some((t, id, file)) = layout.parse_point_key(&o.key) else {
            continue;
        };
        if file == RESTORE_TEST_FILE {
            seen.tests
                .insert((t.to_string(), id.clone()), o.key.clone());
        }
        if file == RETENTION_FILE {
            seen.overrides
                .insert((t.to_string(), id.clone()), o.key.clone());
        }
        if file == VERIFIED_FILE || file == VERIFY_FAILED_FILE {
            let check = Verified {
                passed: file == VERIFIED_FILE,
                key: o.key.clone(),
                at: o.modified,
            };
            // Both there (a verify stopped between writing one and removing
            // the other): the newer one is the last verify.
            let key = (t.to_string(), id.clone());
            if seen.verifies.get(&key).is_none_or(|v| check.at > v.at) {
                seen.verifies.insert(key, check);
            }
        }
        let is_manifest = file == MANIFEST_FILE;
        // Results of checks alone do not make a copy: a folder that holds
        // only those does not hold the point (they are leftovers below).
        if !BESIDE_POINT.contains(&file) {
            *seen
                .folders
                .entry((t.to_string(), id.clone()))
                .or_insert(false) |= is_manifest;
        }
        if is_manifest {
            seen.manifests.push((t.to_string(), id, o.key.clone()));
        }
    }
    seen
}

/// Lists the points of one target (or all) in a region, oldest first.
pub async fn list_points(rs: &RegionStore, target: Option<&str>) -> Result<Listing, StoreError> {
    let prefix = rs.layout.points_prefix(target);
    let objects = rs.store.list(&prefix).await?;
    let Seen {
        folders,
        manifests,
        tests,
        overrides,
        verifies,
    } = seen_in(&rs.layout, &objects);
    let leftovers: Vec<Leftover> = objects
        .iter()
        .filter_map(|o| {
            let (t, id, _) = rs.layout.parse_point_key(&o.key)?;
            let orphan = folders.get(&(t.to_string(), id.clone())) != Some(&true);
            orphan.then(|| Leftover {
                what: LeftoverKind::DataWithoutManifest,
                target: Some(t.to_string()),
                point: Some(id.to_string()),
                key: o.key.clone(),
                size: Some(o.size),
                since: o.modified,
                unfinished: None,
            })
        })
        .collect();
    let fetched: Vec<_> = futures::stream::iter(manifests.into_iter().map(|(t, id, key)| {
        let test_key = tests.get(&(t.clone(), id.clone())).cloned();
        let verified = verifies.get(&(t.clone(), id.clone())).cloned();
        let override_key = overrides.get(&(t.clone(), id.clone())).cloned();
        async move {
            let (got, test, verified, retention) = futures::join!(
                rs.store.get(&key),
                check_result(rs, test_key),
                last_verify(rs, verified),
                read_json::<RetentionOverride>(rs, override_key)
            );
            (t, id, key, got, (test, verified, retention))
        }
    }))
    .buffer_unordered(manifests_in_flight())
    .collect()
    .await;
    let mut listing = Listing {
        leftovers,
        ..Listing::default()
    };
    for (t, id, key, got, (restore_test, verified, retention_override)) in fetched {
        let bytes = match got {
            Ok(b) => b,
            // Deleted between the listing and the read: it is gone, not damaged.
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        match Manifest::parse(&key, &bytes) {
            Ok(m) if m.target == t && m.point_id == id.as_str() => {
                listing.points.push(PointEntry {
                    id,
                    manifest_key: key,
                    manifest: m,
                    restore_test,
                    verified,
                    retention_override,
                })
            }
            Ok(m) => listing.problems.push(Problem {
                detail: format!(
                    "{key}: manifest names target {} point {}, not its folder's",
                    m.target, m.point_id
                ),
                target: t,
                point: id.to_string(),
            }),
            Err(e) => listing.problems.push(Problem {
                target: t,
                point: id.to_string(),
                detail: e.to_string(),
            }),
        }
    }
    for ((t, id), has_manifest) in folders {
        if !has_manifest {
            listing.orphans.push(Problem {
                detail: format!(
                    "{}: data without a manifest (an interrupted backup or copy): not a recovery point",
                    rs.layout.point_prefix(&t, &id)
                ),
                target: t,
                point: id.to_string(),
            });
        }
    }
    // Ids sort by the second a point started; two points of one second sort by
    // their exact start.
    listing
        .points
        .sort_by(|a, b| (a.manifest.started_at, &a.id).cmp(&(b.manifest.started_at, &b.id)));
    listing.problems.sort_by(|a, b| a.point.cmp(&b.point));
    Ok(listing)
}

/// Which point a restore wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "by", content = "value")]
pub enum PointChoice {
    /// The newest valid point.
    Newest,
    /// Exactly this point.
    Id(PointId),
    /// The newest valid point finished before this time.
    Before(DateTime<Utc>),
    /// The newest valid point at or before this position of the target's
    /// stream (etcd: revision), then its stream replayed up to it.
    Revision(u64),
}

/// A point that was newer than the one chosen but could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassedOver {
    pub point: String,
    pub reason: String,
}

/// The chosen point, the newer ones that were passed over, and the older ones
/// to fall back on (newest first; none when a point was asked for by id).
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    pub chosen: &'a PointEntry,
    pub passed_over: Vec<PassedOver>,
    pub fallbacks: Vec<&'a PointEntry>,
}

/// Picks a point of `target` from a region's listing. A newer point whose
/// manifest is damaged, or that never completed, is passed over (and named) when
/// the newest point is asked for; asked for by id, it is an integrity error.
pub fn select<'a>(
    listing: &'a Listing,
    region: &str,
    target: &str,
    choice: &PointChoice,
) -> Result<Selection<'a>, Error> {
    if let PointChoice::Id(id) = choice
        && let Some(p) = listing
            .problems
            .iter()
            .find(|p| p.target == target && p.point == id.as_str())
    {
        return Err(SourceError::Integrity {
            what: format!("point {id} in region {region}"),
            detail: format!(
                "its manifest is damaged ({}); restore another point (`drtool points --region {region} --target {target}`)",
                p.detail
            ),
        }
        .into());
    }
    if let PointChoice::Id(id) = choice
        && let Some(o) = listing
            .orphans
            .iter()
            .find(|o| o.target == target && o.point == id.as_str())
    {
        return Err(SourceError::Integrity {
            what: format!("point {id} in region {region}"),
            detail: format!(
                "{}; copy it here again from a region that holds it, or restore another point",
                o.detail
            ),
        }
        .into());
    }
    // Points are sorted oldest first: search from the newest.
    let mut mine = listing
        .points
        .iter()
        .rev()
        .filter(|p| p.manifest.target == target);
    let found = match choice {
        PointChoice::Id(id) => mine.find(|p| &p.id == id),
        PointChoice::Before(t) => mine.find(|p| p.manifest.finished_at < *t),
        // The engine picks the base of a revision (it knows positions).
        PointChoice::Newest | PointChoice::Revision(_) => mine.next(),
    };
    let Some(chosen) = found else {
        return Err(Error::input(format!(
            "region {region} holds no {}: run `drtool points --region {region} --target {target}` to see what it has",
            wanted(choice, target)
        )));
    };
    let fallbacks = match choice {
        PointChoice::Id(_) => Vec::new(),
        PointChoice::Newest | PointChoice::Before(_) | PointChoice::Revision(_) => mine.collect(),
    };
    let passed_over = match choice {
        PointChoice::Id(_) => Vec::new(),
        PointChoice::Newest | PointChoice::Before(_) | PointChoice::Revision(_) => {
            let limit = match choice {
                PointChoice::Before(t) => Some(*t),
                _ => None,
            };
            listing
                .problems
                .iter()
                .map(|p| (p, "damaged manifest"))
                .chain(listing.orphans.iter().map(|p| (p, "never completed")))
                .filter(|(p, _)| {
                    // Ids tell the second a point started: one of the chosen
                    // point's second may be newer, so it is named too.
                    let started = p.point.parse::<PointId>().ok().and_then(|id| id.time());
                    p.target == target
                        && p.point != chosen.id.as_str()
                        && started.is_none_or(|s| chosen.id.time().is_none_or(|c| s >= c))
                        && limit.is_none_or(|t| started.is_none_or(|s| s < t))
                })
                .map(|(p, why)| PassedOver {
                    point: p.point.clone(),
                    reason: format!("{why}: {}", p.detail),
                })
                .collect()
        }
    };
    Ok(Selection {
        chosen,
        passed_over,
        fallbacks,
    })
}

/// What a choice asked for, for the error when nothing matches it.
fn wanted(choice: &PointChoice, target: &str) -> String {
    match choice {
        PointChoice::Id(id) => format!("point {id} of target {target}"),
        PointChoice::Before(t) => format!(
            "point of target {target} finished before {}",
            t.to_rfc3339()
        ),
        PointChoice::Newest => format!("point of target {target}"),
        PointChoice::Revision(n) => format!("point of target {target} at or before revision {n}"),
    }
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
    use crate::error::ErrorClass;

    /// A point that finished a minute after it started.
    fn entry(id: &str) -> PointEntry {
        let id: PointId = id.parse().unwrap_or_else(|_| panic!("bad id {id}"));
        let mut m = sample();
        m.point_id = id.to_string();
        m.finished_at = id.time().unwrap_or_default() + chrono::Duration::minutes(1);
        PointEntry {
            manifest_key: format!("points/etcd-main/{id}/manifest.json"),
            id,
            manifest: m,
            restore_test: None,
            verified: None,
            retention_override: None,
        }
    }

    fn problem(id: &str, detail: &str) -> Problem {
        Problem {
            target: "etcd-main".into(),
            point: id.into(),
            detail: detail.into(),
        }
    }

    const P1: &str = "20261122T010000Z-00000001";
    const P2: &str = "20261122T020000Z-00000002";
    const P3: &str = "20261122T030000Z-00000003";
    const P4: &str = "20261122T040000Z-00000004";

    fn listing() -> Listing {
        Listing {
            points: vec![entry(P1), entry(P2), entry(P3)],
            ..Listing::default()
        }
    }

    fn chosen(l: &Listing, choice: PointChoice) -> Result<String, Error> {
        select(l, "r", "etcd-main", &choice).map(|s| s.chosen.id.to_string())
    }

    #[test]
    fn selects_by_id_time_or_newest() -> Result<(), Error> {
        let l = listing();
        assert_eq!(chosen(&l, PointChoice::Newest)?, P3);
        let before = parse_time("2026-11-22T02:30:00Z")?;
        assert_eq!(chosen(&l, PointChoice::Before(before))?, P2);
        assert_eq!(chosen(&l, PointChoice::Id(P1.parse()?))?, P1);
        let err = select(&l, "r", "other", &PointChoice::Newest).err();
        assert!(err.is_some_and(|e| e.to_string().contains("drtool points --region r")));
        let early = parse_time("2026-11-22")?;
        let none = chosen(&l, PointChoice::Before(early)).err();
        assert!(none.is_some_and(|e| e.class() == ErrorClass::BadInput));
        Ok(())
    }

    #[test]
    fn newest_valid_point_passes_over_damaged_and_incomplete_newer_ones() -> Result<(), Error> {
        let mut l = listing();
        l.problems.push(problem(P4, "manifest checksum mismatch"));
        l.orphans.push(problem(P4, "no manifest"));
        // An older damaged point is not worth mentioning.
        l.problems.push(problem(P1, "old damage"));
        let s = select(&l, "r", "etcd-main", &PointChoice::Newest)?;
        assert_eq!(s.chosen.id.as_str(), P3);
        let older: Vec<&str> = s.fallbacks.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(older, [P2, P1]);
        assert_eq!(s.passed_over.len(), 2);
        assert!(s.passed_over[0].reason.starts_with("damaged manifest"));
        assert!(s.passed_over[1].reason.starts_with("never completed"));
        Ok(())
    }

    #[test]
    fn a_damaged_point_asked_for_by_id_is_an_integrity_error() -> Result<(), Error> {
        let mut l = listing();
        l.problems.push(problem(P4, "manifest checksum mismatch"));
        let by_id = select(&l, "r", "etcd-main", &PointChoice::Id(P2.parse()?))?;
        assert!(
            by_id.fallbacks.is_empty(),
            "an explicit point has no fallback"
        );
        let err = select(&l, "r", "etcd-main", &PointChoice::Id(P4.parse()?)).err();
        assert!(
            err.as_ref()
                .is_some_and(|e| e.class() == ErrorClass::Integrity
                    && e.to_string().contains("its manifest is damaged")
                    && e.to_string().contains("restore another point")),
            "{err:?}"
        );
        // A folder without a manifest is named as such, not "no such point".
        l.orphans.push(problem(P4, "data without a manifest"));
        l.problems.clear();
        let err = select(&l, "r", "etcd-main", &PointChoice::Id(P4.parse()?)).err();
        assert!(
            err.as_ref()
                .is_some_and(|e| e.class() == ErrorClass::Integrity
                    && e.to_string().contains("data without a manifest")),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn before_only_mentions_damage_before_the_cutoff() -> Result<(), Error> {
        let mut l = listing();
        l.problems.push(problem(P4, "damaged"));
        l.orphans
            .push(problem("20261122T022000Z-00000005", "no manifest"));
        let s = select(
            &l,
            "r",
            "etcd-main",
            &PointChoice::Before(parse_time("2026-11-22T02:30:00Z")?),
        )?;
        assert_eq!(s.chosen.id.as_str(), P2);
        // P4 started after the cutoff; the 02:20 orphan before it.
        assert_eq!(s.passed_over.len(), 1);
        assert_eq!(s.passed_over[0].point, "20261122T022000Z-00000005");
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
