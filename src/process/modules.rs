//! A module's symbols, ready for the stack walker: the parsed SymCache and CFI of one debug ID,
//! loaded from the symbol store once and shared by every dump and worker through a moka cache
//! bounded by bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minidump_unwind::symbols::SymbolFile;
use proguard::ProguardCache;
use serde::Serialize;
use symbolic::common::{ByteView, DebugId, SelfCell};
use symbolic::ppdb::PortablePdbCache;
use symbolic::symcache::SymCache;
use symbolic_il2cpp::LineMapping;

use super::breakpad;
use super::location::{demangled, GeneratedLine, InlineLocation, SourceLocation};
use super::source::SymbolSource;
use super::variables::VariableTables;
use crate::cpu;
use crate::symbols::derive::{CacheKind, CacheSource, DerivedCache, FunctionsFormat};
use crate::symbols::identify::{DebugFileMeta, IL2CPP_FORMAT};
use crate::symbols::local::LocalSymbols;
use crate::symbols::{SymbolError, SymbolStore};
use crate::upstream::{Candidate, ModuleRef, Purpose, Upstream};

/// A module's functions, lines and inlines, ready for lookups.
pub struct FunctionsEntry {
    table: FunctionTable,
    /// The file it was built from.
    pub source: CacheSource,
    /// The module's IL2CPP line mapping, when one is stored with it (Unity games: generated
    /// C++ lines to the C# they came from).
    il2cpp: Option<Arc<LineMapping>>,
    /// A lookup answered a line of IL2CPP's output (a file under `il2cppOutput/`) and no line
    /// mapping is stored: its frames name C++, not C#. Noticed as lines are resolved (no scan
    /// of the module's files when it loads).
    names_il2cpp_output: std::sync::atomic::AtomicBool,
    /// Lookups already answered, by offset: the crashes of a spike repeat the same addresses,
    /// and demangling and joining paths cost more than the table lookup itself.
    memo: Mutex<LookupMemo>,
}

/// Where a module's function, line and inline records are read from.
enum FunctionTable {
    /// A parsed SymCache that owns its bytes (stored, or built from a local native file).
    SymCache(SelfCell<ByteView<'static>, SymCache<'static>>),
    /// A Breakpad text file parsed whole, shared with the module's unwind rules
    /// (`faultline process --symbols` with a `.sym`, see `symbols::local`).
    Breakpad(Arc<SymbolFile>, usize),
    /// A .NET assembly's sequence points (from its portable PDB): looked up by method and IL
    /// offset, never by address.
    DotNet(SelfCell<ByteView<'static>, PortablePdbCache<'static>>),
    /// A ProGuard / R8 mapping's cache bytes (checked when loaded; the cache is a view over
    /// them, parsed again per use, which only reads its header): Java and Kotlin names and
    /// lines, never addresses.
    Jvm(ByteView<'static>),
}

/// Where a .NET frame's IL offset is in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IlLocation {
    /// The source file, as the PDB names it.
    pub file: String,
    /// Its line.
    pub line: u32,
    /// The source language (`csharp`, `fsharp`, `vb`), when the PDB names it.
    pub lang: Option<&'static str>,
}

/// Memoized lookups of one module, at most [`MEMO_BYTES`] (then it starts over).
#[derive(Default)]
struct LookupMemo {
    locations: HashMap<u64, Option<Arc<SourceLocation>>>,
    bytes: usize,
}

/// Memory for one module's memoized lookups (counted in its cache weight). Enough for the
/// ~500 distinct C++ locations (long names, paths, inlines) of an Apple crash report's ten
/// threads: at 256 KiB the memo started over within every such report and each frame was
/// demangled again (4.5 ms against 1.3 ms, `cargo bench --bench process -- apple-report`).
const MEMO_BYTES: usize = 512 * 1024;

impl FunctionsEntry {
    /// Whether an IL2CPP line mapping moves this module's generated C++ lines to C#.
    pub fn maps_generated_code(&self) -> bool {
        self.il2cpp.is_some()
    }

