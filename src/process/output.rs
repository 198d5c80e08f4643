//! The processed crash and its renderings: minidump-stackwalk's JSON (every field it has, same
//! names and meanings) plus faultline's additions, and a readable text form.

use std::collections::BTreeMap;

use minidump::{Minidump, MinidumpAnnotation, MinidumpCrashpadInfo};
use minidump_processor::ProcessState;
use serde::Serialize;
use serde_json::Value;

use super::facts::CrashFacts;
use super::modules::SymbolStatus;
use super::thrown::ThrownException;
use crate::symbols::derive::CacheSource;
use crate::upstream::Candidate;

/// What faultline found for one module of the dump (same order as `modules[]`).
#[derive(Debug, Clone, Serialize)]
pub struct ModuleReport {
    /// found / missing / malformed / no_debug_id.
    pub status: SymbolStatus,
    /// The stored file that served functions and lines.
    pub symbols: Option<CacheSource>,
    /// The stored file that served unwind rules.
    pub cfi: Option<CacheSource>,
    /// Why symbols are malformed.
    pub error: Option<String>,
    /// Where the file serving functions came from: `uploaded` or an upstream source's ID.
    pub origin: Option<String>,
    /// Every upstream location asked for the module's files, with what each gave.
    pub candidates: Vec<Candidate>,
    /// Its code is IL2CPP's and its line mapping is not stored.
    pub lacks_il2cpp_mapping: bool,
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    /// Reading the dump's header, thread and module lists.
    pub parse_ms: f64,
    /// Fetching (and if needed building) every module's symbols.
    pub symbols_ms: f64,
    /// Walking and symbolicating every thread.
    pub walk_ms: f64,
    /// All of it.
    pub total_ms: f64,
}

/// Crashpad's annotations: process-wide key/values and per-module lists and key/values.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CrashpadAnnotations {
    /// `simple_annotations` of the process.
    pub simple: BTreeMap<String, String>,
    /// Annotations attached to modules.
    pub modules: Vec<ModuleAnnotations>,
}

/// Annotations Crashpad attached to one module.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleAnnotations {
    /// Index into `modules[]`.
    pub module_index: usize,
    /// `list_annotations` (e.g. abort messages).
    pub list: Vec<String>,
    /// `simple_annotations`.
    pub simple: BTreeMap<String, String>,
    /// String-valued annotation objects.
    pub objects: BTreeMap<String, String>,
}

/// The generated C++ line of each frame (by thread index, then frame index) whose file and
/// line an IL2CPP line mapping moved to the C# they were generated from.
pub type GeneratedLines = std::collections::HashMap<(usize, usize), super::location::GeneratedLine>;

/// One processed dump.
pub struct ProcessedCrash {
    /// minidump-processor's result: threads, frames, modules, crash info.
    pub state: ProcessState,
    /// Per-module symbol status, in `state.modules` order.
    pub modules: Vec<ModuleReport>,
    /// Crashpad annotations, when the dump has a Crashpad info stream.
    pub crashpad: Option<CrashpadAnnotations>,
    /// Exception record and memory regions around the fault, for the classifier.
    pub facts: CrashFacts,
    /// The uncaught exception the process recorded before it died (an Objective-C exception
    /// re-raised by Crashpad), with its throw stack.
    pub thrown: Option<ThrownException>,
    /// Parameters and locals of the frames of the threads `processing.variables` chose, by
    /// thread index, one list per frame.
    pub variables: super::variables::ThreadsVariables,
    /// The crashing frame's variable the fault address came from (memory access faults).
    pub fault_variable: Option<crate::variables::FaultVariable>,
    /// The generated C++ lines of frames an IL2CPP line mapping moved to C#.
    pub generated: GeneratedLines,
    /// Processing timings.
    pub timings: Timings,
}

impl CrashpadAnnotations {
    /// The first non-empty value of `key` among the process's annotations and the modules'
    /// simple annotations and string annotation objects.
    pub fn value(&self, key: &str) -> Option<&str> {
        let modules = self
            .modules
            .iter()
            .flat_map(|m| [m.simple.get(key), m.objects.get(key)]);
        std::iter::once(self.simple.get(key))
            .chain(modules)
            .flatten()
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
    }
}

/// Reads the Crashpad info stream, if any.
pub fn crashpad_annotations(dump: &Minidump<'_, bytes::Bytes>) -> Option<CrashpadAnnotations> {
    let info = dump.get_stream::<MinidumpCrashpadInfo>().ok()?;
    Some(CrashpadAnnotations {
        simple: info.simple_annotations.clone(),
        modules: info
            .module_list
            .iter()
            .map(|m| ModuleAnnotations {
                module_index: m.module_index,
                list: m.list_annotations.clone(),
                simple: m.simple_annotations.clone(),
                objects: m
                    .annotation_objects
                    .iter()
                    .filter_map(|(k, v)| match v {
                        MinidumpAnnotation::String(s) => Some((k.clone(), s.clone())),
                        _ => None,
                    })
                    .collect(),
            })
            .collect(),
    })
}

impl ProcessedCrash {
    /// minidump-stackwalk's `--json` output plus `modules[].symbol_status`,
    /// `modules[].symbols_file`, `modules[].cfi_file`, `crashpad_annotations` and `timings`, as
    /// a JSON tree (the serializer in `json.rs` writes the same without building one).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("processed crashes serialize")
    }

    /// About how many bytes its JSON takes (to allocate the output once).
    pub fn json_size_hint(&self) -> usize {
        let frames: usize = self.state.threads.iter().map(|t| t.frames.len()).sum();
        16 * 1024 + 400 * self.modules.len() + 500 * frames
    }
}
