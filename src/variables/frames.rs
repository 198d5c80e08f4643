//! The variables of a walked thread: for each frame, the scopes of its function that cover the
//! frame's instruction, and each parameter and local in them located against that frame's
//! registers (as the unwinder recovered them) and read from the dump's memory.

use std::borrow::Cow;

use compact_str::CompactString;
use std::cell::OnceCell;
use std::ops::Range;
use std::sync::Arc;

use minidump::{
    MinidumpContext, MinidumpModuleList, MinidumpRawContext, Module, UnifiedMemoryList,
};
use minidump_unwind::{FrameTrust, StackFrame};
use serde::{Deserialize, Serialize};

use super::eval::{self, CapturedMemory, FrameContext};
use super::fault::FaultVariable;
use super::render::{AddressMap, RenderLimits, Renderer, Value};
use super::table::{ScopeKind, VariablesTable};

/// Most variables shown for one frame.
pub const MAX_VARIABLES_PER_FRAME: usize = 100;
/// How many callers deep `DW_OP_entry_value` is followed.
const MAX_ENTRY_DEPTH: u8 = 4;

/// A parameter or local of one frame, with its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variable {
    /// `parameter` or `local`.
    pub kind: VariableKind,
    /// The function inlined into this frame that declares it, if it is not the frame's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inlined: Option<compact_str::CompactString>,
    /// Name, type and value.
    #[serde(flatten)]
    pub value: Value,
}

/// Whether a variable is a parameter or a local.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableKind {
    Parameter,
    Local,
}

/// The dump's captured memory.
pub struct DumpMemory<'a> {
    regions: Vec<(u64, &'a [u8])>,
}

impl<'a> DumpMemory<'a> {
    /// Over the dump's memory list.
    pub fn new(memory: Option<&'a UnifiedMemoryList<'a>>) -> DumpMemory<'a> {
        let mut regions: Vec<(u64, &[u8])> = memory
            .map(|list| list.iter().map(|m| (m.base_address(), m.bytes())).collect())
            .unwrap_or_default();
        regions.sort_by_key(|r| r.0);
        DumpMemory { regions }
    }

    /// Whether the dump holds the byte at `address`.
    pub fn holds(&self, address: u64) -> bool {
        self.read(address, 1).is_some()
    }
}

impl CapturedMemory for DumpMemory<'_> {
    fn read(&self, address: u64, len: usize) -> Option<Cow<'_, [u8]>> {
        let after = self.regions.partition_point(|r| r.0 <= address);
        let (base, bytes) = self.regions[..after].last()?;
        let start = usize::try_from(address - base).ok()?;
        bytes.get(start..start.checked_add(len)?).map(Cow::Borrowed)
    }
}

/// Where pointers of this crash point: null, a thread's stack, a module, or other captured
/// memory (heap); else not captured.
pub struct CrashAddressMap<'a> {
    /// Every thread's stack.
    pub stacks: &'a [Range<u64>],
    /// The dump's modules.
    pub modules: &'a MinidumpModuleList,
    /// The captured memory.
    pub memory: &'a DumpMemory<'a>,
}

impl AddressMap for CrashAddressMap<'_> {
    fn describe(&self, address: u64) -> CompactString {
        if address < 4096 {
            return CompactString::const_new("null");
        }
        if self.stacks.iter().any(|s| s.contains(&address)) {
            return CompactString::const_new("stack");
        }
        if let Some(module) = self.modules.module_at_address(address) {
            let path = module.code_file();
            let name = path.rsplit(['/', '\\']).next().unwrap_or(&path);
            // Most modules' names fit inline: no allocation.
            let mut described = CompactString::const_new("module ");
            described.push_str(name);
            return described;
        }
        if self.memory.holds(address) {
            return CompactString::const_new("heap");
        }
        CompactString::const_new("not captured")
    }
}

/// Each frame's variables table, if its module has one (looked up once per thread: every
/// variable of a frame, and its callee's entry values, use it).
pub type FrameTables<'t> = [Option<&'t VariablesTable>];

