//! The rules that pick a [`FaultClass`]: from the exception (signal, NTSTATUS or Mach exception
//! and its subcode), the access type (Windows parameters or the decoded faulting instruction),
//! the address and the memory it falls in, and sentinel frames for crashes the program raised
//! itself (abort, assertions, panics, stack-protector and allocator checks).

use minidump::system_info::Os;
use minidump_processor::{AdjustedAddress, ExceptionInfo};
use serde::{Deserialize, Serialize};

use super::catalogue::FaultClass;
use super::frames::FrameRef;
use crate::process::facts::{CrashFacts, ExceptionRecord, Region, RegionKind};
use crate::process::thrown::{ThrownException, NS_EXCEPTION_SIMULATED};

/// Addresses up to this are "near null": a null pointer plus a small field offset.
pub const NEAR_NULL: u64 = 4096;

/// How far below the stack pointer a fault still counts as running off the stack.
const STACK_OVERFLOW_REACH: u64 = 256 * 1024;

/// What the faulting access was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
    /// An instruction fetch.
    Exec,
    /// Not known (no exception parameters, instruction not decodable).
    Unknown,
}

/// Where the access type came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessSource {
    /// The OS said so (Windows access-violation parameters).
    ExceptionRecord,
    /// The instruction pointer is the faulting address, or is not in executable memory.
    InstructionPointer,
    /// Decoding the faulting instruction (minidump-processor's analysis).
    Instruction,
    /// Nothing told.
    None,
}

/// What the rules looked at.
pub struct Inputs<'a> {
    /// Operating system of the crashed process.
    pub os: Os,
    /// The raw exception record.
    pub exception: Option<&'a ExceptionRecord>,
    /// minidump-processor's exception analysis.
    pub info: Option<&'a ExceptionInfo>,
    /// Memory regions around the fault.
    pub facts: &'a CrashFacts,
    /// Crashing thread's instruction pointer.
    pub ip: Option<u64>,
    /// Crashing thread's stack pointer.
    pub sp: Option<u64>,
    /// Crashing thread's frames, inlined first.
    pub frames: &'a [FrameRef],
    /// Messages the process left for crash reporters: Crashpad module annotations and macOS
    /// crash-info records (libsystem_c writes `abort() called`, `Assertion failed: …`).
    pub messages: &'a [String],
    /// The uncaught exception the process recorded (Objective-C, re-raised by Crashpad).
    pub thrown: Option<&'a ThrownException>,
}

/// The decision and why.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The class.
    pub class: FaultClass,
    /// The access type used.
    pub access: Access,
    /// Where the access type came from.
    pub access_source: AccessSource,
    /// Whether the address counted as near null.
    pub near_null: bool,
    /// The rule that fired, in words.
    pub rule: String,
    /// Frames that decided the class (sentinels), if any.
    pub deciding_frames: Vec<FrameRef>,
}

/// Sentinel functions: a crash the program raised itself is classified by the machinery on
/// its stack. Checked in this order; the first class with a frame on the stack wins.
const SENTINELS: &[(FaultClass, &[&str])] = &[
    (
        FaultClass::OutOfMemory,
        &[
            "alloc::alloc::handle_alloc_error",
            "std::alloc::rust_oom",
            "std::alloc::default_alloc_error_hook",
            "__rg_oom",
            "__rust_alloc_error_handler",
            "alloc::raw_vec::capacity_overflow",
            "mozalloc_handle_oom",
            "NS_ABORT_OOM",
            "std::__throw_bad_alloc",
            "v8::internal::V8::FatalProcessOutOfMemory",
            "base::internal::OnNoMemoryInternal",
            "WTF::CrashOnOverflow",
        ],
    ),
    (
        FaultClass::HeapCorruption,
        &[
            "malloc_printerr",
            "RtlReportCriticalFailure",
            "RtlpReportHeapFailure",
            "RtlpHpHeapHandleError",
            "RtlpLogHeapFailure",
            "malloc_error_break",
        ],
    ),
    (
        FaultClass::StackBufferOverrun,
        &[
            "__stack_chk_fail",
            "__stack_chk_fail_local",
            "__chk_fail",
            "__fortify_fail",
            "__report_gsfailure",
            "__GSHandlerCheck",
        ],
    ),
    (
        FaultClass::Assertion,
        &[
            "__assert_fail",
            "__assert_perror_fail",
            "__assert_rtn",
            "_wassert",
            "_assert",
            "__libc_assert_fail",
        ],
    ),
    (
        FaultClass::RustPanic,
        &[
            "rust_panic",
            "rust_begin_unwind",
            "__rust_start_panic",
            "core::panicking::panic",
            "core::panicking::panic_fmt",
            "core::panicking::panic_nounwind",
            "std::panicking::begin_panic",
            "std::panicking::rust_panic_with_hook",
            "std::panicking::begin_panic_handler",
        ],
    ),
    (
        FaultClass::ObjcException,
        &[
            "objc_exception_throw",
            "objc_exception_rethrow",
            "_objc_terminate",
            "__exceptionPreprocess",
        ],
    ),
    (
        FaultClass::CxxException,
        &[
            "std::terminate",
            "std::__terminate",
            "__cxa_throw",
            "__cxa_rethrow",
            "__cxxabiv1::__terminate",
            "__gnu_cxx::__verbose_terminate_handler",
            "_CxxThrowException",
        ],
    ),
];

