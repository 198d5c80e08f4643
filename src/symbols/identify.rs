//! Identifying an uploaded file: which debug file format it is, which module (debug ID, code ID,
//! names, architecture) it describes, and what it can contribute to a stack trace (symbol
//! table, debug info with lines and inlines, unwind info, embedded sources).
//!
//! A universal (fat) Mach-O holds one object per architecture; each becomes its own
//! [`IdentifiedObject`], stored separately, because crashes name one architecture's debug ID.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use symbolic::common::DebugId;
use symbolic::debuginfo::macho::{BcSymbolMap, UuidMapping};
use symbolic::debuginfo::{Archive, FileFormat, Object, ObjectKind};

/// What a debug file can contribute to a stack trace.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DebugFeatures {
    /// A symbol table: function names and start addresses, no lines.
    pub symtab: bool,
    /// Debug info: functions with sizes, file/line records, and usually inlines.
    pub debug: bool,
    /// Unwind info (CFI): lets the stack walker step through frames without frame pointers.
    pub unwind: bool,
    /// Embedded source code.
    pub sources: bool,
}

impl DebugFeatures {
    /// The feature names as symbolicator lists them (`symtab`, `debug`, `unwind`, `sources`).
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.symtab, "symtab"),
            (self.debug, "debug"),
            (self.unwind, "unwind"),
            (self.sources, "sources"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// Everything known about one stored debug file; written beside it as `<sha256>.meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DebugFileMeta {
    /// The module's debug ID, lowercase hyphenated with age (`c0bcc3f1-…-0`).
    pub debug_id: String,
    /// The module's code ID (PE timestamp+size, ELF build ID, Mach-O UUID), lowercase hex.
    pub code_id: Option<String>,
    /// Container format: `elf`, `macho`, `pe`, `pdb`, `portablepdb`, `breakpad`, `wasm`,
    /// `sourcebundle`, `proguard`, `il2cpp`.
    pub format: String,
    /// The file's role for its module: `exe`, `lib`, `dbg` (a separate debug companion),
    /// `src` (sources), `rel` (object file), `other`.
    pub role: String,
    /// CPU architecture (`x86_64`, `x86`, `arm64`, …).
    pub arch: String,
    /// The debug file name crash reports carry for this module (`crash.pdb`, `libfoo.so`).
    pub debug_file: Option<String>,
    /// The code file name (`crash.exe`), when the file tells it.
    pub code_file: Option<String>,
    /// What the file contributes to stack traces.
    pub features: DebugFeatures,
    /// SHA-256 of the original bytes (of this architecture's slice for universal Mach-O).
    pub sha256: String,
    /// Size of the original bytes.
    pub size: u64,
    /// The path the file had in the upload (`xpcshell.dbg/A7D6…/xpcshell.sym`).
    pub uploaded_name: String,
    /// Upload time, seconds since the Unix epoch.
    pub uploaded_at: u64,
    /// The upstream source it was fetched from (its ID); absent for uploaded files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// One module's debug file found in an uploaded file: its identity and where its bytes are.
#[derive(Debug, Clone)]
pub struct IdentifiedObject {
    /// Identity and features; `sha256`, `size` and `uploaded_at` are filled in when stored.
    pub meta: DebugFileMeta,
    /// The object's bytes within the uploaded file (the whole file unless it is universal).
    pub range: Range<usize>,
}

/// The name a file sent without one (a raw body without `?name=`) is received under.
pub const UNNAMED_UPLOAD: &str = "upload";

/// The name a debug file carries itself: an ELF file's `SONAME`, a Mach-O dylib's install
/// name (its base name). PE and PDB files name only each other, not themselves.
fn own_name<'a>(object: &'a Object<'_>) -> Option<&'a str> {
    let name = match object {
        Object::Elf(elf) => elf.name(),
        Object::MachO(macho) => macho.name(),
        _ => None,
    }?;
    Some(base_name(name)).filter(|n| !n.is_empty())
}

/// Why an uploaded file was not accepted as a debug file.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Rejection {
    /// Not any format faultline reads.
    #[error("not a debug file: no ELF, Mach-O, PE, PDB, Portable PDB, Breakpad, WASM or source bundle header found")]
    NotDebugFile,
    /// The header is right but the rest could not be read.
    #[error("corrupt or truncated {format} file: {detail}")]
    Corrupt {
        /// The format its header claims.
        format: String,
        /// What the parser said.
        detail: String,
    },
    /// A BCSymbolMap or a dSYM's UUID mapping says which module it belongs to only in its name.
    #[error("a {what} belongs to the module its file name names: name it {expected} (sentry-cli and Xcode do)")]
    UnnamedMapping {
        /// What was sent.
        what: &'static str,
        /// The name it needs.
        expected: &'static str,
    },
    /// The file does not say which module it belongs to, so no crash could ever find it.
    #[error("{format} file has no debug ID, so no crash can ever match it (Breakpad files need their MODULE line; binaries need a build ID, LC_UUID or CodeView record)")]
    NoDebugId {
        /// Its format.
        format: String,
    },
}

