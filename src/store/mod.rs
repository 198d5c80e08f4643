//! Object storage: the one place faultline keeps bytes that must survive a restart — symbol
//! files, derived caches, raw crashes and processed crash payloads — behind the [`ObjectStore`] trait, so the
//! filesystem and S3 backends are interchangeable.
//!
//! Keys are `/`-separated paths of safe characters ([`ObjectKey`]). The layout never makes a key
//! the folder of another key (`a/x` beside `a/x/y`), because directory-backed S3 servers and the
//! filesystem both refuse that.

mod fs;
mod local_copy;
pub mod s3;

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::{StorageBackend, StorageConfig};

pub use fs::FsStore;
pub use local_copy::LocalCopies;
pub use s3::S3Store;

/// A validated object key such as `symbols/<debug-id>/<sha256>.elf.zst`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

/// The longest key accepted (S3 allows 1024 bytes).
const MAX_KEY_LEN: usize = 1024;

impl ObjectKey {
    /// Validates `key`: non-empty segments of `[A-Za-z0-9._%+=~-]`, none `.`/`..` or starting
    /// with a dot (the store keeps its own scratch space under dot-folders).
    pub fn new(key: impl Into<String>) -> Result<ObjectKey, StoreError> {
        let key = key.into();
        let valid = !key.is_empty()
            && key.len() <= MAX_KEY_LEN
            && key.split('/').all(|segment| {
                !segment.is_empty()
                    && !segment.starts_with('.')
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._%+=~-".contains(&b))
            });
        if valid {
            Ok(ObjectKey(key))
        } else {
            Err(StoreError::InvalidKey(key))
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// An error with its causes (`dispatch failure: io error: connection refused`), for logs and
/// the reasons the API gives.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Longest segment [`key_segment`] produces; longer text is cut and suffixed with a hash, so
/// keys stay within what directory-backed S3 servers can store (file names of 255 bytes).
const MAX_SEGMENT: usize = 64;

/// Escapes arbitrary text (a debug file name, say) into one key segment: lowercase, with every
/// byte outside `[a-z0-9._-]` written as `%XX`, and a leading dot escaped too. Segments over
/// 64 bytes keep their first 47 bytes plus `~` and 16 hex digits of the text's SHA-256.
pub fn key_segment(text: &str) -> String {
    let escaped = escape_segment(text);
    if escaped.len() <= MAX_SEGMENT {
        return escaped;
    }
    let mut cut = 47;
    while !escaped.is_char_boundary(cut)
        || escaped[..cut].ends_with('%')
        || escaped[..cut.saturating_sub(1)].ends_with('%')
    {
        cut -= 1;
    }
    use sha2::Digest;
    let hash = hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8]);
    format!("{}~{hash}", &escaped[..cut])
}

fn escape_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, b) in text.to_lowercase().bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b"_-".contains(&b) || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// What `head` and `list` tell about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Where it is.
    pub key: ObjectKey,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, seconds since the Unix epoch (when the backend tells).
    pub modified: Option<u64>,
}

/// The bytes to store.
pub enum PutBody {
    /// Bytes already in memory (metadata records, small caches).
    Bytes(Bytes),
    /// A local file streamed into the store (large originals); the file is left in place.
    File(PathBuf),
}

/// A stored object being read, streamed rather than loaded whole.
pub struct ObjectReader {
    /// Total size in bytes.
    pub size: u64,
    /// The body.
    pub body: Pin<Box<dyn AsyncRead + Send>>,
}

/// Why a store operation failed. Backends map their own failures here.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A key broke the key rules; a bug in the caller, not the client's fault.
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    /// An object was larger than the caller allowed when reading it into memory.
    #[error("object {key} is {size} bytes, more than the {limit} bytes allowed here")]
    TooLarge {
        /// The object.
        key: ObjectKey,
        /// Its size.
        size: u64,
        /// The caller's cap.
        limit: u64,
    },
    /// The backend could not be reached or refused the operation.
    #[error("object store {op} of {key} failed: {source}")]
    Backend {
        /// `put`, `get`, `head`, `list` or `delete`.
        op: &'static str,
        /// The key or prefix involved.
        key: String,
        /// The backend's error.
        source: std::io::Error,
    },
}

