//! The derived caches of a module (SymCache, CFI): read, built from the best stored file when
//! missing or stale, refreshed after uploads and deletions, dropped from this node's local
//! copies when another node changed them.

use std::sync::Arc;

use bytes::Bytes;
use symbolic::common::{ByteView, DebugId};

use super::derive::{self, best_source, CacheHeader, CacheKind, CacheSource, DerivedCache};
use super::identify::DebugFileMeta;
use super::{blob_key, breakpad_sym, cache_key, SymbolError, SymbolStore, MAX_CACHE_BYTES};
use crate::cpu;
use crate::store::PutBody;

impl SymbolStore {
    /// The stored cache of `kind` for a module, if one was built.
    pub async fn stored_cache(
        &self,
        debug_id: &DebugId,
        kind: CacheKind,
    ) -> Result<Option<DerivedCache>, SymbolError> {
        let key = cache_key(debug_id, kind);
        let Some(bytes) = self.objects.read_all(&key, MAX_CACHE_BYTES).await? else {
            return Ok(None);
        };
        DerivedCache::decode(bytes)
            .map(Some)
            .map_err(|detail| SymbolError::Unreadable {
                key: key.to_string(),
                detail,
            })
    }

    /// The cache of `kind` for a module built from the best of `files` (its stored files, from
    /// [`files_for`](Self::files_for)), building it first if it is missing or was built from
    /// another file (a better one arrived, perhaps through another node).
    pub async fn cache(
        &self,
        debug_id: &DebugId,
        kind: CacheKind,
        files: &[DebugFileMeta],
    ) -> Result<DerivedCache, SymbolError> {
        let (best, map) = self.wanted_sources(debug_id, kind, files).await?;
        if let Some(cache) = self.stored_cache(debug_id, kind).await? {
            if built_from(&cache, best.as_ref(), map.as_ref()) {
                return Ok(cache);
            }
        }
        self.refresh_caches(debug_id).await?;
        Ok(self
            .stored_cache(debug_id, kind)
            .await?
            .expect("refresh_caches stores every kind"))
    }

    /// The variables cache of a module, built from its best stored file on first need (the
    /// first crash whose crashing thread runs through it) and stored for every node; `None`
    /// when no stored file carries DWARF.
    pub async fn variables_cache(
        &self,
        debug_id: &DebugId,
    ) -> Result<Option<DerivedCache>, SymbolError> {
        let kind = CacheKind::Variables;
        let files = self.files_for(debug_id).await?;
        let Some(best) = best_source(kind, &files) else {
            return Ok(None);
        };
        if let Some(cache) = self.stored_cache(debug_id, kind).await? {
            let source = cache.header.source.as_ref().map(|s| &s.sha256);
            if source == Some(&best.sha256) {
                return Ok(Some(cache));
            }
        }
        let cache = self.build_cache(debug_id, kind, Some(best), None).await?;
        self.objects
            .put_regenerable(&cache_key(debug_id, kind), PutBody::Bytes(cache.encode()))
            .await?;
        metrics::counter!("faultline_cache_builds_total", "kind" => kind.name()).increment(1);
        Ok(Some(cache))
    }

    /// Forgets this node's local copies of a module's derived caches (another node rebuilt
    /// them), so the next read fetches the shared ones.
    pub async fn forget_local_caches(&self, debug_id: &DebugId) -> Result<(), SymbolError> {
        for kind in CacheKind::STORED {
            self.objects
                .forget_local_copy(&cache_key(debug_id, kind))
                .await?;
        }
        self.objects
            .forget_local_copy(&breakpad_sym::sym_key(debug_id))
            .await?;
        Ok(())
    }