/// How many frames from the top are searched for sentinels.
const SENTINEL_DEPTH: usize = 40;

/// Whether `function` is `name`, ignoring parameters, templates' trailing parts and Rust hash
/// suffixes (`core::panicking::panic_fmt::h1234…`, `std::terminate()`).
fn is_function(function: &str, name: &str) -> bool {
    let function = function.strip_prefix("__rustc::").unwrap_or(function);
    let Some(rest) = function.strip_prefix(name) else {
        return false;
    };
    rest.is_empty()
        || rest.starts_with('(')
        || rest.starts_with('<')
        || rest.starts_with(' ')
        || rest.starts_with("::h")
        || rest.starts_with("::{{")
        || (rest.starts_with('_') && name.ends_with("handle_alloc_error"))
}

/// The first sentinel class on the stack, with the frames that show it.
fn sentinel(frames: &[FrameRef]) -> Option<(FaultClass, Vec<FrameRef>)> {
    let top = &frames[..frames.len().min(SENTINEL_DEPTH)];
    SENTINELS.iter().find_map(|(class, names)| {
        let hits: Vec<FrameRef> = top
            .iter()
            .filter(|f| {
                f.function
                    .as_deref()
                    .is_some_and(|function| names.iter().any(|n| is_function(function, n)))
            })
            .cloned()
            .collect();
        (!hits.is_empty()).then_some((*class, hits))
    })
}

/// Software-raised crashes: what the program asked for, refined by sentinel frames.
fn raised(fallback: FaultClass, why: &str, inputs: &Inputs<'_>) -> Decision {
    match sentinel(inputs.frames) {
        Some((class, frames)) => Decision {
            class,
            access: Access::Unknown,
            access_source: AccessSource::None,
            near_null: false,
            rule: format!(
                "{why}, raised by {}",
                frames[0].function.as_deref().unwrap_or_default()
            ),
            deciding_frames: frames,
        },
        None => {
            let message = |needle: &str| {
                inputs
                    .messages
                    .iter()
                    .find(|m| m.to_lowercase().contains(needle))
            };
            let (class, rule) = if let Some(m) = message("assertion failed") {
                (
                    FaultClass::Assertion,
                    format!("{why}, and the process left the message {m:?}"),
                )
            } else if let Some(m) = message("abort() called") {
                (
                    FaultClass::Abort,
                    format!("{why}, and the process left the message {m:?}"),
                )
            } else {
                (
                    fallback,
                    format!("{why}, no more specific machinery on the stack"),
                )
            };
            Decision {
                class,
                access: Access::Unknown,
                access_source: AccessSource::None,
                near_null: false,
                rule,
                deciding_frames: Vec::new(),
            }
        }
    }
}

fn simple(class: FaultClass, rule: impl Into<String>) -> Decision {
    Decision {
        class,
        access: Access::Unknown,
        access_source: AccessSource::None,
        near_null: false,
        rule: rule.into(),
        deciding_frames: Vec::new(),
    }
}

/// Whether an address is outside x86-64's canonical ranges.
fn is_non_canonical(address: u64) -> bool {
    (0x0000_8000_0000_0000..0xffff_8000_0000_0000).contains(&address)
}

