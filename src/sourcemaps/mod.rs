//! JavaScript source maps and the minified files they describe (Electron apps, web UIs in
//! launchers, React Native): kept by debug ID, or, for files without one, by (project,
//! release, dist, URL) as Sentry's release artifacts are; and the lookup cache built from each
//! pair (symbolic's SourceMapCache, versioned like the native caches).
//!
//! Object-store layout:
//! ```text
//! sourcemaps/{id}/source.zst      the minified file (zstd)
//! sourcemaps/{id}/map.zst         its source map (zstd)
//! sourcemaps/{id}/{kind}.json     ArtifactMeta of each; written last, so it commits the file
//! caches/smcache/{pair}.v{N}      SourceMapCache of a minified file and its map; {pair}: 40 hex
//!                                 digits of the SHA-256 of both files' SHA-256s (content
//!                                 addressed: a new upload never meets a stale cache)
//! ```
//! `{id}` is the debug ID (lowercase, hyphenated), or `url-` and 40 hex digits of the SHA-256
//! of (project, release, dist, URL).

pub mod bundle;
pub mod identify;
mod paths;
pub mod symbolicate;

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use symbolic::common::DebugId;
use symbolic_sourcemapcache::SourceMapCacheWriter;

use crate::clock::now_unsigned;
use crate::cpu::{self, JobPanicked};
use crate::store::{ObjectKey, ObjectStore, PutBody, StoreError};
use identify::identify;
pub use identify::ArtifactKind;

/// Version of the stored SourceMapCache (part of its key).
pub const SMCACHE_VERSION: u32 = 1;

/// Where an artifact is kept: by debug ID, or by what Sentry's release artifacts are keyed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactKey {
    /// The debug ID the minified file and its map share.
    DebugId(DebugId),
    /// A file without a debug ID: its project, release, dist and URL (`~/static/app.js` or a
    /// full `https://…` URL).
    Url {
        /// Project number.
        project: i64,
        /// Release name.
        release: String,
        /// Distribution (empty for none).
        dist: String,
        /// The URL the file is served at (`~/` for any host).
        url: String,
    },
}

impl ArtifactKey {
    /// The folder segment of this key: its debug ID, or `url-` and 40 hex digits of the
    /// SHA-256 of project, release, dist and URL.
    pub fn id(&self) -> String {
        match self {
            ArtifactKey::DebugId(id) => id.to_string(),
            ArtifactKey::Url {
                project,
                release,
                dist,
                url,
            } => {
                let digest = Sha256::digest(format!("{project}\0{release}\0{dist}\0{url}"));
                format!("url-{}", &hex::encode(digest)[..40])
            }
        }
    }

    fn data_key(&self, kind: ArtifactKind) -> ObjectKey {
        artifact_object(&self.id(), kind, "zst")
    }

    fn meta_key(&self, kind: ArtifactKind) -> ObjectKey {
        artifact_object(&self.id(), kind, "json")
    }
}

/// `sourcemaps/{id}/{source|map}.{extension}`.
fn artifact_object(id: &str, kind: ArtifactKind, extension: &str) -> ObjectKey {
    let file = match kind {
        ArtifactKind::MinifiedSource => "source",
        ArtifactKind::SourceMap => "map",
    };
    ObjectKey::new(format!("sourcemaps/{id}/{file}.{extension}")).expect("a valid key")
}

/// What is kept about a stored artifact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArtifactMeta {
    /// Minified file or map.
    pub kind: ArtifactKind,
    /// The name it was uploaded under.
    pub name: String,
    /// Its debug ID, if it names one.
    pub debug_id: Option<String>,
    /// The URL it is keyed under, for a file without debug ID.
    pub url: Option<String>,
    /// Release and dist of a URL-keyed file.
    pub release: Option<String>,
    /// Distribution of a URL-keyed file.
    pub dist: Option<String>,
    /// A minified file's `sourceMappingURL`.
    pub sourcemap_url: Option<String>,
    /// A Hermes map (no minified file needed).
    pub hermes: bool,
    /// SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Upload time, seconds since the Unix epoch.
    pub uploaded_at: u64,
    /// The ID of the key it is stored under ([`ArtifactKey::id`]): what events that lacked it
    /// recorded as missing.
    #[serde(default)]
    pub store_id: String,
}

