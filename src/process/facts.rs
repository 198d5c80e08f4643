//! Facts about the fault that minidump-processor's result does not keep but the classifier
//! needs: the raw exception record (signal or exception code and subcode, parameters), and what
//! the memory at the crash address, instruction pointer and stack pointer was (mapped, with which
//! protection, stack / heap / image), read from the dump's memory-info list or Linux maps.

use std::ops::Range;

use minidump::system_info::Cpu;
use minidump::{
    Minidump, MinidumpException, MinidumpLinuxMaps, MinidumpMemoryInfoList, MinidumpSystemInfo,
    MinidumpThreadList, UnifiedMemoryInfo, UnifiedMemoryInfoList,
};
use procfs_core::process::MMapPath;
use serde::{Deserialize, Serialize};

/// The exception record as the dump stores it.
#[derive(Debug, Clone, Serialize)]
pub struct ExceptionRecord {
    /// Windows: NTSTATUS / exception code. Linux: signal number. macOS: EXC_* type.
    pub code: u32,
    /// Linux: `si_code`. macOS: the Mach subcode (KERN_INVALID_ADDRESS…). Windows: flags.
    pub flags: u32,
    /// The exception address (data address for access faults, code address otherwise).
    pub address: u64,
    /// Exception parameters (Windows access violations: access type, address; fast-fail code
    /// for STATUS_STACK_BUFFER_OVERRUN).
    pub parameters: Vec<u64>,
}

/// What kind of memory a region is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionKind {
    /// A thread's stack.
    Stack,
    /// The heap (Linux `[heap]`, or private committed memory on Windows).
    Heap,
    /// A mapped file: an executable, library or data file.
    Image,
    /// Anonymous memory (mmap).
    Anonymous,
    /// Something else (vdso, shared memory…).
    Other,
}

/// One memory region around the fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Region {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Readable.
    pub readable: bool,
    /// Writable.
    pub writable: bool,
    /// Executable.
    pub executable: bool,
    /// Stack, heap, image…
    pub kind: RegionKind,
    /// The mapped file, for images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Memory and exception facts for the classifier.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CrashFacts {
    /// The raw exception record; `None` for a dump taken without a crash.
    pub exception: Option<ExceptionRecord>,
    /// Whether the dump has memory protection information at all (without it, regions are
    /// unknown rather than unmapped).
    pub has_memory_map: bool,
    /// The region holding the crash address (`None`: unmapped, or no map).
    pub address_region: Option<Region>,
    /// The region holding the crashing instruction.
    pub ip_region: Option<Region>,
    /// The region holding the crashing thread's stack pointer.
    pub sp_region: Option<Region>,
    /// Captured stack ranges of every thread.
    pub thread_stacks: Vec<Range<u64>>,
    /// Stack and heap regions that are writable and executable at once (W+X): data an
    /// attacker can write there can run, whatever the fault was.
    pub writable_executable: Vec<Region>,
    /// x86-64 dumps: up to [`CODE_BYTES`] bytes of machine code from the crashing
    /// instruction on, when the dump captured them (for the classifier's data-flow pass).
    #[serde(skip)]
    pub code: Vec<u8>,
}

/// How much code after the crashing instruction is kept: enough for a long basic block.
pub const CODE_BYTES: usize = 256;

/// The machine code at `ip`, from the dump's memory list, when the dump is an x86-64 one.
fn code_at(dump: &Minidump<'_, bytes::Bytes>, ip: Option<u64>) -> Vec<u8> {
    let amd64 = dump
        .get_stream::<MinidumpSystemInfo>()
        .is_ok_and(|info| info.cpu == Cpu::X86_64);
    let (Some(ip), true) = (ip, amd64) else {
        return Vec::new();
    };
    let Some(memory) = dump.get_memory() else {
        return Vec::new();
    };
    let Some(region) = memory.memory_at_address(ip) else {
        return Vec::new();
    };
    let bytes = region.bytes();
    let start = usize::try_from(ip - region.base_address()).unwrap_or(usize::MAX);
    bytes
        .get(start..)
        .map(|code| code[..code.len().min(CODE_BYTES)].to_vec())
        .unwrap_or_default()
}

