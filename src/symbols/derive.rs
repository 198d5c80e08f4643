//! Derived caches: the compact forms the stack walker reads instead of the original debug files.
//!
//! - **SymCache** (symbolic-symcache): functions, file/line records and inlines, addressed
//!   relative to the module's load address. The same cache kind holds what a managed module's
//!   frames are looked up by instead ([`FunctionsFormat`]): for a .NET portable PDB a
//!   PortablePdbCache (symbolic-ppdb: a method's IL offsets to file and line), for a ProGuard /
//!   R8 mapping a ProguardCache (the `proguard` crate: obfuscated classes, methods and line
//!   ranges to the originals, inlines included).
//! - **CFI** (symbolic-cfi): Breakpad `STACK CFI` / `STACK WIN` text, from Breakpad records,
//!   DWARF `.eh_frame`/`.debug_frame`, PE unwind info or Mach-O compact unwind.
//! - **Variables** ([`crate::variables::VariablesTable`]): each function's scopes, parameters
//!   and locals with their locations and types, from DWARF or a PDB's CodeView records;
//!   zstd-compressed JSON. Built on first
//!   need (a crash's crashing thread runs through the module), not on upload.
//!
//! Each debug ID may have several stored files; each cache is built from the best one for its
//! kind (a stripped binary carries unwind info, its debug companion carries symbols). A stored
//! cache is a [`DerivedCache`]: a header naming its version and source file, then the payload.
//! The version is part of the key, so bumping it invalidates every old entry.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use symbolic::cfi::CfiCache;
use symbolic::debuginfo::macho::BcSymbolMap;
use symbolic::debuginfo::Object;
use symbolic::ppdb::PortablePdbCacheConverter;
use symbolic::symcache::SymCacheConverter;

use super::identify::{DebugFileMeta, PROGUARD_FORMAT};

// Our cache versions must move whenever the formats we embed change. Upgrading symbolic to a
// new SymCache format fails this check until SYMCACHE_VERSION below is bumped.
const _: () = assert!(symbolic::symcache::SYMCACHE_VERSION == 8);
const _: () = assert!(symbolic::cfi::CFICACHE_LATEST_VERSION == 2);

/// The caches a module can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheKind {
    /// Function names, lines and inlines.
    SymCache,
    /// Unwind rules for the stack walker.
    Cfi,
    /// Scopes, parameters and locals: where each variable lives, and its type.
    Variables,
}

impl CacheKind {
    /// The kinds built as soon as a module's files are stored, in build order.
    pub const ALL: [CacheKind; 2] = [CacheKind::SymCache, CacheKind::Cfi];

    /// Every kind a module may have stored (the variables cache only once a crash needed it).
    pub const STORED: [CacheKind; 3] = [CacheKind::SymCache, CacheKind::Cfi, CacheKind::Variables];

    /// The cache format version; bump it when the payload or the choice of source changes.
    pub const fn version(self) -> u32 {
        match self {
            CacheKind::SymCache => 2,
            CacheKind::Cfi => 1,
            CacheKind::Variables => crate::variables::table::TABLE_VERSION,
        }
    }

    /// `symcache` or `cfi`.
    pub const fn name(self) -> &'static str {
        match self {
            CacheKind::SymCache => "symcache",
            CacheKind::Cfi => "cfi",
            CacheKind::Variables => "variables",
        }
    }

    /// Whether `meta` can contribute to this kind of cache at all.
    fn can_use(self, meta: &DebugFileMeta) -> bool {
        match self {
            CacheKind::SymCache => meta.features.debug || meta.features.symtab,
            CacheKind::Cfi => meta.features.unwind,
            CacheKind::Variables => {
                meta.features.debug
                    && matches!(meta.format.as_str(), "elf" | "macho" | "wasm" | "pdb")
            }
        }
    }

    /// How good `meta` is as this cache's source; higher is better.
    fn rank(self, meta: &DebugFileMeta) -> (u8, u8, u64) {
        match self {
            // Debug info beats a bare symbol table; native debug info (full paths, every
            // inline) beats a Breakpad text file derived from it.
            CacheKind::SymCache => (
                meta.features.debug as u8 * 2 + meta.features.symtab as u8,
                match meta.format.as_str() {
                    "elf" | "macho" | "pdb" | "portablepdb" | "wasm" | PROGUARD_FORMAT => 2,
                    "breakpad" => 1,
                    _ => 0,
                },
                meta.size,
            ),
            // Breakpad files carry whatever dump_syms found; PDBs carry x86 frame data that
            // PE unwind tables lack.
            CacheKind::Cfi => (
                1,
                match meta.format.as_str() {
                    "breakpad" => 3,
                    "pdb" => 2,
                    _ => 1,
                },
                meta.size,
            ),
            CacheKind::Variables => (1, 1, meta.size),
        }
    }
}