fn is_stack_or_heap(region: Option<&Region>) -> Option<RegionKind> {
    match region?.kind {
        RegionKind::Stack => Some(RegionKind::Stack),
        RegionKind::Heap | RegionKind::Anonymous => Some(RegionKind::Heap),
        _ => None,
    }
}

/// An access fault at `address` (SIGSEGV, EXCEPTION_ACCESS_VIOLATION, EXC_BAD_ACCESS).
fn access_fault(
    address: u64,
    os_access: Option<Access>,
    what: &str,
    inputs: &Inputs<'_>,
) -> Decision {
    let (access, access_source) = access_type(address, os_access, inputs);
    let adjusted_null = matches!(
        inputs.info.and_then(|i| i.adjusted_address.as_ref()),
        Some(AdjustedAddress::NullPointerWithOffset(_))
    );
    let near_null = address <= NEAR_NULL || adjusted_null;
    let (class, rule) = if access == Access::Exec {
        exec_fault(inputs.ip.unwrap_or(address), near_null, inputs.facts)
    } else {
        data_fault(address, access, near_null, inputs)
    };
    Decision {
        class,
        access,
        access_source,
        near_null,
        rule: format!("{what}: {rule}"),
        deciding_frames: Vec::new(),
    }
}

/// The access type: the OS's word first, then the instruction pointer, then the decoded
/// instruction.
fn access_type(
    address: u64,
    os_access: Option<Access>,
    inputs: &Inputs<'_>,
) -> (Access, AccessSource) {
    let facts = inputs.facts;
    let ip_not_executable = facts.has_memory_map
        && inputs.ip.is_some()
        && facts.ip_region.as_ref().is_none_or(|r| !r.executable);
    if let Some(access) = os_access {
        return (access, AccessSource::ExceptionRecord);
    }
    if inputs.ip == Some(address) || ip_not_executable {
        return (Access::Exec, AccessSource::InstructionPointer);
    }
    let Some(accesses) = inputs.info.and_then(|i| i.memory_access_list.as_ref()) else {
        return (Access::Unknown, AccessSource::None);
    };
    // minidump-processor does not export its access-type enum; its Display names are `Read`,
    // `Write`, `ReadWrite` and `Underivable`.
    let kinds: Vec<String> = accesses.iter().map(|a| a.access_type.to_string()).collect();
    if kinds.iter().any(|k| k == "Write" || k == "ReadWrite") {
        (Access::Write, AccessSource::Instruction)
    } else if kinds.iter().any(|k| k == "Read") {
        (Access::Read, AccessSource::Instruction)
    } else {
        (Access::Unknown, AccessSource::None)
    }
}

/// Executing `target`: a null function pointer, code on the stack or heap, or a wild jump.
fn exec_fault(target: u64, near_null: bool, facts: &CrashFacts) -> (FaultClass, String) {
    match (
        target <= NEAR_NULL || near_null,
        is_stack_or_heap(facts.ip_region.as_ref()),
    ) {
        (true, _) => (
            FaultClass::NullExec,
            format!("executing near-null address {target:#x}"),
        ),
        (false, Some(RegionKind::Stack)) => (
            FaultClass::ExecOnStack,
            format!("executing {target:#x}, on a thread stack"),
        ),
        (false, Some(_)) => (
            FaultClass::ExecOnHeap,
            format!("executing {target:#x}, in heap or anonymous memory"),
        ),
        (false, None) => (
            FaultClass::WildExec,
            format!("executing {target:#x}, which is unmapped or not executable"),
        ),
    }
}