/// What an upload says about a file besides its contents (an artifact bundle's headers).
#[derive(Debug, Clone, Default)]
pub struct ArtifactHints {
    /// `debug-id` header.
    pub debug_id: Option<DebugId>,
    /// `sourcemap` header of a minified file.
    pub sourcemap_url: Option<String>,
}

/// Where a file without debug ID goes: what the upload said about it.
#[derive(Debug, Clone, Default)]
pub struct ReleaseContext {
    /// Project number.
    pub project: Option<i64>,
    /// Release name.
    pub release: Option<String>,
    /// Distribution.
    pub dist: Option<String>,
    /// Prefix of each file's URL (`~/static/js`), joined with its name in the upload.
    pub url_prefix: Option<String>,
}

/// Why an artifact store operation failed (as opposed to a file being refused).
#[derive(Debug, thiserror::Error)]
pub enum SourceMapError {
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A parser panicked.
    #[error(transparent)]
    Job(#[from] JobPanicked),
    /// Compression or the cache writer failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The outcome of one artifact of an upload.
#[derive(Debug, Clone)]
pub enum ArtifactOutcome {
    /// Stored now.
    Stored(ArtifactMeta),
    /// The same bytes were there.
    AlreadyPresent(ArtifactMeta),
    /// Refused, with the reason.
    Rejected(String),
}

/// Minified files and source maps over the object store.
pub struct SourceMapStore {
    objects: Arc<dyn ObjectStore>,
}

/// `prefix` and `name` as one URL (`~/static/js` + `app.js` → `~/static/js/app.js`); a name
/// that is already a URL (`~/…`, `https://…`) stays as it is.
pub fn join_url(prefix: &str, name: &str) -> String {
    if name.starts_with("~/") || name.contains("://") {
        return name.to_owned();
    }
    let name = name.trim_start_matches("./");
    if prefix.is_empty() {
        return name.to_owned();
    }
    format!(
        "{}/{}",
        prefix.trim_end_matches('/'),
        name.trim_start_matches('/')
    )
}

impl SourceMapStore {
    /// A store over `objects`.
    pub fn new(objects: Arc<dyn ObjectStore>) -> SourceMapStore {
        SourceMapStore { objects }
    }

    /// Identifies and stores one uploaded artifact. A file with a debug ID is kept under it; one
    /// without under the upload's release, dist and URL prefix (refused when there is none).
    /// `hints` are what is said about the file from outside (an artifact bundle's `debug-id`
    /// and `sourcemap` headers); what the file itself says wins when both exist.
    pub async fn ingest(
        &self,
        bytes: Bytes,
        name: &str,
        context: &ReleaseContext,
        hints: &ArtifactHints,
    ) -> Result<ArtifactOutcome, SourceMapError> {
        let owned = bytes.clone();
        let uploaded = name.to_owned();
        let found = cpu::run(move || identify(&uploaded, &owned)).await?;
        let mut artifact = match found {
            Ok(artifact) => artifact,
            Err(e) => return Ok(ArtifactOutcome::Rejected(e.to_string())),
        };
        artifact.debug_id = artifact.debug_id.or(hints.debug_id);
        if artifact.kind == ArtifactKind::MinifiedSource && artifact.sourcemap_url.is_none() {
            artifact.sourcemap_url = hints.sourcemap_url.clone();
        }
        let (key, url) =
            match (artifact.debug_id, context) {
                (Some(id), _) => (ArtifactKey::DebugId(id), None),
                (
                    None,
                    ReleaseContext {
                        project: Some(project),
                        release: Some(release),
                        dist,
                        url_prefix,
                    },
                ) => {
                    let url = join_url(url_prefix.as_deref().unwrap_or("~"), name);
                    let key = ArtifactKey::Url {
                        project: *project,
                        release: release.clone(),
                        dist: dist.clone().unwrap_or_default(),
                        url: url.clone(),
                    };
                    (key, Some(url))
                }
                (None, _) => return Ok(ArtifactOutcome::Rejected(
                    "no debug ID (inject one with `sentry-cli sourcemaps inject`) and no release: \
                     upload with ?release=…[&dist=…][&url_prefix=~/static/js]"
                        .into(),
                )),
            };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(existing) = self.meta(&key, artifact.kind).await? {
            if existing.sha256 == sha256 {
                return Ok(ArtifactOutcome::AlreadyPresent(existing));
            }
        }
        let meta = ArtifactMeta {
            kind: artifact.kind,
            name: name.to_owned(),
            debug_id: artifact.debug_id.map(|id| id.to_string()),
            url,
            release: context
                .release
                .clone()
                .filter(|_| artifact.debug_id.is_none()),
            dist: context.dist.clone().filter(|_| artifact.debug_id.is_none()),
            sourcemap_url: artifact.sourcemap_url,
            hermes: artifact.hermes,
            sha256,
            size: bytes.len() as u64,
            uploaded_at: now_unsigned(),
            store_id: key.id(),
        };
        let compressed = cpu::run(move || -> std::io::Result<Vec<u8>> {
            let mut encoder = zstd::Encoder::new(Vec::new(), 3)?;
            encoder.write_all(&bytes)?;
            encoder.finish()
        })
        .await??;
        self.objects
            .put(&key.data_key(meta.kind), PutBody::Bytes(compressed.into()))
            .await?;
        let json = serde_json::to_vec_pretty(&meta).expect("metadata serializes");
        self.objects
            .put(&key.meta_key(meta.kind), PutBody::Bytes(json.into()))
            .await?;
        Ok(ArtifactOutcome::Stored(meta))
    }

    /// Stores every minified file and map of an artifact bundle (see [`bundle`]); files
    /// without a debug ID go under `context`'s release. Returns each file's URL and outcome.
    pub async fn ingest_bundle(
        &self,
        bytes: Bytes,
        context: &ReleaseContext,
        max_entries: usize,
        max_bytes: u64,
    ) -> Result<Result<Vec<(String, ArtifactOutcome)>, String>, SourceMapError> {
        let files =
            cpu::run(move || bundle::read_artifact_bundle(&bytes, max_entries, max_bytes)).await?;
        let files = match files {
            Ok(files) => files,
            Err(reason) => return Ok(Err(reason)),
        };
        let mut outcomes = Vec::with_capacity(files.len());
        for file in files {
            let hints = ArtifactHints {
                debug_id: file.debug_id,
                sourcemap_url: file.sourcemap,
            };
            let outcome = self
                .ingest(file.contents.into(), &file.url, context, &hints)
                .await?;
            outcomes.push((file.url, outcome));
        }
        Ok(Ok(outcomes))
    }

    /// Every stored artifact, with the store ID it is kept under ([`ArtifactKey::id`]).
    pub async fn all_artifacts(&self) -> Result<Vec<(String, ArtifactMeta)>, SourceMapError> {
        let mut out = Vec::new();
        for object in self.objects.list("sourcemaps/").await? {
            let Some((id, file)) = object
                .key
                .as_str()
                .strip_prefix("sourcemaps/")
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            if !file.ends_with(".json") {
                continue;
            }
            let Some(bytes) = self.objects.read_all(&object.key, 1 << 20).await? else {
                continue;
            };
            if let Ok(meta) = serde_json::from_slice::<ArtifactMeta>(&bytes) {
                out.push((id.to_owned(), meta));
            }
        }
        Ok(out)
    }

    /// Deletes the artifact of `kind` kept under the store ID `id`: its metadata first (the
    /// commit point), then its bytes.
    pub async fn delete(&self, id: &str, kind: ArtifactKind) -> Result<(), SourceMapError> {
        self.objects
            .delete(&artifact_object(id, kind, "json"))
            .await?;
        self.objects
            .delete(&artifact_object(id, kind, "zst"))
            .await?;
        Ok(())
    }

    /// What is stored of `kind` under `key`.
    pub async fn meta(
        &self,
        key: &ArtifactKey,
        kind: ArtifactKind,
    ) -> Result<Option<ArtifactMeta>, SourceMapError> {
        let Some(bytes) = self.objects.read_all(&key.meta_key(kind), 1 << 20).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// The stored bytes of `kind` under `key` (at most `limit` once decompressed).
    pub async fn read(
        &self,
        key: &ArtifactKey,
        kind: ArtifactKind,
        limit: u64,
    ) -> Result<Option<Bytes>, SourceMapError> {
        let Some(compressed) = self.objects.read_all(&key.data_key(kind), limit).await? else {
            return Ok(None);
        };
        let data = cpu::run(move || -> std::io::Result<Vec<u8>> {
            let mut out = Vec::new();
            let decoder = zstd::Decoder::new(&compressed[..])?;
            std::io::copy(&mut std::io::Read::take(decoder, limit), &mut out)?;
            Ok(out)
        })
        .await??;
        Ok(Some(data.into()))
    }

    /// The lookup cache of the map under `map_key` and the minified file under `source_key`
    /// (the same key for a debug-ID pair), built and kept when missing; or why there is none:
    /// no map, or no minified file for a map that needs one.
    pub async fn lookup_cache(
        &self,
        source_key: &ArtifactKey,
        map_key: &ArtifactKey,
        limit: u64,
    ) -> Result<Result<Bytes, CacheProblem>, SourceMapError> {
        let Some(map_meta) = self.meta(map_key, ArtifactKind::SourceMap).await? else {
            return Ok(Err(CacheProblem::MissingSourcemap));
        };
        let source_meta = self.meta(source_key, ArtifactKind::MinifiedSource).await?;
        if source_meta.is_none() && !map_meta.hermes {
            return Ok(Err(CacheProblem::MissingSource));
        }
        let source_sha = source_meta.as_ref().map_or("", |m| m.sha256.as_str());
        let pair = Sha256::digest(format!("{}\0{source_sha}", map_meta.sha256));
        let cache_key = ObjectKey::new(format!(
            "caches/smcache/{}.v{SMCACHE_VERSION}",
            &hex::encode(pair)[..40]
        ))
        .expect("a valid key");
        if let Some(cache) = self.objects.read_all(&cache_key, limit).await? {
            return Ok(Ok(cache));
        }
        let Some(map) = self.read(map_key, ArtifactKind::SourceMap, limit).await? else {
            return Ok(Err(CacheProblem::MissingSourcemap));
        };
        let source = if map_meta.hermes {
            Bytes::new()
        } else {
            match self
                .read(source_key, ArtifactKind::MinifiedSource, limit)
                .await?
            {
                Some(source) => source,
                None => return Ok(Err(CacheProblem::MissingSource)),
            }
        };
        let built = cpu::run(move || -> Result<Vec<u8>, String> {
            let source = String::from_utf8_lossy(&source);
            let map = String::from_utf8_lossy(&map);
            let writer = SourceMapCacheWriter::new(&source, &map).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            writer.serialize(&mut out).map_err(|e| e.to_string())?;
            Ok(out)
        })
        .await?;
        let cache = match built {
            Ok(cache) => Bytes::from(cache),
            Err(reason) => return Ok(Err(CacheProblem::Malformed(reason))),
        };
        self.objects
            .put_regenerable(&cache_key, PutBody::Bytes(cache.clone()))
            .await?;
        Ok(Ok(cache))
    }
}

/// Why a pair has no lookup cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheProblem {
    /// No map is stored under the key.
    MissingSourcemap,
    /// A map that needs its minified file, which is not stored.
    MissingSource,
    /// The map could not be turned into a cache.
    Malformed(String),
}
