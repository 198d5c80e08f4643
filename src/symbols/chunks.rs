//! Chunked uploads (sentry-cli's protocol): a debug file arrives as chunks named by their SHA-1,
//! each kept in the object store under `chunks/{sha1}` (so any node can assemble what another
//! received) until an assemble request lists them in order. The file they make is checked
//! against its own SHA-1, ingested like any upload, and its chunks dropped; a record under
//! `assembled/{sha1}` then names the stored file, so the same file sent again is known at once.

use std::fmt;
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use tokio::io::AsyncWriteExt;

use super::identify::DebugFileMeta;
use super::ids::parse_debug_id;
use super::{SymbolError, SymbolStore};
use crate::store::{ObjectInfo, ObjectKey, PutBody};

/// The size of every chunk but a file's last, as the chunk-upload options announce it.
pub const CHUNK_SIZE: u64 = 8 << 20;

/// A chunk's (or an assembled file's) SHA-1, the name sentry-cli gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkDigest([u8; 20]);

impl ChunkDigest {
    /// Parses 40 hex digits (either case); `None` for anything else.
    pub fn parse(text: &str) -> Option<ChunkDigest> {
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(ChunkDigest(bytes))
    }

    /// The SHA-1 of `data`.
    pub fn of(data: &[u8]) -> ChunkDigest {
        ChunkDigest(Sha1::digest(data).into())
    }

    fn key(&self) -> ObjectKey {
        ObjectKey::new(format!("chunks/{self}")).expect("hex digits make a valid key")
    }

    fn record_key(&self) -> ObjectKey {
        ObjectKey::new(format!("assembled/{self}")).expect("hex digits make a valid key")
    }
}

impl fmt::Display for ChunkDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Which stored file an assembled upload became (`assembled/{sha1}`).
#[derive(Serialize, Deserialize)]
struct AssembledRecord {
    debug_id: String,
    sha256: String,
}

/// Why chunks could not be put together into the file an assemble request names.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// The chunks add up to more than the upload limit.
    #[error("the file is {size} bytes, more than the {limit}-byte upload limit (limits.max_upload_bytes)")]
    TooLarge {
        /// Sum of the chunks' sizes.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The chunks, in the order given, do not hash to the file's checksum.
    #[error("the chunks put together have SHA-1 {actual}, not the {expected} the request names")]
    ChecksumMismatch {
        /// What the request named.
        expected: ChunkDigest,
        /// What the chunks make.
        actual: ChunkDigest,
    },
    /// A chunk disappeared between the check and the read (another node assembled and
    /// dropped it): upload it again.
    #[error("chunk {0} is no longer stored; upload it again")]
    Vanished(ChunkDigest),
}

impl SymbolStore {
    /// Keeps one chunk until an assemble request uses it. The caller has checked that `data`
    /// hashes to `digest`. A chunk can be sent again, so it is stored without a flush.
    pub async fn put_chunk(&self, digest: &ChunkDigest, data: Bytes) -> Result<(), SymbolError> {
        self.objects
            .put_regenerable(&digest.key(), PutBody::Bytes(data))
            .await?;
        Ok(())
    }

    /// The chunks of `chunks` this store does not hold, each once, in the order given.
    pub async fn missing_chunks(
        &self,
        chunks: &[ChunkDigest],
    ) -> Result<Vec<ChunkDigest>, SymbolError> {
        let mut missing = Vec::new();
        for chunk in chunks {
            if !missing.contains(chunk) && self.objects.head(&chunk.key()).await?.is_none() {
                missing.push(*chunk);
            }
        }
        Ok(missing)
    }