/// Reading or writing `address`: off the stack, non-canonical, near null, read-only memory,
/// or wild.
fn data_fault(
    address: u64,
    access: Access,
    near_null: bool,
    inputs: &Inputs<'_>,
) -> (FaultClass, String) {
    let (facts, info) = (inputs.facts, inputs.info);
    let guard_page = info
        .and_then(|i| i.memory_access_list.as_ref())
        .is_some_and(|l| l.iter().any(|a| a.address_info.is_likely_guard_page));
    let below_sp = inputs.sp.is_some_and(|sp| {
        address < sp.saturating_add(NEAR_NULL) && sp - address.min(sp) <= STACK_OVERFLOW_REACH
    });
    let address_unusable = facts
        .address_region
        .as_ref()
        .is_none_or(|r| !r.readable || !r.writable);
    if guard_page {
        return (
            FaultClass::StackOverflow,
            format!("access at {address:#x} hit a guard page"),
        );
    }
    if below_sp && !near_null && address_unusable {
        return (
            FaultClass::StackOverflow,
            format!("access at {address:#x}, just below the stack pointer, in unusable memory"),
        );
    }
    let non_canonical = matches!(
        info.and_then(|i| i.adjusted_address.as_ref()),
        Some(AdjustedAddress::NonCanonical(_))
    ) || is_non_canonical(address);
    if non_canonical {
        return (
            FaultClass::NonCanonicalAddress,
            format!("non-canonical address {address:#x}"),
        );
    }
    if near_null {
        let class = if access == Access::Write {
            FaultClass::NullWrite
        } else {
            FaultClass::NullRead
        };
        return (
            class,
            format!("{access:?} access at near-null address {address:#x}").to_lowercase(),
        );
    }
    if access != Access::Write {
        return (
            FaultClass::WildRead,
            format!("{access:?} access at unmapped or protected address {address:#x}")
                .to_lowercase(),
        );
    }
    match facts
        .address_region
        .as_ref()
        .filter(|r| r.readable && !r.writable)
    {
        Some(region) => (
            FaultClass::WriteToReadonly,
            format!(
                "write to {address:#x}, mapped read-only ({})",
                region.path.as_deref().unwrap_or("no file")
            ),
        ),
        None => (
            FaultClass::WildWrite,
            format!("write to unmapped or protected address {address:#x}"),
        ),
    }
}

/// `si_code` of a signal the kernel raised itself: for SIGSEGV on x86-64, a general-protection
/// fault (a non-canonical address, among others), for which the kernel reports address 0.
const SI_KERNEL: u32 = 0x80;

/// The address the fault touched: the one the OS reported, except for a general-protection
/// fault (SIGSEGV with `si_code` SI_KERNEL), where the kernel reports 0 and the faulting
/// instruction, as minidump-processor decoded it, says where the access really went.
pub fn touched_address(
    exception: Option<&ExceptionRecord>,
    info: Option<&ExceptionInfo>,
) -> Option<u64> {
    let reported = info.map(|i| i.address.0).or(exception.map(|e| e.address));
    let general_protection = exception.is_some_and(|e| e.code == 11 && e.flags == SI_KERNEL);
    if !general_protection {
        return reported;
    }
    let decoded = info.and_then(|i| match &i.adjusted_address {
        Some(AdjustedAddress::NonCanonical(address)) => Some(address.0),
        _ => i
            .memory_access_list
            .as_ref()?
            .iter()
            .map(|a| a.address_info.address)
            .find(|a| *a != 0),
    });
    decoded.or(reported)
}

/// Picks the class.
pub fn decide(inputs: &Inputs<'_>) -> Decision {
    let Some(exception) = inputs.exception else {
        return simple(
            FaultClass::DumpRequested,
            "no exception in the dump: it was requested, not caused by a crash",
        );
    };
    let address = touched_address(Some(exception), inputs.info).unwrap_or(exception.address);
    let decision = match inputs.os {
        Os::Windows => windows(exception, address, inputs),
        Os::MacOs | Os::Ios => mac(exception, address, inputs),
        _ => linux(exception, address, inputs),
    };
    smashed_stack(decision, inputs)
}

/// A memory fault inside the stack protector's failure path (`__stack_chk_fail` or
/// `__fortify_fail` crashing while they report, or while an unwinder walks the smashed
/// stack) is a stack buffer overrun: the fault is the reporter tripping over the damage.
fn smashed_stack(decision: Decision, inputs: &Inputs<'_>) -> Decision {
    if !decision.class.is_memory_fault() {
        return decision;
    }
    match sentinel(inputs.frames) {
        Some((FaultClass::StackBufferOverrun, frames)) => Decision {
            class: FaultClass::StackBufferOverrun,
            rule: format!(
                "{}, inside the stack protector's failure path: a stack buffer overrun",
                decision.rule
            ),
            deciding_frames: frames,
            ..decision
        },
        _ => decision,
    }
}

