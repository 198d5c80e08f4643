//! Variables in a processed crash: which threads get them (`processing.variables`), each
//! module's variables table loaded once (built on first need from the module's debug file and
//! stored, see `symbols::derive`) and kept in memory, and the values read for every frame.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use minidump::{Minidump, Module};
use minidump_processor::ProcessState;
use symbolic::common::DebugId;

use super::source::SymbolSource;
use crate::config::VariablesScope;
use crate::cpu;
use crate::symbols::derive::CacheKind;
use crate::symbols::SymbolError;
use crate::variables::{
    fault_variable, thread_variables, CrashAddressMap, DumpMemory, FaultVariable, RenderLimits,
    Variable, VariablesTable,
};

/// Variables per thread index: one list per frame.
pub type ThreadsVariables = HashMap<usize, Vec<Vec<Variable>>>;

/// Every module's variables table, loaded on first need and shared by all dumps (cheap to
/// clone: clones share the cache).
#[derive(Clone)]
pub struct VariableTables {
    symbols: SymbolSource,
    cache: moka::future::Cache<DebugId, Option<Arc<VariablesTable>>>,
}

impl VariableTables {
    /// Tables read through `symbols`, at most `max_bytes` of them in memory.
    pub fn new(symbols: SymbolSource, max_bytes: u64) -> VariableTables {
        let cache = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_, table: &Option<Arc<VariablesTable>>| {
                table
                    .as_ref()
                    .map_or(64, |t| t.weight())
                    .min(u32::MAX as usize) as u32
            })
            .build();
        VariableTables { symbols, cache }
    }

    /// The table of module `debug_id`; `None` when no debug file with DWARF is known for it
    /// (or it could not be read: logged, and the crash is processed without its variables).
    pub async fn get(&self, debug_id: DebugId) -> Option<Arc<VariablesTable>> {
        let symbols = self.symbols.clone();
        self.cache
            .get_with(debug_id, async move {
                match load(&symbols, debug_id).await {
                    Ok(table) => table.map(Arc::new),
                    Err(e) => {
                        tracing::warn!(%debug_id, "no variables for a module: {e}");
                        None
                    }
                }
            })
            .await
    }

    /// The table of module `debug_id` if it was loaded already (`Some(None)`: it has none).
    pub async fn loaded(&self, debug_id: &DebugId) -> Option<Option<Arc<VariablesTable>>> {
        self.cache.get(debug_id).await
    }

    /// The tables of every module in `ids` if all were loaded already (a module without one
    /// is left out); never loads anything (callable from the worker pool).
    pub fn all_loaded(&self, ids: &[DebugId]) -> Option<HashMap<DebugId, Arc<VariablesTable>>> {
        let mut found = HashMap::with_capacity(ids.len());
        for id in ids {
            if let Some(table) = futures::executor::block_on(self.cache.get(id))? {
                found.insert(*id, table);
            }
        }
        Some(found)
    }

    /// Forgets a module's table (a new debug file was stored).
    pub async fn invalidate(&self, debug_id: &DebugId) {
        self.cache.invalidate(debug_id).await;
    }
}

async fn load(symbols: &SymbolSource, id: DebugId) -> Result<Option<VariablesTable>, SymbolError> {
    let payload = match symbols {
        SymbolSource::Store(store, _) => match store.variables_cache(&id).await? {
            Some(cache) => cache.payload,
            None => return Ok(None),
        },
        SymbolSource::Local(local, then) => {
            if !local.has(&id) {
                return match then {
                    Some(then) => Box::pin(load(then, id)).await,
                    None => Ok(None),
                };
            }
            let local = Arc::clone(local);
            let cache = cpu::run(move || local.build(&id, CacheKind::Variables)).await??;
            if cache.header.source.is_none() {
                return Ok(None);
            }
            cache.payload
        }
    };
    let table = cpu::run(move || VariablesTable::decode(&payload)).await?;
    table.map(Some).map_err(|detail| SymbolError::Unreadable {
        key: format!("variables cache of {id}"),
        detail,
    })
}

/// The threads whose frames get variables under `scope`.
pub fn threads_for(scope: VariablesScope, state: &ProcessState) -> Vec<usize> {
    match scope {
        VariablesScope::Off => Vec::new(),
        VariablesScope::CrashingThread => state.requesting_thread.into_iter().collect(),
        VariablesScope::AllThreads => (0..state.threads.len()).collect(),
    }
}