    /// Writes `chunks`, in order, to a new file at `into`, and checks the result hashes to
    /// `checksum`; at most `limit` bytes.
    pub async fn assemble_chunks(
        &self,
        chunks: &[ChunkDigest],
        checksum: &ChunkDigest,
        into: &Path,
        limit: u64,
    ) -> Result<Result<(), AssembleError>, SymbolError> {
        let mut size = 0u64;
        for chunk in chunks {
            match self.objects.head(&chunk.key()).await? {
                Some(info) => size += info.size,
                None => return Ok(Err(AssembleError::Vanished(*chunk))),
            }
        }
        if size > limit {
            return Ok(Err(AssembleError::TooLarge { size, limit }));
        }
        let mut file = tokio::fs::File::create(into).await?;
        let mut hasher = Sha1::new();
        for chunk in chunks {
            let Some(data) = self.objects.read_all(&chunk.key(), CHUNK_SIZE).await? else {
                return Ok(Err(AssembleError::Vanished(*chunk)));
            };
            hasher.update(&data);
            file.write_all(&data).await?;
        }
        file.flush().await?;
        let actual = ChunkDigest(hasher.finalize().into());
        if actual != *checksum {
            return Ok(Err(AssembleError::ChecksumMismatch {
                expected: *checksum,
                actual,
            }));
        }
        Ok(Ok(()))
    }

    /// Notes that the file with SHA-1 `checksum` is stored as `meta`.
    pub async fn remember_assembled(
        &self,
        checksum: &ChunkDigest,
        meta: &DebugFileMeta,
    ) -> Result<(), SymbolError> {
        let record = AssembledRecord {
            debug_id: meta.debug_id.clone(),
            sha256: meta.sha256.clone(),
        };
        let body = serde_json::to_vec(&record).expect("a record serializes");
        self.objects
            .put_regenerable(&checksum.record_key(), PutBody::Bytes(body.into()))
            .await?;
        Ok(())
    }

    /// The stored file an earlier upload with SHA-1 `checksum` became, if it is still stored
    /// (a deleted file is not: its record is checked against the store).
    pub async fn assembled(
        &self,
        checksum: &ChunkDigest,
    ) -> Result<Option<DebugFileMeta>, SymbolError> {
        let Some(bytes) = self.objects.read_all(&checksum.record_key(), 4096).await? else {
            return Ok(None);
        };
        let Ok(record) = serde_json::from_slice::<AssembledRecord>(&bytes) else {
            return Ok(None);
        };
        let Ok(debug_id) = parse_debug_id(&record.debug_id) else {
            return Ok(None);
        };
        let files = self.files_for(&debug_id).await?;
        Ok(files.into_iter().find(|f| f.sha256 == record.sha256))
    }

    /// Chunks kept since before `cutoff` (seconds since the Unix epoch) that no assemble
    /// request used: uploads that were abandoned. Returns their keys and sizes.
    pub async fn abandoned_chunks(&self, cutoff: u64) -> Result<Vec<ObjectInfo>, SymbolError> {
        let chunks = self.objects.list("chunks/").await?;
        Ok(chunks
            .into_iter()
            .filter(|c| c.modified.is_some_and(|m| m < cutoff))
            .collect())
    }

    /// Forgets chunks once the file they made is stored (or refused for good).
    pub async fn drop_chunks(&self, chunks: &[ChunkDigest]) {
        for chunk in chunks {
            if let Err(e) = self.objects.delete(&chunk.key()).await {
                tracing::warn!(chunk = %chunk, error = %e, "could not delete an assembled chunk");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_in_either_case_and_print_lowercase() {
        let digest = ChunkDigest::of(b"chunk");
        let upper = digest.to_string().to_uppercase();
        assert_eq!(ChunkDigest::parse(&upper), Some(digest));
        assert_eq!(digest.to_string(), hex::encode(Sha1::digest(b"chunk")));
        assert_eq!(ChunkDigest::parse("abc"), None);
        assert_eq!(ChunkDigest::parse(&"g".repeat(40)), None);
        assert_eq!(
            ChunkDigest::parse("../../../../../etc/passwd/aaaaaaaaaaaaaa"),
            None
        );
    }
}
