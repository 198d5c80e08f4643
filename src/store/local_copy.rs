//! Local copies of remote objects: for the S3 backend, derived caches (`caches/…`) are kept on
//! local disk too, so a restarted server reads them from disk instead of fetching them again.
//! Writes go to the remote store first (the source of truth), then to the local copy.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::{FsStore, ObjectInfo, ObjectKey, ObjectReader, ObjectStore, PutBody, StoreError};

/// A remote store with local copies of the objects under some prefixes.
pub struct LocalCopies {
    remote: Arc<dyn ObjectStore>,
    local: FsStore,
    scratch: std::path::PathBuf,
    prefixes: Vec<String>,
}

impl LocalCopies {
    /// Copies objects whose keys start with one of `prefixes` into the folder `local`.
    pub fn new(
        remote: Arc<dyn ObjectStore>,
        local: std::path::PathBuf,
        prefixes: &[&str],
    ) -> std::io::Result<LocalCopies> {
        // Where remote objects are streamed before they are kept (a dot name is never a key).
        let scratch = local.join(".tmp");
        std::fs::create_dir_all(&scratch)?;
        Ok(LocalCopies {
            remote,
            local: FsStore::open(local)?,
            scratch,
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        })
    }

    fn copied(&self, key: &ObjectKey) -> bool {
        self.prefixes
            .iter()
            .any(|p| key.as_str().starts_with(p.as_str()))
    }
}

#[async_trait]
impl ObjectStore for LocalCopies {
    async fn put(&self, key: &ObjectKey, body: PutBody) -> Result<(), StoreError> {
        if !self.copied(key) {
            return self.remote.put(key, body).await;
        }
        let local_body = match &body {
            PutBody::Bytes(bytes) => PutBody::Bytes(bytes.clone()),
            PutBody::File(path) => PutBody::File(path.clone()),
        };
        self.remote.put(key, body).await?;
        if let Err(e) = self.local.put_regenerable(key, local_body).await {
            tracing::warn!(%key, error = %e, "could not keep a local copy");
        }
        Ok(())
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<ObjectReader>, StoreError> {
        if !self.copied(key) {
            return self.remote.get(key).await;
        }
        if let Some(reader) = self.local.get(key).await? {
            metrics::counter!("faultline_local_copy_total", "result" => "hit").increment(1);
            return Ok(Some(reader));
        }
        metrics::counter!("faultline_local_copy_total", "result" => "miss").increment(1);
        let Some(mut reader) = self.remote.get(key).await? else {
            return Ok(None);
        };
        // Stream the remote object into a scratch file, keep it, then read the local copy.
        let scratch = tempfile::NamedTempFile::new_in(&self.scratch).map_err(|source| {
            StoreError::Backend {
                op: "get",
                key: key.to_string(),
                source,
            }
        })?;
        let mut file =
            tokio::fs::File::from_std(scratch.reopen().map_err(|source| StoreError::Backend {
                op: "get",
                key: key.to_string(),
                source,
            })?);
        tokio::io::copy(&mut reader.body, &mut file)
            .await
            .and(file.flush().await)
            .map_err(|source| StoreError::Backend {
                op: "get",
                key: key.to_string(),
                source,
            })?;
        self.local
            .put(key, PutBody::File(scratch.path().to_owned()))
            .await?;
        self.local.get(key).await
    }

    async fn put_regenerable(&self, key: &ObjectKey, body: PutBody) -> Result<(), StoreError> {
        // The local copy is always regenerable; the remote keeps its own durability.
        self.put(key, body).await
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, StoreError> {
        self.remote.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.remote.list(prefix).await
    }

    async fn read_all(&self, key: &ObjectKey, limit: u64) -> Result<Option<Bytes>, StoreError> {
        if !self.copied(key) {
            return self.remote.read_all(key, limit).await;
        }
        if let Some(bytes) = self.local.read_all(key, limit).await? {
            metrics::counter!("faultline_local_copy_total", "result" => "hit").increment(1);
            return Ok(Some(bytes));
        }
        // Fetches the remote object and keeps a local copy on the way.
        super::read_streamed(self, key, limit).await
    }

    async fn forget_local_copy(&self, key: &ObjectKey) -> Result<(), StoreError> {
        if self.copied(key) {
            self.local.delete(key).await?;
        }
        Ok(())
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.remote.delete(key).await?;
        if self.copied(key) {
            self.local.delete(key).await?;
        }
        Ok(())
    }
}