    /// The source location of `offset` (an address minus the module's load address), or
    /// `None` when no function covers it.
    pub fn lookup(&self, offset: u64) -> Option<Arc<SourceLocation>> {
        if let Some(known) = self.memo().locations.get(&offset) {
            return known.clone();
        }
        let location = self
            .resolve(offset)
            .map(|l| Arc::new(self.mapped_to_source(l)));
        let size = 48 + location.as_deref().map_or(0, SourceLocation::heap_bytes);
        let mut memo = self.memo();
        if memo.bytes + size > MEMO_BYTES {
            memo.locations.clear();
            memo.bytes = 0;
        }
        memo.locations.insert(offset, location.clone());
        memo.bytes += size;
        location
    }

    /// Where IL offset `il_offset` of method `method` (its row in the assembly's `MethodDef`
    /// table: a metadata token `0x06xxxxxx` or the row alone) is in the source; `None` for a
    /// native module or a method without sequence points there.
    pub fn lookup_il(&self, method: u64, il_offset: u64) -> Option<IlLocation> {
        let FunctionTable::DotNet(cell) = &self.table else {
            return None;
        };
        // A full token names its table in the top byte; 0x06 is MethodDef.
        let row = match method >> 24 {
            0 | 0x06 => (method & 0x00ff_ffff) as u32,
            _ => return None,
        };
        let found = cell.get().lookup(row, u32::try_from(il_offset).ok()?)?;
        Some(IlLocation {
            file: found.file_name.to_owned(),
            line: found.line,
            lang: match found.file_lang {
                symbolic::common::Language::CSharp => Some("csharp"),
                symbolic::common::Language::FSharp => Some("fsharp"),
                symbolic::common::Language::VisualBasic => Some("vb"),
                _ => None,
            },
        })
    }

    /// Whether the module is IL2CPP's generated C++ (a Unity game's `GameAssembly`) and no line
    /// mapping is stored for it: its frames name C++ lines, not the C# they came from
    /// (`sentry-cli debug-files upload --il2cpp-mapping` uploads the mapping).
    pub fn lacks_il2cpp_mapping(&self) -> bool {
        self.names_il2cpp_output
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The ProGuard mapping's cache, for a module that is one.
    pub fn proguard(&self) -> Option<ProguardCache<'_>> {
        match &self.table {
            FunctionTable::Jvm(bytes) => ProguardCache::parse(bytes).ok(),
            _ => None,
        }
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, LookupMemo> {
        // A panic elsewhere cannot leave the map half-updated in a harmful way.
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn resolve(&self, offset: u64) -> Option<SourceLocation> {
        let cell = match &self.table {
            FunctionTable::SymCache(cell) => cell,
            FunctionTable::Breakpad(file, _) => return breakpad::resolve(file, offset),
            FunctionTable::DotNet(_) | FunctionTable::Jvm(_) => return None,
        };
        let locations: Vec<_> = cell.get().lookup(offset).collect();
        // The lookup yields the innermost inlined location first; the last one is the real
        // function, whose line is the call site of the first inlined call.
        let outer = locations.last()?;
        let function = outer.function();
        Some(SourceLocation {
            function: demangled(function.name_for_demangling()),
            function_offset: u64::from(function.entry_pc()),
            file: outer.file().map(|f| f.full_path()),
            line: outer.line(),
            inlines: locations
                .iter()
                .rev()
                .skip(1)
                .map(|inlined| InlineLocation {
                    function: demangled(inlined.function().name_for_demangling()),
                    file: inlined.file().map(|f| f.full_path()),
                    line: Some(inlined.line()).filter(|l| *l != 0),
                })
                .collect(),
            generated: None,
        })
    }

    /// `location` moved from generated C++ to the C# it came from, where the module's IL2CPP
    /// line mapping knows the line (the C++ line kept as `generated`; inlined calls moved too).
    fn mapped_to_source(&self, mut location: SourceLocation) -> SourceLocation {
        let Some(mapping) = &self.il2cpp else {
            if location
                .file
                .as_deref()
                .is_some_and(|f| f.contains("il2cppOutput"))
            {
                self.names_il2cpp_output
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            return location;
        };
        if let Some(file) = &location.file {
            if let Some((cs_file, cs_line)) = mapping.lookup(file, location.line) {
                location.generated = Some(GeneratedLine {
                    file: location
                        .file
                        .replace(cs_file.to_owned())
                        .unwrap_or_default(),
                    line: std::mem::replace(&mut location.line, cs_line),
                });
            }
        }
        for inline in &mut location.inlines {
            let (Some(file), Some(line)) = (&inline.file, inline.line) else {
                continue;
            };
            if let Some((cs_file, cs_line)) = mapping.lookup(file, line) {
                inline.file = Some(cs_file.to_owned());
                inline.line = Some(cs_line);
            }
        }
        location
    }
}

/// Parsed unwind rules (Breakpad `STACK CFI` / `STACK WIN` records).
pub struct CfiEntry {
    /// The rules, as minidump-unwind evaluates them (shared with the functions when both
    /// come from one Breakpad file read in place).
    pub rules: Arc<SymbolFile>,
    /// The stored file they came from.
    pub source: CacheSource,
    /// Size of the rules as text; parsed rules take a few times that in memory.
    text_bytes: usize,
}

/// Whether symbols were found for a module, as reported per module in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolStatus {
    /// A SymCache was loaded (CFI may or may not exist).
    Found,
    /// Nothing usable is stored for this debug ID.
    Missing,
    /// Files are stored but their caches could not be built or read.
    Malformed,
    /// The minidump gives the module no debug ID, so nothing can be looked up.
    NoDebugId,
}

impl SymbolStatus {
    /// The status as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SymbolStatus::Found => "found",
            SymbolStatus::Missing => "missing",
            SymbolStatus::Malformed => "malformed",
            SymbolStatus::NoDebugId => "no_debug_id",
        }
    }
}

