//! Bitcode builds' hidden names: which stored BCSymbolMap un-hides a module's names (the one
//! its dSYM's UUID mapping points to, else one stored under its own UUID), and which modules a
//! map stored under an original build's UUID un-hides (the dSYMs whose mappings name it).

use std::path::Path;

use symbolic::common::DebugId;
use symbolic::debuginfo::macho::UuidMapping;

use super::identify::{DebugFileMeta, BCSYMBOLMAP_FORMAT, MAX_UUID_MAPPING, UUIDMAP_FORMAT};
use super::{SymbolError, SymbolStore};

impl SymbolStore {
    /// The BCSymbolMap that un-hides the names of module `debug_id`, whose stored files are
    /// `files`: through its UUID mapping to the original build's map when it has one (an App
    /// Store dSYM), else the map stored under its own UUID; the newest of each.
    pub async fn symbol_map_for(
        &self,
        debug_id: &DebugId,
        files: &[DebugFileMeta],
    ) -> Result<Option<DebugFileMeta>, SymbolError> {
        for mapping in files.iter().filter(|f| f.format == UUIDMAP_FORMAT) {
            let Some(mapping) = self.uuid_mapping(mapping).await? else {
                continue;
            };
            if mapping.dsym_uuid() == *debug_id && mapping.original_uuid() != *debug_id {
                let originals = self.files_for(&mapping.original_uuid()).await?;
                if let Some(map) = newest_symbol_map(&originals) {
                    return Ok(Some(map));
                }
            }
        }
        Ok(newest_symbol_map(files))
    }

    /// The dSYMs whose UUID mappings name `original` as their original build: a symbol map
    /// stored under `original` un-hides their names too.
    pub async fn dsyms_mapped_to(&self, original: &DebugId) -> Result<Vec<DebugId>, SymbolError> {
        let mut dsyms = Vec::new();
        for file in self.files_for(original).await? {
            if file.format != UUIDMAP_FORMAT {
                continue;
            }
            if let Some(mapping) = self.uuid_mapping(&file).await? {
                if mapping.original_uuid() == *original && mapping.dsym_uuid() != *original {
                    dsyms.push(mapping.dsym_uuid());
                }
            }
        }
        Ok(dsyms)
    }

    /// A stored UUID mapping read back (its dSYM's UUID is in its name); `None` if it no
    /// longer parses.
    async fn uuid_mapping(&self, meta: &DebugFileMeta) -> Result<Option<UuidMapping>, SymbolError> {
        if meta.size > MAX_UUID_MAPPING as u64 {
            return Ok(None);
        }
        let local = self.materialize(meta).await?;
        let bytes = tokio::fs::read(local.path()).await?;
        Ok(UuidMapping::parse_plist_with_filename(Path::new(&meta.uploaded_name), &bytes).ok())
    }
}

/// The newest BCSymbolMap among a module's files.
fn newest_symbol_map(files: &[DebugFileMeta]) -> Option<DebugFileMeta> {
    files
        .iter()
        .filter(|f| f.format == BCSYMBOLMAP_FORMAT)
        .max_by_key(|f| (f.uploaded_at, f.sha256.clone()))
        .cloned()
}
