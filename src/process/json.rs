//! The processed crash as JSON, written straight from minidump-processor's [`ProcessState`].
//!
//! The schema is minidump-stackwalk's `--json` (every field, same names and meanings, see
//! minidump-processor's `json-schema.md`) plus faultline's additions (docs/OUTPUT.md). It used to
//! be produced by `ProcessState::print_json`, re-parsed and extended; that built and dropped two
//! JSON trees per crash and cost as much as processing the dump. Here every field is serialized
//! once, straight into the output. A test checks, on every fixture dump, that the result holds
//! exactly what `print_json` writes.
//!
//! Addresses are hex strings as wide as the dump's pointers (`0x` + 8 or 16 digits), as in
//! minidump-stackwalk.

use std::borrow::Cow;
use std::fmt::Debug;

use crate::symbols::identify::base_name as basename;
use minidump::system_info::PointerWidth;
use minidump::{MinidumpContext, MinidumpContextValidity, MinidumpModule, Module};
use minidump_processor::{AdjustedAddress, PossibleBitFlip, ProcessState};
use minidump_unwind::StackFrame;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::output::{ModuleReport, ProcessedCrash};
use super::view::{
    field_name, FrameView, Hex, InlineView, ModuleSymbolsView, ModuleView, ProcessedParts,
    Registers, ThreadView, UnloadedFrameView,
};

impl Serialize for ProcessedCrash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.serialize_fields(&mut map)?;
        map.end()
    }
}

impl ProcessedCrash {
    /// Writes every field of the processed-crash object into `map`, so that later stages
    /// (classification, grouping, the crash index) can add theirs to the same object.
    pub fn serialize_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        let s = &self.state;
        let w = Width::of(s);
        map.serialize_entry("status", "OK")?;
        map.serialize_entry("system_info", &SystemInfoJson(s))?;
        map.serialize_entry(
            field_name!(ProcessedParts, crash_info),
            &CrashInfoJson(s, w),
        )?;
        map.serialize_entry("lsb_release", &s.linux_standard_base.as_ref().map(LsbJson))?;
        map.serialize_entry(
            "proc_limits",
            &s.linux_proc_limits.as_ref().map(ProcLimitsJson),
        )?;
        map.serialize_entry("soft_errors", &s.soft_errors)?;
        map.serialize_entry(
            "mac_crash_info",
            &s.mac_crash_info.as_ref().map(|r| MacCrashInfoJson(r, w)),
        )?;
        map.serialize_entry(
            "mac_boot_args",
            &s.mac_boot_args.as_ref().map(|b| b.bootargs.as_ref()),
        )?;
        map.serialize_entry("linux_memory_map_count", &s.linux_memory_map_count)?;
        // The first module is always the main one.
        map.serialize_entry("main_module", &0)?;
        map.serialize_entry("modules_contains_cert_info", &!s.cert_info.is_empty())?;
        map.serialize_entry(field_name!(ProcessedParts, modules), &module_views(self))?;
        map.serialize_entry("pid", &s.process_id)?;
        map.serialize_entry(
            "process_uptime",
            &s.process_create_time
                .map(|t| s.time.duration_since(t).unwrap_or_default().as_secs()),
        )?;
        map.serialize_entry("thread_count", &s.threads.len())?;
        map.serialize_entry(field_name!(ProcessedParts, threads), &thread_views(self))?;
        map.serialize_entry("unloaded_modules", &UnloadedModulesJson(s, w))?;
        map.serialize_entry("handles", &s.handles.as_ref().map(HandlesJson))?;
        if let Some(crashing) = crashing_thread_view(self) {
            map.serialize_entry(field_name!(ProcessedParts, crashing_thread), &crashing)?;
        }
        if let Some(thrown) = &self.thrown {
            map.serialize_entry(field_name!(ProcessedParts, uncaught_exception), thrown)?;
        }
        map.serialize_entry("crashpad_annotations", &self.crashpad)?;
        map.serialize_entry("timings", &self.timings)
    }
}

