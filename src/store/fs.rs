//! The filesystem store: objects are files under a root folder.
//!
//! Writes go to a temporary file and are renamed into place, so a reader never
//! sees half an object. Multipart uploads keep their parts under
//! `<root>/.drtool-uploads/<id>/` until completed. An object's version is its
//! size, modification time and inode: a rename or an edit in place changes it.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::AsyncWriteExt;

use super::{
    Keep, MultipartUpload, ObjectInfo, ObjectStore, Opened, StoreError, Unfinished, UnfinishedKind,
};

const UPLOADS: &str = ".drtool-uploads";

pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub fn new(root: PathBuf) -> FsStore {
        FsStore { root }
    }

    fn name(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn failed(&self, op: &'static str, key: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Failed {
            store: self.name(),
            op,
            key: key.to_string(),
            detail: e.to_string(),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let safe = !key.is_empty()
            && key
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if safe && !key.starts_with(UPLOADS) {
            Ok(self.root.join(key))
        } else {
            Err(self.failed("resolve", key, "unsafe object key"))
        }
    }

    fn map_io(&self, op: &'static str, key: &str, e: std::io::Error) -> StoreError {
        if e.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound {
                store: self.name(),
                key: key.to_string(),
            }
        } else {
            self.failed(op, key, e)
        }
    }
}

/// Creates `dir` and its missing parents, readable by the owner only: points
/// hold secrets (Kubernetes Secrets, etcd's keyspace).
async fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await
}

/// Creates (or truncates) a file only its owner can read.
async fn private_file(path: &Path) -> std::io::Result<tokio::fs::File> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path).await
}

/// Writes a whole file only its owner can read.
async fn write_file(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut f = private_file(path).await?;
    f.write_all(body).await?;
    f.flush().await
}

/// What identifies one version of a file.
fn version_of(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    let inode = {
        use std::os::unix::fs::MetadataExt;
        meta.ino()
    };
    #[cfg(not(unix))]
    let inode = 0u64;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{}-{mtime}-{inode}", meta.len())
}

fn modified(meta: &std::fs::Metadata) -> Option<DateTime<Utc>> {
    meta.modified().ok().map(DateTime::<Utc>::from)
}

/// Whether a dot-file is one of our temporary files (an interrupted write).
fn is_temp(name: &str) -> bool {
    name.starts_with('.') && (name.contains(".tmp-") || name.starts_with(".upload-"))
}

/// Temporary files under `dir`, as (path relative to `root`, metadata).
fn walk_temp(
    dir: &Path,
    root: &Path,
    out: &mut Vec<(String, std::fs::Metadata)>,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let meta = entry.metadata()?;
        if meta.is_dir() {
            if name != UPLOADS {
                walk_temp(&entry.path(), root, out)?;
            }
        } else if is_temp(&name)
            && let Ok(rel) = entry.path().strip_prefix(root)
        {
            out.push((rel.to_string_lossy().replace('\\', "/"), meta));
        }
    }
    Ok(())
}

/// Makes a rename in `dir` durable.
async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

