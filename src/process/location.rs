//! Where an address is in the source: the function, file and line a module's symbols give it,
//! and the functions inlined there; the vocabulary both symbol readers (SymCache in
//! `modules.rs`, Breakpad text in `breakpad.rs`) answer in.

use serde::Serialize;
use symbolic::common::Name;
use symbolic::demangle::{Demangle, DemangleOptions};

/// Where an address is in the source: the real function and line, plus the functions inlined
/// into it at that address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceLocation {
    /// The (outermost, not inlined) function, demangled.
    pub function: String,
    /// Its start, relative to the module's load address.
    pub function_offset: u64,
    /// Source file of the line in `function` (the call site when something is inlined there).
    pub file: Option<String>,
    /// Line in `file`, 0 when unknown.
    pub line: u32,
    /// Inlined calls at this address, outermost first: each names the inlined function and the
    /// line executing inside it.
    pub inlines: Vec<InlineLocation>,
    /// Where `file` and `line` were in generated code, when a line mapping moved them to the
    /// source it was generated from (Unity IL2CPP: C++ generated from C#).
    pub generated: Option<GeneratedLine>,
}

/// A line of generated code (the C++ IL2CPP wrote), kept beside the source line it maps to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratedLine {
    /// The generated file.
    pub file: String,
    /// Its line.
    pub line: u32,
}

impl SourceLocation {
    /// Roughly what it holds on the heap.
    pub(super) fn heap_bytes(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.function.len()
            + text(&self.file)
            + self.generated.as_ref().map_or(0, |g| 32 + g.file.len())
            + self
                .inlines
                .iter()
                .map(|i| 64 + i.function.len() + text(&i.file))
                .sum::<usize>()
    }
}

/// One inlined function at an address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InlineLocation {
    /// The inlined function, demangled.
    pub function: String,
    /// Source file inside it.
    pub file: Option<String>,
    /// Line inside it.
    pub line: Option<u32>,
}

/// A function name as dump_syms writes it: demangled with parameters (C++, Rust, Swift), or
/// unchanged when it is not mangled.
pub fn demangled(name: Name<'_>) -> String {
    name.try_demangle(DemangleOptions::complete()).into_owned()
}