/// The variables of every frame of `frames` (one list per frame, empty where the frame's
/// module has no variables table or the frame has no function there).
pub fn thread_variables(
    frames: &[StackFrame],
    tables: &FrameTables<'_>,
    memory: &DumpMemory<'_>,
    map: &dyn AddressMap,
    limits: RenderLimits,
) -> Vec<Vec<Variable>> {
    (0..frames.len())
        .map(|index| {
            let Some(table) = tables.get(index).copied().flatten() else {
                return Vec::new();
            };
            let walked = WalkedFrame {
                frames,
                tables,
                index,
                memory,
                entry_depth: 0,
                recovered: Recovered::new(),
            };
            frame_variables(&walked, table, memory, map, limits)
        })
        .collect()
}

/// The variable of the thread's top frame that the fault `address` came from (see
/// [`fault::explain`](super::fault::explain)).
pub fn fault_variable(
    frames: &[StackFrame],
    tables: &FrameTables<'_>,
    memory: &DumpMemory<'_>,
    map: &dyn AddressMap,
    address: u64,
) -> Option<FaultVariable> {
    let table = tables.first().copied().flatten()?;
    let walked = WalkedFrame {
        frames,
        tables,
        index: 0,
        memory,
        entry_depth: MAX_ENTRY_DEPTH - 1,
        recovered: Recovered::new(),
    };
    let pc = walked.relative_pc()?;
    super::fault::explain(address, table, pc, &walked, memory, map)
}

/// The variables in scope at one frame's instruction: parameters first, then locals from the
/// innermost scope out (as gdb's `info args` and `info locals` list them).
fn frame_variables(
    frame: &WalkedFrame<'_>,
    table: &VariablesTable,
    memory: &DumpMemory<'_>,
    map: &dyn AddressMap,
    limits: RenderLimits,
) -> Vec<Variable> {
    let Some(pc) = frame.relative_pc() else {
        return Vec::new();
    };
    let Some(function) = table.function_at(pc) else {
        return Vec::new();
    };
    let renderer = Renderer {
        table,
        memory,
        map,
        limits,
    };
    let chain = function.scope.chain_at(pc);
    // The inlined function around each scope of the chain (the innermost one entered so far).
    let inlined_at: Vec<Option<&Arc<str>>> = chain
        .iter()
        .scan(None, |inlined, scope| {
            if let ScopeKind::Inlined(name) = &scope.kind {
                *inlined = Some(name);
            }
            Some(*inlined)
        })
        .collect();
    let scopes = || chain.iter().zip(inlined_at.iter().copied());
    // Parameters first; then locals, innermost scope first.
    let parameters = scopes().flat_map(|(scope, inlined)| {
        let declared = scope.variables.iter().filter(|v| v.parameter);
        declared.map(move |v| (v, inlined))
    });
    let locals = scopes().rev().flat_map(|(scope, inlined)| {
        let declared = scope.variables.iter().rev().filter(|v| !v.parameter);
        declared.map(move |v| (v, inlined))
    });
    let declared: usize = chain.iter().map(|scope| scope.variables.len()).sum();
    let mut variables = Vec::with_capacity(declared.min(MAX_VARIABLES_PER_FRAME));
    let listed = parameters.chain(locals).take(MAX_VARIABLES_PER_FRAME);
    variables.extend(listed.map(|(decl, inlined)| {
        let size = renderer.size_of(decl.type_id);
        let value = match eval::variable_bytes(&decl.location, function, pc, size, frame, memory) {
            Ok(bytes) => renderer.value(&decl.name, decl.type_id, &bytes),
            Err(why) => renderer.unavailable(&decl.name, decl.type_id, why),
        };
        Variable {
            kind: if decl.parameter {
                VariableKind::Parameter
            } else {
                VariableKind::Local
            },
            inlined: inlined.map(|name| compact_str::CompactString::new(name)),
            value,
        }
    }));
    variables
}

/// One frame of a walked thread, as location expressions see it.
struct WalkedFrame<'a> {
    frames: &'a [StackFrame],
    tables: &'a FrameTables<'a>,
    index: usize,
    memory: &'a DumpMemory<'a>,
    entry_depth: u8,
    recovered: Recovered,
}