/// Writes `body` next to `dest`, syncs it and renames it into place; the rename
/// is synced too, so a written manifest survives a crash.
async fn write_atomic(dest: &Path, body: &[u8]) -> std::io::Result<()> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    private_dir(parent).await?;
    let tmp = parent.join(format!(
        ".{}.tmp-{:08x}",
        dest.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object"),
        rand::random::<u32>()
    ));
    let mut f = private_file(&tmp).await?;
    f.write_all(body).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, dest).await?;
    sync_dir(parent).await
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<ObjectInfo>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue; // temporary files and the uploads area are not objects
        }
        let meta = entry.metadata()?;
        if meta.is_dir() {
            walk(&entry.path(), root, out)?;
        } else if let Ok(rel) = entry.path().strip_prefix(root) {
            out.push(ObjectInfo {
                key: rel.to_string_lossy().replace('\\', "/"),
                size: meta.len(),
                modified: modified(&meta),
            });
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for FsStore {
    fn describe(&self) -> String {
        self.name()
    }

    async fn put(&self, key: &str, body: Bytes, _keep: Keep) -> Result<(), StoreError> {
        let path = self.path(key)?;
        write_atomic(&path, &body)
            .await
            .map_err(|e| self.failed("put", key, e))
    }

    async fn put_new(&self, key: &str, body: Bytes) -> Result<bool, StoreError> {
        let path = self.path(key)?;
        let parent = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        private_dir(&parent)
            .await
            .map_err(|e| self.failed("put", key, e))?;
        // Write aside, then link into place: a link fails if the name exists,
        // so of two writers exactly one wins, and nobody sees half a file.
        let tmp = parent.join(format!(".new.tmp-{:08x}", rand::random::<u32>()));
        let written = async {
            let mut f = private_file(&tmp).await?;
            f.write_all(&body).await?;
            f.sync_all().await?;
            drop(f);
            tokio::fs::hard_link(&tmp, &path).await
        }
        .await;
        let _ = tokio::fs::remove_file(&tmp).await;
        match written {
            Ok(()) => {
                sync_dir(&parent)
                    .await
                    .map_err(|e| self.failed("put", key, e))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.failed("put", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        tokio::fs::read(&path)
            .await
            .map(Bytes::from)
            .map_err(|e| self.map_io("get", key, e))
    }

    async fn open(&self, key: &str, pin: Option<&str>) -> Result<Opened, StoreError> {
        let path = self.path(key)?;
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| self.map_io("open", key, e))?;
        // The open file's own metadata: what is read is what was compared.
        let meta = f
            .metadata()
            .await
            .map_err(|e| self.failed("open", key, e))?;
        let version = version_of(&meta);
        if let Some(pinned) = pin
            && pinned != version
        {
            return Err(StoreError::Changed {
                store: self.name(),
                key: key.to_string(),
                pinned: format!("version {pinned}"),
                found: format!("version {version}"),
            });
        }
        Ok(Opened {
            reader: Box::pin(tokio::io::BufReader::with_capacity(1 << 20, f)),
            size: meta.len(),
            version: Some(version),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        // Walk from the deepest folder the prefix names, then filter by the prefix.
        let dir_part = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.path(dir_part)?
        };
        let root = self.root.clone();
        let prefix_owned = prefix.to_string();
        let found = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&start, &root, &mut out).map(|()| out)
        })
        .await
        .map_err(|e| self.failed("list", prefix, e))?
        .map_err(|e| self.failed("list", prefix, e))?;
        let mut found: Vec<ObjectInfo> = found
            .into_iter()
            .filter(|o| o.key.starts_with(&prefix_owned))
            .collect();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.failed("delete", key, e)),
        }
    }

    async fn start_upload(
        &self,
        key: &str,
        _keep: Keep,
    ) -> Result<Box<dyn MultipartUpload>, StoreError> {
        let dest = self.path(key)?;
        let dir = self
            .root
            .join(UPLOADS)
            .join(format!("{:016x}", rand::random::<u64>()));
        private_dir(&dir)
            .await
            .map_err(|e| self.failed("start upload", key, e))?;
        write_file(&dir.join("key"), key.as_bytes())
            .await
            .map_err(|e| self.failed("start upload", key, e))?;
        Ok(Box::new(FsUpload {
            store: self.name(),
            key: key.to_string(),
            dir,
            dest,
        }))
    }

    async fn unfinished(&self, prefix: &str) -> Result<Vec<Unfinished>, StoreError> {
        let root = self.root.clone();
        let wanted = prefix.to_string();
        let found = tokio::task::spawn_blocking(move || unfinished_writes(&root, &wanted))
            .await
            .map_err(|e| self.failed("list uploads", prefix, e))?
            .map_err(|e| self.failed("list uploads", prefix, e))?;
        Ok(found)
    }

    async fn discard(&self, unfinished: &Unfinished) -> Result<(), StoreError> {
        // Only what `unfinished` names: a temporary file or an uploads folder.
        let rel = Path::new(&unfinished.id);
        let ours = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
            && (rel.starts_with(UPLOADS)
                || rel
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_temp));
        if !ours {
            return Err(self.failed(
                "discard",
                &unfinished.key,
                "not an unfinished write of this store",
            ));
        }
        let path = self.root.join(rel);
        let removed = if rel.starts_with(UPLOADS) {
            tokio::fs::remove_dir_all(&path).await
        } else {
            tokio::fs::remove_file(&path).await
        };
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.failed("discard", &unfinished.key, e)),
        }
    }

    async fn probe(&self) -> Result<(), StoreError> {
        private_dir(&self.root)
            .await
            .map_err(|e| StoreError::Unreachable {
                store: self.name(),
                detail: e.to_string(),
            })?;
        let probe = self.root.join(".drtool-probe");
        tokio::fs::write(&probe, b"ok")
            .await
            .map_err(|e| StoreError::Unreachable {
                store: self.name(),
                detail: format!("folder is not writable: {e}"),
            })?;
        let _ = tokio::fs::remove_file(&probe).await;
        Ok(())
    }
}