/// Everything the walker can use for one module.
pub struct ModuleSymbols {
    /// Found, missing or malformed.
    pub status: SymbolStatus,
    /// Functions, lines and inlines.
    pub functions: Option<FunctionsEntry>,
    /// Unwind rules.
    pub cfi: Option<CfiEntry>,
    /// Why the status is `malformed`.
    pub error: Option<String>,
    /// Where the file serving functions came from: `uploaded`, or the upstream source's ID.
    pub origin: Option<String>,
    /// Every upstream location asked for the module's files, with what each gave.
    pub candidates: Vec<Candidate>,
}

impl ModuleSymbols {
    fn missing(candidates: Vec<Candidate>) -> ModuleSymbols {
        ModuleSymbols {
            status: SymbolStatus::Missing,
            functions: None,
            cfi: None,
            error: None,
            origin: None,
            candidates,
        }
    }

    /// A module whose symbols were still being fetched when a crash's time budget for them
    /// ran out: processed without them (and processed again when they are stored).
    pub fn still_fetching(module: &ModuleRef) -> ModuleSymbols {
        ModuleSymbols::missing(vec![Upstream::downloading(module)])
    }

    /// Approximate memory held, for the cache's byte bound.
    fn weight(&self) -> u32 {
        let functions = self.functions.as_ref().map_or(0, |f| {
            MEMO_BYTES
                + match &f.table {
                    FunctionTable::SymCache(cell) => cell.owner().len(),
                    FunctionTable::Breakpad(_, text_bytes) => text_bytes * 3,
                    FunctionTable::DotNet(cell) => cell.owner().len(),
                    FunctionTable::Jvm(bytes) => bytes.len(),
                }
        });
        let cfi = self.cfi.as_ref().map_or(0, |c| c.text_bytes * 3);
        (1024 + functions + cfi).min(u32::MAX as usize) as u32
    }
}