fn linux(exception: &ExceptionRecord, address: u64, inputs: &Inputs<'_>) -> Decision {
    // Crashpad's simulated exception (DumpWithoutCrashing) and Breakpad's "dump requested".
    if exception.code == 0 || exception.code == 0x0517_a7ed || exception.code == 0xffff_ffff {
        return raised(FaultClass::DumpRequested, "no signal recorded", inputs);
    }
    match exception.code {
        // The instruction's real address decides (non-canonical, or wild when the fault had
        // another cause); without a decoded instruction, a GP fault is a non-canonical access.
        11 if exception.flags == SI_KERNEL && address != 0 => access_fault(
            address,
            None,
            "SIGSEGV (si_code SI_KERNEL: general-protection fault)",
            inputs,
        ),
        11 if exception.flags == SI_KERNEL => simple(
            FaultClass::NonCanonicalAddress,
            "SIGSEGV with si_code SI_KERNEL: a general-protection fault (non-canonical address)",
        ),
        11 => access_fault(address, None, "SIGSEGV", inputs),
        7 => match access_fault(address, None, "SIGBUS", inputs) {
            d if d.class == FaultClass::StackOverflow => d,
            d => Decision {
                class: FaultClass::BusError,
                rule: format!(
                    "SIGBUS (si_code {}): bus error at {address:#x}",
                    exception.flags
                ),
                ..d
            },
        },
        8 => simple(
            FaultClass::DivideByZero,
            format!("SIGFPE (si_code {}): arithmetic fault", exception.flags),
        ),
        4 => raised(FaultClass::IllegalInstruction, "SIGILL", inputs),
        5 => raised(FaultClass::Breakpoint, "SIGTRAP", inputs),
        6 => raised(FaultClass::Abort, "SIGABRT", inputs),
        9 | 15 => raised(FaultClass::Abort, "killed by a signal", inputs),
        other => simple(FaultClass::Unknown, format!("signal {other}")),
    }
}

fn windows(exception: &ExceptionRecord, address: u64, inputs: &Inputs<'_>) -> Decision {
    let param = |i: usize| exception.parameters.get(i).copied();
    match exception.code {
        0xC000_0005 => {
            let access = match param(0) {
                Some(0) => Some(Access::Read),
                Some(1) => Some(Access::Write),
                Some(8) => Some(Access::Exec),
                _ => None,
            };
            access_fault(address, access, "EXCEPTION_ACCESS_VIOLATION", inputs)
        }
        0xC000_0006 => simple(
            FaultClass::BusError,
            "EXCEPTION_IN_PAGE_ERROR: the page backing the address could not be read",
        ),
        0xC000_00FD => simple(FaultClass::StackOverflow, "EXCEPTION_STACK_OVERFLOW"),
        0xC000_0409 => {
            let code = param(0).unwrap_or(u64::MAX);
            let (class, name) = match code {
                7 => (FaultClass::Abort, "FAST_FAIL_FATAL_APP_EXIT (abort)"),
                5 => (FaultClass::Abort, "FAST_FAIL_INVALID_ARG"),
                3 | 35 | 50 => (FaultClass::HeapCorruption, "a heap fast-fail code"),
                0 | 2 | 6 => (FaultClass::StackBufferOverrun, "a /GS stack cookie failure"),
                _ => (FaultClass::StackBufferOverrun, "a fast-fail check"),
            };
            match raised(class, "STATUS_STACK_BUFFER_OVERRUN", inputs) {
                d if class == FaultClass::Abort && d.class != FaultClass::Abort => d,
                d => Decision {
                    class,
                    rule: format!("STATUS_STACK_BUFFER_OVERRUN with fast-fail code {code}: {name}"),
                    ..d
                },
            }
        }
        0xC000_0374 => raised(FaultClass::HeapCorruption, "STATUS_HEAP_CORRUPTION", inputs)
            .with_class(FaultClass::HeapCorruption),
        0xC000_0094 | 0xC000_008E | 0xC000_0095 => simple(
            FaultClass::DivideByZero,
            "EXCEPTION_INT_DIVIDE_BY_ZERO / FLT_DIVIDE_BY_ZERO / INT_OVERFLOW",
        ),
        0xC000_001D | 0xC000_0096 => raised(
            FaultClass::IllegalInstruction,
            "EXCEPTION_ILLEGAL_INSTRUCTION / PRIV_INSTRUCTION",
            inputs,
        ),
        0x8000_0002 => simple(FaultClass::BusError, "EXCEPTION_DATATYPE_MISALIGNMENT"),
        0x8000_0003 | 0x4000_001F => raised(FaultClass::Breakpoint, "EXCEPTION_BREAKPOINT", inputs),
        0xE06D_7363 => raised(
            FaultClass::CxxException,
            "0xE06D7363: an uncaught C++ exception",
            inputs,
        )
        .with_class_unless_oom(FaultClass::CxxException),
        0xC000_0017 | 0x8007_000E | 0xC000_012D | 0xE000_0008 => {
            simple(FaultClass::OutOfMemory, "an out-of-memory status")
        }
        0x4000_0015 | 0xC000_000D | 0xC000_0602 => raised(
            FaultClass::Abort,
            "STATUS_FATAL_APP_EXIT / INVALID_PARAMETER / FAIL_FAST_EXCEPTION",
            inputs,
        ),
        0x0517_a7ed | 0 => raised(
            FaultClass::DumpRequested,
            "a simulated exception (dump without crashing)",
            inputs,
        ),
        other => raised(
            FaultClass::Unknown,
            &format!("exception code {other:#010x}"),
            inputs,
        ),
    }
}