/// Upload folders and temporary files whose key falls under `prefix`.
fn unfinished_writes(root: &Path, prefix: &str) -> std::io::Result<Vec<Unfinished>> {
    let mut out = Vec::new();
    match std::fs::read_dir(root.join(UPLOADS)) {
        Ok(dirs) => {
            for d in dirs {
                let d = d?;
                let Ok(key) = std::fs::read_to_string(d.path().join("key")) else {
                    continue;
                };
                if !key.starts_with(prefix) {
                    continue;
                }
                let meta = d.metadata()?;
                let size = std::fs::read_dir(d.path())?
                    .filter_map(Result::ok)
                    .filter_map(|p| p.metadata().ok())
                    .map(|m| m.len())
                    .sum();
                out.push(Unfinished {
                    what: UnfinishedKind::OpenUpload,
                    key,
                    id: format!("{UPLOADS}/{}", d.file_name().to_string_lossy()),
                    started: modified(&meta),
                    size: Some(size),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut temps = Vec::new();
    walk_temp(root, root, &mut temps)?;
    for (rel, meta) in temps {
        if !rel.starts_with(prefix) {
            continue;
        }
        out.push(Unfinished {
            what: UnfinishedKind::TempFile,
            key: rel.clone(),
            id: rel,
            started: modified(&meta),
            size: Some(meta.len()),
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

struct FsUpload {
    store: String,
    key: String,
    dir: PathBuf,
    dest: PathBuf,
}

impl FsUpload {
    fn failed(&self, op: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Failed {
            store: self.store.clone(),
            op,
            key: self.key.clone(),
            detail: e.to_string(),
        }
    }
}

#[async_trait]
impl MultipartUpload for FsUpload {
    async fn put_part(&self, number: u32, body: Bytes) -> Result<(), StoreError> {
        write_file(&self.dir.join(format!("part-{number:06}")), &body)
            .await
            .map_err(|e| self.failed("upload part", e))
    }

    async fn complete(&self) -> Result<(), StoreError> {
        let mut parts = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|e| self.failed("complete upload", e))?;
        while let Some(e) = entries
            .next_entry()
            .await
            .map_err(|e| self.failed("complete upload", e))?
        {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("part-") {
                parts.push(e.path());
            }
        }
        parts.sort();
        let parent = self.dest.parent().unwrap_or(Path::new(".")).to_path_buf();
        private_dir(&parent)
            .await
            .map_err(|e| self.failed("complete upload", e))?;
        let tmp = parent.join(format!(".upload-{:08x}", rand::random::<u32>()));
        let assembled = async {
            let mut out = private_file(&tmp).await?;
            for part in &parts {
                let mut f = tokio::fs::File::open(part).await?;
                tokio::io::copy(&mut f, &mut out).await?;
            }
            // Durable before it is visible: a point reported written survives a crash.
            out.sync_all().await?;
            drop(out);
            tokio::fs::rename(&tmp, &self.dest).await?;
            sync_dir(&parent).await
        }
        .await;
        if let Err(e) = assembled {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(self.failed("complete upload", e));
        }
        tokio::fs::remove_dir_all(&self.dir)
            .await
            .map_err(|e| self.failed("complete upload", e))
    }

    async fn abort(&self) -> Result<(), StoreError> {
        match tokio::fs::remove_dir_all(&self.dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.failed("abort upload", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn objects_and_folders_are_private() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Failed {
            store: "tmp".into(),
            op: "tempdir",
            key: String::new(),
            detail: e.to_string(),
        })?;
        let root = dir.path().join("store");
        let store = FsStore::new(root.clone());
        store
            .put(
                "points/t/p/manifest.json",
                Bytes::from_static(b"{}"),
                Keep::Normal,
            )
            .await?;
        let upload = store
            .start_upload("points/t/p/data.zst", Keep::Normal)
            .await?;
        upload.put_part(1, Bytes::from_static(b"part")).await?;
        let uploads = root.join(UPLOADS);
        let pending = std::fs::read_dir(&uploads)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|e| e.path());
        let Some(pending) = pending else {
            panic!("no upload folder")
        };
        assert_eq!(mode(&pending), 0o700);
        assert_eq!(mode(&pending.join("part-000001")), 0o600);
        upload.complete().await?;
        for folder in ["points", "points/t", "points/t/p"] {
            assert_eq!(mode(&root.join(folder)), 0o700, "{folder}");
        }
        for file in ["points/t/p/manifest.json", "points/t/p/data.zst"] {
            assert_eq!(mode(&root.join(file)), 0o600, "{file}");
        }
        Ok(())
    }
}
