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
use minidump_unwind::{CallStack, StackFrame};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::output::{ModuleReport, ProcessedCrash};

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
        map.serialize_entry("crash_info", &CrashInfoJson(s, w))?;
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
        map.serialize_entry("modules", &ModulesJson(self, w))?;
        map.serialize_entry("pid", &s.process_id)?;
        map.serialize_entry(
            "process_uptime",
            &s.process_create_time
                .map(|t| s.time.duration_since(t).unwrap_or_default().as_secs()),
        )?;
        map.serialize_entry("thread_count", &s.threads.len())?;
        map.serialize_entry("threads", &ThreadsJson(s, w))?;
        map.serialize_entry("unloaded_modules", &UnloadedModulesJson(s, w))?;
        map.serialize_entry("handles", &s.handles.as_ref().map(HandlesJson))?;
        // The crashing thread again, with its index and the first frame's registers (only when
        // it has a frame, as minidump-stackwalk does).
        if let Some(index) = s.requesting_thread {
            if let Some(thread) = s.threads.get(index).filter(|t| !t.frames.is_empty()) {
                let crashing = ThreadJson {
                    thread,
                    w,
                    crashing_index: Some(index),
                };
                map.serialize_entry("crashing_thread", &crashing)?;
            }
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
        Hex(value, self)
    }
}

/// An address as a `0x`-prefixed, zero-padded hex string.
struct Hex(u64, Width);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if (self.1).0 {
            serializer.collect_str(&format_args!("{:#010x}", self.0))
        } else {
            serializer.collect_str(&format_args!("{:#018x}", self.0))
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

struct ModulesJson<'a>(&'a ProcessedCrash, Width);

impl Serialize for ModulesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let crash = self.0;
        serializer.collect_seq(crash.state.modules.iter().enumerate().map(|(i, module)| {
            ModuleJson {
                state: &crash.state,
                module,
                report: crash.modules.get(i),
                w: self.1,
            }
        }))
    }
}

struct ModuleJson<'a> {
    state: &'a ProcessState,
    module: &'a MinidumpModule,
    report: Option<&'a ModuleReport>,
    w: Width,
}

impl Serialize for ModuleJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (module, w) = (self.module, self.w);
        let full_name = module.code_file();
        let name = basename(&full_name);
        let stats = self.state.symbol_stats.get(name);
        // Symbols are "missing" only when the provider was asked for them and had none.
        let missing_symbols = stats.is_some_and(|s| !s.loaded_symbols);
        let module_debug_file = module.debug_file().unwrap_or(Cow::Borrowed(""));
        let (debug_file, debug_id) = match stats.and_then(|s| s.extra_debug_info.as_ref()) {
            Some(info) => (info.debug_file.as_str(), info.debug_identifier),
            None => (
                &*module_debug_file,
                module.debug_identifier().unwrap_or_default(),
            ),
        };
        let end = module.raw.base_of_image + u64::from(module.raw.size_of_image);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("base_addr", &w.hex(module.raw.base_of_image))?;
        map.serialize_entry("debug_file", basename(debug_file))?;
        map.serialize_entry("debug_id", &debug_id.breakpad().to_string())?;
        map.serialize_entry("end_addr", &w.hex(end))?;
        map.serialize_entry("filename", name)?;
        map.serialize_entry(
            "code_id",
            module.code_identifier().unwrap_or_default().as_str(),
        )?;
        map.serialize_entry("version", &module.version())?;
        map.serialize_entry("cert_subject", &self.state.cert_info.get(name))?;
        map.serialize_entry("missing_symbols", &missing_symbols)?;
        map.serialize_entry("loaded_symbols", &stats.is_some_and(|s| s.loaded_symbols))?;
        map.serialize_entry("corrupt_symbols", &stats.is_some_and(|s| s.corrupt_symbols))?;
        map.serialize_entry("symbol_url", &stats.and_then(|s| s.symbol_url.as_ref()))?;
        if let Some(report) = self.report {
            map.serialize_entry("symbol_status", &report.status)?;
            map.serialize_entry("symbols_file", &report.symbols)?;
            map.serialize_entry("cfi_file", &report.cfi)?;
            if let Some(error) = &report.error {
                map.serialize_entry("symbols_error", error)?;
            }
        }
        map.end()
    }
}

struct ThreadsJson<'a>(&'a ProcessState, Width);

impl Serialize for ThreadsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.threads.iter().map(|thread| ThreadJson {
            thread,
            w: self.1,
            crashing_index: None,
        }))
    }
}