/// Pointer width of the crashed process, for hex addresses.
#[derive(Clone, Copy)]
struct Width(bool);

impl Width {
    fn of(state: &ProcessState) -> Width {
        Width(state.system_info.cpu.pointer_width() == PointerWidth::Bits32)
    }

    fn hex(self, value: u64) -> Hex {
        Hex {
            value,
            narrow: self.0,
        }
    }
}

/// Serializes one JSON object from `"key": value` pairs, in order.
macro_rules! object {
    ($serializer:expr, { $($key:literal : $value:expr),* $(,)? }) => {{
        let mut map = $serializer.serialize_map(None)?;
        $( map.serialize_entry($key, &$value)?; )*
        map.end()
    }};
}

struct SystemInfoJson<'a>(&'a ProcessState);

impl Serialize for SystemInfoJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sys = &self.0.system_info;
        object!(serializer, {
            // Linux | Windows NT | Mac OS X
            "os": sys.os.long_name(),
            "os_ver": sys.format_os_version(),
            // x86 | amd64 | arm | ppc | sparc
            "cpu_arch": sys.cpu.to_string(),
            "cpu_info": sys.cpu_info,
            "cpu_count": sys.cpu_count,
            "cpu_microcode_version": sys.cpu_microcode_version.map(|n| format!("{n:#x}")),
        })
    }
}

struct CrashInfoJson<'a>(&'a ProcessState, Width);

impl Serialize for CrashInfoJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (s, w) = (self.0, self.1);
        let info = s.exception_info.as_ref();
        object!(serializer, {
            "type": info.map(|i| i.reason.to_string()),
            "address": info.map(|i| w.hex(i.address.0)),
            "adjusted_address": info.and_then(|i| i.adjusted_address.as_ref()).map(|a| AdjustedJson(a, w)),
            "instruction": info.and_then(|i| i.instruction_str.as_ref()),
            "memory_accesses": info.and_then(|i| i.memory_access_list.as_ref()).map(|list| {
                list.iter().map(|access| MemoryAccessJson {
                    address: w.hex(access.address_info.address),
                    size: access.size,
                    guard_page: access.address_info.is_likely_guard_page,
                    access_type: access
                        .access_type
                        .is_read_or_write()
                        .then(|| access.access_type.to_string().to_lowercase()),
                }).collect::<Vec<_>>()
            }),
            "instruction_pointer_update": info
                .and_then(|i| i.instruction_pointer_update.as_ref())
                .and_then(ip_update)
                .map(|(address, guard_page)| IpUpdateJson(w.hex(address), guard_page)),
            "possible_bit_flips": info
                .filter(|i| !i.possible_bit_flips.is_empty())
                .map(|i| i.possible_bit_flips.iter().map(|f| BitFlipJson(f, w)).collect::<Vec<_>>()),
            "crash_inconsistencies": info.map(|i| &i.inconsistencies),
            // thread index | null
            "crashing_thread": s.requesting_thread,
            "assertion": s.assertion,
        })
    }
}

struct AdjustedJson<'a>(&'a AdjustedAddress, Width);

impl Serialize for AdjustedJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AdjustedAddress::NonCanonical(address) => object!(serializer, {
                "kind": "non-canonical",
                "address": self.1.hex(address.0),
            }),
            AdjustedAddress::NullPointerWithOffset(offset) => object!(serializer, {
                "kind": "null-pointer",
                "offset": self.1.hex(offset.0),
            }),
        }
    }
}

/// One memory access of the crashing instruction.
struct MemoryAccessJson {
    address: Hex,
    size: Option<u8>,
    guard_page: bool,
    access_type: Option<String>,
}

impl Serialize for MemoryAccessJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("address", &self.address)?;
        map.serialize_entry("size", &self.size)?;
        // Present only when affirmative, as in minidump-stackwalk.
        if self.guard_page {
            map.serialize_entry("is_likely_guard_page", &true)?;
        }
        if let Some(access_type) = &self.access_type {
            map.serialize_entry("access_type", access_type)?;
        }
        map.end()
    }
}

