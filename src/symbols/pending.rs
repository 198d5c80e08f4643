//! Uploads announced before their bytes (Breakpad symupload's protocol v2): one is opened, the
//! file is sent to its URL, and completing it ingests the file like any upload. Both halves
//! live in the object store (`uploads/{id}.json`, `uploads/{id}.body`), so each of the three
//! requests may reach a different node. The `id` is the SHA-256 of the upload key the client
//! holds; the key itself, which lets its holder send the file, is never stored.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::{SymbolError, SymbolStore};
use crate::store::{ObjectInfo, ObjectKey, PutBody};

/// How long an opened upload waits for its file and its completion.
pub const PENDING_UPLOAD_SECS: u64 = 3600;

/// Names one pending upload: the SHA-256 (64 lowercase hex digits) of its upload key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUploadId(String);

impl PendingUploadId {
    /// From a key's SHA-256 in lowercase hex; `None` for anything else.
    pub fn from_digest(digest: &str) -> Option<PendingUploadId> {
        let ok = digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| PendingUploadId(digest.to_owned()))
    }

    fn record_key(&self) -> ObjectKey {
        ObjectKey::new(format!("uploads/{}.json", self.0)).expect("hex makes a valid key")
    }

    fn body_key(&self) -> ObjectKey {
        ObjectKey::new(format!("uploads/{}.body", self.0)).expect("hex makes a valid key")
    }
}

impl fmt::Display for PendingUploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `uploads/{id}.json`: when the upload was opened.
#[derive(Serialize, Deserialize)]
struct PendingRecord {
    /// Seconds since the Unix epoch.
    opened_at: u64,
}

/// Where a pending upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingState {
    /// Never opened, or already completed.
    Unknown,
    /// Opened more than [`PENDING_UPLOAD_SECS`] ago.
    Expired,
    /// Opened; its file not received yet.
    Open,
    /// Its file is here.
    Received,
}

impl SymbolStore {
    /// Opens a pending upload at `now` (seconds since the Unix epoch).
    pub async fn open_pending(&self, id: &PendingUploadId, now: u64) -> Result<(), SymbolError> {
        let record = serde_json::to_vec(&PendingRecord { opened_at: now }).expect("serializes");
        self.objects
            .put(&id.record_key(), PutBody::Bytes(record.into()))
            .await?;
        Ok(())
    }

    /// Where the upload `id` stands at `now`.
    pub async fn pending_state(
        &self,
        id: &PendingUploadId,
        now: u64,
    ) -> Result<PendingState, SymbolError> {
        let Some(bytes) = self.objects.read_all(&id.record_key(), 4096).await? else {
            return Ok(PendingState::Unknown);
        };
        let Ok(record) = serde_json::from_slice::<PendingRecord>(&bytes) else {
            return Ok(PendingState::Unknown);
        };
        if now.saturating_sub(record.opened_at) > PENDING_UPLOAD_SECS {
            return Ok(PendingState::Expired);
        }
        Ok(match self.objects.head(&id.body_key()).await? {
            Some(_) => PendingState::Received,
            None => PendingState::Open,
        })
    }

    /// Keeps the file received for the upload `id` (from a local scratch file).
    pub async fn receive_pending(
        &self,
        id: &PendingUploadId,
        file: &Path,
    ) -> Result<(), SymbolError> {
        self.objects
            .put(&id.body_key(), PutBody::File(file.to_owned()))
            .await?;
        Ok(())
    }

    /// Copies the file received for the upload `id` to `into`; `false` if there is none.
    pub async fn fetch_pending(
        &self,
        id: &PendingUploadId,
        into: &Path,
        limit: u64,
    ) -> Result<bool, SymbolError> {
        let Some(reader) = self.objects.get(&id.body_key()).await? else {
            return Ok(false);
        };
        if reader.size > limit {
            return Ok(false);
        }
        let mut body = reader.body;
        let mut file = tokio::fs::File::create(into).await?;
        tokio::io::copy(&mut body, &mut file).await?;
        file.flush().await?;
        Ok(true)
    }

    /// Uploads opened before `cutoff` (seconds since the Unix epoch) and never completed: the
    /// keys of their records and files, and their sizes.
    pub async fn abandoned_uploads(&self, cutoff: u64) -> Result<Vec<ObjectInfo>, SymbolError> {
        let mut abandoned = Vec::new();
        let objects = self.objects.list("uploads/").await?;
        for object in objects {
            let Some(digest) = object
                .key
                .as_str()
                .strip_prefix("uploads/")
                .and_then(|k| k.strip_suffix(".json"))
            else {
                continue;
            };
            let Some(id) = PendingUploadId::from_digest(digest) else {
                continue;
            };
            let opened = self
                .objects
                .read_all(&id.record_key(), 4096)
                .await?
                .and_then(|b| serde_json::from_slice::<PendingRecord>(&b).ok())
                .map(|r| r.opened_at);
            if opened.is_none_or(|at| at < cutoff) {
                abandoned.push(object);
                if let Some(body) = self.objects.head(&id.body_key()).await? {
                    abandoned.push(body);
                }
            }
        }
        Ok(abandoned)
    }

    /// Forgets the upload `id`: its record first (so it can no longer be sent to), then its
    /// file.
    pub async fn close_pending(&self, id: &PendingUploadId) -> Result<(), SymbolError> {
        self.objects.delete(&id.record_key()).await?;
        self.objects.delete(&id.body_key()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_digests_name_pending_uploads() {
        let digest = "a".repeat(64);
        assert!(PendingUploadId::from_digest(&digest).is_some());
        assert!(PendingUploadId::from_digest(&"A".repeat(64)).is_none());
        assert!(PendingUploadId::from_digest(&"a".repeat(63)).is_none());
        assert!(PendingUploadId::from_digest("../../etc/passwd").is_none());
    }
}
