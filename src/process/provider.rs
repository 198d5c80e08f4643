//! faultline's `SymbolProvider`: how minidump-processor asks for function names, lines, inlines
//! and unwind rules while it walks a dump. Every module's symbols were fetched before the walk,
//! so the provider only reads memory and never waits on I/O.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use minidump::Module;
use minidump_unwind::symbols::{
    FileError, FileKind, FillSymbolError, FrameSymbolizer, FrameWalker, SymbolProvider, SymbolStats,
};
use symbolic::common::DebugId;

use super::modules::{ModuleSymbols, SymbolStatus};

/// One module of the dump as the provider sees it.
pub struct ProviderModule {
    /// Load address: identifies the module within the dump.
    pub base: u64,
    /// Code file base name (minidump-processor keys its statistics by it).
    pub name: String,
    /// Debug ID, when the dump gives one.
    pub debug_id: Option<DebugId>,
    /// Pre-fetched symbols; `None` when there is no debug ID to look them up by.
    pub symbols: Option<Arc<ModuleSymbols>>,
}

struct Entry {
    symbols: Option<Arc<ModuleSymbols>>,
    name: String,
    stats: SymbolStats,
    /// Whether the walker asked about this module (only those get statistics, as in
    /// minidump-stackwalk, where `missing_symbols` means "looked for and not found").
    queried: AtomicBool,
}

/// The symbols of every module of one dump, plus the dump's time budget.
pub struct StoreProvider {
    modules: HashMap<u64, Entry>,
    deadline: Instant,
    timed_out: AtomicBool,
}

impl StoreProvider {
    /// A provider over pre-fetched symbols that stops helping the walker after `deadline`
    /// (the walk then ends quickly and the dump fails with a time-budget error).
    pub fn new(modules: Vec<ProviderModule>, deadline: Instant) -> StoreProvider {
        let modules = modules
            .into_iter()
            .map(|m| {
                let status = m.symbols.as_ref().map(|s| s.status);
                let stats = SymbolStats {
                    loaded_symbols: status == Some(SymbolStatus::Found),
                    corrupt_symbols: status == Some(SymbolStatus::Malformed),
                    // Stored files have a URL; local ones (`process --symbols`) do not.
                    symbol_url: m.symbols.as_ref().and_then(|s| {
                        let source = &s.functions.as_ref()?.source;
                        let debug_id = m.debug_id.filter(|_| !source.sha256.is_empty())?;
                        Some(format!("/api/v1/symbols/{debug_id}/{}", source.sha256))
                    }),
                    ..SymbolStats::default()
                };
                let entry = Entry {
                    symbols: m.symbols,
                    name: m.name,
                    stats,
                    queried: AtomicBool::new(false),
                };
                (m.base, entry)
            })
            .collect();
        StoreProvider {
            modules,
            deadline,
            timed_out: AtomicBool::new(false),
        }
    }

    /// Whether the time budget ran out during the walk.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    fn symbols_for(&self, module: &dyn Module) -> Option<&ModuleSymbols> {
        if Instant::now() > self.deadline {
            self.timed_out.store(true, Ordering::Relaxed);
            return None;
        }
        let entry = self.modules.get(&module.base_address())?;
        entry.queried.store(true, Ordering::Relaxed);
        entry.symbols.as_deref()
    }
}

#[async_trait]
impl SymbolProvider for StoreProvider {
    async fn fill_symbol(
        &self,
        module: &(dyn Module + Sync),
        frame: &mut (dyn FrameSymbolizer + Send),
    ) -> Result<(), FillSymbolError> {
        // An error tells the stack scanner "no symbols for this module" (so it cannot judge
        // candidate return addresses there); Ok without a name means "not in a function".
        let symcache = self
            .symbols_for(module)
            .and_then(|m| m.functions.as_ref())
            .ok_or(FillSymbolError {})?;
        let base = module.base_address();
        let Some(location) = frame
            .get_instruction()
            .checked_sub(base)
            .and_then(|offset| symcache.lookup(offset))
        else {
            return Ok(());
        };
        let function_base = base + location.function_offset;
        frame.set_function(&location.function, function_base, 0);
        if let Some(file) = &location.file {
            frame.set_source_file(file, location.line, function_base);
        }
        for inlined in &location.inlines {
            frame.add_inline_frame(&inlined.function, inlined.file.as_deref(), inlined.line);
        }
        Ok(())
    }

    async fn walk_frame(
        &self,
        module: &(dyn Module + Sync),
        walker: &mut (dyn FrameWalker + Send),
    ) -> Option<()> {
        self.symbols_for(module)?
            .cfi
            .as_ref()?
            .rules
            .walk_frame(module, walker)
    }

    async fn get_file_path(
        &self,
        _module: &(dyn Module + Sync),
        _file_kind: FileKind,
    ) -> Result<std::path::PathBuf, FileError> {
        Err(FileError::NotFound)
    }

    fn stats(&self) -> HashMap<String, SymbolStats> {
        self.modules
            .values()
            .filter(|e| e.queried.load(Ordering::Relaxed))
            .map(|e| (e.name.clone(), e.stats.clone()))
            .collect()
    }
}
