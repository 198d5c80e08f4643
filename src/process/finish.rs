//! Finishing a walked dump: the memory facts around the fault, the uncaught exception, the
//! variables of the chosen threads and the generated lines of IL2CPP frames, read right after
//! the walk on the pool thread that walked it when the variables tables are in memory (the
//! dump's memory still in that core's caches), else handed back to load them first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use minidump::{Minidump, Module};
use minidump_processor::ProcessState;
use symbolic::common::DebugId;

use super::modules::ModuleSymbols;
use super::output::{self, ProcessedCrash, Timings};
use super::{facts, module_debug_id, module_reports, ms, thrown, variables};
use crate::config::VariablesScope;
use crate::variables::VariablesTable;

/// What finishing a walked dump needs: whose variables, the tables they are read with, and
/// when processing started.
#[derive(Clone)]
pub(super) struct Finishing {
    pub(super) variables: VariablesScope,
    pub(super) tables: variables::VariableTables,
    pub(super) started: Instant,
}

impl Finishing {
    /// On the pool, right after the walk: finishes the crash when every variables table it
    /// needs is in memory (the dump's memory is still in this core's caches), else hands the
    /// walk back to load them.
    pub(super) fn try_finish(&self, walked: Walked) -> Walk {
        let threads = variables::threads_for(self.variables, &walked.state);
        let ids = variables::modules_of(&walked.state, &threads);
        match self.tables.all_loaded(&ids) {
            Some(tables) => Walk::Finished(Box::new(walked.finish(&threads, &tables))),
            None => Walk::Unfinished(Box::new(walked)),
        }
    }
}

/// A walked dump, not yet finished.
pub(super) struct Walked {
    pub(super) dump: Arc<Minidump<'static, Bytes>>,
    pub(super) by_id: HashMap<DebugId, Arc<ModuleSymbols>>,
    pub(super) state: ProcessState,
    /// When the dump was parsed and its symbols were ready.
    pub(super) timings: (Duration, Duration),
    /// When the walk ended.
    pub(super) walked: Duration,
}

impl Walked {
    /// The processed crash, with the variables of `threads` read with `tables`.
    pub(super) fn finish(
        self,
        threads: &[usize],
        tables: &HashMap<DebugId, Arc<VariablesTable>>,
    ) -> ProcessedCrash {
        let (parsed, symbols_ready) = self.timings;
        let timings = Timings {
            parse_ms: ms(parsed),
            symbols_ms: ms(symbols_ready - parsed),
            walk_ms: ms(self.walked - symbols_ready),
            total_ms: ms(self.walked),
        };
        finish(
            &self.dump,
            self.state,
            &self.by_id,
            (threads, tables),
            timings,
        )
    }
}

/// A walk, finished or handed back.
pub(super) enum Walk {
    Finished(Box<ProcessedCrash>),
    Unfinished(Box<Walked>),
}

/// The walked dump with what was found per module, its Crashpad annotations, the memory
/// facts around the fault, and the variables of the chosen threads' frames.
fn finish(
    dump: &Minidump<'static, Bytes>,
    state: ProcessState,
    by_id: &HashMap<DebugId, Arc<ModuleSymbols>>,
    (threads, tables): (&[usize], &HashMap<DebugId, Arc<VariablesTable>>),
    timings: Timings,
) -> ProcessedCrash {
    let module_reports = module_reports(&state, by_id);
    let crashpad = output::crashpad_annotations(dump);
    let context = state
        .requesting_thread
        .and_then(|i| state.threads.get(i))
        .and_then(|thread| thread.frames.first())
        .map(|frame| &frame.context);
    let facts = facts::read(
        dump,
        state.exception_info.as_ref().map(|e| e.address.0),
        context.map(|c| c.get_instruction_pointer()),
        context.map(|c| c.get_stack_pointer()),
    );
    let thrown = thrown::read(
        facts.exception.as_ref().map(|e| e.code),
        |key| crashpad.as_ref().and_then(|a| a.value(key)),
        &state,
        by_id,
    );
    let variables = variables::read(dump, &state, threads, tables, &facts.thread_stacks);
    let generated = generated_lines(&state, by_id);
    ProcessedCrash {
        state,
        modules: module_reports,
        crashpad,
        facts,
        thrown,
        variables: variables.threads,
        fault_variable: variables.fault,
        generated,
        timings,
    }
}

/// The generated C++ line of each frame whose line an IL2CPP mapping moved to C# (looked up
/// again: the walk's lookups are memoized, and only modules with a mapping are asked).
fn generated_lines(
    state: &ProcessState,
    by_id: &HashMap<DebugId, Arc<ModuleSymbols>>,
) -> output::GeneratedLines {
    let mut out = output::GeneratedLines::new();
    if !by_id.values().any(|m| {
        m.functions
            .as_ref()
            .is_some_and(|f| f.maps_generated_code())
    }) {
        return out;
    }
    for (t, thread) in state.threads.iter().enumerate() {
        for (f, frame) in thread.frames.iter().enumerate() {
            let Some(module) = &frame.module else {
                continue;
            };
            let functions = module_debug_id(module)
                .and_then(|id| by_id.get(&id))
                .and_then(|m| m.functions.as_ref())
                .filter(|f| f.maps_generated_code());
            let generated = functions.and_then(|functions| {
                let offset = frame.instruction.checked_sub(module.base_address())?;
                functions.lookup(offset)?.generated.clone()
            });
            if let Some(generated) = generated {
                out.insert((t, f), generated);
            }
        }
    }
    out
}