/// Durable key → bytes storage.
///
/// Every `put` is atomic: a reader sees the previous object or the whole new one, never a part,
/// and once `put` returns the object survives a crash of this process or machine.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores `body` under `key`, replacing what was there.
    async fn put(&self, key: &ObjectKey, body: PutBody) -> Result<(), StoreError>;
    /// Opens the object for streaming, or `None` if there is no such key.
    async fn get(&self, key: &ObjectKey) -> Result<Option<ObjectReader>, StoreError>;
    /// The object's size, or `None` if there is no such key.
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, StoreError>;
    /// Every object whose key starts with `prefix` (a folder such as `symbols/<id>/`), in key
    /// order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;
    /// Removes the object; removing a missing key is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError>;
    /// Stores an object that can be rebuilt from others (a derived cache, a processed result):
    /// as atomic as [`put`](Self::put), but a backend may skip the flush to stable storage.
    async fn put_regenerable(&self, key: &ObjectKey, body: PutBody) -> Result<(), StoreError> {
        self.put(key, body).await
    }
    /// Reads a whole object into memory (a raw crash, a dump, a derived cache), refusing one
    /// over `limit` bytes; `None` if there is no such key. Backends that can read a file in one
    /// go do so (one blocking call instead of a stream of small ones).
    async fn read_all(&self, key: &ObjectKey, limit: u64) -> Result<Option<Bytes>, StoreError> {
        read_streamed(self, key, limit).await
    }
    /// Drops this node's local copy of the object, if the backend keeps one (another node
    /// changed it, so the next read fetches it again); the object itself stays.
    async fn forget_local_copy(&self, _key: &ObjectKey) -> Result<(), StoreError> {
        Ok(())
    }
}

/// [`ObjectStore::read_all`] through [`ObjectStore::get`]'s stream.
pub async fn read_streamed<S: ObjectStore + ?Sized>(
    store: &S,
    key: &ObjectKey,
    limit: u64,
) -> Result<Option<Bytes>, StoreError> {
    let Some(reader) = store.get(key).await? else {
        return Ok(None);
    };
    if reader.size > limit {
        return Err(StoreError::TooLarge {
            key: key.clone(),
            size: reader.size,
            limit,
        });
    }
    let mut buf = Vec::with_capacity(reader.size as usize);
    reader
        .body
        .take(limit + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|source| StoreError::Backend {
            op: "get",
            key: key.to_string(),
            source,
        })?;
    Ok(Some(Bytes::from(buf)))
}

/// Opens the object store the configuration names: the filesystem under `storage.root`, or S3
/// with local copies of derived caches under `{data_dir}/local-copies`.
pub async fn open(config: &StorageConfig) -> Result<std::sync::Arc<dyn ObjectStore>, String> {
    match config.backend {
        StorageBackend::Fs => FsStore::open(&config.root)
            .map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn ObjectStore>)
            .map_err(|e| {
                format!(
                    "cannot open the object store at {}: {e} (set storage.root or FAULTLINE_STORAGE_ROOT to a writable folder)",
                    config.root.display()
                )
            }),
        StorageBackend::S3 => {
            let remote = S3Store::connect(&config.s3).await?;
            let copies = LocalCopies::new(std::sync::Arc::new(remote), config.data_dir.join("local-copies"), &["caches/"])
                .map_err(|e| format!("cannot create local copies under {}: {e}", config.data_dir.display()))?;
            Ok(std::sync::Arc::new(copies))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_reject_traversal_and_odd_bytes() {
        assert!(ObjectKey::new("symbols/abc/def.elf.zst").is_ok());
        for bad in [
            "", "a//b", "../x", "a/../b", "a/.tmp/x", "a/b c", "/abs", "a/",
        ] {
            assert!(ObjectKey::new(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn key_segments_escape_everything_unsafe() {
        assert_eq!(key_segment("Crash.PDB"), "crash.pdb");
        assert_eq!(key_segment("c++filt"), "c%2B%2Bfilt");
        assert_eq!(key_segment("p%eter.sym"), "p%25eter.sym");
        assert_eq!(key_segment(".hidden"), "%2Ehidden");
        assert_eq!(key_segment("../x"), "%2E.%2Fx");
        assert!(ObjectKey::new(format!("names/{}", key_segment("a b/\u{1}é"))).is_ok());
        let long = "x".repeat(200);
        let segment = key_segment(&long);
        assert_eq!(segment.len(), 64);
        assert_ne!(
            segment,
            key_segment(&"x".repeat(201)),
            "the hash tells long names apart"
        );
        assert!(ObjectKey::new(format!("names/{segment}")).is_ok());
    }
}