/// A frame's registers and CFA, each looked up once per frame: every variable's location asks
/// for them again, and minidump finds a register by name and checks it against the frame's
/// set of valid ones on every lookup.
struct Recovered {
    cfa: OnceCell<Option<u64>>,
    /// DWARF registers 0–32 (the general ones and the low halves of SSE registers).
    registers: [OnceCell<Option<u64>>; 33],
}

impl Recovered {
    fn new() -> Recovered {
        Recovered {
            cfa: OnceCell::new(),
            registers: std::array::from_fn(|_| OnceCell::new()),
        }
    }
}

impl WalkedFrame<'_> {
    fn frame(&self) -> &StackFrame {
        &self.frames[self.index]
    }

    fn module_base(&self) -> Option<u64> {
        self.frame().module.as_ref().map(|m| m.base_address())
    }

    /// The frame's instruction relative to its module (in the call, for caller frames).
    fn relative_pc(&self) -> Option<u64> {
        self.frame().instruction.checked_sub(self.module_base()?)
    }
}

impl WalkedFrame<'_> {
    /// The low 64 bits of a vector register, where optimized code keeps floats and doubles,
    /// in the frame whose registers the dump recorded (no unwinder restores them in caller
    /// frames), when the context says it holds them: x86-64's `xmm0`–`xmm15` (DWARF 17–32) and
    /// x86's `xmm0`–`xmm7` (21–28) from the FXSAVE area, ARM64's `v0`–`v31` (64–95).
    fn vector_register(&self, register: u16) -> Option<u64> {
        let frame = self.frame();
        if frame.trust != FrameTrust::Context {
            return None;
        }
        // The FXSAVE area holds xmm0–15 from byte 160, 16 bytes each.
        let fxsave = |area: &[u8], index: u16| {
            let start = 160 + usize::from(index) * 16;
            let low = area.get(start..start + 8)?;
            Some(u64::from_le_bytes(low.try_into().ok()?))
        };
        match &frame.context.raw {
            MinidumpRawContext::Amd64(raw) if raw.context_flags & 0x8 != 0 => match register {
                17..=32 => fxsave(&raw.float_save, register - 17),
                _ => None,
            },
            MinidumpRawContext::X86(raw) if raw.context_flags & 0x20 != 0 => match register {
                21..=28 => fxsave(&raw.extended_registers, register - 21),
                _ => None,
            },
            MinidumpRawContext::Arm64(raw) if raw.context_flags & 0x4 != 0 => match register {
                64..=95 => Some(raw.float_regs[usize::from(register - 64)] as u64),
                _ => None,
            },
            MinidumpRawContext::OldArm64(raw) if raw.context_flags & 0x4 != 0 => match register {
                64..=95 => Some(raw.float_regs[usize::from(register - 64)] as u64),
                _ => None,
            },
            _ => None,
        }
    }
}

impl FrameContext for WalkedFrame<'_> {
    fn register(&self, register: u16) -> Option<u64> {
        let read = || {
            let context = &self.frame().context;
            match register_name(context, register) {
                Some(name) => context.get_register(name),
                None => self.vector_register(register),
            }
        };
        match self.recovered.registers.get(usize::from(register)) {
            Some(cell) => *cell.get_or_init(read),
            None => read(),
        }
    }

    fn cfa(&self) -> Option<u64> {
        *self.recovered.cfa.get_or_init(|| {
            // The unwinder set the caller's stack pointer to this frame's CFA.
            let caller = self.frames.get(self.index + 1)?;
            let context = &caller.context;
            let sp = match context.raw {
                MinidumpRawContext::Amd64(_) => "rsp",
                MinidumpRawContext::X86(_) => "esp",
                _ => "sp",
            };
            context.get_register(sp)
        })
    }

    fn entry_value(&self, register: u16) -> Option<u64> {
        if self.entry_depth >= MAX_ENTRY_DEPTH {
            return None;
        }
        let caller = WalkedFrame {
            frames: self.frames,
            tables: self.tables,
            index: self.index + 1,
            memory: self.memory,
            entry_depth: self.entry_depth + 1,
            recovered: Recovered::new(),
        };
        let table = self.tables.get(caller.index).copied().flatten()?;
        let function = table.function_at(caller.relative_pc()?)?;
        let return_address = caller
            .frame()
            .resume_address
            .checked_sub(caller.module_base()?)?;
        let site = function.call_site(return_address)?;
        let (_, value) = site.parameters.iter().find(|(r, _)| *r == register)?;
        eval::evaluate_value(value, function, &caller, self.memory)
    }

    fn relocate(&self, address: u64) -> u64 {
        let table = self.tables.get(self.index).copied().flatten();
        let load = table.map_or(0, |t| t.load_address);
        self.module_base()
            .unwrap_or(0)
            .wrapping_add(address.wrapping_sub(load))
    }
}