/// The final component of a path written with either separator (PDB paths are Windows paths).
pub fn base_name(path: &str) -> &str {
    // Bytes, not chars: a separator is ASCII, and walking back through UTF-8 one char at a time
    // was 1.5 % of a server's time (every frame and module of every processed crash names one).
    match path.bytes().rposition(|b| b == b'/' || b == b'\\') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Identifies every debug object in `data`, which was uploaded as `name`.
pub fn identify(data: &[u8], name: &str) -> Result<Vec<IdentifiedObject>, Rejection> {
    let format = Archive::peek(data);
    if format == FileFormat::Unknown {
        if BcSymbolMap::test(data) {
            return symbol_map(data, name).map(|map| vec![map]);
        }
        if is_uuid_mapping(data) {
            return uuid_mapping(data, name);
        }
        if let Some(mapping) = proguard_mapping(data, name) {
            return Ok(vec![mapping]);
        }
        if let Some(mapping) = il2cpp_mapping(data, name) {
            return Ok(vec![mapping]);
        }
        // Breakpad records without the MODULE line that names their module.
        if [&b"STACK "[..], b"FUNC ", b"PUBLIC ", b"FILE ", b"INFO "]
            .iter()
            .any(|record| data.starts_with(record))
        {
            return Err(Rejection::NoDebugId {
                format: "breakpad".to_owned(),
            });
        }
        return Err(Rejection::NotDebugFile);
    }
    let corrupt = |detail: String| Rejection::Corrupt {
        format: format.name().to_owned(),
        detail,
    };
    let archive = Archive::parse(data).map_err(|e| corrupt(e.to_string()))?;
    let mut found = Vec::new();
    for object in archive.objects() {
        let object = object.map_err(|e| corrupt(e.to_string()))?;
        found.push(identify_object(&object, data, name)?);
    }
    if found.is_empty() {
        return Err(corrupt("the archive holds no objects".to_owned()));
    }
    Ok(found)
}

/// A ProGuard / R8 mapping file (Android's obfuscation map): its module is the UUID sentry-cli
/// computes from its bytes (`upload-proguard`, and the `uuid` of an event's `proguard` image).
/// It has "debug info" when its methods carry line ranges, a "symbol table" (class and method
/// names) always.
fn proguard_mapping(data: &[u8], name: &str) -> Option<IdentifiedObject> {
    let mapping = proguard::ProguardMapping::new(data);
    if !mapping.is_valid() {
        return None;
    }
    let features = DebugFeatures {
        symtab: true,
        debug: mapping.has_line_info(),
        unwind: false,
        sources: false,
    };
    let debug_id = symbolic::common::DebugId::from_uuid(mapping.uuid());
    Some(mapping_file(
        data,
        name,
        "proguard.txt",
        debug_id,
        PROGUARD_FORMAT,
        features,
    ))
}

/// A mapping file (ProGuard, IL2CPP) as a debug file of module `debug_id`: no code file, no
/// architecture; named `unnamed` when it was sent without a name.
fn mapping_file(
    data: &[u8],
    name: &str,
    unnamed: &str,
    debug_id: DebugId,
    format: &str,
    features: DebugFeatures,
) -> IdentifiedObject {
    let uploaded = match base_name(name) {
        UNNAMED_UPLOAD => unnamed,
        given => given,
    };
    IdentifiedObject {
        meta: DebugFileMeta {
            debug_id: debug_id.to_string(),
            code_id: None,
            format: format.to_owned(),
            role: "dbg".to_owned(),
            arch: "unknown".to_owned(),
            debug_file: Some(uploaded.to_owned()),
            code_file: None,
            features,
            sha256: String::new(),
            size: data.len() as u64,
            uploaded_name: uploaded.to_owned(),
            uploaded_at: 0,
            origin: None,
        },
        range: 0..data.len(),
    }
}

/// A Unity IL2CPP line mapping (`sentry-cli debug-files upload --il2cpp-mapping`): JSON of
/// generated C++ file => C# file => C++ line => C# line, with the native debug file's ID under
/// `"__debug-id__"`. It belongs to that module and contributes no symbols of its own: it
/// rewrites the lines the module's symbols give (`process::modules`).
fn il2cpp_mapping(data: &[u8], name: &str) -> Option<IdentifiedObject> {
    // Only a JSON object naming its module is parsed (any other JSON upload is not read whole).
    if !data.trim_ascii_start().starts_with(b"{")
        || memchr::memmem::find(data, b"\"__debug-id__\"").is_none()
    {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(data).ok()?;
    let ids = json.get("__debug-id__")?.as_object()?;
    let debug_id: symbolic::common::DebugId = ids.keys().next()?.parse().ok()?;
    if debug_id.is_nil() {
        return None;
    }
    let features = DebugFeatures::default();
    Some(mapping_file(
        data,
        name,
        "il2cpp.json",
        debug_id,
        IL2CPP_FORMAT,
        features,
    ))
}

/// The format name of a BCSymbolMap: the real names behind a bitcode build's `__hidden#N_`.
pub const BCSYMBOLMAP_FORMAT: &str = "bcsymbolmap";

/// The format name of a dSYM's UUID mapping (`Contents/Resources/<dSYM UUID>.plist`).
pub const UUIDMAP_FORMAT: &str = "uuidmap";

/// The UUID a file's name carries (`…/<UUID><extension>`), as a debug ID.
pub fn uuid_in_name(name: &str, extension: &str) -> Option<DebugId> {
    let stem = base_name(name).strip_suffix(extension)?;
    // A UUID: 32 hex digits, hyphenated or not (a debug ID's age would not belong here).
    let digits = stem.chars().filter(|c| *c != '-').count();
    (digits == 32).then(|| stem.parse().ok()).flatten()
}

/// A BCSymbolMap (`<UUID>.bcsymbolmap`, Xcode's `BCSymbolMaps/` folder): the names a bitcode
/// build hid, in the order of their `__hidden#N_`. It belongs to the build its name names and
/// contributes no symbols of its own: it un-hides the names of that build's dSYM when its
/// functions cache is built (`symbols::caches`).
fn symbol_map(data: &[u8], name: &str) -> Result<IdentifiedObject, Rejection> {
    let debug_id = uuid_in_name(name, ".bcsymbolmap").ok_or(Rejection::UnnamedMapping {
        what: "BCSymbolMap",
        expected: "<UUID>.bcsymbolmap",
    })?;
    BcSymbolMap::parse(data).map_err(|e| Rejection::Corrupt {
        format: BCSYMBOLMAP_FORMAT.to_owned(),
        detail: e.to_string(),
    })?;
    Ok(mapping_file(
        data,
        name,
        "symbols.bcsymbolmap",
        debug_id,
        BCSYMBOLMAP_FORMAT,
        DebugFeatures::default(),
    ))
}

/// The largest dSYM UUID mapping read (Xcode's are under 1 KiB; a larger plist is not one).
pub const MAX_UUID_MAPPING: usize = 64 * 1024;

/// Whether `data` is a property list with a `DBGOriginalUUID`: a dSYM's UUID mapping.
fn is_uuid_mapping(data: &[u8]) -> bool {
    let head = &data[..data.len().min(512)];
    data.len() <= MAX_UUID_MAPPING
        && memchr::memmem::find(head, b"<plist").is_some()
        && memchr::memmem::find(data, b"<key>DBGOriginalUUID</key>").is_some()
}

/// A dSYM's UUID mapping (`<dSYM UUID>.plist`): App Store builds recompiled from bitcode get
/// a new UUID, and this plist names the original build's, whose BCSymbolMap holds the hidden
/// names. Stored under both UUIDs: under the dSYM's to find the map, under the original
/// build's so a map arriving later can name the dSYMs it un-hides.
fn uuid_mapping(data: &[u8], name: &str) -> Result<Vec<IdentifiedObject>, Rejection> {
    let dsym = uuid_in_name(name, ".plist").ok_or(Rejection::UnnamedMapping {
        what: "dSYM UUID mapping (a plist with DBGOriginalUUID)",
        expected: "<dSYM UUID>.plist",
    })?;
    let mapping = UuidMapping::parse_plist(dsym, data).map_err(|e| Rejection::Corrupt {
        format: UUIDMAP_FORMAT.to_owned(),
        detail: e.to_string(),
    })?;
    let mut found = vec![mapping_file(
        data,
        name,
        "uuidmap.plist",
        dsym,
        UUIDMAP_FORMAT,
        DebugFeatures::default(),
    )];
    if mapping.original_uuid() != dsym {
        found.push(mapping_file(
            data,
            name,
            "uuidmap.plist",
            mapping.original_uuid(),
            UUIDMAP_FORMAT,
            DebugFeatures::default(),
        ));
    }
    Ok(found)
}

/// How the missing-symbols report names a module's missing IL2CPP line mapping.
pub const IL2CPP_MAPPING: &str =
    "IL2CPP line mapping (sentry-cli debug-files upload --il2cpp-mapping)";

/// The format name of an IL2CPP line mapping.
pub const IL2CPP_FORMAT: &str = "il2cpp";

/// The format name of a ProGuard mapping file.
pub const PROGUARD_FORMAT: &str = "proguard";

/// What a Breakpad `.sym` file holds, from its record keywords: `PUBLIC` (symbol table),
/// `FUNC` (debug info), `STACK` (unwind info). symbolic answers the same questions by reading
/// records line by line up to the first of each kind, which crosses nearly the whole file for
/// `PUBLIC` and `STACK` (they come last): 5 ms of a 4 MiB file, on every `faultline process
/// --symbols`. A byte search finds the same lines (a record starts a line; the first line is
/// `MODULE`).
fn breakpad_features(data: &[u8]) -> DebugFeatures {
    let has = |record: &[u8]| memchr::memmem::find(data, record).is_some();
    DebugFeatures {
        symtab: has(b"\nPUBLIC "),
        debug: has(b"\nFUNC "),
        unwind: has(b"\nSTACK "),
        sources: false,
    }
}

fn identify_object(
    object: &Object<'_>,
    whole: &[u8],
    name: &str,
) -> Result<IdentifiedObject, Rejection> {
    let format = object.file_format().name().to_owned();
    if object.is_malformed() {
        return Err(Rejection::Corrupt {
            format,
            detail: "its sections or debug info are malformed".to_owned(),
        });
    }
    let debug_id = object.debug_id();
    if debug_id.is_nil() {
        return Err(Rejection::NoDebugId { format });
    }
    let uploaded = match base_name(name) {
        // Sent without a name: the name the file carries, where it carries one.
        UNNAMED_UPLOAD => own_name(object).unwrap_or(UNNAMED_UPLOAD),
        given => given,
    };
    let (debug_file, code_file) = match object {
        Object::Breakpad(sym) => {
            let code_file = sym
                .info_records()
                .flatten()
                .find_map(|record| match record {
                    symbolic::debuginfo::breakpad::BreakpadInfoRecord::CodeId {
                        code_file, ..
                    } if !code_file.is_empty() => Some(code_file.to_owned()),
                    _ => None,
                });
            (Some(sym.name().to_owned()), code_file)
        }
        Object::Pe(pe) => (
            pe.debug_file_name().map(|p| base_name(&p).to_owned()),
            Some(uploaded.to_owned()),
        ),
        Object::Pdb(_) | Object::PortablePdb(_) => (Some(uploaded.to_owned()), None),
        // A separate ELF debug file (`libfoo.so.debug`) describes the code file `libfoo.so`.
        Object::Elf(_) if object.kind() == ObjectKind::Debug => (
            Some(uploaded.to_owned()),
            Some(
                uploaded
                    .strip_suffix(".debug")
                    .unwrap_or(uploaded)
                    .to_owned(),
            ),
        ),
        _ => (Some(uploaded.to_owned()), Some(uploaded.to_owned())),
    };
    let data = object.data();
    let start = data.as_ptr() as usize - whole.as_ptr() as usize;
    Ok(IdentifiedObject {
        meta: DebugFileMeta {
            debug_id: debug_id.to_string(),
            code_id: object.code_id().map(|c| c.as_str().to_lowercase()),
            format,
            role: object.kind().name().to_owned(),
            arch: object.arch().name().to_owned(),
            debug_file: debug_file.filter(|n| !n.is_empty()),
            code_file: code_file.filter(|n| !n.is_empty()),
            features: match object {
                Object::Breakpad(_) => breakpad_features(data),
                _ => DebugFeatures {
                    symtab: object.has_symbols(),
                    debug: object.has_debug_info(),
                    unwind: object.has_unwind_info(),
                    sources: object.has_sources(),
                },
            },
            sha256: String::new(),
            size: data.len() as u64,
            uploaded_name: name.to_owned(),
            uploaded_at: 0,
            origin: None,
        },
        range: start..start + data.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::base_name;

    #[test]
    fn a_base_name_is_what_follows_the_last_separator_of_either_kind() {
        assert_eq!(base_name("/usr/lib/libc.so.6"), "libc.so.6");
        assert_eq!(base_name("C:\\build\\app\\app.pdb"), "app.pdb");
        assert_eq!(base_name("D:\\mixed/dirs\\ünïcode/名前.pdb"), "名前.pdb");
        assert_eq!(base_name("crash.sym"), "crash.sym");
        assert_eq!(base_name("dir/"), "");
        assert_eq!(base_name(""), "");
    }
}