fn region(info: UnifiedMemoryInfo<'_>, thread_stacks: &[Range<u64>]) -> Option<Region> {
    let range = info.memory_range()?;
    let on_a_stack = thread_stacks
        .iter()
        .any(|s| s.start < range.end && range.start < s.end);
    let (kind, path) = match &info {
        UnifiedMemoryInfo::Map(map) => match &map.map.pathname {
            MMapPath::Stack | MMapPath::TStack(_) => (RegionKind::Stack, None),
            MMapPath::Heap => (RegionKind::Heap, None),
            MMapPath::Path(path) => (RegionKind::Image, Some(path.display().to_string())),
            MMapPath::Anonymous if on_a_stack => (RegionKind::Stack, None),
            MMapPath::Anonymous => (RegionKind::Anonymous, None),
            _ => (RegionKind::Other, None),
        },
        UnifiedMemoryInfo::Info(info) => {
            // MEM_IMAGE = 0x1000000, MEM_MAPPED = 0x40000, MEM_PRIVATE = 0x20000
            let ty = info.ty.bits();
            if ty & 0x100_0000 != 0 {
                (RegionKind::Image, None)
            } else if on_a_stack {
                (RegionKind::Stack, None)
            } else if ty & 0x2_0000 != 0 {
                (RegionKind::Heap, None)
            } else {
                (RegionKind::Anonymous, None)
            }
        }
    };
    Some(Region {
        start: range.start,
        end: range.end,
        readable: info.is_readable(),
        writable: info.is_writable(),
        executable: info.is_executable(),
        kind,
        path,
    })
}

/// Reads the facts from `dump`, given the crash address and the crashing thread's instruction
/// and stack pointers (as minidump-processor determined them).
pub fn read(
    dump: &Minidump<'_, bytes::Bytes>,
    crash_address: Option<u64>,
    ip: Option<u64>,
    sp: Option<u64>,
) -> CrashFacts {
    let exception = dump.get_stream::<MinidumpException>().ok().map(|e| {
        let record = &e.raw.exception_record;
        let count = (record.number_parameters as usize).min(record.exception_information.len());
        ExceptionRecord {
            code: record.exception_code,
            flags: record.exception_flags,
            address: record.exception_address,
            parameters: record.exception_information[..count].to_vec(),
        }
    });
    let thread_stacks: Vec<Range<u64>> = dump
        .get_stream::<MinidumpThreadList>()
        .map(|threads| {
            threads
                .threads
                .iter()
                .map(|t| {
                    let start = t.raw.stack.start_of_memory_range;
                    start..start.saturating_add(u64::from(t.raw.stack.memory.data_size))
                })
                .collect()
        })
        .unwrap_or_default();
    // Linux maps name the file or [stack]/[heap] behind each region; prefer them when a dump
    // (minidump-writer's do) carries both.
    let memory = match dump.get_stream::<MinidumpLinuxMaps>().ok() {
        Some(maps) => UnifiedMemoryInfoList::new(None, Some(maps)),
        None => UnifiedMemoryInfoList::new(dump.get_stream::<MinidumpMemoryInfoList>().ok(), None),
    };
    let lookup = |address: Option<u64>| {
        let memory = memory.as_ref()?;
        region(memory.memory_info_at_address(address?)?, &thread_stacks)
    };
    let writable_executable = memory
        .as_ref()
        .map(|memory| {
            memory
                .iter()
                .filter(|info| info.is_writable() && info.is_executable())
                .filter_map(|info| {
                    // The heap as Linux names it (`[heap]`); private memory on Windows is
                    // also where JIT compilers keep their code, so W+X there says nothing.
                    let named_heap = matches!(&info, UnifiedMemoryInfo::Map(m)
                        if matches!(m.map.pathname, MMapPath::Heap));
                    let region = region(info, &thread_stacks)?;
                    (region.kind == RegionKind::Stack || named_heap).then_some(region)
                })
                .collect()
        })
        .unwrap_or_default();
    CrashFacts {
        code: code_at(dump, ip),
        writable_executable,
        has_memory_map: memory.is_some(),
        address_region: lookup(crash_address),
        ip_region: lookup(ip),
        sp_region: lookup(sp),
        exception,
        thread_stacks,
    }
}