fn parse_symcache(cache: DerivedCache) -> Result<Option<FunctionsEntry>, String> {
    let Some(source) = cache.header.source else {
        return Ok(None);
    };
    let view = ByteView::from_vec(cache.payload.to_vec());
    let table = match FunctionsFormat::of(&source.format) {
        FunctionsFormat::PortablePdb => FunctionTable::DotNet(
            SelfCell::try_new(view, |data| PortablePdbCache::parse(unsafe { &*data }))
                .map_err(|e| format!("stored PortablePdbCache is unreadable: {e}"))?,
        ),
        FunctionsFormat::Proguard => {
            ProguardCache::parse(&view)
                .map_err(|e| format!("stored ProguardCache is unreadable: {e}"))?;
            FunctionTable::Jvm(view)
        }
        FunctionsFormat::SymCache => FunctionTable::SymCache(
            SelfCell::try_new(view, |data| SymCache::parse(unsafe { &*data }))
                .map_err(|e| format!("stored SymCache is unreadable: {e}"))?,
        ),
    };
    Ok(Some(FunctionsEntry {
        table,
        il2cpp: None,
        names_il2cpp_output: Default::default(),
        source,
        memo: Mutex::default(),
    }))
}

fn parse_cfi(cache: DerivedCache) -> Result<Option<CfiEntry>, String> {
    let Some(source) = cache.header.source else {
        return Ok(None);
    };
    if cache.payload.is_empty() {
        return Ok(None);
    }
    let rules = SymbolFile::from_bytes(&cache.payload)
        .map_err(|e| format!("stored CFI is unreadable: {e}"))?;
    Ok(Some(CfiEntry {
        rules: Arc::new(rules),
        source,
        text_bytes: cache.payload.len(),
    }))
}

/// Loads and keeps parsed module symbols, shared by all dumps (cheap to clone: clones share
/// the cache).
#[derive(Clone)]
pub struct ModuleCache {
    symbols: SymbolSource,
    cache: moka::future::Cache<DebugId, Arc<ModuleSymbols>>,
    variables: VariableTables,
}