/// Where the crashing instruction would have moved the instruction pointer, and whether that
/// address is likely a guard page. minidump-processor keeps this type private, so it is read
/// from its `Debug` form: `Update { address_info: MemoryAddressInfo { address: N, ..,
/// is_likely_guard_page: B } }` or `NoUpdate` (which is written as null). The comparison test
/// with `print_json` covers it.
fn ip_update(update: &impl Debug) -> Option<(u64, bool)> {
    let text = format!("{update:?}");
    let field = |name: &str| {
        let start = text.find(name)? + name.len();
        let rest = &text[start..];
        let end = rest.find([',', ' ', '}']).unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    };
    let address = field("address: ")?.parse().ok()?;
    let guard_page = field("is_likely_guard_page: ")? == "true";
    Some((address, guard_page))
}

struct IpUpdateJson(Hex, bool);

impl Serialize for IpUpdateJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("address", &self.0)?;
        if self.1 {
            map.serialize_entry("is_likely_guard_page", &true)?;
        }
        map.end()
    }
}

struct BitFlipJson<'a>(&'a PossibleBitFlip, Width);

impl Serialize for BitFlipJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let flip = self.0;
        object!(serializer, {
            "address": self.1.hex(flip.address.0),
            "source_register": flip.source_register,
            "details": flip.details,
            // minidump-stackwalk goes through a JSON tree, which holds the f32 as an f64.
            "confidence": flip.confidence.map(f64::from),
        })
    }
}

struct LsbJson<'a>(&'a minidump_processor::LinuxStandardBase);

impl Serialize for LsbJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let lsb = self.0;
        object!(serializer, {
            "id": lsb.id,
            "release": lsb.release,
            "codename": lsb.codename,
            "description": lsb.description,
        })
    }
}

struct ProcLimitsJson<'a>(&'a minidump_processor::LinuxProcLimits);

impl Serialize for ProcLimitsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // minidump-stackwalk lists them in hash order; sorted by name here, so the same dump
        // always gives the same JSON.
        let mut limits: Vec<_> = self.0.limits.iter().collect();
        limits.sort_by(|a, b| a.0.cmp(b.0));
        let limits: Vec<_> = limits
            .into_iter()
            .map(|(name, limit)| LimitJson(name, limit))
            .collect();
        object!(serializer, { "limits": limits })
    }
}

struct LimitJson<'a>(&'a String, &'a minidump_processor::LinuxProcLimit);

impl Serialize for LimitJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        object!(serializer, {
            "name": self.0,
            "soft": self.1.soft,
            "hard": self.1.hard,
            "unit": self.1.unit,
        })
    }
}

struct MacCrashInfoJson<'a>(&'a [minidump::RawMacCrashInfo], Width);

impl Serialize for MacCrashInfoJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let w = self.1;
        let records: Vec<_> = self.0.iter().map(|r| MacRecordJson(r, w)).collect();
        object!(serializer, {
            "num_records": self.0.len(),
            "records": records,
        })
    }
}

struct MacRecordJson<'a>(&'a minidump::RawMacCrashInfo, Width);

impl Serialize for MacRecordJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (r, w) = (self.0, self.1);
        object!(serializer, {
            "thread": r.thread().map(|v| w.hex(*v)),
            "dialog_mode": r.dialog_mode().map(|v| w.hex(*v)),
            "abort_cause": r.abort_cause().map(|v| w.hex(*v)),
            "module": r.module_path(),
            "message": r.message(),
            "signature_string": r.signature_string(),
            "backtrace": r.backtrace(),
            "message2": r.message2(),
        })
    }
}

/// The `modules[]` of a processed crash, as readers see them.
pub fn module_views(crash: &ProcessedCrash) -> Vec<ModuleView<'_>> {
    let w = Width::of(&crash.state);
    crash
        .state
        .modules
        .iter()
        .enumerate()
        .map(|(i, module)| module_view(&crash.state, module, crash.modules.get(i), w))
        .collect()
}

