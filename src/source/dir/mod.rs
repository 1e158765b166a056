//! A kind for tests only: the files of one directory (not its subfolders).
//!
//! It is the proof that a new kind of target is this folder and its line in
//! the registry: its config section (`config.rs`), its payload, its
//! consistency, its backup, its restore plan and apply live here, and
//! nothing outside `src/source/` names it. Built with `cfg(test)` or the
//! `test-kinds` feature.
//!
//! A point is JSON Lines, one `{"name": ..., "data": base64}` per file in
//! name order. A restore writes the files into the region's directory:
//! `--existing fail` (the default) refuses when any exists, `skip` leaves
//! them, `overwrite` replaces them.

mod config;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use config::DirTarget;

use crate::archive::{Consistency, PayloadKind, PointId};
use crate::config::Target;
use crate::engine::events::Job;
use crate::engine::kind::{
    Applied, BackupShape, Consistent, DataSender, FlagSpec, FlagValues, KindPlan, Payload,
    PlanRequest, Reachability, Taken, TargetKind, no_region_table, section,
};
use crate::engine::options::{Existing, KindOptions};
use crate::engine::point::PointData;
use crate::error::Error;

/// The `kind = "..."` of this kind.
pub const NAME: &str = "dir";

pub const PAYLOAD: PayloadKind = PayloadKind::named("dir-files");

static PAYLOADS: [Payload; 1] = [Payload {
    kind: PAYLOAD,
    describe: "the files of a directory (JSON Lines)",
    trailing_sha256: false,
}];

/// One file of a point.
#[derive(Debug, Serialize, Deserialize)]
struct File {
    name: String,
    /// Its bytes, base64.
    data: String,
}

/// When a point was read (`kind: dir` in manifests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum DirConsistency {
    Dir { read_at: DateTime<Utc> },
}

/// A restore, decided: where, how many files, what to do with those there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DirPlan {
    dir: PathBuf,
    existing: Existing,
    files: u64,
}

#[derive(Debug, Default)]
pub struct DirKind;

fn spec(target: &Target) -> Result<&DirTarget, Error> {
    section(target, NAME)
}

fn dir_of<'a>(target: &'a Target, region: &str) -> Result<&'a Path, Error> {
    spec(target)?
        .regions
        .get(region)
        .map(PathBuf::as_path)
        .ok_or_else(|| no_region_table(target, region))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::failed(format!("cannot {what} {}: {e}", path.display()))
}

/// The files of `dir`, by name (no subfolders).
async fn files_of(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| io_error("read the directory", dir, e))?;
    let mut files = Vec::new();
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| io_error("read the directory", dir, e))?
    {
        if entry.file_type().await.is_ok_and(|t| t.is_file()) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// The files a point holds, read from its stream; each is checked to be a
/// plain name (no folder, no `..`) before anything is written.
fn parse_line(line: &[u8]) -> Result<(String, Vec<u8>), Error> {
    let file: File = serde_json::from_slice(line)
        .map_err(|e| Error::failed(format!("a line of the point is not a file record: {e}")))?;
    let plain = Path::new(&file.name)
        .file_name()
        .is_some_and(|n| n == file.name.as_str());
    if !plain {
        return Err(Error::failed(format!(
            "the point names {:?}, which is not a plain file name",
            file.name
        )));
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(&file.data)
        .map_err(|e| Error::failed(format!("file {} of the point: {e}", file.name)))?;
    Ok((file.name, data))
}

/// Reads the point's files one by one, handing each to `each`.
async fn read_point(
    data: &PointData,
    mut each: impl FnMut(String, Vec<u8>) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut stream = data.stream().await?;
    let mut rx = stream.take();
    let consumed = async {
        let mut buf: Vec<u8> = Vec::new();
        let mut n = 0u64;
        while let Some(chunk) = rx.recv().await {
            buf.extend_from_slice(&chunk);
            while let Some(at) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=at).collect();
                let (name, bytes) = parse_line(&line[..at])?;
                each(name, bytes)?;
                n += 1;
            }
        }
        if !buf.is_empty() {
            return Err(Error::failed(format!(
                "the point ends in the middle of a file record ({} bytes after the last line)",
                buf.len()
            )));
        }
        Ok(n)
    }
    .await;
    drop(rx);
    stream.finish(consumed).await
}

