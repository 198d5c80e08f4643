//! Minidump processing: a dump in, symbolicated thread-complete stack traces out.
//!
//! One function, [`Processor::process`], serves the CLI, the synchronous API and the
//! ingest queue's workers. It reads the module list, fetches every module's symbols concurrently (once
//! each, through the shared [`ModuleCache`]), then walks every thread on the rayon pool with
//! minidump-processor and our [`StoreProvider`]. Output is a superset of minidump-stackwalk's
//! JSON (see `docs/OUTPUT.md`).

mod breakpad;
pub mod facts;
mod finish;
mod json;
pub mod location;
pub mod modules;
mod output;
pub mod provider;
pub mod source;
pub mod symbolicate;
pub mod thrown;
pub mod variables;
pub mod view;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use minidump::{Minidump, MinidumpModuleList, MinidumpSystemInfo, MinidumpThreadList, Module};
use minidump_processor::{ProcessState, ProcessorOptions};
use symbolic::common::{CodeId, DebugId};

use crate::config::{Config, VariablesScope};
use crate::cpu;
use crate::symbols::identify::base_name;
use crate::upstream::{ModulePlatform, ModuleRef};
use crate::variables::VariablesTable;
use finish::{Finishing, Walk, Walked};
use modules::{ModuleCache, ModuleSymbols, SymbolStatus};
use provider::{ProviderModule, StoreProvider};
use source::SymbolSource;

pub use json::{crashing_thread_view, module_views, thread_views};
pub use output::{ModuleReport, ProcessedCrash, Timings};

/// Time kept for the stack walk out of a dump's budget (or a quarter of the budget, if less):
/// symbols still downloading then are left out.
const WALK_RESERVE: Duration = Duration::from_secs(5);

/// Budgets that stop pathological dumps.
#[derive(Debug, Clone, Copy)]
pub struct ProcessLimits {
    /// Largest dump accepted, in bytes (memory budget).
    pub max_dump_bytes: u64,
    /// Most threads one dump may list (memory and time budget).
    pub max_threads: usize,
    /// Most modules one dump may list.
    pub max_modules: usize,
    /// Wall-clock time for symbol fetching plus the stack walk.
    pub time_budget: Duration,
}

/// Why a dump could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Not a minidump at all (wrong magic, empty, a different file type).
    #[error("not a minidump: {0}")]
    NotAMinidump(String),
    /// A minidump header, but streams the processor needs are missing or broken.
    #[error("corrupt or truncated minidump: {0}")]
    Corrupt(String),
    /// A budget in [`ProcessLimits`] was exceeded.
    #[error("{budget} budget exceeded: {detail}")]
    Budget {
        /// Which budget.
        budget: BudgetKind,
        /// What was measured against what limit, and which setting raises it.
        detail: String,
    },
    /// A bug or a failure of this server.
    #[error("internal error while processing: {0}")]
    Internal(String),
}

/// The budgets of [`ProcessLimits`], named as error messages name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKind {
    /// The dump's size in bytes.
    Size,
    /// The number of threads it lists.
    Threads,
    /// The number of modules it lists.
    Modules,
    /// Wall-clock time for fetching symbols and walking stacks.
    Time,
}

impl std::fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BudgetKind::Size => "size",
            BudgetKind::Threads => "threads",
            BudgetKind::Modules => "modules",
            BudgetKind::Time => "time",
        })
    }
}

/// Turns minidumps into symbolicated stack traces; cheap to share between requests.
pub struct Processor {
    modules: ModuleCache,
    limits: ProcessLimits,
    variables: VariablesScope,
}

impl Processor {
    /// A processor reading symbols through `modules`, with variables for the crashing thread.
    pub fn new(modules: ModuleCache, limits: ProcessLimits) -> Processor {
        Processor {
            modules,
            limits,
            variables: VariablesScope::default(),
        }
    }

    /// The same processor reading variables for `scope`'s threads.
    pub fn with_variables(self, scope: VariablesScope) -> Processor {
        Processor {
            variables: scope,
            ..self
        }
    }

