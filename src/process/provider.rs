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

/// The symbols of every module of one dump, plus the dump's time budget.
pub struct StoreProvider {
    modules: HashMap<DebugId, Arc<ModuleSymbols>>,
    /// minidump-processor's per-module statistics, keyed by code file base name, so its JSON
    /// reports `loaded_symbols` / `missing_symbols` / `corrupt_symbols` as minidump-stackwalk's.
    stats: HashMap<String, SymbolStats>,
    deadline: Instant,
    timed_out: AtomicBool,
}

impl StoreProvider {
    /// A provider over pre-fetched symbols — (code file base name, debug ID, symbols) per
    /// module — that stops helping the walker after `deadline` (the walk then ends quickly and
    /// the dump fails with a time-budget error).
    pub fn new(
        modules: Vec<(String, DebugId, Arc<ModuleSymbols>)>,
        deadline: Instant,
    ) -> StoreProvider {
        let stats = modules
            .iter()
            .map(|(name, debug_id, symbols)| {
                let stats = SymbolStats {
                    loaded_symbols: symbols.status == SymbolStatus::Found,
                    corrupt_symbols: symbols.status == SymbolStatus::Malformed,
                    symbol_url: symbols
                        .symcache
                        .as_ref()
                        .map(|s| format!("/api/v1/symbols/{debug_id}/{}", s.source.sha256)),
                    ..SymbolStats::default()
                };
                (name.clone(), stats)
            })
            .collect();
        StoreProvider {
            modules: modules
                .into_iter()
                .map(|(_, id, symbols)| (id, symbols))
                .collect(),
            stats,
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
        self.modules.get(&module.debug_identifier()?).map(|m| &**m)
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
            .and_then(|m| m.symcache.as_ref())
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
        self.stats.clone()
    }
}
