//! `[symbols]`: the upstream symbol sources faultline asks for debug files nobody uploaded
//! (`[[symbols.sources]]`, tried in order per module). `src/upstream/` turns these settings into
//! working sources; presets (`id = "microsoft"`) are filled in there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[symbols]`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SymbolsConfig {
    /// The upstream sources, in the order they are asked. None by default: the embedded
    /// configuration never leaves the machine.
    pub sources: Vec<SourceConfig>,
}

/// How a source is reached.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// An HTTP(S) symbol server (`url`).
    Http,
    /// An S3 bucket (`bucket`, `prefix`, `region`, `endpoint`, credentials).
    S3,
    /// A debuginfod server (`url`, the part before `/buildid/`).
    Debuginfod,
    /// A folder on this machine (`url` is its path).
    Filesystem,
}

/// How files are arranged on a source.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SourceLayout {
    /// Breakpad's `name/ID/name.sym`, with symstore paths for PE/PDB, GDB build-ID paths
    /// (`ab/cdef….debug`) for ELF and LLDB UUID paths for Mach-O.
    Native,
    /// Microsoft's symbol server: `name/ID/name`, with CAB-compressed `name/ID/name.pd_` and
    /// `file.ptr` redirections.
    Symstore,
    /// `symstore` under two-letter prefix folders (`ke/kernel32.pdb/ID/kernel32.pdb`).
    SymstoreIndex2,
    /// The Simple Symbol Query Protocol: `symstore` in lowercase.
    Ssqp,
    /// Sentry's unified layout: `xx/yyyy…/debuginfo` (or `executable`, `breakpad`…).
    Unified,
    /// debuginfod's `buildid/{build ID}/debuginfo` and `/executable`.
    Debuginfod,
}

impl SourceLayout {
    /// The name configuration uses (`symstore_index2`).
    pub fn name(self) -> &'static str {
        match self {
            SourceLayout::Native => "native",
            SourceLayout::Symstore => "symstore",
            SourceLayout::SymstoreIndex2 => "symstore_index2",
            SourceLayout::Ssqp => "ssqp",
            SourceLayout::Unified => "unified",
            SourceLayout::Debuginfod => "debuginfod",
        }
    }
}

/// The kinds of file a source may be asked for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum SourceFileType {
    /// Windows executables and DLLs (their unwind tables).
    Pe,
    /// Windows program databases.
    Pdb,
    /// .NET portable PDBs.
    Portablepdb,
    /// ELF files with debug information (`.debug`, debuginfod's `debuginfo`).
    ElfDebug,
    /// ELF executables and shared libraries (debuginfod's `executable`).
    ElfCode,
    /// Mach-O debug companions (the DWARF file of a dSYM).
    MachoDebug,
    /// Mach-O executables and dylibs.
    MachoCode,
    /// Breakpad `.sym` files.
    Breakpad,
    /// Source bundles (`.src.zip`).
    Sourcebundle,
}

impl SourceFileType {
    /// Every file type, in the order a module's files are asked for: debug files first
    /// (functions and lines), then Breakpad, then executables (unwind tables), then sources.
    pub const ALL: [SourceFileType; 9] = [
        SourceFileType::Pdb,
        SourceFileType::Portablepdb,
        SourceFileType::ElfDebug,
        SourceFileType::MachoDebug,
        SourceFileType::Breakpad,
        SourceFileType::Pe,
        SourceFileType::ElfCode,
        SourceFileType::MachoCode,
        SourceFileType::Sourcebundle,
    ];

    /// The name configuration and candidates use (`elf_debug`).
    pub fn name(self) -> &'static str {
        match self {
            SourceFileType::Pe => "pe",
            SourceFileType::Pdb => "pdb",
            SourceFileType::Portablepdb => "portablepdb",
            SourceFileType::ElfDebug => "elf_debug",
            SourceFileType::ElfCode => "elf_code",
            SourceFileType::MachoDebug => "macho_debug",
            SourceFileType::MachoCode => "macho_code",
            SourceFileType::Breakpad => "breakpad",
            SourceFileType::Sourcebundle => "sourcebundle",
        }
    }
}