    /// A processor over `symbols` with the configured budgets and cache sizes.
    pub fn from_config(config: &Config, symbols: impl Into<SymbolSource>) -> Processor {
        let modules = ModuleCache::new(
            symbols.into(),
            config.caches.memory_bytes,
            Duration::from_secs(config.caches.missing_ttl_secs),
        )
        .with_variables_memory(config.caches.variables_memory_bytes);
        Processor::new(
            modules,
            ProcessLimits {
                max_dump_bytes: config.limits.max_dump_bytes,
                max_threads: config.limits.max_threads,
                max_modules: config.limits.max_modules,
                time_budget: Duration::from_millis(config.limits.process_time_ms),
            },
        )
        .with_variables(config.processing.variables)
    }

    /// How long a crash (or a request's raw frames) waits for its modules' symbols: the time
    /// budget less what is kept for the stack walk.
    pub fn symbols_wait(&self) -> Duration {
        let budget = self.limits.time_budget;
        budget - (budget / 4).min(WALK_RESERVE)
    }

    /// The shared module-symbol cache (to invalidate after uploads).
    pub fn modules(&self) -> &ModuleCache {
        &self.modules
    }

    /// Processes one minidump, with variables for the threads this processor was made for.
    pub async fn process(&self, dump: Bytes) -> Result<ProcessedCrash, ProcessError> {
        self.process_with_variables(dump, self.variables).await
    }