/// The distinct debug IDs of the modules `threads`' frames run in.
pub fn modules_of(state: &ProcessState, threads: &[usize]) -> Vec<DebugId> {
    let mut ids: Vec<DebugId> = threads
        .iter()
        .filter_map(|t| state.threads.get(*t))
        .flat_map(|t| t.frames.iter())
        .filter_map(|f| f.module.as_ref()?.debug_identifier())
        .filter(|id| !id.is_nil())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// What a crash's variables say: every frame's of the chosen threads, and the variable the
/// fault address came from.
#[derive(Default)]
pub struct CrashVariables {
    /// By thread index, one list per frame.
    pub threads: ThreadsVariables,
    /// The crashing frame's variable the fault address is (or is a small offset from), for a
    /// memory access fault.
    pub fault: Option<FaultVariable>,
}

/// The variables of every frame of `threads`, read with `tables` from `dump`.
pub fn read(
    dump: &Minidump<'static, Bytes>,
    state: &ProcessState,
    threads: &[usize],
    tables: &HashMap<DebugId, Arc<VariablesTable>>,
    stacks: &[Range<u64>],
) -> CrashVariables {
    if threads.is_empty() || tables.is_empty() {
        return CrashVariables::default();
    }
    let memory_list = dump.get_memory();
    let memory = DumpMemory::new(memory_list.as_ref());
    let map = CrashAddressMap {
        stacks,
        modules: &state.modules,
        memory: &memory,
    };
    // A thread's frames run mostly in a few modules, one after another: each module's table is
    // looked up (its debug ID read from the module and hashed) once per run of frames in it.
    let tables_of = |frames: &[minidump_unwind::StackFrame]| -> Vec<Option<&VariablesTable>> {
        let mut last: Option<(u64, Option<&VariablesTable>)> = None;
        let mut table = |frame: &minidump_unwind::StackFrame| {
            let module = frame.module.as_ref()?;
            if let Some((_, table)) = last.filter(|(base, _)| *base == module.base_address()) {
                return table;
            }
            let found = tables.get(&module.debug_identifier()?).map(|t| &**t);
            last = Some((module.base_address(), found));
            found
        };
        frames.iter().map(&mut table).collect()
    };
    let fault_address = access_fault_address(state);
    let mut fault = None;
    let mut per_thread = ThreadsVariables::default();
    for &index in threads {
        let Some(thread) = state.threads.get(index) else {
            continue;
        };
        let frame_tables = tables_of(&thread.frames);
        let frames = thread_variables(
            &thread.frames,
            &frame_tables,
            &memory,
            &map,
            RenderLimits::default(),
        );
        if frames.iter().any(|f| !f.is_empty()) {
            per_thread.insert(index, frames);
        }
        if let (true, Some(address)) = (state.requesting_thread == Some(index), fault_address) {
            fault = fault_variable(&thread.frames, &frame_tables, &memory, &map, address);
        }
    }
    CrashVariables {
        threads: per_thread,
        fault,
    }
}

/// The address a memory access fault touched (SIGSEGV, SIGBUS, an access violation,
/// EXC_BAD_ACCESS); `None` for other crashes, whose "address" is code or nothing.
fn access_fault_address(state: &ProcessState) -> Option<u64> {
    let info = state.exception_info.as_ref()?;
    let reason = info.reason.to_string();
    let access = ["SIGSEGV", "SIGBUS", "ACCESS_VIOLATION", "EXC_BAD_ACCESS"]
        .iter()
        .any(|kind| reason.contains(kind));
    // An instruction that accesses a constant address (`mov dword ptr ds:[45h],5`) did not
    // reach it through any variable.
    let constant = info
        .instruction_str
        .as_deref()
        .is_some_and(accesses_a_constant_address);
    (access && !constant).then_some(info.address.0)
}

/// Whether an x86 instruction as minidump-processor prints it (MASM syntax) has a memory
/// operand made of a number alone: `[45h]`, `ds:[1000h]`; `[rax+8]` or `[rip+10h]` name a
/// register (every x86 register name has a letter that is not a hex digit).
fn accesses_a_constant_address(instruction: &str) -> bool {
    let Some((_, rest)) = instruction.split_once('[') else {
        return false;
    };
    let Some((operand, _)) = rest.split_once(']') else {
        return false;
    };
    let digits = operand.trim().trim_end_matches(['h', 'H']);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::accesses_a_constant_address as constant;

    #[test]
    fn a_constant_memory_operand_is_told_from_a_register_one() {
        assert!(constant("mov dword ptr ds:[45h],5"));
        assert!(constant("mov eax,[0FFFFh]"));
        assert!(!constant("mov eax,[rax+8]"));
        assert!(!constant("mov dword ptr [ebp-10h],0"));
        assert!(!constant("mov rax,[rip+1234h]"));
        assert!(!constant("mov eax,[esi]"));
        assert!(!constant("call rax"));
        assert!(!constant("mov eax,[]"));
    }
}