#[async_trait]
impl TargetKind for DirKind {
    fn name(&self) -> &'static str {
        NAME
    }

    fn section(&self) -> crate::config::Section {
        (NAME, config::parse_all)
    }

    fn payloads(&self) -> &'static [Payload] {
        &PAYLOADS
    }

    fn consistent(&self, c: &Consistency) -> Option<Consistent> {
        let DirConsistency::Dir { read_at } = c.read().ok()?;
        Some(Consistent {
            at: read_at,
            text: format!("files read at {}", read_at.to_rfc3339()),
        })
    }

    fn backup_shape(&self, _target: &Target) -> Result<BackupShape, Error> {
        Ok(BackupShape {
            payload: PAYLOAD,
            has_data: true,
        })
    }

    async fn backup(
        &self,
        target: &Target,
        _point: &PointId,
        data: Option<DataSender>,
        job: &Job,
    ) -> Result<Taken, Error> {
        let dir = dir_of(target, &target.home)?;
        let data = data.ok_or_else(|| Error::failed("a dir point has a data object"))?;
        let read_at = Utc::now();
        let files = files_of(dir).await?;
        for path in &files {
            job.check_cancelled()?;
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| io_error("read", path, e))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut line = serde_json::to_vec(&File {
                name,
                data: base64::engine::general_purpose::STANDARD.encode(bytes),
            })
            .map_err(|e| Error::failed(format!("cannot record {}: {e}", path.display())))?;
            line.push(b'\n');
            data.send(Ok(Bytes::from(line)))
                .await
                .map_err(|_| Error::failed("the point's upload stopped"))?;
        }
        Ok(Taken {
            consistency: Consistency::of(&DirConsistency::Dir { read_at })
                .map_err(|e| Error::failed(format!("cannot record when: {e}")))?,
            items: BTreeMap::from([("files".to_string(), files.len() as u64)]),
            external: None,
        })
    }

    fn restore_flags(&self) -> &'static [FlagSpec] {
        &[]
    }

    fn restore_options(&self, _flags: &FlagValues) -> Result<KindOptions, Error> {
        Ok(KindOptions::default())
    }

    async fn plan_restore(&self, req: PlanRequest<'_>) -> Result<KindPlan, Error> {
        let dir = dir_of(req.target, req.region)?.to_path_buf();
        let Some((_, data)) = &req.point else {
            return Err(Error::failed("a dir restore needs a recovery point"));
        };
        let existing = req.options.existing();
        let mut there = Vec::new();
        req.job
            .phase("verifying the point and comparing with the directory");
        let files = read_point(data, |name, _| {
            // A symlink counts as there, even one pointing nowhere.
            if dir.join(&name).symlink_metadata().is_ok() {
                there.push(name);
            }
            Ok(())
        })
        .await?;
        if existing == Existing::Fail && !there.is_empty() {
            return Err(Error::exists(format!(
                "{} of the point's files already exist in {} (e.g. {}) and --existing fail is in effect: \
                 use --existing skip or --existing overwrite, or restore into an empty directory",
                there.len(),
                dir.display(),
                there[0]
            )));
        }
        let lines = vec![
            format!("write {files} files into {}", dir.display()),
            format!("{} exist there: {}", there.len(), existing.name()),
        ];
        let destructive = existing == Existing::Overwrite && !there.is_empty();
        let plan = DirPlan {
            dir,
            existing,
            files,
        };
        KindPlan::new(&plan, lines, destructive, true)
    }

    async fn apply(
        &self,
        plan: &KindPlan,
        point: Option<PointData>,
        job: &Job,
    ) -> Result<Applied, Error> {
        let plan: DirPlan = plan.action()?;
        let data = point.ok_or_else(|| Error::failed("a dir restore needs a recovery point"))?;
        tokio::fs::create_dir_all(&plan.dir)
            .await
            .map_err(|e| io_error("create", &plan.dir, e))?;
        job.phase(format!("writing {} files", plan.files));
        let (mut written, mut skipped) = (0u64, 0u64);
        read_point(&data, |name, bytes| {
            let path = plan.dir.join(&name);
            if plan.existing == Existing::Skip && path.symlink_metadata().is_ok() {
                skipped += 1;
                return Ok(());
            }
            // A fresh file of our own (never through what is at that name),
            // renamed over the target: a reader sees the old file or the new.
            // Blocking calls: this kind is for tests, with small files.
            let part = plan.dir.join(format!(".{name}.drtool-part"));
            let _ = std::fs::remove_file(&part);
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&part)
                .map_err(|e| io_error("write", &part, e))?;
            std::io::Write::write_all(&mut out, &bytes).map_err(|e| io_error("write", &part, e))?;
            std::fs::rename(&part, &path).map_err(|e| io_error("write", &path, e))?;
            written += 1;
            Ok(())
        })
        .await?;
        Ok(Applied {
            message: format!(
                "{written} files written into {}, {skipped} left as they were",
                plan.dir.display()
            ),
            counts: BTreeMap::from([
                ("written".to_string(), written),
                ("skipped".to_string(), skipped),
            ]),
            failures: Vec::new(),
        })
    }

    async fn reachability(&self, target: &Target) -> Vec<Reachability> {
        let Ok(spec) = spec(target) else {
            return Vec::new();
        };
        spec.regions
            .iter()
            .map(|(region, dir)| Reachability {
                region: region.clone(),
                what: format!("target {}", target.name),
                address: dir.display().to_string(),
                reachable: dir.is_dir(),
                misconfigured: false,
                detail: if dir.is_dir() {
                    "ok".into()
                } else {
                    "no such directory".into()
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod drill_tests;
#[cfg(test)]
mod tests;