    /// Processes one minidump, with variables for `variables`' threads (the crash's project
    /// may want other threads than the processor's default, or none).
    pub async fn process_with_variables(
        &self,
        dump: Bytes,
        variables: VariablesScope,
    ) -> Result<ProcessedCrash, ProcessError> {
        let started = Instant::now();
        let result = self.process_inner(dump, variables, started).await;
        let outcome = match &result {
            Ok(_) => "processed",
            Err(ProcessError::NotAMinidump(_)) => "not_a_minidump",
            Err(ProcessError::Corrupt(_)) => "corrupt",
            Err(ProcessError::Budget { .. }) => "over_budget",
            Err(ProcessError::Internal(_)) => "internal_error",
        };
        metrics::counter!("faultline_minidumps_total", "outcome" => outcome).increment(1);
        metrics::histogram!("faultline_minidump_process_seconds")
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// The story of one dump: check its size, parse it (and walk it at once when every
    /// module's symbols are in memory), else fetch the symbols it lacks and walk it; then read
    /// the memory facts around the fault and the variables, right after the walk on the same
    /// pool thread when their tables are in memory, else once they are loaded.
    async fn process_inner(
        &self,
        dump: Bytes,
        variables: VariablesScope,
        started: Instant,
    ) -> Result<ProcessedCrash, ProcessError> {
        let deadline = started + self.limits.time_budget;
        if dump.len() as u64 > self.limits.max_dump_bytes {
            return Err(ProcessError::Budget {
                budget: BudgetKind::Size,
                detail: format!(
                    "the dump is {} bytes, more than {} (limits.max_dump_bytes)",
                    dump.len(),
                    self.limits.max_dump_bytes
                ),
            });
        }
        let finishing = Finishing {
            variables,
            tables: self.modules.variables().clone(),
            started,
        };
        let walked = match self.first_pass(dump, finishing.clone(), deadline).await? {
            FirstPass::Walked(Walk::Finished(crash)) => return Ok(*crash),
            FirstPass::Walked(Walk::Unfinished(walked)) => walked,
            FirstPass::Parsed {
                dump,
                wanted,
                distinct,
                parsed,
            } => {
                let modules = module_refs(&dump, &distinct);
                let by_id = self.fetch_symbols(modules, started, deadline).await?;
                let symbols_ready = started.elapsed();
                let walk = (dump, wanted, by_id, (parsed, symbols_ready));
                match self.walk_with(walk, finishing, deadline).await? {
                    Walk::Finished(crash) => return Ok(*crash),
                    Walk::Unfinished(walked) => walked,
                }
            }
        };
        let threads = variables::threads_for(variables, &walked.state);
        let tables = self
            .variable_tables(&walked.state, &threads, deadline)
            .await;
        Ok(walked.finish(&threads, &tables))
    }

    /// One job on the pool: parse, and when every module's symbols are already in memory (the
    /// usual case on a warm server) walk right away (and finish, when it can).
    async fn first_pass(
        &self,
        dump: Bytes,
        finishing: Finishing,
        deadline: Instant,
    ) -> Result<FirstPass, ProcessError> {
        let limits = self.limits;
        let modules = self.modules.clone();
        let first = cpu::run(move || -> Result<FirstPass, ProcessError> {
            let (dump, wanted) = read_dump(dump, limits)?;
            let parsed = finishing.started.elapsed();
            let distinct = distinct_ids(&wanted);
            match modules.cached(&distinct) {
                Some(by_id) => {
                    let state = walk(&dump, wanted, &by_id, deadline, limits)?;
                    let walked = Walked {
                        dump,
                        by_id,
                        state,
                        timings: (parsed, parsed),
                        walked: finishing.started.elapsed(),
                    };
                    Ok(FirstPass::Walked(finishing.try_finish(walked)))
                }
                None => Ok(FirstPass::Parsed {
                    dump,
                    wanted,
                    distinct,
                    parsed,
                }),
            }
        });
        match tokio::time::timeout_at(deadline.into(), first).await {
            Err(_) => Err(time_budget(limits)),
            Ok(result) => result.map_err(|e| ProcessError::Internal(e.to_string()))?,
        }
    }

    /// Each distinct module's symbols, fetched concurrently, once. A module whose files are
    /// still being fetched from an upstream source when the time for symbols runs out is
    /// walked without them (the crash is processed again when they are stored), so a slow
    /// source never costs a crash more than its budget; the store itself taking longer than
    /// the whole budget is a time-budget error, as it always was.
    async fn fetch_symbols(
        &self,
        distinct: Vec<ModuleRef>,
        started: Instant,
        deadline: Instant,
    ) -> Result<HashMap<DebugId, Arc<ModuleSymbols>>, ProcessError> {
        let symbols_deadline = started + self.symbols_wait();
        let fetched = futures::future::join_all(distinct.iter().map(|module| async move {
            let describe = || module.clone();
            let symbols = self
                .modules
                .get_by(module.debug_id, describe, symbols_deadline)
                .await;
            (module.debug_id, symbols)
        }));
        match tokio::time::timeout_at(deadline.into(), fetched).await {
            Ok(fetched) => Ok(fetched.into_iter().collect()),
            Err(_) => Err(time_budget(self.limits)),
        }
    }

    /// The variables tables of the modules `threads` run in, loaded (and built on first need)
    /// until the deadline; a module whose table is not ready by then gets no variables.
    async fn variable_tables(
        &self,
        state: &ProcessState,
        threads: &[usize],
        deadline: Instant,
    ) -> HashMap<DebugId, Arc<VariablesTable>> {
        let tables = self.modules.variables();
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for id in variables::modules_of(state, threads) {
            match tables.loaded(&id).await {
                Some(table) => found.extend(table.map(|t| (id, t))),
                None => missing.push(id),
            }
        }
        if missing.is_empty() {
            return found;
        }
        // Each load runs as its own task: a table still being built when this crash's time
        // runs out goes on being built (and stored) for the crashes after it.
        let loads = futures::future::join_all(missing.into_iter().map(|id| {
            let tables = tables.clone();
            tokio::spawn(async move { tables.get(id).await.map(|t| (id, t)) })
        }));
        if let Ok(loaded) = tokio::time::timeout_at(deadline.into(), loads).await {
            found.extend(loaded.into_iter().filter_map(|r| r.ok().flatten()));
        }
        found
    }

    /// The stack walk (and the finish, when it can), as a second job on the pool.
    async fn walk_with(
        &self,
        (dump, wanted, by_id, timings): SymbolizedDump,
        finishing: Finishing,
        deadline: Instant,
    ) -> Result<Walk, ProcessError> {
        let limits = self.limits;
        let walked = cpu::run(move || -> Result<Walk, ProcessError> {
            let state = walk(&dump, wanted, &by_id, deadline, limits)?;
            let walked = Walked {
                dump,
                by_id,
                state,
                timings,
                walked: finishing.started.elapsed(),
            };
            Ok(finishing.try_finish(walked))
        });
        match tokio::time::timeout_at(deadline.into(), walked).await {
            Err(_) => Err(time_budget(limits)),
            Ok(result) => result.map_err(|e| ProcessError::Internal(e.to_string()))?,
        }
    }
}

/// A parsed dump with the symbols of its modules, ready to walk: the dump, its modules, their
/// symbols, and when it was parsed and its symbols were ready.
type SymbolizedDump = (
    Arc<Minidump<'static, Bytes>>,
    Vec<WantedModule>,
    HashMap<DebugId, Arc<ModuleSymbols>>,
    (Duration, Duration),
);

/// What the first job on the pool got done.
enum FirstPass {
    /// Every module's symbols were in memory: the dump is walked (and maybe finished).
    Walked(Walk),
    /// Some symbols must be fetched first.
    Parsed {
        dump: Arc<Minidump<'static, Bytes>>,
        wanted: Vec<WantedModule>,
        distinct: Vec<DebugId>,
        parsed: Duration,
    },
}

/// The distinct debug IDs among the dump's modules.
fn distinct_ids(wanted: &[WantedModule]) -> Vec<DebugId> {
    let mut distinct: Vec<DebugId> = wanted.iter().filter_map(|m| m.debug_id).collect();
    distinct.sort();
    distinct.dedup();
    distinct
}

/// The modules with debug IDs in `distinct` as the upstream sources are asked for them (names,
/// code ID, platform): made only for a dump whose symbols are not all in memory.
fn module_refs(dump: &Minidump<'static, Bytes>, distinct: &[DebugId]) -> Vec<ModuleRef> {
    let platform = platform_of(dump);
    let list = dump.get_stream::<MinidumpModuleList>().unwrap_or_default();
    let mut refs: Vec<ModuleRef> = Vec::with_capacity(distinct.len());
    for module in list.iter() {
        let Some(id) = module_debug_id(module) else {
            continue;
        };
        if distinct.binary_search(&id).is_err() || refs.iter().any(|r| r.debug_id == id) {
            continue;
        }
        let code_id = module
            .code_identifier()
            .map(|c| CodeId::new(c.as_str().to_ascii_lowercase()));
        let debug_file = module.debug_file();
        let code_file = module.code_file();
        refs.push(ModuleRef::new(
            id,
            debug_file.as_deref(),
            Some(&code_file),
            code_id,
            platform,
        ));
    }
    refs
}

/// Walks and symbolicates every thread of `dump` with the given symbols (on the pool).
fn walk(
    dump: &Minidump<'static, Bytes>,
    wanted: Vec<WantedModule>,
    by_id: &HashMap<DebugId, Arc<ModuleSymbols>>,
    deadline: Instant,
    limits: ProcessLimits,
) -> Result<ProcessState, ProcessError> {
    let provider_modules = wanted
        .into_iter()
        .map(|wanted| ProviderModule {
            base: wanted.base,
            name: wanted.name,
            debug_id: wanted.debug_id,
            symbols: wanted.debug_id.and_then(|id| by_id.get(&id).cloned()),
        })
        .collect();
    let provider = StoreProvider::new(provider_modules, deadline);
    let state = futures::executor::block_on(minidump_processor::process_minidump_with_options(
        dump,
        &provider,
        ProcessorOptions::default(),
    ))
    .map_err(|e| ProcessError::Corrupt(e.to_string()))?;
    if provider.timed_out() {
        return Err(time_budget(limits));
    }
    Ok(state)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn time_budget(limits: ProcessLimits) -> ProcessError {
    ProcessError::Budget {
        budget: BudgetKind::Time,
        detail: format!(
            "processing took longer than {} ms (limits.process_time_ms)",
            limits.time_budget.as_millis()
        ),
    }
}

/// A module of the dump to fetch symbols for.
struct WantedModule {
    /// Load address.
    base: u64,
    /// Code file base name.
    name: String,
    /// Its debug ID, unless the dump has none.
    debug_id: Option<DebugId>,
}

/// Parses the dump far enough to check budgets and list the modules to fetch symbols for.
fn read_dump(
    bytes: Bytes,
    limits: ProcessLimits,
) -> Result<(Arc<Minidump<'static, Bytes>>, Vec<WantedModule>), ProcessError> {
    let dump = Minidump::read(bytes).map_err(|e| match e {
        minidump::Error::MissingHeader | minidump::Error::HeaderMismatch => {
            ProcessError::NotAMinidump(format!(
                "{e} (expected the MDMP signature at offset 0: is this a minidump?)"
            ))
        }
        other => ProcessError::Corrupt(other.to_string()),
    })?;
    let threads = dump
        .get_stream::<MinidumpThreadList>()
        .map_err(|e| ProcessError::Corrupt(format!("thread list: {e}")))?;
    if threads.threads.len() > limits.max_threads {
        return Err(ProcessError::Budget {
            budget: BudgetKind::Threads,
            detail: format!(
                "the dump lists {} threads, more than {} (limits.max_threads)",
                threads.threads.len(),
                limits.max_threads
            ),
        });
    }
    let modules = dump.get_stream::<MinidumpModuleList>().unwrap_or_default();
    if modules.iter().count() > limits.max_modules {
        return Err(ProcessError::Budget {
            budget: BudgetKind::Modules,
            detail: format!(
                "the dump lists {} modules, more than {} (limits.max_modules)",
                modules.iter().count(),
                limits.max_modules
            ),
        });
    }
    let wanted = modules
        .iter()
        .map(|m| WantedModule {
            base: m.base_address(),
            name: base_name(&m.code_file()).to_owned(),
            debug_id: module_debug_id(m),
        })
        .collect();
    Ok((Arc::new(dump), wanted))
}

/// Which platform the dump's modules were built for, from its system info.
fn platform_of(dump: &Minidump<'static, Bytes>) -> ModulePlatform {
    use minidump::system_info::Os;
    match dump.get_stream::<MinidumpSystemInfo>().map(|info| info.os) {
        Ok(Os::Windows) => ModulePlatform::Windows,
        Ok(Os::Linux | Os::Android) => ModulePlatform::Linux,
        Ok(Os::MacOs | Os::Ios) => ModulePlatform::Apple,
        _ => ModulePlatform::Unknown,
    }
}

/// The module's debug ID, unless the dump has none (or only the nil ID) for it.
fn module_debug_id(module: &impl Module) -> Option<DebugId> {
    module.debug_identifier().filter(|id| !id.is_nil())
}

fn module_reports(
    state: &ProcessState,
    by_id: &HashMap<DebugId, Arc<ModuleSymbols>>,
) -> Vec<ModuleReport> {
    state
        .modules
        .iter()
        .map(|module| {
            let symbols = module_debug_id(module).and_then(|id| by_id.get(&id));
            ModuleReport {
                status: match symbols {
                    None => SymbolStatus::NoDebugId,
                    Some(s) => s.status,
                },
                symbols: symbols.and_then(|s| s.functions.as_ref().map(|c| c.source.clone())),
                cfi: symbols.and_then(|s| s.cfi.as_ref().map(|c| c.source.clone())),
                error: symbols.and_then(|s| s.error.clone()),
                origin: symbols.and_then(|s| s.origin.clone()),
                candidates: symbols.map(|s| s.candidates.clone()).unwrap_or_default(),
                lacks_il2cpp_mapping: symbols
                    .and_then(|s| s.functions.as_ref())
                    .is_some_and(|f| f.lacks_il2cpp_mapping()),
            }
        })
        .collect()
}
