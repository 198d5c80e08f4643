//! Debug files read where they lie, for `faultline process --symbols DIR`: the files a dump's
//! modules need are identified in place and their caches built in memory, from the same
//! derivation code the store uses. Nothing is hashed, compressed or written, so a developer
//! pays only for the modules of the dump at hand.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use minidump_unwind::symbols::SymbolFile;
use symbolic::common::{ByteView, DebugId};
use symbolic::debuginfo::macho::UuidMapping;

use super::derive::{self, best_source, CacheHeader, CacheKind, CacheSource, DerivedCache};
use super::identify::{identify, DebugFileMeta, BCSYMBOLMAP_FORMAT, IL2CPP_FORMAT, UUIDMAP_FORMAT};
use super::unpack::{sniff, unpack, UnpackLimits, UnpackedEntry, UploadKind};
use super::{clutter, FileReport, FileStatus, SymbolError};
use crate::clock::now_unsigned as now;

/// One debug file on local disk, for one module.
struct LocalFile {
    /// Where its bytes are (an unpacked archive entry lives in the caller's scratch folder).
    path: PathBuf,
    /// The object's bytes within the file (the whole file unless it is a universal Mach-O).
    range: Range<usize>,
    /// What it was identified as; `sha256` stays empty (nothing is hashed).
    meta: DebugFileMeta,
}

/// The local debug files of the modules one dump wants, by debug ID.
#[derive(Default)]
pub struct LocalSymbols {
    files: HashMap<DebugId, Vec<LocalFile>>,
}