fn module_view<'a>(
    state: &'a ProcessState,
    module: &'a MinidumpModule,
    report: Option<&'a ModuleReport>,
    w: Width,
) -> ModuleView<'a> {
    let name = basename(&module.name);
    let stats = state.symbol_stats.get(name);
    let (debug_file, debug_id) = match stats.and_then(|s| s.extra_debug_info.as_ref()) {
        Some(info) => (
            Cow::Borrowed(basename(&info.debug_file)),
            info.debug_identifier,
        ),
        None => (
            match module.debug_file() {
                Some(Cow::Borrowed(file)) => Cow::Borrowed(basename(file)),
                Some(Cow::Owned(file)) => Cow::Owned(basename(&file).to_owned()),
                None => Cow::Borrowed(""),
            },
            module.debug_identifier().unwrap_or_default(),
        ),
    };
    let end = module.raw.base_of_image + u64::from(module.raw.size_of_image);
    ModuleView {
        base_addr: w.hex(module.raw.base_of_image),
        debug_file,
        debug_id: debug_id.breakpad().to_string(),
        end_addr: w.hex(end),
        filename: Cow::Borrowed(name),
        code_id: module
            .code_identifier()
            .unwrap_or_default()
            .as_str()
            .to_owned(),
        version: module.version(),
        cert_subject: state.cert_info.get(name).map(|s| Cow::Borrowed(s.as_str())),
        // Symbols are "missing" only when the provider was asked for them and had none.
        missing_symbols: stats.is_some_and(|s| !s.loaded_symbols),
        loaded_symbols: stats.is_some_and(|s| s.loaded_symbols),
        corrupt_symbols: stats.is_some_and(|s| s.corrupt_symbols),
        symbol_url: stats
            .and_then(|s| s.symbol_url.as_deref())
            .map(Cow::Borrowed),
        symbols: report.map(|report| ModuleSymbolsView {
            symbol_status: report.status,
            symbols_file: report.symbols.as_ref().map(Cow::Borrowed),
            cfi_file: report.cfi.as_ref().map(Cow::Borrowed),
            symbols_error: report.error.as_deref().map(Cow::Borrowed),
            symbols_origin: report.origin.as_deref().map(Cow::Borrowed),
            symbol_candidates: Cow::Borrowed(&report.candidates),
        }),
    }
}

/// The `threads[]` of a processed crash, as readers see them.
pub fn thread_views(crash: &ProcessedCrash) -> Vec<ThreadView<'_>> {
    (0..crash.state.threads.len())
        .map(|i| thread_view(crash, i, false))
        .collect()
}

/// The top-level `crashing_thread`: the crashing thread again, with its index and the first
/// frame's registers (only when it has a frame, as minidump-stackwalk does).
pub fn crashing_thread_view(crash: &ProcessedCrash) -> Option<ThreadView<'_>> {
    let index = crash.state.requesting_thread?;
    let thread = crash.state.threads.get(index)?;
    (!thread.frames.is_empty()).then(|| thread_view(crash, index, true))
}

/// Thread `index`; `crashing`: the top-level `crashing_thread` copy (which adds
/// `threads_index` and the first frame's `registers`).
fn thread_view(crash: &ProcessedCrash, index: usize, crashing: bool) -> ThreadView<'_> {
    let thread = &crash.state.threads[index];
    let w = Width::of(&crash.state);
    let variables = crash.variables.get(&index);
    ThreadView {
        frame_count: thread.frames.len(),
        last_error_value: thread.last_error_value.map(|e| e.to_string()),
        thread_name: thread.thread_name.as_deref().map(Cow::Borrowed),
        thread_id: Some(thread.thread_id),
        frames: thread
            .frames
            .iter()
            .enumerate()
            .map(|(f, frame)| {
                let mut view = frame_view(f, frame, w, crashing && f == 0);
                view.variables = variables
                    .and_then(|v| v.get(f))
                    .filter(|v| !v.is_empty())
                    .map(|v| Cow::Borrowed(v.as_slice()));
                if let Some(generated) = crash.generated.get(&(index, f)) {
                    view.generated_file = Some(Cow::Borrowed(&generated.file));
                    view.generated_line = Some(generated.line);
                }
                view
            })
            .collect(),
        threads_index: crashing.then_some(index),
    }
}

