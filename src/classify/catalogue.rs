//! The catalogue of fault classes: what kind of bug a crash is, in the words a person triaging
//! it uses. `docs/CLASSIFIERS.md` gives the rule for each and where the rule comes from.

use serde::{Deserialize, Serialize};

/// One class from the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultClass {
    /// Read through a null (or near-null) pointer.
    NullRead,
    /// Write through a null (or near-null) pointer.
    NullWrite,
    /// Call or jump to a null (or near-null) address, e.g. a null function pointer.
    NullExec,
    /// Read of an unmapped or unreadable address that is not near null.
    WildRead,
    /// Write to an unmapped address that is not near null.
    WildWrite,
    /// Executing unmapped or non-executable memory.
    WildExec,
    /// Executing code on a thread's stack.
    ExecOnStack,
    /// Executing code on the heap.
    ExecOnHeap,
    /// Write to mapped memory that is read-only (string literals, code, const data).
    WriteToReadonly,
    /// A general-protection fault from a non-canonical (x86-64) address.
    NonCanonicalAddress,
    /// The stack ran out: recursion or huge stack frames hit the guard page.
    StackOverflow,
    /// A stack protector or buffer-overflow check fired (`__stack_chk_fail`, `/GS`, fast-fail).
    StackBufferOverrun,
    /// The program called abort (or terminated itself) without a more specific reason.
    Abort,
    /// An assertion failed (`__assert_fail`, `__assert_rtn`, `_wassert`).
    Assertion,
    /// An uncaught C++ exception, or `std::terminate`.
    CxxException,
    /// An uncaught Objective-C exception (`NSException`), re-raised by Crashpad as "CPnx".
    ObjcException,
    /// A Rust panic that aborted the process.
    RustPanic,
    /// Memory allocation failed.
    OutOfMemory,
    /// The allocator found its own data structures corrupted.
    HeapCorruption,
    /// Integer (or floating-point) division by zero, or division overflow.
    DivideByZero,
    /// An illegal or privileged instruction (including deliberate traps such as `ud2`).
    IllegalInstruction,
    /// A bus error: misaligned access, or a mapped file truncated under the program.
    BusError,
    /// A breakpoint or trap instruction.
    Breakpoint,
    /// No crash: the dump was requested (hang reports, dump-without-crashing).
    DumpRequested,
    /// None of the rules matched.
    Unknown,
}

impl FaultClass {
    /// Whether the crash is a bad memory access (read, write or execute at an address it
    /// should not touch), as opposed to a fault the program raised or a benign signal.
    pub fn is_memory_fault(self) -> bool {
        matches!(
            self,
            FaultClass::WildRead
                | FaultClass::WildWrite
                | FaultClass::WildExec
                | FaultClass::NullRead
                | FaultClass::NullWrite
                | FaultClass::NullExec
                | FaultClass::WriteToReadonly
                | FaultClass::NonCanonicalAddress
                | FaultClass::ExecOnHeap
                | FaultClass::ExecOnStack
        )
    }

    /// Every class, in catalogue order.
    pub const ALL: [FaultClass; 25] = [
        FaultClass::NullRead,
        FaultClass::NullWrite,
        FaultClass::NullExec,
        FaultClass::WildRead,
        FaultClass::WildWrite,
        FaultClass::WildExec,
        FaultClass::ExecOnStack,
        FaultClass::ExecOnHeap,
        FaultClass::WriteToReadonly,
        FaultClass::NonCanonicalAddress,
        FaultClass::StackOverflow,
        FaultClass::StackBufferOverrun,
        FaultClass::Abort,
        FaultClass::Assertion,
        FaultClass::CxxException,
        FaultClass::ObjcException,
        FaultClass::RustPanic,
        FaultClass::OutOfMemory,
        FaultClass::HeapCorruption,
        FaultClass::DivideByZero,
        FaultClass::IllegalInstruction,
        FaultClass::BusError,
        FaultClass::Breakpoint,
        FaultClass::DumpRequested,
        FaultClass::Unknown,
    ];

    /// The class's name as it appears in JSON (`null-read`, `stack-overflow`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FaultClass::NullRead => "null-read",
            FaultClass::NullWrite => "null-write",
            FaultClass::NullExec => "null-exec",
            FaultClass::WildRead => "wild-read",
            FaultClass::WildWrite => "wild-write",
            FaultClass::WildExec => "wild-exec",
            FaultClass::ExecOnStack => "exec-on-stack",
            FaultClass::ExecOnHeap => "exec-on-heap",
            FaultClass::WriteToReadonly => "write-to-readonly",
            FaultClass::NonCanonicalAddress => "non-canonical-address",
            FaultClass::StackOverflow => "stack-overflow",
            FaultClass::StackBufferOverrun => "stack-buffer-overrun",
            FaultClass::Abort => "abort",
            FaultClass::Assertion => "assertion",
            FaultClass::CxxException => "cxx-exception",
            FaultClass::ObjcException => "objc-exception",
            FaultClass::RustPanic => "rust-panic",
            FaultClass::OutOfMemory => "out-of-memory",
            FaultClass::HeapCorruption => "heap-corruption",
            FaultClass::DivideByZero => "divide-by-zero",
            FaultClass::IllegalInstruction => "illegal-instruction",
            FaultClass::BusError => "bus-error",
            FaultClass::Breakpoint => "breakpoint",
            FaultClass::DumpRequested => "dump-requested",
            FaultClass::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for class in FaultClass::ALL {
            assert_eq!(serde_json::to_value(class).unwrap(), class.as_str());
            assert!(seen.insert(class.as_str()));
        }
    }
}
