//! The filesystem store: objects are files under a root folder.
//!
//! Writes go to a temporary file and are renamed into place, so a reader never
//! sees half an object. Multipart uploads keep their parts under
//! `<root>/.drtool-uploads/<id>/` until completed.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::{MultipartUpload, ObjectInfo, ObjectReader, ObjectStore, StoreError};

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

    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let path = self.path(key)?;
        write_atomic(&path, &body)
            .await
            .map_err(|e| self.failed("put", key, e))
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        tokio::fs::read(&path)
            .await
            .map(Bytes::from)
            .map_err(|e| self.map_io("get", key, e))
    }

    async fn open(&self, key: &str) -> Result<(ObjectReader, u64), StoreError> {
        let path = self.path(key)?;
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| self.map_io("open", key, e))?;
        let size = f
            .metadata()
            .await
            .map_err(|e| self.failed("open", key, e))?
            .len();
        Ok((
            Box::pin(tokio::io::BufReader::with_capacity(1 << 20, f)),
            size,
        ))
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

    async fn start_upload(&self, key: &str) -> Result<Box<dyn MultipartUpload>, StoreError> {
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

    async fn open_uploads(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut dirs = match tokio::fs::read_dir(self.root.join(UPLOADS)).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
            Err(e) => return Err(self.failed("list uploads", prefix, e)),
        };
        while let Some(d) = dirs
            .next_entry()
            .await
            .map_err(|e| self.failed("list uploads", prefix, e))?
        {
            if let Ok(key) = tokio::fs::read_to_string(d.path().join("key")).await
                && key.starts_with(prefix)
            {
                keys.push(key);
            }
        }
        Ok(keys)
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

    async fn complete(self: Box<Self>) -> Result<(), StoreError> {
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
        let mut out = private_file(&tmp)
            .await
            .map_err(|e| self.failed("complete upload", e))?;
        for part in &parts {
            let mut f = tokio::fs::File::open(part)
                .await
                .map_err(|e| self.failed("complete upload", e))?;
            tokio::io::copy(&mut f, &mut out)
                .await
                .map_err(|e| self.failed("complete upload", e))?;
        }
        out.sync_all()
            .await
            .map_err(|e| self.failed("complete upload", e))?;
        drop(out);
        tokio::fs::rename(&tmp, &self.dest)
            .await
            .map_err(|e| self.failed("complete upload", e))?;
        sync_dir(&parent)
            .await
            .map_err(|e| self.failed("complete upload", e))?;
        tokio::fs::remove_dir_all(&self.dir)
            .await
            .map_err(|e| self.failed("complete upload", e))
    }

    async fn abort(self: Box<Self>) -> Result<(), StoreError> {
        tokio::fs::remove_dir_all(&self.dir)
            .await
            .map_err(|e| self.failed("abort upload", e))
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
            .put("points/t/p/manifest.json", Bytes::from_static(b"{}"))
            .await?;
        let upload = store.start_upload("points/t/p/data.zst").await?;
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