/// One thread; with `crashing_index`, the top-level `crashing_thread` copy (which adds
/// `threads_index` and the first frame's `registers`).
struct ThreadJson<'a> {
    thread: &'a CallStack,
    w: Width,
    crashing_index: Option<usize>,
}

impl Serialize for ThreadJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let thread = self.thread;
        let crashing = self.crashing_index.is_some();
        let frames = FramesJson {
            frames: &thread.frames,
            w: self.w,
            registers: crashing,
        };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("frame_count", &thread.frames.len())?;
        map.serialize_entry(
            "last_error_value",
            &thread.last_error_value.map(|e| e.to_string()),
        )?;
        map.serialize_entry("thread_name", &thread.thread_name)?;
        map.serialize_entry("thread_id", &thread.thread_id)?;
        map.serialize_entry("frames", &frames)?;
        if let Some(index) = self.crashing_index {
            map.serialize_entry("threads_index", &index)?;
        }
        map.end()
    }
}

struct FramesJson<'a> {
    frames: &'a [StackFrame],
    w: Width,
    /// Add the registers to the first frame (crashing thread).
    registers: bool,
}

impl Serialize for FramesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.frames
                .iter()
                .enumerate()
                .map(|(index, frame)| FrameJson {
                    index,
                    frame,
                    w: self.w,
                    registers: self.registers && index == 0,
                }),
        )
    }
}

struct FrameJson<'a> {
    index: usize,
    frame: &'a StackFrame,
    w: Width,
    registers: bool,
}

impl Serialize for FrameJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (f, w) = (self.frame, self.w);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("frame", &self.index)?;
        map.serialize_entry("module", &f.module.as_ref().map(|m| basename(&m.name)))?;
        map.serialize_entry("function", &f.function_name)?;
        map.serialize_entry("file", &f.source_file_name)?;
        map.serialize_entry("line", &f.source_line)?;
        map.serialize_entry("offset", &w.hex(f.instruction))?;
        let inlines =
            (!f.inlines.is_empty()).then(|| f.inlines.iter().map(InlineJson).collect::<Vec<_>>());
        map.serialize_entry("inlines", &inlines)?;
        map.serialize_entry(
            "module_offset",
            &f.module
                .as_ref()
                .map(|m| w.hex(f.instruction.wrapping_sub(m.raw.base_of_image))),
        )?;
        let unloaded = (!f.unloaded_modules.is_empty()).then(|| {
            f.unloaded_modules
                .iter()
                .map(|(module, offsets)| UnloadedFrameJson(module, offsets, w))
                .collect::<Vec<_>>()
        });
        map.serialize_entry("unloaded_modules", &unloaded)?;
        map.serialize_entry(
            "function_offset",
            &f.function_base
                .map(|base| w.hex(f.instruction.wrapping_sub(base))),
        )?;
        map.serialize_entry("missing_symbols", &f.function_name.is_none())?;
        // none | scan | cfi_scan | frame_pointer | cfi | context | prewalked
        map.serialize_entry("trust", f.trust.as_str())?;
        if self.registers {
            map.serialize_entry("registers", &RegistersJson(&f.context))?;
        }
        map.end()
    }
}

struct InlineJson<'a>(&'a minidump_unwind::InlineFrame);

impl Serialize for InlineJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        object!(serializer, {
            "function": self.0.function_name,
            "file": self.0.source_file_name,
            "line": self.0.source_line,
        })
    }
}

struct UnloadedFrameJson<'a>(&'a String, &'a std::collections::BTreeSet<u64>, Width);

impl Serialize for UnloadedFrameJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let offsets: Vec<_> = self.1.iter().map(|o| self.2.hex(*o)).collect();
        object!(serializer, {
            "module": self.0,
            "offsets": offsets,
        })
    }
}

/// The general-purpose registers the dump says are valid, formatted as minidump-stackwalk does.
struct RegistersJson<'a>(&'a MinidumpContext);

impl Serialize for RegistersJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ctx = self.0;
        let mut map = serializer.serialize_map(None)?;
        for &register in ctx.general_purpose_registers() {
            let valid = match &ctx.valid {
                MinidumpContextValidity::All => true,
                MinidumpContextValidity::Some(which) => which.contains(register),
            };
            if valid {
                map.serialize_entry(register, &ctx.format_register(register))?;
            }
        }
        map.end()
    }
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