/// Picks the stored file a cache of `kind` should be built from.
pub fn best_source(kind: CacheKind, candidates: &[DebugFileMeta]) -> Option<&DebugFileMeta> {
    candidates
        .iter()
        .filter(|meta| kind.can_use(meta))
        .max_by_key(|meta| (kind.rank(meta), meta.sha256.clone()))
}

/// Which stored file a cache was built from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CacheSource {
    /// SHA-256 of the source file (its key under `symbols/<debug_id>/`); empty, and left out
    /// of the JSON, for a local file read in place (`faultline process --symbols`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Its format.
    pub format: String,
    /// Its name in the upload.
    pub uploaded_name: String,
    /// SHA-256 of the BCSymbolMap whose names replaced the file's hidden ones, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol_map: Option<String>,
}

/// The header of a stored cache.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CacheHeader {
    /// Which cache.
    pub kind: CacheKind,
    /// [`CacheKind::version`] at build time.
    pub version: u32,
    /// The module's debug ID.
    pub debug_id: String,
    /// The file it was built from; `None` when no stored file could contribute (an empty
    /// cache, rebuilt as soon as a useful file is uploaded).
    pub source: Option<CacheSource>,
    /// Build time, seconds since the Unix epoch.
    pub built_at: u64,
}

impl CacheHeader {
    /// The header of a cache of `kind` for a module, built now, from no source yet.
    pub fn new(kind: CacheKind, debug_id: &symbolic::common::DebugId) -> CacheHeader {
        CacheHeader {
            kind,
            version: kind.version(),
            debug_id: debug_id.to_string(),
            source: None,
            built_at: crate::clock::now_unsigned(),
        }
    }
}

/// A cache as stored: header plus payload (SymCache bytes, or Breakpad STACK text for CFI).
#[derive(Debug, Clone)]
pub struct DerivedCache {
    /// What it is and where it came from.
    pub header: CacheHeader,
    /// The cache itself; empty when `header.source` is `None`.
    pub payload: Bytes,
}

const MAGIC: &[u8; 8] = b"FLCACHE\0";

impl DerivedCache {
    /// Serializes as `MAGIC | u32 LE header length | header JSON | payload`.
    pub fn encode(&self) -> Bytes {
        let header = serde_json::to_vec(&self.header).expect("cache headers serialize");
        let mut out = Vec::with_capacity(12 + header.len() + self.payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.payload);
        Bytes::from(out)
    }

    /// Parses what [`encode`](Self::encode) wrote.
    pub fn decode(bytes: Bytes) -> Result<DerivedCache, String> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err("not a faultline cache (bad magic)".to_owned());
        }
        let len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        let header_end = 12usize
            .checked_add(len)
            .filter(|end| *end <= bytes.len())
            .ok_or("truncated cache header")?;
        let header: CacheHeader = serde_json::from_slice(&bytes[12..header_end])
            .map_err(|e| format!("bad cache header: {e}"))?;
        Ok(DerivedCache {
            header,
            payload: bytes.slice(header_end..),
        })
    }
}

/// Builds the payload of a `kind` cache from a parsed debug file (CPU-bound: run it on rayon).
pub fn build_payload(kind: CacheKind, object: &Object<'_>) -> Result<Vec<u8>, String> {
    match kind {
        // A portable PDB's methods have no addresses, only IL offsets.
        CacheKind::SymCache if matches!(object, Object::PortablePdb(_)) => dotnet_payload(object),
        CacheKind::SymCache => native_symcache(object, None),
        CacheKind::Cfi => {
            let cfi = CfiCache::from_object(object)
                .map_err(|e| format!("could not read unwind info: {e}"))?;
            Ok(cfi.as_slice().to_vec())
        }
        CacheKind::Variables => {
            let table = crate::variables::table_of(object)
                .map_err(|e| format!("could not read variables: {e}"))?;
            Ok(table.encode())
        }
    }
}

/// The functions cache of a bitcode build's Mach-O debug file with its hidden names
/// (`__hidden#N_`, functions and files alike) replaced by the BCSymbolMap's (CPU-bound).
pub fn symcache_with_symbol_map(bytes: &[u8], symbol_map: &[u8]) -> Result<Vec<u8>, String> {
    let object = Object::parse(bytes).map_err(|e| e.to_string())?;
    let map = BcSymbolMap::parse(symbol_map).map_err(|e| format!("BCSymbolMap: {e}"))?;
    native_symcache(&object, Some(map))
}

/// A native object's SymCache, its hidden names replaced by `map`'s when there is one.
fn native_symcache(object: &Object<'_>, map: Option<BcSymbolMap<'_>>) -> Result<Vec<u8>, String> {
    let mut converter = SymCacheConverter::new();
    if let Some(map) = map {
        converter.add_transformer(map);
    }
    converter
        .process_object(object)
        .map_err(|e| format!("could not read functions and lines: {e}"))?;
    let mut out = Vec::new();
    converter
        .serialize(&mut std::io::Cursor::new(&mut out))
        .map_err(|e| format!("could not write SymCache: {e}"))?;
    Ok(out)
}