impl ModuleCache {
    /// A cache over `symbols` holding at most `max_bytes` of parsed symbols; entries for
    /// modules without symbols expire after `missing_ttl` so a late upload is noticed.
    pub fn new(symbols: SymbolSource, max_bytes: u64, missing_ttl: Duration) -> ModuleCache {
        struct Expiry(Duration);
        impl moka::Expiry<DebugId, Arc<ModuleSymbols>> for Expiry {
            fn expire_after_create(
                &self,
                _key: &DebugId,
                value: &Arc<ModuleSymbols>,
                _now: std::time::Instant,
            ) -> Option<Duration> {
                (value.status != SymbolStatus::Found).then_some(self.0)
            }
        }
        let cache = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_, value: &Arc<ModuleSymbols>| value.weight())
            .expire_after(Expiry(missing_ttl))
            .build();
        let variables = VariableTables::new(symbols.clone(), max_bytes);
        ModuleCache {
            symbols,
            cache,
            variables,
        }
    }

    /// The same cache with `max_bytes` of memory for variables tables
    /// (`caches.variables_memory_bytes`; by default as much as for symbols).
    pub fn with_variables_memory(self, max_bytes: u64) -> ModuleCache {
        let variables = VariableTables::new(self.symbols.clone(), max_bytes);
        ModuleCache { variables, ..self }
    }

    /// The modules' variables tables (same source, same invalidation).
    pub fn variables(&self) -> &VariableTables {
        &self.variables
    }

    /// The symbols of one module, loading them (fetching its files from the upstream sources
    /// and building caches if needed) on first use. Concurrent requests for the same module
    /// share one load.
    pub async fn get(&self, module: &ModuleRef) -> Arc<ModuleSymbols> {
        let symbols = self.symbols.clone();
        let module = module.clone();
        self.cache
            .get_with(module.debug_id, async move {
                Arc::new(load(&symbols, &module).await.unwrap_or_else(|e| {
                    let mut broken = ModuleSymbols::missing(Vec::new());
                    broken.status = SymbolStatus::Malformed;
                    broken.error = Some(e.to_string());
                    broken
                }))
            })
            .await
    }

    /// The symbols of module `debug_id`: from memory when they are there; else loaded as
    /// [`get`](Self::get) loads them (the module described by `describe` only then), or, with
    /// upstream sources, when they are still being fetched at `deadline`, a stand-in that says
    /// so (the fetch goes on).
    pub async fn get_by(
        &self,
        debug_id: DebugId,
        describe: impl FnOnce() -> ModuleRef,
        deadline: std::time::Instant,
    ) -> Arc<ModuleSymbols> {
        if let Some(symbols) = self.cache.get(&debug_id).await {
            return symbols;
        }
        let module = describe();
        // Only a download can be left behind; the store is always waited for.
        if !matches!(self.symbols, SymbolSource::Store(_, Some(_))) {
            return self.get(&module).await;
        }
        tokio::time::timeout_at(deadline.into(), self.get(&module))
            .await
            .unwrap_or_else(|_| Arc::new(ModuleSymbols::still_fetching(&module)))
    }

    /// The symbols of every module in `ids` if all of them are in memory now; never loads
    /// anything (callable from the worker pool).
    pub fn cached(&self, ids: &[DebugId]) -> Option<HashMap<DebugId, Arc<ModuleSymbols>>> {
        ids.iter()
            .map(|id| futures::executor::block_on(self.cache.get(id)).map(|s| (*id, s)))
            .collect()
    }

    /// Whether `debug_id`'s files are stored once the upstream fetch running for it (if any)
    /// ends: a crash processed while they were downloading can then be processed again.
    pub async fn once_fetched(&self, debug_id: DebugId) -> bool {
        let SymbolSource::Store(store, Some(upstream)) = &self.symbols else {
            return false;
        };
        upstream.running(debug_id).await;
        store
            .files_for(&debug_id)
            .await
            .is_ok_and(|files| !files.is_empty())
    }

    /// Forgets a module, so the next dump sees newly uploaded files.
    pub async fn invalidate(&self, debug_id: &DebugId) {
        self.cache.invalidate(debug_id).await;
        self.variables.invalidate(debug_id).await;
    }
}

async fn load(symbols: &SymbolSource, module: &ModuleRef) -> Result<ModuleSymbols, SymbolError> {
    let debug_id = &module.debug_id;
    match symbols {
        SymbolSource::Store(store, upstream) => {
            let mut files = store.files_for(debug_id).await?;
            let mut candidates = Vec::new();
            if let (true, Some(upstream)) = (files.is_empty(), upstream) {
                let report = upstream.fetch(module, Purpose::Crash).await;
                candidates = report.candidates.clone();
                if report.origin.is_some() {
                    files = store.files_for(debug_id).await?;
                }
            }
            if files.is_empty() {
                return Ok(ModuleSymbols::missing(candidates));
            }
            let symcache = store.cache(debug_id, CacheKind::SymCache, &files).await?;
            let cfi = store.cache(debug_id, CacheKind::Cfi, &files).await?;
            let mut loaded = cpu::run(move || from_caches(symcache, cfi)).await?;
            if let Some(functions) = &mut loaded.functions {
                functions.il2cpp = il2cpp_mapping(store, &files).await?;
            }
            loaded.origin = origin_of(&loaded, &files);
            loaded.candidates = candidates;
            Ok(loaded)
        }
        SymbolSource::Local(local, then) => {
            if !local.has(debug_id) {
                return match then {
                    Some(then) => Box::pin(load(then, module)).await,
                    None => Ok(ModuleSymbols::missing(Vec::new())),
                };
            }
            let (local, id) = (Arc::clone(local), *debug_id);
            cpu::run(move || load_local(&local, &id)).await?
        }
    }
}