    /// Brings both caches of a module up to date: builds each one that is missing, or whose
    /// best source file is no longer the one it was built from (a better file arrived).
    pub async fn refresh_caches(
        &self,
        debug_id: &DebugId,
    ) -> Result<Vec<CacheHeader>, SymbolError> {
        let lock = {
            let mut map = self.refreshing.lock().expect("refresh map lock");
            Arc::clone(map.entry(*debug_id).or_default())
        };
        let _guard = lock.lock().await;
        let files = self.files_for(debug_id).await?;
        let mut headers = Vec::new();
        for kind in CacheKind::ALL {
            let (best, map) = self.wanted_sources(debug_id, kind, &files).await?;
            if let Some(current) = self.stored_cache(debug_id, kind).await? {
                if built_from(&current, best.as_ref(), map.as_ref()) {
                    headers.push(current.header);
                    continue;
                }
            }
            let cache = self
                .build_cache(debug_id, kind, best.as_ref(), map.as_ref())
                .await?;
            self.objects
                .put_regenerable(&cache_key(debug_id, kind), PutBody::Bytes(cache.encode()))
                .await?;
            metrics::counter!("faultline_cache_builds_total", "kind" => kind.name()).increment(1);
            headers.push(cache.header);
        }
        drop(_guard);
        let mut map = self.refreshing.lock().expect("refresh map lock");
        if map.get(debug_id).is_some_and(|l| Arc::strong_count(l) <= 2) {
            map.remove(debug_id);
        }
        Ok(headers)
    }

    /// What a cache of `kind` for a module is built from now: the best of its `files`, and for
    /// the functions of a Mach-O file the BCSymbolMap that un-hides its names, if stored.
    async fn wanted_sources(
        &self,
        debug_id: &DebugId,
        kind: CacheKind,
        files: &[DebugFileMeta],
    ) -> Result<(Option<DebugFileMeta>, Option<DebugFileMeta>), SymbolError> {
        let best = best_source(kind, files).cloned();
        let map = match &best {
            Some(best) if kind == CacheKind::SymCache && best.format == "macho" => {
                self.symbol_map_for(debug_id, files).await?
            }
            _ => None,
        };
        Ok((best, map))
    }

    /// Builds a cache of `kind` from `source` (none: an empty cache), its hidden names
    /// replaced by `map`'s.
    async fn build_cache(
        &self,
        debug_id: &DebugId,
        kind: CacheKind,
        source: Option<&DebugFileMeta>,
        map: Option<&DebugFileMeta>,
    ) -> Result<DerivedCache, SymbolError> {
        let mut header = CacheHeader::new(kind, debug_id);
        let Some(source) = source else {
            return Ok(DerivedCache {
                header,
                payload: Bytes::new(),
            });
        };
        let local = self.materialize(source).await?;
        let local_map = match map {
            Some(map) => Some(self.materialize(map).await?),
            None => None,
        };
        let path = local.path().to_owned();
        let map_path = local_map.as_ref().map(|m| m.path().to_owned());
        let format = source.format.clone();
        let payload = cpu::run(move || -> Result<Vec<u8>, String> {
            let view = ByteView::open(&path).map_err(|e| e.to_string())?;
            match map_path {
                Some(map_path) => {
                    let map = ByteView::open(&map_path).map_err(|e| e.to_string())?;
                    derive::symcache_with_symbol_map(&view, &map)
                }
                None => derive::build_payload_from(kind, &format, &view),
            }
        })
        .await?
        .map_err(|detail| SymbolError::Unreadable {
            key: blob_key(source).to_string(),
            detail,
        })?;
        header.source = Some(CacheSource {
            sha256: source.sha256.clone(),
            format: source.format.clone(),
            uploaded_name: source.uploaded_name.clone(),
            symbol_map: map.map(|m| m.sha256.clone()),
        });
        Ok(DerivedCache {
            header,
            payload: payload.into(),
        })
    }
}

/// Whether `cache` was built from `best` with `map`'s names.
fn built_from(
    cache: &DerivedCache,
    best: Option<&DebugFileMeta>,
    map: Option<&DebugFileMeta>,
) -> bool {
    let source = cache.header.source.as_ref();
    source.map(|s| &s.sha256) == best.map(|b| &b.sha256)
        && source.and_then(|s| s.symbol_map.as_ref()) == map.map(|m| &m.sha256)
}
