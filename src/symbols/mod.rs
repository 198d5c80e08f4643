//! The symbol store: debug files kept by debug ID, found by debug ID, code ID or file name, and
//! the derived caches (SymCache, CFI) the stack walker reads.
//!
//! Object-store layout (see `docs/ARCHITECTURE.md`):
//! ```text
//! symbols/{debug_id}/{sha256}.{format}.zst   original bytes, zstd-compressed
//! symbols/{debug_id}/{sha256}.meta.json      DebugFileMeta; written last, so it commits the file
//! code-ids/{code_id}/{debug_id}              code ID → debug ID index (empty object)
//! names/{file name}/{debug_id}               debug/code file name → debug ID index
//! caches/{debug_id}/{symcache|cfi}.v{N}      DerivedCache
//! caches/{debug_id}/sym.v{N}                 Breakpad .sym generated from the native files
//! ```

pub mod breakpad_sym;
pub mod caches;
pub mod chunks;
pub mod derive;
pub mod embedded;
pub mod fetched;
pub mod identify;
pub mod ids;
mod javascript;
pub mod local;
pub mod pending;
pub mod sources;
mod symbol_maps;
pub mod unpack;

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use symbolic::common::{ByteView, CodeId, DebugId};
use tokio::io::AsyncReadExt;

use crate::clock::now_unsigned;
use crate::cpu::{self, JobPanicked};
use crate::sourcemaps::{ArtifactMeta, ReleaseContext, SourceMapStore};
use crate::store::{key_segment, ObjectKey, ObjectReader, ObjectStore, PutBody, StoreError};
use derive::CacheKind;
use identify::{base_name, identify, DebugFileMeta, IdentifiedObject};
use unpack::{sniff, unpack, UnpackLimits, UnpackedEntry, UploadKind};

/// The largest metadata record or cache read into memory whole.
const MAX_CACHE_BYTES: u64 = 4 << 30;
const MAX_META_BYTES: u64 = 1 << 20;

/// What happened to one file of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// New content, now stored.
    Stored,
    /// The same bytes were stored before; nothing changed.
    AlreadyPresent,
    /// Not accepted; `reason` says why.
    Rejected,
    /// Bundle clutter (`Info.plist`, `.DS_Store`, `__MACOSX/`): neither stored nor an error.
    Skipped,
}

impl std::fmt::Display for FileStatus {
    /// In words, as pages show it (`already present`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileStatus::Stored => "stored",
            FileStatus::AlreadyPresent => "already present",
            FileStatus::Rejected => "rejected",
            FileStatus::Skipped => "skipped",
        })
    }
}

/// The outcome for one file (or one architecture of a universal Mach-O) of an upload.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file's name or path within the upload.
    pub name: String,
    /// Stored, already present, rejected or skipped.
    pub status: FileStatus,
    /// Why it was rejected or skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the file was identified as, when it was a debug file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<DebugFileMeta>,
    /// What it was identified as, when it was a JavaScript minified file or source map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactMeta>,
}

impl FileReport {
    fn rejected(name: impl Into<String>, reason: impl Into<String>) -> FileReport {
        FileReport {
            name: name.into(),
            status: FileStatus::Rejected,
            reason: Some(reason.into()),
            file: None,
            artifact: None,
        }
    }
}

/// How a client asks for stored debug files.
#[derive(Debug, Clone)]
pub enum SymbolQuery {
    /// By the module's debug ID.
    DebugId(DebugId),
    /// By code ID (PE timestamp+size, ELF build ID, Mach-O UUID).
    CodeId(CodeId),
    /// By debug or code file name, case-insensitively.
    Name(String),
}