/// The module's IL2CPP line mapping, when one of its stored files is one (the newest).
async fn il2cpp_mapping(
    store: &SymbolStore,
    files: &[DebugFileMeta],
) -> Result<Option<Arc<LineMapping>>, SymbolError> {
    let Some(meta) = files
        .iter()
        .filter(|f| f.format == IL2CPP_FORMAT)
        .max_by_key(|f| f.uploaded_at)
    else {
        return Ok(None);
    };
    let local = store.materialize(meta).await?;
    let path = local.path().to_owned();
    let parsed = cpu::run(move || {
        let bytes = std::fs::read(path)?;
        Ok::<_, std::io::Error>(LineMapping::parse(&bytes))
    })
    .await??;
    Ok(parsed.map(Arc::new))
}

/// `uploaded`, or the source that sent the file serving the module's functions (else its
/// unwind rules).
fn origin_of(symbols: &ModuleSymbols, files: &[DebugFileMeta]) -> Option<String> {
    let serving = symbols
        .functions
        .as_ref()
        .map(|f| &f.source)
        .or(symbols.cfi.as_ref().map(|c| &c.source))?;
    let file = files.iter().find(|f| f.sha256 == serving.sha256)?;
    Some(file.origin.clone().unwrap_or_else(|| "uploaded".to_owned()))
}

/// A module's symbols from local files, with the IL2CPP line mapping among them (a Unity
/// game's `GameAssembly`).
fn load_local(local: &LocalSymbols, id: &DebugId) -> Result<ModuleSymbols, SymbolError> {
    let mut loaded = load_local_symbols(local, id)?;
    if let Some(functions) = &mut loaded.functions {
        functions.il2cpp = local.il2cpp_mapping(id)?.map(Arc::new);
    }
    Ok(loaded)
}

/// A module's symbols from local files: a Breakpad file parsed once for both functions and
/// unwind rules, or else both caches built at once, on two of the pool's threads.
fn load_local_symbols(local: &LocalSymbols, id: &DebugId) -> Result<ModuleSymbols, SymbolError> {
    if let Some((file, source, text_bytes)) = local.breakpad(id)? {
        let has_cfi = !(file.cfi_stack_info.is_empty()
            && file.win_stack_framedata_info.is_empty()
            && file.win_stack_fpo_info.is_empty());
        let file = Arc::new(file);
        return Ok(ModuleSymbols {
            status: SymbolStatus::Found,
            functions: Some(FunctionsEntry {
                table: FunctionTable::Breakpad(Arc::clone(&file), text_bytes),
                il2cpp: None,
                names_il2cpp_output: Default::default(),
                source: source.clone(),
                memo: Mutex::default(),
            }),
            cfi: has_cfi.then_some(CfiEntry {
                rules: file,
                source,
                text_bytes,
            }),
            error: None,
            origin: None,
            candidates: Vec::new(),
        });
    }
    let (symcache, cfi) = rayon::join(
        || local.build(id, CacheKind::SymCache),
        || local.build(id, CacheKind::Cfi),
    );
    Ok(from_caches(symcache?, cfi?))
}

/// A module's symbols from its two derived caches (CPU-bound).
fn from_caches(symcache: DerivedCache, cfi: DerivedCache) -> ModuleSymbols {
    let (functions, cfi, error) = match (parse_symcache(symcache), parse_cfi(cfi)) {
        (Ok(functions), Ok(cfi)) => (functions, cfi, None),
        (Ok(functions), Err(e)) => (functions, None, Some(e)),
        (Err(e), Ok(cfi)) => (None, cfi, Some(e)),
        (Err(a), Err(b)) => (None, None, Some(format!("{a}; {b}"))),
    };
    let status = match (&functions, &error) {
        (Some(_), _) => SymbolStatus::Found,
        (None, Some(_)) => SymbolStatus::Malformed,
        (None, None) if cfi.is_some() => SymbolStatus::Found,
        (None, None) => SymbolStatus::Missing,
    };
    ModuleSymbols {
        status,
        functions,
        cfi,
        error,
        origin: None,
        candidates: Vec::new(),
    }
}