fn frame_view(index: usize, f: &StackFrame, w: Width, registers: bool) -> FrameView<'_> {
    FrameView {
        frame: index,
        module: f.module.as_ref().map(|m| Cow::Borrowed(basename(&m.name))),
        function: f.function_name.as_deref().map(Cow::Borrowed),
        file: f.source_file_name.as_deref().map(Cow::Borrowed),
        line: f.source_line,
        generated_file: None,
        generated_line: None,
        column: None,
        offset: Some(w.hex(f.instruction)),
        inlines: (!f.inlines.is_empty()).then(|| {
            f.inlines
                .iter()
                .map(|inline| InlineView {
                    function: Cow::Borrowed(&inline.function_name),
                    file: inline.source_file_name.as_deref().map(Cow::Borrowed),
                    line: inline.source_line,
                })
                .collect()
        }),
        module_offset: f
            .module
            .as_ref()
            .map(|m| w.hex(f.instruction.wrapping_sub(m.raw.base_of_image))),
        unloaded_modules: (!f.unloaded_modules.is_empty()).then(|| {
            f.unloaded_modules
                .iter()
                .map(|(module, offsets)| UnloadedFrameView {
                    module: Cow::Borrowed(module),
                    offsets: offsets.iter().map(|o| w.hex(*o)).collect(),
                })
                .collect()
        }),
        function_offset: f
            .function_base
            .map(|base| w.hex(f.instruction.wrapping_sub(base))),
        missing_symbols: f.function_name.is_none(),
        // none | scan | cfi_scan | frame_pointer | cfi | context | prewalked
        trust: Cow::Borrowed(f.trust.as_str()),
        registers: registers.then(|| registers_of(&f.context)),
        variables: None,
    }
}

/// The general-purpose registers the dump says are valid, formatted as minidump-stackwalk does.
fn registers_of(ctx: &MinidumpContext) -> Registers {
    Registers(
        ctx.general_purpose_registers()
            .iter()
            .filter(|register| match &ctx.valid {
                MinidumpContextValidity::All => true,
                MinidumpContextValidity::Some(which) => which.contains(**register),
            })
            .map(|&register| (Cow::Borrowed(register), ctx.format_register(register)))
            .collect(),
    )
}

struct UnloadedModulesJson<'a>(&'a ProcessState, Width);

impl Serialize for UnloadedModulesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (s, w) = (self.0, self.1);
        serializer.collect_seq(s.unloaded_modules.iter().map(|module| {
            let end = module.raw.base_of_image + u64::from(module.raw.size_of_image);
            UnloadedModuleJson {
                base: w.hex(module.raw.base_of_image),
                code_id: module.code_identifier().unwrap_or_default(),
                end: w.hex(end),
                name: &module.name,
                cert_subject: s.cert_info.get(&module.name),
            }
        }))
    }
}

struct UnloadedModuleJson<'a> {
    base: Hex,
    code_id: symbolic::common::CodeId,
    end: Hex,
    name: &'a str,
    cert_subject: Option<&'a String>,
}

impl Serialize for UnloadedModuleJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        object!(serializer, {
            "base_addr": self.base,
            "code_id": self.code_id.as_str(),
            "end_addr": self.end,
            "filename": self.name,
            "cert_subject": self.cert_subject,
        })
    }
}

struct HandlesJson<'a>(&'a minidump::MinidumpHandleDataStream);

impl Serialize for HandlesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(HandleJson))
    }
}

struct HandleJson<'a>(&'a minidump::MinidumpHandleDescriptor);

impl Serialize for HandleJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        object!(serializer, {
            "handle": self.0.raw.handle(),
            "type_name": self.0.type_name,
            "object_name": self.0.object_name,
        })
    }
}
