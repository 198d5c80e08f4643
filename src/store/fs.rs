//! The filesystem backend: one file per key under a root folder. Writes go to a scratch file
//! beside the target (`.tmp-…`, never a key), are fsync'd, renamed into place and the folder
//! fsync'd, so a put is atomic and durable.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use crate::cpu::blocking_io;

use super::{ObjectInfo, ObjectKey, ObjectReader, ObjectStore, PutBody, StoreError};

/// Objects as plain files under `root` (the default `./symbol-store`).
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FsStore> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(FsStore { root })
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }
}

fn backend(op: &'static str, key: impl ToString) -> impl FnOnce(io::Error) -> StoreError {
    let key = key.to_string();
    move |source| StoreError::Backend { op, key, source }
}

/// Writes `body` to a scratch file beside `target` and renames it over `target` (atomic); with
/// `durable`, the file and its folder are fsync'd first and after. The scratch file is made in
/// the target's own folder (named `.tmp-…`, which no key can be and listing skips) so the
/// filesystem allocates its inode near that folder's: a shared scratch folder made ext4 search
/// ever more full block groups for every new file (57 % of a receiving node's CPU in
/// `find_inode_bit` and its callers with a few hundred thousand crashes stored).
fn put_blocking(target: &Path, body: PutBody, durable: bool) -> io::Result<()> {
    let parent = target.parent().expect("object keys always have a parent");
    std::fs::create_dir_all(parent)?;
    let mut scratch = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(parent)?;
    match body {
        PutBody::Bytes(bytes) => scratch.write_all(&bytes)?,
        PutBody::File(path) => {
            let mut source = std::fs::File::open(path)?;
            io::copy(&mut source, scratch.as_file_mut())?;
        }
    }
    if durable {
        scratch.as_file().sync_all()?;
    }
    scratch.persist(target).map_err(|e| e.error)?;
    if durable {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Every file under `root` whose key starts with `prefix`, walking only the folder the prefix
/// names (`symbols/abc/` walks `symbols/abc`, `names/cr` walks `names`).
/// A file's modification time, seconds since the Unix epoch.
fn unix_secs(meta: &std::fs::Metadata) -> Option<u64> {
    let modified = meta.modified().ok()?;
    Some(
        modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs(),
    )
}

fn list_blocking(root: &Path, prefix: &str) -> io::Result<Vec<ObjectInfo>> {
    fn walk(dir: &Path, key_base: &str, prefix: &str, out: &mut Vec<ObjectInfo>) -> io::Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let key = format!("{key_base}{name}");
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                let folder = format!("{key}/");
                if folder.starts_with(prefix) || prefix.starts_with(&folder) {
                    walk(&entry.path(), &folder, prefix, out)?;
                }
            } else if file_type.is_file() && key.starts_with(prefix) {
                if let Ok(key) = ObjectKey::new(key) {
                    let meta = entry.metadata()?;
                    out.push(ObjectInfo {
                        key,
                        size: meta.len(),
                        modified: unix_secs(&meta),
                    });
                }
            }
        }
        Ok(())
    }
    let folder = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
    let mut out = Vec::new();
    walk(&root.join(folder), folder, prefix, &mut out)?;
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

#[async_trait]
impl ObjectStore for FsStore {
    async fn put(&self, key: &ObjectKey, body: PutBody) -> Result<(), StoreError> {
        let target = self.path(key);
        blocking_io(move || put_blocking(&target, body, true))
            .await
            .map_err(backend("put", key))
    }

    async fn put_regenerable(&self, key: &ObjectKey, body: PutBody) -> Result<(), StoreError> {
        let target = self.path(key);
        blocking_io(move || put_blocking(&target, body, false))
            .await
            .map_err(backend("put", key))
    }

    async fn read_all(&self, key: &ObjectKey, limit: u64) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(key);
        let read = blocking_io(move || -> io::Result<Option<Result<Vec<u8>, u64>>> {
            use std::io::Read;
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let size = file.metadata()?.len();
            if size > limit {
                return Ok(Some(Err(size)));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            file.take(limit + 1).read_to_end(&mut bytes)?;
            Ok(Some(Ok(bytes)))
        })
        .await;
        match read.map_err(backend("get", key))? {
            None => Ok(None),
            Some(Ok(bytes)) if bytes.len() as u64 <= limit => Ok(Some(bytes.into())),
            Some(Ok(bytes)) => Err(StoreError::TooLarge {
                key: key.clone(),
                size: bytes.len() as u64,
                limit,
            }),
            Some(Err(size)) => Err(StoreError::TooLarge {
                key: key.clone(),
                size,
                limit,
            }),
        }
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<ObjectReader>, StoreError> {
        let file = match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(backend("get", key)(e)),
        };
        let size = file.metadata().await.map_err(backend("get", key))?.len();
        Ok(Some(ObjectReader {
            size,
            body: Box::pin(file),
        }))
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, StoreError> {
        let path = self.path(key);
        match blocking_io(move || std::fs::metadata(path)).await {
            Ok(meta) if meta.is_file() => Ok(Some(ObjectInfo {
                key: key.clone(),
                size: meta.len(),
                modified: unix_secs(&meta),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(backend("head", key)(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let root = self.root.clone();
        let owned = prefix.to_owned();
        blocking_io(move || list_blocking(&root, &owned))
            .await
            .map_err(backend("list", prefix))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let path = self.path(key);
        match blocking_io(move || std::fs::remove_file(path)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(backend("delete", key)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_put_leaves_only_its_file_in_the_folder_and_a_failed_one_nothing() {
        let root = tempfile::tempdir().unwrap();
        let store = FsStore::open(root.path()).unwrap();
        let key = ObjectKey::new("crashes/2026-12-06/abc/raw.json".to_owned()).unwrap();
        store
            .put(&key, PutBody::Bytes(Bytes::from_static(b"{}")))
            .await
            .unwrap();
        store
            .put(&key, PutBody::Bytes(Bytes::from_static(b"{\"again\":1}")))
            .await
            .unwrap();
        let folder = root.path().join("crashes/2026-12-06/abc");
        let names: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["raw.json"], "no scratch file is left beside it");
        assert_eq!(
            std::fs::read(folder.join("raw.json")).unwrap(),
            b"{\"again\":1}"
        );
        // A body that cannot be read: nothing is stored, no scratch file stays.
        let other = ObjectKey::new("crashes/2026-12-06/abc/dump".to_owned()).unwrap();
        let missing = root.path().join("no-such-file");
        assert!(store.put(&other, PutBody::File(missing)).await.is_err());
        let listed = store.list("crashes/").await.unwrap();
        let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["crashes/2026-12-06/abc/raw.json"]);
        assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1);
    }
}