fn mac(exception: &ExceptionRecord, address: u64, inputs: &Inputs<'_>) -> Decision {
    const KERN_PROTECTION_FAILURE: u32 = 2;
    const EXC_I386_GPFLT: u32 = 13;
    match exception.code {
        1 if exception.flags == EXC_I386_GPFLT => simple(
            FaultClass::NonCanonicalAddress,
            "EXC_BAD_ACCESS / EXC_I386_GPFLT: a general-protection fault",
        ),
        1 => {
            let decision = access_fault(address, None, "EXC_BAD_ACCESS", inputs);
            // A protection failure on a mapped read-only page is a write to read-only memory
            // even when the instruction could not be decoded.
            if exception.flags == KERN_PROTECTION_FAILURE
                && decision.class == FaultClass::WildRead
                && inputs
                    .facts
                    .address_region
                    .as_ref()
                    .is_some_and(|r| !r.writable)
            {
                return Decision {
                    class: FaultClass::WriteToReadonly,
                    rule: format!("EXC_BAD_ACCESS / KERN_PROTECTION_FAILURE at {address:#x}"),
                    ..decision
                };
            }
            decision
        }
        2 => raised(
            FaultClass::IllegalInstruction,
            "EXC_BAD_INSTRUCTION",
            inputs,
        ),
        3 => simple(FaultClass::DivideByZero, "EXC_ARITHMETIC"),
        5 | 10 => raised(FaultClass::Abort, "EXC_SOFTWARE / EXC_CRASH", inputs),
        6 => raised(FaultClass::Breakpoint, "EXC_BREAKPOINT", inputs),
        11 => simple(
            FaultClass::OutOfMemory,
            "EXC_RESOURCE: a resource limit was exceeded",
        ),
        0 | 0x0517_a7ed => raised(
            FaultClass::DumpRequested,
            "no Mach exception recorded",
            inputs,
        ),
        NS_EXCEPTION_SIMULATED => {
            let what = inputs.thrown.map_or_else(
                || "no name or reason recorded".to_owned(),
                ThrownException::summary,
            );
            let thrown_at = inputs
                .frames
                .iter()
                .find(|f| f.function.is_some())
                .cloned()
                .into_iter()
                .collect();
            Decision {
                class: FaultClass::ObjcException,
                access: Access::Unknown,
                access_source: AccessSource::None,
                near_null: false,
                rule: format!("0x43506E78 (CPnx): an uncaught Objective-C exception, {what}"),
                deciding_frames: thrown_at,
            }
        }
        other => raised(
            FaultClass::Unknown,
            &format!("Mach exception {other}"),
            inputs,
        ),
    }
}

impl Decision {
    /// Keeps `class` whatever the sentinels said (the status code is the stronger evidence).
    fn with_class(self, class: FaultClass) -> Decision {
        Decision { class, ..self }
    }