/// Why a symbol-store operation failed (as opposed to a file being rejected).
#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Local scratch space failed.
    #[error("local scratch space failed: {0}")]
    Scratch(#[from] io::Error),
    /// A parser panicked.
    #[error(transparent)]
    Job(#[from] JobPanicked),
    /// A stored file could not be read back as the format it was stored as.
    #[error("stored file {key} is unreadable: {detail}")]
    Unreadable {
        /// Its key.
        key: String,
        /// What went wrong.
        detail: String,
    },
}

/// Debug files by debug ID, over any [`ObjectStore`].
pub struct SymbolStore {
    objects: Arc<dyn ObjectStore>,
    /// JavaScript minified files and source maps, which arrive through the same uploads.
    sourcemaps: SourceMapStore,
    scratch: PathBuf,
    limits: UnpackLimits,
    /// One cache refresh per debug ID at a time.
    refreshing: Mutex<HashMap<DebugId, Arc<tokio::sync::Mutex<()>>>>,
}

fn key(text: String) -> ObjectKey {
    ObjectKey::new(text).expect("symbol store keys are built from safe parts")
}

fn blob_key(meta: &DebugFileMeta) -> ObjectKey {
    key(format!(
        "symbols/{}/{}.{}.zst",
        meta.debug_id, meta.sha256, meta.format
    ))
}

fn meta_key(debug_id: &str, sha256: &str) -> ObjectKey {
    key(format!("symbols/{debug_id}/{sha256}.meta.json"))
}

fn cache_key(debug_id: &DebugId, kind: CacheKind) -> ObjectKey {
    key(format!(
        "caches/{debug_id}/{}.v{}",
        kind.name(),
        kind.version()
    ))
}

/// A file opened and identified on the pool: its bytes and what they hold (each object with
/// its SHA-256), or why it is not a debug file.
type IdentifiedFile = (
    Arc<ByteView<'static>>,
    Result<Vec<IdentifiedObject>, identify::Rejection>,
);

/// Opens the file at `path` (received as `name`) and identifies the debug files in it.
async fn identify_file(path: &Path, name: &str) -> Result<io::Result<IdentifiedFile>, JobPanicked> {
    let (file, name) = (path.to_owned(), name.to_owned());
    cpu::run(move || -> io::Result<IdentifiedFile> {
        let view = Arc::new(ByteView::open(&file)?);
        let found = identify(&view, &name).map(|objects| {
            objects
                .into_iter()
                .map(|mut object| {
                    object.meta.sha256 = hex::encode(Sha256::digest(&view[object.range.clone()]));
                    object
                })
                .collect()
        });
        Ok((view, found))
    })
    .await
}

/// Upload clutter that is neither a debug file nor worth an error: macOS metadata and the
/// `Info.plist` of a dSYM bundle.
fn is_bundle_clutter(name: &str) -> bool {
    let base = base_name(name);
    base.starts_with('.')
        || name.starts_with("__MACOSX/")
        || (base == "Info.plist" && name.contains(".dSYM/"))
}

/// The report for upload clutter ([`is_bundle_clutter`]), or `None` for a candidate debug file.
fn clutter(name: &str) -> Option<FileReport> {
    is_bundle_clutter(name).then(|| FileReport {
        name: name.to_owned(),
        status: FileStatus::Skipped,
        reason: Some("bundle metadata, not a debug file".to_owned()),
        file: None,
        artifact: None,
    })
}

impl SymbolStore {
    /// A store over `objects`, spooling uploads under `scratch`.
    pub fn new(
        objects: Arc<dyn ObjectStore>,
        scratch: PathBuf,
        limits: UnpackLimits,
    ) -> io::Result<SymbolStore> {
        std::fs::create_dir_all(&scratch)?;
        Ok(SymbolStore {
            sourcemaps: SourceMapStore::new(Arc::clone(&objects)),
            objects,
            scratch,
            limits,
            refreshing: Mutex::new(HashMap::new()),
        })
    }

    /// The JavaScript artifacts kept beside the debug files.
    pub fn sourcemaps(&self) -> &SourceMapStore {
        &self.sourcemaps
    }

    /// Where uploads spool: large crash bodies spill here as unnamed files.
    pub fn scratch_root(&self) -> &Path {
        &self.scratch
    }

    /// A fresh scratch folder for one upload, removed when dropped.
    pub fn scratch_dir(&self) -> io::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("upload-")
            .tempdir_in(&self.scratch)
    }

    /// Stores every debug file in the received file at `path` (a single debug file, or a zip,
    /// tar or tar.gz archive of them) and reports on each. `scratch` holds unpacked entries.
    /// JavaScript minified files and source maps go to the source map store; `release` says
    /// where those without a debug ID belong.
    pub async fn ingest(
        &self,
        path: &Path,
        name: &str,
        scratch: &Path,
        release: &ReleaseContext,
    ) -> Vec<FileReport> {
        let kind = match sniff(path) {
            Ok(kind) => kind,
            Err(e) => {
                return vec![FileReport::rejected(
                    name,
                    format!("could not read upload: {e}"),
                )]
            }
        };
        if kind == UploadKind::Single {
            return self.ingest_file(path, name, release).await;
        }
        if kind == UploadKind::Zip {
            // A Sentry artifact bundle is one upload of JavaScript files, not an archive of
            // debug files: its manifest says what each file is.
            match self.artifact_bundle(path, name, release).await {
                Ok(Some(reports)) => return reports,
                Ok(None) => {}
                Err(e) => return vec![FileReport::rejected(name, format!("could not store: {e}"))],
            }
        }
        let archive = path.to_owned();
        let into = scratch.to_owned();
        let limits = self.limits;
        let entries = match cpu::run(move || unpack(&archive, kind, &into, limits)).await {
            Ok(Ok(entries)) => entries,
            Ok(Err(e)) => return vec![FileReport::rejected(name, e.to_string())],
            Err(e) => return vec![FileReport::rejected(name, e.to_string())],
        };
        let mut reports = Vec::new();
        for entry in entries {
            match entry {
                UnpackedEntry::File { name, path } => {
                    reports.extend(self.ingest_file(&path, &name, release).await);
                    let _ = std::fs::remove_file(&path);
                }
                UnpackedEntry::Rejected { name, reason } => {
                    reports.push(FileReport::rejected(name, reason))
                }
            }
        }
        reports
    }

    /// Identifies and stores one candidate debug file (several objects if it is universal), or
    /// hands a JavaScript artifact to the source map store.
    async fn ingest_file(
        &self,
        path: &Path,
        name: &str,
        release: &ReleaseContext,
    ) -> Vec<FileReport> {
        if let Some(skipped) = clutter(name) {
            return vec![skipped];
        }
        match self.javascript(path, name, release).await {
            Ok(Some(reports)) => return reports,
            Ok(None) => {}
            Err(e) => return vec![FileReport::rejected(name, format!("could not store: {e}"))],
        }
        let (view, objects) = match identify_file(path, name).await {
            Ok(Ok((view, Ok(found)))) => (view, found),
            Ok(Ok((_, Err(rejection)))) => {
                metrics::counter!("faultline_symbol_files_total", "status" => "rejected")
                    .increment(1);
                return vec![FileReport::rejected(name, rejection.to_string())];
            }
            Ok(Err(e)) => {
                return vec![FileReport::rejected(
                    name,
                    format!("could not read upload: {e}"),
                )]
            }
            Err(e) => return vec![FileReport::rejected(name, e.to_string())],
        };
        // An assembly's embedded PDB first: a crash waiting for the assembly's debug ID is
        // reprocessed once its files are stored, and the PDB is what resolves its frames.
        let embedded = self.store_embedded_pdbs(&view, &objects, name).await;
        let mut reports = self.store_identified(&view, objects, name).await;
        reports.extend(embedded);
        reports
    }

    /// Stores each identified object of the upload `name` (bytes `view`) and reports on it.
    async fn store_identified(
        &self,
        view: &Arc<ByteView<'static>>,
        objects: Vec<IdentifiedObject>,
        name: &str,
    ) -> Vec<FileReport> {
        let mut reports = Vec::new();
        for object in objects {
            let report = match self.store_object(view, object).await {
                Ok(report) => report,
                Err(e) => FileReport::rejected(name, format!("could not store: {e}")),
            };
            let status = match report.status {
                FileStatus::Stored => "stored",
                FileStatus::AlreadyPresent => "already_present",
                _ => "rejected",
            };
            metrics::counter!("faultline_symbol_files_total", "status" => status).increment(1);
            reports.push(report);
        }
        reports
    }

    /// Stores one identified object unless the same bytes are already stored. The metadata
    /// record is written last: until it exists the file is invisible, so a failure part-way
    /// leaves nothing a reader can see.
    async fn store_object(
        &self,
        view: &Arc<ByteView<'static>>,
        object: IdentifiedObject,
    ) -> Result<FileReport, SymbolError> {
        let IdentifiedObject { mut meta, range } = object;
        let name = meta.uploaded_name.clone();
        let record = meta_key(&meta.debug_id, &meta.sha256);
        if let Some(existing) = self.read_meta(&record).await? {
            return Ok(FileReport {
                name,
                status: FileStatus::AlreadyPresent,
                reason: None,
                file: Some(existing),
                artifact: None,
            });
        }
        meta.uploaded_at = now_unsigned();
        let compressed = tempfile::NamedTempFile::new_in(&self.scratch)?;
        let mut writer = compressed.reopen()?;
        let bytes = Arc::clone(view);
        cpu::run(move || -> io::Result<()> {
            let mut encoder = zstd::Encoder::new(&mut writer, 3)?;
            encoder.write_all(&bytes[range])?;
            encoder.finish()?.flush()
        })
        .await??;
        let blob = blob_key(&meta);
        self.objects
            .put(&blob, PutBody::File(compressed.path().to_owned()))
            .await?;
        let json = serde_json::to_vec_pretty(&meta).expect("metadata serializes");
        if let Err(e) = self.objects.put(&record, PutBody::Bytes(json.into())).await {
            let _ = self.objects.delete(&blob).await;
            return Err(e.into());
        }
        for index in self.index_keys(&meta) {
            self.objects
                .put(&index, PutBody::Bytes(Bytes::new()))
                .await?;
        }
        // A `.sym` generated before this file came may lack what it adds.
        if let Ok(id) = meta.debug_id.parse::<DebugId>() {
            self.objects.delete(&breakpad_sym::sym_key(&id)).await?;
        }
        Ok(FileReport {
            name,
            status: FileStatus::Stored,
            reason: None,
            file: Some(meta),
            artifact: None,
        })
    }

    fn index_keys(&self, meta: &DebugFileMeta) -> Vec<ObjectKey> {
        let mut keys = Vec::new();
        if let Some(code_id) = &meta.code_id {
            keys.push(key(format!(
                "code-ids/{}/{}",
                key_segment(code_id),
                meta.debug_id
            )));
        }
        let names: BTreeSet<String> = [&meta.debug_file, &meta.code_file]
            .into_iter()
            .flatten()
            .map(|n| key_segment(n))
            .collect();
        for name in names {
            keys.push(key(format!("names/{name}/{}", meta.debug_id)));
        }
        keys
    }

    async fn read_meta(&self, record: &ObjectKey) -> Result<Option<DebugFileMeta>, SymbolError> {
        let Some(bytes) = self.objects.read_all(record, MAX_META_BYTES).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SymbolError::Unreadable {
                key: record.to_string(),
                detail: e.to_string(),
            })
    }

    /// Deletes a module's stored files: the one with SHA-256 `sha256`, or all of them. Each
    /// file's record goes first (so no reader finds a record without bytes), then its bytes;
    /// the name and code-ID index entries go once no remaining file of the module needs them,
    /// and the derived caches are rebuilt from what remains (or deleted with the last file).
    /// Returns what was deleted (empty: nothing matched).
    pub async fn delete(
        &self,
        debug_id: &DebugId,
        sha256: Option<&str>,
    ) -> Result<Vec<DebugFileMeta>, SymbolError> {
        let files = self.files_for(debug_id).await?;
        let (deleted, kept): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|meta| sha256.is_none_or(|sha| meta.sha256 == sha));
        for meta in &deleted {
            self.objects
                .delete(&meta_key(&meta.debug_id, &meta.sha256))
                .await?;
            self.objects.delete(&blob_key(meta)).await?;
        }
        let needed: BTreeSet<ObjectKey> =
            kept.iter().flat_map(|meta| self.index_keys(meta)).collect();
        let unneeded: BTreeSet<ObjectKey> = deleted
            .iter()
            .flat_map(|meta| self.index_keys(meta))
            .filter(|key| !needed.contains(key))
            .collect();
        for key in unneeded {
            self.objects.delete(&key).await?;
        }
        if !deleted.is_empty() {
            self.objects
                .delete(&breakpad_sym::sym_key(debug_id))
                .await?;
            if kept.is_empty() {
                for kind in CacheKind::STORED {
                    self.objects.delete(&cache_key(debug_id, kind)).await?;
                }
            } else {
                self.refresh_caches(debug_id).await?;
            }
        }
        Ok(deleted)
    }

    /// Every stored file of every module (for retention: one listing of the whole store).
    pub async fn all_files(&self) -> Result<Vec<DebugFileMeta>, SymbolError> {
        let mut files = Vec::new();
        for object in self.objects.list("symbols/").await? {
            if object.key.as_str().ends_with(".meta.json") {
                if let Some(meta) = self.read_meta(&object.key).await? {
                    files.push(meta);
                }
            }
        }
        Ok(files)
    }

    /// Every stored file of one module.
    pub async fn files_for(&self, debug_id: &DebugId) -> Result<Vec<DebugFileMeta>, SymbolError> {
        let mut files = Vec::new();
        for info in self.objects.list(&format!("symbols/{debug_id}/")).await? {
            if info.key.as_str().ends_with(".meta.json") {
                if let Some(meta) = self.read_meta(&info.key).await? {
                    files.push(meta);
                }
            }
        }
        Ok(files)
    }

    /// Debug IDs recorded under an index folder (`code-ids/<id>/` or `names/<name>/`).
    async fn indexed_ids(&self, prefix: String) -> Result<Vec<DebugId>, SymbolError> {
        Ok(self
            .objects
            .list(&prefix)
            .await?
            .iter()
            .filter_map(|info| info.key.as_str().rsplit('/').next()?.parse().ok())
            .collect())
    }

    /// Every stored file matching `query`.
    pub async fn find(&self, query: &SymbolQuery) -> Result<Vec<DebugFileMeta>, SymbolError> {
        let debug_ids = match query {
            SymbolQuery::DebugId(id) => vec![*id],
            SymbolQuery::Name(name) => {
                self.indexed_ids(format!("names/{}/", key_segment(name)))
                    .await?
            }
            SymbolQuery::CodeId(code_id) => {
                let mut ids = self
                    .indexed_ids(format!("code-ids/{}/", key_segment(code_id.as_str())))
                    .await?;
                // Files that do not record their code ID (a Breakpad file without INFO CODE_ID)
                // are still found through the debug ID an ELF build ID folds into.
                if ids.is_empty() {
                    ids.extend(ids::debug_id_from_build_id(code_id));
                }
                ids
            }
        };
        let mut files = Vec::new();
        for id in debug_ids {
            for meta in self.files_for(&id).await? {
                let matches = match query {
                    SymbolQuery::DebugId(_) => true,
                    SymbolQuery::CodeId(code_id) => meta
                        .code_id
                        .as_deref()
                        .is_none_or(|c| c.eq_ignore_ascii_case(code_id.as_str())),
                    SymbolQuery::Name(name) => [&meta.debug_file, &meta.code_file]
                        .into_iter()
                        .flatten()
                        .any(|n| n.eq_ignore_ascii_case(name)),
                };
                if matches {
                    files.push(meta);
                }
            }
        }
        Ok(files)
    }

    /// The original bytes of a stored file, decompressed as they are streamed.
    pub async fn open_original(
        &self,
        meta: &DebugFileMeta,
    ) -> Result<Option<ObjectReader>, SymbolError> {
        let Some(reader) = self.objects.get(&blob_key(meta)).await? else {
            return Ok(None);
        };
        let decoder = async_compression::tokio::bufread::ZstdDecoder::new(
            tokio::io::BufReader::new(reader.body),
        );
        Ok(Some(ObjectReader {
            size: meta.size,
            body: Box::pin(decoder),
        }))
    }

    /// Reads a stored file back into a local scratch file, for parsing.
    pub async fn materialize(
        &self,
        meta: &DebugFileMeta,
    ) -> Result<tempfile::NamedTempFile, SymbolError> {
        let unreadable = |detail: String| SymbolError::Unreadable {
            key: blob_key(meta).to_string(),
            detail,
        };
        let mut reader = self
            .open_original(meta)
            .await?
            .ok_or_else(|| unreadable("its metadata exists but its bytes are missing".into()))?;
        let local = tempfile::NamedTempFile::new_in(&self.scratch)?;
        let mut out = tokio::fs::File::from_std(local.reopen()?);
        let copied = tokio::io::copy(&mut (&mut reader.body).take(meta.size + 1), &mut out)
            .await
            .map_err(|e| unreadable(e.to_string()))?;
        if copied != meta.size {
            return Err(unreadable(format!(
                "expected {} bytes, read {copied}",
                meta.size
            )));
        }
        Ok(local)
    }
}
