//! The local home of reports: `reports/<drill>/<run-id>/` holding
//! `report.json` and what is rendered from it. Listing, history and notes
//! read and write only here.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::facts::DrillVerdict;
use super::integrity::{self, Integrity};
use super::{DrillReport, Note, REPORT_VERSION, rendered};
use crate::archive::signing::TrustedKey;
use crate::error::Error;

pub struct ReportStore {
    root: PathBuf,
    /// Keys whose report signatures are trusted.
    trusted: Vec<TrustedKey>,
    /// Whether reports are expected to be signed (the config signs).
    signatures_expected: bool,
}

/// One run, as `report list` and `report history` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEntry {
    pub drill: String,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub verdict: DrillVerdict,
    pub rto_ms: Option<u64>,
    pub rpo_ms: Option<u64>,
    /// RTO and RPO objectives in ms (`{"rto_ms": .., "rpo_ms": ..}` in JSON).
    #[serde(serialize_with = "objectives_ms")]
    pub objectives: (u64, u64),
    pub path: PathBuf,
    /// Whether the report is what the drill wrote.
    pub integrity: Integrity,
    /// Whether its numbers may be trusted (and trended, and exported).
    pub trusted: bool,
}

fn objectives_ms<S: serde::Serializer>(o: &(u64, u64), s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&serde_json::json!({ "rto_ms": o.0, "rpo_ms": o.1 }), s)
}

impl RunEntry {
    /// The listing's line of a report kept in `path`, checked.
    pub fn of(r: &DrillReport, path: PathBuf, integrity: Integrity, trusted: bool) -> RunEntry {
        RunEntry {
            drill: r.drill.clone(),
            run_id: r.run_id.clone(),
            started_at: r.started_at,
            verdict: r.verdict,
            rto_ms: r.rto.rto_ms,
            rpo_ms: r.rpo.judged_ms(),
            objectives: (r.objectives.rto_ms, r.objectives.rpo_ms),
            path,
            integrity,
            trusted,
        }
    }
}

impl ReportStore {
    /// A store that trusts no signature and expects none.
    pub fn new(root: PathBuf) -> ReportStore {
        ReportStore {
            root,
            trusted: Vec::new(),
            signatures_expected: false,
        }
    }

    /// Checks signatures against `keys`; with `expected`, unsigned reports
    /// are not trusted.
    pub fn trusting(mut self, keys: &[TrustedKey], expected: bool) -> ReportStore {
        self.trusted = keys.to_vec();
        self.signatures_expected = expected;
        self
    }

    /// What checking `r` finds, and whether its numbers may be trusted.
    pub fn integrity(&self, r: &DrillReport) -> (Integrity, bool) {
        let i = integrity::check(r, &self.trusted);
        let trusted = i.trusted(self.signatures_expected);
        (i, trusted)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir_of(&self, drill: &str, run: &str) -> PathBuf {
        self.root.join(drill).join(run)
    }

    /// Writes the report and its renderings; returns the folder.
    pub fn write(&self, r: &DrillReport) -> Result<PathBuf, Error> {
        let dir = self.dir_of(&r.drill, &r.run_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::failed(format!("cannot create {}: {e}", dir.display())))?;
        for (name, body) in rendered(r)? {
            let path = dir.join(name);
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, &body)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(dir)
    }

    /// Reads one `report.json`.
    pub fn read(path: &Path) -> Result<DrillReport, Error> {
        let text = std::fs::read(path)
            .map_err(|e| Error::input(format!("cannot read {}: {e}", path.display())))?;
        let r: DrillReport = serde_json::from_slice(&text).map_err(|e| {
            Error::input(format!("{} is not a drtool report ({e})", path.display()))
        })?;
        if r.report_version != REPORT_VERSION {
            return Err(Error::input(format!(
                "{} is report version {}; this drtool reads version {REPORT_VERSION}",
                path.display(),
                r.report_version
            )));
        }
        Ok(r)
    }

    /// Every run, oldest first (of one drill when given).
    pub fn list(&self, drill: Option<&str>) -> Result<Vec<RunEntry>, Error> {
        let mut out = Vec::new();
        let drills = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(Error::failed(format!(
                    "cannot read {}: {e}",
                    self.root.display()
                )));
            }
        };
        for d in drills.filter_map(Result::ok) {
            let name = d.file_name().to_string_lossy().to_string();
            if drill.is_some_and(|want| want != name) {
                continue;
            }
            let Ok(runs) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for run in runs.filter_map(Result::ok) {
                let path = run.path().join("report.json");
                let Ok(r) = Self::read(&path) else { continue };
                let (integrity, trusted) = self.integrity(&r);
                out.push(RunEntry::of(&r, run.path(), integrity, trusted));
            }
        }
        out.sort_by(|a, b| (a.started_at, &a.run_id).cmp(&(b.started_at, &b.run_id)));
        Ok(out)
    }

    /// The folder of a run's report, by its id (any case).
    pub fn find(&self, run: &str) -> Result<PathBuf, Error> {
        let found = self
            .list(None)?
            .into_iter()
            .find(|e| e.run_id.eq_ignore_ascii_case(run));
        match found {
            Some(e) => Ok(e.path),
            None => Err(Error::input(format!(
                "no report of run {run:?} under {}: `drtool report list` shows the runs",
                self.root.display()
            ))),
        }
    }

    /// The report of a run, by its id.
    pub fn load(&self, run: &str) -> Result<DrillReport, Error> {
        Self::read(&self.find(run)?.join("report.json"))
    }

    /// Adds a note by `author` to a run's report and renders it again
    /// (notes are outside the seal and the signature).
    pub fn note(&self, run: &str, text: &str, author: &str) -> Result<DrillReport, Error> {
        if text.trim().is_empty() {
            return Err(Error::input("the note is empty"));
        }
        let mut r = self.load(run)?;
        r.notes.push(Note {
            at: Utc::now(),
            text: text.trim().to_string(),
            author: Some(author.to_string()),
        });
        self.write(&r)?;
        Ok(r)
    }
}

/// Which way a series of measures goes, oldest to newest.
pub fn trend(values: &[u64]) -> &'static str {
    if values.len() < 2 {
        return "not enough runs";
    }
    let half = values.len() / 2;
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let (old, new) = (mean(&values[..half]), mean(&values[half..]));
    if new > old * 1.1 {
        "getting slower"
    } else if new < old * 0.9 {
        "getting faster"
    } else {
        "steady"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_take_notes() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(Error::failed)?;
        let store = ReportStore::new(dir.path().to_path_buf());
        let r = crate::report::tests::sample();
        let folder = store.write(&r)?;
        for f in ["report.json", "report.md", "report.html", "junit.xml"] {
            assert!(folder.join(f).is_file(), "{f}");
        }
        assert_eq!(store.load(&r.run_id)?, r);
        let noted = store.note(&r.run_id, "failover took a manual DNS change", "oncall")?;
        assert_eq!(noted.notes.len(), 1);
        let md = std::fs::read_to_string(folder.join("report.md")).map_err(Error::failed)?;
        assert!(md.contains("failover took a manual DNS change"));
        assert_eq!(store.list(Some("etcd-region-failover"))?.len(), 1);
        assert!(store.list(Some("other"))?.is_empty());
        assert!(store.load("nope").is_err());
        Ok(())
    }

    #[test]
    fn trends() {
        assert_eq!(trend(&[10, 10, 20, 20]), "getting slower");
        assert_eq!(trend(&[20, 20, 10, 10]), "getting faster");
        assert_eq!(trend(&[10, 11, 10, 10]), "steady");
        assert_eq!(trend(&[10]), "not enough runs");
    }
}