/// The name minidump gives DWARF register `register` of this CPU.
fn register_name(context: &MinidumpContext, register: u16) -> Option<&'static str> {
    const AMD64: [&str; 17] = [
        "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15", "rip",
    ];
    const X86: [&str; 9] = [
        "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip",
    ];
    const ARM64: [&str; 32] = [
        "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",
        "x14", "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26",
        "x27", "x28", "x29", "x30", "sp",
    ];
    const ARM: [&str; 16] = [
        "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "fp", "r12", "sp", "lr",
        "pc",
    ];
    let names: &[&'static str] = match context.raw {
        MinidumpRawContext::Amd64(_) => &AMD64,
        MinidumpRawContext::X86(_) => &X86,
        MinidumpRawContext::Arm64(_) | MinidumpRawContext::OldArm64(_) => &ARM64,
        MinidumpRawContext::Arm(_) => &ARM,
        _ => return None,
    };
    names.get(usize::from(register)).copied()
}

#[cfg(test)]
mod tests {
    use minidump::format::{CONTEXT_ARM64, CONTEXT_X86};

    use super::*;

    fn read(frames: &[StackFrame], register: u16) -> Option<u64> {
        let memory = DumpMemory::new(None);
        let walked = WalkedFrame {
            frames,
            tables: &[],
            index: 0,
            memory: &memory,
            entry_depth: 0,
            recovered: Recovered::new(),
        };
        walked.register(register)
    }

    fn frame(raw: MinidumpRawContext, trust: FrameTrust) -> StackFrame {
        StackFrame::from_context(MinidumpContext::from_raw(raw), trust)
    }

    /// A double in ARM64's `v3` (DWARF 67) or x86's `xmm2` (DWARF 23) is read from the crashing
    /// frame's context when its flags say the context holds the vector registers; not from a
    /// context without them, nor in a caller frame.
    #[test]
    fn vector_registers_are_read_where_the_context_holds_them() {
        let mut arm64 = CONTEXT_ARM64 {
            context_flags: 0x0040_0004,
            ..Default::default()
        };
        arm64.float_regs[3] = (0xdead_u128 << 64) | u128::from(1.5f64.to_bits());
        let crashing = [frame(
            MinidumpRawContext::Arm64(arm64.clone()),
            FrameTrust::Context,
        )];
        assert_eq!(read(&crashing, 67), Some(1.5f64.to_bits()));
        assert_eq!(read(&crashing, 68), Some(0));
        assert_eq!(read(&crashing, 96), None);
        let caller = [frame(
            MinidumpRawContext::Arm64(arm64.clone()),
            FrameTrust::CallFrameInfo,
        )];
        assert_eq!(read(&caller, 67), None);
        arm64.context_flags = 0x0040_0002;
        let without = [frame(MinidumpRawContext::Arm64(arm64), FrameTrust::Context)];
        assert_eq!(read(&without, 67), None);

        let mut x86 = CONTEXT_X86 {
            context_flags: 0x0001_0020,
            ..Default::default()
        };
        x86.extended_registers[160 + 2 * 16..][..8].copy_from_slice(&2.25f64.to_le_bytes());
        let crashing = [frame(
            MinidumpRawContext::X86(x86.clone()),
            FrameTrust::Context,
        )];
        assert_eq!(read(&crashing, 23), Some(2.25f64.to_bits()));
        x86.context_flags = 0x0001_0007;
        let without = [frame(MinidumpRawContext::X86(x86), FrameTrust::Context)];
        assert_eq!(read(&without, 23), None);
    }
}