    /// Keeps `class` unless the stack shows an out-of-memory path (`bad_alloc` is thrown).
    fn with_class_unless_oom(self, class: FaultClass) -> Decision {
        if self.class == FaultClass::OutOfMemory {
            self
        } else {
            Decision { class, ..self }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_match_with_parameters_and_hashes() {
        assert!(is_function("std::terminate()", "std::terminate"));
        assert!(is_function(
            "core::panicking::panic_fmt::h0123456789abcdef",
            "core::panicking::panic_fmt"
        ));
        assert!(is_function("__assert_fail", "__assert_fail"));
        assert!(!is_function("__assert_failure_logger", "__assert_fail"));
        assert!(!is_function("my_abort", "abort"));
    }

    fn frame(function: &str) -> FrameRef {
        FrameRef {
            index: 0,
            frame: 0,
            inlined: false,
            function: Some(function.to_owned()),
            module: None,
            file: None,
            line: None,
        }
    }

    fn linux_inputs<'a>(
        exception: &'a ExceptionRecord,
        info: Option<&'a ExceptionInfo>,
        facts: &'a CrashFacts,
        frames: &'a [FrameRef],
    ) -> Inputs<'a> {
        Inputs {
            os: Os::Linux,
            exception: Some(exception),
            info,
            facts,
            ip: Some(0x40_1000),
            sp: Some(0x7ffc_0000_0000),
            frames,
            messages: &[],
            thrown: None,
        }
    }

    #[test]
    fn a_general_protection_fault_is_decided_by_the_address_the_instruction_touched() {
        // The kernel reports address 0 for a GP fault; the decoded instruction knows better.
        let exception = ExceptionRecord {
            code: 11,
            flags: SI_KERNEL,
            address: 0,
            parameters: Vec::new(),
        };
        let info = ExceptionInfo {
            // The classifier reads the raw record above, not minidump's reading of it.
            reason: minidump::CrashReason::Unknown(11, SI_KERNEL),
            address: minidump_processor::Address(0),
            adjusted_address: Some(AdjustedAddress::NonCanonical(minidump_processor::Address(
                0x4141_4141_4141_4141,
            ))),
            instruction_str: None,
            instruction_properties: None,
            memory_access_list: None,
            instruction_pointer_update: None,
            possible_bit_flips: Vec::new(),
            inconsistencies: Vec::new(),
        };
        let facts = CrashFacts::default();
        let d = decide(&linux_inputs(&exception, Some(&info), &facts, &[]));
        assert_eq!(d.class, FaultClass::NonCanonicalAddress, "{}", d.rule);
        assert!(!d.near_null, "not a null read: {}", d.rule);
        assert!(d.rule.contains("0x4141414141414141"), "{}", d.rule);
        assert_eq!(
            touched_address(Some(&exception), Some(&info)),
            Some(0x4141_4141_4141_4141)
        );
        // Without a decoded instruction, the reported address stays.
        assert_eq!(touched_address(Some(&exception), None), Some(0));
    }

    #[test]
    fn a_memory_fault_inside_the_stack_protector_is_a_stack_buffer_overrun() {
        let exception = ExceptionRecord {
            code: 11,
            flags: 1,
            address: 0x1234_5678_0000,
            parameters: Vec::new(),
        };
        let facts = CrashFacts::default();
        let frames = [
            frame("backtrace"),
            frame("__fortify_fail"),
            frame("__stack_chk_fail"),
            frame("parse_header"),
        ];
        let d = decide(&linux_inputs(&exception, None, &facts, &frames));
        assert_eq!(d.class, FaultClass::StackBufferOverrun, "{}", d.rule);
        assert_eq!(d.deciding_frames.len(), 2);
        // The same fault elsewhere stays what it is.
        let d = decide(&linux_inputs(&exception, None, &facts, &frames[3..]));
        assert_eq!(d.class, FaultClass::WildRead, "{}", d.rule);
    }

    #[test]
    fn canonical_ranges() {
        assert!(!is_non_canonical(0x7fff_ffff_ffff));
        assert!(is_non_canonical(0x8000_0000_0000));
        assert!(is_non_canonical(0xdead_beef_dead_beef));
        assert!(!is_non_canonical(0xffff_8000_0000_0000));
    }
}