/// What a module's functions cache (the `SymCache` kind) holds, by the format of the file it
/// was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionsFormat {
    /// Native code: addresses to functions, lines and inlines.
    SymCache,
    /// A .NET assembly: method + IL offset to file and line.
    PortablePdb,
    /// Java / Kotlin obfuscated by ProGuard or R8: names and lines to the originals.
    Proguard,
}

impl FunctionsFormat {
    /// The functions cache built from a file of `format` (`DebugFileMeta::format`).
    pub fn of(format: &str) -> FunctionsFormat {
        match format {
            "portablepdb" => FunctionsFormat::PortablePdb,
            PROGUARD_FORMAT => FunctionsFormat::Proguard,
            _ => FunctionsFormat::SymCache,
        }
    }
}

/// Builds the payload of a `kind` cache from a stored file's bytes, `format` as identified
/// (CPU-bound). A ProGuard mapping is text, not an object file: its functions cache is a
/// ProguardCache, and it has no other.
pub fn build_payload_from(kind: CacheKind, format: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    if format == PROGUARD_FORMAT {
        return match kind {
            CacheKind::SymCache => proguard_payload(bytes),
            CacheKind::Cfi | CacheKind::Variables => Ok(Vec::new()),
        };
    }
    let object = Object::parse(bytes).map_err(|e| e.to_string())?;
    build_payload(kind, &object)
}

/// A ProGuard mapping as a ProguardCache.
fn proguard_payload(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mapping = proguard::ProguardMapping::new(bytes);
    let mut out = Vec::new();
    proguard::ProguardCache::write(&mapping, &mut out)
        .map_err(|e| format!("could not write the ProguardCache: {e}"))?;
    Ok(out)
}

/// A portable PDB's sequence points as a PortablePdbCache.
fn dotnet_payload(object: &Object<'_>) -> Result<Vec<u8>, String> {
    let Object::PortablePdb(pdb) = object else {
        return Err("not a portable PDB".to_owned());
    };
    let mut converter = PortablePdbCacheConverter::new();
    converter
        .process_portable_pdb(pdb.portable_pdb())
        .map_err(|e| format!("could not read the portable PDB's sequence points: {e}"))?;
    let mut out = Vec::new();
    converter
        .serialize(&mut out)
        .map_err(|e| format!("could not write the PortablePdbCache: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::identify::DebugFeatures;

    fn meta(format: &str, debug: bool, symtab: bool, unwind: bool, size: u64) -> DebugFileMeta {
        DebugFileMeta {
            debug_id: "c0bcc3f1-9827-fe65-3058-404b2831d9e6".into(),
            code_id: None,
            format: format.into(),
            role: "dbg".into(),
            arch: "x86_64".into(),
            debug_file: None,
            code_file: None,
            features: DebugFeatures {
                symtab,
                debug,
                unwind,
                sources: false,
            },
            sha256: format!("{format}{size}"),
            size,
            uploaded_name: format.into(),
            uploaded_at: 0,
            origin: None,
        }
    }

    #[test]
    fn stripped_binary_gives_cfi_and_debug_file_gives_symbols() {
        let stripped = meta("elf", false, true, true, 10);
        let debug = meta("elf", true, true, false, 100);
        let files = [stripped.clone(), debug.clone()];
        assert_eq!(best_source(CacheKind::SymCache, &files), Some(&debug));
        assert_eq!(best_source(CacheKind::Cfi, &files), Some(&stripped));
        assert_eq!(best_source(CacheKind::Cfi, &[debug]), None);
    }

    #[test]
    fn native_debug_info_beats_breakpad_for_symbols_and_not_for_cfi() {
        let sym = meta("breakpad", true, true, true, 1000);
        let pdb = meta("pdb", true, true, true, 10);
        let files = [sym.clone(), pdb.clone()];
        assert_eq!(best_source(CacheKind::SymCache, &files), Some(&pdb));
        assert_eq!(best_source(CacheKind::Cfi, &files), Some(&sym));
    }

    #[test]
    fn encoded_caches_round_trip_and_garbage_is_refused() {
        let cache = DerivedCache {
            header: CacheHeader {
                kind: CacheKind::Cfi,
                version: CacheKind::Cfi.version(),
                debug_id: "x".into(),
                source: None,
                built_at: 7,
            },
            payload: Bytes::from_static(b"STACK CFI INIT 1 2 .cfa: $rsp 8 +\n"),
        };
        let back = DerivedCache::decode(cache.encode()).unwrap();
        assert_eq!(back.header, cache.header);
        assert_eq!(back.payload, cache.payload);
        assert!(DerivedCache::decode(Bytes::from_static(b"garbage garbage")).is_err());
        let mut truncated = cache.encode().to_vec();
        truncated.truncate(20);
        assert!(DerivedCache::decode(Bytes::from(truncated)).is_err());
    }
}