/// Time limits for one download, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SourceTimeouts {
    /// Establishing the connection.
    pub connect_ms: u64,
    /// From the request to the answer's headers.
    pub first_byte_ms: u64,
    /// The whole download.
    pub total_ms: u64,
}

impl Default for SourceTimeouts {
    fn default() -> Self {
        SourceTimeouts {
            connect_ms: 5_000,
            first_byte_ms: 20_000,
            total_ms: 300_000,
        }
    }
}

/// One `[[symbols.sources]]` entry. Naming a preset (`id = "microsoft"` alone, or
/// `preset = "microsoft"` with another `id`) fills in what is not written out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// Names the source in candidates, health and metrics.
    pub id: String,
    /// A built-in source to start from (`microsoft`, `mozilla`, `nvidia`, `intel`, `amd`,
    /// `electron`, `chromium`, `unity`, `ubuntu-debuginfod`, `fedora-debuginfod`,
    /// `debian-debuginfod`); defaults to `id` when `type` is not set.
    pub preset: Option<String>,
    /// `http`, `s3`, `debuginfod` or `filesystem`.
    #[serde(rename = "type")]
    pub kind: Option<SourceKind>,
    /// Base URL (`http`, `debuginfod`) or folder (`filesystem`).
    pub url: Option<String>,
    /// How files are arranged (`http`, `s3`, `filesystem`).
    pub layout: Option<SourceLayout>,
    /// Which kinds of file to ask for; every kind when absent.
    pub filetypes: Option<Vec<SourceFileType>>,
    /// Only ask for modules whose debug or code file name matches one of these globs
    /// (case-insensitive, `*` and `?`); every module when absent.
    pub path_patterns: Option<Vec<String>>,
    /// Extra request headers (authorization); never logged.
    pub headers: BTreeMap<String, String>,
    /// Connect, first-byte and total time limits.
    pub timeouts: SourceTimeouts,
    /// Largest file downloaded (compressed or not); a larger answer is refused.
    pub max_download_bytes: u64,
    /// After three failures in a row the source is skipped for this many seconds (doubling
    /// while it keeps failing, up to 16 times as long), so a dead server slows no crash.
    pub unhealthy_secs: u64,
    /// Whether the symbol-server routes (`/symbols/…`, `/buildid/…`) may fetch from it when a
    /// file is not stored, making faultline a caching proxy for debuggers.
    pub serve: bool,
    /// How long "not found" is remembered per module, seconds.
    pub not_found_ttl_secs: u64,
    /// How long a server error or timeout is remembered per module, seconds.
    pub error_ttl_secs: u64,
    /// Most downloads from this source at once.
    pub max_concurrent_downloads: usize,
    /// S3: the bucket.
    pub bucket: String,
    /// S3: the prefix every key starts with.
    pub prefix: String,
    /// S3: the region (`us-east-1` when empty).
    pub region: String,
    /// S3: endpoint URL for a self-hosted server; empty means AWS.
    pub endpoint: String,
    /// S3: access key; empty means the AWS environment's.
    pub access_key: String,
    /// S3: secret key.
    pub secret_key: String,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            id: String::new(),
            preset: None,
            kind: None,
            url: None,
            layout: None,
            filetypes: None,
            path_patterns: None,
            headers: BTreeMap::new(),
            timeouts: SourceTimeouts::default(),
            max_download_bytes: 2 << 30,
            unhealthy_secs: 60,
            serve: true,
            not_found_ttl_secs: 24 * 3600,
            error_ttl_secs: 600,
            max_concurrent_downloads: 16,
            bucket: String::new(),
            prefix: String::new(),
            region: String::new(),
            endpoint: String::new(),
            access_key: String::new(),
            secret_key: String::new(),
        }
    }
}