impl LocalSymbols {
    /// Identifies the file at `path` (a debug file, or a zip/tar archive of them, unpacked
    /// into the folder `scratch` makes, which must outlive these symbols; it is asked for only
    /// when `path` is an archive) and keeps the objects whose debug ID (`DebugId`'s string
    /// form) is in `wanted` (`None`: every one). Reports on each file as an upload would, with
    /// `Stored` meaning kept for this run.
    pub fn add(
        &mut self,
        path: &Path,
        name: &str,
        scratch: impl FnOnce() -> std::io::Result<PathBuf>,
        wanted: Option<&HashSet<String>>,
        limits: UnpackLimits,
    ) -> Vec<FileReport> {
        let kind = match sniff(path) {
            Ok(kind) => kind,
            Err(e) => return vec![FileReport::rejected(name, format!("could not read: {e}"))],
        };
        if kind == UploadKind::Single {
            return self.add_file(path.to_owned(), name, wanted);
        }
        let scratch = match scratch() {
            Ok(scratch) => scratch,
            Err(e) => {
                return vec![FileReport::rejected(
                    name,
                    format!("could not make a folder to unpack it in: {e}"),
                )]
            }
        };
        let entries = match unpack(path, kind, &scratch, limits) {
            Ok(entries) => entries,
            Err(e) => return vec![FileReport::rejected(name, e.to_string())],
        };
        let mut reports = Vec::new();
        for entry in entries {
            match entry {
                UnpackedEntry::File { name, path } => {
                    let before = self.len();
                    reports.extend(self.add_file(path.clone(), &name, wanted));
                    if self.len() == before {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                UnpackedEntry::Rejected { name, reason } => {
                    reports.push(FileReport::rejected(name, reason))
                }
            }
        }
        reports
    }

    fn len(&self) -> usize {
        self.files.values().map(Vec::len).sum()
    }

    fn add_file(
        &mut self,
        path: PathBuf,
        name: &str,
        wanted: Option<&HashSet<String>>,
    ) -> Vec<FileReport> {
        if let Some(skipped) = clutter(name) {
            return vec![skipped];
        }
        let view = match ByteView::open(&path) {
            Ok(view) => view,
            Err(e) => return vec![FileReport::rejected(name, format!("could not read: {e}"))],
        };
        let objects = match identify(&view, name) {
            Ok(objects) => objects,
            Err(rejection) => return vec![FileReport::rejected(name, rejection.to_string())],
        };
        let mut reports = Vec::new();
        for object in objects {
            let mut meta = object.meta;
            let id = meta.debug_id.parse::<DebugId>();
            // A bitcode build's maps are kept whatever they name: a dSYM's UUID mapping leads
            // to its original build's map, which no dump names.
            let kept = wanted.is_none_or(|w| w.contains(&meta.debug_id))
                || [BCSYMBOLMAP_FORMAT, UUIDMAP_FORMAT].contains(&meta.format.as_str());
            let (status, reason) = match (&id, kept) {
                (Ok(_), true) => (FileStatus::Stored, None),
                (Ok(_), false) => (
                    FileStatus::Skipped,
                    Some(format!("{} is not wanted", meta.debug_id)),
                ),
                (Err(_), _) => (
                    FileStatus::Rejected,
                    Some(format!("unreadable debug ID {}", meta.debug_id)),
                ),
            };
            meta.size = object.range.len() as u64;
            meta.uploaded_at = now();
            if let (Ok(id), true) = (id, kept) {
                self.files.entry(id).or_default().push(LocalFile {
                    path: path.clone(),
                    range: object.range,
                    meta: meta.clone(),
                });
            }
            reports.push(FileReport {
                name: name.to_owned(),
                status,
                reason,
                file: Some(meta),
                artifact: None,
            });
        }
        reports
    }

    /// Whether any file was kept for the module.
    pub fn has(&self, debug_id: &DebugId) -> bool {
        self.files.contains_key(debug_id)
    }

    /// The best local file for a cache of `kind` of the module.
    fn best_file(&self, debug_id: &DebugId, kind: CacheKind) -> Option<&LocalFile> {
        let files = self.files.get(debug_id).map(Vec::as_slice).unwrap_or(&[]);
        let metas: Vec<DebugFileMeta> = files.iter().map(|f| f.meta.clone()).collect();
        let best = best_source(kind, &metas)?;
        let at = metas
            .iter()
            .position(|m| std::ptr::eq(m, best))
            .expect("the best source is one of the module's files");
        Some(&files[at])
    }

    /// The best local file for a cache of `kind` of the module, and its bytes.
    fn best(
        &self,
        debug_id: &DebugId,
        kind: CacheKind,
    ) -> Result<Option<(&LocalFile, ByteView<'static>)>, SymbolError> {
        let Some(file) = self.best_file(debug_id, kind) else {
            return Ok(None);
        };
        Ok(Some((file, ByteView::open(&file.path)?)))
    }

    /// When a Breakpad text file is the module's best source of both functions and unwind
    /// rules, that file parsed whole, as minidump-stackwalk reads it (building a SymCache from
    /// a large `.sym` costs several times the parse), with its source and size in bytes.
    /// CPU-bound: call it on the worker pool.
    pub fn breakpad(
        &self,
        debug_id: &DebugId,
    ) -> Result<Option<(SymbolFile, CacheSource, usize)>, SymbolError> {
        let Some((file, view)) = self.best(debug_id, CacheKind::SymCache)? else {
            return Ok(None);
        };
        let cfi_source = self.best_file(debug_id, CacheKind::Cfi).map(|f| &f.path);
        if file.meta.format != "breakpad" || cfi_source.is_some_and(|p| p != &file.path) {
            return Ok(None);
        }
        let bytes = view.get(file.range.clone()).ok_or_else(|| changed(file))?;
        // rust-minidump's parser wants every record ended by a newline; files written by older
        // tools leave the last one without (the SymCache path reads them whole).
        let parsed = match bytes.last() {
            Some(b'\n') | None => SymbolFile::from_bytes(bytes),
            Some(_) => SymbolFile::from_bytes(&[bytes, b"\n"].concat()),
        }
        .map_err(|e| SymbolError::Unreadable {
            key: file.path.display().to_string(),
            detail: e.to_string(),
        })?;
        Ok(Some((parsed, source_of(file), bytes.len())))
    }

    /// The module's IL2CPP line mapping, when one of its local files is one (the last given):
    /// read whole and parsed (CPU-bound: call it on the worker pool).
    pub fn il2cpp_mapping(
        &self,
        debug_id: &DebugId,
    ) -> Result<Option<symbolic_il2cpp::LineMapping>, SymbolError> {
        let files = self.files.get(debug_id).map(Vec::as_slice).unwrap_or(&[]);
        let Some(file) = files.iter().rev().find(|f| f.meta.format == IL2CPP_FORMAT) else {
            return Ok(None);
        };
        let view = ByteView::open(&file.path)?;
        let bytes = view.get(file.range.clone()).ok_or_else(|| changed(file))?;
        Ok(symbolic_il2cpp::LineMapping::parse(bytes))
    }

    /// The BCSymbolMap among the local files that un-hides the module's names: the one its
    /// dSYM's UUID mapping points to, else the one named by its own UUID (the last given).
    fn symbol_map(&self, debug_id: &DebugId) -> Result<Option<&LocalFile>, SymbolError> {
        let files_of = |id: &DebugId| self.files.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let map_of = |id: &DebugId| {
            files_of(id)
                .iter()
                .rev()
                .find(|f| f.meta.format == BCSYMBOLMAP_FORMAT)
        };
        let mappings = files_of(debug_id)
            .iter()
            .filter(|f| f.meta.format == UUIDMAP_FORMAT);
        for mapping in mappings {
            let view = ByteView::open(&mapping.path)?;
            let bytes = view
                .get(mapping.range.clone())
                .ok_or_else(|| changed(mapping))?;
            let name = Path::new(&mapping.meta.uploaded_name);
            if let Ok(mapping) = UuidMapping::parse_plist_with_filename(name, bytes) {
                if mapping.dsym_uuid() == *debug_id {
                    if let Some(map) = map_of(&mapping.original_uuid()) {
                        return Ok(Some(map));
                    }
                }
            }
        }
        Ok(map_of(debug_id))
    }

    /// Builds the module's cache of `kind` from its best local file (CPU-bound: call it on
    /// the worker pool). A module with no usable file gets an empty cache, as in the store.
    pub fn build(&self, debug_id: &DebugId, kind: CacheKind) -> Result<DerivedCache, SymbolError> {
        let mut header = CacheHeader::new(kind, debug_id);
        let Some((file, view)) = self.best(debug_id, kind)? else {
            return Ok(DerivedCache {
                header,
                payload: Bytes::new(),
            });
        };
        let unreadable = |detail: String| SymbolError::Unreadable {
            key: file.path.display().to_string(),
            detail,
        };
        let bytes = view.get(file.range.clone()).ok_or_else(|| changed(file))?;
        let map = match kind {
            CacheKind::SymCache if file.meta.format == "macho" => self.symbol_map(debug_id)?,
            _ => None,
        };
        let payload = match map {
            Some(map) => {
                let map_view = ByteView::open(&map.path)?;
                let map_bytes = map_view
                    .get(map.range.clone())
                    .ok_or_else(|| changed(map))?;
                derive::symcache_with_symbol_map(bytes, map_bytes)
            }
            None => derive::build_payload_from(kind, &file.meta.format, bytes),
        }
        .map_err(unreadable)?;
        header.source = Some(source_of(file));
        Ok(DerivedCache {
            header,
            payload: payload.into(),
        })
    }
}

/// A local file as a cache source: no hash, since nothing was stored.
fn source_of(file: &LocalFile) -> CacheSource {
    CacheSource {
        sha256: String::new(),
        format: file.meta.format.clone(),
        uploaded_name: file.meta.uploaded_name.clone(),
        symbol_map: None,
    }
}

fn changed(file: &LocalFile) -> SymbolError {
    SymbolError::Unreadable {
        key: file.path.display().to_string(),
        detail: "the file changed since it was identified".into(),
    }
}
